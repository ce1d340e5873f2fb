// The two-node external-traffic bed shared by the scenarios of test/external (one bed, one pair
// of agents per CI run: external-traffic.test.ts builds it and runs every scenario module on it).
// Manifest helpers: the Node objects of a cluster, and a Service + EndpointSlice per entry.
// waitSynced lives in src/testbed/cluster-agent.ts (the two-node demo uses it too).
import type { Cluster } from '../../src/testbed/cluster.js';

export { waitSynced } from '../../src/testbed/cluster-agent.js';

export const NS = 'ext';
/** The echo servers' ports in every pod. */
export const ECHO = 8080;
export const UDP_ECHO = 5353;
export const BULK = 9000;

export interface BedPod {
  pod: string;
  ip: string;
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
  clusterIP: string;
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

export function nodeObjects(c: Cluster): unknown[] {
  return c.nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  }));
}

export function serviceObjects(svcs: Svc[]): unknown[] {
  const out: unknown[] = [];
  for (const s of svcs) {
    const ports = s.ports ?? [{ name: 'http', port: 80, protocol: s.protocol ?? 'TCP', targetPort: s.targetPort ?? ECHO, nodePort: s.nodePort }];
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: NS },
      spec: {
        type: 'NodePort', clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ipFamilies: ['IPv4'],
        ports, ...s.extra,
      },
      ...(s.status ? { status: s.status } : {}),
    });
    out.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${s.name}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4', ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
      endpoints: s.pods.map((p) => ({ addresses: [p.ip], nodeName: p.node, conditions: { ready: true, serving: true, terminating: false } })),
    });
  }
  return out;
}

/** The Node objects and a Service + EndpointSlice per svc. */
export function objects(c: Cluster, svcs: Svc[]): unknown[] {
  return [...nodeObjects(c), ...serviceObjects(svcs)];
}
