// KUBE-PROXY-SEMANTICS "Frontends": ClusterIP, NodePort on this node's addresses, ExternalIPs,
// LoadBalancer ingress (not ipMode Proxy), loadBalancerSourceRanges for LoadBalancer VIPs only.
import t from 'tap';
import type { ModelConfig } from '../../src/model/types.js';
import { compute, fronts, node, NODE, portOf, service } from './builders.js';

type Obj = Record<string, unknown>;

interface Case {
  name: string;
  spec: Obj;
  status?: Obj;
  nodes?: unknown[];
  config?: Partial<ModelConfig>;
  frontends: string[];
  sourceRanges?: string[];
  key?: string;
}

const np = (nodePort: number, extra: Obj = {}): Obj => ({ ports: [{ name: 'http', port: 80, nodePort }], ...extra });
const ingress = (...entries: Obj[]): Obj => ({ loadBalancer: { ingress: entries } });
const multiHomed = node(NODE, ['192.168.0.10', '10.1.0.10', '192.168.0.10'], { external: ['203.0.113.10'] });

const cases: Case[] = [
  { name: 'ClusterIP on the Service port', spec: {}, frontends: ['ClusterIP 10.96.0.10:80'] },
  {
    name: 'one ClusterIP frontend per port and protocol',
    spec: { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] },
    frontends: ['ClusterIP 10.96.0.10:53'],
    key: 'default/web:dns/UDP/IPv4',
  },
  {
    name: 'NodePort on every InternalIP and ExternalIP of this node (deduped, Hostname skipped)',
    spec: { type: 'NodePort', ...np(30080) },
    nodes: [multiHomed],
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 10.1.0.10:30080', 'NodePort 192.168.0.10:30080', 'NodePort 203.0.113.10:30080'],
  },
  {
    name: 'nodePortAddresses CIDRs narrow the node addresses',
    spec: { type: 'NodePort', ...np(30080) },
    nodes: [multiHomed],
    config: { nodePortAddresses: ['192.168.0.0/16', '203.0.113.0/24'] },
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080', 'NodePort 203.0.113.10:30080'],
  },
  {
    name: 'nodePortAddresses of the other family only: no NodePort in this one',
    spec: { type: 'NodePort', ...np(30080) },
    config: { nodePortAddresses: ['fd00::/64'] },
    frontends: ['ClusterIP 10.96.0.10:80'],
  },
  {
    name: 'other nodes\' addresses are not this node\'s frontends',
    spec: { type: 'NodePort', ...np(30080) },
    nodes: [node('node-b', ['192.168.0.11']), node(NODE, ['192.168.0.10'])],
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080'],
  },
  {
    name: 'loopback node address: never by default',
    spec: { type: 'NodePort', ...np(30080) },
    nodes: [node(NODE, ['127.0.0.1', '192.168.0.10'])],
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080'],
  },
  {
    name: 'loopback node address: only when nodePortAddresses asks for it',
    spec: { type: 'NodePort', ...np(30080) },
    nodes: [node(NODE, ['127.0.0.1', '192.168.0.10'])],
    config: { nodePortAddresses: ['127.0.0.0/8'] },
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 127.0.0.1:30080'],
  },
  {
    name: 'LoadBalancer with allocateLoadBalancerNodePorts=false: nodePort 0, no NodePort frontend',
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, ports: [{ name: 'http', port: 80 }] },
    status: ingress({ ip: '203.0.113.7' }),
    frontends: ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.7:80'],
  },
  {
    name: 'nodePort 0 written explicitly: no NodePort frontend',
    spec: { type: 'NodePort', ...np(0) },
    frontends: ['ClusterIP 10.96.0.10:80'],
  },
  {
    name: 'LoadBalancer with node ports: NodePort and LoadBalancer frontends',
    spec: { type: 'LoadBalancer', ...np(31000) },
    status: ingress({ ip: '203.0.113.7' }),
    frontends: ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.7:80', 'NodePort 192.168.0.10:31000'],
  },
  {
    name: 'ExternalIPs, on any Service type',
    spec: { externalIPs: ['198.51.100.2', '198.51.100.1'] },
    frontends: ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.51.100.1:80', 'ExternalIP 198.51.100.2:80'],
  },
  {
    name: 'LoadBalancer ingress: ipMode VIP or unset is a VIP; Proxy and hostname-only entries are skipped',
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false },
    status: ingress(
      { ip: '203.0.113.1', ipMode: 'VIP' },
      { ip: '203.0.113.2', ipMode: 'Proxy' },
      { hostname: 'lb.example.com' },
      { ip: '203.0.113.3' },
    ),
    frontends: ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.1:80', 'LoadBalancer 203.0.113.3:80'],
  },
  {
    name: 'a stale load balancer status on a non-LoadBalancer Service is ignored',
    spec: { type: 'NodePort', ...np(30080) },
    status: ingress({ ip: '203.0.113.1' }),
    frontends: ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080'],
  },
  {
    name: 'an address both in externalIPs and the LB status is one LoadBalancer frontend',
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, externalIPs: ['203.0.113.1'], loadBalancerSourceRanges: ['10.0.0.0/8'] },
    status: ingress({ ip: '203.0.113.1' }),
    frontends: ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.1:80'],
    sourceRanges: ['10.0.0.0/8'],
  },
  {
    name: 'loadBalancerSourceRanges are carried canonical, sorted, deduped (padding trimmed)',
    spec: {
      type: 'LoadBalancer',
      allocateLoadBalancerNodePorts: false,
      loadBalancerSourceRanges: [' 192.168.1.7/24', '10.0.0.0/8', '192.168.1.0/24', '9.0.0.0/8 ', '10.0.0.0/16'],
    },
    status: ingress({ ip: '203.0.113.1' }),
    frontends: ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.1:80'],
    sourceRanges: ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '192.168.1.0/24'],
  },
  {
    name: 'loadBalancerSourceRanges never restrict a non-LoadBalancer Service',
    spec: { type: 'NodePort', ...np(30080), externalIPs: ['198.51.100.1'], loadBalancerSourceRanges: ['10.0.0.0/8'] },
    frontends: ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.51.100.1:80', 'NodePort 192.168.0.10:30080'],
    sourceRanges: [],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({
      services: [service('web', c.spec, c.status ? { status: c.status } : {})],
      ...(c.nodes ? { nodes: c.nodes } : {}),
      ...(c.config ? { config: c.config } : {}),
    });
    t.same(result.errors, []);
    const port = portOf(result, c.key);
    t.same(fronts(port), c.frontends);
    if (c.sourceRanges) t.same(port.loadBalancerSourceRanges, c.sourceRanges);
  });
}

