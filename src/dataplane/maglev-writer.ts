// Writes the Maglev tables of external services to sl_maglev4 (bpf/lib/maglev.h), after each
// apply of the service tables. Which blocks need one is read from the maps themselves: every
// backend block a frontend flagged SL_SVC_F_EXTERNAL (and not eTP=Local) points at, over its
// Cluster set, in both families' maps. A block never changes under its id, so its table is built
// once and deleted when no frontend points at the block any more.
//
// IPv4 and IPv6 blocks share the map: the writers hand out backend_ids from one space (writer.ts),
// so an id names one family's block. Should both families' frontends ever point at one id (maps
// left inconsistent by something else), that id gets no table (random selection) and an error.
//
// Between a frontend's switch to a new block (the writer's commit) and this write, the block has
// no table and new external flows are balanced at random (lib/maglev.h falls back): one apply
// long, and ingress nodes apply a change at different moments anyway.
import type { MaglevChunk, MaglevKey } from '../bpf/sluice-structs.js';
import { MAGLEV, maglevChunk, serviceValue, SVC_F } from '../bpf/sluice-structs.js';
import { backendIdentity, buildMaglevTable } from './maglev-table.js';
import type { ServiceTables, Table } from './tables.js';
import { errorCode } from './tables.js';
import { mapSizeFlagOf } from './map-sizes.js';

export interface MaglevReport {
  /** Tables in the map after this apply. */
  tables: number;
  /** Tables built and written by this apply, and tables deleted. */
  built: number;
  deleted: number;
  /** Blocks left to random selection, with why (more backends than slots, ...). */
  notes: string[];
  errors: string[];
}

/** A block that gets a table: its Cluster-set size and its family's backends table. */
interface WantedBlock {
  count: number;
  backends: ServiceTables['backends'];
}

/** What a table costs in the map: chunks, and bytes of chunk values. */
export function maglevChunks(size: number): number {
  return Math.ceil(size / MAGLEV.CHUNK);
}

/** The offset of sl_service_value.flags: frontends are filtered on it before decoding. */
const FLAGS_AT = (serviceValue.members.find((m) => m.name === 'flags') as { offset: number }).offset;

export class MaglevWriter {
  /** backend_id → chunks of its table in the map. */
  private readonly present = new Map<number, number>();
  /** Blocks whose table is in the map but not known to be current (a previous agent's, a failed delete's). */
  private readonly inherited = new Set<number>();
  /** Blocks left to random selection (too many backends): not looked at again while wanted. */
  private readonly random = new Set<number>();
  /** True until an apply ended without errors: the next one must look at the maps again. */
  private dirty = true;

  constructor(
    private readonly tables: Pick<ServiceTables, 'frontends' | 'backends'>,
    private readonly map: Table<MaglevKey, MaglevChunk>,
    /** Slots per table: a prime (maglevSizeProblem). */
    readonly size: number,
    /** The IPv6 service tables, when the objects have them: their blocks get tables too. */
    private readonly tables6?: Pick<ServiceTables, 'frontends' | 'backends'>,
  ) {
    // Tables a previous agent left: rebuilt (the size may differ) or deleted by the first apply.
    for (const [k] of map.entries()) {
      this.present.set(k.backend_id, Math.max(this.present.get(k.backend_id) ?? 0, k.chunk + 1));
      this.inherited.add(k.backend_id);
    }
  }

  /**
   * backend_id → Cluster-set size and the tables holding the block, of every block external flows
   * balance with Maglev. `clashes`: ids both families' frontends point at (no table, an error).
   */
  wanted(clashes: number[] = []): Map<number, WantedBlock> {
    const want = new Map<number, WantedBlock>();
    const externalCluster = (v: Buffer, at: number): boolean => {
      const flags = v.readUInt32LE(at + FLAGS_AT);
      return (flags & SVC_F.EXTERNAL) !== 0 && (flags & SVC_F.EXTERNAL_LOCAL) === 0;
    };
    const families = this.tables6 ? [this.tables, this.tables6] : [this.tables];
    const clashed = new Set<number>();
    for (const tables of families) {
      for (const [, svc] of tables.frontends.filterRaw((_k, _ka, v, va) => externalCluster(v, va))) {
        if (svc.count === 0 || svc.backend_id === 0) continue;
        const seen = want.get(svc.backend_id);
        if (seen && seen.backends !== tables.backends) clashed.add(svc.backend_id);
        else want.set(svc.backend_id, { count: svc.count, backends: tables.backends });
      }
    }
    for (const id of clashed) {
      want.delete(id);
      clashes.push(id);
    }
    return want;
  }

  /**
   * Brings the tables in line with the frontends. `changed: false` (the service apply changed no
   * service port) skips the frontends read unless a previous apply left something to retry.
   */
  apply(opts: { changed?: boolean } = {}): MaglevReport {
    const report: MaglevReport = { tables: this.present.size, built: 0, deleted: 0, notes: [], errors: [] };
    if (opts.changed === false && !this.dirty) return report;
    const done = this.reconcile(report);
    this.dirty = report.errors.length > 0;
    return done;
  }

