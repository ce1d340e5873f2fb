// iperf3 throughput and CPU per GB through a Service (issue 17), on the connect bench's bed
// (bench/connect-bed.ts) at one scale: one TCP stream, client pod → node → backend pod, on the
// five paths — direct (pod → pod), kube-proxy iptables and nftables, Sluice connect-time, Sluice TC only — `rounds`
// (IPv4 only: the bed's IPv4 clients; the IPv6 paths are measured by the connect bench alone)
// rounds in a rotating order (direct first and last, as the connect bench), medians reported.
//
// CPU: the whole machine's busy time (/proc/stat: user, nice, system, irq, softirq, steal) over
// the transfer, per GB received — the node's forwarding and NAT run in softirq, which no process
// or cgroup is charged for reliably. On a shared machine it includes everyone else's work, so it
// is only comparable between paths of the same run; iperf3's own sender and receiver CPU (as it
// reports them) is kept beside it.
//
// Packets: each measurement also counts the packets the client pod's eth0 sent (data, as GSO
// segments of up to 64 KB) and received (ACKs): `acksPerSegment`. It shows where iperf3's server
// ran against its client, the main source of this bench's spread (docs/benchmarks.md, "The TC
// path's throughput, investigated"): on the other CPU it ACKs nearly every segment (~0.9), on the
// same CPU it reads in batches and ACKs rarely (~0.1-0.3) — whichever path the measurement fell on.
import { cgroupArgv } from '../src/testbed/cgroup.js';
import { run as runCommand } from '../src/testbed/exec.js';
import { linkCounters } from '../src/testbed/netns.js';
import type { ConnectBed, ConnectPath } from './connect-bed.js';
import { IPERF_PORT } from './connect-bed.js';
import { roundOrder } from './connect.js';
import { busySeconds, machineCpuTimes } from './proc.js';
import { distribution } from './stats.js';

export interface ThroughputOptions {
  rounds: number;
  seconds: number;
}

export interface ThroughputRow {
  path: ConnectPath;
  services: number;
  /** Medians over the path's measurements. */
  gbitPerSec: number;
  /** Machine CPU seconds per GB received. */
  cpuSecondsPerGb: number;
  /** iperf3's own CPU, % of one CPU: sender (client) and receiver (server). */
  senderCpuPct: number;
  receiverCpuPct: number;
  retransmits: number;
  perMeasurement: { gbitPerSec: number; cpuSecondsPerGb: number; acksPerSegment?: number }[];
}

interface Sample {
  gbitPerSec: number; cpuSecondsPerGb: number; senderCpuPct: number; receiverCpuPct: number; retransmits: number;
  /** Packets the client pod received (ACKs) per packet it sent (data segments, GSO-sized). */
  acksPerSegment: number;
}

/** What iperf3 --json reports that the benches read. */
export interface IperfJson {
  end?: {
    sum_received?: { bytes: number; bits_per_second: number };
    sum_sent?: { retransmits?: number };
    cpu_utilization_percent?: { host_total: number; remote_total: number };
  };
  error?: string;
}

async function iperf(bed: ConnectBed, path: ConnectPath, seconds: number): Promise<Sample> {
  const p = bed.path(path);
  const argv = ['iperf3', '--client', p.target.host, '--port', String(IPERF_PORT), '--time', String(seconds), '--json'];
  const link0 = await linkCounters(p.ns, 'eth0');
  const cpu0 = busySeconds(machineCpuTimes());
  const r = await runCommand(cgroupArgv(p.cgroup, argv, p.ns), { allowFailure: true, timeoutMs: (seconds + 30) * 1000 });
  const cpu = busySeconds(machineCpuTimes()) - cpu0;
  const link1 = await linkCounters(p.ns, 'eth0');
  let out: IperfJson;
  try {
    out = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`throughput bench: iperf3 on ${path} exited ${r.code}: ${r.stderr.trim() || r.stdout.slice(0, 400)}`);
  }
  const recv = out.end?.sum_received;
  if (out.error || !recv || recv.bytes <= 0) throw new Error(`throughput bench: iperf3 on ${path}: ${out.error ?? 'no bytes received'}`);
  return {
    gbitPerSec: recv.bits_per_second / 1e9, cpuSecondsPerGb: cpu / (recv.bytes / 1e9),
    senderCpuPct: out.end?.cpu_utilization_percent?.host_total ?? NaN, receiverCpuPct: out.end?.cpu_utilization_percent?.remote_total ?? NaN,
    retransmits: out.end?.sum_sent?.retransmits ?? 0,
    acksPerSegment: (link1.rxPackets - link0.rxPackets) / Math.max(1, link1.txPackets - link0.txPackets),
  };
}

export async function measureThroughput(bed: ConnectBed, o: ThroughputOptions): Promise<ThroughputRow[]> {
  const samples = new Map<ConnectPath, Sample[]>();
  for (let r = 0; r < o.rounds; r++) {
    for (const path of roundOrder(r)) samples.set(path, [...(samples.get(path) ?? []), await iperf(bed, path, o.seconds)]);
  }
  const med = (xs: number[]) => distribution(xs).p50;
  return [...samples].map(([path, s]) => ({
    path, services: bed.services,
    gbitPerSec: med(s.map((x) => x.gbitPerSec)), cpuSecondsPerGb: med(s.map((x) => x.cpuSecondsPerGb)),
    senderCpuPct: med(s.map((x) => x.senderCpuPct)), receiverCpuPct: med(s.map((x) => x.receiverCpuPct)),
    retransmits: s.reduce((n, x) => n + x.retransmits, 0),
    perMeasurement: s.map(({ gbitPerSec, cpuSecondsPerGb, acksPerSegment }) => ({ gbitPerSec, cpuSecondsPerGb, acksPerSegment })),
  }));
}

export function formatThroughput(rows: readonly ThroughputRow[]): string {
  const direct = rows.find((r) => r.path === 'direct');
  return [
    `${'services'.padStart(8)}  ${'path'.padEnd(14)} ${'Gbit/s'.padStart(7)} ${'/direct'.padStart(8)} ${'CPU s/GB'.padStart(9)} ${'iperf3 CPU% snd/rcv'.padStart(20)} ${'retr'.padStart(5)}`,
    ...rows.map((r) => [String(r.services).padStart(8), ` ${r.path.padEnd(14)}`, r.gbitPerSec.toFixed(2).padStart(7),
      `${direct ? (r.gbitPerSec / direct.gbitPerSec).toFixed(2) : '-'}×`.padStart(8), r.cpuSecondsPerGb.toFixed(3).padStart(9),
      `${r.senderCpuPct.toFixed(0)} / ${r.receiverCpuPct.toFixed(0)}`.padStart(20), String(r.retransmits).padStart(5)].join(' ')),
  ].join('\n');
}
