// KUBE-PROXY-SEMANTICS "Which objects": one view per IP family; a Service port yields one
// DesiredServicePort per configured family it has a cluster IP in; slices of another
// addressType (or FQDN) are ignored.
import t from 'tap';
import type { IpFamily } from '../../src/model/types.js';
import { addrs, compute, ep, fronts, keys, portOf, service, slice } from './builders.js';

const V4 = 'default/web:http/TCP/IPv4';
const V6 = 'default/web:http/TCP/IPv6';

interface Case {
  name: string;
  spec: Record<string, unknown>;
  families: IpFamily[];
  keys: string[];
}

const dual = { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::10'] };

const cases: Case[] = [
  { name: 'IPv4 Service, IPv4 proxy', spec: {}, families: ['IPv4'], keys: [V4] },
  { name: 'IPv4 Service, dual-stack proxy: IPv4 view only', spec: {}, families: ['IPv4', 'IPv6'], keys: [V4] },
  { name: 'IPv4 Service, IPv6 proxy: nothing', spec: {}, families: ['IPv6'], keys: [] },
  { name: 'dual-stack Service, dual-stack proxy: both', spec: dual, families: ['IPv4', 'IPv6'], keys: [V4, V6] },
  { name: 'dual-stack Service, IPv4 proxy', spec: dual, families: ['IPv4'], keys: [V4] },
  { name: 'dual-stack Service, IPv6 proxy', spec: dual, families: ['IPv6'], keys: [V6] },
  { name: 'IPv6-primary dual-stack Service', spec: { clusterIP: 'fd00:96::10', clusterIPs: ['fd00:96::10', '10.96.0.10'] }, families: ['IPv4', 'IPv6'], keys: [V4, V6] },
  { name: 'IPv6 from spec.clusterIP alone', spec: { clusterIP: 'fd00:96::10' }, families: ['IPv4', 'IPv6'], keys: [V6] },
  { name: 'clusterIPs without clusterIP', spec: { clusterIP: undefined, clusterIPs: ['fd00:96::10'] }, families: ['IPv6'], keys: [V6] },
  { name: 'families listed twice count once', spec: dual, families: ['IPv6', 'IPv6', 'IPv4'], keys: [V4, V6] },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({ services: [service('web', c.spec)], config: { families: c.families } });
    t.same(keys(result), c.keys);
    t.same(result.errors, []);
  });
}

t.test('each family view takes its own addresses from every source', async (t) => {
  const result = compute({
    services: [
      service('web', {
        ...dual,
        type: 'LoadBalancer',
        ports: [{ name: 'http', port: 80, nodePort: 30080 }],
        externalIPs: ['198.51.100.1', '2001:db8:1::1'],
        loadBalancerSourceRanges: ['10.0.0.0/8', 'fd00::/8'],
      }, { status: { loadBalancer: { ingress: [{ ip: '2001:db8::7' }, { ip: '203.0.113.7' }] } } }),
    ],
    slices: [
      slice('web', [ep('10.0.0.1')], { name: 'web-v4' }),
      slice('web', [ep('fd00::1')], { name: 'web-v6', addressType: 'IPv6' }),
      slice('web', [ep('web.example.com')], { name: 'web-fqdn', addressType: 'FQDN' }),
    ],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.same(result.errors, []);
  const v4 = portOf(result, V4);
  const v6 = portOf(result, V6);
  t.same(fronts(v4), ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.7:80', 'ExternalIP 198.51.100.1:80', 'NodePort 192.168.0.10:30080']);
  t.same(fronts(v6), ['ClusterIP [fd00:96::10]:80', 'LoadBalancer [2001:db8::7]:80', 'ExternalIP [2001:db8:1::1]:80', 'NodePort [fd00::10]:30080']);
  t.same(addrs(v4.clusterBackends), ['10.0.0.1:8080']);
  t.same(addrs(v6.clusterBackends), ['[fd00::1]:8080']);
  t.same(v4.loadBalancerSourceRanges, ['10.0.0.0/8']);
  t.same(v6.loadBalancerSourceRanges, ['fd00::/8']);
  t.equal(v4.family, 'IPv4');
  t.equal(v6.family, 'IPv6');
});

t.test('an FQDN slice is ignored silently', async (t) => {
  const result = compute({
    services: [service('web')],
    slices: [slice('web', [ep('web.example.com')], { addressType: 'FQDN' })],
  });
  t.same(portOf(result).clusterBackends.toArray(), []);
  t.same(result.errors, []);
});

t.test('IPv6 addresses are emitted in canonical form', async (t) => {
  const result = compute({
    services: [service('web', { clusterIP: 'FD00:0096:0000:0000:0000:0000:0000:0010', externalIPs: ['2001:DB8:0:0:1::1'] })],
    slices: [slice('web', [ep('FD00:0:0:0:0:0:0:1')], { addressType: 'IPv6' })],
    config: { families: ['IPv6'] },
  });
  const port = portOf(result, V6);
  t.same(fronts(port), ['ClusterIP [fd00:96::10]:80', 'ExternalIP [2001:db8::1:0:0:1]:80']);
  t.same(addrs(port.clusterBackends), ['[fd00::1]:8080']);
});
