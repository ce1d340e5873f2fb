// External traffic throughput and CPU per mode (issues 15 and 17): iperf3 from an external client
// to a NodePort whose only backend is a pod on another node, in SNAT, Tunnel and DSR modes, against
// the client sending to the pod directly (the limit), in one run.
//
//   npm run bench -- --only external-throughput [--quick] [--external-rounds 5] [--external-seconds 4]
//
// The bed: one createCluster() with four nodes on the fabric and one external client. The mode
// decides only what a node *sends* (every node unwraps tunnel traffic and answers as its header
// asks: docs/external-traffic.md, "Modes"), so the three modes live side by side, one ingress node
// each, and the rounds can interleave them with no agent restart:
//
//   client ──┬─ node-a  sluice-agent --external-mode SNAT    NodePort 30201 ─┐
//            ├─ node-b  sluice-agent --external-mode Tunnel  NodePort 30201 ─┼─→ node-d ── pod iperf-d0 (iperf3 -s)
//            ├─ node-c  sluice-agent --external-mode DSR     NodePort 30201 ─┘   (sluice-agent, Tunnel)
//            └─ direct: client → 10.244.4.10 routed through node-a (a route on the client), no
//               translation: node-a's programs see the packet and let it pass (no frontend).
//
// Direct's return path: node-d reaches the client on the fabric itself, so the pod's packets go
// straight back (as DSR's do); SNAT and Tunnel bring them back through the ingress node.
//
// Each measurement is one iperf3 TCP stream for `seconds`, in both directions: upload (the client
// sends) and download (iperf3 -R: the pod sends, the direction DSR changes). Rounds: every path
// once a round, direct twice (first and last), the others rotated; an idle interval of the same
// length opens each round. Figures are medians over the measurements (docs/benchmarks.md, "Noise").
//
// CPU: the nodes share one kernel, and no namespace or cgroup is charged for a node's packet
// processing. A veth hands a packet to the next namespace by raising a softirq that runs when the
// sending task re-enables bottom halves, in that task's context — so the forwarding, NAT,
// tunnelling and bridging of every hop (client → fabric → node A → fabric → node B → pod, and the
// ACKs or data back) run on the CPU time of the process that sent the packet (iperf3 at either
// end), or, when softirq work piles up, in ksoftirqd. The figure per GB received is therefore
//   Δ CPU of the iperf3 client's cgroup + Δ of the iperf3 server's cgroup (cgroup v2 cpu.stat
//   usage_usec: scheduler run time) + Δ run time of the ksoftirqd threads (/proc/PID/schedstat),
// each part kept. It is the cost of moving the bytes end to end (client, both nodes, fabric, pod),
// NOT split per node: a per-node split would need per-namespace softirq accounting the kernel does
// not keep. ksoftirqd also runs the rest of the machine's deferred softirqs (a small, noisy share).
// The whole machine's busy time (/proc/stat) over each transfer is recorded beside it, with the
// machine's busy rate in an idle interval of each round: on this shared machine other work fills
// every idle cycle (the machine is often saturated), so "machine minus idle" cannot isolate the
// transfer, and the process figure above is the one reported. What each node *carried* is counted
// per node — its fabric uplink's sent bytes per byte received: that is where DSR spares node A.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster } from '../src/testbed/cluster.js';
import type { Cluster, ClusterNode } from '../src/testbed/cluster.js';
import { NODE_UPLINK } from '../src/testbed/cluster.js';
import { cgroupArgv, createCgroup } from '../src/testbed/cgroup.js';
import { clusterAgents, waitSynced, writeManifest } from '../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../src/testbed/cluster-agent.js';
import { run as runCommand } from '../src/testbed/exec.js';
import { NETNS_PREFIX } from '../src/testbed/names.js';
import { linkCounters, setSysctl } from '../src/testbed/netns.js';
import { TestbedRun } from '../src/testbed/run.js';
import { nodeObjects, serviceObjects } from '../test/external/bed.js';
import { busySeconds, machineCpuTimes } from './proc.js';
import type { MachineCpuTimes } from './proc.js';
import { distribution } from './stats.js';
import type { IperfJson } from './throughput.js';

export const EXTERNAL_PATHS = ['direct', 'snat', 'tunnel', 'dsr'] as const;
export type ExternalPath = (typeof EXTERNAL_PATHS)[number];
export const DIRECTIONS = ['upload', 'download'] as const;
export type Direction = (typeof DIRECTIONS)[number];

const MODES: Record<Exclude<ExternalPath, 'direct'>, string> = { snat: 'SNAT', tunnel: 'Tunnel', dsr: 'DSR' };
const IPERF_PORT = 5201;
const NODE_PORT = 30201;
const CLUSTER_IP = '10.96.0.201';

