// The datapath loader on the real objects: tunables and map sizes set before load, both objects on
// the same pinned maps, connect-time programs as pinned links on a TEST cgroup that a restarted
// loader updates in place, TC filters in a TEST network namespace replaced in place, and a
// cleanup that leaves nothing behind. Option validation runs without privileges.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import type { NativeAddon } from '../../src/bpf/native.js';
import { cleanupDatapath, SLUICE_TC_HANDLE, SLUICE_TC_PRIORITY } from '../../src/datapath/attach.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { openPinnedTables } from '../../src/dataplane/native-tables.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { addVethPair, ifindexIn, ipIn, netnsPath } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';

const json = (argv: string[]): unknown => JSON.parse(execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' }).trim() || '[]');

/** Programs attached to a cgroup, by bpftool (names are cut at 15 characters). */
const cgroupPrograms = (cg: string) =>
  (json(['bpftool', '-j', 'cgroup', 'show', cg]) as { id: number; attach_type: string; name: string }[]).map((p) => `${p.attach_type}:${p.name}:${p.id}`).sort();

/** What cgroupPrograms() shows for the eight connect-time programs (both families) with these ids. */
const attached = (ids: Record<string, number>) => [
  `cgroup_inet4_connect:sl_connect4:${ids.sl_connect4}`, `cgroup_inet4_getpeername:sl_getpeername4:${ids.sl_getpeername4}`,
  `cgroup_inet6_connect:sl_connect6:${ids.sl_connect6}`, `cgroup_inet6_getpeername:sl_getpeername6:${ids.sl_getpeername6}`,
  `cgroup_udp4_recvmsg:sl_recvmsg4:${ids.sl_recvmsg4}`, `cgroup_udp4_sendmsg:sl_sendmsg4:${ids.sl_sendmsg4}`,
  `cgroup_udp6_recvmsg:sl_recvmsg6:${ids.sl_recvmsg6}`, `cgroup_udp6_sendmsg:sl_sendmsg6:${ids.sl_sendmsg6}`,
];
const ALL_CONNECT = ['sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4', 'sl_connect6', 'sl_sendmsg6', 'sl_recvmsg6', 'sl_getpeername6'];

/** The .rodata variables of the object behind a program, by bpftool. */
function rodataOf(progId: number): Record<string, number> {
  const prog = json(['bpftool', '-j', 'prog', 'show', 'id', String(progId)]) as { map_ids: number[] };
  for (const id of prog.map_ids) {
    const map = json(['bpftool', '-j', 'map', 'show', 'id', String(id)]) as { name: string };
    if (!map.name.endsWith('.rodata')) continue;
    const dump = json(['bpftool', '-j', 'map', 'dump', 'id', String(id)]) as { formatted: { value: Record<string, Record<string, number>[]> } }[];
    return Object.assign({}, ...(dump[0]?.formatted.value['.rodata'] ?? []));
  }
  throw new Error(`program ${progId} has no .rodata map`);
}

t.test('bad options are refused before anything is loaded', async (t) => {
  const base = { pinDir: '/sys/fs/bpf/never-created', connectTimeLb: 'tcp' as const };
  await t.rejects(Datapath.load({ ...base, connectTimeLb: 'udp' as never }), /connectTimeLb "udp" is not 'tcp', 'tcp-udp' or 'disabled'/);
  await t.rejects(Datapath.load({ ...base, pinDir: 'relative' }), /pinDir "relative" is not an absolute path/);
  await t.rejects(Datapath.load({ ...base, ctTimeoutsSec: { udp: -1 } }), /ctTimeoutsSec\.udp -1 is not a positive number/);
  await t.rejects(Datapath.load({ ...base, maxEntries: { sl_nope: 5 } as never }), /maxEntries "sl_nope" is not one of/);
  await t.rejects(Datapath.load({ ...base, maxEntries: { sl_ct4: 0 } }), /maxEntries\.sl_ct4 0 is not a whole number/);
  await t.rejects(Datapath.load({ ...base, maxEntries: { sl_svc_meta: 1024 } }), /differs from maxEntries\.sl_svc_meta/);
  t.notOk(existsSync(base.pinDir), 'nothing created');
});

t.test('load, attach, restart, clean up', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const pinDir = join(await run.pinDir(), 'sluice');
  const cg = await createCgroup(await run.cgroup(), 'pods');
  const ns = await run.netns('tc');
  await addVethPair({ ns, name: 'vhost0', peerNs: ns, peerName: 'vpod0' });
  const ifindex = await ifindexIn(ns, 'vhost0');
  const target = { ifindex, netns: netnsPath(ns) };
  const native = loadNative();
  const opts = { pinDir, connectTimeLb: 'tcp' as const, ctTimeoutsSec: { udp: 7, tcpEstablished: 120 }, maxEntries: { sl_ct4: 4096, sl_svc_counters: 1024, sl_svc_meta: 1024 } };

  const first = await Datapath.load(opts);
  t.teardown(() => first.close());
  const ids1 = first.programIds();
  t.match(rodataOf(ids1.sl_tc_from_pod as number), { sl_ct_timeout_udp_ns: 7e9, sl_ct_timeout_tcp_established_ns: 120e9, sl_ct_timeout_tcp_fin_ns: 30e9 }, 'conntrack timeouts set before load');
  t.match(rodataOf(ids1.sl_connect4 as number), { sl_ctlb_protocols: 1 }, "'tcp' mode balances TCP only");
  t.equal(first.tables.ct.maxEntries, 4096, 'map size set before load');
  t.equal(first.tables.svcMeta.maxEntries, 1024);
  t.ok(['sl_frontends4', 'sl_backends4', 'sl_ct4', 'sl_svc_meta', 'sl_sock_udp4'].every((m) => existsSync(join(pinDir, m))), 'maps pinned by name');

  await t.test('both objects use the pinned maps', async (t) => {
    first.tables.svcMeta.set(5, { name: 'ns/a:/TCP/IPv4' });
    const pinned = openPinnedTables(native, pinDir);
    t.teardown(() => pinned.close());
    t.same(pinned.tables.svcMeta.get(5), { name: 'ns/a:/TCP/IPv4' });
    first.tables.svcMeta.delete(5);
  });

  await t.test('connect-time programs: pinned links on the test cgroup, updated in place on restart', async (t) => {
    const r1 = first.attachConnectTime(cg);
    t.same(r1, { updated: [], created: ALL_CONNECT, detached: 0 });
    t.same(cgroupPrograms(cg), attached(ids1));
    first.close(); // the agent exits: the pinned links keep the programs attached
    t.equal(cgroupPrograms(cg).length, 8, 'still attached with the agent gone');

    const second = await Datapath.load({ ...opts, connectTimeLb: 'tcp-udp' });
    t.teardown(() => second.close());
    const ids2 = second.programIds();
    t.not(ids2.sl_connect4, ids1.sl_connect4, 'freshly loaded programs');
    t.match(rodataOf(ids2.sl_connect4 as number), { sl_ctlb_protocols: 3 });
    t.same(second.attachConnectTime(cg), { updated: ALL_CONNECT, created: [], detached: 0 });
    t.same(cgroupPrograms(cg), attached(ids2), 'one attachment per hook, now the new programs');

    await t.test('TC filters at Sluice\'s handle, replaced in place', async (t) => {
      await first.attachTc(target).then(() => t.fail('a closed object cannot attach'), () => t.pass('closed object refused'));
      const got = await second.attachTc(target);
      t.same(got, { ingress: ids2.sl_tc_from_pod, egress: ids2.sl_tc_to_pod });
      const third = await Datapath.load({ ...opts, connectTimeLb: 'disabled' });
      t.teardown(() => third.close());
      const ids3 = third.programIds();
      t.equal(ids3.sl_connect4, undefined, "'disabled' loads no connect-time programs");
      t.same(await third.attachTc(target), { ingress: ids3.sl_tc_from_pod, egress: ids3.sl_tc_to_pod });
      for (const dir of ['ingress', 'egress'] as const) {
        const filters = (json(['tc', '-n', ns, '-j', 'filter', 'show', 'dev', 'vhost0', dir]) as { options?: { handle?: string } }[]).filter((f) => f.options);
        t.equal(filters.length, 1, `${dir}: exactly one filter after the re-attach`);
        t.equal(filters[0]?.options?.handle, `0x${SLUICE_TC_HANDLE.toString(16)}`);
        t.equal(await native.tcQuery({ ifindex, direction: dir, handle: SLUICE_TC_HANDLE, priority: SLUICE_TC_PRIORITY, netns: target.netns }),
          dir === 'ingress' ? ids3.sl_tc_from_pod : ids3.sl_tc_to_pod);
      }
      t.same(third.attachConnectTime(cg), { updated: [], created: [], detached: 8 }, "'disabled' removes the connect-time links");
      t.same(cgroupPrograms(cg), []);
      t.equal(await third.detachTc(target), 2);
      t.equal(await third.detachTc(target), 0, 'idempotent');
      await third.attachTc(target);
      second.attachConnectTime(cg);
    });

    await t.test('cleanup removes every link, filter and pin', async (t) => {
      second.close();
      const report = await cleanupDatapath(native, { pinDir, tc: { ifindexes: 'all', netns: target.netns } });
      t.same(report.problems, []);
      t.match(report, { linksDetached: 8, tcFiltersRemoved: 2 });
      t.ok(report.pinsRemoved >= 8, `${report.pinsRemoved} map pins removed`);
      t.same(cgroupPrograms(cg), []);
      t.same((json(['tc', '-n', ns, '-j', 'filter', 'show', 'dev', 'vhost0', 'ingress']) as unknown[]), []);
      t.notOk(existsSync(pinDir), 'pin directory gone');
      await ipIn(ns, ['link', 'show', 'vhost0']); // the interface itself is untouched
    });
  });

  await t.test('a codec that drifted from the object\'s BTF fails the load loudly', async (t) => {
    const drifted: NativeAddon = {
      ...native,
      openObject(path, o) {
        const obj = native.openObject(path, o);
        return new Proxy(obj, {
          get(target, prop) {
            if (prop === 'btfStruct') {
              return (name: string) => {
                const s = target.btfStruct(name);
                // As if sluice.h had grown a field before `count`.
                return s && name === 'sl_service_value' ? { ...s, members: s.members.map((m) => (m.name === 'count' ? { ...m, offset: 12 } : m)) } : s;
              };
            }
            const v = Reflect.get(target, prop) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
      },
    };
    const sub = join(await run.pinDir(), 'drift');
    await t.rejects(Datapath.load({ ...opts, pinDir: sub, native: drifted }), /codec sl_service_value disagrees with the BTF.*field count: C has offset 12/);
    t.same(readdirSync(sub), [], 'nothing pinned');
  });

  await t.test('a pinned map of another size is rebuilt at the new size, its entries carried (test/upgrade has the rest)', async (t) => {
    const dp = await Datapath.load(opts);
    const key = { saddr: '10.0.0.1', daddr: '10.96.0.1', sport: 40000, dport: 80, proto: 6 };
    const value = { created_ns: 1n, last_seen_ns: 2n, nat_addr: '10.0.1.1', nat_port: 8080, type: 1, state: 2, nat_saddr: '0.0.0.0', svc_id: 3, flags: 0, nat_sport: 0 };
    dp.tables.ct.set(key, value);
    dp.close();
    const bigger = await Datapath.load({ ...opts, maxEntries: { ...opts.maxEntries, sl_ct4: 8192 } });
    t.teardown(() => bigger.close());
    t.equal(bigger.tables.ct.maxEntries, 8192, 'the new map has the new size');
    t.same(bigger.tables.ct.get(key), value, 'the conntrack entry was carried over');
    t.same(bigger.upgradeReports.map((r) => [r.map, r.carried]), [['sl_ct4', 1]], 'only sl_ct4 was rebuilt');
    bigger.finishUpgrade();
    t.notOk(existsSync(join(pinDir, 'sl_ct4__upgrading')), 'the old pin is gone after finishUpgrade');
  });
});
