// servicePortEqual: the reconciler's diff. Equal inputs give equal ports; any field change
// (including one inside a backend or frontend) makes them differ.
import t from 'tap';
import { BackendList } from '../../src/model/backend-list.js';
import { servicePortEqual } from '../../src/model/equal.js';
import type { Backend, DesiredServicePort } from '../../src/model/types.js';
import { compute, ep, NODE, portOf, service, slice } from './builders.js';

function rich(): DesiredServicePort {
  return portOf(
    compute({
      services: [
        service('web', {
          type: 'LoadBalancer',
          ports: [{ name: 'http', port: 80, nodePort: 30080 }],
          externalTrafficPolicy: 'Local',
          healthCheckNodePort: 32000,
          sessionAffinity: 'ClientIP',
          loadBalancerSourceRanges: ['10.0.0.0/8'],
        }, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } }),
      ],
      slices: [slice('web', [ep('10.0.0.1', { node: NODE, zone: 'zone-a' }), ep('10.0.0.2', { node: 'node-b' })])],
    }),
  );
}

t.test('recomputed from equal input: equal (different objects)', async (t) => {
  const a = rich();
  const b = rich();
  t.not(a, b);
  t.ok(servicePortEqual(a, b));
  t.ok(servicePortEqual(a, a));
});

type Mutation = [string, (p: DesiredServicePort) => void];

const first = <T>(list: T[]): T => {
  const item = list[0];
  if (item === undefined) throw new Error('empty list in fixture');
  return item;
};

/** The list with its first backend changed (the model's lists are immutable: a new one). */
const withFirst = (list: BackendList, change: Partial<Backend>): BackendList => {
  const [head, ...rest] = list.toArray();
  if (head === undefined) throw new Error('empty list in fixture');
  return BackendList.of([{ ...head, ...change }, ...rest]);
};
const withoutLast = (list: BackendList): BackendList => BackendList.of(list.toArray().slice(0, -1));

const mutations: Mutation[] = [
  ['key', (p) => { p.key += 'x'; }],
  ['namespace', (p) => { p.namespace = 'other'; }],
  ['name', (p) => { p.name = 'other'; }],
  ['portName', (p) => { p.portName = 'other'; }],
  ['protocol', (p) => { p.protocol = 'UDP'; }],
  ['family', (p) => { p.family = 'IPv6'; }],
  ['internalLocal', (p) => { p.internalLocal = !p.internalLocal; }],
  ['externalLocal', (p) => { p.externalLocal = !p.externalLocal; }],
  ['affinityTimeoutSec', (p) => { p.affinityTimeoutSec = 1; }],
  ['healthCheckNodePort', (p) => { p.healthCheckNodePort = 1; }],
  ['loadBalancerSourceRanges added', (p) => { p.loadBalancerSourceRanges.push('11.0.0.0/8'); }],
  ['loadBalancerSourceRanges changed', (p) => { p.loadBalancerSourceRanges[0] = '11.0.0.0/8'; }],
  ['loadBalancerSourcesClosed set', (p) => { p.loadBalancerSourcesClosed = true; }],
  ['frontend removed', (p) => { p.frontends.pop(); }],
  ['frontend kind', (p) => { first(p.frontends).kind = 'ExternalIP'; }],
  ['frontend ip', (p) => { first(p.frontends).ip = '10.96.0.99'; }],
  ['frontend port', (p) => { first(p.frontends).port = 81; }],
  ['frontends reordered', (p) => { p.frontends.reverse(); }],
  ['cluster backend removed', (p) => { p.clusterBackends = withoutLast(p.clusterBackends); }],
  ['cluster backend ip', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { ip: '10.0.0.9' }); }],
  ['cluster backend port', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { port: 1 }); }],
  ['cluster backend nodeName', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { nodeName: null }); }],
  ['cluster backend zone', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { zone: 'zone-z' }); }],
  ['cluster backend local', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { local: false }); }],
  ['cluster backend ready', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { ready: false }); }],
  ['cluster backend serving', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { serving: false }); }],
  ['cluster backend terminating', (p) => { p.clusterBackends = withFirst(p.clusterBackends, { terminating: true }); }],
  ['local backend removed', (p) => { p.localBackends = withoutLast(p.localBackends); }],
  ['local backend ready', (p) => { p.localBackends = withFirst(p.localBackends, { ready: false }); }],
];

for (const [name, mutate] of mutations) {
  t.test(`differs when ${name} changes`, async (t) => {
    const a = rich();
    const b = rich();
    mutate(b);
    t.notOk(servicePortEqual(a, b));
    t.notOk(servicePortEqual(b, a), 'symmetric');
  });
}
