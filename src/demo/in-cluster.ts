// The demo's in-cluster part: pod client-a on node-a calls the ClusterIP Service demo/echo,
// served by web-a (node-a) and web-b (node-b) — first from inside node-a's cgroup (connect-time
// load balancing: the socket is pointed at a pod before a packet leaves), then from outside it
// (the TC programs on the pod's veth translate each packet); then web-a leaves the EndpointSlice
// (the manifest file is edited) and both agents reprogram.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runEchoClient } from '../testbed/echo.js';
import type { EchoAttempt } from '../testbed/echo.js';
import { CLUSTER_IP } from './mini-cluster.js';
import type { MiniCluster } from './mini-cluster.js';
import { say, waitFor } from './say.js';

/** One line per request: which pod answered (and on which node), what the pod and the client saw. */
export function describeEcho(a: EchoAttempt, mc: MiniCluster, vip: string, port: number): string {
  const head = `#${a.i + 1} ${a.proto.toUpperCase()} ${vip}:${port} →`;
  if (!a.ok) return `${head} FAILED ${a.error?.code ?? ''} ${a.error?.message ?? ''}`;
  const seen = a.seenPeer ? `${a.seenPeer.address}:${a.seenPeer.port}` : '?';
  const peer = a.peername ?? a.recvfrom;
  const peerText = peer ? `; ${a.proto === 'tcp' ? 'getpeername' : 'recvfrom'} says ${peer.address}:${peer.port}` : '';
  return `${head} answered by ${a.pod} on ${mc.nodeOf(a.pod)}, which saw client ${seen}${peerText} (${a.ms.toFixed(1)} ms)`;
}

/** Runs the in-cluster part; returns how many requests failed or went where they must not. */
export async function showInCluster(mc: MiniCluster): Promise<number> {
  const { clientA, agentA } = mc;
  const print = (attempts: EchoAttempt[], port: number) => {
    for (const a of attempts) say('  ' + describeEcho(a, mc, CLUSTER_IP, port));
    return attempts.filter((a) => !a.ok).length;
  };
  let failed = 0;
  say(`In-cluster, connect-time: pod ${clientA.name} (in ${mc.nodeA.name}'s cgroup) calls the ClusterIP ${CLUSTER_IP}:80 and ${CLUSTER_IP}:53`);
  // The three clients at once (each is a Node process start; the output keeps its order).
  const [tcp, udp, tc] = await Promise.all([
    runEchoClient({ ns: clientA.ns, cgroup: agentA.cgroup, proto: 'tcp', host: CLUSTER_IP, port: 80, count: 6 }),
    runEchoClient({ ns: clientA.ns, cgroup: agentA.cgroup, proto: 'udp', host: CLUSTER_IP, port: 53, count: 2, connected: true }),
    runEchoClient({ ns: clientA.ns, proto: 'tcp', host: CLUSTER_IP, port: 80, count: 4 }),
  ]);
  failed += print(tcp, 80) + print(udp, 53);
  say();
  say(`In-cluster, TC path: the same pod, a process outside the cgroup (NAT on ${clientA.name}'s veth)`);
  failed += print(tc, 80);
  say();

  say(`Scaling down: ${mc.webA.name} leaves demo/echo's EndpointSlice (editing the manifest file)`);
  const svcFile = join(mc.manifests, 'echo-service.yaml');
  const text = await readFile(svcFile, 'utf8');
  const scaled = text.replace(new RegExp(` {2}- addresses: \\[${mc.webA.ip.replaceAll('.', '\\.')}\\][\\s\\S]*?name: ${mc.webA.name} \\}\\n`), '');
  if (scaled === text) throw new Error(`demo: could not find ${mc.webA.name}'s endpoint in ${svcFile}`);
  // Atomically (a hidden file renamed over it: the manifest source ignores dot files), so the
  // agents never read half a file.
  const tmp = join(mc.manifests, '.echo-service.yaml.tmp');
  await writeFile(tmp, scaled);
  await rename(tmp, svcFile);
  for (const agent of mc.agents) {
    await waitFor(async () => !JSON.stringify(await agent.ctl(['services'])).includes(`"${mc.webA.ip}`), 10_000, `${agent.node.name}'s agent to drop ${mc.webA.name}`);
  }
  say('  both agents saw the file change and reprogrammed the service:');
  const after = await runEchoClient({ ns: clientA.ns, cgroup: agentA.cgroup, proto: 'tcp', host: CLUSTER_IP, port: 80, count: 4 });
  failed += print(after, 80) + after.filter((a) => a.ok && a.pod !== mc.webB.name).length;
  say();
  return failed;
}
