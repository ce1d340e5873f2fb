// Maglev selection of external flows (bpf/lib/maglev.h) on the real host.bpf.o: two "nodes" (two
// separately loaded objects with their own pinned maps) program the same service with different
// block ids and ordinals, each through the real MaglevWriter; every client tuple reaches the same
// backend on both, the one the TS builder and flow hash predict (so lib/maglev.h's hash is the
// mirror's), even though the frontend address differs (a NodePort on each node's own address). A
// flow whose conntrack entries are deleted mid-way is picked up by the same backend. The Local
// set (eTP=Local) stays random over local backends; without a table, selection is random. IPv6
// blocks: their tables share sl_maglev4, sl_maglev_hash6 matches maglevFlowHash, and a backend
// added moves only the flows the new table gives it (and Maglev's small reshuffle).
import t from 'tap';
import type { Test } from 'tap';
import { BE_F, CT_TYPE, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { backendIdentity, buildMaglevTable, maglevFlowHash } from '../../src/dataplane/maglev-table.js';
import { MaglevWriter } from '../../src/dataplane/maglev-writer.js';
import { NativeTable, tablesFromObject } from '../../src/dataplane/native-tables.js';
import { maglevTableSpec } from '../../src/dataplane/table-specs.js';
import { buildFrame, buildFrame6, checksumProblems, parseFrame6, TCP_FLAGS, TCP6_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import type { Datapath } from './harness.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';
import { addService6 } from './harness6.js';

const CLIENT = '198.51.100.7';
const NODE_A = '192.168.50.2';
const NODE_B = '192.168.50.3';
const SIZE = 1021;
const NP = 30080;
const EXT = SVC_F.EXTERNAL | (FRONTEND_KIND.NodePort << SVC_F_KIND_SHIFT);
// Local on both "nodes" so every pick is a DNAT the output shows (selection ignores the flag).
const BACKENDS = Array.from({ length: 12 }, (_, i) => ({ addr: `10.244.${i % 3}.${10 + i}`, port: 8080, flags: BE_F.LOCAL }));
const IDS = BACKENDS.map((b) => `${b.addr}:${b.port}`).sort();
const TABLE = buildMaglevTable(IDS, SIZE);

/** Programs the service on one node: its own block id and backend order, then its Maglev table. */
function program(dp: Datapath, node: string, backendId: number, order: typeof BACKENDS): MaglevWriter {
  dp.addService({ vip: node, port: NP, proto: IPPROTO.TCP, svcId: backendId + 1, backendId, cluster: order, flags: EXT });
  const tables = tablesFromObject(dp.obj, dp.addon.numPossibleCpus());
  const writer = new MaglevWriter(tables, new NativeTable(dp.obj.map('sl_maglev4'), maglevTableSpec()), SIZE);
  const r = writer.apply();
  if (r.errors.length > 0 || r.built !== 1) throw new Error(`Maglev table not written: ${JSON.stringify(r)}`);
  return writer;
}

const syn = (node: string, sport: number): FrameSpec => ({
  ip: { src: CLIENT, dst: node, id: 7, ttl: 60 },
  tcp: { sport, dport: NP, flags: TCP_FLAGS.SYN, seq: 100 },
});

/** The backend (addr:port) a new flow from CLIENT:sport to node:NP was sent to. */
function pick(t: Test, dp: Datapath, frame: FrameSpec): string {
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(frame));
  t.equal(out.retval, TC_ACT.UNSPEC);
  const ip = out.parsed.ip;
  const l4 = out.parsed.tcp;
  if (!ip || !l4) throw new Error('not a TCP/IPv4 frame');
  if (checksumProblems(out.parsed).length > 0) t.fail(`checksums: ${checksumProblems(out.parsed).join(', ')}`);
  return `${ip.dst}:${l4.dport}`;
}

const predicted = (sport: number): string => IDS[TABLE[maglevFlowHash(CLIENT, sport, IPPROTO.TCP) % SIZE] as number] as string;

t.test('two nodes pick the same backend for every client tuple: the one the TS table and hash predict', async (t) => {
  const a = await loadDatapath(t, { object: HOST_OBJECT });
  const b = await loadDatapath(t, { object: HOST_OBJECT });
  if (!a || !b) return;
  program(a, NODE_A, 30, BACKENDS);
  program(b, NODE_B, 7, [...BACKENDS].reverse());
  const seen = new Set<string>();
  let mismatches = 0;
  for (let sport = 40000; sport < 40200; sport++) {
    const onA = pick(t, a, syn(NODE_A, sport));
    const onB = pick(t, b, syn(NODE_B, sport));
    if (onA !== onB || onA !== predicted(sport)) {
      mismatches++;
      t.fail(`client port ${sport}: node A -> ${onA}, node B -> ${onB}, predicted ${predicted(sport)}`);
    }
    seen.add(onA);
  }
  t.equal(mismatches, 0, '200 flows: the same backend on both nodes, as predicted');
  t.equal(seen.size, BACKENDS.length, 'and they spread over every backend');
  // UDP hashes with its own protocol number: still the same on both nodes.
  for (const dp of [a, b]) dp.addService({ vip: dp === a ? NODE_A : NODE_B, port: 53, proto: IPPROTO.UDP, svcId: 99, backendId: dp === a ? 31 : 8, cluster: dp === a ? BACKENDS : [...BACKENDS].reverse(), flags: EXT });
  for (const dp of [a, b]) new MaglevWriter(tablesFromObject(dp.obj, dp.addon.numPossibleCpus()), new NativeTable(dp.obj.map('sl_maglev4'), maglevTableSpec()), SIZE).apply();
  for (let sport = 5000; sport < 5020; sport++) {
    const q = (node: string): FrameSpec => ({ ip: { src: CLIENT, dst: node }, udp: { sport, dport: 53 }, payload: Buffer.from('q') });
    const ra = a.run(PROG.HOST_INGRESS, buildFrame(q(NODE_A))).parsed;
    const rb = b.run(PROG.HOST_INGRESS, buildFrame(q(NODE_B))).parsed;
    const want = IDS[TABLE[maglevFlowHash(CLIENT, sport, IPPROTO.UDP) % SIZE] as number];
    t.equal(`${ra.ip?.dst}:${ra.udp?.dport}`, want, `UDP ${sport} on A`);
    t.equal(`${rb.ip?.dst}:${rb.udp?.dport}`, want, `UDP ${sport} on B`);
  }
});

t.test("a flow whose conntrack entries are deleted mid-way keeps its backend", async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  program(dp, NODE_A, 30, BACKENDS);
  const sport = 41234;
  const backend = pick(t, dp, syn(NODE_A, sport));
  t.equal(backend, predicted(sport));
  const [baddr, bport] = backend.split(':') as [string, string];
  const fwd = tupleKey(CLIENT, NODE_A, sport, NP, IPPROTO.TCP);
  t.equal(dp.ct(fwd)?.type, CT_TYPE.FORWARD);
  // Conntrack lost (LRU eviction, a flush, another ingress node): both entries gone.
  const ct = dp.obj.map('sl_ct4');
  for (const key of ct.keys()) ct.delete(key);
  t.equal(dp.ctCount(), 0);
  // The client's next data segment (no SYN) arrives: it is a new flow to the program, and lands
  // on the same backend.
  const data: FrameSpec = {
    ip: { src: CLIENT, dst: NODE_A, id: 8 },
    tcp: { sport, dport: NP, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, seq: 101, ack: 5001 },
    payload: Buffer.from('GET / HTTP/1.1\r\n\r\n'),
  };
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(data));
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.same(out.data, buildFrame({ ...data, ip: { ...data.ip, dst: baddr }, tcp: { ...data.tcp!, dport: Number(bport) } }),
    'exactly the segment, to the backend the SYN went to');
  t.equal(dp.ct(fwd)?.nat_addr, baddr, 'tracked again, with the same backend');
});

