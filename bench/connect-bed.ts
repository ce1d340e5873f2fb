// The bed of the connect bench (bench/connect.ts): one TestbedRun, one createCluster() with four
// nodes, each with a client pod and a backend pod (an echo server), each node its own dataplane —
// so the paths share the run, the processes and the machine but no rules:
//
//   node-a  nothing                       direct: client-a → web-a's pod IP (the limit)
//   node-b  kube-proxy's iptables rules   kube-proxy: client-b → ClusterIP → web-b
//   node-d  kube-proxy's nftables table   kube-proxy-nft: client-d → ClusterIP → web-d
//   node-c  a sluice-agent                sluice-connect: client-c in a cgroup below the agent's
//                                           (connect-time programs) → ClusterIP → web-c
//                                         sluice-tc: client-c again, in a cgroup outside the
//                                           agent's (TC programs on the veths alone)
//
// A connection goes client pod → its node (routing, and the node's dataplane) → backend pod on
// the same node. Each dataplane holds N services at scale N: N-1 fillers and its measured one,
// added last (kube-proxy: the last ClusterIP rule of KUBE-SERVICES, what a new flow walks;
// nftables mode: one more element of the service-ips map, looked up in O(1)). The two kube-proxy
// modes get nodes of their own: in one namespace, whichever nat hook ran first would make the
// other's packets pay for its lookup too.
//
// Dual stack (issue 16; `families` IPv4,IPv6, the default): every pod also gets an IPv6 address
// (fd00:10:244:<node>::<10+n>, the node's fd00:10:244:<node>::1 on its veth as the gateway), every
// service an IPv6 ClusterIP and an IPv6 EndpointSlice, kube-proxy's nodes both families' rules
// (iptables + ip6tables; the `ip` and `ip6` kube-proxy tables) and the agent both families' maps.
// Each path is then measured in each family from the same client process: the same pods, routes
// and dataplanes, only the address family differs.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCgroup } from '../src/testbed/cgroup.js';
import { createCluster } from '../src/testbed/cluster.js';
import type { ClusterNode, ClusterPod } from '../src/testbed/cluster.js';
import { clusterAgents, writeManifest } from '../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../src/testbed/cluster-agent.js';
import { startEchoServer } from '../src/testbed/echo.js';
import type { IptablesBackend } from '../src/testbed/iptables.js';
import { NETNS_PREFIX } from '../src/testbed/names.js';
import { addAddress, addRoute, setSysctl, spawnInNetns } from '../src/testbed/netns.js';
import type { IpFamily } from '../src/model/types.js';
import { TestbedRun } from '../src/testbed/run.js';
import { TrafficClient } from '../test/traffic/traffic-client.js';
import type { Target } from '../test/traffic/traffic-client.js';
import { processRssBytes } from './proc.js';
import type { MeasuredService } from './service-objects.js';
import { benchObjects, ECHO_PORT, kubeProxyApply, kubeProxyNftApply, waitProgrammed } from './service-objects.js';

export const CONNECT_PATHS = ['direct', 'kube-proxy', 'kube-proxy-nft', 'sluice-connect', 'sluice-tc'] as const;
export type ConnectPath = (typeof CONNECT_PATHS)[number];
export const CONNECT_FAMILIES: readonly IpFamily[] = ['IPv4', 'IPv6'];

/** The kube-proxy baselines' programming in one family. */
export interface KubeProxyProgramming {
  kubeProxyRestoreMs: number;
  kubeProxyNatRules: number;
  kubeProxyNftLoadMs: number;
  kubeProxyNftRules: number;
  kubeProxyNftElements: number;
}

