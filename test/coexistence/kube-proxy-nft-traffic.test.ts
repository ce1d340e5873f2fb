// The generated kube-proxy nftables-mode ruleset really serves: loaded with `nft -f` (one
// transaction) into the node namespace of a sandboxed node (pods in namespaces of their own), a
// ClusterIP spreads connections over its endpoints with the client's address kept and the answer
// coming from the ClusterIP, a pod reaching its own service lands on itself (hairpin,
// masqueraded), a service without endpoints is refused at once, and a second load replaces the
// first. One bed for all of it, dual-stack: the same again in IPv6 through the `ip6 kube-proxy` table.
import t from 'tap';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { IpFamily, ModelInput } from '../../src/model/types.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import { kubeProxyNftRules } from '../../src/testbed/kube-proxy-nft.js';
import { ipIn } from '../../src/testbed/netns.js';
import { nftList, nftLoad } from '../../src/testbed/nft.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology } from '../../src/testbed/topology.js';
import { requirePrivileges } from '../helpers/privileges.js';

// The echo servers listen on '::' (both families): an IPv4 peer shows as ::ffff:a.b.c.d.
const v4 = (address: string | undefined) => address?.replace(/^::ffff:/, '');

const VIP = '10.96.0.92';
const EMPTY_VIP = '10.96.0.93';
const VIP6 = 'fd00:96::92';
const EMPTY_VIP6 = 'fd00:96::93';

/** Service web (→ the given pods on 8080) and empty (no endpoints), as the API would hold them, in one family. */
function objects(endpoints: string[], family: IpFamily = 'IPv4'): ModelInput {
  const svc = (name: string, clusterIP: string) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
    spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ipFamilies: [family], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
  });
  const v6 = family === 'IPv6';
  return {
    services: [svc('web', v6 ? VIP6 : VIP), svc('empty', v6 ? EMPTY_VIP6 : EMPTY_VIP)] as ModelInput['services'],
    endpointSlices: [{
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: family, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: endpoints.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'node' })),
    }] as ModelInput['endpointSlices'],
    nodes: [{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] } }] as ModelInput['nodes'],
    nodeName: 'node',
    config: { families: [family], nodePortAddresses: [], serviceProxyName: '' },
  };
}