  private reconcile(report: MaglevReport): MaglevReport {
    let want: Map<number, WantedBlock>;
    const clashes: number[] = [];
    try {
      want = this.wanted(clashes);
    } catch (err) {
      report.errors.push(`Maglev: reading the frontends failed: ${(err as Error).message}`);
      report.tables = this.present.size;
      return report;
    }
    for (const id of clashes) report.errors.push(`Maglev: backend block ${id} is pointed at by IPv4 and IPv6 frontends: no table (random selection); retried next apply`);
    for (const [backendId, block] of want) {
      if ((this.present.has(backendId) && !this.inherited.has(backendId)) || this.random.has(backendId)) continue;
      const problem = this.write(backendId, block);
      if (problem === undefined) report.built++;
      else if (problem.error) report.errors.push(problem.message);
      else {
        this.random.add(backendId);
        report.notes.push(problem.message);
      }
    }
    for (const backendId of this.random) if (!want.has(backendId)) this.random.delete(backendId);
    for (const [backendId, chunks] of [...this.present]) {
      if (want.has(backendId)) continue;
      const keys = Array.from({ length: chunks }, (_, chunk) => ({ backend_id: backendId, chunk }));
      const out = this.map.deleteMany(keys);
      if (out.failures.length > 0) {
        report.errors.push(`Maglev: deleting the table of backend block ${backendId} failed: ${out.failures[0]?.error.message}; retried next apply`);
        // Should the id be reused for another set before the retry, the table is rebuilt, not kept.
        this.inherited.add(backendId);
        continue;
      }
      this.present.delete(backendId);
      this.inherited.delete(backendId);
      report.deleted++;
    }
    report.tables = this.present.size;
    return report;
  }

  /** Builds and writes the table of one block; a problem when it could not (random selection). */
  private write(backendId: number, { count, backends }: WantedBlock): { error: boolean; message: string } | undefined {
    const ordinals = new Map<string, number>();
    for (let ordinal = 0; ordinal < count; ordinal++) {
      const be = backends.get({ backend_id: backendId, ordinal });
      if (!be) return { error: true, message: `Maglev: backend block ${backendId} has no slot ${ordinal} of ${count}; retried next apply` };
      const id = backendIdentity(be.addr, be.port);
      if (!ordinals.has(id)) ordinals.set(id, ordinal);
    }
    if (ordinals.size > this.size || count > 0xffff) {
      this.drop(backendId);
      return { error: false, message: `Maglev: backend block ${backendId} has ${ordinals.size} backends, more than the table's ${this.size} slots: random selection (raise --maglev-table-size)` };
    }
    const identities = [...ordinals.keys()].sort();
    const table = buildMaglevTable(identities, this.size);
    const chunks = maglevChunks(this.size);
    const entries: Array<readonly [MaglevKey, MaglevChunk]> = [];
    for (let chunk = 0; chunk < chunks; chunk++) {
      const slot = new Uint16Array(MAGLEV.CHUNK);
      const end = Math.min(this.size, (chunk + 1) * MAGLEV.CHUNK);
      for (let s = chunk * MAGLEV.CHUNK; s < end; s++) slot[s - chunk * MAGLEV.CHUNK] = ordinals.get(identities[table[s] as number] as string) as number;
      entries.push([{ backend_id: backendId, chunk }, { size: this.size, slot }]);
    }
    const out = this.map.setMany(entries);
    if (out.failures.length > 0) {
      this.drop(backendId);
      const err = out.failures[0]?.error;
      const full = errorCode(err) === 'E2BIG' || errorCode(err) === 'ENOSPC' ? ` (${this.map.name} is full: capacity ${this.map.maxEntries} chunks; ${mapSizeFlagOf(this.map.name) ?? 'not sizable'})` : '';
      return { error: true, message: `Maglev: writing the table of backend block ${backendId} failed: ${err?.message}${full}; random selection, retried next apply` };
    }
    // Chunks a previous agent's larger table left past ours.
    const had = this.present.get(backendId) ?? 0;
    if (had > chunks) this.map.deleteMany(Array.from({ length: had - chunks }, (_, i) => ({ backend_id: backendId, chunk: chunks + i })));
    this.present.set(backendId, chunks);
    this.inherited.delete(backendId);
    return undefined;
  }

  /** Removes what a block's table has in the map (a partial write must not be read as a table). */
  private drop(backendId: number): void {
    const had = Math.max(this.present.get(backendId) ?? 0, maglevChunks(this.size));
    this.map.deleteMany(Array.from({ length: had }, (_, chunk) => ({ backend_id: backendId, chunk })));
    this.present.delete(backendId);
    this.inherited.delete(backendId);
  }

  /** For status: how many tables, of what size, and the bytes their chunk values take. */
  summary(): { tables: number; size: number; chunksPerTable: number; valueBytes: number } {
    const chunksPerTable = maglevChunks(this.size);
    return { tables: this.present.size, size: this.size, chunksPerTable, valueBytes: this.present.size * chunksPerTable * maglevChunk.size };
  }
}
