// IPv6 and dual-stack external traffic on the external-traffic bed (issue 16), run by
// external-traffic.test.ts on its dual-stack bed (CI time: no second bed, no second pair of
// agents). One long-lived client process in the client namespace sends every probe (a process
// start costs seconds on a loaded CI machine):
//   - NodePort at node A's IPv6 address, backend on A: DNAT only, the pod sees the client's IPv6
//     address, the client talks to [node A]:nodePort throughout;
//   - an IPv6 ExternalIP and LoadBalancer IP routed to node A, backend on A, the same;
//   - eTP=Local over IPv6: node A without a local backend drops (health check 503), node B
//     serves with the client's address (200);
//   - an IPv6 service without endpoints: refused at once (a TCP RST from the frontend);
//   - a dual-stack Service's NodePort reached over both families from the one client, each
//     answered by the pod, which sees the client's address of that family, from the node's
//     address of that family;
//   - UDP to an IPv6 NodePort, the reply from [node A]:nodePort;
//   - NodePort at node A's IPv6 address, backend only on B: SNAT to node A's IPv6 address and a
//     port of the SNAT range, the reply back through A;
//   - node A's own process (its agent's cgroup: connect-time programs) and pod A itself (hairpin)
//     reach pod A's IPv6 NodePort at [node A];
//   - loadBalancerSourceRanges over IPv6: one LoadBalancer IP whose range holds the client's
//     /128: the client is served, the far client (behind the routers, outside the range) is
//     dropped (a timeout, not a refusal) and node A counts it `src_range`; the far client reaches
//     another IPv6 LoadBalancer IP without ranges (so the drop is the range's, not the route's);
//   - Maglev over IPv6: a UDP NodePort with a backend on each node; eight flows of the client
//     (source ports chosen so that the TS mirror of the table sends four to each pod) each reach
//     the predicted pod through [node A] and through [node B];
//   - then the IPv6 transfers of ipv6-transfer-scenarios.ts (1 MiB through SNAT, path MTU).
import type { Test } from 'tap';
import { MAGLEV_DEFAULT_SIZE, backendIdentity, buildMaglevTable, maglevFlowHash } from '../../src/dataplane/maglev-table.js';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import type { Cluster, ClusterClient, ClusterNode, ClusterPod } from '../../src/testbed/cluster.js';
import { runEchoClient } from '../../src/testbed/echo.js';
import type { EchoAttempt } from '../../src/testbed/echo.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { netnsArgv } from '../../src/testbed/netns.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import type { Attempt, TrafficClient } from '../traffic/traffic-client.js';
import { dropsOf, UDP_ECHO } from './bed.js';
import type { BedPod, Svc } from './bed.js';
import { ipv6TransferScenarios, ipv6TransferServices } from './ipv6-transfer-scenarios.js';

export const EXTERNAL_IP6 = '2001:db8:ec::10';
export const LB_IP6 = '2001:db8:1b::10';
/** The LoadBalancer IP of the Service with source ranges. */
const LB_RANGES_IP6 = '2001:db8:1b::20';
/** The clients (and the edge router) route these to node A (beside the IPv4 ones). */
export const CLIENT_ROUTES6 = [EXTERNAL_IP6, LB_IP6, LB_RANGES_IP6].map((ip) => ({ cidr: `${ip}/128`, node: 0 }));

const LOCAL6 = 30031;
const LB6 = 30032;
const ETP_LOCAL6 = 30033;
const EMPTY6 = 30034;
const DUAL = 30035;
const UDP6 = 30036;
const REMOTE6 = 30037;
const RANGES6 = 30038;
const MAGLEV6 = 30039;
/** UDP: IPPROTO_UDP, in the Maglev flow hash. */
const UDP_PROTO = 17;
const HC_PORT6 = 32101;

const bedPod = (n: ClusterNode): BedPod => {
  const p = n.pods[0] as ClusterPod;
  if (!p.ip6) throw new Error(`ipv6 scenarios: pod ${p.name} has no IPv6 address (createCluster ipv6)`);
  return { pod: p.name, ip: p.ip, ip6: p.ip6, node: n.name };
};

