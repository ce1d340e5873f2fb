// The bed of the connect bench (bench/connect.ts): one TestbedRun, one createCluster() with three
// nodes, each with a client pod and a backend pod (an echo server), each node its own dataplane —
// so the paths share the run, the processes and the machine but no rules:
//
//   node-a  nothing                       direct: client-a → web-a's pod IP (the limit)
//   node-b  kube-proxy's iptables rules   kube-proxy: client-b → ClusterIP → web-b
//   node-c  a sluice-agent                sluice-connect: client-c in a cgroup below the agent's
//                                           (connect-time programs) → ClusterIP → web-c
//                                         sluice-tc: client-c again, in a cgroup outside the
//                                           agent's (TC programs on the veths alone)
//
// A connection goes client pod → its node (routing, and the node's dataplane) → backend pod on
// the same node. Each dataplane holds N services at scale N: N-1 fillers and its measured one,
// added last (kube-proxy: the last ClusterIP rule of KUBE-SERVICES, what a new flow walks).
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
import { TestbedRun } from '../src/testbed/run.js';
import { TrafficClient } from '../test/traffic/traffic-client.js';
import type { Target } from '../test/traffic/traffic-client.js';
import type { MeasuredService } from './service-objects.js';
import { benchObjects, ECHO_PORT, kubeProxyApply, waitProgrammed } from './service-objects.js';

export const CONNECT_PATHS = ['direct', 'kube-proxy', 'sluice-connect', 'sluice-tc'] as const;
export type ConnectPath = (typeof CONNECT_PATHS)[number];

export interface PathClient {
  path: ConnectPath;
  client: TrafficClient;
  target: Target;
  /** The echo server (pod name) that must answer. */
  backend: string;
}

export interface ConnectBed {
  run: TestbedRun;
  nodes: { plain: ClusterNode; kubeProxy: ClusterNode; sluice: ClusterNode };
  agent: NodeAgent;
  paths: Map<ConnectPath, PathClient>;
  /** Programs both dataplanes for `services`; resolves with how long each took (ms). */
  apply(services: number): Promise<{ services: number; kubeProxyRestoreMs: number; kubeProxyNatRules: number; sluiceProgrammedMs: number }>;
  /** The Sluice node's objects at `services` (for the start measurements). */
  services: number;
  destroy(): Promise<void>;
  /** What of the run is still there (namespaces, cgroup subtree, pin directory): empty after destroy(). */
  leftovers(): string[];
}

const KP_VIP = '10.96.0.11';
const SLUICE_VIP = '10.96.0.12';

const pod = (node: ClusterNode, i: number) => node.pods[i] as ClusterPod;

export async function createConnectBed(backend: IptablesBackend): Promise<ConnectBed> {
  const run = await TestbedRun.start();
  run.handleProcessEvents(); // SIGINT/SIGTERM: the bed is removed before the process exits
  try {
    const cluster = await createCluster(run, { nodes: [['client-a', 'web-a'], ['client-b', 'web-b'], ['client-c', 'web-c']], clients: 0 });
    const [plain, kubeProxy, sluice] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    for (const node of cluster.nodes) await startEchoServer(run, { name: pod(node, 1).name, ns: pod(node, 1).ns, tcp: [ECHO_PORT] });
    const measuredKp: MeasuredService = { name: 'measured-kp', clusterIP: KP_VIP, endpoint: { ip: pod(kubeProxy, 1).ip, node: kubeProxy.name } };
    const measuredSl: MeasuredService = { name: 'measured-sl', clusterIP: SLUICE_VIP, endpoint: { ip: pod(sluice, 1).ip, node: sluice.name } };
    const objects = (services: number, m: MeasuredService, node: ClusterNode) => benchObjects(cluster.nodes, [m], services - 1, node.name);

    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-connect-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    await writeManifest(manifests, 'cluster.json', objects(1, measuredSl, sluice));
    const [agent] = (await clusterAgents(run, [sluice], work, manifests)) as [NodeAgent];
    await agent.start();
    await waitProgrammed(agent, 1);

    const cgRoot = await run.cgroup();
    const pinRoot = await run.pinDir();
    const client = async (node: ClusterNode, cgroup: string) => TrafficClient.start(run, pod(node, 0).ns, cgroup);
    const target = (host: string) => ({ host, port: host === SLUICE_VIP || host === KP_VIP ? 80 : ECHO_PORT, timeoutMs: 3000 });
    const paths = new Map<ConnectPath, PathClient>([
      ['direct', { path: 'direct', client: await client(plain, await createCgroup(cgRoot, 'client-a')), target: target(pod(plain, 1).ip), backend: pod(plain, 1).name }],
      ['kube-proxy', { path: 'kube-proxy', client: await client(kubeProxy, await createCgroup(cgRoot, 'client-b')), target: target(KP_VIP), backend: pod(kubeProxy, 1).name }],
      // Below the agent's cgroup: its connect-time programs are inherited.
      ['sluice-connect', { path: 'sluice-connect', client: await client(sluice, await createCgroup(agent.cgroup, 'client')), target: target(SLUICE_VIP), backend: pod(sluice, 1).name }],
      ['sluice-tc', { path: 'sluice-tc', client: await client(sluice, await createCgroup(cgRoot, 'client-c-tc')), target: target(SLUICE_VIP), backend: pod(sluice, 1).name }],
    ]);
    const bed: ConnectBed = {
      run, nodes: { plain, kubeProxy, sluice }, agent, paths, services: 1,
      apply: async (services) => {
        const kp = await kubeProxyApply(kubeProxy, objects(services, measuredKp, kubeProxy), [measuredKp], backend);
        const t0 = performance.now();
        await writeManifest(manifests, 'cluster.json', objects(services, measuredSl, sluice));
        await waitProgrammed(agent, services);
        bed.services = services;
        return { services, kubeProxyRestoreMs: kp.restoreMs, kubeProxyNatRules: kp.natRules, sluiceProgrammedMs: performance.now() - t0 };
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