export interface ConnectProgramming {
  services: number;
  /** IPv4: iptables-restore and the `ip kube-proxy` table. */
  kubeProxyRestoreMs: number;
  kubeProxyNatRules: number;
  /** kube-proxy's nftables-mode table: one `nft -f` transaction replacing it (ms), its rules and map elements. */
  kubeProxyNftLoadMs: number;
  kubeProxyNftRules: number;
  kubeProxyNftElements: number;
  /** Manifest written → the agent's status says every service port is programmed. */
  sluiceProgrammedMs: number;
  /** The agent's RSS once programmed, and its peak so far (bytes). */
  sluiceRssBytes: number;
  sluicePeakRssBytes: number;
  /** In a dual-stack bed: ip6tables-restore and the `ip6 kube-proxy` table (Sluice's time above covers both families). */
  ipv6?: KubeProxyProgramming;
}

export interface PathClient {
  path: ConnectPath;
  family: IpFamily;
  client: TrafficClient;
  /** The client pod's namespace and the cgroup of this path's processes. */
  ns: string;
  cgroup: string;
  target: Target;
  /** The echo server (pod name) that must answer. */
  backend: string;
}

export interface ConnectBed {
  run: TestbedRun;
  /** The agent's flags beyond the test bed's (map sizes for the largest scale): every start of it uses them. */
  agentFlags: string[];
  nodes: { plain: ClusterNode; kubeProxy: ClusterNode; kubeProxyNft: ClusterNode; sluice: ClusterNode };
  agent: NodeAgent;
  /** The IP families measured (IPv4 always; IPv6 in a dual-stack bed). */
  families: readonly IpFamily[];
  /** A path's client in one family (default IPv4); throws if the bed has none. */
  path(path: ConnectPath, family?: IpFamily): PathClient;
  /**
   * Programs the dataplanes for `services`; resolves with how long each took (ms). `nft: false`
   * leaves kube-proxy's nftables node as it was (its figures NaN): the path is not measured there.
   */
  apply(services: number, opts?: { nft?: boolean }): Promise<ConnectProgramming>;
  /** The scale the bed is programmed for, and the service ports that makes (the measured service has two). */
  services: number;
  servicePorts(): number;
  destroy(): Promise<void>;
  /** What of the run is still there (namespaces, cgroup subtree, pin directory): empty after destroy(). */
  leftovers(): string[];
}

/** iperf3's port on the backend pods and the measured services (bench/throughput.ts). */
export const IPERF_PORT = 5201;
const KP_VIP = '10.96.0.11';
const SLUICE_VIP = '10.96.0.12';
const KP_NFT_VIP = '10.96.0.13';
const KP_VIP6 = 'fd00:96::11';
const SLUICE_VIP6 = 'fd00:96::12';
const KP_NFT_VIP6 = 'fd00:96::13';
const VIPS = [SLUICE_VIP, KP_VIP, KP_NFT_VIP, SLUICE_VIP6, KP_VIP6, KP_NFT_VIP6];

const pod = (node: ClusterNode, i: number) => node.pods[i] as ClusterPod;

/** The agent's default svc_id space (`--map-size-service-ids`, docs/agent.md): id 0 is reserved. */
const DEFAULT_SERVICE_IDS = 65_536;

/**
 * Map-size flags for an agent holding `services` dual-stack (or single-stack) services of the bed:
 * the svc_id space is shared by both families, so 65k dual-stack services (130k service ports)
 * overflow its default 65,536 — the agent would program the rest and the bench wait for ever.
 */
export function agentMapFlags(services: number, families: number): string[] {
  const ids = (services + 1) * families + 1; // every service's port, the measured one's iperf3 port, id 0
  return ids <= DEFAULT_SERVICE_IDS ? [] : ['--map-size-service-ids', String(Math.ceil((ids * 1.1) / 1024) * 1024)];
}

/**
 * Gives every pod of node `i` an IPv6 address beside its IPv4 one, as topology.ts's `ipv6` does
 * for one node: the node's gateway address on each pod veth, a /128 route each way, forwarding on.
 * Returns the pods' IPv6 addresses by namespace.
 */
