// key → set of values, for indexes where nearly every key has one value (a Service's slices, a
// name's svc_ids, a VIP's service ports): the value is stored bare, and a Set only from the
// second one on. At 10,000 Services a Set per key cost ~150 bytes each, ~1.5 MB per index.
export class SetIndex<K, V extends string | number> {
  private readonly map = new Map<K, V | Set<V>>();

  /** Keys with at least one value. */
  get size(): number {
    return this.map.size;
  }

  add(key: K, value: V): void {
    const current = this.map.get(key);
    if (current === undefined) this.map.set(key, value);
    else if (current instanceof Set) current.add(value);
    else if (current !== value) this.map.set(key, new Set([current, value]));
  }

  delete(key: K, value: V): void {
    const current = this.map.get(key);
    if (current === undefined) return;
    if (!(current instanceof Set)) {
      if (current === value) this.map.delete(key);
      return;
    }
    current.delete(value);
    if (current.size === 1) this.map.set(key, current.values().next().value as V);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Number of values of `key`. */
  count(key: K): number {
    const current = this.map.get(key);
    return current === undefined ? 0 : current instanceof Set ? current.size : 1;
  }

  /** The values of `key`, in insertion order (a copy). */
  values(key: K): V[] {
    const current = this.map.get(key);
    return current === undefined ? [] : current instanceof Set ? [...current] : [current];
  }

  keys(): IterableIterator<K> {
    return this.map.keys();
  }

  clear(): void {
    this.map.clear();
  }
}
