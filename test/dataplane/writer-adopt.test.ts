// Re-adoption: a writer started on maps that already hold state (an agent restart) takes over the
// svc_ids and backend blocks it finds, writes nothing for unchanged services, repairs drift on
// resync(), and cleans up what a crashed writer left half-done.
import t from 'tap';
import type { DesiredStateSink } from '../../src/agent/reconciler.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, manyServices, replayViolations, servicesView, snapshot, svcPort } from './helpers.js';

const A = svcPort({ name: 'a', vip: '10.97.0.10', backends: [backend('10.1.0.1'), backend('10.1.0.2')], affinity: 30 });
const B = svcPort({ name: 'b', vip: '10.97.0.11', protocol: 'UDP', backends: [backend('10.2.0.1', 53)] });

t.test('a new writer on the same maps performs zero writes for unchanged state', async (t) => {
  const tables = new MemoryServiceTables();
  const state = manyServices(200, 3);
  state.services.set(A.key, A);
  state.services.set(B.key, B);
  const first = new ServiceTableWriter({ tables });
  const sink: DesiredStateSink = first; // what the reconciler writes through
  t.same((await sink.apply(state)).errors, []);
  const ids = first.serviceNames();

  tables.resetLog();
  const second = new ServiceTableWriter({ tables });
  const res = second.apply(state);
  t.same(res.errors, []);
  t.equal(res.services.unchanged, 202);
  t.same(res.ops, { writes: 0, deletes: 0, calls: 0 });
  t.equal(tables.log.length, 0, 'the log holds no mutation');
  t.same(second.serviceNames(), ids, 'every svc_id re-adopted');
});

t.test('ids and blocks written by an earlier agent are adopted; new ids never collide', async (t) => {
  const tables = new MemoryServiceTables();
  // What an earlier agent left: service a as svc_id 42 on block 1000.
  tables.svcMeta.set(42, { name: A.key });
  tables.backends.set({ backend_id: 1000, ordinal: 0 }, { addr: '10.1.0.1', port: 8080, flags: 0, node_addr: '0.0.0.0' });
  tables.backends.set({ backend_id: 1000, ordinal: 1 }, { addr: '10.1.0.2', port: 8080, flags: 0, node_addr: '0.0.0.0' });
  tables.frontends.set({ addr: '10.97.0.10', port: 80, proto: 6, scope: 0 }, { svc_id: 42, backend_id: 1000, count: 2, local_count: 0, flags: 4, affinity_timeout_s: 30 });
  tables.resetLog();

  const writer = new ServiceTableWriter({ tables });
  let res = writer.apply(desired(A, B));
  t.same(res.errors, []);
  t.match(res.services, { unchanged: 1, added: 1 });
  t.equal(writer.serviceId(A.key), 42);
  t.equal(writer.serviceId(B.key), 43, 'the next id after the highest adopted one');
  t.notOk(tables.log.some((o) => o.map === 'sl_frontends4' && (o.key as { addr: string }).addr === '10.97.0.10'), 'a not rewritten');

  const changed = svcPort({ name: 'a', vip: '10.97.0.10', backends: [backend('10.1.0.3')], affinity: 30 });
  res = writer.apply(desired(changed, B));
  const value = tables.frontends.get({ addr: '10.97.0.10', port: 80, proto: 6, scope: 0 });
  t.equal(value?.svc_id, 42, 'svc_id stays');
  t.ok((value?.backend_id ?? 0) > 1000, `fresh block id ${value?.backend_id} after the adopted 1000`);
  t.notOk(tables.backends.entries().some(([k]) => k.backend_id === 1000), 'adopted block deleted after the switch');
});

