// Hands out small integer ids from a range, the next free one after the last handed out (wrapping),
// so a freed id is reused as late as possible: counters and dumps keyed by an old id are not
// mistaken for a new service's right after a removal.
export class IdAllocator {
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    readonly min: number,
    readonly max: number,
    /** Ids another allocator of the same space holds (the other family's svc_ids): never handed out. */
    private readonly takenElsewhere?: (id: number) => boolean,
  ) {
    if (!Number.isInteger(min) || !Number.isInteger(max) || min > max) throw new RangeError(`id range [${min}, ${max}] is empty`);
    this.cursor = min;
  }

  /** Forgets everything and marks `ids` as in use; the cursor continues after the largest. */
  reset(ids: Iterable<number>): void {
    this.used.clear();
    let top = this.min - 1;
    for (const id of ids) {
      if (id < this.min || id > this.max) continue;
      this.used.add(id);
      top = Math.max(top, id);
    }
    this.cursor = top >= this.max ? this.min : top + 1;
  }

  /** Replaces the ids in use, keeping the cursor (after an apply: the maps are the truth). */
  sync(ids: Iterable<number>): void {
    this.used.clear();
    for (const id of ids) this.take(id);
  }

  /** A free id, now marked used; undefined when the range is exhausted. */
  allocate(): number | undefined {
    const span = this.max - this.min + 1;
    if (this.used.size >= span) return undefined;
    for (let i = 0; i < span; i++) {
      const id = this.cursor;
      this.cursor = id >= this.max ? this.min : id + 1;
      if (!this.used.has(id) && !this.takenElsewhere?.(id)) {
        this.used.add(id);
        return id;
      }
    }
    return undefined;
  }

  take(id: number): void {
    if (id >= this.min && id <= this.max) this.used.add(id);
  }

  free(id: number): void {
    this.used.delete(id);
  }

  has(id: number): boolean {
    return this.used.has(id);
  }

  get size(): number {
    return this.used.size;
  }
}
