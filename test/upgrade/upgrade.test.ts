// Issue 13 §7, end to end: a rolling update to a build whose conntrack struct differs (the
// SL_UPGRADE_TEST_LAYOUT objects: sl_ct_value4 one member longer), on a node that keeps serving.
// The old agent runs with traffic; it gets SIGTERM as a DaemonSet update sends it; the new agent
// starts with the other objects, finds sl_ct4 pinned in the old layout, builds the new map beside
// it, carries every entry over, switches the programs (cgroup links updated in place, TC filters
// replaced) and removes the old pin. Steady clients on both paths see no failed connection, and
// TCP flows established through the TC path before the update keep working after it: their
// conntrack entries were carried over (without them the replies would not be reverse-translated).
// In dual stack (issue 16): the Service and the pods have both families; IPv6 new connections on
// both paths and IPv6 flows held through the TC path (sl_ct6 keeps its layout: the new programs
// use the pinned map as it is) come through the update as the IPv4 ones do.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ServiceView } from '../../src/admin/types.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { ASIDE_SUFFIX } from '../../src/datapath/map-migration.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { TrafficClient } from '../traffic/traffic-client.js';
import type { LoopStats } from '../traffic/traffic-client.js';
import { createAgentBed, nodeObject, service, slice, WEB_PODS } from '../e2e/agent-bed.js';
import type { LogLine } from '../e2e/agent-bed.js';
import { startHeldFlows } from './held-flows.js';

