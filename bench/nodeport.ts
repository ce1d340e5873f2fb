// NodePort from outside the node, Sluice against kube-proxy-shaped iptables (issue 14):
// connection latency (p50/p99) and connections per second from an external client to node A's
// NodePort, with the backend on node A (DNAT) and on node B (SNAT, forwarded), at several
// service counts, in one run.
//
//   npm run bench -- --only nodeport [--quick] [--nodeport-services 1,1000,10000] [--nodeport-rounds 5]
//
// Two identical two-node beds (src/testbed/cluster.ts), alive side by side: one runs a
// sluice-agent per node, the other has kube-proxy's rules for the same objects in both nodes'
// tables (src/testbed/kube-proxy-rules.ts, iptables-legacy by default, SLUICE_IPTABLES_RESTORE=
// iptables-nft-restore for nft) and no agent. Rounds interleave the beds (the order alternates)
// and the figures are medians over rounds: the machine is shared and noisy.
//
// Services: at scale N, the two measured NodePort services plus N-1 ClusterIP services of one
// endpoint each (N+1 in all; at scale 1 the measured two alone).
// The fillers are what kube-proxy makes a NodePort packet walk past (its KUBE-NODEPORTS jump is
// the last rule of KUBE-SERVICES, after every ClusterIP); a NodePort range of 2768 ports could not
// hold 10k NodePort services anyway. Only a flow's first packet walks the nat rules (conntrack
// carries the rest), so the latency of a new connection is what grows.
//
// One connection = connect, read the echo server's one-line answer, close (test/traffic/client.mjs,
// a long-lived client in the client namespace). Latency: `latencyConnections` one after the other.
// Rate: `rateWorkers` loops opening connections back to back for `rateSeconds`.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCgroup } from '../src/testbed/cgroup.js';
import { createCluster } from '../src/testbed/cluster.js';
import type { Cluster } from '../src/testbed/cluster.js';
import { clusterAgents, writeManifest } from '../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../src/testbed/cluster-agent.js';
import { startEchoServer } from '../src/testbed/echo.js';
import type { IptablesBackend } from '../src/testbed/iptables.js';
import { TestbedRun } from '../src/testbed/run.js';
import { TrafficClient } from '../test/traffic/traffic-client.js';
import type { MeasuredService } from './service-objects.js';
import { benchIptablesBackend, benchObjects, ECHO_PORT, kubeProxyApply, waitProgrammed } from './service-objects.js';
import { distribution } from './stats.js';

export type Dataplane = 'sluice' | 'kube-proxy';
export type BackendPlace = 'local' | 'remote';

export interface NodePortOptions {
  /** Scales N: the two measured NodePort services and N-1 ClusterIP fillers. */
  services: number[];
  rounds: number;
  latencyConnections: number;
  rateSeconds: number;
  rateWorkers: number;
  progress?: (line: string) => void;
}

export interface NodePortRow {
  dataplane: Dataplane;
  backend: BackendPlace;
  services: number;
  /** Medians over rounds of each round's p50 / p99 (ms). */
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Median over rounds of connections per second. */
  connPerSec: number;
  /** Failed connections over all rounds (latency and rate). */
  failures: number;
  /** Connections answered by the wrong pod (must be 0). */
  misrouted: number;
  /** Sluice's `snat_ports` drops on node A during this scale's rounds (kube-proxy: 0). */
  snatPortDrops: number;
  perRound: { p50: number; p99: number; connPerSec: number }[];
}

export interface NodePortResult {
  bench: 'nodeport';
  options: Omit<NodePortOptions, 'progress'>;
  iptablesBackend: IptablesBackend;
  rows: NodePortRow[];
}

const MEASURED = [
  { name: 'np-local', nodePort: 30011, clusterIP: '10.96.0.11', place: 'local' as const },
  { name: 'np-remote', nodePort: 30012, clusterIP: '10.96.0.12', place: 'remote' as const },
];

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => distribution(xs).p50;

