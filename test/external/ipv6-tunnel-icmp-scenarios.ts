// ICMPv6 about tunnelled IPv6 flows, and the IPv6 DSR opt-out, with real traffic (issue 16): the
// IPv6 twins of external-tunnel.test.ts's "ICMP about tunnelled flows" and "DSR opt-out"
// subtests, run by it on its dual-stack two-node bed (no second bed) after the IPv4 ones of each
// mode. The Services are IPv6-only, at node A's IPv6 address, their only backend the pod on B.
// Tunnel mode:
//   - a pod's UDP reply too large to wrap back (IPv6 tunnel: 48 bytes, so 1452 at most): node B
//     answers the pod with Packet Too Big (MTU 1452, counted tunnel_mtu), the pod's kernel caches
//     path MTU 1452 to the client; a reply that just fits comes back;
//   - the far client (behind the edge router's 1400-byte link) downloads 1 MiB through [node A]
//     from the pod on B: the router's Packet Too Big about the reply goes to [node A], which wraps
//     it for node B quoting what the pod sent; the pod's kernel caches path MTU 1400 to the far
//     client, and the download completes (IPv6 routers never fragment: a black hole otherwise);
//   - the pod's port unreachable (nothing listens) reaches the client's connected UDP socket,
//     through node A, as ECONNREFUSED.
// DSR mode:
//   - the client in --dsr-optout-cidrs (its IPv6 /128) is answered through the tunnel (node A's
//     uplink carries the reply; node B's entries for it have no dsr flag), the other client DSR
//     (node A's uplink carries no reply bytes); the pod sees each client's own address;
//   - the same far-client download: the router's Packet Too Big about a reply node B sent from
//     [node A]:nodePort reaches node A, which wraps it for node B, to the pod.
import type { Test } from 'tap';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import type { Cluster, ClusterClient, ClusterNode, ClusterPod } from '../../src/testbed/cluster.js';
import { runDownload, runEchoClient } from '../../src/testbed/echo.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { ipIn, netnsArgv } from '../../src/testbed/netns.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { cachedMtu, dropsOf, sizedClient, uplinkTxBytes } from './bed.js';
import type { CtDump, Svc } from './bed.js';
import { DOWNLOAD6 } from './ipv6-tunnel-scenarios.js';

const SIZED6 = 30044;
const CLOSED6 = 30045;
const MIB = 1 << 20;
/** The IPv6 tunnel's headers (outer IPv6 + UDP; tunnel6.h): a wrapped packet fits 1500 up to 1452. */
const TUNNEL6_FITS = 1500 - 48;
/** The largest UDP payload whose IPv6 datagram fits once wrapped. */
const UDP6_FITS = TUNNEL6_FITS - 40 - 8;

/**
 * The scenarios' Services, to the pod on node B: `sized` a UDP port where it answers a datagram
 * "n" with n bytes on IPv6, `closed` a UDP port where nothing listens.
 */
export function ipv6TunnelIcmpServices(c: Cluster, ports: { sized: number; closed: number }): Svc[] {
  const b = c.nodes[1] as ClusterNode;
  const p = b.pods[0] as ClusterPod;
  if (!p.ip6) throw new Error('ipv6 tunnel ICMP scenarios: the bed is not dual-stack (createCluster ipv6)');
  const onB = { pod: p.name, ip: p.ip, ip6: p.ip6, node: b.name };
  return [
    { name: 'sized6', clusterIP: 'fd00:96::44', nodePort: SIZED6, protocol: 'UDP', targetPort: ports.sized, pods: [onB] },
    { name: 'closed6', clusterIP: 'fd00:96::45', nodePort: CLOSED6, protocol: 'UDP', targetPort: ports.closed, pods: [onB] },
  ];
}

export interface Ipv6TunnelIcmpBed {
  run: TestbedRun;
  cluster: Cluster;
  agents: NodeAgent[];
  /** DSR mode: the client whose IPv6 address is in --dsr-optout-cidrs. */
  optedOut: ClusterClient;
}

