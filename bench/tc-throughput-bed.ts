// The throughput bench's own bed (bench/connect-bed.ts, IPv4, 1 service, the real agent) with the
// per-path detail bench/throughput.ts does not print: packets on the client's host veth and the
// TC programs' run counts and times (kernel.bpf_stats_enabled=1). Paths: direct, sluice-connect,
// sluice-tc (and kube-proxy), interleaved; every iperf3 run under flock /tmp/bench.lock.
//
//   node --import ./scripts/ts-loader.mjs bench/tc-throughput-bed.ts [rounds] [seconds] [paths]
// SLUICE_REPRO_SERVICES=N programs N services first; SLUICE_REPRO_DUAL=1 a dual-stack bed;
// SLUICE_REPRO_MAX_SERVICES=M sizes the agent's maps for M (the bench sizes them for its largest scale).
import { execFileSync } from 'node:child_process';
import { cgroupArgv } from '../src/testbed/cgroup.js';
import { linkCounters } from '../src/testbed/netns.js';
import type { ConnectPath } from './connect-bed.js';
import { createConnectBed, IPERF_PORT } from './connect-bed.js';
import { busySeconds, machineCpuTimes, programRunStats } from './proc.js';
import { benchIptablesBackend } from './service-objects.js';
import { distribution } from './stats.js';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const PATHS: ConnectPath[] = (process.argv[4]?.split(',') as ConnectPath[] | undefined) ?? ['direct', 'sluice-connect', 'sluice-tc'];

function progIds(ns: string, dev: string, dir: 'ingress' | 'egress'): number[] {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'tc', 'filter', 'show', 'dev', dev, dir], { encoding: 'utf8' });
  return [...out.matchAll(/ id (\d+)/g)].map((m) => Number(m[1]));
}

const bed = await createConnectBed(benchIptablesBackend(), process.env.SLUICE_REPRO_DUAL ? ['IPv4', 'IPv6'] : ['IPv4'], Number(process.env.SLUICE_REPRO_MAX_SERVICES ?? process.env.SLUICE_REPRO_SERVICES ?? 1));
try {
  const scale = Number(process.env.SLUICE_REPRO_SERVICES ?? 1);
  if (scale > 1) console.log(JSON.stringify(await bed.apply(scale, { nft: false })));
  const node = bed.nodes.sluice;
  const clientVeth = node.pods[0]?.hostIfname as string;
  const ing = progIds(node.ns, clientVeth, 'ingress');
  const eg = progIds(node.ns, clientVeth, 'egress');
  console.log(`sluice node ${node.ns}: ${clientVeth} ingress progs ${ing.join(',')} egress ${eg.join(',')}`);
  const res = new Map<ConnectPath, { gbit: number; cpu: number; fwd: number; rev: number; bpp: number; ingNs: number; egNs: number }[]>();
  for (let r = 0; r < rounds; r++) {
    const order = [...PATHS.slice(r % PATHS.length), ...PATHS.slice(0, r % PATHS.length)];
    for (const path of order) {
      const p = bed.path(path);
      const veth = path === 'direct' ? (bed.nodes.plain.pods[0]?.hostIfname as string) : clientVeth;
      const vns = path === 'direct' ? bed.nodes.plain.ns : path === 'kube-proxy' ? bed.nodes.kubeProxy.ns : node.ns;
      const vdev = path === 'kube-proxy' ? (bed.nodes.kubeProxy.pods[0]?.hostIfname as string) : veth;
      const c0 = await linkCounters(vns, vdev);
      const i0 = programRunStats(ing);
      const e0 = programRunStats(eg);
      const cpu0 = busySeconds(machineCpuTimes());
      const argv = cgroupArgv(p.cgroup, ['iperf3', '--client', p.target.host, '--port', String(IPERF_PORT), '--time', String(seconds), '--json'], p.ns);
      const out = execFileSync('flock', ['/tmp/bench.lock', ...argv], { encoding: 'utf8' });
      const cpu = busySeconds(machineCpuTimes()) - cpu0;
      const c1 = await linkCounters(vns, vdev);
      const i1 = programRunStats(ing);
      const e1 = programRunStats(eg);
      const j = JSON.parse(out) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
      const bytes = j.end.sum_received.bytes;
      const s = {
        gbit: j.end.sum_received.bits_per_second / 1e9, cpu: cpu / (bytes / 1e9), fwd: c1.rxPackets - c0.rxPackets, rev: c1.txPackets - c0.txPackets,
        bpp: bytes / (c1.rxPackets - c0.rxPackets),
        ingNs: i1.cnt - i0.cnt ? (i1.ns - i0.ns) / (i1.cnt - i0.cnt) : 0, egNs: e1.cnt - e0.cnt ? (e1.ns - e0.ns) / (e1.cnt - e0.cnt) : 0,
      };
      res.set(path, [...(res.get(path) ?? []), s]);
      console.log(`round ${r} ${path.padEnd(15)} ${s.gbit.toFixed(2)} Gbit/s ${s.cpu.toFixed(3)} CPU-s/GB fwd ${s.fwd} pkts (${s.bpp.toFixed(0)} B/pkt) rev ${s.rev} ingress ${s.ingNs.toFixed(0)} ns/run (${i1.cnt - i0.cnt}) egress ${s.egNs.toFixed(0)} ns/run (${e1.cnt - e0.cnt})`);
    }
  }
  const med = (xs: number[]) => distribution(xs).p50;
  for (const [path, s] of res) console.log(`median ${path.padEnd(15)} ${med(s.map((x) => x.gbit)).toFixed(2)} Gbit/s ${med(s.map((x) => x.cpu)).toFixed(3)} CPU-s/GB ${med(s.map((x) => x.bpp)).toFixed(0)} B/pkt`);
} finally {
  await bed.destroy();
}
