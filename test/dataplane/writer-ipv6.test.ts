// IPv6 and dual-stack service ports in the writer: each family goes to its own maps (the IPv6
// twins), both families share one svc_id space and sl_svc_meta, and one family's failure never
// blocks the other.
import t from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { CT_TYPE, IPPROTO, VIP_F } from '../../src/bpf/sluice-structs.js';
import { backend, desired, svcPort } from './helpers.js';

function dualStack() {
  const v4 = new MemoryServiceTables();
  const v6 = new MemoryServiceTables({ family: 'IPv6', sharing: v4 });
  return { v4, v6, writer: new ServiceTableWriter({ tables: v4, tables6: v6 }) };
}

const web4 = (backends = [backend('10.1.0.1'), backend('10.1.0.2')]) => svcPort({ name: 'web', vip: '10.96.0.10', backends });
const web6 = (backends = [backend('fd00:1::1'), backend('fd00:1::2')], protocol: 'TCP' | 'UDP' = 'TCP') =>
  svcPort({ name: 'web', family: 'IPv6', protocol, vip: 'fd00:96::10', backends });

t.test('a dual-stack Service port is programmed in both families, with ids of one space', async (t) => {
  const { v4, v6, writer } = dualStack();
  const res = writer.apply(desired(web4(), web6()));
  t.same(res.errors, []);
  t.match(res.services, { added: 2, failed: 0, unsupportedFamily: 0 });
  t.equal(v6.frontends.name, 'sl_frontends6');

  const only = <T>(list: T[]): T => {
    t.equal(list.length, 1);
    return list[0] as T;
  };
  const [k4, s4] = only(v4.frontends.entries());
  const [k6, s6] = only(v6.frontends.entries());
  t.match(k4, { addr: '10.96.0.10', port: 80 });
  t.match(k6, { addr: 'fd00:96::10', port: 80 });
  t.not(s4.svc_id, s6.svc_id, 'each family has its own svc_id');
  t.equal(s6.count, 2);
  // The shared name map names both, each with its family.
  const names = new Map(v4.svcMeta.entries().map(([id, m]) => [id, m.name]));
  t.equal(names.get(s4.svc_id), 'default/web:/TCP/IPv4');
  t.equal(names.get(s6.svc_id), 'default/web:/TCP/IPv6');
  t.same(v6.backends.entries().map(([k, v]) => [k.ordinal, v.addr, v.port, v.node_addr]).sort(),
    [[0, 'fd00:1::1', 8080, '::'], [1, 'fd00:1::2', 8080, '::']]);
  t.same(v4.vips.entries().map(([k]) => k.addr), ['10.96.0.10']);
  t.same(v6.vips.entries(), [[{ addr: 'fd00:96::10' }, { flags: VIP_F.REJECT_UNKNOWN }]]);
  t.equal(writer.serviceId('default/web:/TCP/IPv6'), s6.svc_id);
  t.equal(writer.serviceNames().size, 2);
  t.equal(writer.frontendKind('default/web:/TCP/IPv6', 'fd00:96::10', 80), 'ClusterIP');

  // The same state again: nothing to write, every port unchanged.
  const again = writer.apply(desired(web4(), web6()));
  t.match(again, { services: { unchanged: 2, added: 0, updated: 0 }, ops: { writes: 0, deletes: 0 } });
});

t.test('without the IPv6 maps IPv6 ports are skipped and counted, as before', async (t) => {
  const v4 = new MemoryServiceTables();
  const res = new ServiceTableWriter({ tables: v4 }).apply(desired(web4(), web6()));
  t.match(res.services, { added: 1, unsupportedFamily: 1 });
  t.match(res.notes, [/1 IPv6 service port\(s\) skipped/]);
});

t.test("one family's failure never blocks the other", async (t) => {
  const { v4, v6, writer } = dualStack();
  const stop = v6.failWhen({ map: 'sl_frontends6', op: 'set', code: 'ENOMEM' });
  const res = writer.apply(desired(web4(), web6()));
  t.equal(v4.frontends.entries().length, 1, 'IPv4 is programmed');
  t.equal(v6.frontends.entries().length, 0);
  t.match(res.services, { added: 1, failed: 1 });
  t.match(res.errors, [{ key: 'default/web:/TCP/IPv6', map: 'sl_frontends6', code: 'ENOMEM' }]);
  stop();
  const retry = writer.apply(desired(web4(), web6()));
  t.same(retry.errors, []);
  t.equal(v6.frontends.entries().length, 1, 'the next apply programs IPv6');

  // A bad IPv6 backend address is an error naming the port and field; IPv4 is updated regardless.
  const bad = writer.apply(desired(web4([backend('10.1.0.9')]), web6([backend('10.1.0.3')])));
  t.match(bad.errors, [{ key: 'default/web:/TCP/IPv6', message: /clusterBackends\[0\]\.ip "10\.1\.0\.3" is not an IPv6 address/ }]);
  t.same(v4.backends.entries().map(([, v]) => v.addr), ['10.1.0.9']);
  t.same(v6.backends.entries().map(([, v]) => v.addr).sort(), ['fd00:1::1', 'fd00:1::2'], 'the IPv6 port keeps its state');
});

