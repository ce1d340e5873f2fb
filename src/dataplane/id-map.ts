// A Map from map ids (svc_id, backend_id) to values, held in an array indexed by id. The ids the
// writer allocates are small and dense (1, 2, 3, ...), so a slot costs 8 bytes where a Map entry
// costs ~36; at 10,000 Services the mirror's four id-keyed Maps of ~12,700 entries each were
// ~1.8 MB, as arrays ~0.4 MB. An id read from the maps may be anything up to 2^32-1: ids from
// DENSE_IDS on go to a Map, so a stray one never makes the array sparse.
const DENSE_IDS = 1 << 17;

/** Held in the array (else in the Map): one test for every method. */
const isDense = (id: number): boolean => Number.isInteger(id) && id >= 0 && id < DENSE_IDS;

export class IdMap<V> implements Iterable<[number, V]> {
  private readonly dense: Array<V | undefined> = [];
  private far: Map<number, V> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    return isDense(id) ? this.dense[id] : this.far?.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** `value` must not be undefined (absent and undefined are one thing here). */
  set(id: number, value: V): this {
    if (!this.has(id)) this.count++;
    if (isDense(id)) {
      // Grow one slot at a time with undefined, never past a hole: the array stays packed.
      while (this.dense.length < id) this.dense.push(undefined);
      this.dense[id] = value;
    } else (this.far ??= new Map()).set(id, value);
    return this;
  }

  delete(id: number): boolean {
    if (!this.has(id)) return false;
    this.count--;
    if (isDense(id)) {
      this.dense[id] = undefined;
      while (this.dense.length > 0 && this.dense[this.dense.length - 1] === undefined) this.dense.pop();
    } else this.far?.delete(id);
    return true;
  }

  clear(): void {
    this.dense.length = 0;
    this.far = undefined;
    this.count = 0;
  }

  /** Ascending ids (the dense part, then the far ones in order). */
  *keys(): IterableIterator<number> {
    for (const [id] of this) yield id;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this) yield v;
  }

  *entries(): IterableIterator<[number, V]> {
    yield* this;
  }

  *[Symbol.iterator](): IterableIterator<[number, V]> {
    for (let id = 0; id < this.dense.length; id++) {
      const v = this.dense[id];
      if (v !== undefined) yield [id, v];
    }
    if (this.far) yield* [...this.far].sort((a, b) => a[0] - b[0]);
  }
}
