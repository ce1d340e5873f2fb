// Removing a UDP backend deletes its conntrack, socket rev-NAT and affinity entries at once (no
// stale UDP flows); a removed TCP backend keeps its flows so they can finish. The entries are
// planted exactly as the BPF programs create them (bpf/lib/conntrack.h, sock.h, lb.h).
import t from 'tap';
import { CT_F, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, svcPort } from './helpers.js';

const VIP = { udp: '10.96.0.53', tcp: '10.96.0.80' };
const bes = (port: number, ...last: number[]) => last.map((n) => backend(`10.1.0.${n}`, port));
const udpSvc = (...last: number[]) => svcPort({ name: 'dns', protocol: 'UDP', vip: VIP.udp, port: 53, backends: bes(5353, ...last), affinity: 60 });
const tcpSvc = (...last: number[]) => svcPort({ name: 'web', protocol: 'TCP', vip: VIP.tcp, port: 80, backends: bes(8080, ...last), affinity: 60 });

/** Plants a flow client → vip:vport balanced to be:bport, as sl_ct_create4 writes it. */
function plantFlow(tables: MemoryServiceTables, svcId: number, proto: number, client: string, cport: number, vip: string, vport: number, be: string, bport: number, hairpin = false) {
  const base = { created_ns: 1n, last_seen_ns: 2n, state: 0, svc_id: svcId, flags: hairpin ? CT_F.HAIRPIN : 0, nat_saddr: hairpin ? vip : '0.0.0.0', nat_sport: 0 };
  tables.ct.set({ saddr: be, daddr: hairpin ? vip : client, sport: bport, dport: cport, proto }, { ...base, nat_addr: vip, nat_port: vport, type: CT_TYPE.REVERSE });
  tables.ct.set({ saddr: client, daddr: vip, sport: cport, dport: vport, proto }, { ...base, nat_addr: be, nat_port: bport, type: CT_TYPE.FORWARD });
}

function plantSocketAndAffinity(tables: MemoryServiceTables, svcId: number, cookie: bigint, client: string, vip: string, vport: number, be: string, bport: number) {
  tables.sockRevnat.set({ cookie, backend_addr: be, backend_port: bport }, { frontend_addr: vip, frontend_port: vport, svc_id: svcId });
  tables.affinity.set({ svc_id: svcId, client_addr: client }, { last_used_ns: 5n, backend_addr: be, backend_port: bport });
}

function setup() {
  const tables = new MemoryServiceTables();
  let sweptAt = -1;
  const writer = new ServiceTableWriter({ tables, udpSocketSweep: () => void (sweptAt = tables.log.length) });
  t.same(writer.apply(desired(udpSvc(1, 2), tcpSvc(1, 2))).errors, []);
  const udpId = writer.serviceId(udpSvc().key) as number;
  const tcpId = writer.serviceId(tcpSvc().key) as number;
  plantFlow(tables, udpId, IPPROTO.UDP, '10.0.0.5', 40000, VIP.udp, 53, '10.1.0.1', 5353);
  plantFlow(tables, udpId, IPPROTO.UDP, '10.0.0.6', 40001, VIP.udp, 53, '10.1.0.2', 5353);
  plantFlow(tables, udpId, IPPROTO.UDP, '10.1.0.1', 40002, VIP.udp, 53, '10.1.0.1', 5353, true); // hairpin
  plantFlow(tables, tcpId, IPPROTO.TCP, '10.0.0.5', 50000, VIP.tcp, 80, '10.1.0.1', 8080);
  plantFlow(tables, tcpId, IPPROTO.TCP, '10.0.0.6', 50001, VIP.tcp, 80, '10.1.0.2', 8080);
  plantSocketAndAffinity(tables, udpId, 11n, '10.0.0.5', VIP.udp, 53, '10.1.0.1', 5353);
  plantSocketAndAffinity(tables, udpId, 12n, '10.0.0.6', VIP.udp, 53, '10.1.0.2', 5353);
  plantSocketAndAffinity(tables, tcpId, 21n, '10.0.0.5', VIP.tcp, 80, '10.1.0.1', 8080);
  plantSocketAndAffinity(tables, tcpId, 22n, '10.0.0.6', VIP.tcp, 80, '10.1.0.2', 8080);
  tables.resetLog();
  return { tables, writer, udpId, tcpId, swept: () => sweptAt };
}

const ctTo = (tables: MemoryServiceTables, svcId: number, be: string) =>
  tables.ct.entries().filter(([k, v]) => v.svc_id === svcId && (v.type === CT_TYPE.FORWARD ? v.nat_addr === be : k.saddr === be));

