// The multi-node sandbox: several "node" namespaces and external client namespaces on one shared
// L2 fabric (a bridge that lives in a namespace of its own, never in the root namespace), pods
// behind each node. For external-traffic tests (NodePort, LoadBalancer, ExternalIP), the next
// issues' tunnel/DSR modes and benchmarks.
//
//   client (192.168.50.100) ─┐                         ┌─ nodes[0] (192.168.50.2, eth0) ── pods 10.244.1.10…
//                            ├─ fabric: bridge br0 ────┤
//                            │                         └─ nodes[1] (192.168.50.3, eth0) ── pods 10.244.2.10…
//
// Every node forwards (ip_forward=1, rp_filter off) and routes the other nodes' pod CIDRs via
// their fabric address, as a flat-routed cluster network does. Clients reach the fabric /24 and
// any extra prefixes given (LoadBalancer / external IPs) via a chosen node, as a cloud load
// balancer or a router would send them. Nothing routes out of the sandbox.
//
// Optionally, clients further away (`routedClients`), behind two routers, with a link between them
// that can be narrower than the rest (path-MTU tests: the edge router answers a packet too large
// for it with ICMP "fragmentation needed", while the clients' own links stay at 1500, so they
// advertise a full-size MSS):
//
//   fabric ── edge (192.168.50.254) ══ narrow link 172.16.0.0/30, MTU m ══ access ── far clients 172.16.1.100…
//
// Every node routes 172.16.0.0/16 via the edge router.
//
// With `ipv6`, dual stack (ULA prefixes, addresses without duplicate detection so they work at
// once): the fabric fd00:50::/64 (nodes fd00:50::2…, clients fd00:50::100…), pods
// fd00:10:244:<1+i>::<10+n>/128 behind node i with its gateway fd00:10:244:<1+i>::1 on every pod
// veth, IPv6 forwarding in the nodes, each node routing the others' pod /64s; clients route IPv6
// `clientRoutes` via the node's IPv6 address. Neighbour discovery crosses the nodes' host
// programs untouched (they never translate ICMPv6). With `routedClients` too, the routers and far
// clients are dual-stack as well (IPv6 path-MTU tests): the edge fd00:50::fe on the fabric, the
// narrow link fd00:16::/64 (edge ::1, access ::2, the same MTU), far clients fd00:16:1::<100+i>
// behind the access router's fd00:16:1::1; every node routes fd00:16::/32 via the edge, which
// routes the IPv6 `clientRoutes` as the clients do.
import { addAddress, addRoute, addVethPair, ipIn, linkUp, setSysctl } from './netns.js';
import { hostIfname } from './names.js';
import type { TestbedRun } from './run.js';

export const FABRIC_CIDR = '192.168.50.0/24';
export const FABRIC_CIDR6 = 'fd00:50::/64';
export const NODE_UPLINK = 'eth0';

export interface ClusterPod {
  name: string;
  ns: string;
  ip: string;
  /** With ClusterOptions.ipv6: its IPv6 address. */
  ip6?: string;
  /** Host-side veth in its node's namespace. */
  hostIfname: string;
}

export interface ClusterNode {
  /** e.g. node-a */
  name: string;
  ns: string;
  /** Its address on the fabric (its InternalIP). */
  ip: string;
  podCidr: string;
  /** The node's address on every pod veth. */
  podGateway: string;
  /** With ClusterOptions.ipv6: its IPv6 fabric address, pod /64 and IPv6 gateway on every pod veth. */
  ip6?: string;
  podCidr6?: string;
  podGateway6?: string;
  pods: ClusterPod[];
}

export interface ClusterClient {
  name: string;
  ns: string;
  ip: string;
  /** With ClusterOptions.ipv6 (fabric clients only): its IPv6 address. */
  ip6?: string;
}

export interface ClusterRouter {
  name: string;
  ns: string;
  /** Its address on the fabric (edge) or on the narrow link (access). */
  ip: string;
}

export interface Cluster {
  fabricNs: string;
  nodes: ClusterNode[];
  clients: ClusterClient[];
  /** Clients behind the routers (empty unless `routedClients` was given). */
  routedClients: ClusterClient[];
  /** The edge and access routers (empty unless `routedClients` was given). */
  routers: ClusterRouter[];
}