t.test('without a table selection is random; eTP=Local stays random over the local set', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  const writer = program(dp, NODE_A, 30, BACKENDS);
  t.equal(pick(t, dp, syn(NODE_A, 42000)), predicted(42000));
  // The service moves to a block without a table (as between a switch and the Maglev write).
  dp.addService({ vip: NODE_A, port: NP, proto: IPPROTO.TCP, svcId: 31, backendId: 40, cluster: BACKENDS, flags: EXT });
  const ct = dp.obj.map('sl_ct4');
  let differs = 0;
  for (let sport = 42000; sport < 42060; sport++) {
    for (const key of ct.keys()) ct.delete(key);
    if (pick(t, dp, syn(NODE_A, sport)) !== predicted(sport)) differs++;
  }
  t.ok(differs > 20, `random: ${differs} of 60 flows left the Maglev choice`);
  t.equal(writer.apply().built, 1, "the next apply writes the new block's table ...");
  for (const key of ct.keys()) ct.delete(key);
  t.equal(pick(t, dp, syn(NODE_A, 42001)), predicted(42001), '... and Maglev picks again');

  // eTP=Local: only the local set, even though the Cluster set has a table.
  const LOCAL = { addr: '10.244.9.9', port: 8080, flags: BE_F.LOCAL };
  dp.addService({ vip: NODE_A, port: NP, proto: IPPROTO.TCP, svcId: 31, backendId: 41, cluster: BACKENDS, local: [LOCAL], flags: EXT | SVC_F.EXTERNAL_LOCAL });
  t.equal(writer.apply().tables, 0, 'no table for an eTP=Local service');
  for (let sport = 43000; sport < 43010; sport++) {
    for (const key of ct.keys()) ct.delete(key);
    t.equal(pick(t, dp, syn(NODE_A, sport)), `${LOCAL.addr}:${LOCAL.port}`);
  }
});

