// 10,000 services × 10 backends: the apply goes through batch calls (a handful of map calls, not
// one per element), an unchanged re-apply writes nothing, and one change costs a few elements.
// Durations are printed, not asserted (bench/ records timing).
import t from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, manyServices, replayViolations, snapshot, svcPort } from './helpers.js';

const singleCalls = (tables: MemoryServiceTables) =>
  [...tables.calls].filter(([k]) => /\.(set|delete)$/.test(k)).reduce((a, [, n]) => a + n, 0);

t.test('10k × 10 cold apply uses batches', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const state = manyServices(10_000, 10);
  const res = writer.apply(state);
  t.comment(`cold apply of 10k × 10 (in-memory tables): ${res.durationMs.toFixed(0)} ms`);
  t.same(res.errors, []);
  t.equal(res.services.added, 10_000);
  t.equal(res.ops.writes, 10_000 /* names */ + 100_000 /* backends */ + 10_000 /* frontends */ + 10_000 /* ClusterIPs (sl_vips4) */);
  t.equal(res.ops.deletes, 10_000, 'counters of the new ids reset');
  t.ok(res.ops.calls <= 7, `${res.ops.calls} map calls`);
  t.equal(singleCalls(tables), 0, 'no element-by-element calls');
  t.equal(tables.calls.get('sl_backends4.setMany'), 1);
  t.equal(tables.calls.get('sl_frontends4.setMany'), 1);
  t.equal(tables.calls.get('sl_vips4.setMany'), 1, 'every ClusterIP listed in one batch');
  t.same(replayViolations({ frontends: new Map(), backends: new Map(), names: new Map() }, tables.log), []);

  tables.resetLog();
  const again = writer.apply(state);
  t.comment(`unchanged re-apply: ${again.durationMs.toFixed(0)} ms`);
  t.same(again.ops, { writes: 0, deletes: 0, calls: 0 });
  t.equal(again.services.unchanged, 10_000);

  const changed = manyServices(10_000, 10);
  const one = changed.services.get('default/svc-1234:/TCP/IPv4');
  changed.services.set('default/svc-1234:/TCP/IPv4', svcPort({ name: 'svc-1234', vip: '10.96.4.210', backends: [...(one?.clusterBackends.toArray() ?? []).slice(1), backend('10.99.0.1')] }));
  const before = snapshot(tables);
  tables.resetLog();
  const delta = writer.apply(changed);
  t.comment(`one endpoint change among 10k: ${delta.durationMs.toFixed(1)} ms`);
  t.same(delta.errors, []);
  t.match(delta.services, { updated: 1, unchanged: 9_999 });
  t.same(delta.ops, { writes: 10 + 1, deletes: 10, calls: 3 }, 'new block, one frontend, old block');
  t.same(replayViolations(before, tables.log), []);

  tables.resetLog();
  const gone = writer.apply({ services: new Map() });
  t.comment(`removing 10k services: ${gone.durationMs.toFixed(0)} ms`);
  t.equal(gone.services.removed, 10_000);
  t.same(tables.sizes(), { frontends: 0, backends: 0, ct: 0, affinity: 0, sockRevnat: 0, svcMeta: 0, counters: 0, dropCounters: 0, vips: 0 });
  t.equal(singleCalls(tables), 0, 'removal is batched too');
});
