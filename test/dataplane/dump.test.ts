// Dumps read the maps and join them with service-port keys: services with frontends and backends
// (cluster/local), conntrack with age and state, affinity, per-CPU counters summed, drops by
// reason, and fill levels.
import t from 'tap';
import { CT_STATE, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { dumpAffinity, dumpConntrack, dumpCounters, dumpDrops, dumpServices, mapFill } from '../../src/dataplane/dump.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, svcPort } from './helpers.js';

const web = svcPort({ name: 'web', vip: '10.96.0.10', backends: [backend('10.1.0.1'), backend('10.1.0.2', 8080, { local: true })], local: [backend('10.1.0.2', 8080, { local: true })] });

function setup() {
  const tables = new MemoryServiceTables({ cpus: 2, maxEntries: { ct: 100 } });
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(web));
  return { tables, id: writer.serviceId(web.key) as number };
}

t.test('services with frontends and their backend sets', async (t) => {
  const { tables, id } = setup();
  t.same(dumpServices(tables).map((s) => ({ key: s.key, svcId: s.svcId, complete: s.complete, fe: s.frontends.map((f) => `${f.addr}:${f.port}/${f.proto}`), be: s.backends.map((b) => `${b.set}:${b.addr}`) })), [
    { key: web.key, svcId: id, complete: true, fe: ['10.96.0.10:80/6'], be: ['cluster:10.1.0.1', 'cluster:10.1.0.2', 'local:10.1.0.2'] },
  ]);
  const fe = tables.frontends.entries()[0]?.[1];
  tables.backends.delete({ backend_id: fe?.backend_id ?? 0, ordinal: 2 });
  t.equal(dumpServices(tables)[0]?.complete, false, 'a missing slot shows as incomplete');
});

t.test('conntrack with age, idle time, state and service key', async (t) => {
  const { tables, id } = setup();
  tables.ct.set({ saddr: '10.0.0.5', daddr: '10.96.0.10', sport: 40000, dport: 80, proto: IPPROTO.TCP }, {
    created_ns: 1_000_000_000n, last_seen_ns: 9_000_000_000n, nat_addr: '10.1.0.1', nat_port: 8080, type: CT_TYPE.FORWARD,
    state: CT_STATE.ESTABLISHED, nat_saddr: '0.0.0.0', svc_id: id, flags: 0, nat_sport: 0,
  });
  const [e] = dumpConntrack(tables, { nowNs: 11_000_000_000n });
  t.match(e, { type: 'forward', state: 'established', service: web.key, natAddr: '10.1.0.1', natPort: 8080, ageSec: 10, idleSec: 2, hairpin: false });
  t.same(dumpConntrack(tables, { svcKey: 'default/other:/TCP/IPv4' }), []);
});

t.test('affinity, counters summed over CPUs, drops by reason, fill levels', async (t) => {
  const { tables, id } = setup();
  tables.affinity.set({ svc_id: id, client_addr: '10.0.0.5' }, { last_used_ns: 5_000_000_000n, backend_addr: '10.1.0.1', backend_port: 8080 });
  t.match(dumpAffinity(tables, 7_000_000_000n), [{ service: web.key, clientAddr: '10.0.0.5', backendAddr: '10.1.0.1', idleSec: 2 }]);
  tables.counters.set(id, [
    { packets: 3n, bytes: 300n, connections: 1n, rejected: 0n },
    { packets: 4n, bytes: 400n, connections: 2n, rejected: 5n },
  ]);
  t.same(dumpCounters(tables), [{ svcId: id, service: web.key, packets: 7, bytes: 700, connections: 3, rejected: 5 }]);
  tables.dropCounters.set(1, [2n, 3n]);
  tables.dropCounters.set(6, [0n, 1n]);
  t.same(dumpDrops(tables), { no_backend: 5, malformed: 1 });
  const fill = Object.fromEntries(mapFill(tables).map((f) => [f.map, [f.entries, f.maxEntries]]));
  t.match(fill, { sl_frontends4: [1, 65536], sl_backends4: [3, 262144], sl_ct4: [0, 100], sl_svc_meta: [1, 65536], sl_svc_counters: [1, 65536], sl_drop_counters: [2, 16] });
});