/** The scenarios' Services (IPv6-only but one, which is dual-stack). */
export function ipv6Services(c: Cluster): Svc[] {
  const [a, b] = c.nodes as [ClusterNode, ClusterNode];
  const [onA, onB] = [bedPod(a), bedPod(b)];
  const client6 = (c.clients[0] as ClusterClient).ip6;
  return [
    { name: 'local6', clusterIP: 'fd00:96::31', nodePort: LOCAL6, pods: [onA] },
    {
      name: 'lb6', clusterIP: 'fd00:96::32', nodePort: LB6, pods: [onA], extra: { type: 'LoadBalancer', externalIPs: [EXTERNAL_IP6] },
      status: { loadBalancer: { ingress: [{ ip: LB_IP6 }] } },
    },
    {
      name: 'etp-local6', clusterIP: 'fd00:96::33', nodePort: ETP_LOCAL6, pods: [onB],
      extra: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: HC_PORT6 },
    },
    { name: 'empty6', clusterIP: 'fd00:96::34', nodePort: EMPTY6, pods: [] },
    { name: 'dual', clusterIP: '10.96.0.35', clusterIP6: 'fd00:96::35', nodePort: DUAL, pods: [onA] },
    { name: 'udp6', clusterIP: 'fd00:96::36', nodePort: UDP6, protocol: 'UDP', targetPort: UDP_ECHO, pods: [onA] },
    { name: 'remote6', clusterIP: 'fd00:96::37', nodePort: REMOTE6, pods: [onB] },
    {
      name: 'ranges6', clusterIP: 'fd00:96::38', nodePort: RANGES6, pods: [onA],
      extra: { type: 'LoadBalancer', loadBalancerSourceRanges: [`${client6}/128`] }, status: { loadBalancer: { ingress: [{ ip: LB_RANGES_IP6 }] } },
    },
    { name: 'maglev6', clusterIP: 'fd00:96::39', nodePort: MAGLEV6, protocol: 'UDP', targetPort: UDP_ECHO, pods: [onA, onB] },
    ...ipv6TransferServices(onA, onB),
  ];
}

export interface Ipv6Bed {
  run: TestbedRun;
  cluster: Cluster;
  agents: NodeAgent[];
  /** A long-lived client in the client namespace, without connect-time programs. */
  client: TrafficClient;
  /** HTTP status of GET http://host:port/ from the client namespace (0: no answer). */
  httpStatus(host: string, port: number): Promise<number>;
}

/** "addr:port" with the port cut off (IPv6 addresses hold colons too). */
const addressOf = (endpoint: string | undefined) => (endpoint ?? '').replace(/:\d+$/, '');
const one = (a: Attempt[]) => a[0] as Attempt;
const why = (a: Attempt) => `${a.code ?? 'ok'} after ${a.ms} ms${a.message ? `: ${a.message}` : ''}`;

/** Answer timeout: a busy machine can be slow to answer. A drop shows as DROP_MS. */
const ANSWER_MS = 5000;
const DROP_MS = 1500;

