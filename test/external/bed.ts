// The two-node external-traffic bed shared by the scenarios of test/external (one bed, one pair
// of agents per CI run: external-traffic.test.ts builds it and runs every scenario module on it).
// Manifest helpers: the Node objects of a cluster, and a Service + EndpointSlice per entry.
// waitSynced lives in src/testbed/cluster-agent.ts (the two-node demo uses it too). Readers of
// the bed's state the scenario modules share: a path MTU the kernel cached, an uplink's bytes
// sent, an agent's drop counters and conntrack dump.
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import type { Cluster } from '../../src/testbed/cluster.js';
import { NODE_UPLINK } from '../../src/testbed/cluster.js';
import { ipIn } from '../../src/testbed/netns.js';

export { waitSynced } from '../../src/testbed/cluster-agent.js';

export const NS = 'ext';
/** The echo servers' ports in every pod. */
export const ECHO = 8080;
export const UDP_ECHO = 5353;
export const BULK = 9000;

export interface BedPod {
  pod: string;
  ip: string;
  /** Its IPv6 address (a dual-stack bed): needed by IPv6 and dual-stack Services. */
  ip6?: string;
  node: string;
}

export interface SvcPort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  targetPort: number;
  nodePort: number;
}

export interface Svc {
  name: string;
  /** The primary ClusterIP: an IPv6 one makes an IPv6-only Service. */
  clusterIP: string;
  /** A dual-stack Service's IPv6 ClusterIP (the primary is IPv4): RequireDualStack. */
  clusterIP6?: string;
  nodePort: number;
  pods: BedPod[];
  /** Default TCP, target port ECHO. */
  protocol?: 'TCP' | 'UDP';
  targetPort?: number;
  /** Several ports (then protocol, targetPort and nodePort are not read). */
  ports?: SvcPort[];
  extra?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** A dual-stack cluster's Node objects list both InternalIPs, IPv4 first (as the kubelet does). */
export function nodeObjects(c: Cluster): unknown[] {
  return c.nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.ip }, ...(n.ip6 ? [{ type: 'InternalIP', address: n.ip6 }] : []), { type: 'Hostname', address: n.name },
      ],
    },
  }));
}

const familyOf = (ip: string) => (ip.includes(':') ? 'IPv6' : 'IPv4');

/** A pod's address in `family` (an IPv6 Service on a pod without one is a mistake of the test). */
function podAddress(p: BedPod, family: 'IPv4' | 'IPv6', svc: string): string {
  const ip = family === 'IPv6' ? p.ip6 : p.ip;
  if (!ip) throw new Error(`external bed: service ${svc} wants ${family}, pod ${p.pod} has no ${family} address`);
  return ip;
}

export function serviceObjects(svcs: Svc[]): unknown[] {
  const out: unknown[] = [];
  for (const s of svcs) {
    const ports = s.ports ?? [{ name: 'http', port: 80, protocol: s.protocol ?? 'TCP', targetPort: s.targetPort ?? ECHO, nodePort: s.nodePort }];
    const clusterIPs = [s.clusterIP, ...(s.clusterIP6 ? [s.clusterIP6] : [])];
    const families = clusterIPs.map(familyOf);
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: NS },
      spec: {
        type: 'NodePort', clusterIP: s.clusterIP, clusterIPs, ipFamilies: families,
        ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack', ports, ...s.extra,
      },
      ...(s.status ? { status: s.status } : {}),
    });
    // One EndpointSlice per family, as the EndpointSlice controller writes them.
    for (const [i, family] of families.entries()) {
      out.push({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: `${s.name}-${i + 1}`, namespace: NS, labels: { 'kubernetes.io/service-name': s.name } },
        addressType: family, ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
        endpoints: s.pods.map((p) => ({
          addresses: [podAddress(p, family, s.name)], nodeName: p.node, conditions: { ready: true, serving: true, terminating: false },
        })),
      });
    }
  }
  return out;
}

/** The Node objects and a Service + EndpointSlice per svc. */
export function objects(c: Cluster, svcs: Svc[]): unknown[] {
  return [...nodeObjects(c), ...serviceObjects(svcs)];
}

/** Path MTU the namespace's kernel holds for `to` (a cached PMTU exception, IPv4 or IPv6), or undefined. */
export async function cachedMtu(ns: string, to: string): Promise<number | undefined> {
  const r = await ipIn(ns, [...(to.includes(':') ? ['-6'] : []), 'route', 'get', to]);
  const m = / mtu (\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

/** Bytes the namespace's fabric uplink has sent (its interface counter). */
export async function uplinkTxBytes(ns: string): Promise<number> {
  const r = await ipIn(ns, ['-s', '-j', 'link', 'show', 'dev', NODE_UPLINK]);
  const [link] = JSON.parse(r.stdout) as { stats64: { tx: { bytes: number } } }[];
  return link!.stats64.tx.bytes;
}

/**
 * A `node -e` client of a server answering a datagram "n" with n bytes: asks for replies of each
 * size in turn, prints the size of what came back (0: nothing in 1.5 s). IPv4 or IPv6 by host.
 */
export const sizedClient = (host: string, port: number, sizes: number[]) => `
const s = require('dgram').createSocket('${host.includes(':') ? 'udp6' : 'udp4'}');
const ask = (n) => new Promise((res) => {
  const timer = setTimeout(() => { s.removeAllListeners('message'); res(0); }, 1500);
  s.once('message', (m) => { clearTimeout(timer); res(m.length); });
  s.send(String(n), ${port}, '${host}');
});
(async () => { const got = []; for (const n of ${JSON.stringify(sizes)}) got.push(await ask(n)); console.log(JSON.stringify(got)); s.close(); })();`;

/** The agent's drop counters, by reason (`sluice counters`). */
export async function dropsOf(agent: NodeAgent): Promise<Map<string, number>> {
  const counters = await agent.ctl<{ drops?: { reason: string; packets: number }[] }>(['counters']);
  return new Map((counters.drops ?? []).map((d) => [d.reason, d.packets]));
}

/** What the scenarios read of `sluice ct dump`. */
export type CtDump = { entries: { client: { ip: string }; backend: { ip: string }; natSource: string; flags: string[] }[] };
