// The kube-proxy-shaped rule generator (src/testbed/kube-proxy-rules.ts), on the text alone:
// chain names as kube-proxy hashes them (checked against vectors from kube-proxy's own tests),
// the KUBE-SERVICES → KUBE-SVC → statistic split → KUBE-SEP chain with its marks, NodePorts,
// external IPs, source ranges, the filter table's rejects and drops, affinity.
import t from 'tap';
import { base32Std, cidrContains, endpointChain, kubeProxyRules, portProtoHash, probability } from '../../src/testbed/kube-proxy-rules.js';
import { compute, ep, node, NODE, service, slice } from '../model/builders.js';

const lines = (text: string) => text.split('\n');
const rulesOf = (text: string, chain: string) => lines(text).filter((l) => l.startsWith(`-A ${chain} `));

t.test('names: base32 and sha256 exactly as kube-proxy', async (t) => {
  t.equal(base32Std(Buffer.from('foobar')), 'MZXW6YTBOI======', 'RFC 4648 test vector');
  t.equal(base32Std(Buffer.from('f')), 'MY======');
  // From pkg/proxy/iptables/proxier_test.go: ns1/svc1:p80 over TCP, endpoint 10.180.0.1:80.
  t.equal(`KUBE-SVC-${portProtoHash('ns1/svc1:p80', 'TCP')}`, 'KUBE-SVC-XPGD46QRK7WJZT7O');
  t.equal(endpointChain('ns1/svc1:p80', 'TCP', '10.180.0.1:80'), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
  t.equal(probability(3), '0.3333333333');
  t.equal(probability(2), '0.5000000000');
});

t.test('a ClusterIP service with three endpoints', async (t) => {
  const r = compute({
    services: [service('web', { clusterIP: '10.96.0.10' })],
    slices: [slice('web', [ep('10.244.1.3', { node: NODE }), ep('10.244.1.1', { node: NODE }), ep('10.244.2.2', { node: 'other' })])],
  });
  const k = kubeProxyRules(r.state, { clusterCidr: '10.244.0.0/16' });
  const names = k.chains.get('default/web:http/TCP/IPv4');
  t.ok(names, 'chains recorded by service port key');
  const svc = `KUBE-SVC-${portProtoHash('default/web:http', 'TCP')}`;
  t.equal(names?.svc, svc);
  t.match(k.nat, /^\*nat\n/);
  t.match(k.nat, /\nCOMMIT\n$/);
  t.ok(k.nat.includes(`:${svc} - [0:0]`), 'the chain is declared');
  t.same(rulesOf(k.nat, 'KUBE-SERVICES'), [
    `-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10/32 --dport 80 -j ${svc}`,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  ]);
  const eps = ['10.244.1.1:8080', '10.244.1.3:8080', '10.244.2.2:8080'];
  const seps = eps.map((e) => endpointChain('default/web:http', 'TCP', e));
  t.same(names?.seps, seps, 'one KUBE-SEP per endpoint, in the model\'s (sorted) order');
  t.same(rulesOf(k.nat, svc), [
    `-A ${svc} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10/32 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
    `-A ${svc} -m comment --comment "default/web:http -> 10.244.1.1:8080" -m statistic --mode random --probability 0.3333333333 -j ${seps[0]}`,
    `-A ${svc} -m comment --comment "default/web:http -> 10.244.1.3:8080" -m statistic --mode random --probability 0.5000000000 -j ${seps[1]}`,
    `-A ${svc} -m comment --comment "default/web:http -> 10.244.2.2:8080" -j ${seps[2]}`,
  ], 'masquerade mark for non-pod sources, then 1/(n-i) splits, the last unconditional');
  t.same(rulesOf(k.nat, seps[0] as string), [
    `-A ${seps[0]} -m comment --comment "default/web:http" -s 10.244.1.1/32 -j KUBE-MARK-MASQ`,
    `-A ${seps[0]} -m comment --comment "default/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.1:8080`,
  ], 'hairpin mark, then DNAT');
  t.same(rulesOf(k.nat, 'KUBE-POSTROUTING'), [
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ]);
  t.same(rulesOf(k.nat, 'KUBE-MARK-MASQ'), ['-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000']);
  t.same(rulesOf(k.filter, 'KUBE-SERVICES'), [], 'nothing rejected');
  t.equal(k.text, k.filter + k.nat);
  t.equal(k.rules.nat, lines(k.nat).filter((l) => l.startsWith('-A ')).length);
});

t.test('NodePort, external IP and LoadBalancer with source ranges go through KUBE-EXT', async (t) => {
  const r = compute({
    services: [service('lb', {
      type: 'LoadBalancer', clusterIP: '10.96.0.20', externalIPs: ['198.51.100.7'], loadBalancerSourceRanges: ['203.0.113.0/24'],
      ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }],
    }, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.50' }] } } })],
    slices: [slice('lb', [ep('10.244.1.1', { node: NODE })])],
  });
  const k = kubeProxyRules(r.state, { clusterCidr: '10.244.0.0/16' });
  const h = portProtoHash('default/lb:http', 'TCP');
  t.same(rulesOf(k.nat, 'KUBE-NODEPORTS'), [`-A KUBE-NODEPORTS -m comment --comment "default/lb:http" -m tcp -p tcp --dport 30080 -j KUBE-EXT-${h}`]);
  t.same(rulesOf(k.nat, `KUBE-EXT-${h}`), [
    `-A KUBE-EXT-${h} -m comment --comment "masquerade traffic for default/lb:http external destinations" -j KUBE-MARK-MASQ`,
    `-A KUBE-EXT-${h} -j KUBE-SVC-${h}`,
  ]);
  const services = rulesOf(k.nat, 'KUBE-SERVICES');
  t.ok(services.includes(`-A KUBE-SERVICES -m comment --comment "default/lb:http external IP" -m tcp -p tcp -d 198.51.100.7/32 --dport 80 -j KUBE-EXT-${h}`));
  t.ok(services.includes(`-A KUBE-SERVICES -m comment --comment "default/lb:http loadbalancer IP" -m tcp -p tcp -d 192.0.2.50/32 --dport 80 -j KUBE-FW-${h}`));
  t.same(rulesOf(k.nat, `KUBE-FW-${h}`), [`-A KUBE-FW-${h} -m comment --comment "default/lb:http loadbalancer IP" -s 203.0.113.0/24 -j KUBE-EXT-${h}`]);
  t.same(rulesOf(k.filter, 'KUBE-PROXY-FIREWALL'), [
    `-A KUBE-PROXY-FIREWALL -m comment --comment "default/lb:http traffic not accepted by KUBE-FW-${h}" -m tcp -p tcp -d 192.0.2.50/32 --dport 80 -j DROP`,
  ]);
  t.match(services.at(-1), /KUBE-NODEPORTS$/, 'the NodePort jump stays last');
});

t.test('no endpoints: rejects in the filter table; Local policies without local endpoints drop', async (t) => {
  const r = compute({
    services: [
      service('empty', { type: 'NodePort', clusterIP: '10.96.0.30', ports: [{ name: 'http', port: 80, nodePort: 30030, protocol: 'TCP' }] }),
      service('remote', { type: 'NodePort', clusterIP: '10.96.0.31', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30031, protocol: 'TCP' }] }),
    ],
    slices: [slice('remote', [ep('10.244.2.2', { node: 'other' })])],
    nodes: [node(NODE, ['192.168.0.10'])],
  });
  const k = kubeProxyRules(r.state);
  t.same(rulesOf(k.filter, 'KUBE-SERVICES').filter((l) => l.includes('default/')), [
    '-A KUBE-SERVICES -m comment --comment "default/empty:http has no endpoints" -m tcp -p tcp -d 10.96.0.30/32 --dport 80 -j REJECT',
  ]);
  t.same(rulesOf(k.filter, 'KUBE-EXTERNAL-SERVICES'), [
    '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/empty:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30030 -j REJECT',
    '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/remote:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30031 -j DROP',
  ]);
  t.notOk(k.nat.includes('default/empty'), 'no nat rules for a service without endpoints');
  t.ok(rulesOf(k.nat, 'KUBE-SERVICES').some((l) => l.includes('default/remote:http cluster IP')), 'the ClusterIP of the Local service still serves from the cluster set');
  t.same(rulesOf(k.filter, 'KUBE-FORWARD')[0], '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP');
});

