// A restart of the same build with the same flags takes the previous start's programs instead of
// loading (and verifying) them again (issue 17, src/datapath/program-reuse.ts): same program ids,
// nothing loaded, attachments unchanged. A changed tunable loads what it changes; a re-created
// pinned map, or a program array refilled by another generation, refuses reuse; cleanup leaves
// no program pins. All four objects, on a TEST cgroup and a veth in a TEST network namespace.
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openBpfObject } from '../../src/bpf/loader.js';
import { loadNative } from '../../src/bpf/native.js';
import { cleanupDatapath } from '../../src/datapath/attach.js';
import { Datapath } from '../../src/datapath/datapath.js';
import type { DatapathOptions } from '../../src/datapath/datapath.js';
import { PROGS_DIR } from '../../src/datapath/program-reuse.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { addVethPair, ifindexIn, netnsPath } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { HOST_OBJECT, TC_OBJECT } from './harness.js';

const OBJECTS = ['connect', 'host', 'sockdestroy', 'tc'];
const reusedOf = (dp: Datapath) => Object.fromEntries(dp.programStarts.map((s) => [s.object, s.reused]));
const reasonOf = (dp: Datapath, object: string) => dp.programStarts.find((s) => s.object === object)?.notReused ?? '';
const only = (ids: Record<string, number>, prefix: string) => Object.fromEntries(Object.entries(ids).filter(([name]) => name.startsWith(prefix)));

