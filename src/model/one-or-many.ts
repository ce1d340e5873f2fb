// One value, or a collection from the second one on: the shape of nearly every kept "key →
// values" and "item → its few parts" at 10,000 Services, where almost every key has exactly one
// value (a Service's slices, a name's svc_ids, a VIP's service ports, a svc_id's frontends, a
// Service's port keys, a draft's claims). The lone value is held bare; a Many (an array in a class
// of its own, so `instanceof` tells it from a lone value of any type, strings and arrays
// included) only from the second value on. A Set, Map or array per key cost ~100-150 bytes even
// when it held one value: ~1.5 MB per index of 12,700 keys (figures in docs/benchmarks.md).

/** Two or more values, in insertion order. */
export class Many<T> {
  constructor(readonly items: T[]) {}
}

/** A lone value, or Many. Absent (no value) is `undefined` where it can be. */
export type OneOrMany<T> = T | Many<T>;

/** `items` as a OneOrMany: undefined for none, the value for one, Many (of a trimmed copy) for more. */
export function oneOrMany<T>(items: readonly T[]): OneOrMany<T> | undefined {
  if (items.length === 0) return undefined;
  return items.length === 1 ? (items[0] as T) : new Many(items.slice());
}

/** The values as a list (a new array only for a lone value). */
export function listOf<T>(v: OneOrMany<T> | undefined): readonly T[] {
  return v === undefined ? [] : v instanceof Many ? v.items : [v];
}

/** How many values. */
export function countOf<T>(v: OneOrMany<T> | undefined): number {
  return v === undefined ? 0 : v instanceof Many ? v.items.length : 1;
}

/** The smallest map interface MultiIndex keeps its keys in (Map and IdMap both have it). */
export interface KeyedStore<K, V> {
  readonly size: number;
  get(key: K): V | undefined;
  set(key: K, value: V): unknown;
  delete(key: K): unknown;
  has(key: K): boolean;
  keys(): IterableIterator<K>;
  clear(): void;
}

/**
 * key → its values, each held as a OneOrMany: a value equal (by `same`, default ===) to one the
 * key has replaces it in place, so a key never holds a value twice. Lookups within a key scan
 * its values: keys hold a handful.
 */
export class MultiIndex<K, V> {
  private readonly store: KeyedStore<K, OneOrMany<V>>;
  private readonly same: (a: V, b: V) => boolean;

  constructor(opts: { store?: KeyedStore<K, OneOrMany<V>>; same?: (a: V, b: V) => boolean } = {}) {
    this.store = opts.store ?? new Map<K, OneOrMany<V>>();
    this.same = opts.same ?? ((a, b) => a === b);
  }

  /** Keys with at least one value. */
  get size(): number {
    return this.store.size;
  }

  add(key: K, value: V): void {
    const current = this.store.get(key);
    if (current === undefined || (!(current instanceof Many) && this.same(current, value))) this.store.set(key, value);
    else if (!(current instanceof Many)) this.store.set(key, new Many([current, value]));
    else {
      const at = current.items.findIndex((v) => this.same(v, value));
      if (at >= 0) current.items[at] = value;
      else current.items.push(value);
    }
  }

  /** Removes the value equal (by `same`) to `value`; a key left with one value holds it bare again. */
  delete(key: K, value: V): void {
    const current = this.store.get(key);
    if (current === undefined) return;
    if (!(current instanceof Many)) {
      if (this.same(current, value)) this.store.delete(key);
      return;
    }
    const at = current.items.findIndex((v) => this.same(v, value));
    if (at >= 0) current.items.splice(at, 1);
    if (current.items.length === 1) this.store.set(key, current.items[0] as V);
  }

  has(key: K): boolean {
    return this.store.has(key);
  }

  /** Number of values of `key`. */
  count(key: K): number {
    return countOf(this.store.get(key));
  }

  /** The values of `key`, in insertion order (read-only; no copy for a key with several). */
  values(key: K): readonly V[] {
    return listOf(this.store.get(key));
  }

  keys(): IterableIterator<K> {
    return this.store.keys();
  }

  clear(): void {
    this.store.clear();
  }
}
