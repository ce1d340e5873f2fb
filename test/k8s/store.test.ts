import t from 'tap';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { ObjectStore } from '../../src/k8s/store.js';
import type { StoreChange } from '../../src/k8s/store.js';
import type { ObjectSnapshotSource } from '../../src/agent/reconciler.js';

// Compile-time check: the reconciler reads the store through its own interface.
const _storeFitsReconciler: ObjectSnapshotSource = new ObjectStore();

const svc = (name: string, rv: string, port = 80, namespace = 'default'): V1Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace, resourceVersion: rv },
  spec: { clusterIP: '10.0.0.1', ports: [{ port, protocol: 'TCP' }] },
});
const node = (name: string): V1Node => ({ metadata: { name } });

function recorder(store: ObjectStore): StoreChange[] {
  const changes: StoreChange[] = [];
  store.onChange((c) => changes.push(c));
  return changes;
}

t.test('upsert adds and updates, keyed namespace/name; nodes keyed by name', async (t) => {
  const store = new ObjectStore();
  const changes = recorder(store);
  t.equal(store.upsert('Service', svc('web', '1')), true);
  t.equal(store.upsert('Service', svc('web', '1', 80, 'other')), true, 'same name in another namespace is another object');
  t.equal(store.upsert('Service', svc('web', '2', 81)), true, 'new version replaces');
  t.equal(store.upsert('Node', node('n1')), true);
  t.same(store.keys('Service'), ['default/web', 'other/web']);
  t.same(store.keys('Node'), ['n1']);
  t.equal(store.get('Service', 'default/web')?.spec?.ports?.[0]?.port, 81);
  t.same(changes.map((c) => [c.kind, c.reason, c.keys]), [
    ['Service', 'added', ['default/web']],
    ['Service', 'added', ['other/web']],
    ['Service', 'updated', ['default/web']],
    ['Node', 'added', ['n1']],
  ]);
});

t.test('a missing namespace means default', async (t) => {
  const store = new ObjectStore();
  store.upsert('Service', { metadata: { name: 'x' } });
  t.same(store.keys('Service'), ['default/x']);
});

t.test('no-op upserts are skipped; same rv with other content is a change; a new rv alone is none', async (t) => {
  const store = new ObjectStore();
  const changes = recorder(store);
  store.upsert('Service', svc('web', '5'));
  t.equal(store.upsert('Service', svc('web', '5')), false, 'identical copy is a no-op');
  // Typed model instances carry explicit undefined members; they equal the plain JSON form.
  const typed = { ...svc('web', '5'), status: undefined };
  t.equal(store.upsert('Service', typed), false, 'undefined members count as absent');
  t.equal(store.upsert('Service', svc('web', '5', 8080)), true, 'content differs under the same rv (manifests)');
  t.equal(store.upsert('Service', svc('web', '6', 8080)), false, 'new rv, same content: nothing Sluice reads changed');
  t.equal(store.upsert('Service', svc('web', '7', 8081)), true, 'new rv, new content: an update');
  t.equal(changes.length, 3);
  const stats = store.stats().Service;
  t.equal(stats.events, 6, 'every upsert counts as an event');
  t.equal(stats.changes, 3);
  t.equal(stats.objects, 1);
});

t.test('remove reports whether the object existed', async (t) => {
  const store = new ObjectStore();
  const changes = recorder(store);
  store.upsert('Service', svc('web', '1'));
  t.equal(store.remove('Service', 'default/web'), true);
  t.equal(store.remove('Service', 'default/web'), false, 'second removal is a no-op');
  t.equal(store.get('Service', 'default/web'), undefined);
  t.same(changes.map((c) => c.reason), ['added', 'removed']);
});

t.test('replaceAll diffs against the current objects and notifies once', async (t) => {
  const store = new ObjectStore();
  store.upsert('Service', svc('keep', '1'));
  store.upsert('Service', svc('change', '1'));
  store.upsert('Service', svc('gone', '1'));
  const kept = store.get('Service', 'default/keep');
  const changes = recorder(store);
  const result = store.replaceAll('Service', [svc('keep', '1'), svc('change', '2', 81), svc('new', '3')]);
  t.same(result, { added: ['default/new'], updated: ['default/change'], removed: ['default/gone'] });
  t.same(store.keys('Service'), ['default/change', 'default/keep', 'default/new']);
  t.equal(store.get('Service', 'default/keep'), kept, 'unchanged object keeps its identity');
  t.equal(changes.length, 1);
  t.same(changes[0], { kind: 'Service', reason: 'replaced', keys: ['default/new', 'default/change', 'default/gone'] });
  store.replaceAll('Service', [svc('keep', '1'), svc('change', '2', 81), svc('new', '3')]);
  t.equal(changes.length, 1, 'an identical relist notifies nobody');
  t.equal(store.stats().Service.relists, 2);
});