function measuredServices(c: Cluster): MeasuredService[] {
  const [nodeA, nodeB] = c.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  return MEASURED.map((m) => {
    const node = m.place === 'local' ? nodeA : nodeB;
    return { name: m.name, clusterIP: m.clusterIP, nodePort: m.nodePort, endpoint: { ip: (node.pods[0] as { ip: string }).ip, node: node.name } };
  });
}

function objects(c: Cluster, services: number): unknown[] {
  return benchObjects(c.nodes, measuredServices(c), services - 1, (c.nodes[1] as Cluster['nodes'][0]).name);
}

interface Bed {
  dataplane: Dataplane;
  run: TestbedRun;
  cluster: Cluster;
  client: TrafficClient;
  /** Programs the bed for `services` services (the objects of `objects()`). */
  apply(services: number): Promise<void>;
  /** Sluice's `snat_ports` drops on node A so far (0 for kube-proxy). */
  snatPortDrops(): Promise<number>;
}

async function createBed(dataplane: Dataplane, backend: IptablesBackend): Promise<Bed> {
  const run = await TestbedRun.start();
  run.handleProcessEvents(); // SIGINT/SIGTERM: both beds are removed before the process exits
  try {
    const cluster = await createCluster(run, { nodes: [['web-a0'], ['web-b0']], clients: 1 });
    for (const node of cluster.nodes) for (const p of node.pods) await startEchoServer(run, { name: p.name, ns: p.ns, tcp: [ECHO_PORT] });
    const client = await TrafficClient.start(run, (cluster.clients[0] as Cluster['clients'][0]).ns, await createCgroup(await run.cgroup(), 'client'));
    if (dataplane === 'kube-proxy') {
      return {
        dataplane, run, cluster, client,
        snatPortDrops: async () => 0,
        apply: async (services) => {
          const objs = objects(cluster, services);
          for (const node of cluster.nodes) await kubeProxyApply(node, objs, measuredServices(cluster), backend);
        },
      };
    }
    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-np-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeManifest(manifests, 'cluster.json', objects(cluster, 1));
    const agents = await clusterAgents(run, cluster.nodes, work, manifests);
    // SNAT explicitly: the comparison with kube-proxy's masquerade.
    await Promise.all(agents.map((a) => a.start(['--external-mode', 'SNAT'])));
    const agentA = agents[0] as NodeAgent;
    return {
      dataplane, run, cluster, client,
      apply: async (services) => {
        await writeManifest(manifests, 'cluster.json', objects(cluster, services));
        for (const a of agents) await waitProgrammed(a, services + 1); // + the measured second service
      },
      snatPortDrops: async () => {
        const c = await agentA.ctl<{ drops: { reason: string; packets: number }[] }>(['counters', '--timeout', '18000']);
        return c.drops.find((d) => d.reason === 'snat_ports')?.packets ?? 0;
      },
    };
  } catch (err) {
    await run.destroy();
    throw err;
  }
}

interface RoundSample { p50: number; p99: number; connPerSec: number; failures: number; misrouted: number }

async function measure(bed: Bed, place: BackendPlace, o: NodePortOptions): Promise<RoundSample> {
  const nodeA = bed.cluster.nodes[0] as Cluster['nodes'][0];
  const m = MEASURED.find((x) => x.place === place) as (typeof MEASURED)[0];
  const want = ((place === 'local' ? nodeA : bed.cluster.nodes[1]) as Cluster['nodes'][0]).pods[0]?.name;
  const target = { host: nodeA.ip, port: m.nodePort, timeoutMs: 3000 };
  const attempts = await bed.client.tcp(target, o.latencyConnections);
  const ok = attempts.filter((a) => a.ok);
  const d = distribution(ok.map((a) => a.ms));
  await bed.client.startLoop('rate', target, { proto: 'tcp', workers: o.rateWorkers, gapMs: 0 });
  await pause(o.rateSeconds * 1000);
  const loop = await bed.client.stopLoop('rate');
  return {
    p50: d.p50, p99: d.p99, connPerSec: (loop.attempts - loop.failures) / o.rateSeconds,
    failures: attempts.length - ok.length + loop.failures,
    misrouted: ok.filter((a) => a.backend !== want).length + Object.entries(loop.backends).filter(([b]) => b !== want).reduce((n, [, v]) => n + v, 0),
  };
}

