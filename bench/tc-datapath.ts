// ns/packet of the TC service programs (BPF_PROG_TEST_RUN with repeat) at 1, 1k, 10k and 100k
// services, beside a no-op TC program: the cost of a hash-map datapath must stay flat as the
// number of services grows (kube-proxy's iptables walk grows linearly). Both families: IPv4 and
// IPv6 (the same scenarios through the same programs, on the IPv6 maps; docs/ipv6.md).
//
//   node --import ./scripts/ts-loader.mjs bench/tc-datapath.ts [repeat]
//
// BPF_PROG_TEST_RUN runs a TC program `repeat` times on the SAME skb, so each run sees the packet
// the previous run left. A translated packet is no longer a service packet, so the measured
// service's backend is a "mirror" frontend whose backend is the measured VIP again: every run is
// a service packet (A -> B, then B -> A, ...). Scenarios:
//  - miss:     a packet to no service (what most pod traffic costs);
//  - ct-hit:   an ACK of a tracked flow (conntrack lookup + DNAT; SYNs opened A -> B and B -> A
//              first: an ACK of no tracked flow passes untouched, a flow kube-proxy carries);
//  - new-flow: a SYN with conntrack timeouts set to 0 (rodata), so every run selects a backend
//              and writes both conntrack entries. This replaces an expired flow, which also looks
//              up the stale entry and its twin: a slight overstatement of a first packet's cost;
//  - reply:    reverse NAT in sl_tc_to_pod, with two REVERSE entries that map onto each other.
// Results: a table per family on stdout and .bench-results/tc-datapath.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { fromPackageRoot, loadNative, type NativeAddon, type NativeObject, type NativeProgram } from '../src/bpf/native.js';
import { verifyCodecAgainstBtf, decodePerCpu } from '../src/bpf/codec.js';
import type { Codec } from '../src/bpf/codec.js';
import {
  allStructCodecs, backendKey, backendValue4, backendValue6, ctKey4, ctKey6, ctValue4, ctValue6, CT_TYPE, frontendKey4, frontendKey6,
  IPPROTO, serviceValue, svcCounters, u32Key,
} from '../src/bpf/sluice-structs.js';
import { buildFrame, buildFrame6, parseFrame, parseFrame6, TCP_FLAGS, TCP6_FLAGS } from '../src/packet/index.js';
import { createRunPinDir, removePinDir } from '../src/testbed/bpffs.js';
import { Cleanup } from '../src/testbed/cleanup.js';
import { newRunPrefix } from '../src/testbed/names.js';

export const SERVICE_COUNTS = [1, 1_000, 10_000, 100_000];
const BACKENDS_PER_SERVICE = 2;
const ROUNDS = 5;
export const TC_FAMILIES = ['IPv4', 'IPv6'] as const;
export type TcFamily = (typeof TC_FAMILIES)[number];

/** What differs between the families: addresses, maps, codecs, frames. */
interface FamilyBench {
  client: string;
  /** Service #0, the measured one (vipOf(0)). */
  vipA: string;
  /** Its mirror frontend, outside vipOf's range. */
  vipB: string;
  /** An address that is no service. */
  other: string;
  vipOf(i: number): string;
  backendOf(j: number): string;
  anyAddr: string;
  maps: { frontends: string; backends: string; ct: string };
  frontendKey: Codec<ReturnType<typeof frontendKey4.decode>>;
  backendValue: Codec<ReturnType<typeof backendValue4.decode>>;
  ctKey: Codec<ReturnType<typeof ctKey4.decode>>;
  ctValue: Codec<ReturnType<typeof ctValue4.decode>>;
  /** A TCP segment src:sport -> dst:dport: an ACK, or a SYN when `open`. */
  frame(src: string, dst: string, sport: number, dport: number, open?: boolean): Buffer;
  addrs(frame: Buffer): { src: string | undefined; dst: string | undefined };
}

const hex = (n: number) => n.toString(16);
const FAMILY: Record<TcFamily, FamilyBench> = {
  IPv4: {
    client: '10.244.255.10',
    vipA: '10.96.0.0',
    vipB: '10.95.255.254',
    other: '10.244.254.1',
    vipOf: (i) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    backendOf: (j) => `10.${128 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`,
    anyAddr: '0.0.0.0',
    maps: { frontends: 'sl_frontends4', backends: 'sl_backends4', ct: 'sl_ct4' },
    frontendKey: frontendKey4,
    backendValue: backendValue4,
    ctKey: ctKey4,
    ctValue: ctValue4,
    frame: (src, dst, sport, dport, open) => buildFrame({ ip: { src, dst }, tcp: { sport, dport, flags: open ? TCP_FLAGS.SYN : TCP_FLAGS.ACK } }),
    addrs: (frame) => {
      const p = parseFrame(frame);
      return { src: p.ip?.src, dst: p.ip?.dst };
    },
  },
  IPv6: {
    client: 'fd00:244:ff::a',
    vipA: 'fd00:96::',
    vipB: 'fd00:95::fffe',
    other: 'fd00:244:fe::1',
    vipOf: (i) => `fd00:96::${hex(i >>> 16)}:${hex(i & 0xffff)}`,
    backendOf: (j) => `fd00:128::${hex(j >>> 16)}:${hex(j & 0xffff)}`,
    anyAddr: '::',
    maps: { frontends: 'sl_frontends6', backends: 'sl_backends6', ct: 'sl_ct6' },
    frontendKey: frontendKey6,
    backendValue: backendValue6,
    ctKey: ctKey6,
    ctValue: ctValue6,
    frame: (src, dst, sport, dport, open) => buildFrame6({ src, dst, tcp: { sport, dport, flags: open ? TCP6_FLAGS.SYN : TCP6_FLAGS.ACK } }),
    addrs: (frame) => parseFrame6(frame),
  },
};

