import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { startEchoServer, runEchoClient } from '../../src/testbed/echo.js';
import { ipIn, listNetns, getSysctl } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology, NODE_IP, POD_GATEWAY } from '../../src/testbed/topology.js';

t.test('node with pods: pods reach each other through the node, and nothing else', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  t.teardown(() => run.destroy());

  const topo = await createTopology(run, { pods: 3, externals: 1 });
  const [p0, p1, p2] = topo.pods;
  const [ext] = topo.externals;
  if (!p0 || !p1 || !p2 || !ext) throw new Error('topology is missing attachments');
  t.same(topo.pods.map((p) => p.ip), ['10.244.0.10', '10.244.0.11', '10.244.0.12']);
  t.equal(p0.gateway, POD_GATEWAY);
  t.equal(ext.gateway, NODE_IP);
  t.equal(ext.ip, '192.0.2.10');
  t.ok(topo.pods.every((p) => p.hostIfname.startsWith(`veth${run.prefix}p`) && p.hostIfname.length <= 15));
  t.equal(new Set(topo.pods.map((p) => p.hostIfindex)).size, 3, 'host ifindexes are distinct');
  t.equal(await getSysctl(topo.nodeNs, 'net.ipv4.ip_forward'), '1');

  // No way out: the node has no default route, pods only route to the node.
  const nodeRoutes = (await ipIn(topo.nodeNs, ['route', 'show'])).stdout;
  t.notMatch(nodeRoutes, /default/, 'node namespace has no default route');
  const podRoutes = (await ipIn(p0.ns, ['route', 'show'])).stdout;
  t.match(podRoutes, new RegExp(`default via ${POD_GATEWAY.replace(/\./g, '\\.')} dev eth0`));

  await startEchoServer(run, { ns: p1.ns, name: p1.name, tcp: [8080], udp: [5353] });
  await startEchoServer(run, { ns: p2.ns, name: p2.name, tcp: [8080] });

  const tcp = await runEchoClient({ ns: p0.ns, proto: 'tcp', host: p1.ip, port: 8080, count: 3 });
  t.equal(tcp.length, 3);
  for (const a of tcp) {
    t.ok(a.ok, `TCP attempt ${a.i}: ${JSON.stringify(a.error ?? '')}`);
    t.equal(a.pod, 'pod1', 'answered by pod1');
    t.equal(a.seenPeer?.address, p0.ip, 'pod1 saw pod0\'s own address (routed, no NAT)');
    t.equal(a.seenPeer?.port, a.local?.port, 'and its source port');
    t.equal(a.echo, 'hello');
  }
  t.equal(new Set(tcp.map((a) => a.local?.port)).size, 3, 'each attempt is a fresh socket');

  const udp = await runEchoClient({ ns: p0.ns, proto: 'udp', host: p1.ip, port: 5353, count: 2 });
  t.ok(udp.every((a) => a.ok && a.pod === 'pod1' && a.seenPeer?.address === p0.ip), JSON.stringify(udp));

  const fromExt = await runEchoClient({ ns: ext.ns, proto: 'tcp', host: p2.ip, port: 8080 });
  t.equal(fromExt[0]?.pod, 'pod2', 'an external client reaches a pod through the node');
  t.equal(fromExt[0]?.seenPeer?.address, ext.ip);

  // A service VIP with nothing translating it dies in the node namespace, fast.
  const vip = await runEchoClient({ ns: p0.ns, proto: 'tcp', host: '10.96.0.10', port: 80, timeoutMs: 3000 });
  t.equal(vip[0]?.ok, false);
  t.match(vip[0]?.error?.code, /^(EHOSTUNREACH|ENETUNREACH)$/, `untranslated VIP is unreachable: ${JSON.stringify(vip[0])}`);

  const names = [topo.nodeNs, ...topo.pods.map((p) => p.ns), ext.ns];
  await topo.destroy();
  const left = await listNetns();
  t.same(names.filter((n) => left.includes(n)), [], 'destroy removed every namespace');
});

t.test('bad topology options are refused', async (t) => {
  const fakeRun = {} as TestbedRun;
  await t.rejects(createTopology(fakeRun, { pods: ['a', 'a'] }), /must be unique/);
  await t.rejects(createTopology(fakeRun, { pods: ['node'] }), /not "node"/);
  await t.rejects(createTopology(fakeRun, { pods: 1, externals: -1 }), /0-200 each/);
});
