// Tunnel mode with real traffic (issue 15): the two-node bed of external-traffic.test.ts, both
// agents started with --external-mode Tunnel (the mode is a start-time setting, so this is a bed
// of its own). NodePort, LoadBalancer IP and ExternalIP at node A with the only backend on node B:
// the request is tunnelled A -> B (UDP 6080), the pod on B sees the external client's own
// address, the reply is tunnelled back and leaves A as the frontend. A 1 MiB echo both ways
// (segments clamped to fit once wrapped) and UDP take the same path.
import t from 'tap';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TestbedRun } from '../../src/testbed/run.js';
import { createCluster } from '../../src/testbed/cluster.js';
import type { Cluster } from '../../src/testbed/cluster.js';
import { clusterAgents, writeManifest } from '../../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import type { EchoAttempt } from '../../src/testbed/echo.js';
import { netnsArgv, spawnInNetns } from '../../src/testbed/netns.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { ECHO, objects, waitSynced } from './bed.js';

// A two-node bed with real agents: on a loaded 2-core machine more than tap's default 300 s.
t.setTimeout(600_000);

const LB_IP = '203.0.113.10';
const EXTERNAL_IP = '198.51.100.10';
const BULK = 9000;
const MIB = 1 << 20;

const one = (a: EchoAttempt[]) => a[0] as EchoAttempt;

/** A TCP server echoing every byte back (the 1 MiB transfer), plain CommonJS for `node -e`. */
const BULK_SERVER = `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(${BULK}, () => console.log('ready'));`;
/** Sends 1 MiB, half-closes, prints how many bytes came back. */
const bulkClient = (host: string, port: number) => `
const s = require('net').connect(${port}, '${host}', () => s.end(Buffer.alloc(${MIB}, 97)));
let n = 0;
s.on('data', (d) => { n += d.length; });
s.on('error', (e) => { console.log(JSON.stringify({ n, error: e.code })); process.exit(0); });
s.on('close', () => { console.log(JSON.stringify({ n })); });
s.setTimeout(20000, () => { console.log(JSON.stringify({ n, error: 'timeout' })); process.exit(0); });`;