t.test('synced only when all three kinds listed; markSynced notifies once per kind', async (t) => {
  const store = new ObjectStore();
  const changes = recorder(store);
  let resolved = false;
  const waiting = store.whenSynced().then(() => (resolved = true));
  store.markSynced('Service');
  store.markSynced('Service');
  store.markSynced('EndpointSlice');
  t.equal(store.isSynced(), false);
  t.equal(store.isKindSynced('Service'), true);
  await new Promise((r) => setImmediate(r));
  t.equal(resolved, false, 'whenSynced still waiting');
  store.markSynced('Node');
  t.equal(store.isSynced(), true);
  await waiting;
  t.equal(resolved, true);
  t.same(changes.map((c) => [c.kind, c.reason]), [['Service', 'synced'], ['EndpointSlice', 'synced'], ['Node', 'synced']]);
});

t.test('snapshot is sorted, cached until a change, and unaffected by later writes', async (t) => {
  const store = new ObjectStore();
  store.upsert('Service', svc('b', '1'));
  store.upsert('Service', svc('a', '1'));
  store.upsert('Node', node('n2'));
  const first = store.snapshot();
  t.same(first.services.map((s) => s.metadata?.name), ['a', 'b']);
  t.equal(store.snapshot(), first, 'cached while nothing changed');
  store.upsert('Service', svc('a', '1'));
  t.equal(store.snapshot(), first, 'a no-op keeps the cache');
  store.remove('Service', 'default/a');
  const second = store.snapshot();
  t.not(second, first);
  t.same(first.services.map((s) => s.metadata?.name), ['a', 'b'], 'old snapshot untouched');
  t.same(second.services.map((s) => s.metadata?.name), ['b']);
  t.same(second.nodes.map((n) => n.metadata?.name), ['n2']);
  t.same(second.endpointSlices, []);
});

t.test('unsubscribe stops notifications; a throwing listener does not stop others', async (t) => {
  const store = new ObjectStore();
  let calls = 0;
  store.onChange(() => {
    throw new Error('listener bug');
  });
  const off = store.onChange(() => calls++);
  store.upsert('Node', node('n1'));
  off();
  store.upsert('Node', node('n2'));
  t.equal(calls, 1);
});

t.test('a nameless object is rejected with a clear error', async (t) => {
  const store = new ObjectStore();
  t.throws(() => store.upsert('Service', { metadata: { namespace: 'x' } }), /Service: metadata.name is missing/);
  t.throws(() => store.replaceAll('Node', [{ metadata: { name: '' } }]), /Node: metadata.name/);
  t.same(store.keys('Service'), []);
});

t.test('counters for watch restarts and errors are per kind', async (t) => {
  const store = new ObjectStore();
  store.recordWatchRestart('EndpointSlice');
  store.recordWatchRestart('EndpointSlice');
  store.recordError('Node');
  const stats = store.stats();
  t.equal(stats.EndpointSlice.watchRestarts, 2);
  t.equal(stats.Service.watchRestarts, 0);
  t.equal(stats.Node.errors, 1);
});

t.test('source errors: counted, the last message per kind kept until the source works again', async (t) => {
  const store = new ObjectStore();
  store.recordError('Service');
  t.same(store.recentErrors(), [], 'a count without a message keeps no message');
  store.recordError('Service', 'list/watch /api/v1/services failed: 503: unavailable');
  store.recordError('EndpointSlice', 'first');
  store.recordError('EndpointSlice', 'second');
  t.match(store.recentErrors(), [
    { kind: 'Service', message: /503: unavailable/ },
    { kind: 'EndpointSlice', message: 'second' },
  ]);
  t.equal(store.stats().Service.errors, 2);
  store.clearError('Service');
  t.same(store.recentErrors().map((e) => e.kind), ['EndpointSlice'], 'cleared once the Service source works');
});
