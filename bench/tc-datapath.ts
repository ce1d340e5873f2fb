// ns/packet of the TC service programs (BPF_PROG_TEST_RUN with repeat) at 1, 1k, 10k and 100k
// services, beside a no-op TC program: the cost of a hash-map datapath must stay flat as the
// number of services grows (kube-proxy's iptables walk grows linearly).
//
//   node --import ./scripts/ts-loader.mjs bench/tc-datapath.ts [repeat]
//
// BPF_PROG_TEST_RUN runs a TC program `repeat` times on the SAME skb, so each run sees the packet
// the previous run left. A translated packet is no longer a service packet, so the measured
// service's backend is a "mirror" frontend whose backend is the measured VIP again: every run is
// a service packet (A -> B, then B -> A, ...). Scenarios:
//  - miss:     a packet to no service (what most pod traffic costs);
//  - ct-hit:   a packet of a tracked flow (conntrack lookup + DNAT);
//  - new-flow: conntrack timeouts set to 0 (rodata), so every run selects a backend and writes
//              both conntrack entries. This replaces an expired flow, which also looks up the
//              stale entry and its twin: a slight overstatement of a first packet's cost;
//  - reply:    reverse NAT in sl_tc_to_pod, with two REVERSE entries that map onto each other.
// Results: a table on stdout and .bench-results/tc-datapath.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { fromPackageRoot, loadNative, type NativeAddon, type NativeObject, type NativeProgram } from '../src/bpf/native.js';
import { verifyCodecAgainstBtf, decodePerCpu } from '../src/bpf/codec.js';
import {
  allStructCodecs, backendKey, backendValue4, ctKey4, ctValue4, CT_TYPE, frontendKey4, IPPROTO, serviceValue,
  svcCounters, u32Key,
} from '../src/bpf/sluice-structs.js';
import { buildFrame, parseFrame, TCP_FLAGS } from '../src/packet/index.js';
import { createRunPinDir, removePinDir } from '../src/testbed/bpffs.js';
import { Cleanup } from '../src/testbed/cleanup.js';
import { newRunPrefix } from '../src/testbed/names.js';

export const SERVICE_COUNTS = [1, 1_000, 10_000, 100_000];
const BACKENDS_PER_SERVICE = 2;
const ROUNDS = 5;
const CLIENT = '10.244.255.10';
const VIP_A = '10.96.0.0'; // service #0, the measured one
const VIP_B = '10.95.255.254'; // its mirror frontend
const OTHER = '10.244.254.1';

export interface TcBenchRow {
  services: number;
  scenario: 'noop' | 'miss' | 'ct-hit' | 'new-flow' | 'reply';
  /** Median over rounds of the kernel's average ns per run. */
  nsPerPacket: number;
  /** nsPerPacket minus the no-op program's. */
  overNoopNs: number;
}

