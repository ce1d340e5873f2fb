// The external-traffic scenarios as one table (issue 14), read by the parity test
// (test/external/parity.test.ts), which runs every row on one two-node bed against Sluice and
// against kube-proxy-shaped iptables rules: the services, what each probe sends, and the outcome
// each dataplane must give. A row whose kube-proxy outcome differs says why (docs/external-traffic.md,
// "Parity with kube-proxy"); every other row must come out the same on both.
import type { Cluster } from '../../src/testbed/cluster.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import type { ModelInput } from '../../src/model/types.js';
import { TrafficClient } from '../traffic/traffic-client.js';

export const NS = 'ext';
export const ECHO = 8080;
export const LB_IP = '203.0.113.10';
export const EXTERNAL_IP = '198.51.100.10';
export const RANGES_OK_IP = '203.0.113.20';
export const RANGES_NO_IP = '203.0.113.21';
export const HC_PORT = 32100;
/** The first client of createCluster() (checked by the bed). */
export const CLIENT_IP = '192.168.50.100';
export const POD_CIDR = '10.244.0.0/16';

/** The client routes these to node A, as a cloud load balancer or a router would. */
export const CLIENT_ROUTES = [LB_IP, EXTERNAL_IP, RANGES_OK_IP, RANGES_NO_IP].map((ip) => ({ cidr: `${ip}/32`, node: 0 }));

/** Which node's pod backs a service: 'A' is nodes[0].pods[0], 'B' nodes[1].pods[0]. */
export type Place = 'A' | 'B';

export interface ServiceSpec {
  name: string;
  clusterIP: string;
  nodePort: number;
  pods: Place[];
  extra?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export const SERVICES: ServiceSpec[] = [
  { name: 'local', clusterIP: '10.96.0.11', nodePort: 30011, pods: ['A'] },
  { name: 'remote', clusterIP: '10.96.0.12', nodePort: 30012, pods: ['B'], extra: { externalIPs: [EXTERNAL_IP] } },
  { name: 'lb', clusterIP: '10.96.0.13', nodePort: 30013, pods: ['B'], extra: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } },
  {
    name: 'etp-local', clusterIP: '10.96.0.14', nodePort: 30014, pods: ['B'],
    extra: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: HC_PORT },
  },
  {
    name: 'ranges-ok', clusterIP: '10.96.0.15', nodePort: 30015, pods: ['A'],
    extra: { type: 'LoadBalancer', loadBalancerSourceRanges: [`${CLIENT_IP}/32`] }, status: { loadBalancer: { ingress: [{ ip: RANGES_OK_IP }] } },
  },
  {
    name: 'ranges-no', clusterIP: '10.96.0.16', nodePort: 30016, pods: ['A'],
    extra: { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/8'] }, status: { loadBalancer: { ingress: [{ ip: RANGES_NO_IP }] } },
  },
  { name: 'empty', clusterIP: '10.96.0.17', nodePort: 30017, pods: [] },
];

const podOf = (c: Cluster, place: Place) => {
  const node = c.nodes[place === 'A' ? 0 : 1];
  const pod = node?.pods[0];
  if (!node || !pod) throw new Error(`scenario bed: no pod on node ${place}`);
  return { node, pod };
};

/** Node, Service and EndpointSlice objects of the table, for the agents' manifest directory. */
export function clusterObjects(c: Cluster, services: readonly ServiceSpec[] = SERVICES): unknown[] {
  const out: unknown[] = c.nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  }));
  for (const s of services) {
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: NS },
      spec: {
        type: 'NodePort', clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ipFamilies: ['IPv4'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: ECHO, nodePort: s.nodePort }], ...s.extra,
      },
      ...(s.status ? { status: s.status } : {}),
    });
    out.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${s.name}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4', ports: [{ name: 'http', port: ECHO, protocol: 'TCP' }],
      endpoints: s.pods.map((place) => {
        const { node, pod } = podOf(c, place);
        return { addresses: [pod.ip], nodeName: node.name, conditions: { ready: true, serving: true, terminating: false } };
      }),
    });
  }
  return out;
}

/** The model's input for one node: the same objects the agent of `nodeName` reads. */
export function modelInput(objects: unknown[], nodeName: string): ModelInput {
  const of = (kind: string) => objects.filter((o) => (o as { kind: string }).kind === kind);
  return {
    services: of('Service') as ModelInput['services'],
    endpointSlices: of('EndpointSlice') as ModelInput['endpointSlices'],
    nodes: of('Node') as ModelInput['nodes'],
    nodeName,
    config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
  };
}

