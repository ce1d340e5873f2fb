// KUBE-PROXY-SEMANTICS "Which endpoints serve": the Cluster and Local sets, and which set each
// kind of traffic uses (internalLocal / externalLocal).
import t from 'tap';
import { addrs, compute, ep, NODE, portOf, service, slice, type EndpointOptions } from './builders.js';

const OTHER = 'node-b';

interface SetCase {
  name: string;
  endpoints: Array<[string, EndpointOptions]>;
  cluster: string[];
  local: string[];
}

const ready = (node: string): EndpointOptions => ({ node });
const notReady = (node: string): EndpointOptions => ({ node, ready: false, serving: false });
const servingTerminating = (node: string): EndpointOptions => ({ node, ready: false, serving: true, terminating: true });
const deadTerminating = (node: string): EndpointOptions => ({ node, ready: false, serving: false, terminating: true });

const setCases: SetCase[] = [
  {
    name: 'Cluster set is the ready endpoints; Local set the local ready ones',
    endpoints: [['10.0.0.1', ready(NODE)], ['10.0.0.2', ready(OTHER)], ['10.0.0.3', notReady(NODE)]],
    cluster: ['10.0.0.1:8080', '10.0.0.2:8080'],
    local: ['10.0.0.1:8080'],
  },
  {
    name: 'terminating endpoints are not used while a ready one exists',
    endpoints: [['10.0.0.1', ready(OTHER)], ['10.0.0.2', servingTerminating(NODE)]],
    cluster: ['10.0.0.1:8080'],
    // No local ready endpoint: the Local set falls back to the local serving-terminating one.
    local: ['10.0.0.2:8080'],
  },
  {
    name: 'no ready endpoint anywhere: Cluster set falls back to serving-and-terminating',
    endpoints: [['10.0.0.1', servingTerminating(OTHER)], ['10.0.0.2', deadTerminating(OTHER)], ['10.0.0.3', notReady(OTHER)]],
    cluster: ['10.0.0.1:8080'],
    local: [],
  },
  {
    name: 'Local set falls back to local serving-terminating only when no local ready one',
    endpoints: [['10.0.0.1', ready(NODE)], ['10.0.0.2', servingTerminating(NODE)]],
    cluster: ['10.0.0.1:8080'],
    local: ['10.0.0.1:8080'],
  },
  {
    name: 'a remote ready endpoint does not stop the Local fallback',
    endpoints: [['10.0.0.1', ready(OTHER)], ['10.0.0.2', servingTerminating(NODE)], ['10.0.0.3', deadTerminating(NODE)]],
    cluster: ['10.0.0.1:8080'],
    local: ['10.0.0.2:8080'],
  },
  {
    name: 'ready but terminating (only from hand-written slices) counts as ready',
    endpoints: [['10.0.0.1', { node: NODE, ready: true, terminating: true }]],
    cluster: ['10.0.0.1:8080'],
    local: ['10.0.0.1:8080'],
  },
  {
    name: 'nothing usable: both sets empty (the dataplane rejects)',
    endpoints: [['10.0.0.1', notReady(NODE)], ['10.0.0.2', deadTerminating(OTHER)]],
    cluster: [],
    local: [],
  },
  {
    name: 'endpoints without nodeName are never local',
    endpoints: [['10.0.0.1', {}]],
    cluster: ['10.0.0.1:8080'],
    local: [],
  },
];

for (const c of setCases) {
  t.test(c.name, async (t) => {
    const result = compute({
      services: [service('web')],
      slices: [slice('web', c.endpoints.map(([ip, o]) => ep(ip, o)))],
    });
    const port = portOf(result);
    t.same(addrs(port.clusterBackends), c.cluster, 'cluster');
    t.same(addrs(port.localBackends), c.local, 'local');
  });
}

t.test('both sets are computed whatever the policies, so the dataplane can tell reject from drop', async (t) => {
  // internalTrafficPolicy=Local with only remote endpoints: Local set empty (drop), Cluster set
  // non-empty (there ARE endpoints, so this is not a reject).
  const result = compute({
    services: [service('web', { internalTrafficPolicy: 'Local' })],
    slices: [slice('web', [ep('10.0.0.2', ready(OTHER))])],
  });
  const port = portOf(result);
  t.equal(port.internalLocal, true);
  t.same(addrs(port.localBackends), []);
  t.same(addrs(port.clusterBackends), ['10.0.0.2:8080']);
});