t.test('ClientIP affinity: recent-module checks before the split, --set at DNAT', async (t) => {
  const r = compute({
    services: [service('sticky', { clusterIP: '10.96.0.40', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } })],
    slices: [slice('sticky', [ep('10.244.1.1', { node: NODE }), ep('10.244.1.2', { node: NODE })])],
  });
  const k = kubeProxyRules(r.state);
  const h = portProtoHash('default/sticky:http', 'TCP');
  const [sep1] = k.chains.get('default/sticky:http/TCP/IPv4')?.seps ?? [];
  const svc = rulesOf(k.nat, `KUBE-SVC-${h}`);
  t.equal(svc.length, 4, 'two affinity checks, two splits (no masquerade rule without a cluster CIDR)');
  t.equal(svc[0], `-A KUBE-SVC-${h} -m comment --comment "default/sticky:http -> 10.244.1.1:8080" -m recent --name ${sep1} --rcheck --seconds 600 --reap -j ${sep1}`);
  t.match(rulesOf(k.nat, sep1 as string)[1], /-m recent --name KUBE-SEP-\S+ --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.1:8080$/);
});

t.test('externalTrafficPolicy Local: KUBE-EXT short-circuits pods and the node even without a local endpoint', async (t) => {
  const ports = [{ name: 'http', port: 80, nodePort: 30050, protocol: 'TCP' }];
  const r = compute({
    services: [
      service('far', { type: 'LoadBalancer', clusterIP: '10.96.0.50', externalTrafficPolicy: 'Local', healthCheckNodePort: 32050, ports },
        { status: { loadBalancer: { ingress: [{ ip: '192.0.2.60' }] } } }),
      service('near', { type: 'NodePort', clusterIP: '10.96.0.51', externalTrafficPolicy: 'Local', ports: [{ ...ports[0], nodePort: 30051 }] }),
    ],
    slices: [slice('far', [ep('10.244.2.2', { node: 'other' })]), slice('near', [ep('10.244.1.5', { node: NODE })])],
    nodes: [node(NODE, ['192.168.0.10'])],
  });
  const k = kubeProxyRules(r.state, { clusterCidr: '10.244.0.0/16' });
  const far = portProtoHash('default/far:http', 'TCP');
  const near = portProtoHash('default/near:http', 'TCP');
  t.same(rulesOf(k.nat, `KUBE-EXT-${far}`), [
    `-A KUBE-EXT-${far} -m comment --comment "pod traffic for default/far:http external destinations" -s 10.244.0.0/16 -j KUBE-SVC-${far}`,
    `-A KUBE-EXT-${far} -m comment --comment "masquerade LOCAL traffic for default/far:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
    `-A KUBE-EXT-${far} -m comment --comment "route LOCAL traffic for default/far:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-${far}`,
  ], 'no local endpoint: the short-circuits only, no jump to a KUBE-SVL');
  t.notOk(k.nat.includes(`KUBE-SVL-${far}`), 'no KUBE-SVL chain without local endpoints');
  t.ok(rulesOf(k.nat, 'KUBE-NODEPORTS').includes(`-A KUBE-NODEPORTS -m comment --comment "default/far:http" -m tcp -p tcp --dport 30050 -j KUBE-EXT-${far}`),
    'the NodePort still jumps to KUBE-EXT (pods and the node are served from the cluster set)');
  t.ok(rulesOf(k.nat, 'KUBE-SERVICES').some((l) => l.includes('-d 192.0.2.60/32') && l.endsWith(`-j KUBE-EXT-${far}`)), 'so does the LoadBalancer IP');
  t.same(rulesOf(k.filter, 'KUBE-EXTERNAL-SERVICES'), [
    '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/far:http has no local endpoints" -m tcp -p tcp -d 192.0.2.60/32 --dport 80 -j DROP',
    '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/far:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30050 -j DROP',
  ], 'and what KUBE-EXT did not translate is dropped in the filter table');
  t.same(rulesOf(k.filter, 'KUBE-NODEPORTS'), [
    '-A KUBE-NODEPORTS -m comment --comment "default/far:http health check node port" -m tcp -p tcp --dport 32050 -j ACCEPT',
  ], 'the healthCheckNodePort is accepted');
  t.equal(rulesOf(k.nat, `KUBE-EXT-${near}`).at(-1), `-A KUBE-EXT-${near} -j KUBE-SVL-${near}`, 'with a local endpoint the rest goes to KUBE-SVL');
});

