// The output depends on the objects, never on their order in the input: the reconciler diffs
// successive states cheaply, and informer caches list objects in no particular order.
import t from 'tap';
import type { ModelResult } from '../../src/model/types.js';
import { compute, ep, node, NODE, service, slice } from './builders.js';

function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

function shuffle<T>(list: readonly T[], random: () => number): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** A mixed cluster: several types, dual-stack, multi-slice, duplicates, hints, bad objects. */
function objects(): { services: unknown[]; slices: unknown[]; nodes: unknown[] } {
  const services: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < 60; i++) {
    const name = `svc-${i}`;
    const types = ['ClusterIP', 'NodePort', 'LoadBalancer'];
    services.push(
      service(name, {
        type: types[i % 3],
        clusterIPs: i % 4 === 0 ? [`10.96.1.${i}`, `fd00:96::${i.toString(16)}`] : [`10.96.1.${i}`],
        clusterIP: `10.96.1.${i}`,
        ports: [{ name: 'http', port: 80, ...(i % 3 ? { nodePort: 30000 + i } : {}) }, { name: 'dns', port: 53, protocol: 'UDP' }],
        externalIPs: i % 5 === 0 ? ['198.51.100.1'] : [],
        internalTrafficPolicy: i % 7 === 0 ? 'Local' : 'Cluster',
      }, { status: { loadBalancer: { ingress: [{ ip: `203.0.113.${i}` }] } } }),
    );
    for (let s = 0; s < 3; s++) {
      const endpoints = [0, 1, 2, 3].map((k) =>
        ep(`10.${s}.${i}.${k}`, { node: k % 2 ? NODE : 'node-b', ready: k !== 3, terminating: k === 3, forZones: ['zone-a'] }),
      );
      // The same address in two slices, with different flags: the merge rule must not depend on input order.
      endpoints.push(ep(`10.9.${i}.1`, { node: `n-${s}`, ready: s === 1, terminating: s !== 1 }));
      slices.push(slice(name, endpoints, { name: `${name}-${s}`, ports: [{ name: 'http', port: 8080 + s }, { name: 'dns', port: 5353, protocol: 'UDP' }] }));
    }
  }
  // (An object without a name is reported by its input position, so none is included here.)
  services.push(service('broken', { clusterIP: 'nope' }));
  slices.push(slice('svc-1', [ep('10.0.0.999')], { name: 'bad-slice' }));
  return { services, slices, nodes: [node('node-b', ['192.168.0.11']), node(NODE, ['192.168.0.10', 'fd00::10'], { zone: 'zone-a' })] };
}

function snapshot(result: ModelResult): string {
  return JSON.stringify({ services: [...result.state.services.entries()], errors: result.errors });
}

t.test('shuffled input gives the identical result (content and order)', async (t) => {
  const base = objects();
  const config = { families: ['IPv4', 'IPv6'] as Array<'IPv4' | 'IPv6'> };
  const reference = snapshot(compute({ ...base, config }));
  t.ok(reference.length > 10000, 'a non-trivial state');
  const random = seeded(42);
  for (let round = 0; round < 10; round++) {
    const shuffled = {
      services: shuffle(base.services, random),
      slices: shuffle(base.slices, random),
      nodes: shuffle(base.nodes, random),
    };
    t.equal(snapshot(compute({ ...shuffled, config })), reference, `round ${round}`);
  }
});

t.test('output keys are sorted', async (t) => {
  const result = compute({ ...objects(), config: { families: ['IPv4', 'IPv6'] } });
  const keys = [...result.state.services.keys()];
  t.same(keys, [...keys].sort());
});
