// Map migration on the real objects and kernel maps (no traffic: upgrade.test.ts has that): the
// regular build, then the SL_UPGRADE_TEST_LAYOUT build (sl_ct_value4 one member longer) over the
// same pins, then back. Only the map whose layout changed is rebuilt; every element of it is
// carried over member by member; what the old programs add before the switch is picked up by the
// last pass without overwriting; a failed load puts the old pins back; an interrupted upgrade is
// resumed by the next start.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadNative, fromPackageRoot } from '../../src/bpf/native.js';
import { ctKey4, ctValue4 } from '../../src/bpf/sluice-structs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { ASIDE_SUFFIX } from '../../src/datapath/map-migration.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { withUnknownHelper } from '../helpers/broken-object.js';

const REGULAR = fromPackageRoot('dist', 'bpf');
const NEWER = fromPackageRoot('dist', 'bpf', 'upgrade-test');

const ct = (n: number) => ({
  key: { saddr: `10.0.0.${n}`, daddr: '10.96.0.1', sport: 40000 + n, dport: 80, proto: 6 },
  value: { created_ns: BigInt(n), last_seen_ns: BigInt(n * 10), nat_addr: '10.0.1.1', nat_port: 8080, type: 1, state: 2, nat_saddr: '0.0.0.0', svc_id: 3, flags: 0, nat_sport: 0 },
});