t.test('source ranges naming only the other family: that family\'s VIPs are programmed closed (every client dropped)', async (t) => {
  const result = compute({
    services: [
      service('web', {
        type: 'LoadBalancer',
        clusterIPs: ['10.96.0.10', 'fd00:96::10'],
        allocateLoadBalancerNodePorts: false,
        loadBalancerSourceRanges: ['10.0.0.0/8'],
      }, { status: ingress({ ip: '203.0.113.1' }, { ip: '2001:db8::1' }) }),
    ],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.same(fronts(portOf(result)), ['ClusterIP 10.96.0.10:80', 'LoadBalancer 203.0.113.1:80']);
  t.same(portOf(result).loadBalancerSourceRanges, ['10.0.0.0/8']);
  t.equal(portOf(result).loadBalancerSourcesClosed, undefined, 'IPv4: restricted to its ranges');
  const v6 = portOf(result, 'default/web:http/TCP/IPv6');
  t.same(fronts(v6), ['ClusterIP [fd00:96::10]:80', 'LoadBalancer [2001:db8::1]:80']);
  t.same(v6.loadBalancerSourceRanges, []);
  t.equal(v6.loadBalancerSourcesClosed, true, 'IPv6: restricted to no range at all');
  t.match(result.errors, [{ kind: 'Service', object: 'default/web', field: 'spec.loadBalancerSourceRanges', message: /no IPv6 range: every IPv6 client of the LoadBalancer VIPs is dropped/ }]);
});

t.test('an invalid source range: no LoadBalancer VIP at all (fail closed), the rest programmed', async (t) => {
  const result = compute({
    services: [
      service('web', {
        type: 'LoadBalancer',
        ports: [{ name: 'http', port: 80, nodePort: 30080 }],
        loadBalancerSourceRanges: ['10.0.0.0/8', '10.0.0.0/33'],
      }, { status: ingress({ ip: '203.0.113.1' }) }),
    ],
  });
  t.same(fronts(portOf(result)), ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080']);
  t.match(result.errors, [{ field: 'spec.loadBalancerSourceRanges[1]', value: '10.0.0.0/33' }]);
});

t.test('frontends are sorted: kind, then IP numerically', async (t) => {
  const result = compute({
    services: [service('web', { type: 'LoadBalancer', ...np(30080), externalIPs: ['198.51.100.10', '198.51.100.9'] }, {
      status: ingress({ ip: '203.0.113.20' }, { ip: '203.0.113.3' }),
    })],
    nodes: [node(NODE, ['192.168.0.10', '10.0.0.200'])],
  });
  t.same(fronts(portOf(result)), [
    'ClusterIP 10.96.0.10:80',
    'LoadBalancer 203.0.113.3:80',
    'LoadBalancer 203.0.113.20:80',
    'ExternalIP 198.51.100.9:80',
    'ExternalIP 198.51.100.10:80',
    'NodePort 10.0.0.200:30080',
    'NodePort 192.168.0.10:30080',
  ]);
});

t.test('node not among the Nodes: reported, no NodePort frontends, the rest programmed', async (t) => {
  const result = compute({ services: [service('web', { type: 'NodePort', ...np(30080) })], nodes: [node('node-b', ['192.168.0.11'])] });
  t.same(fronts(portOf(result)), ['ClusterIP 10.96.0.10:80']);
  t.match(result.errors, [{ kind: 'Node', object: NODE, field: 'metadata.name' }]);
});
