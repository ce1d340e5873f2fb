// What the traffic benches (nodeport, connect) program into both dataplanes: Node objects, the
// measured services (one endpoint each, a real pod), and N filler ClusterIP services of one
// endpoint each (never contacted) — the rules a kube-proxy packet walks past, the entries a
// Sluice lookup does not. Sluice reads them from a manifest directory (NodeAgent); kube-proxy's
// rules for them come from the same model (src/testbed/kube-proxy-rules.ts, and for its nftables
// mode src/testbed/kube-proxy-nft.ts). Dual stack (the connect bench): every service has an IPv4
// and an IPv6 ClusterIP and an EndpointSlice per family; kube-proxy gets one ruleset per family
// (iptables and ip6tables, `ip` and `ip6` nftables tables), as it runs one proxier per family.
import { computeDesiredState } from '../src/model/desired-state.js';
import type { DesiredState, IpFamily, ModelInput } from '../src/model/types.js';
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
/** The pods' IPv6 addresses (bench/connect-bed.ts: fd00:10:244:<node>::<n>). */
export const POD_CIDR6 = 'fd00:10:244::/48';
const CLUSTER_CIDR: Record<IpFamily, string> = { IPv4: POD_CIDR, IPv6: POD_CIDR6 };

export interface MeasuredService {
  name: string;
  clusterIP: string;
  nodePort?: number;
  /** More TCP ports beside http 80 → ECHO_PORT, each to the same port number (e.g. iperf3's). */
  extraPorts?: number[];
  /** Its one endpoint: a pod running an echo server. */
  endpoint: { ip: string; node: string };
  /** Dual stack: its IPv6 ClusterIP and the same pod's IPv6 address. */
  ipv6?: { clusterIP: string; endpointIp: string };
}

/** A service's address in one family: its ClusterIP and its one endpoint's address. */
type FamilyAddresses = Partial<Record<IpFamily, { clusterIP: string; endpointIp: string }>>;

function service(name: string, addrs: FamilyAddresses, node: string, nodePort?: number, extraPorts: readonly number[] = []): unknown[] {
  const extra = extraPorts.map((port) => ({ name: `p${port}`, port, protocol: 'TCP' }));
  const families = (['IPv4', 'IPv6'] as const).filter((f) => addrs[f]);
  const clusterIPs = families.map((f) => addrs[f]?.clusterIP as string);
  return [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: BENCH_NS },
      spec: {
        type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP: clusterIPs[0], clusterIPs, ipFamilies: families,
        ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack',
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: ECHO_PORT, ...(nodePort ? { nodePort } : {}) }, ...extra.map((p) => ({ ...p, targetPort: p.port }))],
      },
    },
    ...families.map((f) => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-${f === 'IPv4' ? 1 : 6}`, namespace: BENCH_NS, labels: { 'kubernetes.io/service-name': name } },
      addressType: f, ports: [{ name: 'http', port: ECHO_PORT, protocol: 'TCP' }, ...extra],
      endpoints: [{ addresses: [addrs[f]?.endpointIp], nodeName: node, conditions: { ready: true, serving: true, terminating: false } }],
    })),
  ];
}

/** The i-th address of an IPv6 /64-ish block: `prefix::<hi>:<lo>` (i up to 2^32). */
const v6 = (prefix: string, i: number) => `${prefix}::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`;

/**
 * Nodes, the measured services and `fillers` filler services: ClusterIPs in 10.97.0.0/16 and on,
 * endpoints in 10.128.0.0/9 on `fillerNode` (with `dualStack`, also fd00:97:: and fd00:128::). The
 * fillers come first: a measured service is one added late (last in kube-proxy's KUBE-SERVICES,
 * see kubeProxyApply). A measured service is dual-stack when it has `ipv6`.
 */
export function benchObjects(nodes: readonly ClusterNode[], measured: readonly MeasuredService[], fillers: number, fillerNode: string, dualStack = false): unknown[] {
  const out: unknown[] = nodes.map((n) => ({
    apiVersion: 'v1', kind: 'Node', metadata: { name: n.name },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
  }));
  for (let i = 1; i <= fillers; i++) {
    const addrs: FamilyAddresses = { IPv4: { clusterIP: `10.${97 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, endpointIp: `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` } };
    if (dualStack) addrs.IPv6 = { clusterIP: v6('fd00:97', i), endpointIp: v6('fd00:128', i) };
    out.push(...service(`filler-${i}`, addrs, fillerNode));
  }
  for (const m of measured) {
    out.push(...service(m.name, { IPv4: { clusterIP: m.clusterIP, endpointIp: m.endpoint.ip }, ...(m.ipv6 ? { IPv6: m.ipv6 } : {}) }, m.endpoint.node, m.nodePort, m.extraPorts));
  }
  return out;
}

