// MaglevWriter (src/dataplane/maglev-writer.ts) over the in-memory tables: a table per external
// Cluster-set block, identical by backend identity whatever ids and ordinals a node assigned,
// none for eTP=Local or in-cluster-only services, tables of replaced blocks deleted, a previous
// agent's tables rebuilt, too many backends left to random selection with a note.
import t from 'tap';
import type { MaglevChunk, MaglevKey } from '../../src/bpf/sluice-structs.js';
import { IPPROTO, MAGLEV } from '../../src/bpf/sluice-structs.js';
import { buildMaglevTable } from '../../src/dataplane/maglev-table.js';
import { MaglevWriter, maglevChunks } from '../../src/dataplane/maglev-writer.js';
import { MemoryServiceTables, MemoryTable } from '../../src/dataplane/memory-tables.js';
import { maglevTableSpec } from '../../src/dataplane/table-specs.js';
import type { Table } from '../../src/dataplane/tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import type { Backend } from '../../src/model/types.js';
import { backend, desired, svcPort } from './helpers.js';

const SIZE = 1021;

function node(): { tables: MemoryServiceTables; writer: ServiceTableWriter; maglevMap: Table<MaglevKey, MaglevChunk> } {
  const tables = new MemoryServiceTables();
  // The in-memory tables share one journal; sl_maglev4 joins it (bracket access to the private field).
  const maglevMap = new MemoryTable(maglevTableSpec(), 65536, tables['journal']);
  return { tables, writer: new ServiceTableWriter({ tables }), maglevMap };
}

const external = (name: string, backends: Backend[], extra: { externalLocal?: boolean; local?: Backend[] } = {}) => svcPort({
  name, vip: `10.96.0.${name.length}`, backends, ...extra,
  frontends: [{ kind: 'ClusterIP', ip: `10.96.0.${name.length}`, port: 80 }, { kind: 'NodePort', ip: '192.0.2.1', port: 30000 + name.length }],
});
const internal = (name: string, backends: Backend[]) => svcPort({ name, vip: '10.96.1.1', backends });

/** The table of a service's Cluster block as backend identities, slot by slot. */
function identityTable(tables: MemoryServiceTables, map: Table<MaglevKey, MaglevChunk>, nodePort: number): string[] {
  const fe = tables.frontends.entries().find(([k]) => k.port === nodePort);
  if (!fe) throw new Error(`no frontend :${nodePort}`);
  const svc = fe[1];
  const chunks = map.entries().filter(([k]) => k.backend_id === svc.backend_id).sort((a, b) => a[0].chunk - b[0].chunk);
  const out: string[] = [];
  for (const [, c] of chunks) {
    for (let i = 0; i < MAGLEV.CHUNK && out.length < c.size; i++) {
      const be = tables.backends.get({ backend_id: svc.backend_id, ordinal: c.slot[i] as number });
      out.push(`${be?.addr}:${be?.port}`);
    }
  }
  return out;
}

const web = Array.from({ length: 12 }, (_, i) => backend(`10.1.${i}.5`, 8080));

t.test('two nodes with different ids and ordinals hold the same table by backend identity', async (t) => {
  const a = node();
  const b = node();
  // Node A programmed other services first (other svc and block ids); node B lists the
  // backends in another order (other ordinals).
  a.writer.apply(desired(external('aaaa', [backend('10.9.0.1')]), internal('x', [backend('10.9.0.2'), backend('10.9.0.3')])));
  a.writer.apply(desired(external('web', web)));
  b.writer.apply(desired(external('web', [...web].reverse())));
  const ra = new MaglevWriter(a.tables, a.maglevMap, SIZE).apply();
  const rb = new MaglevWriter(b.tables, b.maglevMap, SIZE).apply();
  t.same([ra.errors, rb.errors], [[], []]);
  t.same([ra.tables, rb.tables], [1, 1]);
  const blockA = a.tables.frontends.entries().find(([k]) => k.port === 30003)?.[1];
  const blockB = b.tables.frontends.entries().find(([k]) => k.port === 30003)?.[1];
  t.not(blockA?.backend_id, blockB?.backend_id, 'the nodes gave the block different ids');
  t.not(a.tables.backends.get({ backend_id: blockA?.backend_id as number, ordinal: 0 })?.addr,
    b.tables.backends.get({ backend_id: blockB?.backend_id as number, ordinal: 0 })?.addr, '... and different ordinals');
  const ta = identityTable(a.tables, a.maglevMap, 30003);
  const tb = identityTable(b.tables, b.maglevMap, 30003);
  t.equal(ta.length, SIZE);
  t.same(ta, tb, 'slot for slot the same backend');
  // And it is the builder's table over the sorted identities.
  const ids = web.map((w) => `${w.ip}:${w.port}`).sort();
  t.same(ta, [...buildMaglevTable(ids, SIZE)].map((i) => ids[i]));
  t.equal(a.maglevMap.entries().filter(([k]) => k.backend_id === blockA?.backend_id).length, maglevChunks(SIZE));
});

