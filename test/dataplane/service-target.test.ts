// DesiredServicePort → map entries: flags per frontend kind, the block layout (Cluster set, then
// Local set), backend flags, and clear errors for values the maps cannot hold.
import t from 'tap';
import { BE_F, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { frontendAddrKey, frontendKinds, kindAt, kindEntries } from '../../src/dataplane/apply-plan.js';
import { serviceTarget } from '../../src/dataplane/service-target.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { backend, desired, svcPort } from './helpers.js';

const allKinds = svcPort({
  name: 'lb',
  frontends: [
    { kind: 'ClusterIP', ip: '10.96.0.10', port: 80 },
    { kind: 'NodePort', ip: '192.168.1.5', port: 30080 },
    { kind: 'ExternalIP', ip: '192.0.2.7', port: 80 },
    { kind: 'LoadBalancer', ip: '203.0.113.9', port: 80 },
  ],
  sourceRanges: ['198.51.100.0/24'],
  externalLocal: true,
  affinity: 300,
});

t.test('flags per frontend kind', async (t) => {
  const target = serviceTarget(allKinds);
  const flags = Object.fromEntries([...target.frontends.values()].map((f) => [f.kind, f.flags]));
  const base = SVC_F.EXTERNAL_LOCAL | SVC_F.AFFINITY;
  const kind = (k: keyof typeof FRONTEND_KIND) => FRONTEND_KIND[k] << SVC_F_KIND_SHIFT;
  t.same(flags, {
    ClusterIP: base,
    NodePort: base | SVC_F.EXTERNAL | kind('NodePort'),
    ExternalIP: base | SVC_F.EXTERNAL | kind('ExternalIP'),
    LoadBalancer: base | SVC_F.EXTERNAL | SVC_F.SRC_RANGES | kind('LoadBalancer'),
  }, 'source ranges only on LoadBalancer VIPs; each frontend carries its kind (bits 8-9)');
  t.equal(target.affinityTimeoutSec, 300);
  t.equal(target.proto, IPPROTO.TCP);
  t.equal(serviceTarget(svcPort({ protocol: 'UDP' })).proto, IPPROTO.UDP);
  t.equal(serviceTarget(svcPort({ protocol: 'SCTP' })).proto, IPPROTO.SCTP);
  const itp = serviceTarget(svcPort({ internalLocal: true }));
  t.equal([...itp.frontends.values()][0]?.flags, SVC_F.INTERNAL_LOCAL);
});

t.test('block layout and backend flags', async (t) => {
  const port = svcPort({
    backends: [backend('10.1.0.1', 80, { nodeName: 'n1' }), backend('10.1.0.2', 80, { local: true, nodeName: 'me', terminating: true })],
    local: [backend('10.1.0.2', 80, { local: true, nodeName: 'me', terminating: true })],
  });
  const target = serviceTarget(port, { nodeAddress: (n) => (n === 'n1' ? '192.168.1.1' : undefined) });
  t.equal(target.count, 2);
  t.equal(target.localCount, 1);
  t.same(target.block, [
    { addr: '10.1.0.1', port: 80, flags: 0, node_addr: '192.168.1.1' },
    { addr: '10.1.0.2', port: 80, flags: BE_F.LOCAL | BE_F.TERMINATING, node_addr: '0.0.0.0' },
    { addr: '10.1.0.2', port: 80, flags: BE_F.LOCAL | BE_F.TERMINATING, node_addr: '0.0.0.0' },
  ]);
});

t.test('the same address listed twice is one frontend with both kinds\' flags, counted under the first kind', async (t) => {
  const port = svcPort({ frontends: [{ kind: 'ExternalIP', ip: '192.0.2.7', port: 80 }, { kind: 'LoadBalancer', ip: '192.0.2.7', port: 80 }], sourceRanges: ['0.0.0.0/0'] });
  const target = serviceTarget(port);
  t.equal(target.frontends.size, 1);
  t.equal([...target.frontends.values()][0]?.flags, SVC_F.EXTERNAL | SVC_F.SRC_RANGES | (FRONTEND_KIND.ExternalIP << SVC_F_KIND_SHIFT));
});

t.test('a LoadBalancer closed to its family (ranges of the other family only) is flagged like one with ranges', async (t) => {
  const lb = [{ kind: 'LoadBalancer' as const, ip: '2001:db8::1', port: 80 }, { kind: 'NodePort' as const, ip: '2001:db8::2', port: 30080 }];
  const closed = serviceTarget({ ...svcPort({ family: 'IPv6', frontends: lb, backends: [backend('fd00::5')] }), loadBalancerSourcesClosed: true });
  const flags = [...closed.frontends.values()].map((f) => f.flags & (SVC_F.SRC_RANGES | SVC_F.EXTERNAL));
  t.same(flags, [SVC_F.EXTERNAL | SVC_F.SRC_RANGES, SVC_F.EXTERNAL], 'the LoadBalancer IP restricted (to nothing), the NodePort not');
  const open = serviceTarget(svcPort({ family: 'IPv6', frontends: lb, backends: [backend('fd00::5')] }));
  t.equal(([...open.frontends.values()][0]?.flags ?? -1) & SVC_F.SRC_RANGES, 0, 'without ranges: open');
});

t.test('bad values are errors naming the service port, field and value', async (t) => {
  const cases: Array<[Parameters<typeof svcPort>[0], RegExp]> = [
    [{ frontends: [{ kind: 'ClusterIP', ip: 'fd00::1', port: 80 }] }, /frontends\[0\]\.ip "fd00::1" is not an IPv4 address/],
    [{ frontends: [{ kind: 'ClusterIP', ip: '10.96.0.1', port: 0 }] }, /frontends\[0\]\.port 0 is not a port number/],
    [{ backends: [backend('10.1.0.1', 1.5)] }, /clusterBackends\[0\]\.port 1\.5/],
    [{ local: [backend('nope')] }, /localBackends\[0\]\.ip "nope"/],
    [{ affinity: -1 }, /affinityTimeoutSec -1 is not a whole number/],
    [{ name: 'x'.repeat(200) }, /key ".*" is longer than 191 bytes/],
  ];
  for (const [spec, re] of cases) t.throws(() => serviceTarget(svcPort(spec)), re);
  t.throws(() => serviceTarget({ ...svcPort(), protocol: 'ICMP' as never }), /service port default\/web:\/TCP\/IPv4: protocol "ICMP" is not TCP, UDP or SCTP/);
});

t.test('the writer programs flags as the target says; IPv6 ports are skipped with a note', async (t) => {
  const tables = new MemoryServiceTables();
  const res = new ServiceTableWriter({ tables }).apply(desired(allKinds, svcPort({ name: 'v6', family: 'IPv6', vip: 'fd00::10' })));
  t.same(res.errors, []);
  t.equal(res.services.unsupportedFamily, 1);
  t.match(res.notes, [/1 IPv6 service port\(s\) skipped: unsupported family/]);
  const nodePort = tables.frontends.get({ addr: '192.168.1.5', port: 30080, proto: IPPROTO.TCP, scope: 0 });
  t.match(nodePort, { flags: SVC_F.EXTERNAL_LOCAL | SVC_F.AFFINITY | SVC_F.EXTERNAL | (FRONTEND_KIND.NodePort << SVC_F_KIND_SHIFT), affinity_timeout_s: 300, count: 2 });
  t.equal(tables.frontends.size, 4);
});

t.test('a desired state holding an address twice is refused for the second port (the model settles conflicts)', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const a = svcPort({ name: 'a', vip: '10.96.0.10' });
  const b = svcPort({ name: 'b', vip: '10.96.0.10' });
  const res = writer.apply(desired(b, a));
  t.match(res.errors, [{ key: b.key, message: /service port default\/b:\/TCP\/IPv4: frontend 10\.96\.0\.10:80\/TCP is also a frontend of default\/a:\/TCP\/IPv4 .*kept as programmed/ }]);
  t.equal(tables.frontends.size, 1, 'only the first port is programmed');
  t.equal(tables.frontends.entries()[0]?.[1].svc_id, writer.serviceId(a.key));
  t.equal(writer.frontendKind(a.key, '10.96.0.10', 80), 'ClusterIP');
  t.equal(writer.serviceId(b.key), undefined, 'nothing of the second');
});