export async function ipv6Scenarios(t: Test, bed: Ipv6Bed): Promise<void> {
  const c = bed.cluster;
  const [nodeA, nodeB] = c.nodes as [ClusterNode, ClusterNode];
  const [agentA] = bed.agents as [NodeAgent];
  const client = c.clients[0] as ClusterClient;
  const podA = nodeA.pods[0] as ClusterPod;
  const podB = nodeB.pods[0] as ClusterPod;
  const [a6, b6, client6] = [nodeA.ip6, nodeB.ip6, client.ip6];
  if (!a6 || !b6 || !client6) throw new Error('ipv6 scenarios: the bed is not dual-stack (createCluster ipv6)');
  const tcp = async (host: string, port: number, timeoutMs = ANSWER_MS) => one(await bed.client.tcp({ host, port, timeoutMs }));
  const started = Date.now();

  // The refusal first and alone: the rest run at once, and an answer must come at once.
  await t.test('IPv6: a service without endpoints is refused at once (RST from the NodePort)', async (t) => {
    const r = await tcp(a6, EMPTY6, 3000);
    t.equal(r.code, 'ECONNREFUSED', `refused (${why(r)})`);
    t.ok(r.ms < 900, `at once, before a SYN retransmit (${r.ms} ms)`);
  });

  // The other probes are independent (a service or address each): all at once, then checked.
  const inside = (ns: string, cgroup?: string) =>
    runEchoClient({ ns, ...(cgroup ? { cgroup } : {}), proto: 'tcp', host: a6, port: LOCAL6, timeoutMs: ANSWER_MS }).then((r) => r[0] as EchoAttempt);
  const [local, external, lb, dropped, served, hcA, hcB, v4, v6, udp, remote, own, hairpin] = await Promise.all([
    tcp(a6, LOCAL6), tcp(EXTERNAL_IP6, 80), tcp(LB_IP6, 80),
    tcp(a6, ETP_LOCAL6, DROP_MS), tcp(b6, ETP_LOCAL6), bed.httpStatus(a6, HC_PORT6), bed.httpStatus(b6, HC_PORT6),
    tcp(nodeA.ip, DUAL), tcp(a6, DUAL),
    bed.client.udp({ host: a6, port: UDP6, timeoutMs: ANSWER_MS }).then(one),
    tcp(a6, REMOTE6),
    inside(nodeA.ns, agentA.cgroup), inside(podA.ns),
  ]);

  await t.test('IPv6: NodePort at node A, backend on A: DNAT only, the pod sees the client\'s IPv6 address', async (t) => {
    t.ok(local.ok, `answered (${why(local)})`);
    t.equal(local.backend, podA.name);
    t.equal(addressOf(local.peer), client6, 'the pod saw the client\'s own IPv6 address');
    t.equal(local.remote, `${a6}:${LOCAL6}`, 'the client talks to [node A]:nodePort throughout');
  });

  await t.test('IPv6: an ExternalIP and a LoadBalancer IP routed to node A reach the backend on A, replies from the frontend', async (t) => {
    for (const [r, host, what] of [[external, EXTERNAL_IP6, 'ExternalIP'], [lb, LB_IP6, 'LoadBalancer IP']] as const) {
      t.ok(r.ok, `${what}: answered (${why(r)})`);
      t.equal(r.backend, podA.name, `${what}: the backend on A`);
      t.equal(addressOf(r.peer), client6, `${what}: the pod saw the client`);
      t.equal(r.remote, `${host}:80`, `${what}: the reply came from ${host}:80`);
    }
  });

  await t.test('IPv6 eTP=Local: node A without a local backend drops and says 503; node B serves with the client\'s address and says 200', async (t) => {
    t.notOk(dropped.ok, 'no answer through node A');
    t.ok(dropped.code === 'ETIMEDOUT' && dropped.ms >= DROP_MS - 100, `dropped, not refused (${why(dropped)})`);
    t.ok(served.ok, `node B answers (${why(served)})`);
    t.equal(served.backend, podB.name);
    t.equal(addressOf(served.peer), client6, 'the pod on B saw the client\'s IPv6 address');
    t.equal(hcA, 503, 'health check on [node A]: 503');
    t.equal(hcB, 200, 'health check on [node B]: 200');
  });

  await t.test('dual stack: one Service\'s NodePort reached over both families from one client, each reply from that family\'s node address', async (t) => {
    for (const [r, node, self, family] of [[v4, nodeA.ip, client.ip, 'IPv4'], [v6, a6, client6, 'IPv6']] as const) {
      t.ok(r.ok, `${family}: answered (${why(r)})`);
      t.equal(r.backend, podA.name, `${family}: by the pod on A`);
      t.equal(addressOf(r.peer), self, `${family}: which saw the client's ${family} address`);
      t.equal(r.remote, `${node}:${DUAL}`, `${family}: the reply came from ${node}:${DUAL}`);
    }
  });

  await t.test('IPv6: UDP to a NodePort, the reply from [node A]:nodePort', async (t) => {
    t.ok(udp.ok, `answered (${why(udp)})`);
    t.equal(udp.backend, podA.name);
    t.equal(addressOf(udp.peer), client6, 'the pod saw the client\'s IPv6 address');
    t.equal(udp.from, `${a6}:${UDP6}`, 'recvfrom: [node A]:nodePort');
  });

  await t.test('IPv6: NodePort at node A, backend only on B: SNAT to node A\'s IPv6 address, reply back through A', async (t) => {
    t.ok(remote.ok, `answered (${why(remote)})`);
    t.equal(remote.backend, podB.name);
    const [seen, port] = [addressOf(remote.peer), Number(/:(\d+)$/.exec(remote.peer ?? '')?.[1])];
    t.equal(seen, a6, 'the pod on B saw node A\'s IPv6 address (SNAT)');
    t.ok(port >= 61000 && port <= 65535, `from the reserved SNAT range (${port})`);
    t.equal(remote.remote, `${a6}:${REMOTE6}`, 'the client talks to [node A]:nodePort throughout');
  });

  await t.test('IPv6: node A\'s own process and pod A (hairpin) reach pod A\'s NodePort at [node A]', async (t) => {
    for (const [r, who] of [[own, 'node A\'s own process'], [hairpin, 'pod A (hairpin)']] as const) {
      t.ok(r.ok, `${who}: answered (${JSON.stringify(r.error ?? null)}; the pod saw ${JSON.stringify(r.seenPeer ?? null)})`);
      t.equal(r.pod, podA.name, `${who}: served by pod A`);
      t.same(r.peername, { address: a6, port: LOCAL6 }, `${who}: getpeername() says [node A]:nodePort`);
    }
    t.equal(hairpin.seenPeer?.address, a6, 'pod A saw its hairpinned connection come from the frontend, [node A] (as in IPv4)');
  });

  await t.test('sluicectl shows the IPv6 external frontends', async (t) => {
    const nat = await agentA.ctl<{ frontends: { ip: string; port: number; kind: string }[] }>(['nat', 'dump']);
    const kinds = new Set(nat.frontends.map((f) => `${f.kind} ${f.ip}:${f.port}`));
    for (const want of [`NodePort ${a6}:${LOCAL6}`, `NodePort ${a6}:${DUAL}`, `NodePort ${nodeA.ip}:${DUAL}`, `ExternalIP ${EXTERNAL_IP6}:80`, `LoadBalancer ${LB_IP6}:80`]) {
      t.ok(kinds.has(want), want);
    }
  });
  const more = Date.now();
  await rangesAndMaglev(t, bed);
  const transfers = Date.now();
  await ipv6TransferScenarios(t, bed.run, c);
  t.comment(`IPv6 scenarios took ${Date.now() - started} ms (source ranges and Maglev ${transfers - more} ms, transfers ${Date.now() - transfers} ms)`);
}