async function addPodIpv6(nodes: readonly ClusterNode[]): Promise<Map<string, string>> {
  const ip6 = new Map<string, string>();
  await Promise.all(nodes.map(async (node, i) => {
    const prefix = `fd00:10:244:${i + 1}:`;
    const gateway = `${prefix}:1`;
    await setSysctl(node.ns, 'net.ipv6.conf.all.forwarding', '1');
    for (const [n, p] of node.pods.entries()) {
      const addr = `${prefix}:${(10 + n).toString(16)}`;
      await addAddress(node.ns, p.hostIfname, `${gateway}/128`, { nodad: true });
      await addRoute(node.ns, { to: `${addr}/128`, dev: p.hostIfname, src: gateway });
      await addAddress(p.ns, 'eth0', `${addr}/128`, { nodad: true });
      await addRoute(p.ns, { to: `${gateway}/128`, dev: 'eth0' });
      await addRoute(p.ns, { to: 'default', via: gateway, dev: 'eth0' });
      ip6.set(p.ns, addr);
    }
  }));
  return ip6;
}

export async function createConnectBed(backend: IptablesBackend, families: readonly IpFamily[] = CONNECT_FAMILIES, maxServices = 1): Promise<ConnectBed> {
  if (!families.includes('IPv4') || families.some((f) => !CONNECT_FAMILIES.includes(f))) throw new Error(`connect bed: families ${families.join(',')}: IPv4, optionally IPv6`);
  const dualStack = families.includes('IPv6');
  const run = await TestbedRun.start();
  run.handleProcessEvents(); // SIGINT/SIGTERM: the bed is removed before the process exits
  try {
    const cluster = await createCluster(run, { nodes: [['client-a', 'web-a'], ['client-b', 'web-b'], ['client-c', 'web-c'], ['client-d', 'web-d']], clients: 0 });
    const [plain, kubeProxy, sluice, kubeProxyNft] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const ip6 = dualStack ? await addPodIpv6(cluster.nodes) : new Map<string, string>();
    const v6 = (p: ClusterPod) => ip6.get(p.ns) as string;
    for (const node of cluster.nodes) {
      // '::' serves both families (the sockets are dual-stack).
      await startEchoServer(run, { name: pod(node, 1).name, ns: pod(node, 1).ns, tcp: [ECHO_PORT], ...(dualStack ? { host: '::' } : {}) });
      const iperf = run.own(spawnInNetns(pod(node, 1).ns, ['iperf3', '--server', '--port', String(IPERF_PORT)], { stdio: 'ignore' }), `iperf3 server in ${pod(node, 1).name}`);
      iperf.once('error', () => undefined); // a missing iperf3 shows as the throughput bench's failure
    }
    const extraPorts = [IPERF_PORT];
    const measured = (name: string, node: ClusterNode, vip: string, vip6: string): MeasuredService => ({
      name, clusterIP: vip, extraPorts, endpoint: { ip: pod(node, 1).ip, node: node.name },
      ...(dualStack ? { ipv6: { clusterIP: vip6, endpointIp: v6(pod(node, 1)) } } : {}),
    });
    const measuredKp = measured('measured-kp', kubeProxy, KP_VIP, KP_VIP6);
    const measuredNft = measured('measured-nft', kubeProxyNft, KP_NFT_VIP, KP_NFT_VIP6);
    const measuredSl = measured('measured-sl', sluice, SLUICE_VIP, SLUICE_VIP6);
    const objects = (services: number, m: MeasuredService, node: ClusterNode) => benchObjects(cluster.nodes, [m], services - 1, node.name, dualStack);
    const servicePorts = (services: number) => (services + extraPorts.length) * families.length;

    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-connect-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeManifest(manifests, 'cluster.json', objects(1, measuredSl, sluice));
    const [agent] = (await clusterAgents(run, [sluice], work, manifests)) as [NodeAgent];
    const agentFlags = agentMapFlags(maxServices, families.length);
    await agent.start(agentFlags);
    await waitProgrammed(agent, servicePorts(1));

    const cgRoot = await run.cgroup();
    const pinRoot = await run.pinDir();
    // One client process per path, in both families: a PathClient per (path, family) over it.
    const paths = new Map<string, PathClient>();
    const key = (path: ConnectPath, family: IpFamily) => `${family}/${path}`;
    const pathClient = async (path: ConnectPath, node: ClusterNode, cgroup: string, hosts: Record<IpFamily, string>): Promise<void> => {
      const ns = pod(node, 0).ns;
      const client = await TrafficClient.start(run, ns, cgroup);
      for (const family of families) {
        const host = hosts[family];
        const target = { host, port: VIPS.includes(host) ? 80 : ECHO_PORT, timeoutMs: 3000 };
        paths.set(key(path, family), { path, family, client, ns, cgroup, target, backend: pod(node, 1).name });
      }
    };
    await pathClient('direct', plain, await createCgroup(cgRoot, 'client-a'), { IPv4: pod(plain, 1).ip, IPv6: v6(pod(plain, 1)) });
    await pathClient('kube-proxy', kubeProxy, await createCgroup(cgRoot, 'client-b'), { IPv4: KP_VIP, IPv6: KP_VIP6 });
    await pathClient('kube-proxy-nft', kubeProxyNft, await createCgroup(cgRoot, 'client-d'), { IPv4: KP_NFT_VIP, IPv6: KP_NFT_VIP6 });
    // Below the agent's cgroup: its connect-time programs are inherited.
    await pathClient('sluice-connect', sluice, await createCgroup(agent.cgroup, 'client'), { IPv4: SLUICE_VIP, IPv6: SLUICE_VIP6 });
    await pathClient('sluice-tc', sluice, await createCgroup(cgRoot, 'client-c-tc'), { IPv4: SLUICE_VIP, IPv6: SLUICE_VIP6 });
    const bed: ConnectBed = {
      run, nodes: { plain, kubeProxy, kubeProxyNft, sluice }, agent, agentFlags, families, services: 1,
      path: (path, family = 'IPv4') => {
        const p = paths.get(key(path, family));
        if (!p) throw new Error(`connect bed: no ${family} client for ${path}`);
        return p;
      },
      servicePorts: () => servicePorts(bed.services),
      apply: async (services, opts) => {
        const kp = await kubeProxyApply(kubeProxy, objects(services, measuredKp, kubeProxy), [measuredKp], backend, families);
        const nft = opts?.nft === false ? {} : await kubeProxyNftApply(kubeProxyNft, objects(services, measuredNft, kubeProxyNft), [measuredNft], families);
        const t0 = performance.now();
        await writeManifest(manifests, 'cluster.json', objects(services, measuredSl, sluice));
        await waitProgrammed(agent, servicePorts(services));
        const sluiceProgrammedMs = performance.now() - t0;
        bed.services = services;
        const pid = agent.child?.pid ?? NaN;
        const kube = (f: IpFamily): KubeProxyProgramming => ({
          kubeProxyRestoreMs: kp[f]?.restoreMs ?? NaN, kubeProxyNatRules: kp[f]?.natRules ?? NaN,
          kubeProxyNftLoadMs: nft[f]?.loadMs ?? NaN, kubeProxyNftRules: nft[f]?.rules ?? NaN, kubeProxyNftElements: nft[f]?.elements ?? NaN,
        });
        return {
          services, ...kube('IPv4'), sluiceProgrammedMs,
          sluiceRssBytes: processRssBytes(pid), sluicePeakRssBytes: processRssBytes(pid, true),
          ...(dualStack ? { ipv6: kube('IPv6') } : {}),
        };
      },
      destroy: () => run.destroy(),
      leftovers: () => {
        const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${NETNS_PREFIX}${run.prefix}-`)).map((n) => `/run/netns/${n}`) : [];
        return [...netns, cgRoot, pinRoot].filter((p) => existsSync(p));
      },
    };
    return bed;
  } catch (err) {
    await run.destroy();
    throw err;
  }
}
