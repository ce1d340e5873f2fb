// A full map (E2BIG from a hash map, no free svc_id): the Service ports that do not fit get an
// error naming them, the map, its capacity and the flag that sizes it; every other port is
// programmed; a port that was programmed keeps what it had; a later apply programs the left-out
// ports once there is room. In memory (memory-tables.ts answers a full hash map as the kernel
// does, E2BIG); test/dataplane/native-tables.test.ts and test/e2e/map-size.test.ts do it on
// kernel maps.
import t from 'tap';
import { MaglevWriter } from '../../src/dataplane/maglev-writer.js';
import { MemoryServiceTables, MemoryTable } from '../../src/dataplane/memory-tables.js';
import { maglevTableSpec } from '../../src/dataplane/table-specs.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, manyServices, replayViolations, servicesView, snapshot, svcPort } from './helpers.js';

const keyOf = (i: number) => `default/svc-${i}:/TCP/IPv4`;

t.test('frontends full: the error names the port, the map, its capacity and the flag; the rest is programmed', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { frontends: 8 } });
  const writer = new ServiceTableWriter({ tables });
  const state = manyServices(10, 2);
  const res = writer.apply(state);
  t.equal(res.services.added, 8, 'eight ports fit');
  t.equal(res.services.failed, 2);
  t.equal(tables.frontends.size, 8);
  t.same(res.errors.map((e) => e.key).sort(), [keyOf(8), keyOf(9)], 'the two last ones do not (one frontend each)');
  for (const e of res.errors) {
    t.match(e, { map: 'sl_frontends4', code: 'E2BIG', capacity: 8 });
    t.match(e.message, /^service port default\/svc-\d:\/TCP\/IPv4: sl_frontends4 is full \(capacity 8; --map-size-frontends\): switching a frontend failed .*E2BIG/, e.message);
  }
  const first = servicesView(snapshot(tables));
  t.equal(first.size, 8, 'eight complete services in the maps');
  t.notOk(first.has(keyOf(8)));
  t.equal(tables.backends.size, 16, 'no backend block of a left-out port stays behind');
  t.same(replayViolations({ frontends: new Map(), backends: new Map(), names: new Map() }, tables.log), [], 'no frontend ever pointed at a missing block');

  // The next apply with the same state fails the same way (nothing lost meanwhile)...
  const again = writer.apply(state);
  t.equal(again.services.failed, 2);
  t.equal(again.services.unchanged, 8);
  // ...and once two Services went, the left-out ports are programmed: new frontends are
  // written before removed ones go (never a gap for a Service that moves), so the room the
  // removals make serves the retry the reconciler schedules right after.
  const fewer = desired(...[...state.services.values()].slice(2));
  const swap = writer.apply(fewer);
  t.match(swap.services, { removed: 2, unchanged: 6 });
  t.ok(swap.errors.every((e) => e.capacity === 8), 'at most full-map errors in the sync that removes');
  const retry = writer.apply(fewer);
  t.same(retry.errors, [], 'the retry programs them');
  // (an "update" when the failed add left its svc_id named: the name is written before the frontends)
  t.equal(retry.services.added + retry.services.updated, 2, 'the two left-out ports are written by the retry');
  const view = servicesView(snapshot(tables));
  t.ok(view.has(keyOf(8)) && view.has(keyOf(9)), 'svc-8 and svc-9 programmed');
  t.equal(tables.frontends.size, 8);
});

t.test('a programmed port that grows into a full map keeps what it had', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { frontends: 2 } });
  const writer = new ServiceTableWriter({ tables });
  const a = svcPort({ name: 'a', vip: '10.96.0.10', backends: [backend('10.1.0.1')] });
  const b = svcPort({ name: 'b', vip: '10.96.0.11', backends: [backend('10.2.0.1')] });
  t.same(writer.apply(desired(a, b)).errors, []);
  const before = servicesView(snapshot(tables)).get(a.key);
  // a gets a NodePort frontend and a new backend: its frontends no longer fit.
  const grown = svcPort({
    name: 'a', backends: [backend('10.1.0.2')],
    frontends: [{ kind: 'ClusterIP', ip: '10.96.0.10', port: 80 }, { kind: 'ExternalIP', ip: '192.0.2.10', port: 80 }],
  });
  const res = writer.apply(desired(grown, b));
  t.equal(res.errors.length, 1);
  t.match(res.errors[0], { key: a.key, map: 'sl_frontends4', capacity: 2, message: /sl_frontends4 is full \(capacity 2; --map-size-frontends\).*rolled back to its previous state/ });
  t.same(servicesView(snapshot(tables)).get(a.key), before, 'a is as it was: old frontend, old backend');
  t.ok(servicesView(snapshot(tables)).has(b.key));
});

t.test('backends full: the block that does not fit fails its port alone', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { backends: 5 } });
  const writer = new ServiceTableWriter({ tables });
  const res = writer.apply(manyServices(3, 2));
  t.equal(res.services.added, 2);
  t.equal(res.errors.length, 1);
  t.match(res.errors[0], { key: keyOf(2), map: 'sl_backends4', capacity: 5, message: /sl_backends4 is full \(capacity 5; --map-size-backends\): writing its new backend block failed/ });
});

t.test('no free svc_id: named as a full sl_svc_meta, with the flag', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { svcMeta: 4, counters: 4 } });
  const writer = new ServiceTableWriter({ tables });
  const res = writer.apply(manyServices(5, 1));
  t.equal(res.services.added, 3, 'ids 1-3 (id 0 is reserved)');
  t.equal(res.errors.length, 2);
  for (const e of res.errors) t.match(e, { map: 'sl_svc_meta', capacity: 4, message: /no free service id: sl_svc_meta is full \(capacity 4: ids 1-3, shared by both IP families; --map-size-service-ids\)/ });
});

t.test('ClusterIP list full: an error with the capacity; the Services are programmed', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { vips: 1 } });
  const writer = new ServiceTableWriter({ tables });
  const res = writer.apply(manyServices(2, 1));
  t.equal(res.services.added, 2, 'both ports programmed: the VIP list only refuses unknown ports');
  t.equal(res.errors.length, 1);
  t.match(res.errors[0], { map: 'sl_vips4', capacity: 1, message: /listing ClusterIP 10\.96\.0\.1 .*sl_vips4 is full \(capacity 1; --map-size-cluster-ips\)/ });
});

t.test('Maglev chunks full: the table that does not fit names the map and the flag; its Service keeps random selection', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  // sl_maglev4 joins the tables' journal (bracket access to the private field); 1021 slots = 4 chunks.
  const maglevMap = new MemoryTable(maglevTableSpec(), 6, tables['journal']);
  const external = (name: string, i: number) => svcPort({
    name, vip: `10.96.0.${i}`, backends: [backend(`10.1.0.${i}`)],
    frontends: [{ kind: 'ClusterIP', ip: `10.96.0.${i}`, port: 80 }, { kind: 'NodePort', ip: '192.0.2.1', port: 30000 + i }],
  });
  t.same(writer.apply(desired(external('a', 1), external('b', 2))).errors, [], 'both Services programmed');
  const r = new MaglevWriter(tables, maglevMap, 1021).apply();
  t.equal(r.errors.length, 1, 'one table of 4 chunks fits in 6, not two');
  t.match(r.errors[0], /Maglev: writing the table of backend block \d+ failed: .*E2BIG.*\(sl_maglev4 is full: capacity 6 chunks; --map-size-maglev-chunks\); random selection/);
});