t.test('a restarted writer adopts both families and hands out no id twice', async (t) => {
  const { v4, v6, writer } = dualStack();
  writer.apply(desired(web4(), web6()));
  const again = new ServiceTableWriter({ tables: v4, tables6: v6 });
  const res = again.apply(desired(web4(), web6(), svcPort({ name: 'api', vip: '10.96.0.11' }), svcPort({ name: 'api', family: 'IPv6', vip: 'fd00:96::11', backends: [backend('fd00:1::5')] })));
  t.same(res.errors, []);
  t.match(res.services, { added: 2, unchanged: 2 });
  const ids = [...v4.frontends.entries(), ...v6.frontends.entries()].map(([, v]) => v.svc_id);
  t.equal(new Set(ids).size, 4, `four distinct svc_ids: ${ids.join(', ')}`);

  // An incremental apply of one IPv6 port counts the other three unchanged once.
  const next = desired(web4(), web6([backend('fd00:1::7')]), svcPort({ name: 'api', vip: '10.96.0.11' }), svcPort({ name: 'api', family: 'IPv6', vip: 'fd00:96::11', backends: [backend('fd00:1::5')] }));
  const inc = again.apply(next, { changed: new Set(['default/web:/TCP/IPv6']) });
  t.match(inc.services, { updated: 1, unchanged: 3, added: 0 });
  // Removing the IPv6 ports leaves IPv4 alone and frees the names.
  const rm = again.apply(desired(web4(), svcPort({ name: 'api', vip: '10.96.0.11' })));
  t.match(rm.services, { removed: 2, unchanged: 2 });
  t.equal(v6.frontends.entries().length, 0);
  t.equal(v6.vips.entries().length, 0);
  t.same(v4.svcMeta.entries().map(([, m]) => m.name).sort(), ['default/api:/TCP/IPv4', 'default/web:/TCP/IPv4']);
});

t.test('a UDP backend leaving an IPv6 service takes its IPv6 flows along', async (t) => {
  const { v6, writer } = dualStack();
  writer.apply(desired(web6([backend('fd00:1::1'), backend('fd00:1::2')], 'UDP')));
  const svc = v6.frontends.entries()[0]?.[1];
  if (!svc) return t.fail('no IPv6 frontend');
  const flow = (be: string, sport: number) => {
    const fwd = { saddr: 'fd00:2::5', daddr: 'fd00:96::10', sport, dport: 80, proto: IPPROTO.UDP };
    const common = { created_ns: 1n, last_seen_ns: 1n, state: 0, nat_saddr: '::', svc_id: svc.svc_id, flags: 0, nat_sport: 0 };
    v6.ct.set(fwd, { ...common, nat_addr: be, nat_port: 8080, type: CT_TYPE.FORWARD });
    v6.ct.set({ saddr: be, daddr: 'fd00:2::5', sport: 8080, dport: sport, proto: IPPROTO.UDP },
      { ...common, nat_addr: 'fd00:96::10', nat_port: 80, type: CT_TYPE.REVERSE });
    v6.sockRevnat.set({ cookie: 7n, backend_addr: be, backend_port: 8080 }, { frontend_addr: 'fd00:96::10', frontend_port: 80, svc_id: svc.svc_id });
  };
  flow('fd00:1::1', 40001);
  flow('fd00:1::2', 40002);
  const res = writer.apply(desired(web6([backend('fd00:1::2')], 'UDP')));
  t.same(res.errors, []);
  t.match(res.flows, { ctDeleted: 2, sockRevnatDeleted: 1 });
  t.same(v6.ct.entries().map(([k]) => k.saddr).sort(), ['fd00:1::2', 'fd00:2::5'], "the remaining backend's flow stays");
  t.same(v6.sockRevnat.entries().map(([k]) => k.backend_addr), ['fd00:1::2']);
});

t.test('a restart reads sl_svc_meta, which both families share, once', async (t) => {
  const { v4, v6, writer } = dualStack();
  writer.apply(desired(web4(), web6()));
  t.equal(v4.svcMeta, v6.svcMeta, 'one map for both families');
  let reads = 0;
  const entries = v4.svcMeta.entries.bind(v4.svcMeta);
  v4.svcMeta.entries = () => (reads++, entries());
  const again = new ServiceTableWriter({ tables: v4, tables6: v6 });
  again.preload();
  t.equal(reads, 1, 'read once for both mirrors');
  const res = again.apply(desired(web4(), web6()));
  t.same(res.ops, { writes: 0, deletes: 0, calls: 0 }, 'and both families re-adopted their ids');
  t.match(res.services, { unchanged: 2 });
});
