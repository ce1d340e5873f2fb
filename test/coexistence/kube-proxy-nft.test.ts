// The kube-proxy nftables-mode generator (src/testbed/kube-proxy-nft.ts), on the text alone: the
// services kube-proxy's own nftables proxier tests use (pkg/proxy/nftables, 1.29) rebuilt as
// Service and EndpointSlice objects must give exactly the rules and map elements those tests
// expect — chain names with their hashes, the numgen split, the masquerade and hairpin marks,
// the Local policy's short-circuits, affinity sets, source ranges, the no-endpoint maps.
import t from 'tap';
import { hashAndTruncate, kubeProxyNftRules, nftEndpointChainBase, nftServiceChainBase } from '../../src/testbed/kube-proxy-nft.js';
import { compute, ep, node, service, slice } from '../model/builders.js';

const THIS_NODE = 'node-a';
const p80 = { ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] };
const eps80 = (ns: string, name: string, ips: [string, string][]) =>
  slice(name, ips.map(([ip, n]) => ep(ip, { node: n })), { namespace: ns, ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] });
const svc = (ns: string, name: string, spec: Record<string, unknown>, status?: Record<string, unknown>) =>
  service(name, { ...p80, ...spec }, { metadata: { namespace: ns }, ...(status ? { status } : {}) });
const ingress = (ip: string) => ({ loadBalancer: { ingress: [{ ip }] } });

/** kube-proxy's test services svc1, svc2, svc4, svc5, svc6 (pkg/proxy/nftables/proxier_test.go). */
function kubeProxyTestState() {
  return compute({
    nodes: [node(THIS_NODE, ['192.168.0.2'])],
    nodeName: THIS_NODE,
    services: [
      svc('ns1', 'svc1', { clusterIP: '172.30.0.41' }),
      svc('ns2', 'svc2', {
        type: 'LoadBalancer', clusterIP: '172.30.0.42', externalIPs: ['192.168.99.22'], externalTrafficPolicy: 'Local', healthCheckNodePort: 30000,
        ports: [{ name: 'p80', port: 80, nodePort: 3001, protocol: 'TCP' }],
      }, ingress('1.2.3.4')),
      svc('ns4', 'svc4', { clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'] }),
      svc('ns5', 'svc5', {
        type: 'LoadBalancer', clusterIP: '172.30.0.45', loadBalancerSourceRanges: ['203.0.113.0/25'],
        sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } },
        ports: [{ name: 'p80', port: 80, nodePort: 3002, protocol: 'TCP' }],
      }, ingress('5.6.7.8')),
      svc('ns6', 'svc6', { clusterIP: '172.30.0.46' }),
    ],
    slices: [
      eps80('ns1', 'svc1', [['10.180.0.1', THIS_NODE]]),
      eps80('ns2', 'svc2', [['10.180.0.2', 'node2']]),
      eps80('ns4', 'svc4', [['10.180.0.4', THIS_NODE], ['10.180.0.5', 'node2']]),
      eps80('ns5', 'svc5', [['10.180.0.3', THIS_NODE]]),
    ],
  });
}

