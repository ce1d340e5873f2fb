// Transfers through the external-traffic bed (issue 14), run by external-traffic.test.ts on its
// bed (CI time: no second pair of agents):
//   - 1 MiB reply through the SNAT path (client -> node A -> backend only on B), intact;
//   - path-MTU discovery: a client behind a link of MTU 1400 (its own link is 1500, so it
//     advertises a full-size MSS) downloads through node A from a backend on A (DNAT only) and
//     on B (SNAT): the edge router's "fragmentation needed" must be translated so the backend
//     learns the path MTU (a black hole otherwise: the download stalls);
//   - the other direction of ICMP: the backend on B answers an SNATed datagram to a closed port
//     with "port unreachable" to node A, which must reach the client about ITS datagram (the
//     client's connected socket sees ECONNREFUSED at once instead of waiting for a timeout);
//   - a UDP NodePort whose backend is replaced (old pod out of the EndpointSlice, new one in,
//     the old one still running): the next datagrams of the same client socket reach the new
//     backend; a backend on A replaced by one on B (a DNAT-only flow's successor is SNATed) and
//     one on B by one on A (the SNATed flow and its twin go);
//   - node A's agent killed (SIGKILL) and restarted over its pinned maps during a slow download
//     through node A to B: the connection continues without a break; an IPv6 download through
//     [node A] to B (ipv6-transfer-scenarios.ts's service) beside it, the same.
import type { Test } from 'tap';
import { writeManifest } from '../../src/testbed/cluster-agent.js';
import type { AgentLog, NodeAgent } from '../../src/testbed/cluster-agent.js';
import type { Cluster, ClusterNode, ClusterPod } from '../../src/testbed/cluster.js';
import { openUdpSession, runDownload, runEchoClient, startDownload } from '../../src/testbed/echo.js';
import type { DownloadResult } from '../../src/testbed/echo.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { BULK, cachedMtu, serviceObjects, UDP_ECHO } from './bed.js';
import { BULK_REMOTE6 } from './ipv6-transfer-scenarios.js';
import type { BedPod, Svc } from './bed.js';

/** What every pod's echo server serves besides TCP echo. */
export const TRANSFER_ECHO = { udp: [UDP_ECHO], bulk: [BULK] };

const MANIFEST = 'transfer.json';
const BULK_REMOTE = 30020;
const BULK_LOCAL = 30021;
const UDP_A_TO_B = 30022;
const UDP_B_TO_A = 30023;
const UDP_CLOSED = 30024;
/** A port nothing listens on in the pods. */
const CLOSED_PORT = 5399;
const MIB = 1024 * 1024;

const bedPod = (n: ClusterNode, i: number): BedPod => {
  const p = n.pods[i] as ClusterPod;
  return { pod: p.name, ip: p.ip, node: n.name };
};

/** The scenarios' Services; `replaced`: the UDP services' backends after the replacement. */
export function transferServices(c: Cluster, replaced = false): Svc[] {
  const [a, b] = c.nodes as [ClusterNode, ClusterNode];
  const [onA, onB] = [bedPod(a, 0), bedPod(b, 0)];
  return [
    { name: 'bulk-remote', clusterIP: '10.96.0.20', nodePort: BULK_REMOTE, targetPort: BULK, pods: [onB] },
    { name: 'bulk-local', clusterIP: '10.96.0.21', nodePort: BULK_LOCAL, targetPort: BULK, pods: [onA] },
    { name: 'udp-a-to-b', clusterIP: '10.96.0.22', nodePort: UDP_A_TO_B, protocol: 'UDP', targetPort: UDP_ECHO, pods: [replaced ? onB : onA] },
    { name: 'udp-b-to-a', clusterIP: '10.96.0.23', nodePort: UDP_B_TO_A, protocol: 'UDP', targetPort: UDP_ECHO, pods: [replaced ? onA : onB] },
    { name: 'udp-closed', clusterIP: '10.96.0.24', nodePort: UDP_CLOSED, protocol: 'UDP', targetPort: CLOSED_PORT, pods: [onB] },
  ];
}

export interface TransferBed {
  run: TestbedRun;
  cluster: Cluster;
  agents: NodeAgent[];
  manifests: string;
}