t.test('resync() repairs drift the mirror cannot see', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(A, B));
  const fe = tables.frontends.get({ addr: '10.97.0.10', port: 80, proto: 6, scope: 0 });
  // Someone else deletes a slot of a live block and a frontend.
  tables.backends.delete({ backend_id: fe?.backend_id ?? 0, ordinal: 1 });
  tables.frontends.delete({ addr: '10.97.0.11', port: 80, proto: 17, scope: 0 });

  let res = writer.apply(desired(A, B));
  t.equal(res.ops.writes, 0, 'without a resync the writer trusts its mirror');
  writer.resync();
  const before = snapshot(tables);
  tables.resetLog();
  res = writer.apply(desired(A, B));
  t.same(res.errors, []);
  t.equal(res.services.updated, 2);
  t.same(replayViolations(before, tables.log), []);
  const view = servicesView(snapshot(tables));
  t.same(view.get(A.key)?.backends, [['10.1.0.1:8080', '10.1.0.2:8080']], 'block complete again (fresh)');
  t.same(view.get(B.key)?.backends, [['10.2.0.1:53']], 'frontend back');
});

t.test('a service a crashed writer left half-switched is made whole', async (t) => {
  const tables = new MemoryServiceTables();
  const two = svcPort({
    name: 'a', backends: [backend('10.1.0.1'), backend('10.1.0.2')],
    frontends: [{ kind: 'ClusterIP', ip: '10.97.0.10', port: 80 }, { kind: 'ExternalIP', ip: '192.0.2.10', port: 80 }],
  });
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(two));
  // The crash: block 500 written, only the first frontend switched to it.
  const [first] = tables.frontends.entries();
  tables.backends.set({ backend_id: 500, ordinal: 0 }, { addr: '10.1.0.9', port: 8080, flags: 0, node_addr: '0.0.0.0' });
  tables.frontends.set(first?.[0] ?? { addr: '', port: 0, proto: 0, scope: 0 }, { ...(first?.[1] ?? { svc_id: 0, flags: 0, affinity_timeout_s: 0 }), backend_id: 500, count: 1, local_count: 0 });
  // A stray block nobody references and a frontend of an unnamed svc_id.
  tables.backends.set({ backend_id: 777, ordinal: 0 }, { addr: '10.9.9.9', port: 1, flags: 0, node_addr: '0.0.0.0' });
  tables.frontends.set({ addr: '10.96.9.9', port: 9, proto: 6, scope: 0 }, { svc_id: 999, backend_id: 777, count: 1, local_count: 0, flags: 0, affinity_timeout_s: 0 });

  const restarted = new ServiceTableWriter({ tables });
  const before = snapshot(tables);
  tables.resetLog();
  const res = restarted.apply(desired(two));
  t.same(res.errors, []);
  t.same(replayViolations(before, tables.log), []);
  const values = tables.frontends.entries().map(([, v]) => v);
  t.equal(values.length, 2, 'the unnamed svc_id frontend is gone');
  t.equal(new Set(values.map((v) => v.backend_id)).size, 1, 'both frontends share one block again');
  t.same(servicesView(snapshot(tables)).get(two.key)?.backends, [['10.1.0.1:8080', '10.1.0.2:8080'], ['10.1.0.1:8080', '10.1.0.2:8080']]);
  t.equal(tables.backends.size, 2, 'only the live block remains (500, 777 and the old block are gone)');
});

t.test('preload reads the maps once, before the first apply, which then reads nothing', async (t) => {
  const tables = new MemoryServiceTables();
  const state = desired(A, B);
  new ServiceTableWriter({ tables }).apply(state);
  const reads = { frontends: 0, svcMeta: 0 };
  const entries = { frontends: tables.frontends.entries.bind(tables.frontends), svcMeta: tables.svcMeta.entries.bind(tables.svcMeta) };
  tables.frontends.entries = () => (reads.frontends++, entries.frontends());
  tables.svcMeta.entries = () => (reads.svcMeta++, entries.svcMeta());
  const writer = new ServiceTableWriter({ tables });
  writer.preload();
  t.same(reads, { frontends: 1, svcMeta: 1 }, 'preload read the maps');
  writer.preload();
  t.same(reads, { frontends: 1, svcMeta: 1 }, 'a second preload reads nothing again');
  tables.resetLog();
  const res = writer.apply(state);
  t.same(reads, { frontends: 1, svcMeta: 1 }, 'the first apply used what preload read');
  t.same(res.ops, { writes: 0, deletes: 0, calls: 0 }, 'and re-adopted everything');
  writer.resync();
  t.same(reads, { frontends: 2, svcMeta: 2 }, 'resync still re-reads');
});