export function modelInputOf(objs: readonly unknown[], nodeName: string): ModelInput {
  const of = (kind: string) => objs.filter((o) => (o as { kind: string }).kind === kind);
  return {
    services: of('Service') as ModelInput['services'], endpointSlices: of('EndpointSlice') as ModelInput['endpointSlices'],
    nodes: of('Node') as ModelInput['nodes'], nodeName, config: { families: ['IPv4', 'IPv6'], nodePortAddresses: [], serviceProxyName: '' },
  };
}

/** `state` with the service ports of the named services moved to the end (kube-proxy writes them last). */
function lastly(state: DesiredState, names: ReadonlySet<string>): DesiredState {
  const all = [...state.services.entries()];
  const late = all.filter(([, sp]) => names.has(sp.name));
  return { services: new Map([...all.filter(([, sp]) => !names.has(sp.name)), ...late]) };
}

/** What the model gives kube-proxy on `node`: `objs`' service ports, the measured ones last. */
const kubeProxyState = (node: ClusterNode, objs: readonly unknown[], measured: readonly MeasuredService[]) =>
  lastly(computeDesiredState(modelInputOf(objs, node.name)).state, new Set(measured.map((m) => m.name)));

/** The options of one family's ruleset: that family's cluster CIDR; the node IP (IPv4 only: the nodes have no IPv6 address). */
const familyOptions = (node: ClusterNode, family: IpFamily) => ({ family, clusterCidr: CLUSTER_CIDR[family], ...(family === 'IPv4' ? { nodeIp: node.ip } : {}) });

/**
 * Replaces `node`'s iptables (and ip6tables, per family in `families`) with the rules kube-proxy
 * writes for `objs` (the measured services' rules last in KUBE-SERVICES). Resolves, per family,
 * with the restore's time (ms) and the nat rule count.
 */
export async function kubeProxyApply(node: ClusterNode, objs: readonly unknown[], measured: readonly MeasuredService[], backend: IptablesBackend,
  families: readonly IpFamily[] = ['IPv4']): Promise<Partial<Record<IpFamily, { restoreMs: number; natRules: number }>>> {
  const state = kubeProxyState(node, objs, measured);
  const out: Partial<Record<IpFamily, { restoreMs: number; natRules: number }>> = {};
  for (const family of families) {
    const rules = kubeProxyRules(state, familyOptions(node, family));
    out[family] = { restoreMs: await iptablesRestore(node.ns, rules.text, backend, { flush: true, family }), natRules: rules.rules.nat };
  }
  return out;
}

/**
 * Service ports per `nft -f` transaction. kube-proxy loads its ruleset in one, but the kernel's
 * cost of one transaction grows with the square of its anonymous verdict maps (one per service
 * chain; KubeProxyNftOptions.transactionServices): 10,000 services took 65–72 s in one transaction,
 * 17 s in ten. The table is the same either way; only the bench's set-up time differs.
 */
export const NFT_TRANSACTION_SERVICES = 1000;

/**
 * Replaces `node`'s `ip kube-proxy` (and `ip6 kube-proxy`, per family in `families`) nftables
 * table with the one kube-proxy's nftables mode writes for `objs`, in `nft -f` transactions of
 * NFT_TRANSACTION_SERVICES service ports (the first deletes the old table). Resolves, per family,
 * with the loads' total time (ms), the rule count, the map element count and the transactions.
 */
export async function kubeProxyNftApply(node: ClusterNode, objs: readonly unknown[], measured: readonly MeasuredService[],
  families: readonly IpFamily[] = ['IPv4']): Promise<Partial<Record<IpFamily, { loadMs: number; rules: number; elements: number; transactions: number }>>> {
  const state = kubeProxyState(node, objs, measured);
  const out: Partial<Record<IpFamily, { loadMs: number; rules: number; elements: number; transactions: number }>> = {};
  for (const family of families) {
    const r = kubeProxyNftRules(state, { ...familyOptions(node, family), replace: true, transactionServices: NFT_TRANSACTION_SERVICES });
    let loadMs = 0;
    for (const text of r.transactions) loadMs += await nftLoad(node.ns, text);
    out[family] = { loadMs, rules: r.rules, elements: r.elements, transactions: r.transactions.length };
  }
  return out;
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