const NEWER = fromPackageRoot('dist', 'bpf', 'upgrade-test');
const VIP = '10.96.0.50';
const VIP6 = 'fd00:96::50';
const PORTS = [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' as const }];
/** Held flows per family; FLOWS in all. */
const PER_FAMILY = 3;
const FLOWS = 2 * PER_FAMILY;

const ids = (svcs: ServiceView[]) => Object.fromEntries(svcs.map((s) => [s.key, { svcId: s.svcId, backendId: s.backendId, backends: s.backends }]));
const isApplied = (l: LogLine) => l.msg === 'applied' && l.component === 'reconciler';
const isFinished = (l: LogLine) => l.msg === 'upgrade: programs switched to the new maps, old map pins removed';

t.test('rolling update to another conntrack layout keeps the node serving', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc', ipv6: true });
  if (!bed) return;
  t.ok(existsSync(join(NEWER, 'tc.bpf.o')), 'the upgrade-test objects are built (bpf/Makefile)');
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [
    service('web', VIP, PORTS, { clusterIPs: [VIP, VIP6], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }),
    slice('web-1', 'web', WEB_PODS, PORTS), slice('web-6', 'web', WEB_PODS, PORTS, { family: 'IPv6' }),
  ]);
  const first = bed.startAgent();
  await bed.waitForSynced(120_000); // as generous as for the second start below
  const before = await bed.services();
  const pinned = (name: string) => {
    const m = loadNative().openPinnedMap(join(bed.pinDir, name));
    try {
      return m.info;
    } finally {
      m.close();
    }
  };
  t.equal(pinned('sl_ct4').valueSize, 40, 'the old agent pinned sl_ct4 with 40-byte values');

  // TCP flows through the TC path to both VIPs from one pod, established before the update and
  // held open across it.
  const tcCgroup = await createCgroup(await bed.run.cgroup(), 'tc-clients');
  const held = await startHeldFlows(bed.run, bed.tcClient.ns, tcCgroup, [VIP, VIP6], 80, PER_FAMILY);
  const ready = held.ready;
  t.ok(ready.ready, `${FLOWS} TCP flows established through the TC path, ${PER_FAMILY} to each VIP`, { ready, stderr: held.stderr() });

  // Steady clients making new connections: connect-time (TCP, connected UDP) and TC path (TCP).
  const ct = await TrafficClient.start(bed.run, bed.client.ns, bed.clientCgroup);
  const tc = await TrafficClient.start(bed.run, bed.tcClient.ns, tcCgroup);
  await ct.startLoop('ct-tcp', { host: VIP, port: 80, timeoutMs: 1000 }, { proto: 'tcp', workers: 2, gapMs: 5 });
  await ct.startLoop('ct-udp', { host: VIP, port: 53, timeoutMs: 1000 }, { proto: 'udp', connected: true, workers: 1, gapMs: 10 });
  // The TC-path client has the same 1 s connect timeout: a connection opened by an old program in
  // the instant its interface switches is carried by the upgrade hand-off (handoff.ts), not by a
  // SYN retransmit.
  await tc.startLoop('tc-tcp', { host: VIP, port: 80, timeoutMs: 1000 }, { proto: 'tcp', workers: 2, gapMs: 5 });
  // IPv6 on both paths, one worker each, 20 ms apart (the machine is shared).
  await ct.startLoop('ct-tcp6', { host: VIP6, port: 80, timeoutMs: 1000 }, { proto: 'tcp', workers: 1, gapMs: 20 });
  await tc.startLoop('tc-tcp6', { host: VIP6, port: 80, timeoutMs: 1000 }, { proto: 'tcp', workers: 1, gapMs: 20 });
  const loops: Promise<LoopStats>[] = [];
  const stopAll = () => {
    if (loops.length === 0) loops.push(ct.stopLoop('ct-tcp'), ct.stopLoop('ct-udp'), tc.stopLoop('tc-tcp'), ct.stopLoop('ct-tcp6'), tc.stopLoop('tc-tcp6'));
    return Promise.all(loops);
  };
  t.teardown(() => stopAll().then(() => undefined, () => undefined));
  const traffic = (ms: number) => new Promise((r) => setTimeout(r, ms)); // a window of traffic, not an assertion
  await traffic(400);

  // The update: SIGTERM to the old agent, the new build starts on the same pins.
  const stopped = await first.kill('SIGTERM');
  t.equal(stopped.code, 0, 'the old agent exited cleanly on SIGTERM', { tail: first.tail() });
  await traffic(200);
  const second = bed.startAgent(['--bpf-dir', NEWER]);
  // Generous: loading the objects and carrying the maps over is slow on a loaded 2-core machine.
  await bed.waitForSynced(120_000);
  const finished = await second.waitForLog(isFinished, 'the end of the upgrade', 60_000);
  await traffic(600);
  const [ctTcp, ctUdp, tcTcp, ctTcp6, tcTcp6] = await stopAll();
  const flows = await held.stop();

  for (const [name, stats] of [
    ['connect-time TCP', ctTcp], ['connect-time connected UDP', ctUdp], ['TC path TCP', tcTcp], ['IPv6 connect-time TCP', ctTcp6], ['IPv6 TC path TCP', tcTcp6],
  ] as const) {
    t.equal(stats!.failures, 0, `${name}: zero failed new connections across the update`, { samples: stats!.failSamples });
    t.ok(stats!.attempts >= 20, `${name}: the client really streamed (${stats!.attempts} attempts)`);
    t.same(Object.keys(stats!.backends).sort(), ['web-a', 'web-b', 'web-c'], `${name}: spread over all three backends`);
  }
  t.same(flows.failures, [], 'the established TC-path flows of both families answered every round across the update', { flows });
  t.equal(flows.open, FLOWS, `all ${FLOWS} are still open`);
  t.ok(flows.rounds >= 10, `they were exercised throughout (${flows.rounds} rounds of ${FLOWS})`);
  t.equal(flows.answered, flows.rounds * FLOWS, 'every ping echoed by the backend the flow started on');
  t.same(flows.pods, ready.pods, 'each flow still talks to its first backend');

  const carried = (finished.carried as Array<{ map: string; carried: number; addedMembers: string[] }>);
  // sl_host6_progs: the upgrade-test build's program array has one slot more (set aside, not
  // carried: the new object fills its own; migration.test.ts).
  t.same(carried.map((r) => r.map).sort(), ['sl_ct4', 'sl_host6_progs'], 'only sl_ct4 changed layout (and the program array its size) and was rebuilt');
  t.match(carried.find((r) => r.map === 'sl_host6_progs'), { carried: 0 }, 'the program array: nothing carried');
  const ct4 = carried.find((r) => r.map === 'sl_ct4');
  t.ok((ct4?.carried ?? 0) >= PER_FAMILY * 2, `its entries were carried over (${ct4?.carried}: at least the held IPv4 flows, both directions)`);
  t.same(ct4?.addedMembers, ['upgrade_test'], 'with the new member added');
  t.equal(pinned('sl_ct4').valueSize, 48, 'sl_ct4 is pinned in the new layout');
  t.notOk(existsSync(join(bed.pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'the old map\'s pin was removed');
  const follow = second.find((l) => /following its BTF/.test(String(l.msg)))[0];
  t.match(follow, { structs: ['sl_ct_value4'], unknownMembers: { sl_ct_value4: ['upgrade_test'] } }, 'the new agent\'s codecs follow the object\'s BTF');

  t.same(ids(await bed.services()), ids(before), 'service ids and backend blocks re-adopted unchanged');
  const applied = await second.waitForLog(isApplied, 'its first apply');
  t.same(applied.ops, { writes: 0, deletes: 0 }, 'the new agent\'s first apply over unchanged state writes nothing');
  const handoffs = second.find((l) => /go to the previous one/.test(String(l.msg)));
  t.same(handoffs.map((l) => l.direction).sort(), ['egress', 'ingress'], 'the TC switch handed packets it could not place to the previous programs until the last copy');
  const attached = second.find((l) => l.msg === 'connect-time programs attached')[0];
  t.equal((attached?.updated as unknown[] | undefined)?.length, 8, 'the eight cgroup links (both families) were updated in place');
  const conntrack = await bed.ctl<{ entries?: unknown[] }>(['conntrack']).catch((err: Error) => ({ error: err.message }));
  t.ok(conntrack, 'sluicectl conntrack answers over the new layout', { conntrack });
  await second.kill('SIGTERM');
});
