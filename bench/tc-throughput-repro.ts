// A minimal reproduction of the throughput bench's Sluice TC-only path (bench/throughput.ts), for
// profiling it: one node namespace, a client pod and a backend pod (src/testbed topology), the TC
// programs of dist/bpf/tc.bpf.o on both host veths, one ClusterIP service (10.96.0.12:5201 → the
// backend's iperf3) written by the real ServiceTableWriter. Modes, measured in interleaved rounds:
//   direct-bare  client → backend pod IP, no TC program attached (the bench's `direct`)
//   direct-tc    client → backend pod IP, TC programs attached (they look up and pass)
//   service-tc   client → ClusterIP, translated by the TC programs (the bench's `sluice-tc`)
// Each iperf3 run (one TCP stream) is wrapped in `flock /tmp/bench.lock` (the machine is shared).
// Per run: Gbit/s, machine CPU s/GB, packets each way on the client's host veth, and the TC
// programs' run_cnt / run_time_ns (kernel.bpf_stats_enabled must be 1 for those).
//
//   node --import ./scripts/ts-loader.mjs bench/tc-throughput-repro.ts [rounds] [seconds] [modes]
//   SLUICE_REPRO_HOLD=1 …: after the rounds, print the namespaces and wait for Enter (perf by hand).
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fromPackageRoot, loadNative } from '../src/bpf/native.js';
import { openPinnedTables } from '../src/dataplane/native-tables.js';
import { ServiceTableWriter } from '../src/dataplane/writer.js';
import { linkCounters, netnsArgv, netnsPath, spawnInNetns } from '../src/testbed/netns.js';
import { TestbedRun } from '../src/testbed/run.js';
import { createTopology } from '../src/testbed/topology.js';
import { backendOf, clusterIpService, desiredState } from '../test/traffic/bed.js';
import { busySeconds, machineCpuTimes, programRunStats } from './proc.js';
import { distribution } from './stats.js';

const MODES = ['direct-bare', 'direct-tc', 'service-tc'] as const;
type Mode = (typeof MODES)[number];
const VIP = '10.96.0.12';
const PORT = 5201;