t.test('removing a backend: UDP flows go at once, TCP flows stay to finish', async (t) => {
  const { tables, writer, udpId, tcpId, swept } = setup();
  const res = writer.apply(desired(udpSvc(2), tcpSvc(2)));
  t.same(res.errors, []);
  t.same(ctTo(tables, udpId, '10.1.0.1'), [], 'UDP conntrack to the removed backend deleted (forward, reverse, hairpin)');
  t.equal(ctTo(tables, udpId, '10.1.0.2').length, 2, 'UDP flows to the remaining backend kept');
  t.equal(ctTo(tables, tcpId, '10.1.0.1').length, 2, 'TCP flows to the removed backend kept');
  t.match(res.flows, { ctDeleted: 4, sockRevnatDeleted: 1, affinityDeleted: 2 });
  t.same(tables.sockRevnat.entries().map(([k]) => k.cookie).sort(), [12n, 21n, 22n], 'only the UDP socket entry of the removed backend went');
  t.same(tables.affinity.entries().map(([, v]) => `${v.backend_addr}`), ['10.1.0.2', '10.1.0.2'], 'affinity to the removed backend gone for both protocols');
  const firstRevnatDelete = tables.log.findIndex((o) => o.map === 'sl_sock_revnat4');
  const switchAt = tables.log.findIndex((o) => o.map === 'sl_frontends4');
  const firstCtDelete = tables.log.findIndex((o) => o.map === 'sl_ct4');
  t.ok(switchAt >= 0 && firstCtDelete > switchAt, 'flows deleted only after the frontend no longer selects the backend');
  t.ok(swept() >= 0 && swept() <= firstRevnatDelete, 'the UDP socket sweep ran before the rev-NAT entries went');
});

t.test('removing a UDP service deletes all its flows; a TCP service keeps them', async (t) => {
  const { tables, writer, udpId, tcpId } = setup();
  const res = writer.apply(desired());
  t.same(res.errors, []);
  t.equal(res.services.removed, 2);
  t.same(tables.ct.entries().filter(([, v]) => v.svc_id === udpId), []);
  t.equal(tables.ct.entries().filter(([, v]) => v.svc_id === tcpId).length, 4);
  t.same(tables.sockRevnat.entries().map(([k]) => k.cookie).sort(), [21n, 22n]);
  t.same(tables.affinity.entries(), [], 'affinity of removed services gone');
});

t.test('flows of the same backend address under another service are untouched', async (t) => {
  const { tables, writer, udpId } = setup();
  const other = svcPort({ name: 'other', protocol: 'UDP', vip: '10.96.0.54', port: 53, backends: bes(5353, 1) });
  writer.apply(desired(udpSvc(1, 2), tcpSvc(1, 2), other));
  const otherId = writer.serviceId(other.key) as number;
  plantFlow(tables, otherId, IPPROTO.UDP, '10.0.0.7', 40010, '10.96.0.54', 53, '10.1.0.1', 5353);
  writer.apply(desired(udpSvc(2), tcpSvc(1, 2), other));
  t.same(ctTo(tables, udpId, '10.1.0.1'), []);
  t.equal(ctTo(tables, otherId, '10.1.0.1').length, 2, 'same backend, other service: kept');
});

t.test('switching affinity off drops the service\'s affinity entries; flush empties its conntrack', async (t) => {
  const { tables, writer, tcpId } = setup();
  const noAffinity = svcPort({ name: 'web', protocol: 'TCP', vip: VIP.tcp, port: 80, backends: bes(8080, 1, 2) });
  const res = writer.apply(desired(udpSvc(1, 2), noAffinity));
  t.equal(res.flows.affinityDeleted, 2);
  t.same(tables.affinity.entries().filter(([k]) => k.svc_id === tcpId), []);
  t.equal(tables.frontends.get({ addr: VIP.tcp, port: 80, proto: IPPROTO.TCP, scope: 0 })?.flags, 0, 'AFFINITY flag cleared');
  t.equal(writer.flushConntrack(noAffinity.key), 4);
  t.same(tables.ct.entries().filter(([, v]) => v.svc_id === tcpId), []);
  t.throws(() => writer.flushConntrack('default/nope:/TCP/IPv4'), /no programmed service port "default\/nope:\/TCP\/IPv4"/);
});

t.test('a failed flow cleanup is retried by the next apply', async (t) => {
  const { tables, writer, udpId } = setup();
  const stop = tables.failWhen({ map: 'sl_ct4', op: 'delete', code: 'EIO', times: 1 });
  let res = writer.apply(desired(udpSvc(2), tcpSvc(1, 2)));
  t.match(res.errors, [{ message: /cleaning flows of removed backends.*EIO/ }]);
  t.ok(ctTo(tables, udpId, '10.1.0.1').length > 0, 'one entry left behind');
  stop();
  res = writer.apply(desired(udpSvc(2), tcpSvc(1, 2)));
  t.same(res.errors, []);
  t.same(ctTo(tables, udpId, '10.1.0.1'), [], 'retried and done');
});