const checkIntact = (t: Test, r: DownloadResult, bytes: number, what: string) => {
  t.ok(r.ok, `${what}: completed (${JSON.stringify(r.error ?? null)}, ${r.received} bytes in ${Math.round(r.ms)} ms)`);
  t.equal(r.bytes, bytes, `${what}: the server sent ${bytes} bytes`);
  t.equal(r.received, bytes, `${what}: all of them arrived`);
  t.equal(r.receivedSha256, r.sha256, `${what}: SHA-256 of what arrived = SHA-256 of what was sent`);
};

const appliedUpdate = (l: AgentLog) => l.msg === 'applied' && ((l.services as { updated?: number } | undefined)?.updated ?? 0) > 0;

export async function transferScenarios(t: Test, bed: TransferBed): Promise<void> {
  const { run, cluster: c, agents } = bed;
  const [nodeA, nodeB] = c.nodes as [ClusterNode, ClusterNode];
  const [agentA] = agents as [NodeAgent, NodeAgent];
  const client = c.clients[0]!;
  const far = c.routedClients[0]!;
  const podA0 = nodeA.pods[0] as ClusterPod;
  const podB0 = nodeB.pods[0] as ClusterPod;

  await t.test('a 1 MiB reply through the SNAT path arrives intact', async (t) => {
    const r = await runDownload(run, { ns: client.ns, host: nodeA.ip, port: BULK_REMOTE, bytes: MIB });
    checkIntact(t, r, MIB, 'client -> node A -> backend on B');
    t.equal(r.pod, podB0.name, 'served by the backend on B');
    t.equal(r.seenPeer?.address, nodeA.ip, 'which saw node A (SNAT)');
    t.same(r.peername, { address: nodeA.ip, port: BULK_REMOTE }, 'the client talked to node A\'s NodePort throughout');
  });

  await t.test('path-MTU discovery through node A: a client behind a 1400-byte link downloads 1 MiB from a backend on A and on B', async (t) => {
    // The backend's kernel caches the path MTU towards the address it talks to: the client for
    // a DNAT-only flow, node A for an SNATed one. Both downloads run at once.
    const cases = [
      { port: BULK_LOCAL, pod: podA0, peer: far.ip, what: 'backend on A (DNAT only)' },
      { port: BULK_REMOTE, pod: podB0, peer: nodeA.ip, what: 'backend on B (SNAT)' },
    ];
    const mtus = () => Promise.all(cases.map((k) => cachedMtu(k.pod.ns, k.peer)));
    for (const [i, mtu] of (await mtus()).entries()) t.equal(mtu, undefined, `${cases[i]!.what}: no path MTU known to ${cases[i]!.peer} before`);
    const results = await Promise.all(cases.map((k) => runDownload(run, { ns: far.ns, host: nodeA.ip, port: k.port, bytes: MIB, idleMs: 8000 })));
    const after = await mtus();
    for (const [i, k] of cases.entries()) {
      const r = results[i] as DownloadResult;
      checkIntact(t, r, MIB, k.what);
      t.equal(r.pod, k.pod.name, `${k.what}: served by ${k.pod.name}`);
      t.equal(after[i], 1400, `${k.what}: the backend learned the path MTU from the translated ICMP error`);
    }
  });

  await t.test('the backend on B\'s port unreachable about an SNATed datagram reaches the client: ECONNREFUSED at once', async (t) => {
    const [r] = await runEchoClient({ ns: client.ns, proto: 'udp', host: nodeA.ip, port: UDP_CLOSED, connected: true, timeoutMs: 3000 });
    t.equal(r?.error?.code, 'ECONNREFUSED', `refused (${JSON.stringify(r?.error ?? null)})`);
    // The attempt's own duration, measured by the client: an untranslated error would leave it
    // waiting for the timeout.
    t.ok((r?.ms ?? Infinity) < 2500, `at once (${r?.ms} ms)`);
  });

  await t.test('a UDP NodePort whose backend is replaced: the same client socket reaches the new backend, no stale flow', async (t) => {
    const cases = [
      { port: UDP_A_TO_B, old: podA0, oldSeen: client.ip, next: podB0, seen: nodeA.ip, what: 'backend on A replaced by one on B' },
      { port: UDP_B_TO_A, old: podB0, oldSeen: nodeA.ip, next: podA0, seen: client.ip, what: 'backend on B replaced by one on A' },
    ];
    const sessions = await Promise.all(cases.map((k) => openUdpSession(run, { ns: client.ns, host: nodeA.ip, port: k.port })));
    t.teardown(() => Promise.all(sessions.map((s) => s.close())));
    for (const [i, k] of cases.entries()) {
      for (let n = 0; n < 2; n++) {
        const r = await sessions[i]!.send(`before ${n}`);
        t.ok(r.ok, `${k.what}: answered before (${JSON.stringify(r.error ?? null)})`);
        t.equal(r.pod, k.old.name, `${k.what}: by the old backend`);
        t.equal(r.seenPeer?.address, k.oldSeen, `${k.what}: which saw ${k.oldSeen}`);
      }
    }
    // The old pods keep running: a stale flow would still reach them.
    const from = agentA.logs.length;
    await writeManifest(bed.manifests, MANIFEST, serviceObjects(transferServices(c, true)));
    await agentA.waitForLog(appliedUpdate, from);
    for (const [i, k] of cases.entries()) {
      for (let n = 0; n < 3; n++) {
        const r = await sessions[i]!.send(`after ${n}`);
        t.ok(r.ok, `${k.what}: datagram ${n} after the change answered (${JSON.stringify(r.error ?? null)})`);
        t.equal(r.pod, k.next.name, `${k.what}: datagram ${n} after the change reached the new backend`);
        t.equal(r.seenPeer?.address, k.seen, `${k.what}: which saw ${k.seen}`);
        t.same(r.recvfrom, { address: nodeA.ip, port: k.port }, `${k.what}: the reply still comes from node A's NodePort`);
      }
    }
  });

  await t.test('node A\'s agent killed and restarted during a slow download through node A to B: no break', async (t) => {
    // 16 MiB at 16 KiB per 100 ms would take 100 s: it is still running after the restart, then
    // the test lets the server send the rest at full speed.
    const bytes = 16 * MIB;
    const dl = startDownload(run, { ns: client.ns, host: nodeA.ip, port: BULK_REMOTE, bytes, chunk: 16 * 1024, intervalMs: 100, idleMs: 15_000 });
    // The IPv6 twin (the bed is dual-stack): its SNATed flow lives in node A's sl_ct6.
    const a6 = nodeA.ip6;
    const dl6 = a6 ? startDownload(run, { ns: client.ns, host: a6, port: BULK_REMOTE6, bytes, chunk: 16 * 1024, intervalMs: 100, idleMs: 15_000 }) : undefined;
    const header = await dl.started;
    t.equal(header.pod, podB0.name, 'the download runs from the backend on B');
    if (dl6) t.equal((await dl6.started).pod, podB0.name, 'IPv6: the download runs from the backend on B');
    const progressed = async (past: number) => {
      const deadline = Date.now() + 10_000;
      while (dl.received() <= past && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return dl.received();
    };
    let got = await progressed(0);
    t.ok(got > 0, `data flowing before the restart (${got} bytes)`);
    let finished = false;
    void dl.result.then(() => { finished = true; });
    void dl6?.result.then(() => { finished = true; });
    // SIGKILL: nothing of the agent's shutdown runs; the new agent starts over the pinned maps
    // and the programs still attached, as after a crash or an ordinary restart.
    const started = Date.now();
    await agentA.stop('SIGKILL');
    const stopped = Date.now();
    const before = dl.received();
    const before6 = dl6?.received() ?? 0;
    const logFrom = agentA.logs.length;
    await agentA.start(['--external-mode', 'SNAT']);
    await agentA.waitForLog((l) => l.msg === 'applied', logFrom);
    t.comment(`node A's agent: killed in ${stopped - started} ms, running and synced again after ${Date.now() - stopped} ms`);
    t.notOk(finished, 'the download was still running across the restart');
    got = await progressed(Math.max(before, got));
    t.ok(got > before, `data keeps flowing after the restart (${before} -> ${got} bytes)`);
    t.ok(agentA.logs.slice(logFrom).some((l) => l.msg === 'sluice-agent running'), 'a new agent runs');
    if (dl6) {
      const deadline = Date.now() + 10_000;
      while (dl6.received() <= before6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      t.ok(dl6.received() > before6, `IPv6: data keeps flowing after the restart (${before6} -> ${dl6.received()} bytes)`);
      dl6.fast();
    }
    dl.fast();
    const r = await dl.result;
    checkIntact(t, r, bytes, 'the download across the restart');
    t.equal(r.seenPeer?.address, nodeA.ip, 'SNATed by node A');
    if (dl6 && a6) {
      const r6 = await dl6.result;
      checkIntact(t, r6, bytes, 'IPv6: the download across the restart');
      t.equal(r6.seenPeer?.address, a6, 'IPv6: SNATed by node A');
    }
  });
}