interface Sample { gbit: number; cpuPerGb: number; fwdPkts: number; revPkts: number; bytes: number; fromPodNs: number; fromPodCnt: number; toPodNs: number; toPodCnt: number; retr: number }

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 5);
  const seconds = Number(process.argv[3] ?? 5);
  const modes = (process.argv[4]?.split(',') ?? [...MODES]) as Mode[];
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  try {
    // client and web have the TC programs on their host veths; bare-client and bare-web none.
    const topo = await createTopology(run, { pods: ['client', 'web', 'bare-client', 'bare-web'] });
    const [client, web, bareClient, bareWeb] = topo.pods as [(typeof topo.pods)[0], (typeof topo.pods)[0], (typeof topo.pods)[0], (typeof topo.pods)[0]];
    const pinDir = await run.pinDir();
    const native = loadNative();
    // SLUICE_REPRO_OBJ: another build of tc.bpf.c; its const volatile u32 sl_exp_fwd_ifindex /
    // sl_exp_rev_ifindex, when present, are set to web's and client's host veths (experiments).
    const obj = native.openObject(process.env.SLUICE_REPRO_OBJ ?? fromPackageRoot('dist', 'bpf', 'tc.bpf.o'), { pinRoot: pinDir });
    run.cleanup.add('tc.bpf.o', () => obj.close());
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    if (process.env.SLUICE_REPRO_OBJ) {
      obj.setRodata('sl_exp_fwd_ifindex', u32(web.hostIfindex));
      obj.setRodata('sl_exp_rev_ifindex', u32(client.hostIfindex));
    }
    await obj.load();
    const netns = netnsPath(topo.nodeNs);
    const fromPod = obj.program('sl_tc_from_pod').info;
    const toPod = obj.program('sl_tc_to_pod').info;
    for (const pod of [client, web]) {
      await native.tcHookCreate(pod.hostIfindex, { netns });
      await native.tcAttach({ ifindex: pod.hostIfindex, direction: 'ingress', progFd: fromPod.fd, netns });
      await native.tcAttach({ ifindex: pod.hostIfindex, direction: 'egress', progFd: toPod.fd, netns });
    }
    const pinned = openPinnedTables(native, pinDir);
    run.cleanup.add('pinned tables', () => pinned.close());
    const pinned6 = openPinnedTables(native, pinDir, { family: 'IPv6' });
    run.cleanup.add('pinned IPv6 tables', () => pinned6.close());
    const writer = new ServiceTableWriter({ tables: pinned.tables, tables6: pinned6.tables });
    const res = writer.apply(desiredState(clusterIpService({ name: 'iperf', vip: VIP, port: PORT, protocol: 'TCP', backends: [backendOf(web, PORT)] })));
    if (res.errors.length) throw new Error(res.errors.map((e) => e.message).join('; '));
    for (const pod of [web, bareWeb]) {
      const server = run.own(spawnInNetns(pod.ns, ['iperf3', '--server', '--port', String(PORT)], { stdio: 'ignore' }), `iperf3 server in ${pod.name}`);
      server.once('error', () => undefined);
    }
    await new Promise((r) => setTimeout(r, 500));
    console.log(`node ${topo.nodeNs} client ${client.ns} (${client.hostIfname}) web ${web.ns} (${web.hostIfname}) from_pod id ${fromPod.id} to_pod id ${toPod.id}`);

    let count = 0;
    const one = async (mode: Mode): Promise<Sample> => {
      const from = mode === 'direct-bare' ? bareClient : client;
      const target = mode === 'service-tc' ? VIP : mode === 'direct-bare' ? bareWeb.ip : web.ip;
      const c0 = await linkCounters(topo.nodeNs, from.hostIfname);
      const f0 = programRunStats([fromPod.id]);
      const t0 = programRunStats([toPod.id]);
      const cpu0 = busySeconds(machineCpuTimes());
      const iperf = netnsArgv(from.ns, ['iperf3', '-c', target, '-p', String(PORT), '-t', String(seconds), '--json',
        // SLUICE_REPRO_AFFINITY=c,s: iperf3's client on CPU c, the server on CPU s (iperf3 -A).
        ...(process.env.SLUICE_REPRO_AFFINITY ? ['-A', process.env.SLUICE_REPRO_AFFINITY] : [])]);
      // SLUICE_REPRO_PERF=dir: a system-wide perf profile of each run (from 1 s in, seconds - 2 long).
      const perfDir = process.env.SLUICE_REPRO_PERF;
      const argv = perfDir
        ? ['sh', '-c', `(sleep 1; perf record -q -a -g -o ${perfDir}/${mode}-${count++}.data -- sleep ${seconds - 2} >/dev/null 2>&1) & "$@"; wait`, 'sh', ...iperf]
        : iperf;
      const out = execFileSync('flock', ['/tmp/bench.lock', ...argv], { encoding: 'utf8' });
      const cpu = busySeconds(machineCpuTimes()) - cpu0;
      const c1 = await linkCounters(topo.nodeNs, from.hostIfname);
      const f1 = programRunStats([fromPod.id]);
      const t1 = programRunStats([toPod.id]);
      const j = JSON.parse(out) as { end: { sum_received: { bytes: number; bits_per_second: number }; sum_sent: { retransmits: number } } };
      const bytes = j.end.sum_received.bytes;
      return {
        gbit: j.end.sum_received.bits_per_second / 1e9, cpuPerGb: cpu / (bytes / 1e9), bytes,
        fwdPkts: c1.rxPackets - c0.rxPackets, revPkts: c1.txPackets - c0.txPackets,
        fromPodCnt: f1.cnt - f0.cnt, fromPodNs: f1.ns - f0.ns, toPodCnt: t1.cnt - t0.cnt, toPodNs: t1.ns - t0.ns,
        retr: j.end.sum_sent.retransmits,
      };
    };
    const samples = new Map<Mode, Sample[]>(modes.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      const order = [...modes.slice(r % modes.length), ...modes.slice(0, r % modes.length)];
      for (const m of order) {
        const s = await one(m);
        samples.get(m)?.push(s);
        console.log(`round ${r} ${m.padEnd(12)} ${s.gbit.toFixed(2)} Gbit/s ${s.cpuPerGb.toFixed(3)} CPU-s/GB pkts fwd ${s.fwdPkts} (${(s.bytes / s.fwdPkts).toFixed(0)} B/pkt) rev ${s.revPkts} retr ${s.retr}` +
          ` from_pod ${s.fromPodCnt ? (s.fromPodNs / s.fromPodCnt).toFixed(0) : '-'} ns × ${s.fromPodCnt} to_pod ${s.toPodCnt ? (s.toPodNs / s.toPodCnt).toFixed(0) : '-'} ns × ${s.toPodCnt}`);
      }
    }
    const med = (xs: number[]) => distribution(xs).p50;
    console.log('median: mode, Gbit/s, CPU-s/GB, fwd pkts/s, rev pkts/s, from_pod ns/run, to_pod ns/run');
    for (const [m, s] of samples) {
      console.log([m.padEnd(12), med(s.map((x) => x.gbit)).toFixed(2), med(s.map((x) => x.cpuPerGb)).toFixed(3),
        med(s.map((x) => x.fwdPkts / seconds)).toFixed(0), med(s.map((x) => x.revPkts / seconds)).toFixed(0),
        med(s.map((x) => (x.fromPodCnt ? x.fromPodNs / x.fromPodCnt : 0))).toFixed(0), med(s.map((x) => (x.toPodCnt ? x.toPodNs / x.toPodCnt : 0))).toFixed(0)].join('  '));
    }
    if (process.env.SLUICE_REPRO_HOLD) {
      console.log(`holding; e.g. flock /tmp/bench.lock ip netns exec ${client.ns} iperf3 -c ${VIP} -p ${PORT} -t 10; Enter ends`);
      await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
    }
  } finally {
    await run.destroy();
  }
}

await main();
