// Tunnel and DSR modes with real traffic (issue 15): one two-node bed, both agents started with
// --external-mode Tunnel, then restarted on the same bed with --external-mode DSR (the mode is a
// start-time setting; CI time forbids a second bed). NodePort, LoadBalancer IP and ExternalIP at
// node A with the only backend on node B, in each mode: the request is tunnelled A -> B (UDP
// 6080), the pod on B sees the external client's own address; Tunnel: the reply is tunnelled
// back and leaves A as the frontend; DSR: node B sends it to the client itself with the frontend
// as source, so node A's uplink carries none of a 4 MiB download (interface counters, against
// Tunnel where it carries all of it), and a client in --dsr-optout-cidrs takes the tunnel. A
// 1 MiB echo both ways (segments clamped to fit once wrapped) and UDP in both modes. Maglev (DSR):
// one client flow sent to node A and to node B reaches the same backend (pods on both nodes), and
// a download through node A to the pod on node B survives node A losing its conntrack mid-transfer.
// ICMP about tunnelled flows (Tunnel): a client behind a 1400-byte link downloads through node A
// from the pod on B (the edge router's "fragmentation needed" reaches the pod through the tunnel);
// a UDP reply too large to wrap back teaches the pod the path MTU that fits (node B's ICMP); the
// pod's port unreachable reaches the client's connected socket as ECONNREFUSED. DSR: the same
// download, the router's error about node B's reply reaching the pod through node A.
// The bed is dual-stack: in each mode, the IPv6 scenarios of ipv6-tunnel-scenarios.ts, and after
// the IPv4 ICMP (Tunnel) and opt-out (DSR) tests their IPv6 twins (ipv6-tunnel-icmp-scenarios.ts;
// the DSR restart opts the second client's IPv6 address out too).
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
import { ipIn } from '../../src/testbed/netns.js';
import { NODE_UPLINK } from '../../src/testbed/cluster.js';
import { runDownload, startDownload } from '../../src/testbed/echo.js';
import { loadNative } from '../../src/bpf/native.js';
import { MAGLEV_DEFAULT_SIZE, backendIdentity, buildMaglevTable, maglevFlowHash } from '../../src/dataplane/maglev-table.js';
import type { Test } from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { cachedMtu, dropsOf, ECHO, objects, sizedClient, uplinkTxBytes, waitSynced } from './bed.js';
import type { CtDump } from './bed.js';
import { ipv6TunnelIcmpScenarios, ipv6TunnelIcmpServices } from './ipv6-tunnel-icmp-scenarios.js';
import { ipv6TunnelScenarios, ipv6TunnelServices } from './ipv6-tunnel-scenarios.js';

// A two-node bed with real agents: on a loaded 2-core machine more than tap's default 300 s.
t.setTimeout(600_000);

const LB_IP = '203.0.113.10';
const EXTERNAL_IP = '198.51.100.10';
const BULK = 9000;
const DOWNLOAD = 9100;
const SIZED = 9200; // UDP: answers a datagram "n" with n bytes
const CLOSED = 9300; // UDP: nothing listens
const GSO = 9400; // UDP: answers a datagram "n" with one UDP_SEGMENT send of 3 x n bytes (default 1000)

/**
 * The UDP GSO server (Python: Node has no UDP_SEGMENT): one sendmsg of 3000 bytes cut into
 * 1000-byte datagrams by the kernel (UDP_SEGMENT, 103), as QUIC servers send. It reaches the node
 * as one GSO packet, which the tunnel must wrap keeping its segment size.
 */
const GSO_SERVER = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', ${GSO}))
print('ready', flush=True)
while True:
    m, peer = s.recvfrom(2048)
    seg = int(m) if m.isdigit() else 1000
    try:
        s.sendmsg([b'g' * (3 * seg)], [(socket.SOL_UDP, 103, struct.pack('H', seg))], 0, peer)
    except OSError:
        pass
