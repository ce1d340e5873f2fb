import t from 'tap';
import type { V1Service } from '@kubernetes/client-node';
import { parseManifestFile, splitYamlDocuments } from '../../src/k8s/manifest-parse.js';
import { validateManifestObject } from '../../src/k8s/manifest-validate.js';
import { endpointSlice, node, service } from './fixtures.js';

const yamlOf = (obj: unknown) => JSON.stringify(obj, null, 2); // JSON is YAML

t.test('splitting YAML documents keeps their start lines and drops empty ones', async (t) => {
  const text = ['# header comment', '---', 'a: 1', '---', '# only a comment', '---', 'b: 2', 'c: 3', '--- {d: 4}', '...', ''].join('\n');
  t.same(splitYamlDocuments(text), [
    { text: 'a: 1', line: 2 },
    { text: 'b: 2\nc: 3', line: 6 },
    { text: '{d: 4}\n\n', line: 9 },
  ]);
  t.same(splitYamlDocuments('x: 1\n'), [{ text: 'x: 1\n', line: 1 }]);
});

t.test('multi-document YAML yields objects of each kind', async (t) => {
  const text = [yamlOf(service('web')), '---', yamlOf(endpointSlice('web-1', 'web')), '---', yamlOf(node('n1'))].join('\n');
  const parsed = parseManifestFile('all.yaml', text);
  t.same(parsed.errors, []);
  t.same(parsed.objects.map((o) => [o.kind, o.key, o.document]), [
    ['Service', 'default/web', 1],
    ['EndpointSlice', 'default/web-1', 2],
    ['Node', 'n1', 3],
  ]);
  t.same(parsed.objects.map((o) => [o.object.apiVersion, o.object.kind]), [['v1', 'Service'], ['discovery.k8s.io/v1', 'EndpointSlice'], ['v1', 'Node']]);
  t.equal(parsed.unidentifiedBroken, false);
});

t.test('plain YAML (not JSON) with numbers, booleans and timestamps', async (t) => {
  const text = `apiVersion: v1
kind: Service
metadata:
  name: dns
  namespace: kube-system
  creationTimestamp: 2024-02-03T04:05:06Z
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - name: dns-tcp
    port: 53
    protocol: TCP
`;
  const parsed = parseManifestFile('dns.yml', text);
  t.same(parsed.errors, []);
  const svc = parsed.objects[0]?.object as V1Service;
  t.equal(svc.spec?.ports?.[1]?.port, 53);
  t.equal(svc.spec?.clusterIP, '10.96.0.10');
  t.equal(svc.metadata?.creationTimestamp as unknown, '2024-02-03T04:05:06Z', 'timestamps stay strings (the core schema; the model reads them)');
});

t.test('JSON: a single object or a List of items', async (t) => {
  const list = { apiVersion: 'v1', kind: 'List', items: [service('a'), node('n1')] };
  const parsed = parseManifestFile('list.json', JSON.stringify(list));
  t.same(parsed.objects.map((o) => o.key), ['default/a', 'n1']);
  const single = parseManifestFile('one.JSON', JSON.stringify(service('b', { namespace: 'prod' })));
  t.same(single.objects.map((o) => o.key), ['prod/b']);
  const yamlList = parseManifestFile('l.yaml', yamlOf({ apiVersion: 'v1', kind: 'ServiceList', items: [service('c')] }));
  t.same(yamlList.objects.map((o) => o.key), ['default/c'], 'typed lists too');
});

t.test('a YAML syntax error spoils only its document and names file, document and line', async (t) => {
  const text = ['kind: Service', 'apiVersion: v1', 'metadata: {name: a}', 'spec: {ports: [{port: 80}]}', '---', 'kind: Service', 'metadata: {name: [b', '---', yamlOf(node('n1'))].join('\n');
  const parsed = parseManifestFile('mixed.yaml', text);
  t.same(parsed.objects.map((o) => o.key), ['default/a', 'n1'], 'the documents around it still load');
  t.equal(parsed.errors.length, 1);
  const error = parsed.errors[0];
  t.equal(error?.file, 'mixed.yaml');
  t.equal(error?.document, 2);
  t.ok((error?.line ?? 0) >= 7, 'line within the broken document');
  t.match(error?.message, /^mixed\.yaml \(document 2, line \d+\): invalid YAML at line \d+: /);
  t.equal(parsed.unidentifiedBroken, true, 'its identity is unknown');
});

t.test('invalid JSON reports the line of the problem', async (t) => {
  const parsed = parseManifestFile('bad.json', '{\n  "kind": "Service",\n  "metadata": {"name": "x",}\n}');
  t.equal(parsed.objects.length, 0);
  t.match(parsed.errors[0]?.message, /^bad\.json \(document 1, line 3\): invalid JSON/);
  t.equal(parsed.unidentifiedBroken, true);
});

