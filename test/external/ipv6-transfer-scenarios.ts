// IPv6 transfers on the external-traffic bed (issue 16), the twins of transfer-scenarios.ts's
// first two, run by ipv6-scenarios.ts (CI time: no second bed):
//   - 1 MiB through an IPv6 NodePort at node A whose only backend is on B (SNAT: IPv6 has no
//     tunnel yet), intact;
//   - IPv6 path-MTU discovery: the far client (behind the edge router's 1400-byte link, its own
//     link at 1500, so it advertises a full-size MSS) downloads 1 MiB through [node A] from a
//     backend on A (DNAT only) and on B (SNAT). The edge router's Packet Too Big goes to the
//     address the reply came from, [node A]:nodePort, quoting it: only node A's host program
//     (sl_host_icmp_in6) can turn it into an error the backend's kernel matches to its socket.
//     IPv6 routers never fragment, so without it the download is a black hole (it stalls).
import type { Test } from 'tap';
import type { Cluster, ClusterClient, ClusterNode, ClusterPod } from '../../src/testbed/cluster.js';
import { runDownload } from '../../src/testbed/echo.js';
import type { DownloadResult } from '../../src/testbed/echo.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { BULK, cachedMtu } from './bed.js';
import type { BedPod, Svc } from './bed.js';

/** Also transfer-scenarios.ts's agent restart: an IPv6 download beside its IPv4 one. */
export const BULK_REMOTE6 = 30040;
const BULK_LOCAL6 = 30041;
const MIB = 1024 * 1024;

/** The scenarios' Services (IPv6-only), over the bed's pods with their IPv6 addresses. */
export function ipv6TransferServices(onA: BedPod, onB: BedPod): Svc[] {
  return [
    { name: 'bulk-remote6', clusterIP: 'fd00:96::40', nodePort: BULK_REMOTE6, targetPort: BULK, pods: [onB] },
    { name: 'bulk-local6', clusterIP: 'fd00:96::41', nodePort: BULK_LOCAL6, targetPort: BULK, pods: [onA] },
  ];
}

const checkIntact = (t: Test, r: DownloadResult, bytes: number, what: string) => {
  t.ok(r.ok, `${what}: completed (${JSON.stringify(r.error ?? null)}, ${r.received} bytes in ${Math.round(r.ms)} ms)`);
  t.equal(r.bytes, bytes, `${what}: the server sent ${bytes} bytes`);
  t.equal(r.received, bytes, `${what}: all of them arrived`);
  t.equal(r.receivedSha256, r.sha256, `${what}: SHA-256 of what arrived = SHA-256 of what was sent`);
};

export async function ipv6TransferScenarios(t: Test, run: TestbedRun, c: Cluster): Promise<void> {
  const [nodeA, nodeB] = c.nodes as [ClusterNode, ClusterNode];
  const client = c.clients[0] as ClusterClient;
  const far = c.routedClients[0] as ClusterClient | undefined;
  const [podA, podB] = [nodeA.pods[0] as ClusterPod, nodeB.pods[0] as ClusterPod];
  const a6 = nodeA.ip6 as string;
  if (!far?.ip6) throw new Error('ipv6 transfer scenarios: the bed has no dual-stack far client (createCluster routedClients + ipv6)');
  const far6 = far.ip6;

  // The backend's kernel caches the path MTU towards the address it talks to: the far client for
  // a DNAT-only flow, node A for an SNATed one.
  const cases = [
    { port: BULK_LOCAL6, pod: podA, peer: far6, what: 'backend on A (DNAT only)' },
    { port: BULK_REMOTE6, pod: podB, peer: a6, what: 'backend on B (SNAT)' },
  ];
  const mtus = () => Promise.all(cases.map((k) => cachedMtu(k.pod.ns, k.peer)));
  const mtuBefore = await mtus();
  // All three downloads at once (independent flows, different client namespaces or ports).
  const [bulk, ...pmtu] = await Promise.all([
    runDownload(run, { ns: client.ns, host: a6, port: BULK_REMOTE6, bytes: MIB }),
    ...cases.map((k) => runDownload(run, { ns: far.ns, host: a6, port: k.port, bytes: MIB, idleMs: 8000 })),
  ]);
  const mtuAfter = await mtus();

  await t.test('IPv6: a 1 MiB reply through the SNAT path (NodePort at node A, backend on B) arrives intact', async (t) => {
    const r = bulk as DownloadResult;
    checkIntact(t, r, MIB, 'client -> [node A] -> backend on B');
    t.equal(r.pod, podB.name, 'served by the backend on B');
    t.equal(r.seenPeer?.address, a6, 'which saw node A\'s IPv6 address (SNAT)');
    t.same(r.peername, { address: a6, port: BULK_REMOTE6 }, 'the client talked to [node A]:nodePort throughout');
  });

  await t.test('IPv6 path-MTU discovery through node A: a client behind a 1400-byte link downloads 1 MiB from a backend on A and on B', async (t) => {
    for (const [i, k] of cases.entries()) {
      const r = pmtu[i] as DownloadResult;
      t.equal(mtuBefore[i], undefined, `${k.what}: no path MTU known to ${k.peer} before`);
      checkIntact(t, r, MIB, k.what);
      t.equal(r.pod, k.pod.name, `${k.what}: served by ${k.pod.name}`);
      t.equal(r.seenPeer?.address, i === 0 ? far6 : a6, `${k.what}: which saw ${i === 0 ? 'the far client' : 'node A'}`);
      t.equal(mtuAfter[i], 1400, `${k.what}: the backend learned the path MTU from the translated Packet Too Big`);
    }
  });
}
