// In-memory ServiceTables for unit tests. Elements are stored as the bytes the kernel would hold
// (encoded with the same codecs), capacities are enforced like the kernel's (a full hash map
// refuses, an LRU map evicts, an array refuses indexes past its size), and every mutation is
// appended to an operation log that tests replay to check what a BPF program could have seen
// between any two writes. Failures are injected per map/operation/element.
import type { ServiceTables, Table, BatchOutcome, RawMatch, TableRole } from './tables.js';
import type { SvcCounters, SvcMeta } from '../bpf/sluice-structs.js';
import type { TableFamily } from './tables.js';
import { mapError, TABLE_ROLES } from './tables.js';
import type { TableKind, TableSpec } from './table-specs.js';
import { isZero, tableSpecs } from './table-specs.js';

export type TableOpKind = 'set' | 'delete';

/** One mutation as a program could observe it. Batches log each element with a shared batch id. */
export interface TableOp {
  seq: number;
  map: string;
  op: TableOpKind;
  key: unknown;
  /** The decoded value written (set only). */
  value?: unknown;
  /** Id of the setMany/deleteMany call this element belonged to; null for a single-element call. */
  batch: number | null;
}

/** Makes matching operations fail with an errno name, `times` times (default: forever). */
export interface FailureRule {
  map?: string;
  op?: TableOpKind;
  when?: (key: unknown, value: unknown) => boolean;
  code: string;
  times?: number;
}

/** Shared by the tables of one MemoryServiceTables: the log, call counts and failure rules. */
class Journal {
  ops: TableOp[] = [];
  /** `${map}.${method}` → number of calls (a batch call counts once). */
  calls = new Map<string, number>();
  rules: FailureRule[] = [];
  private batchSeq = 0;

  countCall(map: string, method: string): void {
    const k = `${map}.${method}`;
    this.calls.set(k, (this.calls.get(k) ?? 0) + 1);
  }

  nextBatch(): number {
    return ++this.batchSeq;
  }

  /** The errno name to fail this operation with, or undefined. Consumes one use of the rule. */
  failure(map: string, op: TableOpKind, key: unknown, value: unknown): string | undefined {
    for (const rule of this.rules) {
      if ((rule.times ?? Infinity) <= 0) continue;
      if (rule.map !== undefined && rule.map !== map) continue;
      if (rule.op !== undefined && rule.op !== op) continue;
      if (rule.when && !rule.when(key, value)) continue;
      if (rule.times !== undefined) rule.times--;
      return rule.code;
    }
    return undefined;
  }

  record(map: string, op: TableOpKind, key: unknown, value: unknown, batch: number | null): void {
    this.ops.push({ seq: this.ops.length, map, op, key, ...(op === 'set' ? { value } : {}), batch });
  }
}

export class MemoryTable<K, V> implements Table<K, V> {
  readonly name: string;
  private readonly kind: TableKind;
  /** Encoded key (latin1) → encoded value; insertion order doubles as LRU age. */
  private readonly store = new Map<string, Buffer>();

  constructor(
    private readonly spec: TableSpec<K, V>,
    readonly maxEntries: number,
    private readonly journal: Journal,
  ) {
    this.name = spec.name;
    this.kind = spec.kind;
  }

  private id(key: K): string {
    const bytes = this.spec.key.encode(key);
    if (this.kind === 'array') {
      const index = bytes.readUInt32LE(0);
      if (index >= this.maxEntries) throw mapError(this.name, 'bpf_map_update_elem', 'E2BIG', `index ${index} >= ${this.maxEntries}`);
    }
    return bytes.toString('latin1');
  }

  get(key: K): V | undefined {
    this.journal.countCall(this.name, 'get');
    return this.read(key);
  }

  private read(key: K): V | undefined {
    const bytes = this.store.get(this.id(key));
    return bytes ? this.spec.value.decode(bytes) : undefined;
  }

  set(key: K, value: V): void {
    this.journal.countCall(this.name, 'set');
    this.write(key, value, null);
  }

  private write(key: K, value: V, batch: number | null): void {
    const id = this.id(key);
    const bytes = this.spec.value.encode(value);
    const code = this.journal.failure(this.name, 'set', key, value);
    if (code) throw mapError(this.name, 'bpf_map_update_elem', code, 'injected');
    if (this.kind === 'array' && isZero(bytes, 0, bytes.length)) {
      this.store.delete(id);
    } else {
      if (!this.store.has(id) && this.store.size >= this.maxEntries) {
        if (this.kind !== 'lru') throw mapError(this.name, 'bpf_map_update_elem', 'E2BIG', `map full at ${this.maxEntries}`);
        const oldest = this.store.keys().next().value;
        if (oldest !== undefined) this.store.delete(oldest);
      }
      this.store.delete(id); // re-insert: most recently used last
      this.store.set(id, bytes);
    }
    this.journal.record(this.name, 'set', key, value, batch);
  }

  delete(key: K): boolean {
    this.journal.countCall(this.name, 'delete');
    return this.remove(key, null);
  }

