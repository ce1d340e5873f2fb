// External traffic across two nodes with real traffic (issue 14): two node namespaces on a
// bridge fabric, each with its own sluice-agent, pin dir and cgroup, pods behind each, and an
// external client namespace on the fabric. One bed serves every scenario (CI time).
//
//   NodePort at node A, backend on A: the pod sees the client's address (DNAT only);
//   NodePort at node A, backend only on B: the pod sees node A's address (SNAT, as kube-proxy);
//   LoadBalancer IP and ExternalIP (routed by the client to node A) the same;
//   eTP=Local with the only backend on B: node A drops (and its health check says 503), node B
//   serves with the client's address (200); loadBalancerSourceRanges allow and refuse;
//   a service without endpoints is refused at once; node A's own processes reach the NodePort
//   (connect-time programs on its cgroup).
// The bed is dual-stack: on it, the IPv6 and dual-stack scenarios of ipv6-scenarios.ts (issue 16).
// Then, on the same bed, the transfers of transfer-scenarios.ts (1 MiB through SNAT, a UDP backend
// replaced under a live socket, node A's agent restarted during a download, path-MTU discovery).
import t from 'tap';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestbedRun } from '../../src/testbed/run.js';
import { ECHO, nodeObjects, serviceObjects, waitSynced } from './bed.js';
import { TRANSFER_ECHO, transferScenarios, transferServices } from './transfer-scenarios.js';
import { CLIENT_ROUTES6, ipv6Scenarios, ipv6Services } from './ipv6-scenarios.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { TrafficClient } from '../traffic/traffic-client.js';
import { createCluster } from '../../src/testbed/cluster.js';
import type { Cluster } from '../../src/testbed/cluster.js';
import { clusterAgents, writeManifest } from '../../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import type { EchoAttempt } from '../../src/testbed/echo.js';
import { netnsArgv } from '../../src/testbed/netns.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { requirePrivileges } from '../helpers/privileges.js';

// A two-node bed with real agents: on a loaded 2-core machine more than tap's default 300 s.
t.setTimeout(600_000);

const LB_IP = '203.0.113.10';
const EXTERNAL_IP = '198.51.100.10';
const HC_PORT = 32100;

