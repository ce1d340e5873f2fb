// Values keyed by small dense whole numbers — map ids (svc_id, backend_id: 1, 2, 3, … as the
// writer hands them out) and a block's ordinals (0..n-1) — held in an array indexed by the number
// instead of a Map: a slot costs 8 bytes where a Map entry costs ~36 and a Map itself ~200
// (measured figures in docs/benchmarks.md). A value may take several slots (`SlotCodec.width`):
// a block's entries are packed three slots each instead of an object each. A number read from
// the maps may be anything up to 2^32-1: those from `denseLimit` on go to a Map, so a stray one
// never makes the array sparse. The first slot of an absent value is undefined.

/** How a value sits in `width` consecutive slots; the first must never be undefined for a value. */
export interface SlotCodec<V> {
  readonly width: number;
  write(slots: unknown[], at: number, value: V): void;
  read(slots: readonly unknown[], at: number): V;
  /** Whether the slots at `at` hold `value` (no value built). */
  equals(slots: readonly unknown[], at: number, value: V): boolean;
}

/** One slot, the value itself. */
export const VALUE_SLOT: SlotCodec<unknown> = {
  width: 1,
  write: (slots, at, value) => void (slots[at] = value),
  read: (slots, at) => slots[at],
  equals: (slots, at, value) => slots[at] === value,
};

/**
 * The store; a subclass says how values sit in slots and where the dense part ends, as getters
 * on its prototype, not fields: the mirror holds one store per backend block (12,700 at 10,000
 * Services), and three more fields each were ~0.3 MB.
 */
export abstract class DenseIdStore<V> {
  private slots: unknown[] = [];
  private far: Map<number, V> | undefined;
  private count = 0;

  protected abstract get codec(): SlotCodec<V>;
  /** Ids from here on are held in the Map. */
  protected abstract get denseLimit(): number;
  /** Compares far values in equals() (dense ones are compared by the codec). */
  protected sameValue(a: V, b: V): boolean {
    return a === b;
  }

  get size(): number {
    return this.count;
  }

  private isDense(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.denseLimit;
  }

  has(id: number): boolean {
    return this.isDense(id) ? this.slots[id * this.codec.width] !== undefined : (this.far?.has(id) ?? false);
  }

  get(id: number): V | undefined {
    if (!this.isDense(id)) return this.far?.get(id);
    const at = id * this.codec.width;
    return this.slots[at] === undefined ? undefined : this.codec.read(this.slots, at);
  }

  /** Whether the value at `id` equals `value` (for packed values: no object built). */
  equals(id: number, value: V): boolean {
    if (!this.isDense(id)) {
      const v = this.far?.get(id);
      return v !== undefined && this.sameValue(v, value);
    }
    const at = id * this.codec.width;
    return this.slots[at] !== undefined && this.codec.equals(this.slots, at, value);
  }

  /** `value` must not be undefined (absent and undefined are one thing here). */
  set(id: number, value: V): this {
    if (!this.has(id)) this.count++;
    if (!this.isDense(id)) {
      (this.far ??= new Map()).set(id, value);
      return this;
    }
    const at = id * this.codec.width;
    // Grow with undefined, never past a hole: the array stays packed.
    while (this.slots.length < at) this.slots.push(undefined);
    this.codec.write(this.slots, at, value);
    return this;
  }

  delete(id: number): boolean {
    if (!this.has(id)) return false;
    this.count--;
    if (!this.isDense(id)) {
      this.far?.delete(id);
      return true;
    }
    const width = this.codec.width;
    this.slots.fill(undefined, id * width, id * width + width);
    let end = this.slots.length;
    while (end > 0 && this.slots[end - width] === undefined) end -= width;
    if (end < this.slots.length) this.slots.length = end;
    return true;
  }

  clear(): void {
    this.slots = [];
    this.far = undefined;
    this.count = 0;
  }

  /** Drops the spare room the array grew with while values were set one by one. */
  trim(): void {
    this.slots = this.slots.slice();
  }

  /** Ids present from `first` on, ascending (the dense part, then the far ones in order). */
  idsFrom(first = 0): number[] {
    const out: number[] = [];
    const width = this.codec.width;
    const dense = Math.ceil(this.slots.length / width);
    for (let i = Math.max(0, first); i < dense; i++) if (this.slots[i * width] !== undefined) out.push(i);
    if (this.far) out.push(...[...this.far.keys()].filter((id) => id >= first).sort((a, b) => a - b));
    return out;
  }

  /** [id, value] of the values present, ascending. */
  *[Symbol.iterator](): IterableIterator<[number, V]> {
    const width = this.codec.width;
    for (let at = 0; at < this.slots.length; at += width) {
      if (this.slots[at] !== undefined) yield [at / width, this.codec.read(this.slots, at)];
    }
    if (this.far) yield* [...this.far].sort((a, b) => a[0] - b[0]);
  }
}