  private remove(key: K, batch: number | null): boolean {
    const id = this.id(key);
    const code = this.journal.failure(this.name, 'delete', key, undefined);
    if (code) throw mapError(this.name, 'bpf_map_delete_elem', code, 'injected');
    const existed = this.store.delete(id);
    if (existed || this.kind === 'array') this.journal.record(this.name, 'delete', key, undefined, batch);
    return existed;
  }

  entries(): Array<[K, V]> {
    this.journal.countCall(this.name, 'entries');
    return [...this.store].map(([id, bytes]) => [this.spec.key.decode(Buffer.from(id, 'latin1')), this.spec.value.decode(bytes)]);
  }

  filterRaw(match: RawMatch): Array<[K, V]> {
    this.journal.countCall(this.name, 'filterRaw');
    const out: Array<[K, V]> = [];
    for (const [id, bytes] of this.store) {
      const key = Buffer.from(id, 'latin1');
      if (match(key, 0, bytes, 0)) out.push([this.spec.key.decode(key), this.spec.value.decode(bytes)]);
    }
    return out;
  }

  setMany(entries: ReadonlyArray<readonly [K, V]>): BatchOutcome {
    this.journal.countCall(this.name, 'setMany');
    const batch = this.journal.nextBatch();
    const out: BatchOutcome = { done: 0, failures: [] };
    entries.forEach(([key, value], index) => {
      try {
        this.write(key, value, batch);
        out.done++;
      } catch (error) {
        out.failures.push({ index, error: error as Error });
      }
    });
    return out;
  }

  deleteMany(keys: readonly K[]): BatchOutcome {
    this.journal.countCall(this.name, 'deleteMany');
    const batch = this.journal.nextBatch();
    const out: BatchOutcome = { done: 0, failures: [] };
    keys.forEach((key, index) => {
      try {
        if (this.remove(key, batch)) out.done++;
      } catch (error) {
        out.failures.push({ index, error: error as Error });
      }
    });
    return out;
  }

  /** Number of present elements (tests). */
  get size(): number {
    return this.store.size;
  }
}

type MemoryTablesOf<T> = { [R in keyof T]: T[R] extends Table<infer K, infer V> ? MemoryTable<K, V> : never };

export interface MemoryTablesOptions {
  /** Possible CPUs for the per-CPU tables (default 2). */
  cpus?: number;
  maxEntries?: Partial<Record<TableRole, number>>;
  /** The IPv6 twins' names and layouts (default IPv4). */
  family?: TableFamily;
  /** Tables of the other family whose shared maps (names, counters, drop counters) these use too. */
  sharing?: MemoryServiceTables;
}

/** ServiceTables in memory, with the log and failure injection of the whole set. */
export class MemoryServiceTables implements MemoryTablesOf<ServiceTables> {
  private readonly journal = new Journal();
  readonly cpus: number;
  readonly frontends;
  readonly backends;
  readonly ct;
  readonly affinity;
  readonly sockRevnat;
  readonly svcMeta: MemoryTable<number, SvcMeta>;
  readonly counters: MemoryTable<number, SvcCounters[]>;
  readonly dropCounters: MemoryTable<number, bigint[]>;
  readonly vips;

  constructor(opts: MemoryTablesOptions = {}) {
    this.cpus = opts.cpus ?? 2;
    const specs = tableSpecs(this.cpus, undefined, opts.family);
    const max = (role: TableRole): number => opts.maxEntries?.[role] ?? specs[role].defaultMaxEntries;
    this.frontends = new MemoryTable(specs.frontends, max('frontends'), this.journal);
    this.backends = new MemoryTable(specs.backends, max('backends'), this.journal);
    this.ct = new MemoryTable(specs.ct, max('ct'), this.journal);
    this.affinity = new MemoryTable(specs.affinity, max('affinity'), this.journal);
    this.sockRevnat = new MemoryTable(specs.sockRevnat, max('sockRevnat'), this.journal);
    const shared = opts.sharing;
    this.svcMeta = shared?.svcMeta ?? new MemoryTable(specs.svcMeta, max('svcMeta'), this.journal);
    this.counters = shared?.counters ?? new MemoryTable(specs.counters, max('counters'), this.journal);
    this.dropCounters = shared?.dropCounters ?? new MemoryTable(specs.dropCounters, max('dropCounters'), this.journal);
    this.vips = new MemoryTable(specs.vips, max('vips'), this.journal);
  }

  /** Every successful mutation so far, in order. */
  get log(): readonly TableOp[] {
    return this.journal.ops;
  }

  /** Calls per `${map}.${method}` (a batch call counts once). */
  get calls(): ReadonlyMap<string, number> {
    return this.journal.calls;
  }

  /** Forgets the log and the call counts (e.g. after pre-filling the maps). */
  resetLog(): void {
    this.journal.ops = [];
    this.journal.calls = new Map();
  }

  /** Adds a failure rule; returns a function that removes it. */
  failWhen(rule: FailureRule): () => void {
    this.journal.rules.push(rule);
    return () => {
      this.journal.rules = this.journal.rules.filter((r) => r !== rule);
    };
  }

  /** Total present elements per map (tests). */
  sizes(): Record<TableRole, number> {
    return Object.fromEntries(TABLE_ROLES.map((r) => [r, this[r].size])) as Record<TableRole, number>;
  }
}