t.test('frontend kinds: a lone ClusterIP is its bare ip|port, anything else a Map; both read the same', async (t) => {
  const lone = frontendKinds([[frontendAddrKey('10.96.0.1', 80), 'ClusterIP']]);
  t.equal(lone, '10.96.0.1|80', 'stored bare');
  t.equal(kindAt(lone, '10.96.0.1|80'), 'ClusterIP');
  t.equal(kindAt(lone, '10.96.0.1|81'), undefined);
  t.same([...kindEntries(lone)], [['10.96.0.1|80', 'ClusterIP']]);
  const nodePort = frontendKinds([[frontendAddrKey('192.0.2.1', 30080), 'NodePort']]);
  t.ok(nodePort instanceof Map, 'a lone NodePort keeps its kind in a Map');
  t.equal(kindAt(nodePort, '192.0.2.1|30080'), 'NodePort');
  const several = frontendKinds([[frontendAddrKey('10.96.0.1', 80), 'ClusterIP'], [frontendAddrKey('203.0.113.7', 80), 'LoadBalancer']]);
  t.same([...kindEntries(several)], [['10.96.0.1|80', 'ClusterIP'], ['203.0.113.7|80', 'LoadBalancer']]);
  t.equal(kindAt(several, '203.0.113.7|80'), 'LoadBalancer');
  t.same([...kindEntries(frontendKinds([]))], []);
  t.same([...kindEntries(undefined)], []);
  t.equal(kindAt(undefined, 'x'), undefined);
});
