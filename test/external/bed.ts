// The two-node bed the external-traffic tests share (test/external/*.test.ts): the manifests of
// a cluster's Nodes, Services and EndpointSlices, and waiting for every agent to sync.
import type { Cluster } from '../../src/testbed/cluster.js';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';

export const NS = 'ext';
export const ECHO = 8080;

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
  pods: { pod: string; ip: string; node: string }[];
  /** Default: one TCP port 80 -> ECHO on nodePort. */
  ports?: SvcPort[];
  extra?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** The Node objects of the cluster and a Service + EndpointSlice per svc. */
export function objects(c: Cluster, svcs: Svc[]): unknown[] {
  const nodes = c.nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  }));
  const out: unknown[] = [...nodes];
  for (const s of svcs) {
    const ports = s.ports ?? [{ name: 'http', port: 80, protocol: 'TCP', targetPort: ECHO, nodePort: s.nodePort }];
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: NS },
      spec: { type: 'NodePort', clusterIP: s.clusterIP, clusterIPs: [s.clusterIP], ipFamilies: ['IPv4'], ports, ...s.extra },
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

/** Resolves once every agent reports its sync done (30 s each at most). */
export async function waitSynced(agents: readonly NodeAgent[]): Promise<void> {
  for (const a of agents) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = await a.ctl<{ sync: { state: string } }>(['status']).catch(() => undefined);
      if (st?.sync.state === 'synced') break;
      if (Date.now() > deadline) throw new Error(`${a.node.name} never synced:\n${a.tail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
