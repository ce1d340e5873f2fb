// ServiceTables over the kernel's maps (the addon's NativeMap + the sluice.h codecs). Batch calls
// go through BPF_MAP_*_BATCH; when a batch stops at an element (the kernel reports how many it
// processed) the rest continues, so one bad element never hides the others' fate, and maps or
// kernels without batch support fall back to element calls.
import { join } from 'node:path';
import { isBatchUnsupported } from '../bpf/errors.js';
import type { NativeAddon, NativeMap } from '../bpf/native.js';
import type { BatchOutcome, RawMatch, ServiceTables, Table, TableRole } from './tables.js';
import type { TableFamily } from './tables.js';
import { errorCode, mapNamesOf } from './tables.js';
import type { StructLayouts, TableSpec } from './table-specs.js';
import { isZero, nonZeroSlots, tableSpecs } from './table-specs.js';

const everything: RawMatch = () => true;

function processedOf(err: unknown): number {
  const p = (err as { processed?: unknown } | null)?.processed;
  return typeof p === 'number' && p >= 0 ? p : 0;
}

export class NativeTable<K, V> implements Table<K, V> {
  readonly name: string;
  readonly maxEntries: number;
  private batchSupported = true;

  constructor(
    private readonly map: NativeMap,
    private readonly spec: TableSpec<K, V>,
  ) {
    this.name = spec.name;
    this.maxEntries = map.info.maxEntries;
    if (map.info.keySize !== spec.key.size) {
      throw new Error(`${spec.name}: map key size is ${map.info.keySize} bytes but ${spec.key.name} is ${spec.key.size}`);
    }
  }

  get(key: K): V | undefined {
    const bytes = this.map.lookup(this.spec.key.encode(key));
    if (!bytes) return undefined;
    if (this.spec.kind === 'array' && isZero(bytes, 0, bytes.length)) return undefined;
    return this.spec.value.decode(bytes);
  }

  set(key: K, value: V): void {
    this.map.update(this.spec.key.encode(key), this.spec.value.encode(value));
  }

  delete(key: K): boolean {
    if (this.spec.kind === 'array') {
      // Array elements cannot be deleted: zero means empty.
      this.map.update(this.spec.key.encode(key), Buffer.alloc(this.spec.value.size));
      return true;
    }
    return this.map.delete(this.spec.key.encode(key));
  }

  entries(): Array<[K, V]> {
    return this.filterRaw(everything);
  }

  filterRaw(match: RawMatch): Array<[K, V]> {
    const { key: kc, value: vc } = this.spec;
    const out: Array<[K, V]> = [];
    let keys: Buffer;
    let values: Buffer;
    let count: number;
    try {
      ({ keys, values, count } = this.map.lookupBatch());
    } catch (err) {
      if (!isBatchUnsupported(err)) throw err;
      for (const k of this.map.keys()) {
        const v = this.map.lookup(k);
        if (v && !(this.spec.kind === 'array' && isZero(v, 0, v.length)) && match(k, 0, v, 0)) out.push([kc.decode(k), vc.decode(v)]);
      }
      return out;
    }
    const take = (i: number): void => {
      const ka = i * kc.size;
      const va = i * vc.size;
      if (match(keys, ka, values, va)) out.push([kc.decode(keys, ka), vc.decode(values, va)]);
    };
    if (this.spec.kind === 'array') for (const i of nonZeroSlots(values, count, vc.size)) take(i);
    else for (let i = 0; i < count; i++) take(i);
    return out;
  }

  setMany(entries: ReadonlyArray<readonly [K, V]>): BatchOutcome {
    const { key: kc, value: vc } = this.spec;
    const keys = Buffer.alloc(entries.length * kc.size);
    const values = Buffer.alloc(entries.length * vc.size);
    entries.forEach(([k, v], i) => {
      kc.encode(k, keys, i * kc.size);
      vc.encode(v, values, i * vc.size);
    });
    return this.writeEncoded(keys, values, entries.length);
  }

