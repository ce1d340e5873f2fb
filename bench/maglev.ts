// Maglev tables for external traffic (src/dataplane/maglev-table.ts, bpf/lib/maglev.h):
//
//   npm run bench -- --only maglev
//
// For 100 and 1,000 backends at the default table size (16,381) and the largest (65,521):
//  - build time of one table (median of ROUNDS);
//  - flows moved when one backend is removed and when one is added: FLOWS client tuples hashed
//    with the datapath's flow hash (maglevFlowHash, the mirror of lib/maglev.h), their backend
//    looked up before and after, against the minimum (the flows of the removed backend, or those
//    the added one takes), and the slots that changed owner;
//  - what a table costs in sl_maglev4: TABLES tables written to the real map (dist/bpf/tc.bpf.o
//    pinned in a test-bed run directory, nothing attached), the kernel's memlock figure for the
//    map (bpftool) before and after, per table; and the time to write one.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { IPPROTO, MAGLEV } from '../src/bpf/sluice-structs.js';
import { buildMaglevTable, maglevDisruption, maglevFlowHash, slotCounts } from '../src/dataplane/maglev-table.js';
import { maglevChunks } from '../src/dataplane/maglev-writer.js';
import { NativeTable } from '../src/dataplane/native-tables.js';
import { maglevTableSpec } from '../src/dataplane/table-specs.js';
import { withPinnedTc } from './pinned-tc.js';
import { distribution, ms } from './stats.js';

const BACKENDS = [100, 1000];
const SIZES = [MAGLEV.SIZE_DEFAULT, MAGLEV.SIZE_MAX];
const ROUNDS = 5;
const FLOWS = 200_000;
const TABLES = 100;

export interface MaglevRow {
  backends: number;
  size: number;
  buildMs: number;
  /** Fewest and most slots a backend owns. */
  slotsMin: number;
  slotsMax: number;
  remove: Moved;
  add: Moved;
}

interface Moved {
  /** Of FLOWS client tuples: how many changed backend, and the least any method moves. */
  flowsMoved: number;
  flowsMinimum: number;
  /** Table slots that changed owner, and the minimum. */
  slotsMoved: number;
  slotsMinimum: number;
}

export interface MaglevMapCost {
  size: number;
  chunksPerTable: number;
  /** memlock the kernel reports for sl_maglev4, per table. */
  bytesPerTable: number;
  writeMs: number;
}

const identities = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}:8080`).sort();

function flowsMoved(before: { table: Uint16Array; identities: readonly string[] }, after: { table: Uint16Array; identities: readonly string[] }): Moved {
  const size = before.table.length;
  const kept = new Set(after.identities);
  const old = new Set(before.identities);
  let moved = 0;
  let minimum = 0;
  for (let i = 0; i < FLOWS; i++) {
    const client = `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
    const h = maglevFlowHash(client, 1024 + (i % 50000), IPPROTO.TCP) % size;
    const a = before.identities[before.table[h] as number] as string;
    const b = after.identities[after.table[h] as number] as string;
    if (a !== b) moved++;
    if (!kept.has(a) || !old.has(b)) minimum++;
  }
  const slots = maglevDisruption(before, after);
  return { flowsMoved: moved, flowsMinimum: minimum, slotsMoved: slots.moved, slotsMinimum: slots.minimum };
}

export function measureMaglevTables(): MaglevRow[] {
  const rows: MaglevRow[] = [];
  for (const size of SIZES) {
    for (const n of BACKENDS) {
      const ids = identities(n);
      const times: number[] = [];
      let table: Uint16Array = new Uint16Array(0);
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        table = buildMaglevTable(ids, size);
        times.push(performance.now() - t0);
      }
      const counts = slotCounts(table, n);
      const before = { table, identities: ids };
      const removedIds = ids.filter((_, i) => i !== n >> 1);
      const addedIds = [...ids, '192.0.2.250:8080'].sort();
      rows.push({
        backends: n, size, buildMs: distribution(times).p50, slotsMin: Math.min(...counts), slotsMax: Math.max(...counts),
        remove: flowsMoved(before, { table: buildMaglevTable(removedIds, size), identities: removedIds }),
        add: flowsMoved(before, { table: buildMaglevTable(addedIds, size), identities: addedIds }),
      });
    }
  }
  return rows;
}