t.test('only external Cluster sets get tables; a replaced block loses its table', async (t) => {
  const n = node();
  n.writer.apply(desired(external('web', web), internal('in', web), external('local1', web, { externalLocal: true, local: [web[0] as Backend] })));
  const mw = new MaglevWriter(n.tables, n.maglevMap, SIZE);
  let r = mw.apply();
  t.equal(r.tables, 1, 'the in-cluster and the eTP=Local services have none');
  t.equal(r.built, 1);
  const old = n.tables.frontends.entries().find(([k]) => k.port === 30003)?.[1].backend_id;
  n.writer.apply(desired(external('web', web.slice(1)), internal('in', web), external('local1', web, { externalLocal: true, local: [web[0] as Backend] })));
  r = mw.apply();
  t.same({ tables: r.tables, built: r.built, deleted: r.deleted }, { tables: 1, built: 1, deleted: 1 });
  t.same(n.maglevMap.entries().filter(([k]) => k.backend_id === old), [], "the old block's chunks are gone");
  t.equal(mw.apply().built, 0, 'nothing changed: nothing rebuilt');
  n.writer.apply(desired());
  r = mw.apply();
  t.same({ tables: r.tables, deleted: r.deleted }, { tables: 0, deleted: 1 });
  t.same(n.maglevMap.entries(), []);
});

t.test("a restarted agent rebuilds the previous agent's tables at its own size and drops the rest", async (t) => {
  const n = node();
  n.writer.apply(desired(external('web', web)));
  new MaglevWriter(n.tables, n.maglevMap, 16381).apply();
  t.equal(n.maglevMap.entries().length, maglevChunks(16381));
  // A stale table of a block nobody points at.
  n.maglevMap.set({ backend_id: 999, chunk: 0 }, { size: SIZE, slot: new Uint16Array(MAGLEV.CHUNK) });
  const r = new MaglevWriter(n.tables, n.maglevMap, SIZE).apply();
  t.same({ built: r.built, deleted: r.deleted, tables: r.tables }, { built: 1, deleted: 1, tables: 1 });
  const chunks = n.maglevMap.entries();
  t.equal(chunks.length, maglevChunks(SIZE), 'chunks past the smaller table deleted');
  t.ok(chunks.every(([, c]) => c.size === SIZE));
  t.equal(identityTable(n.tables, n.maglevMap, 30003).length, SIZE);
});

