// The update order never exposes a half-written service: replay the in-memory tables' operation
// log and check, after every single map write, that each frontend points at a complete block.
import t, { type Test } from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import type { DesiredState } from '../../src/model/types.js';
import { backend, desired, replayViolations, servicesView, snapshot, svcPort } from './helpers.js';

function setup(opts: ConstructorParameters<typeof MemoryServiceTables>[0] = {}) {
  const tables = new MemoryServiceTables(opts);
  const writer = new ServiceTableWriter({ tables });
  /** Applies and checks the whole log of this apply; returns the result. */
  const step = (t: Test, state: DesiredState, label: string) => {
    const before = snapshot(tables);
    tables.resetLog();
    const res = writer.apply(state);
    t.same(res.errors, [], `${label}: no errors`);
    t.same(replayViolations(before, tables.log), [], `${label}: no half-written service at any step`);
    return res;
  };
  return { tables, writer, step };
}

const lastIndex = <T>(list: readonly T[], pred: (x: T) => boolean): number => {
  for (let i = list.length - 1; i >= 0; i--) if (pred(list[i] as T)) return i;
  return -1;
};

const A = (bes = [backend('10.1.0.1'), backend('10.1.0.2')]) => svcPort({ name: 'a', vip: '10.96.0.10', backends: bes });
const B = (bes = [backend('10.2.0.1')]) => svcPort({ name: 'b', vip: '10.96.0.11', backends: bes });

t.test('new services: backends first, frontends last', async (t) => {
  const { tables, step } = setup();
  const res = step(t, desired(A(), B()), 'add');
  t.equal(res.services.added, 2);
  const firstFrontend = tables.log.findIndex((o) => o.map === 'sl_frontends4');
  const lastBackend = lastIndex(tables.log, (o) => o.map === 'sl_backends4');
  const firstMeta = tables.log.findIndex((o) => o.map === 'sl_svc_meta');
  t.ok(lastBackend >= 0 && firstFrontend > lastBackend, 'every backend entry is written before the first frontend');
  t.ok(firstMeta >= 0 && firstMeta < firstFrontend, 'names are written before frontends');
  t.same(servicesView(snapshot(tables)).get('default/a:/TCP/IPv4')?.backends, [['10.1.0.1:8080', '10.1.0.2:8080']]);
});

t.test('a changed backend set moves to a fresh block, then the old block goes', async (t) => {
  const { tables, step } = setup();
  step(t, desired(A(), B()), 'add');
  const oldId = tables.frontends.entries().find(([k]) => k.addr === '10.96.0.10')?.[1].backend_id;
  const res = step(t, desired(A([backend('10.1.0.1'), backend('10.1.0.3'), backend('10.1.0.4')]), B()), 'grow');
  t.equal(res.services.updated, 1);
  t.equal(res.services.unchanged, 1);
  const value = tables.frontends.entries().find(([k]) => k.addr === '10.96.0.10')?.[1];
  t.not(value?.backend_id, oldId, 'fresh backend_id');
  t.equal(value?.count, 3);
  t.notOk(tables.backends.entries().some(([k]) => k.backend_id === oldId), 'old block deleted');
  const switchAt = tables.log.findIndex((o) => o.map === 'sl_frontends4');
  const firstDelete = tables.log.findIndex((o) => o.map === 'sl_backends4' && o.op === 'delete');
  t.ok(firstDelete > switchAt, 'old block deleted only after the switch');

  step(t, desired(A([backend('10.1.0.4')]), B()), 'shrink');
  t.same(servicesView(snapshot(tables)).get('default/a:/TCP/IPv4')?.backends, [['10.1.0.4:8080']]);
  step(t, desired(A([]), B()), 'no backends');
  const empty = tables.frontends.entries().find(([k]) => k.addr === '10.96.0.10')?.[1];
  t.match(empty, { count: 0, local_count: 0, backend_id: 0 }, 'a service without backends keeps its frontend (reject)');
  t.equal(tables.backends.entries().filter(([k]) => k.backend_id !== tables.frontends.entries().find(([f]) => f.addr === '10.96.0.11')?.[1].backend_id).length, 0, 'no leftover blocks');
});

t.test('terminating and local flags change the block too', async (t) => {
  const { tables, step } = setup();
  step(t, desired(A()), 'add');
  const res = step(t, desired(svcPort({
    name: 'a', vip: '10.96.0.10',
    backends: [backend('10.1.0.1', 8080, { terminating: true, ready: false }), backend('10.1.0.2', 8080, { local: true })],
    local: [backend('10.1.0.2', 8080, { local: true })],
    internalLocal: true,
  })), 'flags');
  t.equal(res.services.updated, 1);
  const [, v] = tables.frontends.entries()[0] ?? [];
  t.match(v, { count: 2, local_count: 1, flags: 1 });
  const block = tables.backends.entries().filter(([k]) => k.backend_id === v?.backend_id).sort((a, b) => a[0].ordinal - b[0].ordinal);
  t.same(block.map(([, b]) => [b.addr, b.flags]), [['10.1.0.1', 2], ['10.1.0.2', 1], ['10.1.0.2', 1]]);
});