`;
/** Sends one datagram asking for segments of `seg` bytes, prints the sizes of the datagrams that came back within 1.5 s. */
const gsoClient = (host: string, port: number, seg: number) => `
const s = require('dgram').createSocket('udp4');
const got = [];
s.on('message', (m) => got.push(m.length));
s.send('${seg}', ${port}, '${host}');
setTimeout(() => { console.log(JSON.stringify(got)); s.close(); }, 1500);`;
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

/**
 * A UDP server answering a datagram "n" with n bytes (a reply too large to wrap back), on IPv4
 * and IPv6 (one socket each; the IPv6 twin in ipv6-tunnel-icmp-scenarios.ts).
 */
const SIZED_SERVER = `let bound = 0;
for (const type of ['udp4', 'udp6']) {
  const s = require('dgram').createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m, r) => s.send(Buffer.alloc(Number(String(m)) || 1, 98), r.port, r.address));
  s.bind(${SIZED}, () => { if (++bound === 2) console.log('ready'); });
}`;

const MAGLEV_PORTS = [41000, 41001, 41002, 41003, 41004, 41005, 41006, 41007];

/** One UDP socket per source port, asking each host in turn; prints which pod answered each. */
const maglevProbe = (hosts: string[], port: number, ports: number[]) => `
const dgram = require('dgram');
const ask = (s, host) => new Promise((res) => {
  const timer = setTimeout(() => { s.removeAllListeners('message'); res(null); }, 3000);
  s.once('message', (m) => { clearTimeout(timer); try { res(JSON.parse(String(m)).pod ?? null); } catch { res(null); } });
  s.send('maglev', ${port}, host);
});
(async () => {
  const out = [];
  for (const p of ${JSON.stringify(ports)}) {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(p, r));
    const pods = [];
    for (const h of ${JSON.stringify(hosts)}) pods.push(await ask(s, h));
    out.push({ port: p, pods });
    s.close();
  }
  console.log(JSON.stringify(out));
})();`;

t.test('Tunnel and DSR modes on a two-node cluster: the backend on B sees the external client', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const started = Date.now();

  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  run.handleProcessEvents();
  const c = await createCluster(run, {
    nodes: [['web-a0'], ['web-b0']],
    clients: 2,
    clientRoutes: [{ cidr: `${LB_IP}/32`, node: 0 }, { cidr: `${EXTERNAL_IP}/32`, node: 0 }],
    routedClients: { count: 1, narrowMtu: 1400 }, // behind a 1400-byte link: path MTU discovery
    ipv6: true, // dual stack: the IPv6 tunnel scenarios
  });
  const [nodeA, nodeB] = c.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  // client: DSR in DSR mode; optedOut: in --dsr-optout-cidrs, so the Tunnel path in DSR mode.
  const [client, optedOut] = c.clients as [Cluster['clients'][0], Cluster['clients'][0]];
  const podB = nodeB.pods[0] as Cluster['nodes'][0]['pods'][0];
  const podA = nodeA.pods[0] as Cluster['nodes'][0]['pods'][0];
  const far = c.routedClients[0] as Cluster['clients'][0];
  await startEchoServer(run, { name: podB.name, ns: podB.ns, host: ['0.0.0.0', '::'], tcp: [ECHO], udp: [ECHO], bulk: [DOWNLOAD] });
  await startEchoServer(run, { name: podA.name, ns: podA.ns, udp: [ECHO], bulk: [DOWNLOAD] });
  const bulk = spawnInNetns(podB.ns, [process.execPath, '-e', BULK_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.own(bulk, `bulk echo server ${bulk.pid}`);
  await new Promise<void>((resolve, reject) => {
    bulk.stdout?.once('data', () => resolve());
    bulk.once('exit', (code) => reject(new Error(`bulk server exited ${code}`)));
  });
  const sized = spawnInNetns(podB.ns, [process.execPath, '-e', SIZED_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.own(sized, `sized UDP server ${sized.pid}`);
  await new Promise<void>((resolve, reject) => {
    sized.stdout?.once('data', () => resolve());
    sized.once('exit', (code) => reject(new Error(`sized UDP server exited ${code}`)));
  });

  const gso = spawnInNetns(podB.ns, ['python3', '-c', GSO_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.own(gso, `UDP GSO server ${gso.pid}`);
  await new Promise<void>((resolve, reject) => {
    gso.stdout?.once('data', () => resolve());
    gso.once('exit', (code) => reject(new Error(`UDP GSO server exited ${code}`)));
  });

  const work = await mkdtemp(join(tmpdir(), 'sluice-tun-'));
  run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifests = join(work, 'manifests');
  await mkdir(manifests);
  const onB = { pod: podB.name, ip: podB.ip, node: nodeB.name };
  const onA = { pod: podA.name, ip: podA.ip, node: nodeA.name };
  await writeManifest(manifests, 'cluster.json', objects(c, [
    { name: 'remote', clusterIP: '10.96.0.12', nodePort: 30012, pods: [onB], extra: { externalIPs: [EXTERNAL_IP] } },
    { name: 'lb', clusterIP: '10.96.0.13', nodePort: 30013, pods: [onB], extra: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } },
    { name: 'dns', clusterIP: '10.96.0.14', nodePort: 30014, pods: [onB], ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: ECHO, nodePort: 30014 }] },
    { name: 'bulk', clusterIP: '10.96.0.15', nodePort: 30015, pods: [onB], ports: [{ name: 'bulk', port: BULK, protocol: 'TCP', targetPort: BULK, nodePort: 30015 }] },
    { name: 'download', clusterIP: '10.96.0.16', nodePort: 30016, pods: [onB], ports: [{ name: 'download', port: DOWNLOAD, protocol: 'TCP', targetPort: DOWNLOAD, nodePort: 30016 }] },
    { name: 'spread', clusterIP: '10.96.0.17', nodePort: 30017, pods: [onA, onB], ports: [
      { name: 'udp', port: 53, protocol: 'UDP', targetPort: ECHO, nodePort: 30017 },
      { name: 'download', port: DOWNLOAD, protocol: 'TCP', targetPort: DOWNLOAD, nodePort: 30018 },
    ] },
    { name: 'sized', clusterIP: '10.96.0.18', nodePort: 30019, pods: [onB], ports: [{ name: 'sized', port: SIZED, protocol: 'UDP', targetPort: SIZED, nodePort: 30019 }] },
    { name: 'closed', clusterIP: '10.96.0.19', nodePort: 30020, pods: [onB], ports: [{ name: 'closed', port: CLOSED, protocol: 'UDP', targetPort: CLOSED, nodePort: 30020 }] },
    { name: 'gso', clusterIP: '10.96.0.20', nodePort: 30021, pods: [onB], ports: [{ name: 'gso', port: GSO, protocol: 'UDP', targetPort: GSO, nodePort: 30021 }] },
    ...ipv6TunnelServices(c, DOWNLOAD),
    ...ipv6TunnelIcmpServices(c, { sized: SIZED, closed: CLOSED }),
  ]));

  const agents = await clusterAgents(run, c.nodes, work, manifests);
  const [agentA, agentB] = agents as [NodeAgent, NodeAgent];
  const tcp = (ns: string, host: string, port: number) => runEchoClient({ ns, proto: 'tcp', host, port, timeoutMs: 3000 });

  /** What both modes must do for a client: every frontend kind, UDP, 1 MiB both ways. */
  const bothModes = async (t: Test, mode: string, who: Cluster['clients'][0]) => {
    await t.test(`${mode}: NodePort, ExternalIP and LoadBalancer IP at node A reach the pod on B with the client's address`, async (t) => {
      for (const [host, port, what] of [[nodeA.ip, 30012, 'NodePort'], [EXTERNAL_IP, 80, 'ExternalIP'], [LB_IP, 80, 'LoadBalancer IP']] as const) {
        const r = one(await tcp(who.ns, host, port));
        t.ok(r.ok, `${what}: answered (${JSON.stringify(r.error ?? null)})`);
        t.equal(r.pod, podB.name, `${what}: the backend on B`);
        t.equal(r.seenPeer?.address, who.ip, `${what}: the pod saw the external client's own address`);
        t.equal(r.peername?.address, host, `${what}: the reply came from ${host}`);
      }
    });

    await t.test(`${mode}: UDP, the pod sees the client, the answer comes from the NodePort`, async (t) => {
      const r = one(await runEchoClient({ ns: who.ns, proto: 'udp', host: nodeA.ip, port: 30014, timeoutMs: 3000 }));
      t.ok(r.ok, `answered (${JSON.stringify(r.error ?? null)})`);
      t.equal(r.seenPeer?.address, who.ip);
      t.equal(r.recvfrom?.address ?? r.peername?.address, nodeA.ip);
    });

    await t.test(`${mode}: a 1 MiB echo, full-size MTU on the fabric, both ways`, async (t) => {
      const res = await runCommand(netnsArgv(who.ns, [process.execPath, '-e', bulkClient(nodeA.ip, 30015)]), { timeoutMs: 30_000, allowFailure: true });
      const got = JSON.parse(res.stdout.trim().split('\n').pop() || '{}') as { n?: number; error?: string };
      t.same(got, { n: MIB }, `1 MiB sent and echoed (${res.stderr.trim()})`);
    });
  };

  /** A 4 MiB download through node A; the bytes each node's uplink sent meanwhile. */
  const download = async (t: Test, what: string) => {
    const [a0, b0] = await Promise.all([uplinkTxBytes(nodeA.ns), uplinkTxBytes(nodeB.ns)]);
    const r = await runDownload(run, { ns: client.ns, host: nodeA.ip, port: 30016, bytes: 4 * MIB });
    const [a1, b1] = await Promise.all([uplinkTxBytes(nodeA.ns), uplinkTxBytes(nodeB.ns)]);
    t.ok(r.ok, `${what}: completed (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
    t.equal(r.received, 4 * MIB, `${what}: 4 MiB arrived`);
    t.equal(r.receivedSha256, r.sha256, `${what}: intact`);
    t.equal(r.seenPeer?.address, client.ip, `${what}: the pod saw the client`);
    t.same(r.peername, { address: nodeA.ip, port: 30016 }, `${what}: the client talked to node A's NodePort throughout`);
    t.comment(`${what}: node A's uplink sent ${a1 - a0} bytes, node B's ${b1 - b0}`);
    return { a: a1 - a0, b: b1 - b0 };
  };

  // ---- Tunnel ----
  await Promise.all(agents.map((a) => a.start(['--external-mode', 'Tunnel'])));
  await waitSynced(agents);
  // Each node lists both nodes as tunnel peers (from the Node objects).
  for (const a of agents) {
    const deadline = Date.now() + 10_000;
    while (!a.logs.some((l) => l.msg === 'tunnel peers (cluster node addresses)') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }

  await bothModes(t, 'Tunnel', client);
  await ipv6TunnelScenarios(t, 'Tunnel', { run, cluster: c, agents });

  await t.test('Tunnel: a 4 MiB download comes back through node A (the measure DSR is held to)', async (t) => {
    const sent = await download(t, 'Tunnel');
    t.ok(sent.a >= 4 * MIB, `node A's uplink carried the reply (${sent.a} bytes)`);
    t.ok(sent.b >= 4 * MIB, `node B's uplink too, tunnelled to node A (${sent.b} bytes)`);
  });

  await t.test('Tunnel: the flows went through the tunnel: no drops, node B tracked them as tunnelled', async (t) => {
    const drops = await dropsOf(agentB);
    t.equal(drops.get('tunnel_source') ?? 0, 0, 'no tunnel traffic refused');
    t.equal(drops.get('tunnel_mtu') ?? 0, 0, 'nothing too large to tunnel');
    t.ok(agentA.logs.some((l) => l.msg === 'external traffic to remote backends' && l.mode === 'Tunnel'), 'node A runs Tunnel mode');
    const ctB = await agentB.ctl<CtDump>(['ct', 'dump']);
    const decap = ctB.entries.filter((e) => e.flags.includes('decap') && e.client.ip === client.ip && e.backend.ip === podB.ip);
    t.ok(decap.length >= 2, `node B holds the client's flows as tunnelled from node A (${decap.length} entries)`);
    t.ok(decap.every((e) => e.natSource === nodeA.ip && !e.flags.includes('dsr')), 'each remembering node A, where its replies go');
    const ctA = await agentA.ctl<CtDump>(['ct', 'dump']);
    t.ok(ctA.entries.some((e) => e.flags.includes('tunnel') && e.natSource === nodeB.ip), 'node A holds them as tunnelled to node B');
  });

  await t.test('Tunnel: ICMP about tunnelled flows takes the tunnel both ways', async (t) => {
    // A router's "fragmentation needed" about a reply: the edge router (1400-byte link behind
    // it) reports node A:30016 -> far client; node A wraps it for node B quoting what the pod
    // sent, and the pod's TCP sends smaller segments (the download stalls otherwise).
    t.equal(await cachedMtu(podB.ns, far.ip), undefined, 'the pod knows no path MTU to the far client before');
    const r = await runDownload(run, { ns: far.ns, host: nodeA.ip, port: 30016, bytes: MIB, idleMs: 8000 });
    t.ok(r.ok && r.received === MIB && r.receivedSha256 === r.sha256, `1 MiB through a 1400-byte link arrived intact (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
    t.equal(r.seenPeer?.address, far.ip, 'served by the pod on B, which saw the far client');
    t.equal(await cachedMtu(podB.ns, far.ip), 1400, 'the pod learned the path MTU from the router\'s error, carried through the tunnel');

    // A UDP reply too large to wrap back (1452 + 28 > 1500 - 28): node B answers the pod with
    // "fragmentation needed", MTU 1472, and counts it; one that fits comes back.
    const before = (await dropsOf(agentB)).get('tunnel_mtu') ?? 0;
    const res = await runCommand(netnsArgv(client.ns, [process.execPath, '-e', sizedClient(nodeA.ip, 30019, [1444, 1452])]), { timeoutMs: 20_000, allowFailure: true });
    t.same(JSON.parse(res.stdout.trim().split('\n').pop() || '[]'), [1444, 0], `a 1444-byte reply fits once wrapped, a 1452-byte one does not (${res.stderr.trim()})`);
    t.equal((await dropsOf(agentB)).get('tunnel_mtu') ?? 0, before + 1, 'node B counted it (tunnel_mtu)');
    t.equal(await cachedMtu(podB.ns, client.ip), 1472, 'the pod\'s kernel took node B\'s ICMP: path MTU 1472 to the client');
    await ipIn(podB.ns, ['route', 'flush', 'cache']); // later transfers start from a clean path MTU

    // The pod's port unreachable (nothing listens) goes back through node A, translated.
    const [u] = await runEchoClient({ ns: client.ns, proto: 'udp', host: nodeA.ip, port: 30020, connected: true, timeoutMs: 3000 });
    t.equal(u?.error?.code, 'ECONNREFUSED', `refused at once (${JSON.stringify(u?.error ?? null)})`);
  });
  await ipv6TunnelIcmpScenarios(t, 'Tunnel', { run, cluster: c, agents, optedOut });

  await t.test('Tunnel: a pod\'s UDP GSO reply (UDP_SEGMENT) is wrapped back keeping its segments; too large ones are refused', async (t) => {
    const ask = async (seg: number) => {
      const res = await runCommand(netnsArgv(client.ns, [process.execPath, '-e', gsoClient(nodeA.ip, 30021, seg)]), { timeoutMs: 20_000, allowFailure: true });
      return JSON.parse(res.stdout.trim().split('\n').pop() || '[]') as number[];
    };
    // A NIC puts each wrapped datagram on the wire on its own (segmenting in hardware or in the
    // kernel's software GSO as it sends); a veth would carry the GSO packet whole into node A,
    // which no network between two machines does: node B's uplink is made to segment.
    const segmentation = (on: string) => netnsArgv(nodeB.ns, ['ethtool', '-K', NODE_UPLINK, 'tx-udp_tnl-segmentation', on, 'tx-udp_tnl-csum-segmentation', on]);
    await runCommand(segmentation('off'));
    t.teardown(() => runCommand(segmentation('on'), { allowFailure: true }));
    const drops = await dropsOf(agentB);
    t.same(await ask(1000), [1000, 1000, 1000], 'three 1000-byte datagrams of one GSO send arrived');
    const after = await dropsOf(agentB);
    t.same([...after].filter(([reason, n]) => n !== (drops.get(reason) ?? 0)), [], 'node B dropped nothing meanwhile');
    // 1460-byte segments do not fit once wrapped (1488 + 28 > 1500): refused whole and counted.
    t.same(await ask(1460), [], 'segments too large to wrap: nothing arrives');
    t.ok(((await dropsOf(agentB)).get('tunnel_mtu') ?? 0) > (after.get('tunnel_mtu') ?? 0), 'node B counted it (tunnel_mtu)');
    await ipIn(podB.ns, ['route', 'flush', 'cache']);
  });

  // ---- DSR: the same bed, both agents restarted (SIGTERM: the dataplane stays meanwhile) ----
  const restartedAt = Date.now();
  await Promise.all(agents.map((a) => a.stop()));
  const from = agents.map((a) => a.logs.length);
  await Promise.all(agents.map((a) => a.start(['--external-mode', 'DSR', '--dsr-optout-cidrs', `${optedOut.ip}/32,${optedOut.ip6}/128`])));
  await waitSynced(agents);
  const dsrDropsBefore = await Promise.all(agents.map(dropsOf));
  t.comment(`agents restarted in DSR mode in ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`);
  t.ok(agents.every((a, i) => a.logs.slice(from[i]).some((l) => l.msg === 'external traffic to remote backends' && l.mode === 'DSR')), 'both nodes run DSR mode');

  await bothModes(t, 'DSR', client);
  await ipv6TunnelScenarios(t, 'DSR', { run, cluster: c, agents });

  await t.test('DSR: node A\'s uplink carries no reply bytes of a 4 MiB download; node B sends them', async (t) => {
    const sent = await download(t, 'DSR');
    // What node A still sends: the client's ACKs, wrapped for node B (~40 packets of ~110 bytes
    // per 64 KiB received), a few percent of the download at most.
    t.ok(sent.a < MIB / 2, `node A's uplink sent ${sent.a} bytes: no reply data (< 512 KiB of 4 MiB)`);
    t.ok(sent.b >= 4 * MIB, `node B's uplink sent the reply straight to the client (${sent.b} bytes)`);
  });

  await t.test('DSR: a router\'s fragmentation needed about a reply node B sent reaches the pod through node A', async (t) => {
    // The reply leaves node B from node A's NodePort; the edge router reports it to node A,
    // which wraps the error for node B, quoting what the pod sent.
    t.equal(await cachedMtu(podB.ns, far.ip), undefined, 'the pod knows no path MTU to the far client before (flushed after Tunnel)');
    const r = await runDownload(run, { ns: far.ns, host: nodeA.ip, port: 30016, bytes: MIB, idleMs: 8000 });
    t.ok(r.ok && r.received === MIB && r.receivedSha256 === r.sha256, `1 MiB through a 1400-byte link arrived intact (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
    t.equal(await cachedMtu(podB.ns, far.ip), 1400, 'the pod learned the path MTU from the router\'s error');
  });

  await t.test('DSR opt-out: the client in --dsr-optout-cidrs takes the tunnel, the others DSR', async (t) => {
    const r = one(await tcp(optedOut.ns, nodeA.ip, 30012));
    t.ok(r.ok, `answered (${JSON.stringify(r.error ?? null)})`);
    t.equal(r.seenPeer?.address, optedOut.ip, 'the pod saw the opted-out client\'s own address');
    t.equal(r.peername?.address, nodeA.ip, 'the reply came from node A');
    const ctB = await agentB.ctl<CtDump>(['ct', 'dump']);
    const of = (ip: string) => ctB.entries.filter((e) => e.flags.includes('decap') && e.client.ip === ip && e.backend.ip === podB.ip);
    t.ok(of(optedOut.ip).length >= 2 && of(optedOut.ip).every((e) => !e.flags.includes('dsr')), 'node B: the opted-out client\'s flow is tunnelled (its replies go back to node A)');
    t.ok(of(client.ip).some((e) => e.flags.includes('dsr')), 'node B: the other client\'s flows are DSR');
    const ctA = await agentA.ctl<CtDump>(['ct', 'dump']);
    t.ok(ctA.entries.some((e) => e.flags.includes('tunnel') && !e.flags.includes('dsr') && e.client.ip === optedOut.ip), 'node A: tunnel, not DSR, for the opted-out client');
    t.ok(ctA.entries.some((e) => e.flags.includes('dsr') && e.client.ip === client.ip), 'node A: DSR for the other');
  });
  await ipv6TunnelIcmpScenarios(t, 'DSR', { run, cluster: c, agents, optedOut });

  await t.test('Maglev (DSR): a client flow reaches the same backend through node A and through node B', async (t) => {
    // The flow hash is (client address, source port, protocol): the same source port to each
    // node's NodePort picks the same slot of the same table, whichever node the flow enters.
    // Eight flows over two backends: random picks would agree for all eight once in 256.
    const res = await runCommand(netnsArgv(client.ns, [process.execPath, '-e', maglevProbe([nodeA.ip, nodeB.ip], 30017, MAGLEV_PORTS)]), { timeoutMs: 60_000, allowFailure: true });
    const flows = JSON.parse(res.stdout.trim().split('\n').pop() || '[]') as { port: number; pods: (string | null)[] }[];
    t.equal(flows.length, MAGLEV_PORTS.length, `every flow answered at both nodes (${res.stderr.trim()})`, { flows });
    t.ok(flows.every((f) => f.pods[0] && f.pods[0] === f.pods[1]), 'each flow: the same backend at node A and at node B', { flows });
    t.comment(`backends: ${flows.map((f) => `${f.port}→${f.pods[0]}`).join(' ')}`);
  });

  await t.test('Maglev (DSR): a download through node A to the pod on B survives node A losing its conntrack mid-transfer', async (t) => {
    const ct = loadNative().openPinnedMap(join(agentA.pinDir, 'sl_ct4'));
    t.teardown(() => ct.close());
    const flush = () => {
      let n = 0;
      for (const key of ct.keys()) if (ct.delete(key)) n++;
      return n;
    };
    const waitFor = async (bytes: number) => {
      const deadline = Date.now() + 20_000;
      while (d.received() < bytes && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return d.received();
    };
    // The flow's backend is the pod on node B: a source port the TS table and hash (the mirror of
    // lib/maglev.h) send there. A backend on node A would need A's conntrack for its replies: after
    // a flush they leave untranslated until the client's next packet re-creates the entry, which
    // in a download never comes (docs/external-traffic.md, "What survives conntrack loss").
    const identities = [backendIdentity(podA.ip, DOWNLOAD), backendIdentity(podB.ip, DOWNLOAD)].sort();
    const table = buildMaglevTable(identities, MAGLEV_DEFAULT_SIZE);
    const pick = (port: number) => identities[table[maglevFlowHash(client.ip, port, 6) % MAGLEV_DEFAULT_SIZE] as number];
    const localPort = Array.from({ length: 64 }, (_, i) => 42000 + i).find((p) => pick(p) === backendIdentity(podB.ip, DOWNLOAD)) as number;
    // Paced (64 KiB every 40 ms, about 1.3 s in all) so the flushes land mid-transfer.
    const d = startDownload(run, { ns: client.ns, host: nodeA.ip, port: 30018, bytes: 2 * MIB, chunk: 64 * 1024, intervalMs: 40, localPort });
    const head = await d.started;
    t.equal(head.pod, podB.name, `source port ${localPort}: the pod on node B, as the TS Maglev table predicts`);
    const flushed: number[] = [];
    for (const at of [MIB / 4, MIB]) {
      const got = await waitFor(at);
      t.ok(got < 2 * MIB, `mid-transfer (${got} bytes in)`);
      flushed.push(flush());
    }
    t.ok(flushed.every((n) => n > 0), `node A's conntrack emptied twice mid-transfer (${flushed.join(', ')} entries)`);
    d.fast();
    const r = await d.result;
    t.ok(r.ok, `completed (${JSON.stringify(r.error ?? null)})`);
    t.equal(r.received, 2 * MIB, '2 MiB arrived');
    t.equal(r.receivedSha256, r.sha256, 'intact: one server sent it all (another backend would have reset the connection)');
    t.equal(r.pod, podB.name, 'served by the pod on node B throughout');
  });

  await t.test('DSR: nothing refused or too large', async (t) => {
    for (const [i, agent] of agents.entries()) {
      const drops = await dropsOf(agent);
      const since = (reason: string) => (drops.get(reason) ?? 0) - (dsrDropsBefore[i]!.get(reason) ?? 0);
      t.same([since('tunnel_source'), since('tunnel_mtu'), since('malformed')], [0, 0, 0], `${agent.node.name}: no tunnel drops in DSR mode`);
    }
  });

  t.comment(`tunnel + DSR bed: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
