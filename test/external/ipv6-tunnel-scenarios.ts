// IPv6 in the Tunnel and DSR modes (issue 16), run by external-tunnel.test.ts on its two-node bed
// (made dual-stack for them: no second bed) once in each mode. IPv6 Services at node A's IPv6
// address whose only backend is the pod on node B:
//   - TCP and UDP: the request is tunnelled A -> B in IPv6 (UDP 6080 between the nodes' IPv6
//     addresses), the pod sees the client's own IPv6 address, the answer comes from [node A];
//   - node B tracks the flows as unwrapped from node A (decap; DSR: with the frontend), node A as
//     tunnelled to node B;
//   - a 2 MiB download: Tunnel: the reply comes back through node A's uplink; DSR: node B sends
//     it to the client itself, node A's uplink carries none of it.
import type { Test } from 'tap';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import type { Cluster, ClusterClient, ClusterNode, ClusterPod } from '../../src/testbed/cluster.js';
import { runDownload, runEchoClient } from '../../src/testbed/echo.js';
import type { EchoAttempt } from '../../src/testbed/echo.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { ECHO, uplinkTxBytes } from './bed.js';
import type { CtDump, Svc } from './bed.js';

const TCP6 = 30041;
const UDP6 = 30042;
/** The download NodePort (to the pod on B), also ipv6-tunnel-icmp-scenarios.ts's. */
export const DOWNLOAD6 = 30043;
const MIB = 1 << 20;

/** The IPv6-only Services of the scenarios, all to the pod on node B (which must listen on ::). */
export function ipv6TunnelServices(c: Cluster, downloadPort: number): Svc[] {
  const b = c.nodes[1] as ClusterNode;
  const p = b.pods[0] as ClusterPod;
  if (!p.ip6) throw new Error('ipv6 tunnel scenarios: the bed is not dual-stack (createCluster ipv6)');
  const onB = { pod: p.name, ip: p.ip, ip6: p.ip6, node: b.name };
  return [
    { name: 'tun6', clusterIP: 'fd00:96::41', nodePort: TCP6, pods: [onB] },
    { name: 'tun6-udp', clusterIP: 'fd00:96::42', nodePort: UDP6, protocol: 'UDP', targetPort: ECHO, pods: [onB] },
    {
      name: 'tun6-download', clusterIP: 'fd00:96::43', nodePort: DOWNLOAD6, pods: [onB],
      ports: [{ name: 'download', port: downloadPort, protocol: 'TCP', targetPort: downloadPort, nodePort: DOWNLOAD6 }],
    },
  ];
}

export interface Ipv6TunnelBed {
  run: TestbedRun;
  cluster: Cluster;
  agents: NodeAgent[];
}

export async function ipv6TunnelScenarios(t: Test, mode: 'Tunnel' | 'DSR', bed: Ipv6TunnelBed): Promise<void> {
  const [nodeA, nodeB] = bed.cluster.nodes as [ClusterNode, ClusterNode];
  const [agentA, agentB] = bed.agents as [NodeAgent, NodeAgent];
  const client = bed.cluster.clients[0] as ClusterClient;
  const podB = nodeB.pods[0] as ClusterPod;
  const [a6, b6, client6] = [nodeA.ip6, nodeB.ip6, client.ip6];
  if (!a6 || !b6 || !client6 || !podB.ip6) throw new Error('ipv6 tunnel scenarios: the bed is not dual-stack (createCluster ipv6)');
  const one = (a: EchoAttempt[]) => a[0] as EchoAttempt;

  await t.test(`IPv6 ${mode}: TCP and UDP at [node A] reach the pod on B through the tunnel, which sees the client's IPv6 address`, async (t) => {
    const tcp = one(await runEchoClient({ ns: client.ns, proto: 'tcp', host: a6, port: TCP6, timeoutMs: 5000 }));
    t.ok(tcp.ok, `TCP answered (${JSON.stringify(tcp.error ?? null)})`);
    t.equal(tcp.pod, podB.name, 'TCP: the backend on B');
    t.equal(tcp.seenPeer?.address, client6, 'TCP: the pod saw the client\'s own IPv6 address');
    t.equal(tcp.peername?.address, a6, 'TCP: the client talked to [node A] throughout');
    const udp = one(await runEchoClient({ ns: client.ns, proto: 'udp', host: a6, port: UDP6, timeoutMs: 5000 }));
    t.ok(udp.ok, `UDP answered (${JSON.stringify(udp.error ?? null)})`);
    t.equal(udp.seenPeer?.address, client6, 'UDP: the pod saw the client\'s IPv6 address');
    t.equal(udp.recvfrom?.address ?? udp.peername?.address, a6, 'UDP: the answer came from [node A]');

    const ctB = await agentB.ctl<CtDump>(['ct', 'dump']);
    const decap = ctB.entries.filter((e) => e.flags.includes('decap') && e.client.ip === client6 && e.backend.ip === podB.ip6);
    t.ok(decap.length >= 2, `node B holds the client's IPv6 flows as unwrapped from node A (${decap.length} entries)`);
    t.ok(decap.some((e) => e.natSource === a6), 'remembering [node A]');
    t.ok(mode === 'DSR' ? decap.some((e) => e.flags.includes('dsr')) : decap.every((e) => !e.flags.includes('dsr')), `${mode}: ${mode === 'DSR' ? 'with' : 'without'} the DSR flag`);
    const ctA = await agentA.ctl<CtDump>(['ct', 'dump']);
    t.ok(ctA.entries.some((e) => e.flags.includes('tunnel') && e.natSource === b6 && e.client.ip === client6), 'node A holds them as tunnelled to [node B]');
  });

  await t.test(`IPv6 ${mode}: a 2 MiB download ${mode === 'DSR' ? 'leaves node B straight to the client' : 'comes back through node A'}`, async (t) => {
    const [a0, b0] = await Promise.all([uplinkTxBytes(nodeA.ns), uplinkTxBytes(nodeB.ns)]);
    const r = await runDownload(bed.run, { ns: client.ns, host: a6, port: DOWNLOAD6, bytes: 2 * MIB });
    const [a1, b1] = await Promise.all([uplinkTxBytes(nodeA.ns), uplinkTxBytes(nodeB.ns)]);
    t.ok(r.ok, `completed (${JSON.stringify(r.error ?? null)}, ${r.received} bytes)`);
    t.equal(r.received, 2 * MIB, '2 MiB arrived');
    t.equal(r.receivedSha256, r.sha256, 'intact');
    t.equal(r.seenPeer?.address, client6, 'the pod saw the client\'s IPv6 address');
    t.comment(`IPv6 ${mode}: node A's uplink sent ${a1 - a0} bytes, node B's ${b1 - b0}`);
    t.ok(b1 - b0 >= 2 * MIB, `node B's uplink sent the reply (${b1 - b0} bytes)`);
    if (mode === 'DSR') t.ok(a1 - a0 < MIB / 2, `node A's uplink carried no reply data (${a1 - a0} bytes < 512 KiB)`);
    else t.ok(a1 - a0 >= 2 * MIB, `node A's uplink carried the reply (${a1 - a0} bytes)`);
  });
}
