// The demo's mini-cluster (src/testbed/cluster.ts): two node namespaces on a bridge fabric, each
// with its own sluice-agent, pin directory and cgroup; pods client-a and web-a behind node-a,
// web-b behind node-b; an external client on the fabric that routes the LoadBalancer and
// external IPs to node-a. The agents read the bundled manifests (src/demo/manifests/, copied to
// a work directory the demo may edit). Everything is owned by the run's cleanup.
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPackageRoot } from '../bpf/native.js';
import { createCluster } from '../testbed/cluster.js';
import type { ClusterClient, ClusterNode, ClusterPod } from '../testbed/cluster.js';
import { clusterAgents } from '../testbed/cluster-agent.js';
import type { NodeAgent } from '../testbed/cluster-agent.js';
import { startEchoServer } from '../testbed/echo.js';
import type { TestbedRun } from '../testbed/run.js';

export const CLUSTER_IP = '10.96.0.10';
export const LB_IP = '203.0.113.10';
export const EXTERNAL_IP = '198.51.100.10';
export const NODE_PORT = 30080;
/** The pods' echo ports (TCP, UDP) and web-b's download port (the external services' target). */
export const ECHO_TCP = 8080;
export const ECHO_UDP = 8053;
export const DOWNLOAD = 9000;

export interface MiniCluster {
  nodeA: ClusterNode;
  nodeB: ClusterNode;
  client: ClusterClient;
  clientA: ClusterPod;
  webA: ClusterPod;
  webB: ClusterPod;
  agentA: NodeAgent;
  agentB: NodeAgent;
  agents: [NodeAgent, NodeAgent];
  /** The work directory (admin sockets, the manifests the agents read). */
  work: string;
  manifests: string;
  /** The node a pod runs on, by pod name. */
  nodeOf(pod: string | undefined): string;
}

/** Builds the namespaces, starts the echo servers and copies the manifests; the agents are not started. */
export async function buildMiniCluster(run: TestbedRun): Promise<MiniCluster> {
  const c = await createCluster(run, {
    nodes: [['client-a', 'web-a'], ['web-b']],
    clients: 1,
    clientRoutes: [{ cidr: `${LB_IP}/32`, node: 0 }, { cidr: `${EXTERNAL_IP}/32`, node: 0 }],
  });
  const [nodeA, nodeB] = c.nodes;
  const [clientA, webA] = nodeA?.pods ?? [];
  const webB = nodeB?.pods[0];
  const client = c.clients[0];
  if (!nodeA || !nodeB || !clientA || !webA || !webB || !client) throw new Error('demo: the test bed built fewer nodes, pods or clients than asked');

  const work = await mkdtemp(join(tmpdir(), 'sluice-demo-'));
  run.cleanup.add(`demo dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifests = join(work, 'manifests');
  await cp(fromPackageRoot('src', 'demo', 'manifests'), manifests, { recursive: true });
  await checkManifestAddresses(manifests, [nodeA.ip, nodeB.ip, webA.ip, webB.ip]);

  const [[agentA, agentB]] = await Promise.all([
    clusterAgents(run, [nodeA, nodeB], work, manifests) as Promise<[NodeAgent, NodeAgent]>,
    startEchoServer(run, { name: webA.name, ns: webA.ns, tcp: [ECHO_TCP], udp: [ECHO_UDP] }),
    startEchoServer(run, { name: webB.name, ns: webB.ns, tcp: [ECHO_TCP], udp: [ECHO_UDP], bulk: [DOWNLOAD] }),
  ]);
  const podNodes = new Map(c.nodes.flatMap((n) => n.pods.map((p) => [p.name, n.name] as const)));
  return {
    nodeA, nodeB, client, clientA, webA, webB, agentA, agentB, agents: [agentA, agentB], work, manifests,
    nodeOf: (pod) => podNodes.get(pod ?? '') ?? '?',
  };
}

/**
 * The bundled manifests name the nodes' and pods' addresses literally (readable, editable while
 * the demo is kept up): they must be the ones the test bed handed out.
 */
async function checkManifestAddresses(dir: string, addresses: string[]): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
  const text = (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).join('\n');
  const missing = addresses.filter((a) => !text.includes(a));
  if (missing.length > 0) {
    throw new Error(`demo: src/demo/manifests/ do not mention ${missing.join(', ')}, which the test bed gave the nodes and pods (src/testbed/cluster.ts changed its addresses?)`);
  }
}