t.test('restart with the same build: programs reused; otherwise loaded', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const native = loadNative();
  const pinDir = join(await run.pinDir(), 'sluice');
  const cg = await createCgroup(await run.cgroup(), 'pods');
  const ns = await run.netns('tc');
  await addVethPair({ ns, name: 'vhost0', peerNs: ns, peerName: 'vpod0' });
  const target = { ifindex: await ifindexIn(ns, 'vhost0'), netns: netnsPath(ns) };
  const opts: DatapathOptions = {
    pinDir, connectTimeLb: 'tcp-udp', hostPrograms: true, udpSocketSweep: { namespaces: () => [] },
    maxEntries: { sl_ct4: 4096, sl_svc_counters: 1024, sl_svc_meta: 1024 },
  };
  const generations = () => readdirSync(join(pinDir, PROGS_DIR)).map((d) => d.replace(/-[0-9a-f]{16}$/, '')).sort();

  const first = await Datapath.load(opts);
  const ids1 = first.programIds();
  t.same(reusedOf(first), { tc: false, host: false, connect: false, sockdestroy: false }, 'first start: every object loaded');
  t.match(reasonOf(first, 'tc'), /no programs pinned/);
  t.same(generations(), OBJECTS, 'one generation of program pins per object');
  t.same(first.attachConnectTime(cg).created.length, 8);
  t.same(await first.attachTc(target), { ingress: ids1.sl_tc_from_pod, egress: ids1.sl_tc_to_pod });
  first.close();

  const second = await Datapath.load(opts);
  t.teardown(() => second.close());
  t.same(reusedOf(second), { tc: true, host: true, connect: true, sockdestroy: true }, 'same build, same flags: every object reused');
  t.same(second.programIds(), ids1, 'the very same programs (ids unchanged): nothing was loaded');
  t.same(second.attachConnectTime(cg), { updated: ['sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4', 'sl_connect6', 'sl_sendmsg6', 'sl_recvmsg6', 'sl_getpeername6'], created: [], detached: 0 },
    'cgroup links updated in place (to the same programs)');
  t.same(await second.attachTc(target), { ingress: ids1.sl_tc_from_pod, egress: ids1.sl_tc_to_pod }, 'TC filters run the same programs');
  t.ok(second.udpSocketSweeper?.available, 'the reused socket iterator is usable');
  t.same(second.udpSocketSweeper?.sweep().failed, [], 'and runs');
  second.tables.svcMeta.set(7, { name: 'ns/a:/TCP/IPv4' });
  t.same(second.tables.svcMeta.get(7), { name: 'ns/a:/TCP/IPv4' }, 'tables work through the reused object\'s maps');
  second.tables.svcMeta.delete(7);

  await t.test('a changed tunable loads the objects it changes, and the old generation\'s pins go', async (t) => {
    second.close();
    const third = await Datapath.load({ ...opts, ctTimeoutsSec: { udp: 7 } });
    t.teardown(() => third.close());
    t.same(reusedOf(third), { tc: false, host: false, connect: true, sockdestroy: true }, 'the conntrack timeouts are tc\'s and host\'s rodata only');
    t.match(reasonOf(third, 'tc'), /no programs pinned for this build and configuration/);
    const ids3 = third.programIds();
    t.not(ids3.sl_tc_from_pod, ids1.sl_tc_from_pod, 'new TC programs');
    t.not(ids3.sl_host_ingress, ids1.sl_host_ingress, 'new host programs');
    t.same(only(ids3, 'sl_connect'), only(ids1, 'sl_connect'), 'connect-time programs reused');
    t.same(generations(), OBJECTS, 'still one generation per object: the replaced ones were removed');
    await third.attachTc(target);
    third.attachConnectTime(cg);
  });

  await t.test('a program array refilled by another generation refuses reuse of the host object', async (t) => {
    // Another build's host.bpf.o loaded over the same pins (e.g. an agent that failed before it
    // removed the older generation): sl_host6_progs now holds its programs.
    const other = await openBpfObject(HOST_OBJECT, { pinRoot: pinDir, maxEntries: opts.maxEntries as Record<string, number>, rodata: { sl_tunnel_mtu: 1400 } });
    other.close();
    const dp = await Datapath.load({ ...opts, ctTimeoutsSec: { udp: 7 } });
    t.teardown(() => dp.close());
    t.same(reusedOf(dp), { tc: true, host: false, connect: true, sockdestroy: true });
    t.match(reasonOf(dp, 'host'), /sl_host6_progs slot 0 holds program \d+, of another generation/);
  });

  await t.test('a re-created pinned map refuses reuse of every object using it', async (t) => {
    // sl_vips4 replaced by a fresh map of the same definition (as a migration or a manual
    // removal leaves it): a scratch load creates one, and its pin takes sl_vips4's place.
    const scratch = join(await run.pinDir(), 'scratch');
    const obj = await openBpfObject(TC_OBJECT, { pinRoot: scratch, maxEntries: opts.maxEntries as Record<string, number>, rodata: { sl_ct_timeout_udp_ns: 7_000_000_000n } });
    const fresh = native.openPinnedMap(join(scratch, 'sl_vips4'));
    obj.close();
    unlinkSync(join(pinDir, 'sl_vips4'));
    fresh.pin(join(pinDir, 'sl_vips4'));
    fresh.close();
    const dp = await Datapath.load({ ...opts, ctTimeoutsSec: { udp: 7 } });
    t.teardown(() => dp.close());
    t.equal(reusedOf(dp).tc, false, 'tc loaded');
    t.match(reasonOf(dp, 'tc'), /map sl_vips4 was re-created: the programs use map id \d+, the pin holds id \d+/);
    t.match(reasonOf(dp, 'connect'), /sl_vips4 was re-created/, 'connect.bpf.o uses it too');
  });

  await t.test('a pin of a map removed by hand refuses reuse', async (t) => {
    unlinkSync(join(pinDir, 'sl_svc_meta'));
    const dp = await Datapath.load({ ...opts, ctTimeoutsSec: { udp: 7 } });
    t.teardown(() => dp.close());
    t.equal(reusedOf(dp).tc, false);
    t.match(reasonOf(dp, 'tc'), /map sl_svc_meta is not pinned/);
  });

  await t.test('a changed map size loads anew', async (t) => {
    const dp = await Datapath.load({ ...opts, ctTimeoutsSec: { udp: 7 }, maxEntries: { ...opts.maxEntries, sl_ct4: 8192 } });
    t.teardown(() => dp.close());
    t.same(reusedOf(dp), { tc: false, host: false, connect: false, sockdestroy: false });
    t.match(reasonOf(dp, 'tc'), /upgrade over migrated maps|no programs pinned/);
    dp.finishUpgrade();
  });

  await t.test('cleanup removes every program pin', async (t) => {
    const report = await cleanupDatapath(native, { pinDir, tc: { ifindexes: 'all', netns: target.netns } });
    t.same(report.problems, []);
    t.ok(report.programPinsRemoved >= 4 + 2 + 8 + 1, `${report.programPinsRemoved} program pins removed`);
    t.notOk(existsSync(join(pinDir, PROGS_DIR)), 'no progs directory');
    t.notOk(existsSync(pinDir), 'pin directory gone');
  });
});
