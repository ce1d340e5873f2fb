// sluicectl's views over both families: a dual-stack Service written by the real writer (over the
// in-memory maps) is listed with its IPv4 and its IPv6 service port, each with its own frontends,
// backends and flows.
import t from 'tap';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, svcPort } from '../dataplane/helpers.js';

t.test('services, nat, conntrack and maps list both families', async (t) => {
  const v4 = new MemoryServiceTables();
  const v6 = new MemoryServiceTables({ family: 'IPv6', sharing: v4 });
  const writer = new ServiceTableWriter({ tables: v4, tables6: v6 });
  const res = writer.apply(desired(
    svcPort({ name: 'web', vip: '10.96.0.10', backends: [backend('10.1.0.1'), backend('10.1.0.2')] }),
    svcPort({ name: 'web', family: 'IPv6', vip: 'fd00:96::10', backends: [backend('fd00:1::1')] }),
  ));
  t.same(res.errors, []);
  const svc6 = v6.frontends.entries()[0]?.[1];
  if (!svc6) return t.fail('no IPv6 frontend');
  v6.ct.set({ saddr: 'fd00:2::5', daddr: 'fd00:96::10', sport: 40000, dport: 80, proto: IPPROTO.TCP }, {
    created_ns: 1n, last_seen_ns: 1n, nat_addr: 'fd00:1::1', nat_port: 8080, type: CT_TYPE.FORWARD, state: 2,
    nat_saddr: '::', svc_id: svc6.svc_id, flags: 0, nat_sport: 0,
  });

  const b = new MapsAdminBackend({ tables: v4, tables6: v6, pinDir: '/sys/fs/bpf/x', nowNs: () => 10n });
  const { services } = b.services();
  t.same(services.map((s) => [s.key, s.family]), [['default/web:/TCP/IPv4', 'IPv4'], ['default/web:/TCP/IPv6', 'IPv6']]);
  t.not(services[0]?.backendId, services[1]?.backendId, 'each family has its own block id (one id space)');
  t.match(services[1], { frontends: [{ ip: 'fd00:96::10', port: 80, kind: 'ClusterIP' }], backends: [{ ip: 'fd00:1::1', port: 8080, set: 'cluster', nodeIp: '' }] });
  t.same(services[0]?.backends.map((x) => x.ip), ['10.1.0.1', '10.1.0.2'], 'IPv4 blocks are not mixed with IPv6 ones');
  t.equal(b.natDump().frontends.length, 2);
  t.match(b.conntrack().entries, [{ svcId: svc6.svc_id, service: 'default/web:/TCP/IPv6', natSource: '' }], 'an IPv6 entry without a source rewrite shows no natSource (not ::)');
  const names = b.maps().maps.map((m) => m.name);
  for (const name of ['sl_frontends4', 'sl_frontends6', 'sl_backends6', 'sl_ct6', 'sl_vips6', 'sl_svc_meta']) t.ok(names.includes(name), `maps lists ${name}`);
  t.equal(names.filter((n) => n === 'sl_svc_meta').length, 1, 'a shared map is listed once');
  t.same(b.counters().services.map((c) => c.svcId).sort(), services.map((s) => s.svcId).sort(), 'counters list both service ports');
});