export interface TcBenchRow {
  /** Absent in results written before the IPv6 rows (IPv4). */
  family?: TcFamily;
  services: number;
  scenario: 'noop' | 'miss' | 'ct-hit' | 'new-flow' | 'reply';
  /** Median over rounds of the kernel's average ns per run. */
  nsPerPacket: number;
  /** nsPerPacket minus the no-op program's. */
  overNoopNs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Frontends for `services` services (#0 -> the mirror vipB, which points back at vipA). */
function fill(obj: NativeObject, services: number, f: FamilyBench): void {
  const fk = Buffer.alloc(f.frontendKey.size * (services + 1));
  const fv = Buffer.alloc(serviceValue.size * (services + 1));
  const bk = Buffer.alloc(backendKey.size * (services * BACKENDS_PER_SERVICE + 1));
  const bv = Buffer.alloc(f.backendValue.size * (services * BACKENDS_PER_SERVICE + 1));
  let b = 0;
  const addBackend = (backendId: number, ordinal: number, addr: string, port: number) => {
    backendKey.encode({ backend_id: backendId, ordinal }, bk, b * backendKey.size);
    f.backendValue.encode({ addr, port, flags: 0, node_addr: f.anyAddr }, bv, b * f.backendValue.size);
    b++;
  };
  for (let i = 0; i < services; i++) {
    const id = i + 1;
    f.frontendKey.encode({ addr: f.vipOf(i), port: 80, proto: IPPROTO.TCP, scope: 0 }, fk, i * f.frontendKey.size);
    const count = i === 0 ? 1 : BACKENDS_PER_SERVICE;
    serviceValue.encode({ svc_id: id, backend_id: id, count, local_count: 0, flags: 0, affinity_timeout_s: 0 }, fv,
      i * serviceValue.size);
    if (i === 0) addBackend(id, 0, f.vipB, 80);
    else for (let o = 0; o < count; o++) addBackend(id, o, f.backendOf(i * BACKENDS_PER_SERVICE + o), 8080);
  }
  const mirrorId = services + 1;
  f.frontendKey.encode({ addr: f.vipB, port: 80, proto: IPPROTO.TCP, scope: 0 }, fk, services * f.frontendKey.size);
  serviceValue.encode({ svc_id: mirrorId, backend_id: mirrorId, count: 1, local_count: 0, flags: 0, affinity_timeout_s: 0 },
    fv, services * serviceValue.size);
  addBackend(mirrorId, 0, f.vipA, 80);
  obj.map(f.maps.backends).updateBatch(bk.subarray(0, b * backendKey.size), bv.subarray(0, b * f.backendValue.size), b);
  obj.map(f.maps.frontends).updateBatch(fk, fv, services + 1);
}

/** Two REVERSE entries translating vipA -> vipB and back, for the reply scenario. */
function mirrorReverseEntries(obj: NativeObject, f: FamilyBench): void {
  const ct = obj.map(f.maps.ct);
  for (const [from, to] of [[f.vipA, f.vipB], [f.vipB, f.vipA]] as const) {
    ct.update(f.ctKey.encode({ saddr: from, daddr: f.client, sport: 80, dport: 40000, proto: IPPROTO.TCP }), f.ctValue.encode({
      // last_seen far in the future of boot time: never expires during the run.
      created_ns: 0n, last_seen_ns: 1n << 62n, nat_addr: to, nat_port: 80, type: CT_TYPE.REVERSE, state: 2,
      nat_saddr: f.anyAddr, svc_id: 1, flags: 0, nat_sport: 0,
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
      for (const f of TC_FAMILIES.map((x) => FAMILY[x])) {
        obj.setMaxEntries(f.maps.frontends, Math.max(65_536, services + 16));
        obj.setMaxEntries(f.maps.backends, Math.max(262_144, services * BACKENDS_PER_SERVICE + 16));
      }
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
  repeat = 100_000, counts = SERVICE_COUNTS, addon: NativeAddon = loadNative(), families: readonly TcFamily[] = TC_FAMILIES,
): Promise<TcBenchRow[]> {
  const rows: TcBenchRow[] = [];
  for (const family of families) rows.push(...await runFamily(family, repeat, counts, addon));
  return rows;
}

async function runFamily(family: TcFamily, repeat: number, counts: readonly number[], addon: NativeAddon): Promise<TcBenchRow[]> {
  const f = FAMILY[family];
  const cpus = addon.numPossibleCpus();
  const tcObject = fromPackageRoot('dist', 'bpf', 'tc.bpf.o');
  const noopObject = fromPackageRoot('dist', 'bpf', 'test', 'noop.bpf.o');
  // A non-SYN segment of no tracked flow passes untouched (a flow kube-proxy carries: tc.bpf.c),
  // so flows are opened by SYNs: both directions of the mirror pair before ct-hit (then ACKs
  // hit conntrack every run), and every run of new-flow.
  const syn = f.frame(f.client, f.vipA, 40000, 80, true);
  const synMirror = f.frame(f.client, f.vipB, 40000, 80, true);
  const ack = f.frame(f.client, f.vipA, 40000, 80);
  const miss = f.frame(f.client, f.other, 40000, 80);
  const reply = f.frame(f.vipA, f.client, 80, 40000);

  const noopNs = await withObject(addon, noopObject, 0, {}, (obj) => measure(obj.program('sl_tc_noop'), ack, repeat));
  const rows: TcBenchRow[] = [];
  const add = (services: number, scenario: TcBenchRow['scenario'], ns: number) =>
    rows.push({ family, services, scenario, nsPerPacket: ns, overNoopNs: ns - noopNs });
  for (const services of counts) {
    add(services, 'noop', noopNs);
    await withObject(addon, tcObject, services, {}, (obj) => {
      fill(obj, services, f);
      const fromPod = obj.program('sl_tc_from_pod');
      const first = f.addrs(fromPod.testRun({ data: syn }).data);
      if (first.dst !== f.vipB) throw new Error(`bench: ${family}: the measured service did not translate (dst ${first.dst})`);
      const mirror = f.addrs(fromPod.testRun({ data: synMirror }).data);
      if (mirror.dst !== f.vipA) throw new Error(`bench: ${family}: the mirror service did not translate (dst ${mirror.dst})`);
      add(services, 'miss', measure(fromPod, miss, repeat));
      const before = pairCounters(obj, services, cpus);
      add(services, 'ct-hit', measure(fromPod, ack, repeat));
      const after = pairCounters(obj, services, cpus);
      if (after.packets - before.packets < BigInt(repeat * ROUNDS)) {
        throw new Error(`bench: ${family}: ct-hit: ${after.packets - before.packets} service packets in ${repeat * ROUNDS} runs`);
      }
      mirrorReverseEntries(obj, f);
      const toPod = obj.program('sl_tc_to_pod');
      if (f.addrs(toPod.testRun({ data: reply }).data).src !== f.vipB) throw new Error(`bench: ${family}: reply was not reverse-NATed`);
      add(services, 'reply', measure(toPod, reply, repeat));
    });
    const zero = Object.fromEntries(['syn_sent', 'established', 'fin', 'rst'].map((s) => [`sl_ct_timeout_tcp_${s}_ns`, 0n]));
    await withObject(addon, tcObject, services, zero, (obj) => {
      fill(obj, services, f);
      const fromPod = obj.program('sl_tc_from_pod');
      const before = pairCounters(obj, services, cpus);
      add(services, 'new-flow', measure(fromPod, syn, repeat));
      const after = pairCounters(obj, services, cpus);
      if (after.connections - before.connections < BigInt(repeat * ROUNDS)) {
        throw new Error(`bench: ${family}: new-flow: ${after.connections - before.connections} new flows in ${repeat * ROUNDS} runs`);
      }
    });
  }
  return rows;
}

export const TC_SCENARIOS = ['noop', 'miss', 'ct-hit', 'new-flow', 'reply'] as const;

/** One table per family, IPv4 first (rows without a family are IPv4's). */
export function formatTable(rows: TcBenchRow[]): string {
  const out = [`ns/packet (median of ${ROUNDS} test-runs, kernel-measured)`];
  for (const family of TC_FAMILIES) {
    const mine = rows.filter((r) => (r.family ?? 'IPv4') === family);
    if (mine.length === 0) continue;
    const counts = [...new Set(mine.map((r) => r.services))];
    const head = [family.padEnd(4), 'services'.padStart(4), ...TC_SCENARIOS.map((s) => s.padStart(10))].join(' ');
    const lines = counts.map((n) => [' '.repeat(4), String(n).padStart(8), ...TC_SCENARIOS.map((s) => {
      const r = mine.find((x) => x.services === n && x.scenario === s);
      return (r ? r.nsPerPacket.toFixed(0) : '-').padStart(10);
    })].join(' '));
    out.push(head, ...lines);
  }
  return out.join('\n');
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
