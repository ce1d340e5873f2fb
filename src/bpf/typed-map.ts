// A map seen through key/value codecs. Bulk operations use the kernel's batch commands (one
// syscall per chunk, which is what makes 10k+ services cheap to program) and fall back to
// element ops, remembered per map, where the map type lacks them.
import type { Codec } from './codec.js';
import { hasErrnoCode, isBatchUnsupported } from './errors.js';
import { isPerCpuMapType, mapTypeName, UpdateFlags } from './map-types.js';
import type { NativeMap } from './native.js';
import { isPerCpuCodec } from './per-cpu.js';

export type BatchSupport = 'unknown' | 'yes' | 'no';

export interface TypedMapOptions {
  /** Entries per batch syscall (default 4096). */
  chunkSize?: number;
}

const DEFAULT_CHUNK = 4096;

export class TypedMap<K, V> {
  readonly #support: { lookup: BatchSupport; update: BatchSupport; delete: BatchSupport } = {
    lookup: 'unknown',
    update: 'unknown',
    delete: 'unknown',
  };
  readonly #chunk: number;

  constructor(
    readonly map: NativeMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
    opts: TypedMapOptions = {},
  ) {
    const info = map.info;
    const where = `TypedMap(${info.name})`;
    if (keyCodec.size !== info.keySize) {
      throw new Error(`${where}: key codec ${keyCodec.name} is ${keyCodec.size} bytes, the map's keys are ${info.keySize}`);
    }
    const perCpuMap = isPerCpuMapType(info.type);
    if (perCpuMap !== isPerCpuCodec(valueCodec)) {
      throw new Error(
        `${where}: map type ${mapTypeName(info.type)} ${perCpuMap ? 'needs' : 'must not use'} a per-CPU value codec (perCpuCodec)`,
      );
    }
    const valueSize = isPerCpuCodec(valueCodec) ? valueCodec.element.size : valueCodec.size;
    if (valueSize !== info.valueSize) {
      throw new Error(`${where}: value codec ${valueCodec.name} is ${valueSize} bytes, the map's values are ${info.valueSize}`);
    }
    const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`${where}: chunkSize must be a positive integer, got ${chunk}`);
    this.#chunk = chunk;
  }

  get name(): string {
    return this.map.info.name;
  }

  /** Which batch commands this map turned out to support (for diagnostics and tests). */
  batchSupport(): Readonly<{ lookup: BatchSupport; update: BatchSupport; delete: BatchSupport }> {
    return { ...this.#support };
  }

  get(key: K): V | null {
    const value = this.map.lookup(this.keyCodec.encode(key));
    return value === null ? null : this.valueCodec.decode(value);
  }

  set(key: K, value: V, flags: number = UpdateFlags.ANY): void {
    this.map.update(this.keyCodec.encode(key), this.valueCodec.encode(value), flags);
  }

  /** False when the key was not there. */
  delete(key: K): boolean {
    return this.map.delete(this.keyCodec.encode(key));
  }

  keys(): K[] {
    return this.map.keys().map((k) => this.keyCodec.decode(k));
  }

  entries(): Array<[K, V]> {
    if (this.#support.lookup !== 'no') {
      try {
        const { keys, values, count } = this.map.lookupBatch();
        this.#support.lookup = 'yes';
        const out: Array<[K, V]> = [];
        for (let i = 0; i < count; i++) {
          out.push([this.keyCodec.decode(keys, i * this.keyCodec.size), this.valueCodec.decode(values, i * this.valueCodec.size)]);
        }
        return out;
      } catch (err) {
        if (!isBatchUnsupported(err)) throw err;
        this.#support.lookup = 'no';
      }
    }
    const out: Array<[K, V]> = [];
    for (const rawKey of this.map.keys()) {
      const value = this.map.lookup(rawKey);
      // Deleted between the key walk and the lookup: it is simply no longer an entry.
      if (value !== null) out.push([this.keyCodec.decode(rawKey), this.valueCodec.decode(value)]);
    }
    return out;
  }

  /** Writes every entry; returns how many were written. Throws on the first kernel refusal. */
  setMany(entries: Iterable<readonly [K, V]>, flags: number = UpdateFlags.ANY): number {
    const all = [...entries];
    let written = 0;
    for (let start = 0; start < all.length; start += this.#chunk) {
      const chunk = all.slice(start, start + this.#chunk);
      // Batches know no NOEXIST/EXIST: those go element by element.
      if (this.#support.update !== 'no' && (flags & 3) === 0) {
        const keys = Buffer.alloc(chunk.length * this.keyCodec.size);
        const values = Buffer.alloc(chunk.length * this.valueCodec.size);
        chunk.forEach(([k, v], i) => {
          this.keyCodec.encode(k, keys, i * this.keyCodec.size);
          this.valueCodec.encode(v, values, i * this.valueCodec.size);
        });
        try {
          written += this.map.updateBatch(keys, values, chunk.length, flags);
          this.#support.update = 'yes';
          continue;
        } catch (err) {
          if (!isBatchUnsupported(err)) throw err;
          this.#support.update = 'no';
        }
      }
      for (const [k, v] of chunk) {
        this.set(k, v, flags);
        written++;
      }
    }
    return written;
  }

  /** Deletes every key that exists; missing keys are skipped. Returns how many were deleted. */
  deleteMany(keys: Iterable<K>): number {
    const all = [...keys];
    let deleted = 0;
    let next = 0;
    while (next < all.length) {
      const chunk = all.slice(next, next + this.#chunk);
      if (this.#support.delete !== 'no') {
        const buf = Buffer.alloc(chunk.length * this.keyCodec.size);
        chunk.forEach((k, i) => this.keyCodec.encode(k, buf, i * this.keyCodec.size));
        try {
          deleted += this.map.deleteBatch(buf, chunk.length);
          this.#support.delete = 'yes';
          next += chunk.length;
          continue;
        } catch (err) {
          if (hasErrnoCode(err, 'ENOENT') && err.processed !== undefined) {
            // The kernel stops at the first missing key: count what went, skip that key, go on.
            this.#support.delete = 'yes';
            deleted += err.processed;
            next += err.processed + 1;
            continue;
          }
          if (!isBatchUnsupported(err)) throw err;
          this.#support.delete = 'no';
        }
      }
      for (const k of chunk) if (this.delete(k)) deleted++;
      next += chunk.length;
    }
    return deleted;
  }

  /** Deletes every entry (not for arrays, whose slots cannot be deleted). Returns the count. */
  clear(): number {
    return this.deleteMany(this.keys());
  }
}