export interface ExternalThroughputOptions {
  rounds: number;
  /** iperf3 --time of one measurement (whole seconds). */
  seconds: number;
  progress?: (line: string) => void;
}

export interface ExternalSample {
  gbitPerSec: number;
  /** Bytes the receiver got. */
  bytes: number;
  wallSeconds: number;
  /** CPU seconds per GB received: client + server + ksoftirqd (see the top of this file), and each part. */
  cpuSecondsPerGb: number;
  clientSecondsPerGb: number;
  serverSecondsPerGb: number;
  ksoftirqdSecondsPerGb: number;
  /** The whole machine's busy CPU seconds per GB over the transfer (everyone's work), and its softirq+irq part. */
  machineSecondsPerGb: number;
  machineSoftirqSecondsPerGb: number;
  /** Bytes sent by the ingress node's and the backend node's fabric uplink, per byte received. */
  ingressTxPerByte: number;
  backendTxPerByte: number;
  retransmits: number;
  senderCpuPct: number;
  receiverCpuPct: number;
}

export interface ExternalRow {
  path: ExternalPath;
  direction: Direction;
  /** Medians over the path's measurements. */
  gbitPerSec: number;
  cpuSecondsPerGb: number;
  clientSecondsPerGb: number;
  serverSecondsPerGb: number;
  ksoftirqdSecondsPerGb: number;
  machineSecondsPerGb: number;
  machineSoftirqSecondsPerGb: number;
  ingressTxPerByte: number;
  backendTxPerByte: number;
  retransmits: number;
  /** iperf3 runs of this path and direction that failed (then retried): their errors. */
  failures: string[];
  perMeasurement: ExternalSample[];
}

export interface ExternalThroughputResult {
  bench: 'external-throughput';
  options: Omit<ExternalThroughputOptions, 'progress'>;
  /** Which node each path enters (direct: the node it is routed through) and the backend's node. */
  ingressNodes: Record<ExternalPath, string>;
  backendNode: string;
  /** The machine's busy CPU seconds per second in each round's idle interval. */
  idleBusyPerSecond: number[];
  rows: ExternalRow[];
  leftovers: string[];
}

/** CPU seconds a cgroup v2 group has run so far (cpu.stat usage_usec: kept without the cpu controller). */
function cgroupCpuSeconds(cgroup: string): number {
  const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(cgroup, 'cpu.stat'), 'utf8'));
  if (!m) throw new Error(`external-throughput: no usage_usec in ${cgroup}/cpu.stat`);
  return Number(m[1]) / 1e6;
}

/** The ksoftirqd threads (one per CPU). */
function ksoftirqdPids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return /^ksoftirqd\/\d+$/.test(readFileSync(`/proc/${d}/comm`, 'utf8').trim());
    } catch {
      return false;
    }
  }).map(Number);
}

/** Run time of `pids` so far, seconds (/proc/PID/schedstat: ns on a CPU). */
function threadsCpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9, 0);
}