/** HTTP status of GET http://host:port/ from the client namespace (curl; 0 when no answer). */
async function httpStatus(ns: string, host: string, port: number): Promise<number> {
  // -g: the brackets of an IPv6 literal are no glob.
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  const r = await runCommand(netnsArgv(ns, ['curl', '-g', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', url]), { allowFailure: true, timeoutMs: 10_000 });
  return Number(r.stdout.trim() || '0');
}

const one = (a: EchoAttempt[]) => a[0] as EchoAttempt;

t.test('external traffic on a two-node cluster', async (t) => {
  if (!(await requirePrivileges(t))) return;

  const setupStart = Date.now();
  const run = await TestbedRun.start();
  t.teardown(async () => {
    const at = Date.now();
    await run.destroy();
    console.error(`# external-traffic bed removed in ${Date.now() - at} ms`);
  });
  run.handleProcessEvents();
  const c = await createCluster(run, {
    nodes: [['web-a0'], ['web-b0']],
    clients: 1,
    clientRoutes: [
      { cidr: `${LB_IP}/32`, node: 0 }, { cidr: `${EXTERNAL_IP}/32`, node: 0 }, { cidr: '203.0.113.20/32', node: 0 }, { cidr: '203.0.113.21/32', node: 0 },
      ...CLIENT_ROUTES6,
    ],
    routedClients: { count: 1, narrowMtu: 1400 },
    ipv6: true,
  });
  const [nodeA, nodeB] = c.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  const client = c.clients[0] as Cluster['clients'][0];
  const podA = nodeA.pods[0] as Cluster['nodes'][0]['pods'][0];
  const podB = nodeB.pods[0] as Cluster['nodes'][0]['pods'][0];
  t.comment(`namespaces ready after ${Date.now() - setupStart} ms`);
  await Promise.all(c.nodes.flatMap((n) => n.pods).map((p) =>
    startEchoServer(run, { name: p.name, ns: p.ns, host: ['0.0.0.0', '::'], tcp: [ECHO], ...TRANSFER_ECHO })));

  const work = await mkdtemp(join(tmpdir(), 'sluice-ext-'));
  run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifests = join(work, 'manifests');
  await mkdir(manifests);
  const onA = { pod: podA.name, ip: podA.ip, node: nodeA.name };
  const onB = { pod: podB.name, ip: podB.ip, node: nodeB.name };
  await writeManifest(manifests, 'transfer.json', serviceObjects(transferServices(c)));
  await writeManifest(manifests, 'ipv6.json', serviceObjects(ipv6Services(c)));
  await writeManifest(manifests, 'cluster.json', [...nodeObjects(c), ...serviceObjects([
    { name: 'local', clusterIP: '10.96.0.11', nodePort: 30011, pods: [onA] },
    { name: 'remote', clusterIP: '10.96.0.12', nodePort: 30012, pods: [onB], extra: { externalIPs: [EXTERNAL_IP] } },
    {
      name: 'lb', clusterIP: '10.96.0.13', nodePort: 30013, pods: [onB], extra: { type: 'LoadBalancer' },
      status: { loadBalancer: { ingress: [{ ip: LB_IP }] } },
    },
    {
      name: 'etp-local', clusterIP: '10.96.0.14', nodePort: 30014, pods: [onB],
      extra: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: HC_PORT },
    },
    {
      name: 'ranges-ok', clusterIP: '10.96.0.15', nodePort: 30015, pods: [onA],
      extra: { type: 'LoadBalancer', loadBalancerSourceRanges: [`${client.ip}/32`] }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.20' }] } },
    },
    {
      name: 'ranges-no', clusterIP: '10.96.0.16', nodePort: 30016, pods: [onA],
      extra: { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/8'] }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.21' }] } },
    },
    { name: 'empty', clusterIP: '10.96.0.17', nodePort: 30017, pods: [] },
  ])]);

  const agents = await clusterAgents(run, c.nodes, work, manifests);
  const [agentA, agentB] = agents as [NodeAgent, NodeAgent];
  // SNAT explicitly: these scenarios (and their kube-proxy parity) are about the SNAT path.
  await Promise.all(agents.map((a) => a.start(['--external-mode', 'SNAT'])));
  await waitSynced(agents);
  t.comment(`bed ready (echo servers, both agents synced) after ${Date.now() - setupStart} ms`);

  const tcp = (host: string, port: number, timeoutMs = 2000, extra: { ns?: string; cgroup?: string } = {}) =>
    runEchoClient({ ns: extra.ns ?? client.ns, ...(extra.cgroup ? { cgroup: extra.cgroup } : {}), proto: 'tcp', host, port, timeoutMs });

  await t.test('NodePort at node A, backend on A: DNAT only, the pod sees the client', async (t) => {
    const r = one(await tcp(nodeA.ip, 30011));
    t.ok(r.ok, `answered (${JSON.stringify(r.error ?? null)})`);
    t.equal(r.pod, podA.name);
    t.equal(r.seenPeer?.address, client.ip, 'the pod saw the client\'s own address');
    t.equal(r.peername?.address, nodeA.ip, 'the client talks to node A:30011 throughout');
    t.equal(r.peername?.port, 30011);
  });

  await t.test('NodePort at node A, backend only on B: SNAT to node A, reply back through A', async (t) => {
    const r = one(await tcp(nodeA.ip, 30012));
    t.ok(r.ok, `answered (${JSON.stringify(r.error ?? null)})`);
    t.equal(r.pod, podB.name);
    t.equal(r.seenPeer?.address, nodeA.ip, 'the pod on B saw node A\'s address (SNAT)');
    const port = r.seenPeer?.port ?? 0;
    t.ok(port >= 61000 && port <= 65535, `from the reserved SNAT range (${port})`);
  });

  await t.test('ExternalIP and LoadBalancer IP routed to node A reach the backend on B', async (t) => {
    for (const [host, what] of [[EXTERNAL_IP, 'ExternalIP'], [LB_IP, 'LoadBalancer IP']] as const) {
      const r = one(await tcp(host, 80));
      t.ok(r.ok, `${what}: answered (${JSON.stringify(r.error ?? null)})`);
      t.equal(r.pod, podB.name, `${what}: the backend on B`);
      t.equal(r.seenPeer?.address, nodeA.ip, `${what}: SNAT to node A`);
      t.equal(r.peername?.address, host, `${what}: the reply came from ${host}`);
    }
  });

  await t.test('eTP=Local: node A without a local backend drops and says 503; node B serves with the client\'s address and says 200', async (t) => {
    const dropped = one(await tcp(nodeA.ip, 30014, 1500));
    t.notOk(dropped.ok, 'no answer through node A');
    // The attempt's own duration (measured by the client, without its process start-up).
    t.ok(dropped.error?.code !== 'ECONNREFUSED' && dropped.ms >= 1400, `dropped, not refused (${dropped.error?.code} after ${dropped.ms} ms)`);
    const served = one(await tcp(nodeB.ip, 30014));
    t.ok(served.ok, `node B answers (${JSON.stringify(served.error ?? null)})`);
    t.equal(served.seenPeer?.address, client.ip, 'the pod saw the client\'s address');
    t.equal(await httpStatus(client.ns, nodeA.ip, HC_PORT), 503, 'health check on A: 503');
    t.equal(await httpStatus(client.ns, nodeB.ip, HC_PORT), 200, 'health check on B: 200');
  });

  await t.test('loadBalancerSourceRanges: the client inside the range is served, outside dropped', async (t) => {
    const ok = one(await tcp('203.0.113.20', 80));
    t.ok(ok.ok, `inside the range (${JSON.stringify(ok.error ?? null)})`);
    t.equal(ok.seenPeer?.address, client.ip);
    const refused = one(await tcp('203.0.113.21', 80, 1500));
    t.notOk(refused.ok, 'outside the range: no answer');
    t.not(refused.error?.code, 'ECONNREFUSED', 'dropped, not rejected');
  });

  await t.test('a service without endpoints is refused at once', async (t) => {
    const r = one(await tcp(nodeA.ip, 30017, 3000));
    t.equal(r.error?.code, 'ECONNREFUSED');
    // The connect attempt itself (the client's own clock): the client process's start-up, which
    // took 3 s on a loaded machine, is no part of the refusal.
    t.ok(r.ms < 900, `at once, before a SYN retransmit (${r.ms} ms)`);
  });

  await t.test('node A\'s own processes reach NodePorts through the connect-time programs', async (t) => {
    for (const port of [30011, 30012]) {
      const r = one(await tcp(nodeA.ip, port, 2000, { ns: nodeA.ns, cgroup: agentA.cgroup }));
      t.ok(r.ok, `node A -> ${nodeA.ip}:${port} answered (${JSON.stringify(r.error ?? null)})`);
      t.equal(r.peername?.address, nodeA.ip, 'getpeername still says the NodePort');
    }
  });

  await t.test('hairpin: a pod reaching its own service\'s NodePort lands on itself; a pod reaches an LB IP', async (t) => {
    const self = one(await tcp(nodeA.ip, 30011, 2000, { ns: podA.ns }));
    t.ok(self.ok, `pod A -> node A:30011 (${JSON.stringify(self.error ?? null)})`);
    t.equal(self.pod, podA.name, 'landed on itself');
    t.equal(self.peername?.address, nodeA.ip, 'and saw node A:30011 answer');
    const lb = one(await tcp(LB_IP, 80, 2000, { ns: podA.ns }));
    t.ok(lb.ok, `pod A -> ${LB_IP}:80 (${JSON.stringify(lb.error ?? null)})`);
    t.equal(lb.pod, podB.name);
    t.equal(lb.seenPeer?.address, podA.ip, 'pod traffic is not SNATed');
  });

  await t.test('sluicectl shows the external frontends and the host interface with its programs', async (t) => {
    const nat = await agentA.ctl<{ frontends: { ip: string; port: number; kind: string }[] }>(['nat', 'dump']);
    const kinds = new Set(nat.frontends.map((f) => `${f.kind} ${f.ip}:${f.port}`));
    for (const want of [`NodePort ${nodeA.ip}:30011`, `ExternalIP ${EXTERNAL_IP}:80`, `LoadBalancer ${LB_IP}:80`]) t.ok(kinds.has(want), want);
    const st = await agentA.ctl<{ programs: { program: string; target: string; attached: boolean }[] }>(['status']);
    for (const program of ['sl_host_ingress', 'sl_host_egress']) {
      t.ok(st.programs.some((p) => p.program === program && p.target === 'eth0' && p.attached), `${program} on eth0`);
    }
    const counters = await agentA.ctl<{ external?: { kind: string; connections: number; refused: number }[] }>(['counters']);
    const byKind = new Map((counters.external ?? []).map((c) => [c.kind, c]));
    // Node A balanced: NodePorts 30011, 30012 (the node's own connects are connect-time, not here);
    // ExternalIP once; LoadBalancer: LB_IP and the allowed range; refused: 30014 (no local), 30017
    // (no endpoint), the range outside.
    t.ok((byKind.get('NodePort')?.connections ?? 0) >= 2, `NodePort connections counted (${JSON.stringify(byKind.get('NodePort'))})`);
    t.ok((byKind.get('ExternalIP')?.connections ?? 0) >= 1, 'ExternalIP connections counted');
    t.ok((byKind.get('LoadBalancer')?.connections ?? 0) >= 2, 'LoadBalancer connections counted');
    t.ok((byKind.get('NodePort')?.refused ?? 0) >= 2 && (byKind.get('LoadBalancer')?.refused ?? 0) >= 1, 'refusals counted by kind');
    t.ok(agentB.logs.some((l) => l.msg === 'SNAT source for external flows to remote backends' && l.snatAddress === nodeB.ip), 'node B SNATs to its own address');
  });

  // One long-lived client process for the IPv6 probes, without connect-time programs.
  const prober = await TrafficClient.start(run, client.ns, await createCgroup(await run.cgroup(), 'probes'));
  await ipv6Scenarios(t, { run, cluster: c, agents, client: prober, httpStatus: (host, port) => httpStatus(client.ns, host, port) });

  await transferScenarios(t, { run, cluster: c, agents, manifests });
});