const vipOf = (i: number) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const backendOf = (j: number) => `10.${128 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Frontends for `services` services (#0 -> the mirror VIP_B, which points back at VIP_A). */
function fill(obj: NativeObject, services: number): void {
  const fk = Buffer.alloc(frontendKey4.size * (services + 1));
  const fv = Buffer.alloc(serviceValue.size * (services + 1));
  const bk = Buffer.alloc(backendKey.size * (services * BACKENDS_PER_SERVICE + 1));
  const bv = Buffer.alloc(backendValue4.size * (services * BACKENDS_PER_SERVICE + 1));
  let b = 0;
  const addBackend = (backendId: number, ordinal: number, addr: string, port: number) => {
    backendKey.encode({ backend_id: backendId, ordinal }, bk, b * backendKey.size);
    backendValue4.encode({ addr, port, flags: 0, node_addr: '0.0.0.0' }, bv, b * backendValue4.size);
    b++;
  };
  for (let i = 0; i < services; i++) {
    const id = i + 1;
    frontendKey4.encode({ addr: vipOf(i), port: 80, proto: IPPROTO.TCP, scope: 0 }, fk, i * frontendKey4.size);
    const count = i === 0 ? 1 : BACKENDS_PER_SERVICE;
    serviceValue.encode({ svc_id: id, backend_id: id, count, local_count: 0, flags: 0, affinity_timeout_s: 0 }, fv,
      i * serviceValue.size);
    if (i === 0) addBackend(id, 0, VIP_B, 80);
    else for (let o = 0; o < count; o++) addBackend(id, o, backendOf(i * BACKENDS_PER_SERVICE + o), 8080);
  }
  const mirrorId = services + 1;
  frontendKey4.encode({ addr: VIP_B, port: 80, proto: IPPROTO.TCP, scope: 0 }, fk, services * frontendKey4.size);
  serviceValue.encode({ svc_id: mirrorId, backend_id: mirrorId, count: 1, local_count: 0, flags: 0, affinity_timeout_s: 0 },
    fv, services * serviceValue.size);
  addBackend(mirrorId, 0, VIP_A, 80);
  obj.map('sl_backends4').updateBatch(bk.subarray(0, b * backendKey.size), bv.subarray(0, b * backendValue4.size), b);
  obj.map('sl_frontends4').updateBatch(fk, fv, services + 1);
}

/** Two REVERSE entries translating VIP_A -> VIP_B and back, for the reply scenario. */
function mirrorReverseEntries(obj: NativeObject): void {
  const ct = obj.map('sl_ct4');
  for (const [from, to] of [[VIP_A, VIP_B], [VIP_B, VIP_A]] as const) {
    ct.update(ctKey4.encode({ saddr: from, daddr: CLIENT, sport: 80, dport: 40000, proto: IPPROTO.TCP }), ctValue4.encode({
      // last_seen far in the future of boot time: never expires during the run.
      created_ns: 0n, last_seen_ns: 1n << 62n, nat_addr: to, nat_port: 80, type: CT_TYPE.REVERSE, state: 2,
      nat_saddr: '0.0.0.0', svc_id: 1, flags: 0, nat_sport: 0,
    }));
  }
}

function measure(prog: NativeProgram, frame: Buffer, repeat: number): number {
  prog.testRun({ data: frame, repeat: Math.min(repeat, 1000) }); // warm-up
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(prog.testRun({ data: frame, repeat }).durationNs);
  return median(rounds);
}

async function withObject<T>(
  addon: NativeAddon, path: string, services: number, rodata: Record<string, bigint>, fn: (obj: NativeObject) => T,
): Promise<T> {
  const cleanup = new Cleanup();
  const uninstall = cleanup.handleProcessEvents();
  try {
    const pinDir = await createRunPinDir(newRunPrefix());
    cleanup.add(`pin dir ${pinDir}`, () => removePinDir(pinDir));
    const obj = addon.openObject(path, { pinRoot: pinDir });
    cleanup.add('object', () => obj.close());
    if (path.endsWith('tc.bpf.o')) {
      for (const codec of allStructCodecs) verifyCodecAgainstBtf(codec, obj.btfStruct(codec.name));
      obj.setMaxEntries('sl_frontends4', Math.max(65_536, services + 16));
      obj.setMaxEntries('sl_backends4', Math.max(262_144, services * BACKENDS_PER_SERVICE + 16));
      // Counters are an array indexed by svc_id: 100k services need more than the default 64Ki.
      obj.setMaxEntries('sl_svc_counters', Math.max(65_536, services + 16));
      for (const [name, v] of Object.entries(rodata)) {
        const buf = Buffer.alloc(8);
        buf.writeBigUInt64LE(v);
        obj.setRodata(name, buf);
      }
    }
    await obj.load();
    return fn(obj);
  } finally {
    await cleanup.runAll();
    uninstall();
  }
}

/** Packets the measured pair of services translated (sanity: the runs really were service hits). */
function pairCounters(obj: NativeObject, services: number, cpus: number): { packets: bigint; connections: bigint } {
  let packets = 0n;
  let connections = 0n;
  for (const id of [1, services + 1]) {
    const buf = obj.map('sl_svc_counters').lookup(u32Key.encode(id));
    for (const c of buf ? decodePerCpu(svcCounters, buf, cpus) : []) {
      packets += c.packets;
      connections += c.connections;
    }
  }
  return { packets, connections };
}

export async function runTcDatapathBench(
  repeat = 100_000, counts = SERVICE_COUNTS, addon: NativeAddon = loadNative(),
): Promise<TcBenchRow[]> {
  const cpus = addon.numPossibleCpus();
  const tcObject = fromPackageRoot('dist', 'bpf', 'tc.bpf.o');
  const noopObject = fromPackageRoot('dist', 'bpf', 'test', 'noop.bpf.o');
  const syn = buildFrame({ ip: { src: CLIENT, dst: VIP_A }, tcp: { sport: 40000, dport: 80, flags: TCP_FLAGS.ACK } });
  const miss = buildFrame({ ip: { src: CLIENT, dst: OTHER }, tcp: { sport: 40000, dport: 80, flags: TCP_FLAGS.ACK } });
  const reply = buildFrame({ ip: { src: VIP_A, dst: CLIENT }, tcp: { sport: 80, dport: 40000, flags: TCP_FLAGS.ACK } });

  const noopNs = await withObject(addon, noopObject, 0, {}, (obj) => measure(obj.program('sl_tc_noop'), syn, repeat));
  const rows: TcBenchRow[] = [];
  const add = (services: number, scenario: TcBenchRow['scenario'], ns: number) =>
    rows.push({ services, scenario, nsPerPacket: ns, overNoopNs: ns - noopNs });
  for (const services of counts) {
    add(services, 'noop', noopNs);
    await withObject(addon, tcObject, services, {}, (obj) => {
      fill(obj, services);
      const fromPod = obj.program('sl_tc_from_pod');
      const first = parseFrame(fromPod.testRun({ data: syn }).data);
      if (first.ip?.dst !== VIP_B) throw new Error(`bench: the measured service did not translate (dst ${first.ip?.dst})`);
      add(services, 'miss', measure(fromPod, miss, repeat));
      const before = pairCounters(obj, services, cpus);
      add(services, 'ct-hit', measure(fromPod, syn, repeat));
      const after = pairCounters(obj, services, cpus);
      if (after.packets - before.packets < BigInt(repeat * ROUNDS)) {
        throw new Error(`bench: ct-hit: ${after.packets - before.packets} service packets in ${repeat * ROUNDS} runs`);
      }
      mirrorReverseEntries(obj);
      const toPod = obj.program('sl_tc_to_pod');
      if (parseFrame(toPod.testRun({ data: reply }).data).ip?.src !== VIP_B) throw new Error('bench: reply was not reverse-NATed');
      add(services, 'reply', measure(toPod, reply, repeat));
    });
    const zero = Object.fromEntries(['syn_sent', 'established', 'fin', 'rst'].map((s) => [`sl_ct_timeout_tcp_${s}_ns`, 0n]));
    await withObject(addon, tcObject, services, zero, (obj) => {
      fill(obj, services);
      const fromPod = obj.program('sl_tc_from_pod');
      const before = pairCounters(obj, services, cpus);
      add(services, 'new-flow', measure(fromPod, syn, repeat));
      const after = pairCounters(obj, services, cpus);
      if (after.connections - before.connections < BigInt(repeat * ROUNDS)) {
        throw new Error(`bench: new-flow: ${after.connections - before.connections} new flows in ${repeat * ROUNDS} runs`);
      }
    });
  }
  return rows;
}

export function formatTable(rows: TcBenchRow[]): string {
  const scenarios = ['noop', 'miss', 'ct-hit', 'new-flow', 'reply'] as const;
  const counts = [...new Set(rows.map((r) => r.services))];
  const head = ['services'.padStart(9), ...scenarios.map((s) => s.padStart(10))].join(' ');
  const lines = counts.map((n) => [String(n).padStart(9), ...scenarios.map((s) => {
    const r = rows.find((x) => x.services === n && x.scenario === s);
    return (r ? r.nsPerPacket.toFixed(0) : '-').padStart(10);
  })].join(' '));
  return [`ns/packet (median of ${ROUNDS} test-runs, kernel-measured)`, head, ...lines].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const repeat = Number(process.argv[2] ?? 100_000);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`repeat must be a positive integer, got ${process.argv[2]}`);
  const rows = await runTcDatapathBench(repeat);
  console.log(formatTable(rows));
  const out = fromPackageRoot('.bench-results', 'tc-datapath.json');
  await mkdir(fromPackageRoot('.bench-results'), { recursive: true });
  await writeFile(out, JSON.stringify({
    bench: 'tc-datapath', date: new Date().toISOString(), kernel: release(), repeat, rounds: ROUNDS,
    cpus: loadNative().numPossibleCpus(), rows,
  }, null, 2) + '\n');
  console.log(`wrote ${out}`);
}