function cpuDelta(a: MachineCpuTimes, b: MachineCpuTimes): MachineCpuTimes & { busy: number } {
  const d = {
    user: b.user - a.user, nice: b.nice - a.nice, system: b.system - a.system, irq: b.irq - a.irq, softirq: b.softirq - a.softirq, steal: b.steal - a.steal,
  };
  return { ...d, busy: busySeconds(d) };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => distribution(xs).p50;
/** Retries of a failed iperf3 measurement before the bench fails. */
const MEASURE_RETRIES = 3;

/** The order of round r: direct first and last, the three modes rotated by r. */
export function externalRoundOrder(r: number): ExternalPath[] {
  const modes = EXTERNAL_PATHS.filter((p) => p !== 'direct');
  const k = r % modes.length;
  return ['direct', ...modes.slice(k), ...modes.slice(0, k), 'direct'];
}

interface Bed {
  run: TestbedRun;
  cluster: Cluster;
  client: Cluster['clients'][0];
  ingress: Record<ExternalPath, ClusterNode>;
  backend: ClusterNode;
  podIp: string;
  /** cgroups of the iperf3 client (each run) and server. */
  clientCgroup: string;
  serverCgroup: string;
  ksoftirqd: number[];
  /** The agents by node name (their drop counters explain a failed transfer). */
  agents: Map<string, NodeAgent>;
  leftovers(): string[];
}

async function createBed(): Promise<Bed> {
  const run = await TestbedRun.start();
  run.handleProcessEvents(); // SIGINT/SIGTERM: the bed is removed before the process exits
  try {
    // The backend node is the fourth: pod CIDR 10.244.4.0/24, its pod 10.244.4.10.
    const cluster = await createCluster(run, { nodes: [[], [], [], ['iperf-d0']], clients: 1, clientRoutes: [{ cidr: '10.244.4.0/24', node: 0 }] });
    const [a, b, c, d] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const pod = d.pods[0] as ClusterNode['pods'][0];
    const cgRoot = await run.cgroup();
    const clientCgroup = await createCgroup(cgRoot, 'iperf-client');
    const serverCgroup = await createCgroup(cgRoot, 'iperf-server');
    // node-a forwards the direct path to node-d on the same fabric: without this it would tell the
    // client (ICMP redirect) to send to node-d itself, and the direct path would skip node A.
    for (const key of ['all', 'default', NODE_UPLINK]) await setSysctl(a.ns, `net.ipv4.conf.${key}.send_redirects`, '0');
    const [file, ...args] = cgroupArgv(serverCgroup, ['iperf3', '--server', '--port', String(IPERF_PORT)], pod.ns);
    const server = run.own(spawn(file as string, args, { stdio: 'ignore' }), `iperf3 server in ${pod.name}`);
    server.once('error', () => undefined); // a missing iperf3 shows as the first measurement's failure

    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-ext-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeManifest(manifests, 'cluster.json', [
      ...nodeObjects(cluster),
      ...serviceObjects([{
        name: 'iperf', clusterIP: CLUSTER_IP, nodePort: NODE_PORT, pods: [{ pod: pod.name, ip: pod.ip, node: d.name }],
        ports: [{ name: 'iperf', port: IPERF_PORT, protocol: 'TCP', targetPort: IPERF_PORT, nodePort: NODE_PORT }],
      }]),
    ]);
    const agents = await clusterAgents(run, cluster.nodes, work, manifests);
    const modes = [MODES.snat, MODES.tunnel, MODES.dsr, 'Tunnel']; // node-d: the default (its mode governs only what enters at node-d)
    await Promise.all(agents.map((agent, i) => agent.start(['--external-mode', modes[i] as string])));
    await waitSynced(agents);
    const pinRoot = await run.pinDir();
    return {
      run, cluster, client: cluster.clients[0] as Cluster['clients'][0], backend: d, podIp: pod.ip, clientCgroup, serverCgroup, ksoftirqd: ksoftirqdPids(),
      agents: new Map(agents.map((x) => [x.node.name, x])),
      ingress: { direct: a, snat: a, tunnel: b, dsr: c },
      leftovers: () => {
        const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${NETNS_PREFIX}${run.prefix}-`)).map((n) => `/run/netns/${n}`) : [];
        return [...netns, cgRoot, pinRoot].filter((p) => existsSync(p));
      },
    };
  } catch (err) {
    await run.destroy();
    throw err;
  }
}

function target(bed: Bed, path: ExternalPath): { host: string; port: number } {
  return path === 'direct' ? { host: bed.podIp, port: IPERF_PORT } : { host: bed.ingress[path].ip, port: NODE_PORT };
}

/** One iperf3 run; `transfer` is --time SECONDS or --bytes N. */
async function iperf(bed: Bed, path: ExternalPath, direction: Direction, transfer: string[]): Promise<{ out: IperfJson; wallSeconds: number }> {
  const t = target(bed, path);
  const argv = ['iperf3', '--client', t.host, '--port', String(t.port), ...transfer, '--json', ...(direction === 'download' ? ['--reverse'] : [])];
  const t0 = performance.now();
  const r = await runCommand(cgroupArgv(bed.clientCgroup, argv, bed.client.ns), { allowFailure: true, timeoutMs: 90_000 });
  const wallSeconds = (performance.now() - t0) / 1000;
  let out: IperfJson;
  try {
    out = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`external-throughput: iperf3 ${path} ${direction} exited ${r.code}: ${r.stderr.trim() || r.stdout.slice(0, 400)}`);
  }
  if (out.error || !out.end?.sum_received || out.end.sum_received.bytes <= 0) {
    throw new Error(`external-throughput: iperf3 ${path} ${direction}: ${out.error ?? 'no bytes received'}`);
  }
  return { out, wallSeconds };
}

async function measure(bed: Bed, path: ExternalPath, direction: Direction, seconds: number): Promise<ExternalSample> {
  const ingress = bed.ingress[path];
  const [i0, b0] = await Promise.all([linkCounters(ingress.ns, NODE_UPLINK), linkCounters(bed.backend.ns, NODE_UPLINK)]);
  const c0 = machineCpuTimes();
  const p0 = [cgroupCpuSeconds(bed.clientCgroup), cgroupCpuSeconds(bed.serverCgroup), threadsCpuSeconds(bed.ksoftirqd)];
  const { out, wallSeconds } = await iperf(bed, path, direction, ['--time', String(seconds)]);
  const p1 = [cgroupCpuSeconds(bed.clientCgroup), cgroupCpuSeconds(bed.serverCgroup), threadsCpuSeconds(bed.ksoftirqd)];
  const cpu = cpuDelta(c0, machineCpuTimes());
  const [client, server, ksoftirqd] = p1.map((v, i) => v - (p0[i] as number)) as [number, number, number];
  const [i1, b1] = await Promise.all([linkCounters(ingress.ns, NODE_UPLINK), linkCounters(bed.backend.ns, NODE_UPLINK)]);
  const recv = out.end?.sum_received as { bytes: number; bits_per_second: number };
  const gb = recv.bytes / 1e9;
  return {
    gbitPerSec: recv.bits_per_second / 1e9, bytes: recv.bytes, wallSeconds,
    cpuSecondsPerGb: (client + server + ksoftirqd) / gb, clientSecondsPerGb: client / gb, serverSecondsPerGb: server / gb, ksoftirqdSecondsPerGb: ksoftirqd / gb,
    machineSecondsPerGb: cpu.busy / gb, machineSoftirqSecondsPerGb: (cpu.softirq + cpu.irq) / gb,
    ingressTxPerByte: (i1.txBytes - i0.txBytes) / recv.bytes, backendTxPerByte: (b1.txBytes - b0.txBytes) / recv.bytes,
    retransmits: out.end?.sum_sent?.retransmits ?? 0,
    senderCpuPct: out.end?.cpu_utilization_percent?.[direction === 'upload' ? 'host_total' : 'remote_total'] ?? NaN,
    receiverCpuPct: out.end?.cpu_utilization_percent?.[direction === 'upload' ? 'remote_total' : 'host_total'] ?? NaN,
  };
}

/** The drops the path's ingress and the backend node's agents counted so far (what a failed transfer may have met). */
async function dropsOf(bed: Bed, path: ExternalPath): Promise<string> {
  const parts: string[] = [];
  for (const node of new Set([bed.ingress[path].name, bed.backend.name])) {
    const c = await bed.agents.get(node)?.ctl<{ drops: { reason: string; packets: number }[] }>(['counters']).catch(() => undefined);
    parts.push(`${node} drops: ${c ? c.drops.filter((d) => d.packets > 0).map((d) => `${d.reason} ${d.packets}`).join(', ') || 'none' : 'unknown'}`);
  }
  return parts.join('; ');
}

/** The machine's busy CPU seconds per second while the bed sits idle for `seconds`. */
async function idleRate(seconds: number): Promise<number> {
  const c0 = machineCpuTimes();
  const t0 = performance.now();
  await pause(seconds * 1000);
  return cpuDelta(c0, machineCpuTimes()).busy / ((performance.now() - t0) / 1000);
}

/** Warm-up: a short transfer on every path and direction (the iperf3 server may still be starting). */
async function warmUp(bed: Bed): Promise<void> {
  for (const path of EXTERNAL_PATHS) {
    for (const direction of DIRECTIONS) {
      for (let attempt = 1; ; attempt++) {
        try {
          await iperf(bed, path, direction, ['--bytes', '4M']);
          break;
        } catch (err) {
          if (attempt >= 10) throw err;
          await pause(500);
        }
      }
    }
  }
}

/** Runs the bench (needs root, iperf3 and a built tree). */
export async function runExternalThroughputBench(o: ExternalThroughputOptions): Promise<ExternalThroughputResult> {
  const say = o.progress ?? (() => undefined);
  const bed = await createBed();
  const samples = new Map<string, ExternalSample[]>();
  const failures = new Map<string, string[]>();
  const idle: number[] = [];
  let leftovers: string[] = [];
  try {
    await warmUp(bed);
    say('external-throughput: bed up, every path warmed up');
    for (let r = 0; r < o.rounds; r++) {
      const rate = await idleRate(o.seconds);
      idle.push(rate);
      for (const path of externalRoundOrder(r)) {
        for (const direction of r % 2 === 0 ? DIRECTIONS : [...DIRECTIONS].reverse()) {
          const key = `${path}/${direction}`;
          let sample: ExternalSample | undefined;
          // A failed transfer is a result (kept, shown with the row) and retried after a growing
          // pause, so one glitch does not cost a long run its figures; the fourth failure in a
          // row fails the bench. (Failures here once exposed a datapath bug: docs/benchmarks.md.)
          for (let attempt = 1; !sample; attempt++) {
            try {
              sample = await measure(bed, path, direction, o.seconds);
            } catch (err) {
              if (attempt > MEASURE_RETRIES) throw err;
              const message = `${(err as Error).message} (${await dropsOf(bed, path)})`;
              failures.set(key, [...(failures.get(key) ?? []), `round ${r + 1}: ${message}`]);
              say(`external-throughput: round ${r + 1}: ${message}; retrying`);
              await pause(1000 * attempt);
            }
          }
          samples.set(key, [...(samples.get(key) ?? []), sample]);
        }
      }
      say(`external-throughput: round ${r + 1}/${o.rounds} done (idle machine ${rate.toFixed(2)} CPU-s/s)`);
    }
  } finally {
    await bed.run.destroy();
    leftovers = bed.leftovers();
  }
  const rows: ExternalRow[] = [];
  for (const path of EXTERNAL_PATHS) {
    for (const direction of DIRECTIONS) {
      const s = samples.get(`${path}/${direction}`) ?? [];
      const m = (f: (x: ExternalSample) => number) => median(s.map(f));
      rows.push({
        path, direction, gbitPerSec: m((x) => x.gbitPerSec), cpuSecondsPerGb: m((x) => x.cpuSecondsPerGb),
        clientSecondsPerGb: m((x) => x.clientSecondsPerGb), serverSecondsPerGb: m((x) => x.serverSecondsPerGb), ksoftirqdSecondsPerGb: m((x) => x.ksoftirqdSecondsPerGb),
        machineSecondsPerGb: m((x) => x.machineSecondsPerGb), machineSoftirqSecondsPerGb: m((x) => x.machineSoftirqSecondsPerGb),
        ingressTxPerByte: m((x) => x.ingressTxPerByte), backendTxPerByte: m((x) => x.backendTxPerByte),
        retransmits: s.reduce((n, x) => n + x.retransmits, 0), failures: failures.get(`${path}/${direction}`) ?? [], perMeasurement: s,
      });
    }
  }
  const { progress: _progress, ...options } = o;
  const ingressNodes = Object.fromEntries(EXTERNAL_PATHS.map((p) => [p, bed.ingress[p].name])) as Record<ExternalPath, string>;
  return { bench: 'external-throughput', options, ingressNodes, backendNode: bed.backend.name, idleBusyPerSecond: idle, rows, leftovers };
}

export const PATH_NAMES: Record<ExternalPath, string> = { direct: 'direct (pod IP)', snat: 'NodePort, SNAT', tunnel: 'NodePort, Tunnel', dsr: 'NodePort, DSR' };

export function formatExternalThroughput(r: ExternalThroughputResult): string {
  const direct = (d: Direction) => r.rows.find((x) => x.path === 'direct' && x.direction === d);
  return [
    `iperf3, one TCP stream, external client → ingress node → pod on ${r.backendNode}; medians of ${r.options.rounds} rounds × ${r.options.seconds} s ` +
      `(direct twice a round); CPU = iperf3 client + server + ksoftirqd (machine busy while idle: ${r.idleBusyPerSecond.map((x) => x.toFixed(2)).join(', ')} CPU-s/s)`,
    `${'path'.padEnd(18)} ${'direction'.padEnd(9)} ${'Gbit/s'.padStart(7)} ${'/direct'.padStart(8)} ${'CPU s/GB'.padStart(9)} ${'cli/srv/ksoftirqd'.padStart(17)} ` +
      `${'machine'.padStart(8)} ${'A tx/B'.padStart(7)} ${'B tx/B'.padStart(7)} ${'retr'.padStart(5)}`,
    ...r.rows.map((x) => [PATH_NAMES[x.path].padEnd(18), x.direction.padEnd(9), x.gbitPerSec.toFixed(2).padStart(7),
      `${(x.gbitPerSec / (direct(x.direction)?.gbitPerSec ?? NaN)).toFixed(2)}×`.padStart(8), x.cpuSecondsPerGb.toFixed(3).padStart(9),
      `${x.clientSecondsPerGb.toFixed(2)}/${x.serverSecondsPerGb.toFixed(2)}/${x.ksoftirqdSecondsPerGb.toFixed(2)}`.padStart(17),
      x.machineSecondsPerGb.toFixed(2).padStart(8),
      x.ingressTxPerByte.toFixed(3).padStart(7), x.backendTxPerByte.toFixed(3).padStart(7), String(x.retransmits).padStart(5),
      x.failures.length > 0 ? ` FAILED ${x.failures.length}× (retried): ${x.failures.join('; ')}` : ''].join(' ')),
  ].join('\n');
}