t.test('Tunnel mode on a two-node cluster: the backend on B sees the external client', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const started = Date.now();

  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  run.handleProcessEvents();
  const c = await createCluster(run, {
    nodes: [['web-a0'], ['web-b0']],
    clients: 1,
    clientRoutes: [{ cidr: `${LB_IP}/32`, node: 0 }, { cidr: `${EXTERNAL_IP}/32`, node: 0 }],
  });
  const [nodeA, nodeB] = c.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  const client = c.clients[0] as Cluster['clients'][0];
  const podB = nodeB.pods[0] as Cluster['nodes'][0]['pods'][0];
  await startEchoServer(run, { name: podB.name, ns: podB.ns, tcp: [ECHO], udp: [ECHO] });
  const bulk = spawnInNetns(podB.ns, [process.execPath, '-e', BULK_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.own(bulk, `bulk echo server ${bulk.pid}`);
  await new Promise<void>((resolve, reject) => {
    bulk.stdout?.once('data', () => resolve());
    bulk.once('exit', (code) => reject(new Error(`bulk server exited ${code}`)));
  });

  const work = await mkdtemp(join(tmpdir(), 'sluice-tun-'));
  run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifests = join(work, 'manifests');
  await mkdir(manifests);
  const onB = { pod: podB.name, ip: podB.ip, node: nodeB.name };
  await writeManifest(manifests, 'cluster.json', objects(c, [
    { name: 'remote', clusterIP: '10.96.0.12', nodePort: 30012, pods: [onB], extra: { externalIPs: [EXTERNAL_IP] } },
    { name: 'lb', clusterIP: '10.96.0.13', nodePort: 30013, pods: [onB], extra: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } },
    { name: 'dns', clusterIP: '10.96.0.14', nodePort: 30014, pods: [onB], ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: ECHO, nodePort: 30014 }] },
    { name: 'bulk', clusterIP: '10.96.0.15', nodePort: 30015, pods: [onB], ports: [{ name: 'bulk', port: BULK, protocol: 'TCP', targetPort: BULK, nodePort: 30015 }] },
  ]));

  const agents = await clusterAgents(run, c.nodes, work, manifests);
  const [agentA, agentB] = agents as [NodeAgent, NodeAgent];
  await Promise.all(agents.map((a) => a.start(['--external-mode', 'Tunnel'])));
  await waitSynced(agents);
  // Each node lists both nodes as tunnel peers (from the Node objects).
  for (const a of agents) {
    const deadline = Date.now() + 10_000;
    while (!a.logs.some((l) => l.msg === 'tunnel peers (cluster node addresses)') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }

  const tcp = (host: string, port: number) => runEchoClient({ ns: client.ns, proto: 'tcp', host, port, timeoutMs: 3000 });

  await t.test('NodePort, ExternalIP and LoadBalancer IP at node A reach the pod on B with the client\'s address', async (t) => {
    for (const [host, port, what] of [[nodeA.ip, 30012, 'NodePort'], [EXTERNAL_IP, 80, 'ExternalIP'], [LB_IP, 80, 'LoadBalancer IP']] as const) {
      const r = one(await tcp(host, port));
      t.ok(r.ok, `${what}: answered (${JSON.stringify(r.error ?? null)})`);
      t.equal(r.pod, podB.name, `${what}: the backend on B`);
      t.equal(r.seenPeer?.address, client.ip, `${what}: the pod saw the external client's own address`);
      t.equal(r.peername?.address, host, `${what}: the reply came from ${host}`);
    }
  });

  await t.test('UDP through the tunnel: the pod sees the client, the answer comes from the NodePort', async (t) => {
    const r = one(await runEchoClient({ ns: client.ns, proto: 'udp', host: nodeA.ip, port: 30014, timeoutMs: 3000 }));
    t.ok(r.ok, `answered (${JSON.stringify(r.error ?? null)})`);
    t.equal(r.seenPeer?.address, client.ip);
    t.equal(r.recvfrom?.address ?? r.peername?.address, nodeA.ip);
  });

  await t.test('a 1 MiB echo through the tunnel, full-size MTU on the fabric, both ways', async (t) => {
    const res = await runCommand(netnsArgv(client.ns, [process.execPath, '-e', bulkClient(nodeA.ip, 30015)]), { timeoutMs: 30_000, allowFailure: true });
    const got = JSON.parse(res.stdout.trim().split('\n').pop() || '{}') as { n?: number; error?: string };
    t.same(got, { n: MIB }, `1 MiB sent and echoed (${res.stderr.trim()})`);
  });

  await t.test('the flows went through the tunnel: no drops, node B tracked them as tunnelled', async (t) => {
    const counters = await agentB.ctl<{ drops?: { reason: string; packets: number }[] }>(['counters']);
    const drops = new Map((counters.drops ?? []).map((d) => [d.reason, d.packets]));
    t.equal(drops.get('tunnel_source') ?? 0, 0, 'no tunnel traffic refused');
    t.equal(drops.get('tunnel_mtu') ?? 0, 0, 'nothing too large to tunnel');
    t.ok(agentA.logs.some((l) => l.msg === 'external traffic to remote backends' && l.mode === 'Tunnel'), 'node A runs Tunnel mode');
    type Ct = { entries: { client: { ip: string }; backend: { ip: string }; natSource: string; flags: string[] }[] };
    const ctB = await agentB.ctl<Ct>(['ct', 'dump']);
    const decap = ctB.entries.filter((e) => e.flags.includes('decap') && e.client.ip === client.ip && e.backend.ip === podB.ip);
    t.ok(decap.length >= 2, `node B holds the client's flows as tunnelled from node A (${decap.length} entries)`);
    t.ok(decap.every((e) => e.natSource === nodeA.ip), 'each remembering node A, where its replies go');
    const ctA = await agentA.ctl<Ct>(['ct', 'dump']);
    t.ok(ctA.entries.some((e) => e.flags.includes('tunnel') && e.natSource === nodeB.ip), 'node A holds them as tunnelled to node B');
  });

  t.comment(`tunnel bed: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