/** Whose address the backend saw as its peer. */
export type Role = 'client' | 'nodeA' | 'nodeA-gateway' | 'podA';

export type Outcome =
  | { result: 'served'; pod: Place; seen?: Role }
  | { result: 'dropped' }
  | { result: 'refused' };

export interface Scenario {
  name: string;
  /** Who connects: the external client, a process of node A (in its agent's cgroup), pod A. */
  from: 'client' | 'nodeA' | 'podA';
  /** Node A's or B's fabric address, or a literal address (LoadBalancer / external IP). */
  to: 'nodeA' | 'nodeB' | string;
  port: number;
  /** Sluice's outcome, and kube-proxy's unless `kubeProxy` says otherwise. */
  expect: Outcome;
  /** Where kube-proxy's iptables give another outcome, and why (documented). */
  kubeProxy?: { expect: Outcome; why: string };
}

const NAT_LOCAL = 'kube-proxy masquerades all externalTrafficPolicy=Cluster traffic, even to a local backend (the pod sees node A\'s address on its veth); Sluice only DNATs';

export const SCENARIOS: Scenario[] = [
  {
    name: 'NodePort at node A, backend on A', from: 'client', to: 'nodeA', port: 30011,
    expect: { result: 'served', pod: 'A', seen: 'client' },
    kubeProxy: { expect: { result: 'served', pod: 'A', seen: 'nodeA-gateway' }, why: NAT_LOCAL },
  },
  { name: 'NodePort at node A, backend only on B (SNAT)', from: 'client', to: 'nodeA', port: 30012, expect: { result: 'served', pod: 'B', seen: 'nodeA' } },
  { name: 'ExternalIP routed to node A, backend on B', from: 'client', to: EXTERNAL_IP, port: 80, expect: { result: 'served', pod: 'B', seen: 'nodeA' } },
  { name: 'LoadBalancer IP routed to node A, backend on B', from: 'client', to: LB_IP, port: 80, expect: { result: 'served', pod: 'B', seen: 'nodeA' } },
  { name: 'eTP=Local at node A without a local backend: dropped', from: 'client', to: 'nodeA', port: 30014, expect: { result: 'dropped' } },
  { name: 'eTP=Local at node B with its backend: the pod sees the client', from: 'client', to: 'nodeB', port: 30014, expect: { result: 'served', pod: 'B', seen: 'client' } },
  {
    name: 'loadBalancerSourceRanges: client inside the range', from: 'client', to: RANGES_OK_IP, port: 80,
    expect: { result: 'served', pod: 'A', seen: 'client' },
    kubeProxy: { expect: { result: 'served', pod: 'A', seen: 'nodeA-gateway' }, why: NAT_LOCAL },
  },
  { name: 'loadBalancerSourceRanges: client outside the range: dropped', from: 'client', to: RANGES_NO_IP, port: 80, expect: { result: 'dropped' } },
  { name: 'no endpoints anywhere: refused at once', from: 'client', to: 'nodeA', port: 30017, expect: { result: 'refused' } },
  { name: 'node A\'s own process reaches its NodePort (backend on B)', from: 'nodeA', to: 'nodeA', port: 30012, expect: { result: 'served', pod: 'B' } },
  {
    name: 'hairpin: pod A reaches its own service\'s NodePort', from: 'podA', to: 'nodeA', port: 30011,
    expect: { result: 'served', pod: 'A', seen: 'nodeA' },
    kubeProxy: { expect: { result: 'served', pod: 'A', seen: 'nodeA-gateway' }, why: 'both land on the pod itself; Sluice\'s hairpinned source is the frontend (node A), kube-proxy masquerades to the veth address' },
  },
  {
    name: 'pod A reaches a LoadBalancer IP (backend on B)', from: 'podA', to: LB_IP, port: 80,
    expect: { result: 'served', pod: 'B', seen: 'podA' },
    kubeProxy: { expect: { result: 'served', pod: 'B', seen: 'nodeA' }, why: 'kube-proxy masquerades pod traffic to external destinations of an eTP=Cluster service; Sluice keeps the pod\'s address' },
  },
];

export interface Observed {
  result: 'served' | 'dropped' | 'refused' | 'error';
  pod?: Place | string;
  seen?: Role | string;
  /** The client's error code, if any. */
  code?: string;
  ms: number;
}

/** How long a probe expecting a drop waits: the drop shows as this timeout. */
export const DROP_TIMEOUT_MS = 1500;
/** How long a probe expecting an answer or a refusal waits (a busy machine can be slow to answer). */
export const ANSWER_TIMEOUT_MS = 5000;
/** A refusal must come sooner than this: at once, not after a SYN retransmission. */
export const REFUSED_WITHIN_MS = 1000;