export const EDGE_ROUTER_IP = '192.168.50.254';
export const ROUTED_CLIENTS_CIDR = '172.16.0.0/16';
export const EDGE_ROUTER_IP6 = 'fd00:50::fe';
export const ROUTED_CLIENTS_CIDR6 = 'fd00:16::/32';

export interface ClusterOptions {
  /** Pod names per node, e.g. [['web-a0'], ['web-b0']]: one entry per node (at most 8 nodes). */
  nodes: string[][];
  /** External client namespaces (default 1). */
  clients?: number;
  /** Prefixes the clients route to a node (index): LoadBalancer and external IPs (IPv6 ones need `ipv6`). */
  clientRoutes?: { cidr: string; node: number }[];
  /**
   * Clients behind two routers (see above), `count` of them; the link between the routers has
   * MTU `narrowMtu` (default 1500). The edge router routes `clientRoutes` as the clients do.
   */
  routedClients?: { count: number; narrowMtu?: number };
  /** Dual stack: nodes, fabric clients and pods get IPv6 addresses and routes too (see above). */
  ipv6?: boolean;
}

const NODE_NAMES = 'abcdefgh';

/**
 * Builds the cluster inside `run` (its namespaces are removed by the run's cleanup). Nodes, pods,
 * clients and routers are built concurrently: every address is known up front, and each
 * namespace's own steps stay in order (a loaded CI machine pays for every `ip` process).
 */
