// The model at scale: 10k Services × 10 endpoints compute completely, and the work is linear —
// slices are indexed by Service once, every slice is parsed once, nothing scans all objects per
// Service (counted reads, not a timing).
import t from 'tap';
import { computeDesiredState } from '../../src/model/desired-state.js';
import { ep, input, node, NODE, service, slice } from './builders.js';

function cluster(services: number, endpointsPerService: number): ReturnType<typeof input> {
  const svcs: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc-${i}`;
    const ip = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    svcs.push(service(name, {
      type: i % 10 === 0 ? 'NodePort' : 'ClusterIP',
      clusterIP: ip,
      ports: [{ name: 'http', port: 80, ...(i % 10 === 0 ? { nodePort: 30000 + i / 10 } : {}) }],
    }));
    const endpoints = [];
    for (let k = 0; k < endpointsPerService; k++) {
      endpoints.push(ep(`10.${(i >> 8) & 255}.${i & 255}.${k + 1}`, { node: k % 3 ? `node-${k}` : NODE, zone: 'zone-a' }));
    }
    slices.push(slice(name, endpoints, { name: `${name}-x` }));
  }
  return input({ services: svcs, slices, nodes: [node(NODE, ['192.168.0.10'])] });
}

/** The list behind a Proxy that counts reads of its elements (by index, as iteration reads them). */
function counted(items: unknown[]): { list: unknown[]; reads: () => number } {
  let reads = 0;
  const list = new Proxy(items, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { list, reads: () => reads };
}

/** Element reads of the Service and EndpointSlice lists in one computeDesiredState over n Services. */
function listReads(n: number): number {
  const model = cluster(n, 10);
  const services = counted(model.services);
  const slices = counted(model.endpointSlices);
  const result = computeDesiredState({ ...model, services: services.list as typeof model.services, endpointSlices: slices.list as typeof model.endpointSlices });
  if (result.state.services.size !== n) throw new Error(`${result.state.services.size} service ports for ${n} Services`);
  return services.reads() + slices.reads();
}

// Timings are not asserted in tests (README, docs/benchmarks.md): the model's time at 10,000
// Services is the "model" part of the control-plane bench's cold start. What is checked here is
// the structure that keeps it linear.
t.test('10k Services × 10 endpoints: every port and backend, no errors', async (t) => {
  const result = computeDesiredState(cluster(10_000, 10));
  t.equal(result.state.services.size, 10_000);
  t.equal([...result.state.services.values()].reduce((n, p) => n + p.clusterBackends.length, 0), 100_000);
  t.same(result.errors, []);
});

t.test('the objects are read a fixed number of times each, whatever the cluster size', async (t) => {
  const small = listReads(500);
  const large = listReads(2000);
  t.ok(small >= 1000, `every Service and slice is read (${small} reads for 500 + 500)`);
  t.equal(large / small, 4, `4× the objects, 4× the reads (${small} → ${large}): no scan of all objects per Service`);
});
