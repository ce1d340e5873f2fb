// The "node with pods" sandbox: a node namespace acting as the router, pod namespaces each
// joined to it by a veth pair (pod end `eth0`, host end `veth<prefix>p<n>` in the node
// namespace), and optionally "external" client namespaces joined the same way (for NodePort
// and external-traffic tests). There is no route to the outside world anywhere: pods and
// externals route everything to the node, and the node only has routes to them, so a packet
// to an untranslated service VIP dies in the node namespace.
import { addAddress, addRoute, addVethPair, ifindexIn, linkUp, setSysctl } from './netns.js';
import { hostIfname } from './names.js';
import type { TestbedRun } from './run.js';

/** Gateway of every pod: the node's address on each host veth (one address, many links). */
export const POD_GATEWAY = '10.244.0.1';
/** The node's address towards the externals: its "node IP" for NodePort tests (TEST-NET-1). */
export const NODE_IP = '192.0.2.1';
/** With `ipv6`: the pods' IPv6 gateway, the node's address on each host veth (a ULA prefix). */
export const POD_GATEWAY6 = 'fd00:10:244::1';

export interface Attachment {
  /** Logical name, e.g. `pod0` or `ext0`. */
  name: string;
  /** Its network namespace. */
  ns: string;
  /** Its address on eth0. */
  ip: string;
  /** Interface name inside its namespace. */
  ifname: 'eth0';
  /** Host-side veth in the node namespace (where TC programs go). */
  hostIfname: string;
  /** ifindex of hostIfname inside the node namespace. */
  hostIfindex: number;
  /** Its default gateway (the node's address on hostIfname). */
  gateway: string;
  /** With TopologyOptions.ipv6: its IPv6 address on eth0 and its IPv6 gateway (dual stack). */
  ip6?: string;
  gateway6?: string;
}

export interface Topology {
  nodeNs: string;
  pods: Attachment[];
  externals: Attachment[];
  /** Deletes every namespace of the topology (veths go with them). Idempotent. */
  destroy(): Promise<void>;
}

export interface TopologyOptions {
  /** Number of pods (named pod0, pod1, ...) or their names. */
  pods: number | string[];
  /** Number of external client namespaces (ext0, ...). Default 0. */
  externals?: number;
  /** Pods get an IPv6 address too (fd00:10:244::<10 + n>, gateway POD_GATEWAY6): dual stack. */
  ipv6?: boolean;
}

const MAX_ATTACHMENTS = 200;

async function attach(
  run: TestbedRun, created: string[], nodeNs: string,
  name: string, tag: 'p' | 'e', n: number, ip: string, gateway: string,
): Promise<Attachment> {
  const ns = await run.netns(name);
  created.push(ns);
  const host = hostIfname(run.prefix, tag, n);
  await addVethPair({ ns: nodeNs, name: host, peerNs: ns, peerName: 'eth0' });
  await addAddress(nodeNs, host, `${gateway}/32`);
  await linkUp(nodeNs, host);
  await addRoute(nodeNs, { to: `${ip}/32`, dev: host, scope: 'link', src: gateway });
  await addAddress(ns, 'eth0', `${ip}/32`);
  await linkUp(ns, 'eth0');
  await addRoute(ns, { to: `${gateway}/32`, dev: 'eth0', scope: 'link' });
  await addRoute(ns, { to: 'default', via: gateway, dev: 'eth0' });
  return { name, ns, ip, ifname: 'eth0', hostIfname: host, hostIfindex: await ifindexIn(nodeNs, host), gateway };
}

/** Gives an attachment an IPv6 address and route, the node a route to it (dual stack). */
async function addIpv6(nodeNs: string, a: Attachment, ip6: string, gateway6: string): Promise<void> {
  await addAddress(nodeNs, a.hostIfname, `${gateway6}/128`, { nodad: true });
  await addRoute(nodeNs, { to: `${ip6}/128`, dev: a.hostIfname, src: gateway6 });
  await addAddress(a.ns, 'eth0', `${ip6}/128`, { nodad: true });
  await addRoute(a.ns, { to: `${gateway6}/128`, dev: 'eth0' });
  await addRoute(a.ns, { to: 'default', via: gateway6, dev: 'eth0' });
  a.ip6 = ip6;
  a.gateway6 = gateway6;
}

/** Builds the sandbox inside `run` (everything is also removed by the run's cleanup). */
export async function createTopology(run: TestbedRun, opts: TopologyOptions): Promise<Topology> {
  const podNames = typeof opts.pods === 'number'
    ? Array.from({ length: opts.pods }, (_, i) => `pod${i}`)
    : opts.pods;
  const externals = opts.externals ?? 0;
  if (podNames.length > MAX_ATTACHMENTS || !Number.isInteger(externals) || externals < 0 || externals > MAX_ATTACHMENTS) {
    throw new Error(`testbed: topology wants ${podNames.length} pods and ${externals} externals; 0-${MAX_ATTACHMENTS} each`);
  }
  if (new Set(podNames).size !== podNames.length || podNames.some((n) => n === 'node' || /^ext\d+$/.test(n))) {
    throw new Error(`testbed: pod names ${JSON.stringify(podNames)} must be unique and not "node" or "extN"`);
  }
  const created: string[] = [];
  const topo: Topology = {
    nodeNs: '',
    pods: [],
    externals: [],
    destroy: async () => {
      for (const ns of created.splice(0).reverse()) await run.deleteNetns(ns);
    },
  };
  try {
    topo.nodeNs = await run.netns('node');
    created.push(topo.nodeNs);
    await setSysctl(topo.nodeNs, 'net.ipv4.ip_forward', '1');
    // Source validation differs between hosts' defaults; NAT tests must not depend on it.
    await setSysctl(topo.nodeNs, 'net.ipv4.conf.all.rp_filter', '0');
    await setSysctl(topo.nodeNs, 'net.ipv4.conf.default.rp_filter', '0');
    if (opts.ipv6) await setSysctl(topo.nodeNs, 'net.ipv6.conf.all.forwarding', '1');
    for (const [i, name] of podNames.entries()) {
      const pod = await attach(run, created, topo.nodeNs, name, 'p', i, `10.244.0.${10 + i}`, POD_GATEWAY);
      if (opts.ipv6) await addIpv6(topo.nodeNs, pod, `fd00:10:244::${(10 + i).toString(16)}`, POD_GATEWAY6);
      topo.pods.push(pod);
    }
    for (let i = 0; i < externals; i++) {
      topo.externals.push(await attach(run, created, topo.nodeNs, `ext${i}`, 'e', i, `192.0.2.${10 + i}`, NODE_IP));
    }
  } catch (err) {
    await topo.destroy().catch(() => undefined);
    throw err;
  }
  return topo;
}
