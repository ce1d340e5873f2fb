// The in-memory tables behave like the kernel maps the writer relies on: a full hash map refuses
// a new key, an LRU map evicts, arrays refuse indexes past their size and read zero as empty,
// batches attempt every element, and injected failures hit exactly what they match.
import t from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';

const be = (n: number) => ({ addr: `10.1.0.${n}`, port: 80, flags: 0, node_addr: '0.0.0.0' });

t.test('capacity: hash refuses, LRU evicts the oldest', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { backends: 2, affinity: 2 } });
  tables.backends.set({ backend_id: 1, ordinal: 0 }, be(1));
  tables.backends.set({ backend_id: 1, ordinal: 1 }, be(2));
  tables.backends.set({ backend_id: 1, ordinal: 1 }, be(3));
  t.throws(() => tables.backends.set({ backend_id: 1, ordinal: 2 }, be(4)), { code: 'E2BIG' });
  const aff = (n: number) => ({ last_used_ns: 0n, backend_addr: `10.1.0.${n}`, backend_port: 80 });
  tables.affinity.set({ svc_id: 1, client_addr: '10.0.0.1' }, aff(1));
  tables.affinity.set({ svc_id: 1, client_addr: '10.0.0.2' }, aff(2));
  tables.affinity.set({ svc_id: 1, client_addr: '10.0.0.3' }, aff(3));
  t.same(tables.affinity.entries().map(([k]) => k.client_addr), ['10.0.0.2', '10.0.0.3']);
});

t.test('arrays: zero is empty, delete writes zero, indexes are bounded', async (t) => {
  const tables = new MemoryServiceTables({ maxEntries: { svcMeta: 4 } });
  tables.svcMeta.set(3, { name: 'x' });
  t.same(tables.svcMeta.entries(), [[3, { name: 'x' }]]);
  t.ok(tables.svcMeta.delete(3));
  t.equal(tables.svcMeta.get(3), undefined);
  t.throws(() => tables.svcMeta.set(4, { name: 'y' }), { code: 'E2BIG' });
  t.throws(() => tables.counters.set(1, [{ packets: 1n, bytes: 0n, connections: 0n, rejected: 0n }]), /needs 2 entries/);
});

t.test('batches attempt every element and report each failure by index', async (t) => {
  const tables = new MemoryServiceTables();
  tables.failWhen({ map: 'sl_backends4', op: 'set', code: 'EIO', when: (k) => (k as { ordinal: number }).ordinal === 1, times: 1 });
  const out = tables.backends.setMany([0, 1, 2].map((o) => [{ backend_id: 9, ordinal: o }, be(o)] as const));
  t.equal(out.done, 2);
  t.same(out.failures.map((f) => [f.index, (f.error as Error & { code: string }).code]), [[1, 'EIO']]);
  t.equal(tables.backends.size, 2);
  const del = tables.backends.deleteMany([{ backend_id: 9, ordinal: 0 }, { backend_id: 9, ordinal: 1 }]);
  t.same(del, { done: 1, failures: [] }, 'an absent key is not a failure');
  t.equal(tables.calls.get('sl_backends4.setMany'), 1);
  t.same(tables.log.map((o) => [o.op, o.batch !== null]), [['set', true], ['set', true], ['delete', true]]);
});
