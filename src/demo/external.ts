// The demo's external part: the client outside the cluster downloads from the NodePort, the
// LoadBalancer IP and the ExternalIP at node-a, whose only backend is web-b on node-b, once per
// external mode of the agents (--external-mode, a start-time setting: both agents restart in
// each mode). One line per request: the pod that answered, the client address it saw, and the
// bytes node-a's uplink sent meanwhile (its interface counters) — the reply it carried back.
import { agentRefusesFlags, waitSynced } from '../testbed/cluster-agent.js';
import { NODE_UPLINK } from '../testbed/cluster.js';
import { runDownload } from '../testbed/echo.js';
import type { DownloadResult } from '../testbed/echo.js';
import { linkCounters } from '../testbed/netns.js';
import type { TestbedRun } from '../testbed/run.js';
import { EXTERNAL_IP, LB_IP, NODE_PORT } from './mini-cluster.js';
import type { MiniCluster } from './mini-cluster.js';
import { say } from './say.js';

/**
 * The external modes shown, in order, one line each (a mode the agent refuses is reported and
 * skipped, so a mode can be listed before the agent has it).
 */
export const DEMO_MODES: readonly { mode: string; story: string }[] = [
  { mode: 'SNAT', story: 'node-a puts its own address on the flow (as kube-proxy does); the reply comes back through node-a' },
  { mode: 'Tunnel', story: 'node-a wraps the client\'s packet in UDP to node-b, unchanged; the pod sees the client; the reply is tunnelled back through node-a' },
  { mode: 'DSR', story: 'node-a tunnels the request to node-b, which answers the client directly: node-a carries no reply' },
];

export const DOWNLOAD_BYTES = 1 << 20;

/** Which external modes the agent accepts: null, or its refusal, per DEMO_MODES entry. */
export function checkModes(): Promise<(string | null)[]> {
  return Promise.all(DEMO_MODES.map((m) => agentRefusesFlags(['--external-mode', m.mode])));
}

/** Starts (or restarts) both agents in `mode` and waits until they have programmed everything. */
export async function startAgents(mc: MiniCluster, mode: string): Promise<void> {
  await Promise.all(mc.agents.map((a) => a.stop()));
  await Promise.all(mc.agents.map((a) => a.start(['--external-mode', mode])));
  await waitSynced(mc.agents);
  // The tunnel peer set (every Node's address) is written from the Node objects in every mode,
  // after the sync; it stays in its pinned map across restarts.
  await Promise.all(mc.agents.map((a) => a.waitForLog((l) => l.msg === 'tunnel peers (cluster node addresses)', 0, 10_000)));
}

function size(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function describeDownload(kind: string, target: string, d: DownloadResult, mc: MiniCluster, carried: number): string {
  const head = `${kind.padEnd(12)} ${target.padEnd(19)} →`;
  if (!d.ok) return `${head} FAILED ${d.error?.code ?? ''} ${d.error?.message ?? ''} (node-a sent ${size(carried)})`;
  const seen = d.seenPeer ? `${d.seenPeer.address}:${d.seenPeer.port}` : '?';
  return `${head} ${d.pod} on ${mc.nodeOf(d.pod)} saw client ${seen}; node-a carried ${size(carried)} back (${size(d.received)} download, ${d.ms.toFixed(0)} ms)`;
}

/** One mode: a download through each frontend. Returns how many failed. */
export async function showMode(run: TestbedRun, mc: MiniCluster, mode: string, story: string): Promise<number> {
  say(`${mode} mode: ${story}`);
  const frontends = [
    ['NodePort', mc.nodeA.ip, NODE_PORT],
    ['LoadBalancer', LB_IP, 80],
    ['ExternalIP', EXTERNAL_IP, 80],
  ] as const;
  let failed = 0;
  for (const [kind, host, port] of frontends) {
    const before = await linkCounters(mc.nodeA.ns, NODE_UPLINK);
    const d = await runDownload(run, { ns: mc.client.ns, host, port, bytes: DOWNLOAD_BYTES, idleMs: 5000 });
    const after = await linkCounters(mc.nodeA.ns, NODE_UPLINK);
    say('  ' + describeDownload(kind, `${host}:${port}`, d, mc, after.txBytes - before.txBytes));
    if (!d.ok) failed++;
  }
  say();
  return failed;
}