// "Use Cluster set if !internalTrafficPolicy=Local || externallyAccessible; Local set if
// internalTrafficPolicy=Local || (externalTrafficPolicy=Local && externallyAccessible)."
// internalLocal picks the set for traffic from inside the cluster, externalLocal for external.
interface PolicyCase {
  name: string;
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
  internalLocal: boolean;
  externalLocal: boolean;
}

const nodePortSpec = { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] };
const lbStatus = { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } };

const policyCases: PolicyCase[] = [
  { name: 'defaults: Cluster for both', spec: {}, internalLocal: false, externalLocal: false },
  { name: 'internalTrafficPolicy=Cluster', spec: { internalTrafficPolicy: 'Cluster' }, internalLocal: false, externalLocal: false },
  { name: 'internalTrafficPolicy=Local', spec: { internalTrafficPolicy: 'Local' }, internalLocal: true, externalLocal: false },
  {
    name: 'externalTrafficPolicy=Local on a ClusterIP Service without external IPs: not externally accessible',
    spec: { externalTrafficPolicy: 'Local' },
    internalLocal: false,
    externalLocal: false,
  },
  {
    name: 'externalTrafficPolicy=Local with an external IP',
    spec: { externalTrafficPolicy: 'Local', externalIPs: ['198.51.100.1'] },
    internalLocal: false,
    externalLocal: true,
  },
  { name: 'externalTrafficPolicy=Local with a NodePort', spec: { ...nodePortSpec, externalTrafficPolicy: 'Local' }, internalLocal: false, externalLocal: true },
  { name: 'externalTrafficPolicy=Cluster with a NodePort', spec: { ...nodePortSpec, externalTrafficPolicy: 'Cluster' }, internalLocal: false, externalLocal: false },
  {
    name: 'externalTrafficPolicy=Local, LoadBalancer VIP without node ports',
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, externalTrafficPolicy: 'Local' },
    status: lbStatus,
    internalLocal: false,
    externalLocal: true,
  },
  {
    name: 'externalTrafficPolicy=Local, LoadBalancer without VIP nor node ports: not externally accessible',
    spec: { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false, externalTrafficPolicy: 'Local' },
    internalLocal: false,
    externalLocal: false,
  },
  {
    name: 'both Local with a NodePort',
    spec: { ...nodePortSpec, externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' },
    internalLocal: true,
    externalLocal: true,
  },
  {
    name: 'internal Local, external Cluster with a NodePort: external traffic uses the Cluster set',
    spec: { ...nodePortSpec, internalTrafficPolicy: 'Local' },
    internalLocal: true,
    externalLocal: false,
  },
];

for (const c of policyCases) {
  t.test(`policy: ${c.name}`, async (t) => {
    const result = compute({
      services: [service('web', c.spec, c.status ? { status: c.status } : {})],
      slices: [slice('web', [ep('10.0.0.1', ready(NODE)), ep('10.0.0.2', ready(OTHER))])],
    });
    const port = portOf(result);
    t.equal(port.internalLocal, c.internalLocal, 'internalLocal');
    t.equal(port.externalLocal, c.externalLocal, 'externalLocal');
    // The sets themselves do not depend on the policies.
    t.same(addrs(port.clusterBackends), ['10.0.0.1:8080', '10.0.0.2:8080']);
    t.same(addrs(port.localBackends), ['10.0.0.1:8080']);
  });
}

t.test('externally accessible needs a NodePort frontend on this node', async (t) => {
  // nodePortAddresses selects none of this node's addresses: no NodePort frontend, so
  // externalTrafficPolicy=Local has no external traffic to apply to.
  const result = compute({
    services: [service('web', { ...nodePortSpec, externalTrafficPolicy: 'Local' })],
    config: { nodePortAddresses: ['172.16.0.0/12'] },
  });
  const port = portOf(result);
  t.same(port.frontends.map((f) => f.kind), ['ClusterIP']);
  t.equal(port.externalLocal, false);
});