  /** Writes n encoded elements (keys and values back to back), batched. */
  private writeEncoded(keys: Buffer, values: Buffer, count: number): BatchOutcome {
    const { key: kc, value: vc } = this.spec;
    return this.runBatched(count, (from, n) =>
      this.map.updateBatch(keys.subarray(from * kc.size, (from + n) * kc.size), values.subarray(from * vc.size, (from + n) * vc.size), n),
    (i) => this.map.update(keys.subarray(i * kc.size, (i + 1) * kc.size), values.subarray(i * vc.size, (i + 1) * vc.size)));
  }

  deleteMany(keyList: readonly K[]): BatchOutcome {
    const kc = this.spec.key;
    const keys = Buffer.alloc(keyList.length * kc.size);
    keyList.forEach((k, i) => kc.encode(k, keys, i * kc.size));
    // Array elements cannot be deleted: zero means empty (the values buffer starts zeroed).
    if (this.spec.kind === 'array') return this.writeEncoded(keys, Buffer.alloc(keyList.length * this.spec.value.size), keyList.length);
    const out = this.runBatched(keyList.length, (from, n) => this.map.deleteBatch(keys.subarray(from * kc.size, (from + n) * kc.size), n),
      (i) => {
        if (!this.map.delete(keys.subarray(i * kc.size, (i + 1) * kc.size))) throw Object.assign(new Error('absent'), { code: 'ENOENT' });
      });
    // An absent key is not a failure for a delete: it is already what we wanted.
    out.failures = out.failures.filter((f) => errorCode(f.error) !== 'ENOENT');
    return out;
  }

  /**
   * Runs `batch` over [0, count); after a batch error at element i (the kernel processed i),
   * element i is retried alone (to get its own error) and batching resumes after it.
   */
  private runBatched(count: number, batch: (from: number, n: number) => number, single: (i: number) => void): BatchOutcome {
    const out: BatchOutcome = { done: 0, failures: [] };
    const one = (i: number): void => {
      try {
        single(i);
        out.done++;
      } catch (error) {
        out.failures.push({ index: i, error: error as Error });
      }
    };
    let from = 0;
    while (from < count) {
      if (!this.batchSupported) {
        for (; from < count; from++) one(from);
        break;
      }
      try {
        out.done += batch(from, count - from);
        break;
      } catch (err) {
        const processed = processedOf(err);
        if (isBatchUnsupported(err)) {
          // This map type has no batch command: element calls from now on.
          this.batchSupported = false;
          continue;
        }
        out.done += processed;
        one(from + processed);
        from += processed + 1;
      }
    }
    return out;
  }
}

function buildTables(mapOf: (name: string) => NativeMap, cpus: number, layouts?: StructLayouts, family: TableFamily = 'IPv4'): ServiceTables {
  const specs = tableSpecs(cpus, layouts, family);
  const names = mapNamesOf(family);
  const open = <R extends TableRole>(role: R) => new NativeTable(mapOf(names[role]), specs[role]);
  return {
    frontends: open('frontends'),
    backends: open('backends'),
    ct: open('ct'),
    affinity: open('affinity'),
    sockRevnat: open('sockRevnat'),
    svcMeta: open('svcMeta'),
    counters: open('counters'),
    dropCounters: open('dropCounters'),
    vips: open('vips'),
  } as ServiceTables;
}

/**
 * Tables over the maps of a loaded object (the handles stay owned by the object); `layouts`: the
 * struct codecs following the object's BTF where it differs from the declared ones.
 */
export function tablesFromObject(obj: { map(name: string): NativeMap }, cpus: number, layouts?: StructLayouts, family: TableFamily = 'IPv4'): ServiceTables {
  return buildTables((name) => obj.map(name), cpus, layouts, family);
}

/** Tables over the maps pinned under pinDir (sluicectl with the agent down, restart tests). */
export function openPinnedTables(native: Pick<NativeAddon, 'openPinnedMap' | 'numPossibleCpus'>, pinDir: string, opts: { readOnly?: boolean; family?: TableFamily } = {}): {
  tables: ServiceTables;
  close(): void;
} {
  const opened: NativeMap[] = [];
  try {
    const tables = buildTables((name) => {
      const map = native.openPinnedMap(join(pinDir, name), opts);
      opened.push(map);
      return map;
    }, native.numPossibleCpus(), undefined, opts.family);
    return { tables, close: () => opened.forEach((m) => m.close()) };
  } catch (err) {
    opened.forEach((m) => m.close());
    throw err;
  }
}
