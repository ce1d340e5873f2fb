// The cost of removing a backend when the conntrack table is full of other flows: the writer's
// flow cleanup (src/dataplane/flow-cleanup.ts) after an apply that removed one UDP endpoint (its
// conntrack, socket rev-NAT and affinity entries go at once) and one TCP endpoint (affinity
// only), at several conntrack sizes up to the map's capacity. Beside it, what decoding every
// conntrack entry costs, which is what the cleanup did before it scanned raw bytes.
//
//   node --import ./scripts/ts-loader.mjs bench/run.ts --only flows
//
// Each size: sl_ct4 (from dist/bpf/tc.bpf.o, pinned in a test-bed run directory, nothing
// attached) is filled with N FORWARD entries of 500 services × 200 backends, a quarter UDP, plus
// the flows of the endpoint to remove. Timings are medians of ROUNDS; every UDP round checks that
// exactly the planted entries went.
import { performance } from 'node:perf_hooks';
import type { CtKey4, CtValue4 } from '../src/bpf/sluice-structs.js';
import { CT_TYPE, IPPROTO } from '../src/bpf/sluice-structs.js';
import { cleanUpFlows } from '../src/dataplane/flow-cleanup.js';
import { openPinnedTables } from '../src/dataplane/native-tables.js';
import type { ServiceTables } from '../src/dataplane/tables.js';
import { withPinnedTc } from './pinned-tc.js';
import { distribution, ms } from './stats.js';

export const FLOW_SIZES = [10_000, 100_000, 500_000];
const ROUNDS = 5;
/** The endpoint removed in each round, and the flows to it that must go. */
const GONE = { svcId: 9999, addr: '10.250.0.1', port: 5353 };
const PLANTED_FLOWS = 20;

export interface FlowCleanupRow {
  ctEntries: number;
  /** cleanUpFlows for one removed UDP endpoint (conntrack + rev-NAT + affinity scans, deletes). */
  udpRemovalMs: number;
  /** cleanUpFlows for one removed TCP endpoint (the affinity scan only). */
  tcpRemovalMs: number;
  /** sl_ct4.entries(): every entry decoded, as the cleanup did before raw scans. */
  decodeAllMs: number;
  /** Conntrack entries the UDP removal deleted per round (both directions of each planted flow). */
  deletedPerRound: number;
}

function flow(i: number): [CtKey4, CtValue4] {
  return [
    { saddr: `10.2.${(i >> 8) & 255}.${i & 255}`, daddr: `10.96.${(i >> 16) & 255}.${(i >> 8) & 127}`, sport: 1024 + (i % 60000), dport: 53, proto: i % 4 === 0 ? IPPROTO.UDP : IPPROTO.TCP },
    { created_ns: 1n, last_seen_ns: 2n, nat_addr: `10.1.${(i >> 8) & 255}.${i % 200}`, nat_port: 8053, type: CT_TYPE.FORWARD, state: 0, nat_saddr: '0.0.0.0', svc_id: 1 + (i % 500), flags: 0, nat_sport: 0 },
  ];
}

/** A UDP flow to GONE and its REVERSE twin, as sl_ct_create4 writes them. */
function plantedFlow(i: number): Array<[CtKey4, CtValue4]> {
  const client = `10.3.0.${i + 1}`;
  const base = { created_ns: 1n, last_seen_ns: 2n, state: 0, nat_saddr: '0.0.0.0', svc_id: GONE.svcId, flags: 0, nat_sport: 0 };
  return [
    [{ saddr: client, daddr: '10.96.250.1', sport: 40000 + i, dport: 53, proto: IPPROTO.UDP }, { ...base, nat_addr: GONE.addr, nat_port: GONE.port, type: CT_TYPE.FORWARD }],
    [{ saddr: GONE.addr, daddr: client, sport: GONE.port, dport: 40000 + i, proto: IPPROTO.UDP }, { ...base, nat_addr: '10.96.250.1', nat_port: 53, type: CT_TYPE.REVERSE }],
  ];
}

function measureSize(tables: ServiceTables, n: number): FlowCleanupRow {
  const all: Array<[CtKey4, CtValue4]> = [];
  for (let i = 0; i < n; i++) all.push(flow(i));
  const filled = tables.ct.setMany(all);
  if (filled.failures.length > 0) throw new Error(`flows bench: filling sl_ct4 with ${n} entries: ${filled.failures[0]?.error.message}`);
  const udp: number[] = [];
  const tcp: number[] = [];
  const decode: number[] = [];
  let deleted = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const planted = Array.from({ length: PLANTED_FLOWS }, (_, i) => plantedFlow(i)).flat();
    tables.ct.setMany(planted);
    let t0 = performance.now();
    const res = cleanUpFlows(tables, { endpoints: [{ ...GONE, proto: IPPROTO.UDP }], affinitySvcIds: new Set() });
    udp.push(performance.now() - t0);
    if (res.errors.length > 0 || res.ctDeleted !== planted.length) {
      throw new Error(`flows bench: the UDP removal deleted ${res.ctDeleted} conntrack entries (want ${planted.length}): ${res.errors.join('; ')}`);
    }
    deleted = res.ctDeleted;
    t0 = performance.now();
    cleanUpFlows(tables, { endpoints: [{ ...GONE, proto: IPPROTO.TCP }], affinitySvcIds: new Set() });
    tcp.push(performance.now() - t0);
    t0 = performance.now();
    const count = tables.ct.entries().length;
    decode.push(performance.now() - t0);
    if (count !== n) throw new Error(`flows bench: sl_ct4 holds ${count} entries, want ${n}`);
  }
  tables.ct.deleteMany(all.map(([k]) => k));
  return { ctEntries: n, udpRemovalMs: distribution(udp).p50, tcpRemovalMs: distribution(tcp).p50, decodeAllMs: distribution(decode).p50, deletedPerRound: deleted };
}

export async function measureFlowCleanup(sizes: readonly number[] = FLOW_SIZES): Promise<FlowCleanupRow[]> {
  return withPinnedTc(({ run, native, pinDir }) => {
    const pinned = openPinnedTables(native, pinDir);
    run.cleanup.add('pinned tables', () => pinned.close());
    const max = pinned.tables.ct.maxEntries;
    return sizes.map((n) => measureSize(pinned.tables, Math.min(n, max - 2 * PLANTED_FLOWS)));
  });
}

export function formatFlowCleanup(rows: readonly FlowCleanupRow[]): string {
  const head = `${'conntrack entries'.padEnd(20)}${'UDP removal'.padStart(14)}${'TCP removal'.padStart(14)}${'decode all'.padStart(14)}`;
  return [head, ...rows.map((r) => `${String(r.ctEntries).padEnd(20)}${ms(r.udpRemovalMs).padStart(14)}${ms(r.tcpRemovalMs).padStart(14)}${ms(r.decodeAllMs).padStart(14)}`)].join('\n');
}