t.test('loadBalancerSourceRanges containing the node admit the LoadBalancer IP as a source', async (t) => {
  const r = compute({
    services: [service('lb', {
      type: 'LoadBalancer', clusterIP: '10.96.0.60', loadBalancerSourceRanges: ['192.168.0.0/24'], ports: [{ name: 'http', port: 80, nodePort: 30060, protocol: 'TCP' }],
    }, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.70' }] } } })],
    slices: [slice('lb', [ep('10.244.1.1', { node: NODE })])],
  });
  const h = portProtoHash('default/lb:http', 'TCP');
  const inside = kubeProxyRules(r.state, { nodeIp: '192.168.0.10' });
  t.same(rulesOf(inside.nat, `KUBE-FW-${h}`).map((l) => l.replace(/.*(-s \S+ -j \S+)$/, '$1')), [`-s 192.168.0.0/24 -j KUBE-EXT-${h}`, `-s 192.0.2.70/32 -j KUBE-EXT-${h}`]);
  const outside = kubeProxyRules(r.state, { nodeIp: '10.1.1.1' });
  t.equal(rulesOf(outside.nat, `KUBE-FW-${h}`).length, 1, 'a node outside the ranges: the ranges only');
});

// A dual-stack Service, as kube-proxy's two proxiers (one per family) see it.
function dualStack() {
  return compute({
    services: [service('web', {
      type: 'LoadBalancer', clusterIP: '10.96.0.70', clusterIPs: ['10.96.0.70', 'fd00:96::70'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
      loadBalancerSourceRanges: ['fd00:50::/64'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
      ports: [{ name: 'http', port: 80, nodePort: 30070, protocol: 'TCP' }],
    }, { status: { loadBalancer: { ingress: [{ ip: 'fd00:60::1' }] } } })],
    slices: [
      slice('web', [ep('10.244.1.1', { node: NODE })], { name: 'web-v4' }),
      slice('web', [ep('fd00:10:244:1::a', { node: NODE }), ep('fd00:10:244:2::b', { node: 'other' })], { name: 'web-v6', addressType: 'IPv6' }),
    ],
    nodes: [node(NODE, ['192.168.0.10', 'fd00:50::10'])],
    config: { families: ['IPv4', 'IPv6'] },
  });
}

t.test('IPv6 (ip6tables-restore input): the same chains, /128 hosts, bracketed endpoints, no ::1 NodePorts', async (t) => {
  const r = dualStack();
  t.same(r.errors, []);
  const k = kubeProxyRules(r.state, { family: 'IPv6', clusterCidr: 'fd00:10:244::/48', nodeIp: 'fd00:50::10' });
  const h = portProtoHash('default/web:http', 'TCP');
  const svc = `KUBE-SVC-${h}`;
  const names = k.chains.get('default/web:http/TCP/IPv6');
  t.ok(names, 'the IPv6 service port, by its key');
  t.notOk(k.chains.has('default/web:http/TCP/IPv4'), 'and not the IPv4 one');
  t.equal(names?.svc, svc, 'the same chain name as the IPv4 proxier\'s: the name hashes the service port, not its family');
  const eps = ['[fd00:10:244:1::a]:8080', '[fd00:10:244:2::b]:8080'];
  const seps = eps.map((e) => endpointChain('default/web:http', 'TCP', e));
  t.same(names?.seps, seps, 'endpoint chains hash kube-proxy\'s "[ip]:port"');
  t.ok(rulesOf(k.nat, 'KUBE-SERVICES').includes(`-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d fd00:96::70/128 --dport 80 -j ${svc}`));
  t.ok(rulesOf(k.nat, 'KUBE-SERVICES').includes(`-A KUBE-SERVICES -m comment --comment "default/web:http loadbalancer IP" -m tcp -p tcp -d fd00:60::1/128 --dport 80 -j KUBE-FW-${h}`));
  t.equal(rulesOf(k.nat, 'KUBE-SERVICES').at(-1),
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS',
    'the NodePort jump last, never for ::1 (IPv6 has no localhost NodePorts)');
  const svcRules = rulesOf(k.nat, svc);
  t.equal(svcRules[0], `-A ${svc} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d fd00:96::70/128 --dport 80 ! -s fd00:10:244::/48 -j KUBE-MARK-MASQ`,
    'masquerade from outside the IPv6 cluster CIDR');
  t.equal(svcRules[1], `-A ${svc} -m comment --comment "default/web:http -> ${eps[0]}" -m recent --name ${seps[0]} --rcheck --seconds 600 --reap -j ${seps[0]}`);
  t.equal(svcRules.at(-1), `-A ${svc} -m comment --comment "default/web:http -> ${eps[1]}" -j ${seps[1]}`);
  t.same(rulesOf(k.nat, seps[0] as string), [
    `-A ${seps[0]} -m comment --comment "default/web:http" -s fd00:10:244:1::a/128 -j KUBE-MARK-MASQ`,
    `-A ${seps[0]} -m comment --comment "default/web:http" -m recent --name ${seps[0]} --set -m tcp -p tcp -j DNAT --to-destination ${eps[0]}`,
  ], 'hairpin mark on /128, DNAT to [ip]:port');
  t.same(rulesOf(k.nat, `KUBE-FW-${h}`).map((l) => l.replace(/.*(-s \S+ -j \S+)$/, '$1')), [`-s fd00:50::/64 -j KUBE-EXT-${h}`, `-s fd00:60::1/128 -j KUBE-EXT-${h}`],
    'an IPv6 source range holding the node\'s IPv6 address admits the LoadBalancer IP');
  t.notOk(k.text.includes('10.96.0.70') || k.text.includes('10.244.1.1'), 'nothing of the IPv4 service port');
  t.match(k.nat, /^\*nat\n/);

  const v4 = kubeProxyRules(r.state, { clusterCidr: '10.244.0.0/16', nodeIp: '192.168.0.10' });
  t.ok(v4.chains.has('default/web:http/TCP/IPv4') && !v4.chains.has('default/web:http/TCP/IPv6'), 'the IPv4 ruleset (the default) has the IPv4 port only');
  t.notOk(v4.text.includes('fd00:'), 'and no IPv6 address');
  t.equal(rulesOf(v4.nat, 'KUBE-SERVICES').at(-1)?.endsWith('--dst-type LOCAL -j KUBE-NODEPORTS'), true, 'IPv4 keeps localhost NodePorts');
});

t.test('cidrContains: both families, never across them', async (t) => {
  t.ok(cidrContains('192.168.0.0/24', '192.168.0.10'));
  t.notOk(cidrContains('192.168.0.0/24', '192.168.1.10'));
  t.ok(cidrContains('fd00:50::/64', 'fd00:50::10'));
  t.notOk(cidrContains('fd00:50::/64', 'fd00:51::10'));
  t.notOk(cidrContains('0.0.0.0/0', 'fd00::1'), 'an IPv4 range holds no IPv6 address');
  t.notOk(cidrContains('not-a-cidr', '10.0.0.1'));
});