t.test('upgrade to another conntrack layout and back', async (t) => {
  if (!(await requirePrivileges(t))) return;
  t.ok(existsSync(join(NEWER, 'tc.bpf.o')), 'the upgrade-test objects are built (bpf/Makefile)');
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const native = loadNative();
  const pinDir = join(await run.pinDir(), 'sluice');
  const opts = { pinDir, connectTimeLb: 'tcp' as const, maxEntries: { sl_ct4: 4096, sl_svc_counters: 1024, sl_svc_meta: 1024 } };
  const pinnedId = (name: string) => {
    const m = native.openPinnedMap(join(pinDir, name));
    try {
      return { id: m.info.id, valueSize: m.info.valueSize, maxEntries: m.info.maxEntries };
    } finally {
      m.close();
    }
  };

  const old = await Datapath.load({ ...opts, objectDir: REGULAR });
  for (let n = 1; n <= 50; n++) old.tables.ct.set(ct(n).key, ct(n).value);
  old.tables.svcMeta.set(3, { name: 'ns/web:http/TCP/IPv4' });
  old.tables.affinity.set({ svc_id: 3, client_addr: '10.0.0.1' }, { last_used_ns: 5n, backend_addr: '10.0.1.1', backend_port: 8080 });
  const before = { ct: pinnedId('sl_ct4'), meta: pinnedId('sl_svc_meta'), affinity: pinnedId('sl_affinity4') };
  t.equal(before.ct.valueSize, 40, 'the regular build: 40-byte conntrack values');
  old.close();

  await t.test('a load that fails after setting the pins aside puts them back', async (t) => {
    // tc.bpf.o of the newer build as a kernel would reject it (a helper no kernel has): its load
    // fails after the pins were set aside.
    const half = mkdtempSync(join(tmpdir(), 'sluice-upgrade-half-'));
    t.teardown(() => rmSync(half, { recursive: true, force: true }));
    writeFileSync(join(half, 'tc.bpf.o'), withUnknownHelper(readFileSync(join(NEWER, 'tc.bpf.o'))));
    await t.rejects(Datapath.load({ ...opts, objectDir: half }), /tc\.bpf\.o/);
    t.same(pinnedId('sl_ct4'), before.ct, 'sl_ct4 is the old map again (same id, old layout)');
    t.notOk(existsSync(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'no aside pin left');
  });

  const newer = await Datapath.load({ ...opts, objectDir: NEWER });
  t.same(newer.upgradeReports.map((r) => r.map), ['sl_ct4'], 'only the map whose layout changed is rebuilt');
  const report = newer.upgradeReports[0]!;
  t.match(report, { carried: 50, notCarried: 0, addedMembers: ['upgrade_test'], droppedMembers: [] }, 'all 50 entries carried, one member added');
  t.match(report.reasons.join(' '), /valueSize 40 -> 48.*upgrade_test@40:8/, 'the reasons name the size and the member');
  const after = pinnedId('sl_ct4');
  t.not(after.id, before.ct.id, 'a new sl_ct4 is pinned under the old name');
  t.equal(after.valueSize, 48);
  t.same(pinnedId('sl_svc_meta'), before.meta, 'sl_svc_meta reused in place (same layout)');
  t.same(pinnedId('sl_affinity4'), before.affinity, 'sl_affinity4 reused in place');
  t.ok(existsSync(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'the old map stays pinned aside until finishUpgrade');
  t.same(newer.tables.ct.get(ct(7).key), ct(7).value, 'the agent\'s codec follows the new layout: entries read back unchanged');
  t.equal(newer.tables.ct.entries().length, 50, 'and a full dump has the 50 (the element stride is the new size)');
  t.same(newer.tables.svcMeta.get(3), { name: 'ns/web:http/TCP/IPv4' }, 'the service name map kept its entry');

  // The old programs still run until the switch: an entry they create meanwhile, and one they
  // refresh (already carried), land in the old map.
  const oldMap = native.openPinnedMap(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX));
  oldMap.update(ctKey4.encode(ct(51).key), ctValue4.encode(ct(51).value));
  oldMap.update(ctKey4.encode(ct(1).key), ctValue4.encode({ ...ct(1).value, last_seen_ns: 1n }));
  oldMap.close();
  newer.tables.ct.set(ct(2).key, { ...ct(2).value, state: 3 }); // a new program's update
  const lastPass = newer.finishUpgrade();
  t.match(lastPass, [{ map: 'sl_ct4', carried: 1 }], 'the last pass carried the one entry the new map lacked');
  t.same(newer.tables.ct.get(ct(51).key), ct(51).value, 'the entry made during the switch is there');
  t.equal(newer.tables.ct.get(ct(2).key)?.state, 3, 'an entry the new programs updated was not overwritten');
  t.notOk(existsSync(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'the old pin is gone');
  // A value the newer build's member holds, to see it dropped on the way back.
  const raw = native.openPinnedMap(join(pinDir, 'sl_ct4'));
  const k = ctKey4.encode(ct(3).key);
  const v = raw.lookup(k)!;
  t.equal(v.readBigUInt64LE(40), 0n, 'the added member starts as zero');
  v.writeBigUInt64LE(99n, 40);
  raw.update(k, v);
  raw.close();
  newer.close();

  await t.test('an interrupted upgrade is resumed by the next start, never overwriting', async (t) => {
    const back = await Datapath.load({ ...opts, objectDir: REGULAR });
    t.match(back.upgradeReports, [{ map: 'sl_ct4', carried: 51, droppedMembers: ['upgrade_test'] }], 'rollback: sl_ct4 rebuilt in the older layout, the newer member dropped');
    t.same(back.tables.ct.get(ct(3).key), ct(3).value, 'the rest of the entry is kept');
    back.tables.ct.set(ct(4).key, { ...ct(4).value, state: 4 });
    back.close(); // dies before finishing: the aside pin stays
    t.ok(existsSync(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'aside pin left by the interrupted agent');
    const again = await Datapath.load({ ...opts, objectDir: REGULAR });
    t.teardown(() => again.close());
    t.match(again.upgradeReports, [{ map: 'sl_ct4', reasons: ['resumed after an interrupted upgrade'], carried: 0 }], 'resumed: nothing to add');
    t.equal(again.tables.ct.get(ct(4).key)?.state, 4, 'what the interrupted agent\'s map holds is kept');
    again.finishUpgrade();
    t.notOk(existsSync(join(pinDir, 'sl_ct4' + ASIDE_SUFFIX)), 'finished: aside pin gone');
    t.equal(pinnedId('sl_ct4').valueSize, 40);
  });

  await t.test('a resize takes the same path; a shrink that would drop a programmed entry is refused, nothing moved', async (t) => {
    const small = { ...opts, objectDir: REGULAR, maxEntries: { ...opts.maxEntries, sl_svc_meta: 2, sl_svc_counters: 2 } };
    const before = pinnedId('sl_svc_meta');
    await t.rejects(Datapath.load(small), {
      name: 'MapShrinkError', map: 'sl_svc_meta', pinnedSize: 1024, askedSize: 2, needed: 4,
      message: /^--map-size-service-ids 2: the pinned sl_svc_meta \(size 1024\) uses 1 slot\(s\) at index 2 or above \(the highest 3\).*refused, nothing changed/,
    }, 'svc_id 3 does not fit a 2-slot array: refused');
    t.same(pinnedId('sl_svc_meta'), before, 'the pinned map is the same one, at its old size');
    t.notOk(existsSync(join(pinDir, 'sl_svc_meta' + ASIDE_SUFFIX)), 'no aside pin left');
    // Once the service went, the same shrink goes through: the counters' stale slot 3 (none here)
    // would be the only thing dropped.
    const dp = await Datapath.load({ ...opts, objectDir: REGULAR });
    dp.tables.svcMeta.delete(3);
    dp.close();
    const shrunk = await Datapath.load(small);
    t.teardown(() => shrunk.close());
    t.equal(shrunk.tables.svcMeta.maxEntries, 2);
    t.match(shrunk.upgradeReports.find((r) => r.map === 'sl_svc_meta'), { carried: 0, notCarried: 0, reasons: ['maxEntries 1024 -> 2'] });
    shrunk.finishUpgrade();
  });
});

// host.bpf.o's IPv6 programs are reached through the pinned program array sl_host6_progs. The
// SL_UPGRADE_TEST_LAYOUT build has one slot more: the pin is set aside like any map of another
// size, but nothing is carried (the old slots hold the previous build's programs, which only those
// programs call); the new object filled its own array at load.
t.test('upgrade to a program array of another size: set aside, filled by the new object, not carried', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const native = loadNative();
  const pinDir = join(await run.pinDir(), 'sluice');
  const opts = { pinDir, connectTimeLb: 'tcp' as const, hostPrograms: true, maxEntries: { sl_ct4: 4096, sl_svc_counters: 1024, sl_svc_meta: 1024 } };
  const slots = (path: string) => {
    const m = native.openPinnedMap(path);
    try {
      const ids: number[] = [];
      for (let slot = 0; slot < m.info.maxEntries; slot++) {
        const k = Buffer.alloc(4);
        k.writeUInt32LE(slot);
        ids.push(m.lookup(k)?.readUInt32LE(0) ?? 0); // a program array answers the program's id
      }
      return { id: m.info.id, ids };
    } finally {
      m.close();
    }
  };
  const pin = join(pinDir, 'sl_host6_progs');

  const old = await Datapath.load({ ...opts, objectDir: REGULAR });
  old.close();
  const before = slots(pin);
  t.equal(before.ids.length, 4, 'the regular build: 4 slots');
  t.ok(before.ids.every((id) => id > 0), 'all filled, and kept after the loader closed');

  const newer = await Datapath.load({ ...opts, objectDir: NEWER });
  t.teardown(() => newer.close());
  const report = newer.upgradeReports.find((r) => r.map === 'sl_host6_progs');
  t.match(report, { carried: 0, notCarried: 0, reasons: ['maxEntries 4 -> 5'] }, 'set aside for its size, nothing carried');
  t.notOk(report?.untranslatable, 'and not reported as untranslatable');
  const after = slots(pin);
  t.not(after.id, before.id, 'a new array is pinned under the old name');
  t.equal(after.ids.length, 5);
  t.ok(after.ids.slice(0, 4).every((id) => id > 0 && !before.ids.includes(id)), 'its slots hold the new build\'s programs');
  t.same(slots(pin + ASIDE_SUFFIX), before, 'the old array keeps the old programs until the upgrade finishes');
  newer.finishUpgrade();
  t.notOk(existsSync(pin + ASIDE_SUFFIX), 'finished: aside pin gone');
});