t.test('names: hash and truncation as kube-proxy forms them', async (t) => {
  const id = (ns: string, name: string) => ({ namespace: ns, name, portName: 'p80', protocol: 'TCP' as const });
  // Vectors from kube-proxy's nftables tests.
  t.equal(`service-${nftServiceChainBase(id('ns1', 'svc1'))}`, 'service-ULMVA6XW-ns1/svc1/tcp/p80');
  t.equal(`endpoint-${nftEndpointChainBase(id('ns1', 'svc1'), '10.180.0.1', 80)}`, 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
  t.equal(`service-${nftServiceChainBase(id('ns2', 'svc2'))}`, 'service-42NFTM6N-ns2/svc2/tcp/p80');
  t.equal(`endpoint-${nftEndpointChainBase(id('ns1', 'svc1'), 'fd00:10:180::1', 80)}`, 'endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80', 'IPv6 colons become dots');
  const long = hashAndTruncate('x'.repeat(300));
  t.equal(long.length, 240, 'at most 240 characters');
  t.match(long, /^[A-Z2-7]{8}-x+\.\.\.$/, 'the hash kept, the end cut with "..."');
});

t.test('kube-proxy\'s own test services give the rules its tests expect', async (t) => {
  const r = kubeProxyTestState();
  t.same(r.errors, []);
  const k = kubeProxyNftRules(r.state, { clusterCidr: '10.0.0.0/8' });
  const lines = new Set(k.text.split('\n'));
  const expected = `
add table ip kube-proxy { comment "rules for kube-proxy" ; }
add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }
add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }
add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
add chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80
add chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80
add chain ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80
add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add chain ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy filter-prerouting ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump endpoints-check
add rule ip kube-proxy filter-input ct state new jump endpoints-check
add rule ip kube-proxy filter-output ct state new jump endpoints-check
add rule ip kube-proxy filter-output ct state new jump firewall-check
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy reject-chain reject
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add rule ip kube-proxy endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip kube-proxy endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-ips { 192.168.99.22 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }
add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop }
add element ip kube-proxy no-endpoint-services { 192.168.99.22 . tcp . 80 comment "ns2/svc2:p80" : drop }
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 goto service-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 ip saddr 10.180.0.5 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 meta l4proto tcp dnat to 10.180.0.5:80
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80
add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
add element ip kube-proxy service-ips { 192.168.99.33 . tcp . 80 : goto external-LAUZTJTB-ns4/svc4/tcp/p80 }
add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop
add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-ips { 5.6.7.8 . tcp . 80 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 comment "ns5/svc5:p80" : goto firewall-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }`.trim().split('\n');
  for (const line of expected) t.ok(lines.has(line), line);
  // Nothing beyond them but the base chains' declarations kube-proxy's dump lists too.
  const extra = [...lines].filter((l) => l && !expected.includes(l));
  t.same(extra.sort(), [
    'add chain ip kube-proxy endpoints-check', 'add chain ip kube-proxy firewall-check', 'add chain ip kube-proxy mark-for-masquerade',
    'add chain ip kube-proxy masquerading', 'add chain ip kube-proxy services',
  ], 'no other statement');
  t.equal(k.rules, k.text.split('\n').filter((l) => l.startsWith('add rule ')).length, 'rules counted');
  t.equal(k.elements, k.text.split('\n').filter((l) => l.startsWith('add element ')).length, 'elements counted');
  t.same(k.chains.get('ns4/svc4:p80/TCP/IPv4')?.endpoints, ['endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80', 'endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80']);
});

t.test('one transaction: declarations, then rules, then elements; replace deletes the old table first', async (t) => {
  const k = kubeProxyNftRules(kubeProxyTestState().state, { clusterCidr: '10.0.0.0/8', replace: true });
  const lines = k.text.trim().split('\n');
  t.same(lines.slice(0, 3), ['add table ip kube-proxy', 'delete table ip kube-proxy', 'add table ip kube-proxy { comment "rules for kube-proxy" ; }']);
  const kind = (l: string) => (/^add (chain|map|set) /.test(l) ? 0 : l.startsWith('add rule ') ? 1 : l.startsWith('add element ') ? 2 : -1);
  const kinds = lines.slice(3).map(kind);
  t.notOk(kinds.includes(-1), 'only add chain/map/set/rule/element after the table');
  t.same(kinds, [...kinds].sort((a, b) => a - b), 'every chain is declared before a rule or element names it');
});

t.test('the split: numgen over every endpoint once, a uniform share each', async (t) => {
  for (const n of [1, 3, 7]) {
    const ips = Array.from({ length: n }, (_, i) => `10.244.1.${10 + i}`);
    const r = compute({ services: [service('web', { clusterIP: '10.96.0.10' })], slices: [slice('web', ips.map((ip) => ep(ip, { node: 'node-a' })))] });
    const k = kubeProxyNftRules(r.state);
    const names = k.chains.get('default/web:http/TCP/IPv4');
    const split = k.text.split('\n').filter((l) => l.startsWith(`add rule ip kube-proxy ${names?.service} numgen`));
    t.equal(split.length, 1, `${n} endpoints: one numgen rule`);
    const m = /numgen random mod (\d+) vmap \{ (.*) \}$/.exec(split[0] ?? '');
    t.equal(Number(m?.[1]), n, `mod ${n}`);
    const entries = (m?.[2] ?? '').split(' , ').map((e) => /^(\d+) : goto (\S+)$/.exec(e));
    t.same(entries.map((e) => Number(e?.[1])), Array.from({ length: n }, (_, i) => i), 'keys 0 … n-1: each endpoint 1/n of new flows');
    t.same(entries.map((e) => e?.[2]), names?.endpoints, 'each endpoint chain once, in order');
    for (const [i, ip] of ips.entries()) t.ok(k.text.includes(`add rule ip kube-proxy ${names?.endpoints[i]} meta l4proto tcp dnat to ${ip}:8080`), `dnat to ${ip}`);
  }
});

t.test('traffic policies: Local internal policy, masquerade-all, no local endpoint', async (t) => {
  const r = compute({
    services: [
      service('itp', { clusterIP: '10.96.0.20', internalTrafficPolicy: 'Local' }),
      service('itp-none', { clusterIP: '10.96.0.21', internalTrafficPolicy: 'Local' }),
    ],
    slices: [slice('itp', [ep('10.244.1.1', { node: 'node-a' }), ep('10.244.2.1', { node: 'other' })]), slice('itp-none', [ep('10.244.2.2', { node: 'other' })])],
  });
  const k = kubeProxyNftRules(r.state, { masqueradeAll: true });
  const itp = k.chains.get('default/itp:http/TCP/IPv4');
  t.ok(k.text.includes(`add element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 : goto ${itp?.local} }`), 'the ClusterIP goes to the local chain');
  t.ok(k.text.includes(`add rule ip kube-proxy ${itp?.local} ip daddr 10.96.0.20 tcp dport 80 jump mark-for-masquerade`), 'masquerade-all marks every flow');
  t.ok(k.text.includes(`add rule ip kube-proxy ${itp?.local} numgen random mod 1 vmap`), 'over the one local endpoint');
  t.equal(itp?.endpoints.length, 1, 'only the local endpoint gets a chain');
  t.notOk(k.text.includes(`add chain ip kube-proxy ${itp?.service}`), 'no cluster chain: nothing uses it');
  t.ok(k.text.includes('add element ip kube-proxy no-endpoint-services { 10.96.0.21 . tcp . 80 comment "default/itp-none:http" : drop }'), 'no local endpoint: dropped, not rejected');
});

t.test('IPv6 service ports are left out (an ip-family table)', async (t) => {
  const r = compute({
    services: [service('v6', { clusterIP: 'fd00:96::10', clusterIPs: ['fd00:96::10'], ipFamilies: ['IPv6'] })],
    slices: [slice('v6', [ep('fd00:244::1', { node: 'node-a' })], { addressType: 'IPv6' })],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.ok([...r.state.services.values()].some((sp) => sp.family === 'IPv6'), 'the model has the IPv6 port');
  const k = kubeProxyNftRules(r.state);
  t.equal(k.elements, 0);
  t.equal(k.chains.size, 0);
});

t.test('IPv6: the ip6 kube-proxy table (one proxier per family), as setupNFTables writes it for IPv6', async (t) => {
  const r = compute({
    services: [service('web', {
      type: 'LoadBalancer', clusterIP: '10.96.0.70', clusterIPs: ['10.96.0.70', 'fd00:96::70'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
      loadBalancerSourceRanges: ['fd00:50::/64'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
      ports: [{ name: 'http', port: 80, nodePort: 30070, protocol: 'TCP' }],
    }, { status: { loadBalancer: { ingress: [{ ip: 'fd00:60::1' }] } } })],
    slices: [
      slice('web', [ep('10.244.1.1', { node: THIS_NODE })], { name: 'web-v4' }),
      slice('web', [ep('fd00:10:244:1::a', { node: THIS_NODE })], { name: 'web-v6', addressType: 'IPv6' }),
    ],
    nodes: [node(THIS_NODE, ['192.168.0.10', 'fd00:50::10'])],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.same(r.errors, []);
  const k = kubeProxyNftRules(r.state, { family: 'IPv6', clusterCidr: 'fd00:10:244::/48', nodeIp: 'fd00:50::10', replace: true });
  const names = k.chains.get('default/web:http/TCP/IPv6');
  t.ok(names, 'the IPv6 service port, by its key');
  t.notOk(k.chains.has('default/web:http/TCP/IPv4'));
  const svc = names?.service as string;
  const epc = names?.endpoints[0] as string;
  t.equal(epc, `endpoint-${nftEndpointChainBase({ namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP' }, 'fd00:10:244:1::a', 8080)}`);
  const lines = new Set(k.text.split('\n'));
  for (const line of [
    'add table ip6 kube-proxy',
    'delete table ip6 kube-proxy',
    'add table ip6 kube-proxy { comment "rules for kube-proxy" ; }',
    'add chain ip6 kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }',
    'add map ip6 kube-proxy service-ips { type ipv6_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
    'add map ip6 kube-proxy no-endpoint-services { type ipv6_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }',
    'add map ip6 kube-proxy firewall-ips { type ipv6_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }',
    'add rule ip6 kube-proxy services ip6 daddr . meta l4proto . th dport vmap @service-ips',
    'add rule ip6 kube-proxy services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports',
    'add rule ip6 kube-proxy endpoints-check fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @no-endpoint-nodeports',
    'add rule ip6 kube-proxy firewall-check ip6 daddr . meta l4proto . th dport vmap @firewall-ips',
    `add rule ip6 kube-proxy ${svc} ip6 daddr fd00:96::70 tcp dport 80 ip6 saddr != fd00:10:244::/48 jump mark-for-masquerade`,
    `add rule ip6 kube-proxy ${svc} ip6 saddr @affinity-${epc.slice('endpoint-'.length)} goto ${epc}`,
    `add set ip6 kube-proxy affinity-${epc.slice('endpoint-'.length)} { type ipv6_addr ; flags dynamic,timeout ; timeout 600s ; }`,
    `add rule ip6 kube-proxy ${epc} ip6 saddr fd00:10:244:1::a jump mark-for-masquerade`,
    `add rule ip6 kube-proxy ${epc} update @affinity-${epc.slice('endpoint-'.length)} { ip6 saddr }`,
    `add rule ip6 kube-proxy ${epc} meta l4proto tcp dnat to [fd00:10:244:1::a]:8080`,
    `add rule ip6 kube-proxy ${names?.firewall} ip6 saddr != { fd00:50::/64 , fd00:60::1 } drop`,
    `add element ip6 kube-proxy service-ips { fd00:96::70 . tcp . 80 : goto ${svc} }`,
    `add element ip6 kube-proxy service-ips { fd00:60::1 . tcp . 80 : goto ${names?.external} }`,
    `add element ip6 kube-proxy firewall-ips { fd00:60::1 . tcp . 80 comment "default/web:http" : goto ${names?.firewall} }`,
  ]) t.ok(lines.has(line), line);
  t.notOk(k.text.includes(' ip kube-proxy') || /\bip (saddr|daddr)\b/.test(k.text), 'nothing of the ip table');
  t.notOk(k.text.includes('10.96.0.70'), 'nothing of the IPv4 service port');
  const v4 = kubeProxyNftRules(r.state, { clusterCidr: '10.244.0.0/16' });
  t.ok(v4.text.includes('add element ip kube-proxy service-ips { 10.96.0.70 . tcp . 80 : goto'), 'the default (IPv4) table has the IPv4 port');
  t.notOk(v4.text.includes('fd00:'), 'and no IPv6 address');
});
