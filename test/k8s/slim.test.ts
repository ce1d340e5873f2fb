// The store's slim objects (src/k8s/slim.ts): exactly the fields Sluice reads, malformed values
// kept as they are, repeating values shared — and the model computes the same state and errors
// from the slim objects as from the originals.
import t from 'tap';
import { asKubeObject } from '../../src/k8s/serialization.js';
import { SlimPool, slimObject } from '../../src/k8s/slim.js';
import { ObjectStore } from '../../src/k8s/store.js';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { ModelConfig, ModelInput } from '../../src/model/types.js';
import { DEFAULT_NODE, node, NODE } from '../model/builders.js';
import { makeService, makeSlice, seeded } from '../model/random-cluster.js';

const CONFIG: ModelConfig = { families: ['IPv4', 'IPv6'], nodePortAddresses: [], serviceProxyName: '' };

const richService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 'web', namespace: 'shop', uid: 'u-1', resourceVersion: '7', generation: 3,
    creationTimestamp: '2026-01-02T03:04:05Z',
    labels: { app: 'web' },
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big": "blob"}' },
    managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': {} } }],
  },
  spec: {
    type: 'LoadBalancer', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'], selector: { app: 'web' },
    ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080, protocol: 'TCP' }],
    externalTrafficPolicy: 'Local', healthCheckNodePort: 31000, sessionAffinity: 'None', ipFamilies: ['IPv4'],
  },
  status: {
    loadBalancer: { ingress: [{ ip: '203.0.113.7', ipMode: 'VIP' }] },
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-02T03:04:05Z', reason: 'x', message: 'y' }],
  },
};

const richSlice = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: {
    name: 'web-x1', namespace: 'shop', uid: 'u-2', resourceVersion: '8', creationTimestamp: '2026-01-02T03:04:06Z',
    labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
    annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-01-02T03:04:06Z' },
  },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [
    {
      addresses: ['10.1.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-a', zone: 'z1',
      hostname: 'web-0', hints: { forZones: [{ name: 'z1' }] },
      targetRef: { kind: 'Pod', name: 'web-5d8f-abcde', namespace: 'shop', uid: 'u-3' },
    },
  ],
};

const richNode = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'node-a', uid: 'u-4', resourceVersion: '9', labels: { 'topology.kubernetes.io/zone': 'z1' }, annotations: { a: 'b' } },
  spec: { podCIDR: '10.244.0.0/24', providerID: 'aws:///x' },
  status: {
    addresses: [{ type: 'InternalIP', address: '192.168.0.10' }, { type: 'Hostname', address: 'node-a' }],
    conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-01-02T03:04:05Z' }],
    images: [{ names: ['registry/app:1'], sizeBytes: 123456789 }],
    nodeInfo: { kubeletVersion: 'v1.31.0' },
  },
};

t.test('exactly the fields Sluice reads, from raw API objects', async (t) => {
  const pool = new SlimPool();
  const service = slimObject('Service', asKubeObject('Service', structuredClone(richService)), pool);
  t.strictSame(JSON.parse(JSON.stringify(service)), {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: 'web', namespace: 'shop', resourceVersion: '7', creationTimestamp: '2026-01-02T03:04:05Z', labels: { app: 'web' } },
    spec: {
      type: 'LoadBalancer', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'],
      ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080, protocol: 'TCP' }],
      externalTrafficPolicy: 'Local', healthCheckNodePort: 31000, sessionAffinity: 'None', ipFamilies: ['IPv4'],
    },
    status: { loadBalancer: { ingress: [{ ip: '203.0.113.7', ipMode: 'VIP' }] } },
  }, 'no uid, annotations, managedFields, selector or status conditions');
  t.equal(service.metadata?.creationTimestamp as unknown, '2026-01-02T03:04:05Z', 'the creation time stays as the API server wrote it (conflicts: the oldest wins)');
  t.equal(Object.getPrototypeOf(service), Object.prototype, 'a plain object');

  const slice = slimObject('EndpointSlice', asKubeObject('EndpointSlice', structuredClone(richSlice)), pool);
  t.strictSame(JSON.parse(JSON.stringify(slice)), {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name: 'web-x1', namespace: 'shop', resourceVersion: '8',
      labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-a', zone: 'z1', hints: { forZones: [{ name: 'z1' }] } }],
  }, 'no targetRef, hostname, owner references, annotations or creation time');

  const n = slimObject('Node', asKubeObject('Node', structuredClone(richNode)), pool);
  t.strictSame(JSON.parse(JSON.stringify(n)), {
    apiVersion: 'v1', kind: 'Node',
    metadata: { name: 'node-a', resourceVersion: '9', labels: { 'topology.kubernetes.io/zone': 'z1' } },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.0.10' }, { type: 'Hostname', address: 'node-a' }] },
  }, 'a Node keeps its labels and addresses: no conditions, images, node info or spec');
});