/** One long-lived client process per origin (starting a process per probe costs seconds on a busy machine). */
export type Probers = Record<Scenario['from'], TrafficClient>;

/** Starts the probing clients: in the client, in node A (inside `nodeACgroup`: its agent's), in pod A. */
export async function startProbers(run: TestbedRun, c: Cluster, nodeACgroup: string): Promise<Probers> {
  const [nodeA] = c.nodes as [Cluster['nodes'][0]];
  const client = c.clients[0] as Cluster['clients'][0];
  const podA = nodeA.pods[0] as Cluster['nodes'][0]['pods'][0];
  // The client and the pod run in a cgroup of their own, without connect-time programs: their
  // traffic meets the node as packets.
  const plain = await createCgroup(await run.cgroup(), 'probes');
  return {
    client: await TrafficClient.start(run, client.ns, plain),
    nodeA: await TrafficClient.start(run, nodeA.ns, nodeACgroup),
    podA: await TrafficClient.start(run, podA.ns, plain),
  };
}

/** Runs one scenario's probe on the bed and classifies what happened. */
export async function observe(c: Cluster, s: Scenario, probers: Probers): Promise<Observed> {
  const [nodeA, nodeB] = c.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  const client = c.clients[0] as Cluster['clients'][0];
  const podA = nodeA.pods[0] as Cluster['nodes'][0]['pods'][0];
  const host = s.to === 'nodeA' ? nodeA.ip : s.to === 'nodeB' ? nodeB.ip : s.to;
  const timeoutMs = s.expect.result === 'dropped' ? DROP_TIMEOUT_MS : ANSWER_TIMEOUT_MS;
  const [a] = await probers[s.from].tcp({ host, port: s.port, timeoutMs });
  if (!a) throw new Error(`${s.name}: the client answered nothing`);
  if (a.ok) {
    const roles: Record<string, Role> = { [client.ip]: 'client', [nodeA.ip]: 'nodeA', [nodeA.podGateway]: 'nodeA-gateway', [podA.ip]: 'podA' };
    const pods: Record<string, Place> = { [podA.name]: 'A', [nodeB.pods[0]?.name ?? '']: 'B' };
    const seen = (a.peer ?? '').replace(/:\d+$/, '');
    return { result: 'served', pod: pods[a.backend ?? ''] ?? a.backend, seen: roles[seen] ?? seen, ms: a.ms };
  }
  const code = a.code ?? 'EUNKNOWN';
  // A refusal must come at once (an RST or ICMP unreachable), a drop shows as the timeout.
  const result = code === 'ECONNREFUSED' && a.ms < REFUSED_WITHIN_MS ? 'refused' : code === 'ETIMEDOUT' ? 'dropped' : 'error';
  return { result, code, ms: a.ms };
}

/**
 * Every scenario's probe, in table order. The refusals go first, alone: the kernel rate-limits
 * the ICMP errors it sends to one host (net.ipv4.icmp_ratelimit) and iptables' REJECT is one;
 * probed together with the rest, kube-proxy's refusal came as a timeout (most likely suppressed
 * behind node A's ICMP redirects to the client, whose packets it forwards back out of eth0).
 * The rest run all at once (they are independent: one service or address each).
 */
export async function observeAll(c: Cluster, scenarios: readonly Scenario[], probers: Probers): Promise<Observed[]> {
  const out: Observed[] = new Array(scenarios.length);
  const refusals = [...scenarios.keys()].filter((i) => scenarios[i]?.expect.result === 'refused');
  for (const i of refusals) out[i] = await observe(c, scenarios[i] as Scenario, probers);
  await Promise.all([...scenarios.keys()].filter((i) => !refusals.includes(i)).map(async (i) => {
    out[i] = await observe(c, scenarios[i] as Scenario, probers);
  }));
  return out;
}

/** Whether an observation is the expected outcome (`seen` only checked when the row names it). */
export function matches(o: Observed, e: Outcome): boolean {
  if (o.result !== e.result) return false;
  if (e.result !== 'served') return true;
  return o.pod === e.pod && (e.seen === undefined || o.seen === e.seen);
}

export const describe = (o: Outcome | Observed): string =>
  o.result === 'served' ? `served by pod ${o.pod}${o.seen ? `, which saw ${o.seen}` : ''}` : o.result + ('code' in o && o.code ? ` (${o.code})` : '');