/** One UDP socket per source port, asking each host in turn; prints which pod answered each. */
const maglevProbe = (hosts: string[], port: number, ports: number[]) => `
const dgram = require('dgram');
const ask = (s, host) => new Promise((res) => {
  const timer = setTimeout(() => { s.removeAllListeners('message'); res(null); }, 3000);
  s.once('message', (m) => { clearTimeout(timer); try { res(JSON.parse(String(m)).pod ?? null); } catch { res(null); } });
  s.send('maglev', ${port}, host);
});
(async () => {
  const out = [];
  for (const p of ${JSON.stringify(ports)}) {
    const s = dgram.createSocket('udp6');
    await new Promise((r) => s.bind(p, '::', r));
    const pods = [];
    for (const h of ${JSON.stringify(hosts)}) pods.push(await ask(s, h));
    out.push({ port: p, pods });
    s.close();
  }
  console.log(JSON.stringify(out));
})();`;

async function rangesAndMaglev(t: Test, bed: Ipv6Bed): Promise<void> {
  const c = bed.cluster;
  const [nodeA, nodeB] = c.nodes as [ClusterNode, ClusterNode];
  const [agentA] = bed.agents as [NodeAgent];
  const client = c.clients[0] as ClusterClient;
  const far = c.routedClients[0] as ClusterClient | undefined;
  const [podA, podB] = [nodeA.pods[0] as ClusterPod, nodeB.pods[0] as ClusterPod];
  if (!far?.ip6) throw new Error('ipv6 scenarios: the bed has no dual-stack far client (createCluster routedClients + ipv6)');
  const fromFar = (host: string, timeoutMs: number) => runEchoClient({ ns: far.ns, proto: 'tcp', host, port: 80, timeoutMs }).then((r) => r[0] as EchoAttempt);

  // Maglev: the TS mirror of the table (identities [address]:port) and of lib/maglev.h's hash.
  const byIdentity = new Map([[backendIdentity(podA.ip6 as string, UDP_ECHO), podA.name], [backendIdentity(podB.ip6 as string, UDP_ECHO), podB.name]]);
  const identities = [...byIdentity.keys()].sort();
  const table = buildMaglevTable(identities, MAGLEV_DEFAULT_SIZE);
  const predict = (port: number) => byIdentity.get(identities[table[maglevFlowHash(client.ip6 as string, port, UDP_PROTO) % MAGLEV_DEFAULT_SIZE] as number] as string);
  const candidates = Array.from({ length: 200 }, (_, i) => 43000 + i);
  const ports = [podA.name, podB.name].flatMap((pod) => candidates.filter((p) => predict(p) === pod).slice(0, 4));

  const srcRangeBefore = (await dropsOf(agentA)).get('src_range') ?? 0;
  const [inside, outside, farControl, maglev] = await Promise.all([
    bed.client.tcp({ host: LB_RANGES_IP6, port: 80, timeoutMs: ANSWER_MS }).then(one),
    fromFar(LB_RANGES_IP6, DROP_MS),
    fromFar(LB_IP6, ANSWER_MS),
    runCommand(netnsArgv(client.ns, [process.execPath, '-e', maglevProbe([nodeA.ip6 as string, nodeB.ip6 as string], MAGLEV6, ports)]), { timeoutMs: 60_000, allowFailure: true }),
  ]);
  const srcRangeAfter = (await dropsOf(agentA)).get('src_range') ?? 0;

  await t.test('IPv6 loadBalancerSourceRanges: the client inside the range is served, the far client outside it dropped and counted src_range', async (t) => {
    t.ok(inside.ok, `inside the range (${why(inside)})`);
    t.equal(inside.backend, podA.name);
    t.equal(addressOf(inside.peer), client.ip6, 'the pod saw the client\'s IPv6 address');
    t.notOk(outside.ok, 'outside the range: no answer');
    t.equal(outside.error?.code, 'ETIMEDOUT', `dropped, not rejected (${JSON.stringify(outside.error ?? null)})`);
    t.ok(farControl.ok, `the far client reaches ${LB_IP6} (no ranges) through the same route (${JSON.stringify(farControl.error ?? null)})`);
    t.equal(farControl.seenPeer?.address, far.ip6, 'with its own IPv6 address');
    t.ok(srcRangeAfter > srcRangeBefore, `node A counted the drop as src_range (${srcRangeBefore} -> ${srcRangeAfter})`);
  });

  await t.test('IPv6 Maglev: each client flow reaches the backend the table predicts, through [node A] and through [node B]', async (t) => {
    t.equal(ports.length, 8, 'four source ports predicted for each pod');
    const flows = JSON.parse(maglev.stdout.trim().split('\n').pop() || '[]') as { port: number; pods: (string | null)[] }[];
    t.equal(flows.length, ports.length, `every flow probed (${maglev.stderr.trim()})`, { flows });
    for (const f of flows) {
      const want = predict(f.port);
      t.same(f.pods, [want, want], `source port ${f.port}: ${want} through node A and through node B`);
    }
  });
}
