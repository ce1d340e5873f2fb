// Two Service ports claiming the same ip:port/protocol: the older Service keeps it, the newer
// one loses only that frontend (reported). The API server does not stop externalIPs collisions.
import t from 'tap';
import { compute, fronts, portOf, service } from './builders.js';

type Obj = Record<string, unknown>;

const older = { creationTimestamp: '2024-01-01T00:00:00Z' };
const newer = { creationTimestamp: '2024-06-01T00:00:00Z' };

interface Case {
  name: string;
  a: { spec: Obj; metadata?: Obj };
  b: { spec: Obj; metadata?: Obj };
  aFronts: string[];
  bFronts: string[];
  /** b's DesiredServicePort key when not http/TCP. */
  bKey?: string;
  /** Field of the error reported on the loser, if any. */
  errorOn?: { object: string; field: string };
}

const cases: Case[] = [
  {
    name: 'same external IP and port: the older Service keeps it',
    a: { spec: { externalIPs: ['198.51.100.1'] }, metadata: newer },
    b: { spec: { clusterIP: '10.96.0.11', externalIPs: ['198.51.100.1'] }, metadata: older },
    aFronts: ['ClusterIP 10.96.0.10:80'],
    bFronts: ['ClusterIP 10.96.0.11:80', 'ExternalIP 198.51.100.1:80'],
    errorOn: { object: 'default/a', field: 'spec.externalIPs[0]' },
  },
  {
    name: 'same time (or none): the first by key keeps it',
    a: { spec: { externalIPs: ['198.51.100.1'] } },
    b: { spec: { clusterIP: '10.96.0.11', externalIPs: ['198.51.100.1'] } },
    aFronts: ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.51.100.1:80'],
    bFronts: ['ClusterIP 10.96.0.11:80'],
    errorOn: { object: 'default/b', field: 'spec.externalIPs[0]' },
  },
  {
    name: 'an external IP naming another Service\'s cluster IP cannot hijack it',
    a: { spec: {}, metadata: older },
    b: { spec: { clusterIP: '10.96.0.11', externalIPs: ['10.96.0.10'] }, metadata: newer },
    aFronts: ['ClusterIP 10.96.0.10:80'],
    bFronts: ['ClusterIP 10.96.0.11:80'],
    errorOn: { object: 'default/b', field: 'spec.externalIPs[0]' },
  },
  {
    name: 'same node port (manifests have no allocator)',
    a: { spec: { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, metadata: older },
    b: { spec: { type: 'NodePort', clusterIP: '10.96.0.11', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, metadata: newer },
    aFronts: ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.0.10:30080'],
    bFronts: ['ClusterIP 10.96.0.11:80'],
    errorOn: { object: 'default/b', field: 'spec.ports[0].nodePort' },
  },
  {
    name: 'same cluster IP and port (manifests)',
    a: { spec: {}, metadata: older },
    b: { spec: {}, metadata: newer },
    aFronts: ['ClusterIP 10.96.0.10:80'],
    bFronts: [],
    errorOn: { object: 'default/b', field: 'spec.clusterIP' },
  },
  {
    name: 'same address, different port: no conflict',
    a: { spec: { externalIPs: ['198.51.100.1'] } },
    b: { spec: { clusterIP: '10.96.0.11', externalIPs: ['198.51.100.1'], ports: [{ name: 'http', port: 81 }] } },
    aFronts: ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.51.100.1:80'],
    bFronts: ['ClusterIP 10.96.0.11:81', 'ExternalIP 198.51.100.1:81'],
  },
  {
    name: 'same address and port, different protocol: no conflict',
    a: { spec: { externalIPs: ['198.51.100.1'] } },
    b: { spec: { clusterIP: '10.96.0.11', externalIPs: ['198.51.100.1'], ports: [{ name: 'http', port: 80, protocol: 'UDP' }] } },
    aFronts: ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.51.100.1:80'],
    bFronts: ['ClusterIP 10.96.0.11:80', 'ExternalIP 198.51.100.1:80'],
    bKey: 'default/b:http/UDP/IPv4',
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({
      services: [service('b', c.b.spec, { metadata: c.b.metadata ?? {} }), service('a', c.a.spec, { metadata: c.a.metadata ?? {} })],
    });
    const bKey = c.bKey ?? 'default/b:http/TCP/IPv4';
    t.same(fronts(portOf(result, 'default/a:http/TCP/IPv4')), c.aFronts, 'a');
    t.same(fronts(portOf(result, bKey)), c.bFronts, 'b');
    t.same(result.errors.map((e) => ({ object: e.object, field: e.field })), c.errorOn ? [c.errorOn] : []);
  });
}

t.test('two ports of one Service on the same port number and protocol: the later key loses', async (t) => {
  const result = compute({ services: [service('web', { ports: [{ name: 'b', port: 80 }, { name: 'a', port: 80 }] })] });
  t.same(fronts(portOf(result, 'default/web:a/TCP/IPv4')), ['ClusterIP 10.96.0.10:80']);
  t.same(fronts(portOf(result, 'default/web:b/TCP/IPv4')), []);
  t.match(result.errors, [{ field: 'spec.clusterIP', message: /already used by default\/web:a\/TCP\/IPv4/ }]);
});