t.test('removal: frontends first, then backends, then the name; ids are freed', async (t) => {
  const { tables, writer, step } = setup();
  step(t, desired(A(), B()), 'add');
  const idA = writer.serviceId('default/a:/TCP/IPv4');
  const res = step(t, desired(B()), 'remove a');
  t.equal(res.services.removed, 1);
  const lastFrontend = lastIndex(tables.log, (o) => o.map === 'sl_frontends4');
  const firstBackend = tables.log.findIndex((o) => o.map === 'sl_backends4');
  const meta = tables.log.findIndex((o) => o.map === 'sl_svc_meta');
  t.ok(lastFrontend < firstBackend && firstBackend < meta, `order frontends(${lastFrontend}) < backends(${firstBackend}) < meta(${meta})`);
  t.equal(writer.serviceId('default/a:/TCP/IPv4'), undefined);
  t.notOk(tables.svcMeta.get(idA as number), 'name cleared');
  t.same([...servicesView(snapshot(tables)).keys()], ['default/b:/TCP/IPv4']);
});

t.test('a removed frontend (port changed) is deleted; the block is kept when unchanged', async (t) => {
  const { tables, step } = setup();
  step(t, desired(A()), 'add');
  const before = tables.frontends.entries()[0]?.[1].backend_id;
  const moved = svcPort({ name: 'a', vip: '10.96.0.10', port: 81, backends: [backend('10.1.0.1'), backend('10.1.0.2')] });
  const res = step(t, desired(moved), 'port change');
  t.equal(res.services.updated, 1);
  t.same(tables.frontends.entries().map(([k, v]) => [k.port, v.backend_id]), [[81, before]]);
  t.equal(tables.log.filter((o) => o.map === 'sl_backends4').length, 0, 'no backend writes');
});

t.test('an address moving from a removed service to a new one in one apply', async (t) => {
  const { tables, step } = setup();
  step(t, desired(A()), 'add a');
  const c = svcPort({ name: 'c', vip: '10.96.0.10', backends: [backend('10.3.0.1')] });
  const res = step(t, desired(c), 'a → c');
  t.match(res.services, { added: 1, removed: 1 });
  t.same(servicesView(snapshot(tables)).get('default/c:/TCP/IPv4')?.backends, [['10.3.0.1:8080']]);
  t.equal(tables.log.filter((o) => o.map === 'sl_frontends4' && o.op === 'delete').length, 0, 'overwritten, never deleted');
  t.equal(tables.svcMeta.entries().length, 1, 'only c is named');
});

t.test('ids are stable, and reused only when freed (after the others)', async (t) => {
  const { tables, writer, step } = setup({ maxEntries: { svcMeta: 4, counters: 4 } });
  step(t, desired(A(), B()), 'add');
  const ids = { a: writer.serviceId('default/a:/TCP/IPv4'), b: writer.serviceId('default/b:/TCP/IPv4') };
  step(t, desired(A([backend('10.1.0.9')]), B()), 'change a');
  t.equal(writer.serviceId('default/a:/TCP/IPv4'), ids.a, 'id kept across a backend change');
  tables.counters.set(ids.b as number, [{ packets: 5n, bytes: 500n, connections: 1n, rejected: 0n }, { packets: 0n, bytes: 0n, connections: 0n, rejected: 0n }]);
  step(t, desired(A()), 'remove b');
  const c = svcPort({ name: 'c', vip: '10.96.0.12' });
  const d = svcPort({ name: 'd', vip: '10.96.0.13' });
  step(t, desired(A(), c), 'add c');
  t.equal(writer.serviceId('default/c:/TCP/IPv4'), 3, 'the never-used id 3 comes before the freed one');
  step(t, desired(A(), c, d), 'add d');
  t.equal(writer.serviceId('default/d:/TCP/IPv4'), ids.b, 'then the freed id is reused');
  t.equal(tables.counters.get(ids.b as number), undefined, 'with its counters reset');
  const e = svcPort({ name: 'e', vip: '10.96.0.14' });
  const res = writer.apply(desired(A(), c, d, e));
  t.equal(res.services.failed, 1);
  t.match(res.errors[0], { key: 'default/e:/TCP/IPv4', message: /no free service id/ });
});
