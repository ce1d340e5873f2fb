// Issue 4, end to end: the agent is SIGKILLed while clients stream new connections through both
// paths, then started again. The pinned maps, pinned cgroup links and TC filters keep serving
// while no agent runs; the new agent re-adopts the service ids from the maps, swaps its
// programs in place, and its first apply over unchanged state writes and deletes nothing.
import t from 'tap';
import type { ServiceView } from '../../src/admin/types.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { runInNetns } from '../../src/testbed/netns.js';
import { TrafficClient } from '../traffic/traffic-client.js';
import type { LoopStats } from '../traffic/traffic-client.js';
import { createAgentBed, nodeObject, POD_IP, portKey, service, slice } from './agent-bed.js';
import type { LogLine } from './agent-bed.js';

const VIP = '10.96.0.40';
const PORTS = [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' as const }];
const OTHER_VIP = '10.96.0.41';
const OTHER = [{ name: 'http', port: 80 }];

/** What must survive a restart unchanged, per service port. */
const ids = (svcs: ServiceView[]) => Object.fromEntries(svcs.map((s) => [s.key, { svcId: s.svcId, backendId: s.backendId, backends: s.backends }]));
const isApplied = (l: LogLine) => l.msg === 'applied' && l.component === 'reconciler';

// Connects from a fixed local port and prints which pod greeted, or the error code.
const FIXED_PORT_CLIENT = `
const net = require('node:net');
const [host, port, localPort] = process.argv.slice(1);
const out = (r) => { process.stdout.write(JSON.stringify(r) + '\\n'); process.exit(0); };
const s = net.connect({ host, port: Number(port), localPort: Number(localPort) });
setTimeout(() => out({ error: 'ETIMEDOUT' }), 1500);
s.on('data', (d) => out({ pod: JSON.parse(String(d).split('\\n')[0]).pod }));
s.on('error', (e) => out({ error: e.code }));
`;

t.test('SIGKILL the agent while clients stream connections, then restart it', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [service('web', VIP, PORTS), slice('web-1', 'web', ['web-a', 'web-b', 'web-c'], PORTS)]);
  await bed.writeManifest('other.yaml', [service('other', OTHER_VIP, OTHER), slice('other-1', 'other', ['web-a'], OTHER)]);
  const first = bed.startAgent();
  await bed.waitForSynced();
  const before = await bed.services();
  t.equal(before.length, 3, 'three service ports programmed');
  const firstApplied = first.find(isApplied)[0];
  t.ok(firstApplied && (firstApplied.services as { added: number }).added === 3 && (firstApplied.ops as { writes: number }).writes > 0,
    'the first agent\'s first apply added the three service ports (the log line is there and counts)', { line: firstApplied });

  // Clients: one in the cgroup with the connect-time programs; one in pod client-tc, in a sibling
  // cgroup without programs (TC path on its veth).
  const ct = await TrafficClient.start(bed.run, bed.client.ns, bed.clientCgroup);
  const tc = await TrafficClient.start(bed.run, bed.tcClient.ns, await createCgroup(await bed.run.cgroup(), 'tc-clients'));
  const tcp = { host: VIP, port: 80, timeoutMs: 1000 };
  await ct.startLoop('ct-tcp', tcp, { proto: 'tcp', workers: 2, gapMs: 5 });
  await ct.startLoop('ct-udp', { host: VIP, port: 53, timeoutMs: 1000 }, { proto: 'udp', connected: true, workers: 1, gapMs: 10 });
  await tc.startLoop('tc-tcp', tcp, { proto: 'tcp', workers: 2, gapMs: 5 });
  const loops: Promise<LoopStats>[] = [];
  const stopAll = () => {
    if (loops.length === 0) loops.push(ct.stopLoop('ct-tcp'), ct.stopLoop('ct-udp'), tc.stopLoop('tc-tcp'));
    return Promise.all(loops);
  };
  t.teardown(() => stopAll().then(() => undefined, () => undefined));

  const traffic = async (ms: number) => new Promise((r) => setTimeout(r, ms)); // a window of traffic, not an assertion
  await traffic(300);
  const killed = await first.kill('SIGKILL');
  t.equal(killed.signal, 'SIGKILL', 'the agent died of SIGKILL');

  // While no agent runs, the dataplane keeps serving from the pins; sluicectl reads them.
  const down = await bed.status();
  t.equal(down.agentRunning, false, 'sluicectl reports the agent down (answering from the pinned maps)');
  await traffic(300);

  const second = bed.startAgent();
  await bed.waitForSynced();
  await traffic(500);
  const [ctTcp, ctUdp, tcTcp] = await stopAll();

  for (const [name, stats] of [['connect-time TCP', ctTcp], ['connect-time connected UDP', ctUdp], ['TC path TCP', tcTcp]] as const) {
    t.equal(stats!.failures, 0, `${name}: zero failed connections across the kill and restart`, { samples: stats!.failSamples });
    t.ok(stats!.attempts >= 20, `${name}: the client really streamed (${stats!.attempts} attempts)`);
    t.same(Object.keys(stats!.backends).sort(), ['web-a', 'web-b', 'web-c'], `${name}: spread over all three backends`, { backends: stats!.backends });
  }

  const after = await bed.services();
  t.same(ids(after), ids(before), 'the new agent re-adopted every service id and backend block (same ids, same slots)');

  const applied = await second.waitForLog(isApplied, 'its first apply');
  t.same(applied.services, { added: 0, updated: 0, removed: 0, unchanged: 3 }, 'first apply of the new agent: all three service ports unchanged');
  t.same(applied.ops, { writes: 0, deletes: 0 }, 'first apply of the new agent: zero map writes and zero deletes');
  const attached = second.find((l) => l.msg === 'connect-time programs attached')[0];
  t.ok(attached, 'the new agent logged its connect-time attachment');
  t.same(attached?.created, [], 'no cgroup link was created anew');
  t.equal((attached?.updated as unknown[] | undefined)?.length, 8, 'all eight cgroup links (both families) were updated in place');

  // And the new agent is in charge: a change made now takes effect.
  await bed.writeManifest('other.yaml', [service('other', OTHER_VIP, OTHER), slice('other-1', 'other', ['web-b'], OTHER)]);
  await bed.waitForBackends(portKey('other', 'http'), ['web-b'], 80);
  const r = await bed.traffic('connect-time', OTHER_VIP, 80, 3);
  t.ok(r.every((a) => a.ok && a.pod === 'web-b'), 'a change after the restart is served', { attempts: r });
  const later = second.find(isApplied).slice(1);
  t.ok(later.some((l) => (l.services as { updated: number }).updated === 1 && (l.ops as { writes: number }).writes > 0),
    'and its apply is logged with one updated service port and its writes', { lines: later });

  await t.test('a finished TC-path connection does not capture a direct connection from the same client port', async (t) => {
    // From the client pod, outside the connect-time cgroup: the TC path. Service `other` has one
    // backend, web-b. The fixed client ports lie below the ephemeral range (32768-60999), which
    // the streaming clients above just used: a TIME_WAIT socket there would make bind() fail.
    const connect = async (host: string, port: number, localPort: number) =>
      JSON.parse((await runInNetns(bed.client.ns, [process.execPath, '-e', FIXED_PORT_CLIENT, host, String(port), String(localPort)])).stdout) as { pod?: string; error?: string };
    t.same(await connect(OTHER_VIP, 80, 31001), { pod: 'web-b' }, 'service connection via the TC path from port 31001, closed');
    t.same(await connect(POD_IP['web-b'], 8080, 31002), { pod: 'web-b' }, 'a direct pod-to-pod connection from another port works');
    // The same client port, straight to the backend (no service involved): its SYN-ACK would match
    // the closed service connection's conntrack entry (kept for the closing timeout) and come back
    // from the VIP, unless the direct SYN drops that finished flow (sl_ct_forget_finished4).
    t.same(await connect(POD_IP['web-b'], 8080, 31001), { pod: 'web-b' }, 'a direct connection reusing port 31001 works');
  });
});
