// What the traffic benches (nodeport, connect) program into both dataplanes: Node objects, the
// measured services (one endpoint each, a real pod), and N filler ClusterIP services of one
// endpoint each (never contacted) — the rules a kube-proxy packet walks past, the entries a
// Sluice lookup does not. Sluice reads them from a manifest directory (NodeAgent); kube-proxy's
// rules for them come from the same model (src/testbed/kube-proxy-rules.ts, and for its nftables
// mode src/testbed/kube-proxy-nft.ts).
import { computeDesiredState } from '../src/model/desired-state.js';
import type { DesiredState, ModelInput } from '../src/model/types.js';
import type { ClusterNode } from '../src/testbed/cluster.js';
import type { NodeAgent } from '../src/testbed/cluster-agent.js';
import { iptablesRestore } from '../src/testbed/iptables.js';
import type { IptablesBackend } from '../src/testbed/iptables.js';
import { kubeProxyNftRules } from '../src/testbed/kube-proxy-nft.js';
import { kubeProxyRules } from '../src/testbed/kube-proxy-rules.js';
import { nftLoad } from '../src/testbed/nft.js';

export const BENCH_NS = 'bench';
export const ECHO_PORT = 8080;
export const POD_CIDR = '10.244.0.0/16';

export interface MeasuredService {
  name: string;
  clusterIP: string;
  nodePort?: number;
  /** More TCP ports beside http 80 → ECHO_PORT, each to the same port number (e.g. iperf3's). */
  extraPorts?: number[];
  /** Its one endpoint: a pod running an echo server. */
  endpoint: { ip: string; node: string };
}

function service(name: string, clusterIP: string, endpoint: { ip: string; node: string }, nodePort?: number, extraPorts: readonly number[] = []): unknown[] {
  const extra = extraPorts.map((port) => ({ name: `p${port}`, port, protocol: 'TCP' }));
  return [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: BENCH_NS },
      spec: {
        type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ipFamilies: ['IPv4'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: ECHO_PORT, ...(nodePort ? { nodePort } : {}) }, ...extra.map((p) => ({ ...p, targetPort: p.port }))],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: BENCH_NS, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', ports: [{ name: 'http', port: ECHO_PORT, protocol: 'TCP' }, ...extra],
      endpoints: [{ addresses: [endpoint.ip], nodeName: endpoint.node, conditions: { ready: true, serving: true, terminating: false } }],
    },
  ];
}

/**
 * Nodes, the measured services and `fillers` filler services: ClusterIPs in 10.97.0.0/16 and on,
 * endpoints in 10.128.0.0/9 on `fillerNode`. The fillers come first: a measured service is one
 * added late (last in kube-proxy's KUBE-SERVICES, see kubeProxyApply).
 */
export function benchObjects(nodes: readonly ClusterNode[], measured: readonly MeasuredService[], fillers: number, fillerNode: string): unknown[] {
  const out: unknown[] = nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  }));
  for (let i = 1; i <= fillers; i++) {
    out.push(...service(`filler-${i}`, `10.${97 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, { ip: `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, node: fillerNode }));
  }
  for (const m of measured) out.push(...service(m.name, m.clusterIP, m.endpoint, m.nodePort, m.extraPorts));
  return out;
}

export function modelInputOf(objs: readonly unknown[], nodeName: string): ModelInput {
  const of = (kind: string) => objs.filter((o) => (o as { kind: string }).kind === kind);
  return {
    services: of('Service') as ModelInput['services'], endpointSlices: of('EndpointSlice') as ModelInput['endpointSlices'],
    nodes: of('Node') as ModelInput['nodes'], nodeName, config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
  };
}

/** `state` with the service ports of the named services moved to the end (kube-proxy writes them last). */
function lastly(state: DesiredState, names: ReadonlySet<string>): DesiredState {
  const all = [...state.services.entries()];
  const late = all.filter(([, sp]) => names.has(sp.name));
  return { services: new Map([...all.filter(([, sp]) => !names.has(sp.name)), ...late]) };
}

/**
 * Replaces `node`'s iptables with the rules kube-proxy writes for `objs` (the measured services'
 * rules last in KUBE-SERVICES). Resolves with the restore's time (ms) and the nat rule count.
 */
export async function kubeProxyApply(node: ClusterNode, objs: readonly unknown[], measured: readonly MeasuredService[], backend: IptablesBackend): Promise<{ restoreMs: number; natRules: number }> {
  const state = lastly(computeDesiredState(modelInputOf(objs, node.name)).state, new Set(measured.map((m) => m.name)));
  const rules = kubeProxyRules(state, { clusterCidr: POD_CIDR, nodeIp: node.ip });
  const restoreMs = await iptablesRestore(node.ns, rules.text, backend, { flush: true });
  return { restoreMs, natRules: rules.rules.nat };
}

/**
 * Replaces `node`'s `ip kube-proxy` nftables table with the one kube-proxy's nftables mode writes
 * for `objs`, in one `nft -f` transaction (the old table deleted first). Resolves with the load's
 * time (ms), the rule count and the map element count.
 */
export async function kubeProxyNftApply(node: ClusterNode, objs: readonly unknown[], measured: readonly MeasuredService[]): Promise<{ loadMs: number; rules: number; elements: number }> {
  const state = lastly(computeDesiredState(modelInputOf(objs, node.name)).state, new Set(measured.map((m) => m.name)));
  const r = kubeProxyNftRules(state, { clusterCidr: POD_CIDR, nodeIp: node.ip, replace: true });
  return { loadMs: await nftLoad(node.ns, r.text), rules: r.rules, elements: r.elements };
}

/** The iptables backend of the benches: legacy unless SLUICE_IPTABLES_RESTORE names the nft one. */
export const benchIptablesBackend = (): IptablesBackend => (process.env['SLUICE_IPTABLES_RESTORE'] === 'iptables-nft-restore' ? 'nft' : 'legacy');

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `agent` reports a finished sync with exactly `servicePorts` service ports programmed. */
export async function waitProgrammed(agent: NodeAgent, servicePorts: number, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await agent.ctl<{ sync: { state: string; servicePortsProgrammed: number } }>(['status']).catch(() => undefined);
    if (st?.sync.state === 'synced' && st.sync.servicePortsProgrammed === servicePorts) return;
    if (Date.now() > deadline) throw new Error(`${agent.node.name}: ${servicePorts} service ports not programmed after ${timeoutMs / 1000} s (${JSON.stringify(st?.sync)}):\n${agent.tail()}`);
    await pause(250);
  }
}