/** Runs the whole NodePort bench (needs root and a built tree). */
export async function runNodePortBench(o: NodePortOptions): Promise<NodePortResult> {
  const say = o.progress ?? (() => undefined);
  const backend = benchIptablesBackend();
  const beds: Bed[] = [];
  const rows: NodePortRow[] = [];
  try {
    beds.push(await createBed('sluice', backend));
    beds.push(await createBed('kube-proxy', backend));
    for (const services of o.services) {
      const t0 = performance.now();
      for (const bed of beds) await bed.apply(services);
      say(`${services} services: both beds programmed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const samples = new Map<string, RoundSample[]>();
      const drops0 = await Promise.all(beds.map((b) => b.snatPortDrops()));
      for (let r = 0; r < o.rounds; r++) {
        // Alternate which bed goes first, and the path order, so neither always meets the same noise.
        const order = r % 2 === 0 ? beds : [...beds].reverse();
        for (const bed of order) {
          for (const place of (r % 2 === 0 ? ['local', 'remote'] : ['remote', 'local']) as BackendPlace[]) {
            const s = await measure(bed, place, o);
            const key = `${bed.dataplane}/${place}`;
            samples.set(key, [...(samples.get(key) ?? []), s]);
          }
        }
        say(`${services} services: round ${r + 1}/${o.rounds} done`);
      }
      const drops1 = await Promise.all(beds.map((b) => b.snatPortDrops()));
      for (const [b, bed] of beds.entries()) {
        for (const place of ['local', 'remote'] as BackendPlace[]) {
          const s = samples.get(`${bed.dataplane}/${place}`) ?? [];
          rows.push({
            dataplane: bed.dataplane, backend: place, services,
            latencyP50Ms: median(s.map((x) => x.p50)), latencyP99Ms: median(s.map((x) => x.p99)), connPerSec: median(s.map((x) => x.connPerSec)),
            failures: s.reduce((n, x) => n + x.failures, 0), misrouted: s.reduce((n, x) => n + x.misrouted, 0),
            snatPortDrops: place === 'remote' ? (drops1[b] ?? 0) - (drops0[b] ?? 0) : 0,
            perRound: s.map(({ p50, p99, connPerSec }) => ({ p50, p99, connPerSec })),
          });
        }
      }
    }
  } finally {
    for (const bed of beds) await bed.run.destroy();
  }
  const { progress: _progress, ...options } = o;
  return { bench: 'nodeport', options, iptablesBackend: backend, rows };
}

export function formatNodePort(r: NodePortResult): string {
  const head = `${'services'.padStart(8)}  ${'backend'.padEnd(7)}  ${'dataplane'.padEnd(10)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'conn/s'.padStart(7)} ${'failed'.padStart(6)} ${'snat drops'.padStart(10)}`;
  return [
    `NodePort from an external client to node A, medians of ${r.options.rounds} interleaved rounds ` +
      `(${r.options.latencyConnections} sequential connections for latency, ${r.options.rateWorkers} workers × ${r.options.rateSeconds} s for rate; iptables-${r.iptablesBackend})`,
    head,
    ...r.rows.map((x) => [String(x.services).padStart(8), ` ${x.backend.padEnd(7)}`, ` ${x.dataplane.padEnd(10)}`, x.latencyP50Ms.toFixed(3).padStart(7),
      x.latencyP99Ms.toFixed(3).padStart(7), x.connPerSec.toFixed(0).padStart(7), String(x.failures + x.misrouted).padStart(6),
      String(x.snatPortDrops).padStart(10)].join(' ')),
  ].join('\n');
}