t.test('malformed values are kept as they are, for the model to report', async (t) => {
  const pool = new SlimPool();
  const bad = {
    metadata: { name: 'bad', namespace: 'x', labels: 'not-a-map' },
    addressType: 7,
    ports: 'eighty',
    endpoints: [{ addresses: '10.0.0.1', conditions: ['ready'], nodeName: 5 }, 'nope', null],
  };
  const typeMeta = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' };
  t.strictSame(slimObject('EndpointSlice', bad as never, pool), { ...typeMeta, ...bad });
  t.strictSame(slimObject('EndpointSlice', { metadata: { name: 'e' }, endpoints: { a: 1 } } as never, pool), { ...typeMeta, metadata: { name: 'e' }, endpoints: { a: 1 } });
  t.strictSame(slimObject('Service', 'just text' as never, pool), 'just text');
});

t.test('list items, which come without apiVersion and kind, get them, first', async (t) => {
  const pool = new SlimPool();
  const item = { metadata: { name: 'n1' }, status: { addresses: [] } };
  const slim = slimObject('Node', item as never, pool);
  t.strictSame(Object.keys(slim), ['apiVersion', 'kind', 'metadata', 'status']);
  t.equal(slim.apiVersion, 'v1');
  t.equal(slim.kind, 'Node');
  t.same(Object.keys(slimObject('Node', { kind: 'Node', metadata: { name: 'n2' }, apiVersion: 'v1' } as never, pool)), ['apiVersion', 'kind', 'metadata'], 'one key order whatever the input');
});

t.test('repeating values are one frozen copy; the argument is not modified; the pool is bounded', async (t) => {
  const pool = new SlimPool(4);
  const a = structuredClone(richSlice);
  const before = structuredClone(a);
  const one = slimObject('EndpointSlice', a as never, pool);
  const two = slimObject('EndpointSlice', structuredClone(richSlice) as never, pool);
  t.strictSame(a, before, 'the given object is untouched');
  t.not(one, two);
  t.equal(one.endpoints[0]?.conditions, two.endpoints[0]?.conditions, 'equal conditions are one object');
  t.equal(one.ports, two.ports, 'equal port lists are one array');
  t.ok(Object.isFrozen(one.endpoints[0]?.conditions) && Object.isFrozen(one.ports?.[0]), 'shared values are frozen');
  t.not(one.metadata, two.metadata, 'objects of their own are not shared');
  t.ok(pool.size <= 8, `at most the limit per table (got ${pool.size})`);
  for (let i = 0; i < 20; i++) pool.intern(`s${i}`);
  t.ok(pool.size <= 8, 'a full table starts over');
});

t.test('the model gives the same state and errors from slim objects as from the originals', async (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = seeded(seed);
    const pick = (n: number) => Math.floor(random() * n);
    const services: Record<string, unknown>[] = [];
    const slices: Record<string, unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      services.push(makeService(i, pick(11)));
      for (let s = 0; s < 2; s++) slices.push(makeSlice(i, s, pick(32), pick(13)));
    }
    const nodes = [node('node-b', ['192.168.0.11']), DEFAULT_NODE];
    const store = new ObjectStore();
    // As the informers deliver them: client-node model objects.
    store.replaceAll('Service', services.map((s) => asKubeObject('Service', structuredClone(s))));
    store.replaceAll('EndpointSlice', slices.map((s) => asKubeObject('EndpointSlice', structuredClone(s))));
    store.replaceAll('Node', nodes.map((n) => asKubeObject('Node', structuredClone(n))));
    const input = (o: object) => ({ ...o, nodeName: NODE, config: CONFIG }) as unknown as ModelInput;
    const want = computeDesiredState(input({ services, endpointSlices: slices, nodes }));
    const got = computeDesiredState(input(store.snapshot()));
    t.ok(want.state.services.size > 10, `seed ${seed}: a cluster worth comparing (${want.state.services.size} ports)`);
    t.equal(JSON.stringify([...got.state.services], null, 1), JSON.stringify([...want.state.services], null, 1), `seed ${seed}: same state`);
    t.strictSame(got.errors, want.errors, `seed ${seed}: same errors (${want.errors.length})`);
  }
});

t.test('an update of fields Sluice does not read is no change: a Node heartbeat recomputes nothing', async (t) => {
  const store = new ObjectStore();
  const changes: string[] = [];
  store.onChange((c) => changes.push(`${c.kind} ${c.reason}`));
  store.upsert('Node', asKubeObject('Node', structuredClone(richNode)));
  const beat = structuredClone(richNode);
  beat.metadata.resourceVersion = '10';
  beat.status.conditions[0] = { type: 'Ready', status: 'True', lastHeartbeatTime: '2026-01-02T03:09:05Z' };
  beat.status.images.push({ names: ['registry/app:2'], sizeBytes: 5 });
  t.equal(store.upsert('Node', asKubeObject('Node', beat)), false, 'heartbeat: no change');
  const moved = structuredClone(beat);
  moved.metadata.resourceVersion = '11';
  moved.status.addresses[0] = { type: 'InternalIP', address: '192.168.0.99' };
  t.equal(store.upsert('Node', asKubeObject('Node', moved)), true, 'a new address is a change');
  const pod = structuredClone(richSlice);
  store.upsert('EndpointSlice', pod as never);
  pod.metadata.resourceVersion = '12';
  pod.endpoints[0]!.targetRef.uid = 'u-9';
  t.equal(store.upsert('EndpointSlice', pod as never), false, 'a new targetRef alone: no change');
  t.strictSame(changes, ['Node added', 'Node updated', 'EndpointSlice added']);
});
