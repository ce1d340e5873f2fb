// KUBE-PROXY-SEMANTICS "Which endpoints serve", topology hints: zone hints (forZones) and
// PreferSameNode (forNodes) are used only when every ready endpoint has them and one names us.
import t from 'tap';
import { addrs, compute, DEFAULT_NODE, ep, NODE, node, portOf, service, slice, ZONE, type EndpointOptions } from './builders.js';

interface Case {
  name: string;
  endpoints: Array<[string, EndpointOptions]>;
  /** Node zone label; default ZONE. null = unlabelled node. */
  zone?: string | null;
  cluster: string[];
  local?: string[];
}

const cases: Case[] = [
  {
    name: 'every ready endpoint hinted, one for our zone: only ours',
    endpoints: [['10.0.0.1', { forZones: [ZONE] }], ['10.0.0.2', { forZones: ['zone-b'] }], ['10.0.0.3', { forZones: [ZONE] }]],
    cluster: ['10.0.0.1:8080', '10.0.0.3:8080'],
  },
  {
    name: 'an endpoint hinted for several zones is used in each',
    endpoints: [['10.0.0.1', { forZones: ['zone-b', ZONE] }], ['10.0.0.2', { forZones: ['zone-b'] }]],
    cluster: ['10.0.0.1:8080'],
  },
  {
    name: 'one ready endpoint without hints: hints ignored',
    endpoints: [['10.0.0.1', { forZones: [ZONE] }], ['10.0.0.2', {}]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'an empty forZones list is no hint: hints ignored',
    endpoints: [['10.0.0.1', { forZones: [ZONE] }], ['10.0.0.2', { forZones: [] }]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'a NOT ready endpoint without hints does not disable hints',
    endpoints: [['10.0.0.1', { forZones: [ZONE] }], ['10.0.0.2', { forZones: ['zone-b'] }], ['10.0.0.3', { ready: false }]],
    cluster: ['10.0.0.1:8080'],
  },
  {
    name: 'all hinted but none for our zone: hints ignored',
    endpoints: [['10.0.0.1', { forZones: ['zone-b'] }], ['10.0.0.2', { forZones: ['zone-c'] }]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'node without zone label: hints ignored',
    zone: null,
    endpoints: [['10.0.0.1', { forZones: [ZONE] }], ['10.0.0.2', { forZones: ['zone-b'] }]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'no ready endpoint: serving-terminating fallback ignores hints',
    endpoints: [
      ['10.0.0.1', { ready: false, terminating: true, forZones: [ZONE] }],
      ['10.0.0.2', { ready: false, terminating: true, forZones: ['zone-b'] }],
    ],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'PreferSameNode: every ready endpoint has node hints, one for this node',
    endpoints: [['10.0.0.1', { forNodes: [NODE], forZones: [ZONE] }], ['10.0.0.2', { forNodes: ['node-b'], forZones: [ZONE] }]],
    cluster: ['10.0.0.1:8080'],
  },
  {
    name: 'PreferSameNode: node hints incomplete, zone hints complete: zone hints used',
    endpoints: [
      ['10.0.0.1', { forNodes: [NODE], forZones: [ZONE] }],
      ['10.0.0.2', { forZones: [ZONE] }],
      ['10.0.0.3', { forNodes: ['node-c'], forZones: ['zone-c'] }],
    ],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'PreferSameNode: node hints complete but none for this node: zone hints used',
    endpoints: [['10.0.0.1', { forNodes: ['node-b'], forZones: [ZONE] }], ['10.0.0.2', { forNodes: ['node-c'], forZones: ['zone-c'] }]],
    cluster: ['10.0.0.1:8080'],
  },
  {
    name: 'PreferSameNode alone (no zone hints) works on a node without zone label',
    zone: null,
    endpoints: [['10.0.0.1', { forNodes: ['node-b'] }], ['10.0.0.2', { forNodes: [NODE] }]],
    cluster: ['10.0.0.2:8080'],
  },
  {
    name: 'no hint matches anywhere: all ready endpoints',
    endpoints: [['10.0.0.1', { forNodes: ['node-b'] }], ['10.0.0.2', { forNodes: ['node-c'] }]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
  },
  {
    name: 'topology never narrows the Local set',
    endpoints: [
      ['10.0.0.1', { node: NODE, forZones: ['zone-b'] }],
      ['10.0.0.2', { node: 'node-b', forZones: [ZONE] }],
    ],
    cluster: ['10.0.0.2:8080'],
    local: ['10.0.0.1:8080'],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const zone = c.zone === undefined ? ZONE : c.zone;
    const thisNode = zone === ZONE ? DEFAULT_NODE : node(NODE, ['192.168.0.10'], zone ? { zone } : {});
    const result = compute({
      services: [service('web')],
      slices: [slice('web', c.endpoints.map(([ip, o]) => ep(ip, o)))],
      nodes: [thisNode],
    });
    t.same(result.errors, []);
    t.same(addrs(portOf(result).clusterBackends), c.cluster, 'cluster');
    if (c.local) t.same(addrs(portOf(result).localBackends), c.local, 'local');
  });
}

t.test('hints are judged per Service port: one port may use them while another does not', async (t) => {
  const ports = [{ name: 'a', port: 1 }, { name: 'b', port: 2 }];
  const result = compute({
    services: [service('web', { ports })],
    slices: [
      slice('web', [ep('10.0.0.1', { forZones: [ZONE] }), ep('10.0.0.2', { forZones: ['zone-b'] })], { name: 's1', ports: [{ name: 'a', port: 81 }] }),
      slice('web', [ep('10.0.0.1', { forZones: [ZONE] }), ep('10.0.0.2')], { name: 's2', ports: [{ name: 'b', port: 82 }] }),
    ],
  });
  t.same(addrs(portOf(result, 'default/web:a/TCP/IPv4').clusterBackends), ['10.0.0.1:81']);
  t.same(addrs(portOf(result, 'default/web:b/TCP/IPv4').clusterBackends), ['10.0.0.1:82', '10.0.0.2:82']);
});