/** The far client downloads 1 MiB through [node A] from the pod on B, which must learn path MTU 1400 from the router. */
async function farDownload(t: Test, bed: Ipv6TunnelIcmpBed, mode: string): Promise<void> {
  const [nodeA, nodeB] = bed.cluster.nodes as [ClusterNode, ClusterNode];
  const podB = nodeB.pods[0] as ClusterPod;
  const far = bed.cluster.routedClients[0] as ClusterClient | undefined;
  if (!far?.ip6) throw new Error('ipv6 tunnel ICMP scenarios: the bed has no dual-stack far client (createCluster routedClients + ipv6)');
  t.equal(await cachedMtu(podB.ns, far.ip6), undefined, 'the pod knows no path MTU to the far client before');
  const r = await runDownload(bed.run, { ns: far.ns, host: nodeA.ip6 as string, port: DOWNLOAD6, bytes: MIB, idleMs: 8000 });
  t.ok(r.ok && r.received === MIB && r.receivedSha256 === r.sha256, `${mode}: 1 MiB through a 1400-byte link arrived intact (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
  t.equal(r.seenPeer?.address, far.ip6, 'served by the pod on B, which saw the far client\'s IPv6 address');
  t.equal(await cachedMtu(podB.ns, far.ip6), 1400, 'the pod learned the path MTU from the router\'s Packet Too Big, carried through the tunnel');
  await ipIn(podB.ns, ['-6', 'route', 'flush', 'cache']); // later transfers start from a clean path MTU
}

export async function ipv6TunnelIcmpScenarios(t: Test, mode: 'Tunnel' | 'DSR', bed: Ipv6TunnelIcmpBed): Promise<void> {
  const [nodeA, nodeB] = bed.cluster.nodes as [ClusterNode, ClusterNode];
  const [agentA, agentB] = bed.agents as [NodeAgent, NodeAgent];
  const client = bed.cluster.clients[0] as ClusterClient;
  const podB = nodeB.pods[0] as ClusterPod;
  const [a6, client6, opted6] = [nodeA.ip6, client.ip6, bed.optedOut.ip6];
  if (!a6 || !client6 || !opted6 || !podB.ip6) throw new Error('ipv6 tunnel ICMP scenarios: the bed is not dual-stack (createCluster ipv6)');

  if (mode === 'Tunnel') {
    await t.test('IPv6 Tunnel: a UDP reply too large to wrap back: node B answers the pod with Packet Too Big, which learns the path MTU', async (t) => {
      t.equal(await cachedMtu(podB.ns, client6), undefined, 'the pod knows no path MTU to the client before');
      const before = (await dropsOf(agentB)).get('tunnel_mtu') ?? 0;
      const sizes = [UDP6_FITS, UDP6_FITS + 1];
      const res = await runCommand(netnsArgv(client.ns, [process.execPath, '-e', sizedClient(a6, SIZED6, sizes)]), { timeoutMs: 20_000, allowFailure: true });
      t.same(JSON.parse(res.stdout.trim().split('\n').pop() || '[]'), [UDP6_FITS, 0], `a ${UDP6_FITS}-byte reply fits once wrapped, a ${UDP6_FITS + 1}-byte one does not (${res.stderr.trim()})`);
      t.equal((await dropsOf(agentB)).get('tunnel_mtu') ?? 0, before + 1, 'node B counted it (tunnel_mtu)');
      t.equal(await cachedMtu(podB.ns, client6), TUNNEL6_FITS, `the pod's kernel took node B's Packet Too Big: path MTU ${TUNNEL6_FITS} to the client`);
      await ipIn(podB.ns, ['-6', 'route', 'flush', 'cache']);
    });

    await t.test('IPv6 Tunnel: a far client behind a 1400-byte link downloads through [node A] from the pod on B: the router\'s Packet Too Big reaches the pod through the tunnel', async (t) => {
      await farDownload(t, bed, 'Tunnel');
    });

    await t.test('IPv6 Tunnel: the pod\'s port unreachable reaches the client\'s connected socket through node A as ECONNREFUSED', async (t) => {
      const [u] = await runEchoClient({ ns: client.ns, proto: 'udp', host: a6, port: CLOSED6, connected: true, timeoutMs: 3000 });
      t.equal(u?.error?.code, 'ECONNREFUSED', `refused at once (${JSON.stringify(u?.error ?? null)})`);
    });
    return;
  }

  await t.test('IPv6 DSR opt-out: the client in --dsr-optout-cidrs takes the tunnel back through node A, the other DSR', async (t) => {
    // One 1 MiB download each, in turn: node A's uplink carries the opted-out client's reply, not
    // the other's (only its ACKs, wrapped for node B).
    const sent: number[] = [];
    for (const who of [bed.optedOut, client]) {
      const a0 = await uplinkTxBytes(nodeA.ns);
      const r = await runDownload(bed.run, { ns: who.ns, host: a6, port: DOWNLOAD6, bytes: MIB });
      sent.push((await uplinkTxBytes(nodeA.ns)) - a0);
      t.ok(r.ok && r.received === MIB && r.receivedSha256 === r.sha256, `${who.name}: 1 MiB arrived intact (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
      t.equal(r.seenPeer?.address, who.ip6, `${who.name}: the pod saw its own IPv6 address`);
      t.same(r.peername, { address: a6, port: DOWNLOAD6 }, `${who.name}: talked to [node A] throughout`);
    }
    t.comment(`IPv6 DSR opt-out: node A's uplink sent ${sent[0]} bytes for the opted-out client, ${sent[1]} for the other`);
    t.ok(sent[0]! >= MIB, `opted out: node A's uplink carried the reply (${sent[0]} bytes)`);
    t.ok(sent[1]! < MIB / 4, `DSR: node A's uplink carried no reply data (${sent[1]} bytes < 256 KiB)`);
    const ctB = await agentB.ctl<CtDump>(['ct', 'dump']);
    const of = (ip: string) => ctB.entries.filter((e) => e.flags.includes('decap') && e.client.ip === ip && e.backend.ip === podB.ip6);
    t.ok(of(opted6).length >= 2 && of(opted6).every((e) => !e.flags.includes('dsr')), 'node B: the opted-out client\'s flow is tunnelled (its replies go back to node A)');
    t.ok(of(client6).some((e) => e.flags.includes('dsr')), 'node B: the other client\'s flows are DSR');
    const ctA = await agentA.ctl<CtDump>(['ct', 'dump']);
    t.ok(ctA.entries.some((e) => e.flags.includes('tunnel') && !e.flags.includes('dsr') && e.client.ip === opted6), 'node A: tunnel, not DSR, for the opted-out client');
    t.ok(ctA.entries.some((e) => e.flags.includes('dsr') && e.client.ip === client6), 'node A: DSR for the other');
  });

  await t.test('IPv6 DSR: a router\'s Packet Too Big about a reply node B sent reaches the pod through node A', async (t) => {
    await farDownload(t, bed, 'DSR');
  });
}
