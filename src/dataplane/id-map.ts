// A Map from map ids (svc_id, backend_id) to values, on the dense-id store (dense-ids.ts): the
// ids the writer allocates are small and dense, so at 10,000 Services the mirror's id-keyed
// Maps of ~12,700 entries each take ~0.1 MB each as arrays instead of ~0.45 MB.
import { DenseIdStore, VALUE_SLOT, type SlotCodec } from './dense-ids.js';

/** Ids from here on are held in a Map (far beyond any id the writer hands out). */
const DENSE_IDS = 1 << 17;

export class IdMap<V> extends DenseIdStore<V> implements Iterable<[number, V]> {
  protected get codec(): SlotCodec<V> {
    return VALUE_SLOT as SlotCodec<V>;
  }

  protected get denseLimit(): number {
    return DENSE_IDS;
  }

  /** Ascending ids. */
  *keys(): IterableIterator<number> {
    for (const [id] of this) yield id;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this) yield v;
  }

  *entries(): IterableIterator<[number, V]> {
    yield* this;
  }
}