t.test('kube-proxy nftables-mode ruleset serves a ClusterIP in a sandboxed node', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const topo = await createTopology(run, { pods: ['client', 'web-a', 'web-b'], ipv6: true });
  const [client, webA, webB] = topo.pods as [typeof topo.pods[0], typeof topo.pods[0], typeof topo.pods[0]];
  await startEchoServer(run, { name: 'web-a', ns: webA.ns, tcp: [8080], host: '::' });
  await startEchoServer(run, { name: 'web-b', ns: webB.ns, tcp: [8080], host: '::' });

  const load = async (endpoints: string[], transactionServices?: number) => {
    const { state, errors } = computeDesiredState(objects(endpoints));
    t.same(errors, []);
    const rules = kubeProxyNftRules(state, { clusterCidr: '10.244.0.0/16', replace: true, ...(transactionServices ? { transactionServices } : {}) });
    for (const text of rules.transactions) await nftLoad(topo.nodeNs, text);
    return rules;
  };
  // Split into transactions of one service port each (how the connect bench loads large rulesets):
  // the table the kernel holds is the same as from one transaction.
  const split = await load([webA.ip, webB.ip], 1);
  t.equal(split.transactions.length, 2, 'two service ports, two transactions');
  const splitListing = await nftList(topo.nodeNs, ['table', 'ip', 'kube-proxy']);
  const rules = await load([webA.ip, webB.ip]);
  t.equal(rules.transactions.length, 1, 'unsplit: one transaction');
  t.equal(await nftList(topo.nodeNs, ['table', 'ip', 'kube-proxy']), splitListing, 'loaded split or whole, the same table');
  t.match(splitListing, /numgen random mod 2 vmap/, 'the listing compared holds the service chains');
  const chains = rules.chains.get('default/web:http/TCP/IPv4');
  t.ok(chains && chains.endpoints.length === 2, 'two endpoint chains');
  const serviceIps = await nftList(topo.nodeNs, ['map', 'ip', 'kube-proxy', 'service-ips']);
  t.match(serviceIps, `${VIP} . tcp . 80 : goto ${chains?.service}`, 'the ClusterIP is in the service-ips map, as loaded');

  const attempts = await runEchoClient({ ns: client.ns, proto: 'tcp', host: VIP, port: 80, count: 30, timeoutMs: 3000 });
  const byPod: Record<string, number> = {};
  for (const a of attempts) if (a.ok && a.pod) byPod[a.pod] = (byPod[a.pod] ?? 0) + 1;
  t.equal(attempts.filter((a) => a.ok).length, 30, 'every connection to the ClusterIP answered', { errors: attempts.filter((a) => !a.ok).map((a) => a.error) });
  t.same(Object.keys(byPod).sort(), ['web-a', 'web-b'], 'both endpoints answered (the numgen split works)', { byPod });
  t.ok(attempts.every((a) => a.peername?.address === VIP && a.peername.port === 80), 'the client\'s peer is the ClusterIP: the reply came back from it', { peers: attempts.map((a) => a.peername).slice(0, 3) });
  t.ok(attempts.every((a) => v4(a.seenPeer?.address) === client.ip), 'the endpoints saw the client pod\'s own address (no masquerade for pod sources)');

  const hairpin = await runEchoClient({ ns: webA.ns, proto: 'tcp', host: VIP, port: 80, count: 12, timeoutMs: 3000 });
  t.equal(hairpin.filter((a) => a.ok).length, 12, 'a pod reaching its own service always gets an answer', { errors: hairpin.filter((a) => !a.ok).map((a) => a.error) });
  const self = hairpin.filter((a) => a.pod === 'web-a');
  t.ok(self.length > 0 && self.every((a) => v4(a.seenPeer?.address) === webA.gateway), 'landing on itself, it sees the node\'s address (hairpin masquerade)', { seen: self.map((a) => a.seenPeer) });

  // A real node routes the service range somewhere (its default route), so a VIP nothing DNATs
  // is forwarded, where filter-forward's endpoints-check rejects it. The sandbox node has no way
  // out: a veth pair with both ends inside it stands for that route.
  await ipIn(topo.nodeNs, ['link', 'add', 'svcroute0', 'type', 'veth', 'peer', 'name', 'svcroute1']);
  for (const dev of ['svcroute0', 'svcroute1']) await ipIn(topo.nodeNs, ['link', 'set', dev, 'up']);
  await ipIn(topo.nodeNs, ['route', 'add', '10.96.0.0/12', 'dev', 'svcroute0']);
  const refused = await runEchoClient({ ns: client.ns, proto: 'tcp', host: EMPTY_VIP, port: 80, count: 3, timeoutMs: 3000 });
  t.ok(refused.every((a) => !a.ok && a.error?.code === 'ECONNREFUSED'), 'a service without endpoints is refused (no-endpoint-services → reject-chain)', { errors: refused.map((a) => a.error) });

  // A second load replaces the first in one transaction: web-a gone, every connection to web-b.
  await load([webB.ip]);
  const after = await runEchoClient({ ns: client.ns, proto: 'tcp', host: VIP, port: 80, count: 10, timeoutMs: 3000 });
  t.ok(after.every((a) => a.ok && a.pod === 'web-b'), 'after the reload, only web-b answers', { answers: after.map((a) => a.pod ?? a.error?.code) });
  const tables = await nftList(topo.nodeNs, ['tables']);
  t.equal(tables.trim(), 'table ip kube-proxy', 'one kube-proxy table, nothing else in the node namespace');

  // IPv6: kube-proxy's IPv6 proxier writes its own `ip6 kube-proxy` table beside the `ip` one.
  const s6 = computeDesiredState(objects([webA.ip6 as string, webB.ip6 as string], 'IPv6'));
  t.same(s6.errors, []);
  const rules6 = kubeProxyNftRules(s6.state, { family: 'IPv6', clusterCidr: 'fd00:10:244::/64', replace: true });
  await nftLoad(topo.nodeNs, rules6.text);
  const chains6 = rules6.chains.get('default/web:http/TCP/IPv6');
  t.match(await nftList(topo.nodeNs, ['map', 'ip6', 'kube-proxy', 'service-ips']), `${VIP6} . tcp . 80 : goto ${chains6?.service}`, 'IPv6: the ClusterIP is in the ip6 service-ips map');
  const attempts6 = await runEchoClient({ ns: client.ns, proto: 'tcp', host: VIP6, port: 80, count: 30, timeoutMs: 3000 });
  const byPod6: Record<string, number> = {};
  for (const a of attempts6) if (a.ok && a.pod) byPod6[a.pod] = (byPod6[a.pod] ?? 0) + 1;
  t.equal(attempts6.filter((a) => a.ok).length, 30, 'IPv6: every connection to the ClusterIP answered', { errors: attempts6.filter((a) => !a.ok).map((a) => a.error) });
  t.same(Object.keys(byPod6).sort(), ['web-a', 'web-b'], 'IPv6: both endpoints answered', { byPod6 });
  t.ok(attempts6.every((a) => a.seenPeer?.address === client.ip6), 'IPv6: the endpoints saw the client pod\'s own IPv6 address', { seen: attempts6.map((a) => a.seenPeer).slice(0, 3) });
  const hairpin6 = await runEchoClient({ ns: webA.ns, proto: 'tcp', host: VIP6, port: 80, count: 12, timeoutMs: 3000 });
  t.equal(hairpin6.filter((a) => a.ok).length, 12, 'IPv6: a pod reaching its own service always gets an answer', { errors: hairpin6.filter((a) => !a.ok).map((a) => a.error) });
  const self6 = hairpin6.filter((a) => a.pod === 'web-a');
  t.ok(self6.length > 0 && self6.every((a) => a.seenPeer?.address === webA.gateway6), 'IPv6: landing on itself, it sees the node\'s IPv6 address (hairpin masquerade)', { seen: self6.map((a) => a.seenPeer) });
  await ipIn(topo.nodeNs, ['-6', 'route', 'add', 'fd00:96::/64', 'dev', 'svcroute0']);
  const refused6 = await runEchoClient({ ns: client.ns, proto: 'tcp', host: EMPTY_VIP6, port: 80, count: 3, timeoutMs: 3000 });
  t.ok(refused6.every((a) => !a.ok && a.error?.code === 'ECONNREFUSED'), 'IPv6: a service without endpoints is refused (no-endpoint-services → reject-chain)', { errors: refused6.map((a) => a.error) });
  t.same((await nftList(topo.nodeNs, ['tables'])).trim().split('\n').sort(), ['table ip kube-proxy', 'table ip6 kube-proxy'], 'one table per family');
});
