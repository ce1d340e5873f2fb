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
import { spawnInNetns } from '../src/testbed/netns.js';
import { TestbedRun } from '../src/testbed/run.js';
import { TrafficClient } from '../test/traffic/traffic-client.js';
import type { Target } from '../test/traffic/traffic-client.js';
import { processRssBytes } from './proc.js';
import type { MeasuredService } from './service-objects.js';
import { benchObjects, ECHO_PORT, kubeProxyApply, kubeProxyNftApply, waitProgrammed } from './service-objects.js';

export const CONNECT_PATHS = ['direct', 'kube-proxy', 'kube-proxy-nft', 'sluice-connect', 'sluice-tc'] as const;
export type ConnectPath = (typeof CONNECT_PATHS)[number];

export interface ConnectProgramming {
  services: number;
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
}

export interface PathClient {
  path: ConnectPath;
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
  nodes: { plain: ClusterNode; kubeProxy: ClusterNode; kubeProxyNft: ClusterNode; sluice: ClusterNode };
  agent: NodeAgent;
  paths: Map<ConnectPath, PathClient>;
  /** Programs both dataplanes for `services`; resolves with how long each took (ms). */
  apply(services: number): Promise<ConnectProgramming>;
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

const pod = (node: ClusterNode, i: number) => node.pods[i] as ClusterPod;

export async function createConnectBed(backend: IptablesBackend): Promise<ConnectBed> {
  const run = await TestbedRun.start();
  run.handleProcessEvents(); // SIGINT/SIGTERM: the bed is removed before the process exits
  try {
    const cluster = await createCluster(run, { nodes: [['client-a', 'web-a'], ['client-b', 'web-b'], ['client-c', 'web-c'], ['client-d', 'web-d']], clients: 0 });
    const [plain, kubeProxy, sluice, kubeProxyNft] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    for (const node of cluster.nodes) {
      await startEchoServer(run, { name: pod(node, 1).name, ns: pod(node, 1).ns, tcp: [ECHO_PORT] });
      const iperf = run.own(spawnInNetns(pod(node, 1).ns, ['iperf3', '--server', '--port', String(IPERF_PORT)], { stdio: 'ignore' }), `iperf3 server in ${pod(node, 1).name}`);
      iperf.once('error', () => undefined); // a missing iperf3 shows as the throughput bench's failure
    }
    const extraPorts = [IPERF_PORT];
    const measuredKp: MeasuredService = { name: 'measured-kp', clusterIP: KP_VIP, extraPorts, endpoint: { ip: pod(kubeProxy, 1).ip, node: kubeProxy.name } };
    const measuredNft: MeasuredService = { name: 'measured-nft', clusterIP: KP_NFT_VIP, extraPorts, endpoint: { ip: pod(kubeProxyNft, 1).ip, node: kubeProxyNft.name } };
    const measuredSl: MeasuredService = { name: 'measured-sl', clusterIP: SLUICE_VIP, extraPorts, endpoint: { ip: pod(sluice, 1).ip, node: sluice.name } };
    const objects = (services: number, m: MeasuredService, node: ClusterNode) => benchObjects(cluster.nodes, [m], services - 1, node.name);

    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-connect-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeManifest(manifests, 'cluster.json', objects(1, measuredSl, sluice));
    const [agent] = (await clusterAgents(run, [sluice], work, manifests)) as [NodeAgent];
    await agent.start();
    await waitProgrammed(agent, 1 + extraPorts.length);

    const cgRoot = await run.cgroup();
    const pinRoot = await run.pinDir();
    const pathClient = async (path: ConnectPath, node: ClusterNode, cgroup: string, host: string): Promise<[ConnectPath, PathClient]> => {
      const ns = pod(node, 0).ns;
      const target = { host, port: [SLUICE_VIP, KP_VIP, KP_NFT_VIP].includes(host) ? 80 : ECHO_PORT, timeoutMs: 3000 };
      return [path, { path, client: await TrafficClient.start(run, ns, cgroup), ns, cgroup, target, backend: pod(node, 1).name }];
    };
    const paths = new Map<ConnectPath, PathClient>([
      await pathClient('direct', plain, await createCgroup(cgRoot, 'client-a'), pod(plain, 1).ip),
      await pathClient('kube-proxy', kubeProxy, await createCgroup(cgRoot, 'client-b'), KP_VIP),
      await pathClient('kube-proxy-nft', kubeProxyNft, await createCgroup(cgRoot, 'client-d'), KP_NFT_VIP),
      // Below the agent's cgroup: its connect-time programs are inherited.
      await pathClient('sluice-connect', sluice, await createCgroup(agent.cgroup, 'client'), SLUICE_VIP),
      await pathClient('sluice-tc', sluice, await createCgroup(cgRoot, 'client-c-tc'), SLUICE_VIP),
    ]);
    const bed: ConnectBed = {
      run, nodes: { plain, kubeProxy, kubeProxyNft, sluice }, agent, paths, services: 1,
      servicePorts: () => bed.services + extraPorts.length,
      apply: async (services) => {
        const kp = await kubeProxyApply(kubeProxy, objects(services, measuredKp, kubeProxy), [measuredKp], backend);
        const nft = await kubeProxyNftApply(kubeProxyNft, objects(services, measuredNft, kubeProxyNft), [measuredNft]);
        const t0 = performance.now();
        await writeManifest(manifests, 'cluster.json', objects(services, measuredSl, sluice));
        await waitProgrammed(agent, services + extraPorts.length);
        const sluiceProgrammedMs = performance.now() - t0;
        bed.services = services;
        const pid = agent.child?.pid ?? NaN;
        return {
          services, kubeProxyRestoreMs: kp.restoreMs, kubeProxyNatRules: kp.natRules,
          kubeProxyNftLoadMs: nft.loadMs, kubeProxyNftRules: nft.rules, kubeProxyNftElements: nft.elements, sluiceProgrammedMs,
          sluiceRssBytes: processRssBytes(pid), sluicePeakRssBytes: processRssBytes(pid, true),
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
