// The ClusterIP set (sl_vips4): every ClusterIP the node programs is listed so the programs refuse
// its unknown ports. Listed after the Service's frontends, unlisted after they go, one entry per
// address, never NodePort/external addresses, re-adopted on restart, kept for an invalid Service.
import t from 'tap';
import { VIP_F } from '../../src/bpf/sluice-structs.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { desired, svcPort } from './helpers.js';

const VIP = '10.96.0.10';
const listed = (tables: MemoryServiceTables) => tables.vips.entries().map(([k, v]) => [k.addr, v.flags]).sort();
/** map + op of each logged element, e.g. 'sl_frontends4 set'. */
const ops = (tables: MemoryServiceTables) => tables.log.map((o) => `${o.map} ${o.op}`);

const http = svcPort({ name: 'web', vip: VIP, port: 80 });
const dns = svcPort({ name: 'dns', protocol: 'UDP', vip: VIP, port: 53 });
const external = svcPort({
  name: 'ext', vip: '10.96.0.20', frontends: [
    { kind: 'ClusterIP', ip: '10.96.0.20', port: 80 },
    { kind: 'NodePort', ip: '192.0.2.1', port: 30080 },
    { kind: 'ExternalIP', ip: '203.0.113.5', port: 80 },
    { kind: 'LoadBalancer', ip: '198.51.100.7', port: 80 },
  ],
});

t.test('ClusterIPs are listed once, after their frontends; other frontend kinds are not', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const res = writer.apply(desired(http, dns, external));
  t.same(res.errors, []);
  t.same(listed(tables), [[VIP, VIP_F.REJECT_UNKNOWN], ['10.96.0.20', VIP_F.REJECT_UNKNOWN]], 'two ClusterIPs, each once');
  const log = ops(tables);
  t.ok(log.lastIndexOf('sl_frontends4 set') < log.indexOf('sl_vips4 set'), 'every frontend is written before any ClusterIP is listed', { log });

  tables.resetLog();
  t.same(writer.apply(desired(http, dns, external)).ops, { writes: 0, deletes: 0, calls: 0 }, 'an unchanged apply writes nothing');
});

t.test('a port change keeps the ClusterIP; removing the last Service of an address unlists it after its frontends', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(http, dns));
  tables.resetLog();
  writer.apply(desired(svcPort({ name: 'web', vip: VIP, port: 8080 }), dns));
  t.same(ops(tables).filter((o) => o.startsWith('sl_vips4')), [], 'moving web from :80 to :8080 leaves the ClusterIP alone');
  t.same(listed(tables).map(([a]) => a), [VIP]);

  tables.resetLog();
  writer.apply(desired(dns));
  t.same(listed(tables).map(([a]) => a), [VIP], 'another Service port still uses the address');
  tables.resetLog();
  writer.apply(desired());
  t.same(listed(tables), [], 'the last one gone: unlisted');
  const log = ops(tables);
  t.ok(log.indexOf('sl_vips4 delete') > log.lastIndexOf('sl_frontends4 delete'), 'after the frontends are deleted', { log });
});

t.test('restart: a new writer adopts the listed ClusterIPs, repairs flags and removes strays', async (t) => {
  const tables = new MemoryServiceTables();
  new ServiceTableWriter({ tables }).apply(desired(http, external));
  tables.resetLog();
  const again = new ServiceTableWriter({ tables }).apply(desired(http, external));
  t.same(again.ops, { writes: 0, deletes: 0, calls: 0 }, 'a restarted writer over the same maps writes nothing');

  tables.vips.set({ addr: '10.96.9.9' }, { flags: VIP_F.REJECT_UNKNOWN });
  tables.vips.set({ addr: VIP }, { flags: 0 });
  const repaired = new ServiceTableWriter({ tables }).apply(desired(http, external));
  t.same(repaired.errors, []);
  t.same(listed(tables), [[VIP, VIP_F.REJECT_UNKNOWN], ['10.96.0.20', VIP_F.REJECT_UNKNOWN]], 'stray removed, flags rewritten');
});

t.test('an invalid Service port keeps its programmed state, ClusterIP included', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(http));
  const broken = { ...http, frontends: [{ kind: 'ClusterIP' as const, ip: '10.96.0.300', port: 80 }] };
  const res = writer.apply(desired(broken));
  t.equal(res.errors.length, 1, 'the bad port is reported');
  t.match(res.errors[0]?.message, /10\.96\.0\.300/, 'naming the value');
  t.same(listed(tables).map(([a]) => a), [VIP], 'its ClusterIP stays listed');
  t.equal(tables.frontends.entries().length, 1, 'and its frontend stays');
});

t.test('a failed listing is an error naming the map and address, does not touch the Service, and is retried', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const stop = tables.failWhen({ map: 'sl_vips4', op: 'set', code: 'ENOMEM' });
  const res = writer.apply(desired(http));
  t.equal(res.services.added, 1, 'the Service port is programmed');
  t.equal(tables.frontends.entries().length, 1);
  t.match(res.errors, [{ map: 'sl_vips4', code: 'ENOMEM', message: /ClusterIP 10\.96\.0\.10/ }]);
  t.same(listed(tables), []);
  stop();
  const retry = writer.apply(desired(http));
  t.same(retry.errors, []);
  t.same(listed(tables).map(([a]) => a), [VIP], 'listed by the next apply');
  t.same(retry.ops, { writes: 1, deletes: 0, calls: 1 }, 'and only that is written');
});