function memlock(path: string): number {
  const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', path], { encoding: 'utf8' })) as { bytes_memlock?: number };
  if (typeof out.bytes_memlock !== 'number') throw new Error(`bpftool reports no bytes_memlock for ${path}`);
  return out.bytes_memlock;
}

export async function measureMaglevMap(): Promise<MaglevMapCost[]> {
  return withPinnedTc(({ pinDir, obj }) => {
    const map = new NativeTable(obj.map('sl_maglev4'), maglevTableSpec());
    const path = join(pinDir, 'sl_maglev4');
    const out: MaglevMapCost[] = [];
    for (const size of SIZES) {
      const empty = memlock(path);
      const chunks = maglevChunks(size);
      const table = buildMaglevTable(identities(100), size);
      const times: number[] = [];
      for (let id = 1; id <= TABLES; id++) {
        const entries = Array.from({ length: chunks }, (_, chunk) => {
          const slot = new Uint16Array(MAGLEV.CHUNK);
          slot.set(table.subarray(chunk * MAGLEV.CHUNK, Math.min(size, (chunk + 1) * MAGLEV.CHUNK)));
          return [{ backend_id: id, chunk }, { size, slot }] as const;
        });
        const t0 = performance.now();
        const r = map.setMany(entries);
        times.push(performance.now() - t0);
        if (r.failures.length > 0) throw new Error(`maglev bench: writing table ${id}: ${r.failures[0]?.error.message}`);
      }
      const full = memlock(path);
      out.push({ size, chunksPerTable: chunks, bytesPerTable: (full - empty) / TABLES, writeMs: distribution(times).p50 });
      for (let id = 1; id <= TABLES; id++) map.deleteMany(Array.from({ length: chunks }, (_, chunk) => ({ backend_id: id, chunk })));
    }
    return out;
  });
}

const pct = (a: number, b: number): string => `${((a / b) * 100).toFixed(2)}%`;

export function formatMaglev(rows: readonly MaglevRow[], map: readonly MaglevMapCost[]): string {
  const lines = [
    `${'backends'.padStart(8)} ${'size'.padStart(6)} ${'build'.padStart(9)} ${'slots/be'.padStart(9)}   ${'remove one: flows moved (min)'.padEnd(30)} ${'add one: flows moved (min)'.padEnd(30)}`,
    ...rows.map((r) => [
      String(r.backends).padStart(8), String(r.size).padStart(6), ms(r.buildMs).padStart(9), `${r.slotsMin}-${r.slotsMax}`.padStart(9), '  ',
      `${pct(r.remove.flowsMoved, FLOWS)} (${pct(r.remove.flowsMinimum, FLOWS)})`.padEnd(30),
      `${pct(r.add.flowsMoved, FLOWS)} (${pct(r.add.flowsMinimum, FLOWS)})`.padEnd(30),
    ].join(' ')),
    `(${FLOWS} client tuples through the datapath's flow hash; min = the removed backend's flows / the added one's)`,
    '',
    `${'size'.padStart(6)} ${'chunks'.padStart(7)} ${'kernel memory/table'.padStart(20)} ${'write/table'.padStart(12)}`,
    ...map.map((m) => [String(m.size).padStart(6), String(m.chunksPerTable).padStart(7), `${(m.bytesPerTable / 1024).toFixed(1)} KiB`.padStart(20), ms(m.writeMs, 2).padStart(12)].join(' ')),
  ];
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = measureMaglevTables();
  console.log(formatMaglev(rows, await measureMaglevMap()));
}