t.test('a structurally bad object: error names kind, name and field; identity kept for last-good', async (t) => {
  const bad = service('web');
  (bad.spec.ports[0] as { port: unknown }).port = 'http';
  const text = [yamlOf(service('ok')), '---', yamlOf(bad)].join('\n');
  const parsed = parseManifestFile('svc.yaml', text);
  t.same(parsed.objects.map((o) => o.key), ['default/ok']);
  t.same(parsed.brokenObjects, [{ kind: 'Service', key: 'default/web' }]);
  t.equal(parsed.unidentifiedBroken, false);
  t.match(parsed.errors[0], {
    file: 'svc.yaml',
    document: 2,
    kind: 'Service',
    object: 'default/web',
    field: 'spec.ports[0].port',
  });
  t.match(parsed.errors[0]?.message, 'svc.yaml (document 2, line');
  t.match(parsed.errors[0]?.message, 'Service default/web: spec.ports[0].port: must be a whole number from 1 to 65535 (got "http")');
});

t.test('other kinds are reported and ignored; nameless or kindless documents are unidentified', async (t) => {
  const other = parseManifestFile('d.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n');
  t.match(other.errors[0]?.message, /kind: "Deployment" is not one of Service, EndpointSlice, Node; ignored/);
  t.equal(other.unidentifiedBroken, false);
  const nameless = parseManifestFile('n.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {}\n');
  t.match(nameless.errors[0], { field: 'metadata.name', kind: 'Service' });
  t.equal(nameless.unidentifiedBroken, true);
  const kindless = parseManifestFile('k.yaml', 'metadata: {name: x}\n');
  t.match(kindless.errors[0], { field: 'kind' });
  t.equal(kindless.unidentifiedBroken, true);
  const scalar = parseManifestFile('s.yaml', 'just text\n');
  t.match(scalar.errors[0]?.message, /not an object \(got string\)/);
  const listItem = parseManifestFile('l.json', JSON.stringify({ kind: 'List', items: [service('a'), 5] }));
  t.same(listItem.objects.map((o) => o.key), ['default/a']);
  t.match(listItem.errors[0], { item: 1, document: 1 });
  t.match(listItem.errors[0]?.message, /\(document 1, line 1, item 1\): not an object/);
});

t.test('structural checks per kind', async (t) => {
  const cases: [string, 'Service' | 'EndpointSlice' | 'Node', (o: Record<string, unknown>) => void, string][] = [
    ['wrong apiVersion', 'Service', (o) => (o.apiVersion = 'v2'), 'apiVersion'],
    ['upper-case name', 'Service', (o) => ((o.metadata as Record<string, unknown>).name = 'Web'), 'metadata.name'],
    ['label not a string', 'Service', (o) => ((o.metadata as Record<string, unknown>).labels = { a: 1 }), 'metadata.labels.a'],
    ['no spec', 'Service', (o) => delete o.spec, 'spec'],
    ['port out of range', 'Service', (o) => ((o.spec as { ports: { port: number }[] }).ports[0]!.port = 70000), 'spec.ports[0].port'],
    ['bad protocol', 'Service', (o) => ((o.spec as { ports: { protocol: string }[] }).ports[0]!.protocol = 'ICMP'), 'spec.ports[0].protocol'],
    ['ports not a list', 'Service', (o) => ((o.spec as Record<string, unknown>).ports = { port: 80 }), 'spec.ports'],
    ['externalIPs not strings', 'Service', (o) => ((o.spec as Record<string, unknown>).externalIPs = [1]), 'spec.externalIPs[0]'],
    ['no addressType', 'EndpointSlice', (o) => delete o.addressType, 'addressType'],
    ['empty addresses', 'EndpointSlice', (o) => ((o.endpoints as { addresses: string[] }[])[0]!.addresses = []), 'endpoints[0].addresses'],
    ['ready not boolean', 'EndpointSlice', (o) => ((o.endpoints as { conditions: object }[])[0]!.conditions = { ready: 'yes' }), 'endpoints[0].conditions.ready'],
    ['slice port a string', 'EndpointSlice', (o) => ((o.ports as { port: unknown }[])[0]!.port = '8080'), 'ports[0].port'],
    ['address without type', 'Node', (o) => ((o.status as Record<string, unknown>).addresses = [{ address: '1.2.3.4' }]), 'status.addresses[0].type'],
  ];
  const good = { Service: service('web'), EndpointSlice: endpointSlice('web-1', 'web'), Node: node('n1') };
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) {
    t.same(validateManifestObject(kind, structuredClone(good[kind]) as Record<string, unknown>), [], `good ${kind} passes`);
  }
  for (const [what, kind, breakIt, field] of cases) {
    const obj = structuredClone(good[kind]) as Record<string, unknown>;
    breakIt(obj);
    const problems = validateManifestObject(kind, obj);
    t.same(problems.map((p) => p.field), [field], what);
  }
  const nullSlice = { ...structuredClone(endpointSlice('s', 'web')), endpoints: null, ports: null };
  t.same(validateManifestObject('EndpointSlice', nullSlice), [], 'null endpoints and ports, as the API serves empty slices');
});
