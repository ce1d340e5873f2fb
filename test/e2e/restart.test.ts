// Issue 4, end to end: the agent is SIGKILLed while clients stream new connections through both
// paths, then started again. The pinned maps, pinned cgroup links and TC filters keep serving
// while no agent runs; the new agent re-adopts the service ids from the maps, swaps its
// programs in place, and its first apply over unchanged state writes and deletes nothing.
// In both families (issue 16): the pods are dual stack and the Services too, so each path
// carries IPv4 and IPv6 new connections, and TCP flows established before the kill over both
// families from one pod (sl_ct4/sl_ct6 on the TC path) answer throughout.
import t from 'tap';
import type { ServiceView } from '../../src/admin/types.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { runInNetns } from '../../src/testbed/netns.js';
import { TrafficClient } from '../traffic/traffic-client.js';
import type { LoopStats } from '../traffic/traffic-client.js';
import { startHeldFlows } from '../upgrade/held-flows.js';
import type { HeldFlows } from '../upgrade/held-flows.js';
import { createAgentBed, nodeObject, POD_IP, portKey, service, slice, WEB_PODS } from './agent-bed.js';
import type { LogLine } from './agent-bed.js';

const VIP = '10.96.0.40';
const VIP6 = 'fd00:96::40';
const PORTS = [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' as const }];
const OTHER_VIP = '10.96.0.41';
const OTHER_VIP6 = 'fd00:96::41';
const OTHER = [{ name: 'http', port: 80 }];
/** Established flows per path and family, held across the kill. */
const HELD = 2;
const dualStack = (vip4: string, vip6: string) => ({ clusterIPs: [vip4, vip6], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' });
/** Service `other` in both families on one web pod. */
const otherOn = (pod: 'web-a' | 'web-b') => [
  service('other', OTHER_VIP, OTHER, dualStack(OTHER_VIP, OTHER_VIP6)),
  slice('other-1', 'other', [pod], OTHER), slice('other-6', 'other', [pod], OTHER, { family: 'IPv6' }),
];

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
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc', ipv6: true });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [
    service('web', VIP, PORTS, dualStack(VIP, VIP6)), slice('web-1', 'web', WEB_PODS, PORTS), slice('web-6', 'web', WEB_PODS, PORTS, { family: 'IPv6' }),
  ]);
  await bed.writeManifest('other.yaml', otherOn('web-a'));
  const first = bed.startAgent();
  await bed.waitForSynced();
  const before = await bed.services();
  const firstStatus = await bed.status();
  t.same(before.map((s) => s.key).sort(), [
    portKey('other', 'http'), portKey('other', 'http', 'TCP', 'IPv6'), portKey('web', 'dns', 'UDP'), portKey('web', 'dns', 'UDP', 'IPv6'),
    portKey('web', 'http'), portKey('web', 'http', 'TCP', 'IPv6'),
  ].sort(), 'six service ports programmed: every port of the two dual-stack Services in both families');
  const firstApplied = first.find(isApplied)[0];
  t.ok(firstApplied && (firstApplied.services as { added: number }).added === 6 && (firstApplied.ops as { writes: number }).writes > 0,
    'the first agent\'s first apply added the six service ports (the log line is there and counts)', { line: firstApplied });

  // Clients: one in the cgroup with the connect-time programs; one in pod client-tc, in a sibling
  // cgroup without programs (TC path on its veth). Each streams to both VIPs of the Service.
  const tcCgroup = await createCgroup(await bed.run.cgroup(), 'tc-clients');
  const ct = await TrafficClient.start(bed.run, bed.client.ns, bed.clientCgroup);
  const tc = await TrafficClient.start(bed.run, bed.tcClient.ns, tcCgroup);
  const tcp = { host: VIP, port: 80, timeoutMs: 1000 };
  const tcp6 = { host: VIP6, port: 80, timeoutMs: 1000 };
  await ct.startLoop('ct-tcp', tcp, { proto: 'tcp', workers: 2, gapMs: 5 });
  await ct.startLoop('ct-udp', { host: VIP, port: 53, timeoutMs: 1000 }, { proto: 'udp', connected: true, workers: 1, gapMs: 10 });
  await tc.startLoop('tc-tcp', tcp, { proto: 'tcp', workers: 2, gapMs: 5 });
  // IPv6 at a quarter of the IPv4 rate or less (one worker, 20 ms apart): enough to span the
  // restart, without adding much load to a shared 2-core machine (the agent's start is the window).
  await ct.startLoop('ct-tcp6', tcp6, { proto: 'tcp', workers: 1, gapMs: 20 });
  await ct.startLoop('ct-udp6', { host: VIP6, port: 53, timeoutMs: 1000 }, { proto: 'udp', connected: true, workers: 1, gapMs: 20 });
  await tc.startLoop('tc-tcp6', tcp6, { proto: 'tcp', workers: 1, gapMs: 20 });
  const loops: Promise<LoopStats>[] = [];
  const stopAll = () => {
    if (loops.length === 0) {
      loops.push(ct.stopLoop('ct-tcp'), ct.stopLoop('ct-udp'), tc.stopLoop('tc-tcp'), ct.stopLoop('ct-tcp6'), ct.stopLoop('ct-udp6'), tc.stopLoop('tc-tcp6'));
    }
    return Promise.all(loops);
  };
  t.teardown(() => stopAll().then(() => undefined, () => undefined));

  // Established TCP flows to both VIPs from one pod per path, pinged every 100 ms across the kill:
  // on the TC path their replies need the conntrack entries (sl_ct4, sl_ct6) the dead agent's
  // programs made; at connect time the socket reverse-NAT entries.
  const held: Record<string, HeldFlows> = {
    'connect-time': await startHeldFlows(bed.run, bed.client.ns, bed.clientCgroup, [VIP, VIP6], 80, HELD),
    'TC path': await startHeldFlows(bed.run, bed.tcClient.ns, tcCgroup, [VIP, VIP6], 80, HELD),
  };
  for (const [path, h] of Object.entries(held)) {
    t.same(h.ready.hosts, [...Array(HELD).fill(VIP), ...Array(HELD).fill(VIP6)], `${path}: ${HELD} TCP flows to each VIP of the Service established`, { ready: h.ready, stderr: h.stderr() });
  }

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
  const [ctTcp, ctUdp, tcTcp, ctTcp6, ctUdp6, tcTcp6] = await stopAll();
  const reports = Object.fromEntries(await Promise.all(Object.entries(held).map(async ([path, h]) => [path, await h.stop()] as const)));

  for (const [name, stats] of [
    ['connect-time TCP', ctTcp], ['connect-time connected UDP', ctUdp], ['TC path TCP', tcTcp],
    ['IPv6 connect-time TCP', ctTcp6], ['IPv6 connect-time connected UDP', ctUdp6], ['IPv6 TC path TCP', tcTcp6],
  ] as const) {
    t.equal(stats!.failures, 0, `${name}: zero failed connections across the kill and restart`, { samples: stats!.failSamples });
    t.ok(stats!.attempts >= 20, `${name}: the client really streamed (${stats!.attempts} attempts)`);
    t.same(Object.keys(stats!.backends).sort(), ['web-a', 'web-b', 'web-c'], `${name}: spread over all three backends`, { backends: stats!.backends });
  }
  for (const [path, r] of Object.entries(reports)) {
    t.same(r.failures, [], `${path}: the established IPv4 and IPv6 flows answered every ping across the kill and restart`, { report: r });
    t.equal(r.open, 2 * HELD, `${path}: all ${2 * HELD} are still open`);
    t.ok(r.rounds >= 10, `${path}: they were exercised throughout (${r.rounds} rounds)`);
    t.equal(r.answered, r.rounds * 2 * HELD, `${path}: every ping echoed by the backend the flow started on`);
    t.same(r.pods, held[path]!.ready.pods, `${path}: each flow still talks to its first backend`);
  }

  const after = await bed.services();
  t.same(ids(after), ids(before), 'the new agent re-adopted every service id and backend block (same ids, same slots)');

  // Issue 17: the same build with the same flags loads nothing: the first agent's programs,
  // pinned per generation, are taken again (no verification), and every attachment runs the
  // very programs it ran before the kill.
  const secondStatus = await bed.status();
  const objects = (s: typeof firstStatus) => Object.fromEntries((s.objects ?? []).map((o) => [o.object, o.reused]));
  t.ok(Object.keys(objects(firstStatus)).includes('tc') && Object.values(objects(firstStatus)).every((r) => !r), 'the first agent loaded every object', { objects: firstStatus.objects });
  t.same(objects(secondStatus), Object.fromEntries(Object.keys(objects(firstStatus)).map((o) => [o, true])), 'the restarted agent reused every object', { objects: secondStatus.objects });
  const progIds = (s: typeof firstStatus) => Object.fromEntries(s.programs.map((p) => [`${p.program} ${p.target} ${p.direction ?? ''}`, p.progId]));
  t.same(progIds(secondStatus), progIds(firstStatus), 'every attachment runs the same program id as before the kill');
  t.equal(second.find((l) => l.msg === 'reusing the previous start\'s programs (no load, no verification)').length, Object.keys(objects(firstStatus)).length, 'one reuse logged per object');

  const applied = await second.waitForLog(isApplied, 'its first apply');
  t.same(applied.services, { added: 0, updated: 0, removed: 0, unchanged: 6 }, 'first apply of the new agent: all six service ports unchanged');
  t.same(applied.ops, { writes: 0, deletes: 0 }, 'first apply of the new agent: zero map writes and zero deletes');
  const attached = second.find((l) => l.msg === 'connect-time programs attached')[0];
  t.ok(attached, 'the new agent logged its connect-time attachment');
  t.same(attached?.created, [], 'no cgroup link was created anew');
  t.equal((attached?.updated as unknown[] | undefined)?.length, 8, 'all eight cgroup links (both families) were updated in place');

  // And the new agent is in charge: a change made now takes effect, in both families.
  await bed.writeManifest('other.yaml', otherOn('web-b'));
  await bed.waitForBackends(portKey('other', 'http'), ['web-b'], 80);
  await bed.waitForBackends(portKey('other', 'http', 'TCP', 'IPv6'), ['web-b'], 80);
  for (const vip of [OTHER_VIP, OTHER_VIP6]) {
    for (const path of ['connect-time', 'tc'] as const) {
      const r = await bed.traffic(path, vip, 80, 2);
      t.ok(r.every((a) => a.ok && a.pod === 'web-b'), `a change after the restart is served (${vip}, ${path})`, { attempts: r });
    }
  }
  const later = second.find(isApplied).slice(1);
  t.ok(later.some((l) => (l.services as { updated: number }).updated === 2 && (l.ops as { writes: number }).writes > 0),
    'and its apply is logged with the two updated service ports (one per family) and their writes', { lines: later });

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
