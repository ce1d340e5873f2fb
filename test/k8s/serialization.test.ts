import t from 'tap';
import { V1Service } from '@kubernetes/client-node';
import { asKubeObject, withTypeMeta } from '../../src/k8s/serialization.js';
import { sameContent } from '../../src/k8s/object-equal.js';

t.test('raw JSON stays raw JSON, with its kind and apiVersion filled in', async (t) => {
  const raw = {
    metadata: { name: 'web', namespace: 'ns', creationTimestamp: '2024-05-01T10:00:00Z' },
    spec: { clusterIP: '10.0.0.9', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
  const svc = asKubeObject('Service', raw);
  t.equal(Object.getPrototypeOf(svc), Object.prototype, 'a plain object, not a client-node model instance');
  t.equal(svc.metadata?.creationTimestamp as unknown, '2024-05-01T10:00:00Z', 'timestamps stay strings');
  t.equal(svc.spec?.ports?.[0]?.port, 80);
  t.equal(svc.apiVersion, 'v1');
  t.equal(svc.kind, 'Service');
  t.notOk('kind' in raw, 'the input is not touched');
  const slice = asKubeObject('EndpointSlice', { addressType: 'IPv4', endpoints: [{ addresses: ['10.1.0.1'], conditions: { ready: true } }], metadata: { name: 's' } });
  t.equal(slice.apiVersion, 'discovery.k8s.io/v1');
  t.equal(slice.endpoints[0]?.conditions?.ready, true);
  const complete = asKubeObject('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' } });
  t.equal(asKubeObject('Node', complete), complete, 'already complete: returned as it is');
  t.equal(asKubeObject('Node', null), null, 'not an object: returned as it is (the reflector reports it)');
});

t.test('withTypeMeta keeps a model instance one and does not touch the input', async (t) => {
  const raw = new V1Service();
  raw.metadata = { name: 'x' };
  const out = withTypeMeta('Service', raw);
  t.ok(out instanceof V1Service);
  t.equal(raw.kind, undefined, 'input untouched');
  t.equal(out.kind, 'Service');
  t.equal(withTypeMeta('Service', out), out, 'already complete: returned as is');
});

t.test('sameContent: model instances with undefined members equal plain JSON; dates by time', async (t) => {
  const a = new V1Service();
  a.apiVersion = 'v1';
  a.kind = 'Service';
  a.metadata = { name: 'a', creationTimestamp: new Date('2024-05-01T10:00:00Z') };
  a.spec = undefined;
  const b = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', creationTimestamp: new Date('2024-05-01T10:00:00Z') } };
  t.ok(sameContent(a, b));
  t.notOk(sameContent(a, { ...b, metadata: { name: 'a', creationTimestamp: new Date(0) } }));
  t.notOk(sameContent([1, 2], [1, 2, 3]));
  t.notOk(sameContent([1], { 0: 1 }));
  t.notOk(sameContent({ a: 1 }, { b: 1 }));
  t.notOk(sameContent(new Date(0), '1970-01-01T00:00:00.000Z'));
  t.ok(sameContent({ a: [{ b: null }] }, { a: [{ b: null }] }));
});
