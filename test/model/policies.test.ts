// KUBE-PROXY-SEMANTICS "Policies and behaviours", the model's share: what the dataplane needs to
// apply externalTrafficPolicy=Local, reject vs drop, and the healthCheckNodePort answer.
import t from 'tap';
import { healthCheckServices } from '../../src/model/health.js';
import { addrs, compute, ep, NODE, portOf, service, slice, type EndpointOptions } from './builders.js';

const lb = {
  type: 'LoadBalancer',
  externalTrafficPolicy: 'Local',
  healthCheckNodePort: 32000,
  ports: [{ name: 'http', port: 80, nodePort: 30080 }],
};
const lbStatus = { status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } };

t.test('externalTrafficPolicy=Local: external → Local set; pods on the node → Cluster set; none local → drop', async (t) => {
  const result = compute({
    services: [service('web', lb, lbStatus)],
    slices: [slice('web', [ep('10.0.0.2', { node: 'node-b' }), ep('10.0.0.3', { node: 'node-c' })])],
  });
  const port = portOf(result);
  t.equal(port.externalLocal, true, 'external traffic uses the Local set (and is never SNATed)');
  t.same(addrs(port.localBackends), [], 'no local endpoint: the dataplane drops external traffic');
  t.same(addrs(port.clusterBackends), ['10.0.0.2:8080', '10.0.0.3:8080'], 'pods on this node still reach the Cluster set');
});

interface RejectCase {
  name: string;
  spec: Record<string, unknown>;
  endpoints: Array<[string, EndpointOptions]>;
  /** What the dataplane must do with internal traffic, from the model's output alone. */
  internal: 'forward' | 'drop' | 'reject';
}

/** The dataplane's rule, written down so the test shows the model gives it what it needs. */
function internalAction(internalLocal: boolean, cluster: number, local: number): 'forward' | 'drop' | 'reject' {
  if (cluster === 0) return 'reject';
  if (internalLocal && local === 0) return 'drop';
  return 'forward';
}

const rejectCases: RejectCase[] = [
  { name: 'no endpoints anywhere → reject', spec: {}, endpoints: [], internal: 'reject' },
  { name: 'only not-ready endpoints → reject', spec: {}, endpoints: [['10.0.0.1', { ready: false, serving: false }]], internal: 'reject' },
  {
    name: 'internalTrafficPolicy=Local, no local endpoint but remote ones → drop',
    spec: { internalTrafficPolicy: 'Local' },
    endpoints: [['10.0.0.1', { node: 'node-b' }]],
    internal: 'drop',
  },
  { name: 'internalTrafficPolicy=Local, nothing anywhere → reject', spec: { internalTrafficPolicy: 'Local' }, endpoints: [], internal: 'reject' },
  {
    name: 'internalTrafficPolicy=Local with a local endpoint → forward',
    spec: { internalTrafficPolicy: 'Local' },
    endpoints: [['10.0.0.1', { node: NODE }]],
    internal: 'forward',
  },
  {
    name: 'only serving-terminating endpoints → still forwarded (graceful fallback)',
    spec: {},
    endpoints: [['10.0.0.1', { ready: false, serving: true, terminating: true }]],
    internal: 'forward',
  },
];

for (const c of rejectCases) {
  t.test(c.name, async (t) => {
    const result = compute({ services: [service('web', c.spec)], slices: [slice('web', c.endpoints.map(([ip, o]) => ep(ip, o)))] });
    const port = portOf(result);
    t.equal(internalAction(port.internalLocal, port.clusterBackends.length, port.localBackends.length), c.internal);
  });
}

interface HealthCase {
  name: string;
  endpoints: Array<[string, EndpointOptions]>;
  localEndpoints: number;
}

const healthCases: HealthCase[] = [
  { name: 'two local ready endpoints', endpoints: [['10.0.0.1', { node: NODE }], ['10.0.0.2', { node: NODE }]], localEndpoints: 2 },
  { name: 'remote ones do not count', endpoints: [['10.0.0.1', { node: NODE }], ['10.0.0.2', { node: 'node-b' }]], localEndpoints: 1 },
  { name: 'no local endpoint: 0 (503)', endpoints: [['10.0.0.2', { node: 'node-b' }]], localEndpoints: 0 },
  {
    name: 'only local terminating endpoints: 0, the check fails so the LB drains the node',
    endpoints: [['10.0.0.1', { node: NODE, ready: false, serving: true, terminating: true }]],
    localEndpoints: 0,
  },
  { name: 'local not-ready endpoint does not count', endpoints: [['10.0.0.1', { node: NODE, ready: false }]], localEndpoints: 0 },
];

for (const c of healthCases) {
  t.test(`health check: ${c.name}`, async (t) => {
    const result = compute({ services: [service('web', lb, lbStatus)], slices: [slice('web', c.endpoints.map(([ip, o]) => ep(ip, o)))] });
    t.same([...healthCheckServices(result.state).values()], [
      { namespace: 'default', name: 'web', healthCheckNodePort: 32000, localEndpoints: c.localEndpoints },
    ]);
  });
}

t.test('health check counts unique IPs over all ports and families of the Service', async (t) => {
  const result = compute({
    services: [
      service('web', {
        ...lb,
        clusterIPs: ['10.96.0.10', 'fd00:96::10'],
        ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'https', port: 443, nodePort: 30443 }],
      }, lbStatus),
    ],
    slices: [
      slice('web', [ep('10.0.0.1', { node: NODE }), ep('10.0.0.2', { node: NODE })], {
        ports: [{ name: 'http', port: 8080 }, { name: 'https', port: 8443 }],
      }),
      slice('web', [ep('fd00::1', { node: NODE })], { name: 'web-v6', addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }] }),
    ],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.equal(healthCheckServices(result.state).get('default/web')?.localEndpoints, 3);
});

interface HealthPortCase {
  name: string;
  spec: Record<string, unknown>;
  healthCheckNodePort: number;
}

const healthPortCases: HealthPortCase[] = [
  { name: 'LoadBalancer + externalTrafficPolicy=Local', spec: lb, healthCheckNodePort: 32000 },
  { name: 'LoadBalancer + Cluster: no health check', spec: { ...lb, externalTrafficPolicy: 'Cluster' }, healthCheckNodePort: 0 },
  { name: 'NodePort + Local: no health check (only load balancers probe)', spec: { ...lb, type: 'NodePort' }, healthCheckNodePort: 0 },
  { name: 'LoadBalancer + Local without a port written: 0', spec: { ...lb, healthCheckNodePort: undefined }, healthCheckNodePort: 0 },
];

for (const c of healthPortCases) {
  t.test(`healthCheckNodePort: ${c.name}`, async (t) => {
    const result = compute({ services: [service('web', c.spec, lbStatus)] });
    t.equal(portOf(result).healthCheckNodePort, c.healthCheckNodePort);
    t.equal(healthCheckServices(result.state).size, c.healthCheckNodePort ? 1 : 0);
  });
}