t.test('IPv6 blocks: the table in the shared sl_maglev4 picks as the TS table and sl_maglev_hash6 predict; a backend added elsewhere moves only the flows its slots took', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  const CLIENT6 = '2001:db8:77::7';
  const NODE6 = '2001:db8:50::2';
  const b6 = (i: number) => ({ addr: `fd00:10:244:${(i % 3) + 1}::${(10 + i).toString(16)}`, port: 8080, flags: BE_F.LOCAL });
  const before = Array.from({ length: 12 }, (_, i) => b6(i));
  const after = [...before.slice(0, 6), b6(12), ...before.slice(6)].reverse(); // one more, other ordinals
  const identities = (set: typeof before) => set.map((b) => backendIdentity(b.addr, b.port)).sort();
  // An IPv4 service beside it: both families' tables in the one map, by their distinct block ids.
  dp.addService({ vip: NODE_A, port: NP, proto: IPPROTO.TCP, svcId: 1, backendId: 30, cluster: BACKENDS, flags: EXT });
  addService6(dp, { vip: NODE6, port: NP, proto: IPPROTO.TCP, svcId: 2, backendId: 31, cluster: before, flags: EXT, clusterIp: false });
  const cpus = dp.addon.numPossibleCpus();
  const writer = new MaglevWriter(tablesFromObject(dp.obj, cpus), new NativeTable(dp.obj.map('sl_maglev4'), maglevTableSpec()), SIZE, tablesFromObject(dp.obj, cpus, undefined, 'IPv6'));
  t.match(writer.apply(), { built: 2, tables: 2, errors: [] }, 'a table for the IPv4 and the IPv6 block');

  const pick6 = (sport: number): string => {
    const out = dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT6, dst: NODE6, tcp: { sport, dport: NP, flags: TCP6_FLAGS.SYN } }));
    const p = parseFrame6(out.data);
    if (out.retval !== TC_ACT.UNSPEC || !p.checksumOk) t.fail(`client port ${sport}: verdict ${out.retval}, checksum ${p.checksumOk}`);
    return backendIdentity(p.dst, p.dport);
  };
  const predict = (set: typeof before) => {
    const ids = identities(set);
    const table = buildMaglevTable(ids, SIZE);
    return (sport: number) => ids[table[maglevFlowHash(CLIENT6, sport, IPPROTO.TCP) % SIZE] as number] as string;
  };
  const clearCt = () => {
    const ct = dp.obj.map('sl_ct6');
    for (const key of ct.keys()) ct.delete(key);
  };
  const SPORTS = Array.from({ length: 200 }, (_, i) => 40000 + i);
  const wantBefore = predict(before);
  const first = new Map(SPORTS.map((s) => [s, pick6(s)]));
  t.same(SPORTS.filter((s) => first.get(s) !== wantBefore(s)), [], '200 IPv6 flows: each on the backend the TS table and hash predict');
  t.equal(new Set(first.values()).size, before.length, 'spread over every backend');
  t.equal(pick(t, dp, syn(NODE_A, 40000)), predicted(40000), 'the IPv4 service still picks by its own table');

  // A backend added on another node: a new block, the frontend switched to it, the writer's next apply.
  addService6(dp, { vip: NODE6, port: NP, proto: IPPROTO.TCP, svcId: 2, backendId: 32, cluster: after, flags: EXT, clusterIp: false });
  t.match(writer.apply(), { built: 1, deleted: 1, tables: 2, errors: [] }, 'the new block has a table, the old one lost its');
  clearCt();
  const wantAfter = predict(after);
  const second = new Map(SPORTS.map((s) => [s, pick6(s)]));
  t.same(SPORTS.filter((s) => second.get(s) !== wantAfter(s)), [], 'after the change: each flow as the new table predicts');
  const added = backendIdentity(b6(12).addr, b6(12).port);
  const moved = SPORTS.filter((s) => second.get(s) !== first.get(s));
  t.same(moved, SPORTS.filter((s) => wantAfter(s) !== wantBefore(s)), 'the flows that moved are those whose slot changed owner between the TS tables');
  t.ok(moved.length < SPORTS.length / 4, `only ${moved.length} of 200 flows moved`);
  t.ok(moved.some((s) => second.get(s) === added), 'the added backend takes flows');
});