t.test('more backends than slots: no table, random selection, one note', async (t) => {
  const n = node();
  const many = Array.from({ length: 300 }, (_, i) => backend(`10.2.${i >> 8}.${i & 255}`, 80));
  n.writer.apply(desired(external('big', many)));
  const mw = new MaglevWriter(n.tables, n.maglevMap, 251);
  const r = mw.apply();
  t.equal(r.tables, 0);
  t.match(r.notes, [/300 backends, more than the table's 251 slots: random selection \(raise --maglev-table-size\)/]);
  t.same(mw.apply().notes, [], 'not reported again while the block stays');
  t.same(n.maglevMap.entries(), []);
});

t.test('a failed write leaves no partial table and is retried', async (t) => {
  const n = node();
  n.writer.apply(desired(external('web', web)));
  const mw = new MaglevWriter(n.tables, n.maglevMap, SIZE);
  n.tables.failWhen({ map: 'sl_maglev4', op: 'set', code: 'ENOMEM', times: 1 });
  const r = mw.apply();
  t.match(r.errors, [/writing the table of backend block \d+ failed/]);
  t.equal(r.tables, 0);
  t.same(n.maglevMap.entries(), [], 'nothing half-written stays');
  const again = mw.apply();
  t.same({ built: again.built, errors: again.errors }, { built: 1, errors: [] });
});

t.test('an apply that changed no service port skips the frontends read, unless a retry is due', async (t) => {
  const n = node();
  n.writer.apply(desired(external('web', web)));
  const mw = new MaglevWriter(n.tables, n.maglevMap, SIZE);
  t.equal(mw.apply({ changed: false }).built, 1, 'the first apply always looks');
  n.writer.apply(desired(external('web', web.slice(2))));
  n.tables.resetLog();
  const skipped = mw.apply({ changed: false });
  t.same({ built: skipped.built, tables: skipped.tables }, { built: 0, tables: 1 });
  t.equal(n.tables.calls.get('sl_frontends4.filterRaw') ?? 0, 0, 'the frontends were not read');
  t.equal(mw.apply({ changed: true }).built, 1, 'a change is looked at');
  t.equal(n.tables.calls.get('sl_frontends4.filterRaw'), 1, '... with one read of the frontends');
  // A failed write is retried even by an apply that changed nothing.
  n.writer.apply(desired(external('web', web)));
  const undo = n.tables.failWhen({ map: 'sl_maglev4', op: 'set', code: 'ENOMEM', times: 1 });
  t.equal(mw.apply().errors.length, 1);
  undo();
  t.equal(mw.apply({ changed: false }).built, 1);
});

t.test('IPv6 blocks get tables in the same map, by IPv6 identity; an id both families point at gets none', async (t) => {
  const v4 = new MemoryServiceTables();
  const v6 = new MemoryServiceTables({ family: 'IPv6', sharing: v4 });
  const maglevMap = new MemoryTable(maglevTableSpec(), 65536, v4['journal']);
  const writer = new ServiceTableWriter({ tables: v4, tables6: v6 });
  const web6 = Array.from({ length: 5 }, (_, i) => backend(`fd00:1::${i + 1}`, 8080));
  const ext6 = (name: string, backends: Backend[], extra: { externalLocal?: boolean; local?: Backend[] } = {}) => svcPort({
    name, family: 'IPv6', backends, ...extra,
    frontends: [{ kind: 'ClusterIP', ip: `fd00:96::${name.length}`, port: 80 }, { kind: 'LoadBalancer', ip: '2001:db8::10', port: 80 + name.length }],
  });
  t.same(writer.apply(desired(external('web', web), ext6('web', web6), ext6('local6', web6, { externalLocal: true, local: [web6[0] as Backend] }))).errors, []);
  const mw = new MaglevWriter(v4, maglevMap, SIZE, v6);
  t.match(mw.apply(), { tables: 2, built: 2, errors: [] }, 'the IPv4 and the IPv6 Cluster block; not the eTP=Local one');
  const fe6 = v6.frontends.entries().find(([k]) => k.port === 83)?.[1];
  const chunks = maglevMap.entries().filter(([k]) => k.backend_id === fe6?.backend_id).sort((a, b) => a[0].chunk - b[0].chunk);
  t.equal(chunks.length, maglevChunks(SIZE));
  const slots = chunks.flatMap(([, c]) => [...c.slot]).slice(0, SIZE);
  const byId = slots.map((ord) => {
    const be = v6.backends.get({ backend_id: fe6?.backend_id as number, ordinal: ord });
    return `[${be?.addr}]:${be?.port}`;
  });
  const ids = web6.map((b) => `[${b.ip}]:${b.port}`).sort();
  t.same(byId, [...buildMaglevTable(ids, SIZE)].map((i) => ids[i]), "the IPv6 block's table is the builder's over its bracketed identities");
  // The IPv6 service goes: its table goes, the IPv4 one stays.
  writer.apply(desired(external('web', web)));
  t.match(mw.apply(), { tables: 1, deleted: 1, errors: [] });
  t.same(maglevMap.entries().filter(([k]) => k.backend_id === fe6?.backend_id), []);
  // Both families' frontends on one id (maps someone else left inconsistent): no table, an error.
  const fe4 = v4.frontends.entries().find(([k]) => k.port === 30003)?.[1];
  v6.frontends.set({ addr: '2001:db8::99', port: 99, proto: IPPROTO.TCP, scope: 0 }, { ...(fe4 as NonNullable<typeof fe4>), svc_id: 4000 });
  v6.backends.set({ backend_id: fe4?.backend_id as number, ordinal: 0 }, { addr: 'fd00:1::9', port: 80, flags: 0, node_addr: '::' });
  const clash = mw.apply();
  t.match(clash.errors, [/backend block \d+ is pointed at by IPv4 and IPv6 frontends: no table/]);
  t.equal(clash.tables, 0, "the IPv4 block's table is deleted rather than trusted");
});
