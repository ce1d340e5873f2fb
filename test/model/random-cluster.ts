// A small random cluster for differential tests: Services and EndpointSlices whose `variant`
// moves ports, IPs, policies, ages, readiness and hints around, with some malformed on purpose.
import { IncrementalModel } from '../../src/model/incremental.js';
import type { DesiredState, ModelConfig, ModelInput } from '../../src/model/types.js';
import { DEFAULT_NODE, ep, node, NODE, service, slice } from './builders.js';

export function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

export type Obj = Record<string, unknown>;

/** A Service of the random cluster; `variant` moves its ports, IPs, policy and age around. */
export function makeService(i: number, variant: number): Obj {
  const types = ['ClusterIP', 'NodePort', 'LoadBalancer'];
  const broken = variant % 11 === 10;
  return service(`svc-${i}`, {
    type: types[(i + variant) % 3],
    clusterIP: broken ? 'not-an-ip' : `10.96.1.${i}`,
    clusterIPs: broken ? ['not-an-ip'] : i % 4 === 0 ? [`10.96.1.${i}`, `fd00:96::${i.toString(16)}`] : [`10.96.1.${i}`],
    ports: [
      { name: 'http', port: 80 + (variant % 3), ...((i + variant) % 3 ? { nodePort: 30000 + i } : {}) },
      ...(variant % 2 ? [{ name: 'dns', port: 53, protocol: 'UDP' }] : []),
    ],
    // Contested on purpose: several Services name the same external IPs.
    externalIPs: variant % 4 === 1 ? ['198.51.100.1'] : variant % 4 === 2 ? ['198.51.100.1', '198.51.100.2'] : [],
    internalTrafficPolicy: variant % 5 === 0 ? 'Local' : 'Cluster',
  }, {
    metadata: { creationTimestamp: new Date(Date.UTC(2026, 0, 1 + ((i * 7 + variant) % 20))).toISOString() },
    status: { loadBalancer: { ingress: [{ ip: `203.0.113.${i}` }] } },
  }) as unknown as Obj;
}

/** A slice of the random cluster, owned by `owner`. */
export function makeSlice(i: number, s: number, owner: number, variant: number): Obj {
  const endpoints = [0, 1, 2].map((k) =>
    ep(`10.${s}.${i}.${(k + variant) % 7}`, {
      node: (k + variant) % 2 ? NODE : 'node-b',
      ready: (k + variant) % 4 !== 3,
      terminating: (k + variant) % 4 === 3,
      ...(variant % 3 === 0 ? { forZones: ['zone-a'] } : {}),
    }));
  if (variant % 13 === 12) endpoints.push(ep('10.0.0.999')); // malformed endpoint
  return slice(`svc-${owner}`, endpoints, {
    name: `slice-${i}-${s}`,
    ports: [{ name: 'http', port: 8080 + (variant % 2) }, { name: 'dns', port: 5353, protocol: 'UDP' }],
  }) as unknown as Obj;
}

/**
 * Runs the incremental model over a random change sequence of the cluster above (endpoint
 * changes, Services changed, added and removed, slices moved and removed) and calls `step` after
 * full() (changed: undefined) and after every update() (changed: its changed keys).
 */
export function walkRandomChanges(
  seed: number,
  steps: number,
  step: (state: DesiredState, changed: ReadonlySet<string> | undefined) => void,
  opts: { services?: number; service?: (i: number, variant: number) => Obj } = {},
): void {
  const random = seeded(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const N = opts.services ?? 24;
  const makeSvc = opts.service ?? makeService;
  const services = new Map<string, Obj>();
  const slices = new Map<string, Obj>();
  const keyOf = (o: Obj): string => {
    const m = o['metadata'] as { namespace: string; name: string };
    return `${m.namespace}/${m.name}`;
  };
  const put = (into: Map<string, Obj>, o: Obj) => into.set(keyOf(o), o);
  for (let i = 0; i < N; i++) {
    put(services, makeSvc(i, pick(11)));
    for (let s = 0; s < 2; s++) put(slices, makeSlice(i, s, i, pick(13)));
  }
  const model = new IncrementalModel();
  const nodes = [node('node-b', ['192.168.0.11']), DEFAULT_NODE];
  const config: ModelConfig = { families: ['IPv4', 'IPv6'], nodePortAddresses: [], serviceProxyName: '' };
  const first = model.full({ services: [...services.values()], endpointSlices: [...slices.values()], nodes, nodeName: NODE, config } as unknown as ModelInput);
  step(first.state, undefined);
  for (let k = 0; k < steps; k++) {
    const changedServices = new Set<string>();
    const changedSlices = new Set<string>();
    const i = pick(N + 4);
    const what = pick(6);
    if (what < 3) {
      const sl = makeSlice(i % N, pick(2), pick(N), pick(13));
      put(slices, sl);
      changedSlices.add(keyOf(sl));
    } else if (what < 5) {
      const svc = makeSvc(i, pick(11));
      put(services, svc);
      changedServices.add(keyOf(svc));
    } else {
      const key = `default/svc-${i}`;
      services.delete(key);
      changedServices.add(key);
    }
    const result = model.update({
      services: changedServices, endpointSlices: changedSlices,
      service: (key) => services.get(key), endpointSlice: (key) => slices.get(key),
    });
    step(result.state, result.changed);
  }
}
