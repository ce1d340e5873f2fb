// The writer on REAL pinned BPF maps (created from bpf/test/dataplane_maps.bpf.c, which holds
// exactly bpf/lib/maps.h): batch semantics of the kernel tables, then apply, drop the writer and
// the object, and a new writer on the same pins re-adopts every id and writes nothing.
import { existsSync } from 'node:fs';
import t, { type Test } from 'tap';
import { verifyCodecAgainstBtf } from '../../src/bpf/codec.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import type { NativeObject } from '../../src/bpf/native.js';
import { allStructCodecs, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { dumpServices } from '../../src/dataplane/dump.js';
import { openPinnedTables, tablesFromObject } from '../../src/dataplane/native-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { backend, manyServices, svcPort } from './helpers.js';
import { BackendList } from '../../src/model/backend-list.js';

const FIXTURE = fromPackageRoot('dist', 'bpf', 'test', 'dataplane_maps.bpf.o');

async function openFixture(t: Test, pinRoot: string, max: Record<string, number> = {}): Promise<NativeObject> {
  const native = loadNative();
  const obj = native.openObject(FIXTURE, { pinRoot });
  t.teardown(() => obj.close());
  const withMax = obj as NativeObject & { setMaxEntries?: (name: string, n: number) => void };
  for (const [name, n] of Object.entries(max)) withMax.setMaxEntries?.(name, n);
  await obj.load();
  return obj;
}

t.test('the writer on real pinned maps', async (t) => {
  if (!(await requirePrivileges(t))) return;
  t.ok(existsSync(FIXTURE), `${FIXTURE} exists (npm run build:bpf)`);
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const pinDir = await run.pinDir();
  const native = loadNative();
  const cpus = native.numPossibleCpus();

  await t.test('codecs match the fixture\'s BTF', async (t) => {
    const obj = await openFixture(t, pinDir);
    for (const codec of allStructCodecs) t.doesNotThrow(() => verifyCodecAgainstBtf(codec, obj.btfStruct(codec.name)), codec.name);
  });

  await t.test('kernel tables: batches, absent deletes, arrays, per-CPU', async (t) => {
    const obj = await openFixture(t, pinDir);
    const tables = tablesFromObject(obj, cpus);
    const key = (o: number) => ({ backend_id: 4242, ordinal: o });
    const value = (o: number) => ({ addr: `10.9.0.${o}`, port: 80 + o, flags: 1, node_addr: '192.0.2.1' });
    let out = tables.backends.setMany([0, 1, 2].map((o) => [key(o), value(o)] as const));
    t.same(out, { done: 3, failures: [] });
    t.same(tables.backends.get(key(2)), value(2));
    // filterRaw: the bytes as the map holds them (port is big-endian at its codec offset).
    const portAt = allStructCodecs.find((c) => c.name === 'sl_backend_value4')?.members.find((m) => m.name === 'port')?.offset as number;
    t.same(tables.backends.filterRaw((_k, _ka, v, va) => v.readUInt16BE(va + portAt) === 81), [[key(1), value(1)]], 'filterRaw decodes exactly the matching element');
    t.same(tables.backends.filterRaw(() => false), []);
    out = tables.backends.deleteMany([key(0), key(7), key(1)]);
    t.same(out, { done: 2, failures: [] }, 'an absent key in the middle of a batch is skipped, the rest deleted');
    t.same(tables.backends.entries().filter(([k]) => k.backend_id === 4242).map(([k]) => k.ordinal), [2]);
    t.ok(tables.backends.delete(key(2)));
    t.notOk(tables.backends.delete(key(2)));

    tables.svcMeta.set(7, { name: 'ns/x:/TCP/IPv4' });
    t.same(tables.svcMeta.entries(), [[7, { name: 'ns/x:/TCP/IPv4' }]], 'empty array slots are not listed');
    t.same(tables.svcMeta.filterRaw(() => true), [[7, { name: 'ns/x:/TCP/IPv4' }]], 'nor offered to filterRaw');
    tables.svcMeta.deleteMany([7]);
    t.same(tables.svcMeta.entries(), []);
    const zero = { packets: 0n, bytes: 0n, connections: 0n, rejected: 0n };
    const perCpu = Array.from({ length: cpus }, (_, i) => ({ ...zero, packets: BigInt(i + 1) }));
    tables.counters.set(3, perCpu);
    t.same(tables.counters.get(3), perCpu, `one value per possible CPU (${cpus})`);
    tables.counters.delete(3);
    t.equal(tables.counters.get(3), undefined);
  });

  await t.test('a full map fails the elements that do not fit, by index', async (t) => {
    const sub = `${pinDir}/small`;
    await import('node:fs/promises').then((fs) => fs.mkdir(sub));
    const obj = await openFixture(t, sub, { sl_backends4: 4 });
    const tables = tablesFromObject(obj, cpus);
    t.equal(tables.backends.maxEntries, 4, 'the capacity set before load is in force');
    const out = tables.backends.setMany([0, 1, 2, 3, 4, 5].map((o) => [{ backend_id: 1, ordinal: o }, { addr: '10.0.0.1', port: 1, flags: 0, node_addr: '0.0.0.0' }] as const));
    t.equal(out.done, 4);
    t.same(out.failures.map((f) => f.index), [4, 5]);
    t.match(out.failures[0]?.error, { code: 'E2BIG' });
  });

  // A node whose cluster outgrows the maps (issue 17: 65,536 Services / 262,144 backends are the
  // default sizes): the services that fit are programmed, each one that does not gets an error
  // naming it, the map and E2BIG, nothing throws, and once there is room again all are programmed.
  await t.test('the writer on a full kernel map: clear errors, the rest programmed, recovery', async (t) => {
    const sub = `${pinDir}/full`;
    await import('node:fs/promises').then((fs) => fs.mkdir(sub));
    const obj = await openFixture(t, sub, { sl_backends4: 20 });
    const tables = tablesFromObject(obj, cpus);
    const writer = new ServiceTableWriter({ tables });
    const state = manyServices(8, 4); // 32 backend slots for 20 entries
    let res!: ReturnType<ServiceTableWriter['apply']>;
    t.doesNotThrow(() => { res = writer.apply(state); }, 'an apply into a full map does not throw');
    t.equal(res.services.added, 5, 'the five services that fit are programmed');
    t.equal(res.services.failed, 3, 'the three that do not are counted as failed');
    t.equal(res.errors.length, 3, 'one error each');
    for (const e of res.errors) t.match(e, { map: 'sl_backends4', code: 'E2BIG', message: /svc-\d+.*sl_backends4.*Argument list too long.*keeps its previous state/ }, `the error names the service and the map: ${e.message}`);
    t.equal(tables.backends.entries().length, 20, 'their backend blocks fill the map');
    t.equal(tables.frontends.entries().length, 5, 'only they have a frontend: none points at a missing block');
    // Room again (three services go): the retry programs every remaining one.
    const smaller = { services: new Map([...state.services].slice(0, 5)) };
    const retry = writer.apply(smaller);
    t.same(retry.errors, []);
    t.equal(tables.frontends.entries().length, 5);
    // A swap that ends exactly at capacity: new blocks are written before old ones go (no
    // service ever points at a missing block), so the new ones that find no room fail this time,
    // and the retry (the reconciler's next sync) finds the room the removals made.
    const more = { services: new Map([...state.services].slice(3)) };
    const swap = writer.apply(more);
    t.ok(swap.errors.every((e) => e.code === 'E2BIG'), 'only E2BIG errors');
    t.equal(writer.apply(more).errors.length, 0, 'the retry programs the rest');
    t.same(tables.frontends.entries().map(([k]) => k.addr).sort(), ['10.96.0.3', '10.96.0.4', '10.96.0.5', '10.96.0.6', '10.96.0.7'], 'the five services\' frontends');
    t.equal(tables.backends.entries().length, 20);
  });

  await t.test('apply, restart on the same pins: ids re-adopted, zero writes', async (t) => {
    const state = manyServices(1000, 3);
    const udp = svcPort({ name: 'dns', protocol: 'UDP', vip: '10.96.10.10', port: 53, backends: [backend('10.1.0.1', 53), backend('10.1.0.2', 53)] });
    state.services.set(udp.key, udp);
    let ids: ReadonlyMap<number, string>;
    {
      const obj = await openFixture(t, pinDir);
      const writer = new ServiceTableWriter({ tables: tablesFromObject(obj, cpus) });
      const res = writer.apply(state);
      t.same(res.errors, []);
      t.equal(res.services.added, 1001);
      t.comment(`first apply of 1001 services on kernel maps: ${res.durationMs.toFixed(0)} ms, ${res.ops.calls} map calls`);
      ids = writer.serviceNames();
      obj.close();
    }
    const pinned = openPinnedTables(native, pinDir);
    t.teardown(() => pinned.close());
    const writer = new ServiceTableWriter({ tables: pinned.tables });
    const res = writer.apply(state);
    t.same(res.errors, []);
    t.equal(res.services.unchanged, 1001);
    t.same(res.ops, { writes: 0, deletes: 0, calls: 0 }, 'nothing rewritten');
    t.same(writer.serviceNames(), ids, 'same svc_ids');

    // Plant a UDP flow to backend 10.1.0.1 as the TC program would, then remove that backend.
    const svcId = writer.serviceId(udp.key) as number;
    const ct = pinned.tables.ct;
    const base = { created_ns: 1n, last_seen_ns: 1n, state: 0, nat_saddr: '0.0.0.0', svc_id: svcId, flags: 0, nat_sport: 0 };
    ct.set({ saddr: '10.1.0.1', daddr: '10.0.0.5', sport: 53, dport: 40000, proto: IPPROTO.UDP }, { ...base, nat_addr: '10.96.10.10', nat_port: 53, type: 2 });
    ct.set({ saddr: '10.0.0.5', daddr: '10.96.10.10', sport: 40000, dport: 53, proto: IPPROTO.UDP }, { ...base, nat_addr: '10.1.0.1', nat_port: 53, type: 1 });
    state.services.set(udp.key, { ...udp, clusterBackends: BackendList.of([backend('10.1.0.2', 53)]) });
    const shrink = writer.apply(state);
    t.same(shrink.errors, []);
    t.match(shrink.services, { updated: 1, unchanged: 1000 });
    t.equal(shrink.flows.ctDeleted, 2, 'both conntrack entries of the removed UDP backend deleted');
    t.same(ct.entries(), []);
    const dns = dumpServices(pinned.tables).find((s) => s.key === udp.key);
    t.match(dns, { complete: true, backends: [{ addr: '10.1.0.2', port: 53, set: 'cluster' }] });

    const gone = writer.apply({ services: new Map() });
    t.equal(gone.services.removed, 1001);
    t.same([pinned.tables.frontends.entries().length, pinned.tables.backends.entries().length, pinned.tables.svcMeta.entries().length], [0, 0, 0], 'maps empty');
  });
});
