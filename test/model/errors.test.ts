// Bad input → a ModelError naming kind, namespace/name, field path and value; only that object
// (or port, or entry) is skipped; the rest is still computed. Never a throw.
import t from 'tap';
import type { ModelError } from '../../src/model/types.js';
import { addrs, compute, ep, keys, node, NODE, portOf, service, slice, type InputOptions } from './builders.js';

type Obj = Record<string, unknown>;

const WEB = 'default/web:http/TCP/IPv4';
const API = 'default/api:http/TCP/IPv4';

/** A healthy neighbour Service that must survive every case. */
const api = service('api', { clusterIP: '10.96.0.11' });
const apiSlice = slice('api', [ep('10.0.1.1')]);

interface Case {
  name: string;
  web?: unknown;
  webSlices?: unknown[];
  extra?: Partial<InputOptions>;
  error: Partial<ModelError>;
  /** The keys computed besides API (default: none, i.e. web skipped). */
  keys?: string[];
  /** web's backends, when web is still programmed. */
  webBackends?: string[];
}

const webPorts = (ports: unknown): unknown => service('web', { ports });

const cases: Case[] = [
  // Service: the whole object
  { name: 'Service is not an object', web: 'web', error: { kind: 'Service', object: 'services[0]', field: '' } },
  { name: 'Service is null', web: null, error: { kind: 'Service', object: 'services[0]', field: '', value: null } },
  { name: 'Service without name', web: { metadata: {}, spec: {} }, error: { kind: 'Service', field: 'metadata.name' } },
  { name: 'Service name not a string', web: { metadata: { name: 7 }, spec: {} }, error: { field: 'metadata.name', value: 7 } },
  { name: 'namespace not a string', web: { metadata: { name: 'web', namespace: ['x'] }, spec: {} }, error: { field: 'metadata.namespace' } },
  { name: 'Service without spec', web: { metadata: { name: 'web' } }, error: { object: 'default/web', field: 'spec' } },
  { name: 'spec is a string', web: { metadata: { name: 'web' }, spec: 'ClusterIP' }, error: { field: 'spec', value: 'ClusterIP' } },
  { name: 'labels not an object', web: service('web', {}, { metadata: { labels: ['a'] } }), error: { field: 'metadata.labels' } },
  { name: 'label value not a string', web: service('web', {}, { metadata: { labels: { app: 1 } } }), error: { field: "metadata.labels['app']", value: 1 } },
  { name: 'unknown Service type', web: service('web', { type: 'Headless' }), error: { field: 'spec.type', value: 'Headless' } },
  // cluster IPs
  { name: 'bad IP in clusterIPs', web: service('web', { clusterIP: undefined, clusterIPs: ['10.96.0.300'] }), error: { field: 'spec.clusterIPs[0]', value: '10.96.0.300' } },
  { name: 'bad second clusterIP', web: service('web', { clusterIPs: ['10.96.0.10', 'fd00::zz'] }), error: { field: 'spec.clusterIPs[1]', value: 'fd00::zz' } },
  { name: 'bad clusterIP', web: service('web', { clusterIP: 'ten.ninety-six' }), error: { field: 'spec.clusterIP', value: 'ten.ninety-six' } },
  { name: 'clusterIP with leading zeros (ambiguous)', web: service('web', { clusterIP: '10.096.0.10' }), error: { field: 'spec.clusterIP' } },
  { name: 'clusterIP as a number', web: service('web', { clusterIP: 167772170 }), error: { field: 'spec.clusterIP', value: 167772170 } },
  { name: 'clusterIPs not a list', web: service('web', { clusterIPs: '10.96.0.10' }), error: { field: 'spec.clusterIPs' } },
  { name: 'clusterIP differs from clusterIPs[0]', web: service('web', { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.12'] }), error: { field: 'spec.clusterIP', value: '10.96.0.10' } },
  { name: 'two IPv4 cluster IPs', web: service('web', { clusterIPs: ['10.96.0.10', '10.96.0.12'] }), error: { field: 'spec.clusterIPs[1]' } },
  { name: 'IPv4-mapped IPv6 cluster IP (ambiguous family)', web: service('web', { clusterIP: '::ffff:10.96.0.10' }), error: { field: 'spec.clusterIP' } },
  // ports: only the bad port is skipped
  { name: 'port out of range', web: webPorts([{ name: 'x', port: 70000 }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].port', value: 70000 }, keys: [WEB] },
  { name: 'port 0', web: webPorts([{ name: 'http', port: 80 }, { name: 'x', port: 0 }]), error: { field: 'spec.ports[1].port', value: 0 }, keys: [WEB] },
  { name: 'port as a string', web: webPorts([{ name: 'x', port: '81' }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].port', value: '81' }, keys: [WEB] },
  { name: 'port missing', web: webPorts([{ name: 'x' }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].port' }, keys: [WEB] },
  { name: 'unknown protocol', web: webPorts([{ name: 'x', port: 1, protocol: 'ICMP' }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].protocol', value: 'ICMP' }, keys: [WEB] },
  { name: 'lower-case protocol', web: webPorts([{ name: 'x', port: 1, protocol: 'tcp' }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].protocol', value: 'tcp' }, keys: [WEB] },
  { name: 'port name not a string', web: webPorts([{ name: 5, port: 1 }, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0].name', value: 5 }, keys: [WEB] },
  { name: 'port entry not an object', web: webPorts([80, { name: 'http', port: 80 }]), error: { field: 'spec.ports[0]', value: 80 }, keys: [WEB] },
  { name: 'nodePort out of range', web: service('web', { type: 'NodePort', ports: [{ name: 'x', port: 1, nodePort: -1 }, { name: 'http', port: 80 }] }), error: { field: 'spec.ports[0].nodePort', value: -1 }, keys: [WEB] },
  { name: 'duplicate name and protocol', web: webPorts([{ name: 'http', port: 80 }, { name: 'http', port: 81 }]), error: { field: 'spec.ports[1].name', value: 'http' }, keys: [WEB] },
  { name: 'ports not a list', web: webPorts({ http: 80 }), error: { field: 'spec.ports' }, keys: [] },
  {
    name: 'nodePort on a ClusterIP Service is ignored, the port kept',
    web: service('web', { ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    error: { field: 'spec.ports[0].nodePort', value: 30080 },
    keys: [WEB],
  },
  // other Service fields: the entry is skipped, the Service programmed
  { name: 'bad external IP', web: service('web', { externalIPs: ['1.2.3.4.5'] }), error: { field: 'spec.externalIPs[0]', value: '1.2.3.4.5' }, keys: [WEB] },
  { name: 'externalIPs not a list', web: service('web', { externalIPs: '1.2.3.4' }), error: { field: 'spec.externalIPs' }, keys: [WEB] },
  {
    name: 'bad LB ingress ip',
    web: service('web', { type: 'LoadBalancer' }, { status: { loadBalancer: { ingress: [{ ip: 'lb' }] } } }),
    error: { field: 'status.loadBalancer.ingress[0].ip', value: 'lb' },
    keys: [WEB],
  },
  {
    name: 'unknown ipMode',
    web: service('web', { type: 'LoadBalancer' }, { status: { loadBalancer: { ingress: [{ ip: '203.0.113.1', ipMode: 'Tunnel' }] } } }),
    error: { field: 'status.loadBalancer.ingress[0].ipMode', value: 'Tunnel' },
    keys: [WEB],
  },
  { name: 'unknown internalTrafficPolicy (read as Cluster)', web: service('web', { internalTrafficPolicy: 'Nearby' }), error: { field: 'spec.internalTrafficPolicy', value: 'Nearby' }, keys: [WEB] },
  { name: 'unknown externalTrafficPolicy (read as Cluster)', web: service('web', { externalTrafficPolicy: 'Global' }), error: { field: 'spec.externalTrafficPolicy' }, keys: [WEB] },
  {
    name: 'healthCheckNodePort out of range',
    web: service('web', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 65536 }),
    error: { field: 'spec.healthCheckNodePort', value: 65536 },
    keys: [WEB],
  },
  // EndpointSlices: the slice (or endpoint, or port) is skipped
  { name: 'slice without service-name label', webSlices: [slice('web', [ep('10.0.0.1')], { labels: {} })], error: { kind: 'EndpointSlice', object: 'default/web-abc', field: "metadata.labels['kubernetes.io/service-name']" }, keys: [WEB], webBackends: [] },
  { name: 'slice without name', webSlices: [{ metadata: { labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4' }], error: { kind: 'EndpointSlice', object: 'endpointSlices[0]', field: 'metadata.name' }, keys: [WEB], webBackends: [] },
  { name: 'slice without addressType', webSlices: [slice('web', [ep('10.0.0.1')], { addressType: undefined as unknown as string })].map((s) => ({ ...s, addressType: undefined })), error: { field: 'addressType' }, keys: [WEB], webBackends: [] },
  { name: 'unknown addressType', webSlices: [slice('web', [ep('10.0.0.1')], { addressType: 'IPv5' })], error: { field: 'addressType', value: 'IPv5' }, keys: [WEB], webBackends: [] },
  { name: 'endpoints not a list', webSlices: [{ ...slice('web', []), endpoints: { a: 1 } }], error: { field: 'endpoints' }, keys: [WEB], webBackends: [] },
  { name: 'bad endpoint IP: that endpoint only', webSlices: [slice('web', [ep('10.0.0.256'), ep('10.0.0.2')])], error: { field: 'endpoints[0].addresses[0]', value: '10.0.0.256' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'endpoint IP of the wrong family', webSlices: [slice('web', [ep('10.0.0.1'), ep('fd00::1')])], error: { field: 'endpoints[1].addresses[0]', value: 'fd00::1' }, keys: [WEB], webBackends: ['10.0.0.1:8080'] },
  { name: 'addresses not a list', webSlices: [slice('web', [{ addresses: '10.0.0.1' }, ep('10.0.0.2')])], error: { field: 'endpoints[0].addresses' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'ready as a string', webSlices: [slice('web', [ep('10.0.0.1', { ready: 'yes' as unknown as boolean }), ep('10.0.0.2')])], error: { field: 'endpoints[0].conditions.ready', value: 'yes' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'conditions not an object', webSlices: [slice('web', [{ addresses: ['10.0.0.1'], conditions: true }, ep('10.0.0.2')])], error: { field: 'endpoints[0].conditions' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'nodeName not a string', webSlices: [slice('web', [{ addresses: ['10.0.0.1'], nodeName: 1 }, ep('10.0.0.2')])], error: { field: 'endpoints[0].nodeName' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'endpoint not an object', webSlices: [slice('web', ['10.0.0.1', ep('10.0.0.2')] as Obj[])], error: { field: 'endpoints[0]' }, keys: [WEB], webBackends: ['10.0.0.2:8080'] },
  { name: 'slice port protocol unknown', webSlices: [slice('web', [ep('10.0.0.1')], { ports: [{ name: 'http', port: 8080, protocol: 'QUIC' }] })], error: { field: 'ports[0].protocol', value: 'QUIC' }, keys: [WEB], webBackends: [] },
  { name: 'slice port negative', webSlices: [slice('web', [ep('10.0.0.1')], { ports: [{ name: 'http', port: -5 }] })], error: { field: 'ports[0].port', value: -5 }, keys: [WEB], webBackends: [] },
  { name: 'slice port as a string', webSlices: [slice('web', [ep('10.0.0.1')], { ports: [{ name: 'http', port: '8080' }] })], error: { field: 'ports[0].port', value: '8080' }, keys: [WEB], webBackends: [] },
  {
    name: 'bad hint: hints dropped, endpoint kept',
    webSlices: [slice('web', [{ addresses: ['10.0.0.1'], hints: { forZones: [{ name: 3 }] } }])],
    error: { field: 'endpoints[0].hints.forZones[0].name', value: 3 },
    keys: [WEB],
    webBackends: ['10.0.0.1:8080'],
  },
  {
    name: 'duplicate slice namespace/name: the later one skipped',
    webSlices: [slice('web', [ep('10.0.0.1')]), slice('web', [ep('10.0.0.2')])],
    error: { kind: 'EndpointSlice', object: 'default/web-abc', field: 'metadata.name' },
    keys: [WEB],
    webBackends: ['10.0.0.1:8080'],
  },
  // Nodes and config
  {
    name: 'bad node address: that address only',
    web: service('web', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    extra: { nodes: [node(NODE, ['192.168.0.1000', '192.168.0.10'])] },
    error: { kind: 'Node', object: NODE, field: 'status.addresses[0].address', value: '192.168.0.1000' },
    keys: [WEB],
  },
  { name: 'bad family in config', extra: { config: { families: ['IPv4', 'IPv5' as 'IPv4'] } }, error: { kind: 'ModelConfig', field: 'families[1]', value: 'IPv5' }, keys: [WEB] },
  { name: 'bad nodePortAddresses entry', extra: { config: { nodePortAddresses: ['10.0.0.0/8', 'eth0'] } }, error: { kind: 'ModelConfig', field: 'nodePortAddresses[1]', value: 'eth0' }, keys: [WEB] },
  { name: 'nodeName missing', extra: { nodeName: '' }, error: { kind: 'ModelInput', field: 'nodeName' }, keys: [WEB] },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const web = c.web === undefined ? service('web') : c.web;
    const result = compute({
      services: [web, api],
      slices: [...(c.webSlices ?? [slice('web', [ep('10.0.0.1')])]), apiSlice],
      ...c.extra,
    });
    t.match(result.errors, [c.error], 'the error names the problem');
    t.equal(result.errors.length, 1, 'one problem, one error');
    const first = result.errors[0];
    t.ok(first && first.message.includes(first.field) && first.message.includes(first.kind), 'the message is self-contained');
    t.same(keys(result), [API, ...(c.keys ?? [])].sort(), 'everything else computed');
    t.same(addrs(portOf(result, API).clusterBackends), ['10.0.1.1:8080']);
    if (c.webBackends) t.same(addrs(portOf(result, WEB).clusterBackends), c.webBackends);
  });
}

t.test('a message names kind, object, field and value', async (t) => {
  const result = compute({ services: [service('web', { ports: [{ name: 'http', port: 70000 }] })] });
  t.same(result.errors.map((e) => e.message), [
    'Service default/web: spec.ports[0].port: must be an integer in 1..65535 (got 70000)',
  ]);
});

t.test('input lists of the wrong type are reported and read as empty', async (t) => {
  const result = compute({ services: { web: 1 } as unknown as unknown[], slices: 'none' as unknown as unknown[], nodes: 5 as unknown as unknown[] });
  t.match(result.errors, [
    { kind: 'ModelInput', field: 'endpointSlices' },
    { kind: 'ModelInput', field: 'nodes' },
    { kind: 'ModelInput', field: 'services' },
    { kind: 'Node', field: 'metadata.name' },
  ]);
  t.equal(result.state.services.size, 0);
});

t.test('a duplicate Service namespace/name: reported, the first kept', async (t) => {
  const result = compute({ services: [service('web'), service('web', { clusterIP: '10.96.0.99' })] });
  t.same(fronts0(result), ['10.96.0.10']);
  t.match(result.errors, [{ kind: 'Service', object: 'default/web', field: 'metadata.name' }]);
});

function fronts0(result: ReturnType<typeof compute>): string[] {
  return portOf(result, WEB).frontends.map((f) => f.ip);
}