export async function createCluster(run: TestbedRun, opts: ClusterOptions): Promise<Cluster> {
  if (opts.nodes.length < 1 || opts.nodes.length > NODE_NAMES.length) throw new Error(`testbed: cluster wants 1-${NODE_NAMES.length} nodes, not ${opts.nodes.length}`);
  const fabricNs = await run.netns('fabric');
  // IPv6: without snooping, the bridge floods neighbour solicitations to every port (no MLD
  // querier to learn the groups from).
  await ipIn(fabricNs, ['link', 'add', 'name', 'br0', 'type', 'bridge', ...(opts.ipv6 ? ['mcast_snooping', '0'] : [])]);
  await linkUp(fabricNs, 'br0');
  let port = 0;
  // One end in `ns` named `ifname`, the other a bridge port in the fabric.
  const plug = async (ns: string, ifname: string, cidr: string, cidr6?: string) => {
    const fabricEnd = hostIfname(run.prefix, 'f', port++);
    await addVethPair({ ns: fabricNs, name: fabricEnd, peerNs: ns, peerName: ifname });
    await ipIn(fabricNs, ['link', 'set', 'dev', fabricEnd, 'master', 'br0']);
    await linkUp(fabricNs, fabricEnd);
    await addAddress(ns, ifname, cidr);
    if (cidr6) await addAddress(ns, ifname, cidr6, { nodad: true });
    await linkUp(ns, ifname);
  };
  const v6 = opts.ipv6 === true;
  const isV6 = (cidr: string) => cidr.includes(':');
  if (!v6 && (opts.clientRoutes ?? []).some((r) => isV6(r.cidr))) throw new Error('testbed: IPv6 client routes need ClusterOptions.ipv6');
  const routed = opts.routedClients && opts.routedClients.count > 0 ? opts.routedClients : undefined;
  const nodeIps = opts.nodes.map((_, i) => `192.168.50.${2 + i}`);
  const nodeIp = (i: number, what: string) => {
    const ip = nodeIps[i];
    if (!ip) throw new Error(`testbed: ${what} via node ${i}: no such node`);
    return ip;
  };
  const podCidrs = opts.nodes.map((_, i) => `10.244.${1 + i}.0/24`);
  const nodeIps6 = opts.nodes.map((_, i) => `fd00:50::${2 + i}`);
  const podCidrs6 = opts.nodes.map((_, i) => `fd00:10:244:${1 + i}::/64`);
  // A client route's gateway: the node's address in the route's family.
  const gatewayFor = (r: { cidr: string; node: number }) => (isV6(r.cidr) ? nodeIps6[r.node] : undefined) ?? nodeIp(r.node, `client route ${r.cidr}`);
  const router = async (name: string) => {
    const ns = await run.netns(name);
    await setSysctl(ns, 'net.ipv4.ip_forward', '1');
    await setSysctl(ns, 'net.ipv4.conf.all.rp_filter', '0');
    await setSysctl(ns, 'net.ipv4.conf.default.rp_filter', '0');
    if (v6) await setSysctl(ns, 'net.ipv6.conf.all.forwarding', '1');
    await linkUp(ns, 'lo');
    return ns;
  };

  const buildPod = async (node: ClusterNode, letter: string, i: number, n: number, name: string): Promise<ClusterPod> => {
    const podNs = await run.netns(`${letter}-${name}`);
    const ip = `10.244.${1 + i}.${10 + n}`;
    const host = hostIfname(run.prefix, letter, n);
    await addVethPair({ ns: node.ns, name: host, peerNs: podNs, peerName: 'eth0' });
    await Promise.all([
      (async () => {
        await addAddress(node.ns, host, `${node.podGateway}/32`);
        await linkUp(node.ns, host);
        await addRoute(node.ns, { to: `${ip}/32`, dev: host, scope: 'link', src: node.podGateway });
      })(),
      (async () => {
        await addAddress(podNs, 'eth0', `${ip}/32`);
        await linkUp(podNs, 'eth0');
        await linkUp(podNs, 'lo');
        await addRoute(podNs, { to: `${node.podGateway}/32`, dev: 'eth0', scope: 'link' });
        await addRoute(podNs, { to: 'default', via: node.podGateway, dev: 'eth0' });
      })(),
    ]);
    const pod: ClusterPod = { name, ns: podNs, ip, hostIfname: host };
    if (node.ip6 && node.podGateway6) {
      const gw6 = node.podGateway6;
      const ip6 = `fd00:10:244:${1 + i}::${10 + n}`;
      await addAddress(node.ns, host, `${gw6}/128`, { nodad: true });
      await addRoute(node.ns, { to: `${ip6}/128`, dev: host, src: gw6 });
      await addAddress(podNs, 'eth0', `${ip6}/128`, { nodad: true });
      await addRoute(podNs, { to: `${gw6}/128`, dev: 'eth0' });
      await addRoute(podNs, { to: 'default', via: gw6, dev: 'eth0' });
      pod.ip6 = ip6;
    }
    return pod;
  };

  const buildNode = async (i: number, podNames: string[]): Promise<ClusterNode> => {
    const letter = NODE_NAMES[i] as string;
    const ns = await router(`node${letter}`);
    const node: ClusterNode = {
      name: `node-${letter}`, ns, ip: nodeIp(i, 'node'), podCidr: podCidrs[i] as string, podGateway: `10.244.${1 + i}.1`, pods: [],
      ...(v6 ? { ip6: nodeIps6[i] as string, podCidr6: podCidrs6[i] as string, podGateway6: `fd00:10:244:${1 + i}::1` } : {}),
    };
    const pods = Promise.all(podNames.map((name, n) => buildPod(node, letter, i, n, name)));
    await plug(ns, NODE_UPLINK, `${node.ip}/24`, v6 ? `${node.ip6}/64` : undefined);
    for (const [j, cidr] of podCidrs.entries()) {
      if (j !== i) await addRoute(ns, { to: cidr, via: nodeIp(j, 'pod route'), dev: NODE_UPLINK });
      if (j !== i && v6) await addRoute(ns, { to: podCidrs6[j] as string, via: nodeIps6[j] as string, dev: NODE_UPLINK });
    }
    if (routed) await addRoute(ns, { to: ROUTED_CLIENTS_CIDR, via: EDGE_ROUTER_IP, dev: NODE_UPLINK });
    if (routed && v6) await addRoute(ns, { to: ROUTED_CLIENTS_CIDR6, via: EDGE_ROUTER_IP6, dev: NODE_UPLINK });
    node.pods.push(...(await pods));
    return node;
  };

  const buildClient = async (i: number): Promise<ClusterClient> => {
    const ns = await run.netns(`client${i}`);
    const client: ClusterClient = { name: `client${i}`, ns, ip: `192.168.50.${100 + i}`, ...(v6 ? { ip6: `fd00:50::${100 + i}` } : {}) };
    await linkUp(ns, 'lo');
    await plug(ns, 'eth0', `${client.ip}/24`, client.ip6 ? `${client.ip6}/64` : undefined);
    for (const r of opts.clientRoutes ?? []) await addRoute(ns, { to: r.cidr, via: gatewayFor(r), dev: 'eth0' });
    return client;
  };

  const buildEdge = async (): Promise<ClusterRouter> => {
    const edge = { name: 'edge', ns: await router('edge'), ip: EDGE_ROUTER_IP };
    await plug(edge.ns, NODE_UPLINK, `${edge.ip}/24`, v6 ? `${EDGE_ROUTER_IP6}/64` : undefined);
    for (const r of opts.clientRoutes ?? []) await addRoute(edge.ns, { to: r.cidr, via: gatewayFor(r), dev: NODE_UPLINK });
    return edge;
  };

  // The access router and its clients; the narrow link to the edge is made once both exist.
  const buildAccess = async (count: number): Promise<[ClusterRouter, ClusterClient[]]> => {
    const access = { name: 'access', ns: await router('access'), ip: '172.16.0.2' };
    const clients: ClusterClient[] = [];
    for (let i = 0; i < count; i++) {
      const ns = await run.netns(`far${i}`);
      const client: ClusterClient = { name: `far${i}`, ns, ip: `172.16.1.${100 + i}`, ...(v6 ? { ip6: `fd00:16:1::${(100 + i).toString(16)}` } : {}) };
      const lan = `lan${i}`;
      await linkUp(ns, 'lo');
      await addVethPair({ ns: access.ns, name: lan, peerNs: ns, peerName: 'eth0' });
      // The first LAN link carries the /24; the others reach their client by a host route.
      await addAddress(access.ns, lan, i === 0 ? '172.16.1.1/24' : '172.16.1.1/32');
      await linkUp(access.ns, lan);
      if (i > 0) await addRoute(access.ns, { to: `${client.ip}/32`, dev: lan });
      await addAddress(ns, 'eth0', `${client.ip}/24`);
      await linkUp(ns, 'eth0');
      await addRoute(ns, { to: 'default', via: '172.16.1.1', dev: 'eth0' });
      if (client.ip6) {
        // Host routes both ways (the gateway address sits on every LAN link of the access router).
        await addAddress(access.ns, lan, 'fd00:16:1::1/128', { nodad: true });
        await addRoute(access.ns, { to: `${client.ip6}/128`, dev: lan });
        await addAddress(ns, 'eth0', `${client.ip6}/128`, { nodad: true });
        await addRoute(ns, { to: 'fd00:16:1::1/128', dev: 'eth0' });
        await addRoute(ns, { to: 'default', via: 'fd00:16:1::1', dev: 'eth0' });
      }
      clients.push(client);
    }
    return [access, clients];
  };

  const [nodes, clients, edgeAndAccess] = await Promise.all([
    Promise.all(opts.nodes.map((podNames, i) => buildNode(i, podNames))),
    Promise.all(Array.from({ length: opts.clients ?? 1 }, (_, i) => buildClient(i))),
    routed ? Promise.all([buildEdge(), buildAccess(routed.count)]) : undefined,
  ]);

  const routers: ClusterRouter[] = [];
  const routedClients: ClusterClient[] = [];
  if (routed && edgeAndAccess) {
    const [edge, [access, far]] = edgeAndAccess;
    await addVethPair({ ns: edge.ns, name: 'narrow0', peerNs: access.ns, peerName: 'narrow0' });
    const mtu = String(routed.narrowMtu ?? 1500);
    await Promise.all(([[edge, '172.16.0.1/30', 'fd00:16::1/64'], [access, '172.16.0.2/30', 'fd00:16::2/64']] as const).map(async ([r, cidr, cidr6]) => {
      await ipIn(r.ns, ['link', 'set', 'dev', 'narrow0', 'mtu', mtu]);
      await addAddress(r.ns, 'narrow0', cidr);
      if (v6) await addAddress(r.ns, 'narrow0', cidr6, { nodad: true });
      await linkUp(r.ns, 'narrow0');
    }));
    await addRoute(edge.ns, { to: '172.16.1.0/24', via: access.ip, dev: 'narrow0' });
    await addRoute(access.ns, { to: 'default', via: '172.16.0.1', dev: 'narrow0' });
    if (v6) {
      await addRoute(edge.ns, { to: 'fd00:16:1::/64', via: 'fd00:16::2', dev: 'narrow0' });
      await addRoute(access.ns, { to: 'default', via: 'fd00:16::1', dev: 'narrow0' });
    }
    routers.push(edge, access);
    routedClients.push(...far);
  }
  return { fabricNs, nodes, clients, routedClients, routers };
}
