import t from 'tap';
import type { Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectStore } from '../../src/k8s/store.js';
import { ManifestSource } from '../../src/k8s/manifests.js';
import type { ManifestSourceOptions } from '../../src/k8s/manifests.js';
import { captureLogs, sleep, waitUntil } from './helpers.js';
import { endpointSlice, node, service } from './fixtures.js';

const yamlDocs = (...objs: unknown[]) => objs.map((o) => JSON.stringify(o, null, 2)).join('\n---\n');
const port = (store: ObjectStore, key: string) => store.get('Service', key)?.spec?.ports?.[0]?.port;

function brokenService(name: string) {
  const svc = service(name);
  (svc.spec.ports[0] as { port: unknown }).port = 'http';
  return svc;
}

async function setup(t: Test, files: Record<string, string>, opts: Partial<ManifestSourceOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-manifests-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const store = new ObjectStore();
  const logs = captureLogs();
  const source = new ManifestSource({ dir, store, logger: logs.logger, debounceMs: 30, rescanIntervalMs: 0, ...opts });
  t.teardown(async () => {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await source.start();
  const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
  return { dir, store, logs, source, write };
}

t.test('loads multi-document YAML, .yml and JSON lists; synced after the first read', async (t) => {
  const { store, source } = await setup(t, {
    'web.yaml': yamlDocs(service('web'), endpointSlice('web-1', 'web')),
    'dns.yml': yamlDocs(service('dns', { namespace: 'kube-system', port: 53 })),
    'nodes.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [node('n1'), node('n2', '192.168.0.11')] }),
    'README.md': '# not a manifest',
    '.hidden.yaml': yamlDocs(service('hidden')),
  });
  t.equal(store.isSynced(), true);
  t.same(store.keys('Service'), ['default/web', 'kube-system/dns']);
  t.same(store.keys('EndpointSlice'), ['default/web-1']);
  t.same(store.keys('Node'), ['n1', 'n2']);
  t.same(source.errors(), []);
});

t.test('editing a file updates the store (fs.watch, debounced)', async (t) => {
  const { store, write, source } = await setup(t, { 'web.yaml': yamlDocs(service('web'), service('api')) });
  const changes: string[] = [];
  store.onChange((c) => changes.push(`${c.reason}:${c.keys.join(',')}`));
  const scans = source.scans;
  write('web.yaml', yamlDocs(service('web', { port: 8080 }), service('api')));
  await waitUntil('port updated', () => port(store, 'default/web') === 8080);
  t.same(changes, ['replaced:default/web'], 'only the changed object is reported');
  t.ok(source.scans - scans <= 3, `events were debounced (${source.scans - scans} scans)`);
  write('extra.json', JSON.stringify(service('extra')));
  await waitUntil('new file picked up', () => store.get('Service', 'default/extra') !== undefined);
  write('web.yaml', yamlDocs(service('web', { port: 8080 })));
  await waitUntil('object removed from the file is removed', () => store.get('Service', 'default/api') === undefined);
});

t.test('deleting a file removes its objects, and only those', async (t) => {
  const { dir, store } = await setup(t, { 'a.yaml': yamlDocs(service('a'), node('n1')), 'b.yaml': yamlDocs(service('b')) });
  unlinkSync(join(dir, 'a.yaml'));
  await waitUntil('objects of a.yaml removed', () => store.keys('Service').join() === 'default/b' && store.keys('Node').length === 0);
  t.same(store.keys('Service'), ['default/b']);
});

t.test('a malformed document: clear error, the rest applies, the broken object keeps its last good state', async (t) => {
  const { store, write, source, logs } = await setup(t, { 'svc.yaml': yamlDocs(service('a'), service('b', { port: 81 })) });
  write('svc.yaml', yamlDocs(service('a', { port: 9000 }), brokenService('b'), service('c')));
  await waitUntil('the good documents applied', () => port(store, 'default/a') === 9000 && store.get('Service', 'default/c') !== undefined);
  t.equal(port(store, 'default/b'), 81, 'b keeps its last good state, not wiped');
  const errors = source.errors();
  t.equal(errors.length, 1);
  t.match(errors[0], { file: 'svc.yaml', document: 2, kind: 'Service', object: 'default/b', field: 'spec.ports[0].port' });
  t.match(errors[0]?.message, 'must be a whole number from 1 to 65535 (got "http")');
  t.match(logs.text(), /"level":50.*svc\.yaml \(document 2, line \d+\) Service default\/b: spec\.ports\[0\]\.port/);
  t.equal(store.stats().Service.errors, 1);

  write('svc.yaml', yamlDocs(service('a', { port: 9000 }), service('b', { port: 82 }), service('c')));
  await waitUntil('fixed document applied', () => port(store, 'default/b') === 82);
  t.same(source.errors(), []);
  t.match(logs.text(), /fixed: svc\.yaml/);
});

t.test('a broken object never seen in good shape is simply not added', async (t) => {
  const { store, source } = await setup(t, { 'svc.yaml': yamlDocs(service('a'), brokenService('new')) });
  t.same(store.keys('Service'), ['default/a']);
  t.equal(source.errors().length, 1);
});

t.test('a YAML syntax error keeps what the file held; other files and documents still apply', async (t) => {
  const { store, write, source } = await setup(t, {
    'svc.yaml': yamlDocs(service('a'), service('b')),
    'other.yaml': yamlDocs(service('o')),
  });
  write('svc.yaml', `${yamlDocs(service('a', { port: 7000 }))}\n---\nkind: Service\nmetadata: {name: [b\n`);
  write('other.yaml', yamlDocs(service('o', { port: 6000 })));
  await waitUntil('the parsable parts applied', () => port(store, 'default/a') === 7000 && port(store, 'default/o') === 6000);
  t.ok(store.get('Service', 'default/b'), 'b may be the broken document: kept');
  t.match(source.errors()[0], { file: 'svc.yaml', document: 2 });
  write('svc.yaml', yamlDocs(service('a', { port: 7000 })));
  await waitUntil('once the file parses, b is really gone', () => store.get('Service', 'default/b') === undefined);
});

t.test('the same object in two files: the first file by name wins, the other is reported', async (t) => {
  const { store, source } = await setup(t, {
    'a.yaml': yamlDocs(service('web', { port: 1 })),
    'b.yaml': yamlDocs(service('web', { port: 2 })),
  });
  t.equal(port(store, 'default/web'), 1);
  t.match(source.errors()[0]?.message, /b\.yaml \(document 1\) Service default\/web: also defined in a\.yaml \(document 1\); ignored/);
});

t.test('without fs.watch the periodic rescan picks up changes', async (t) => {
  const { store, write, source } = await setup(t, { 'svc.yaml': yamlDocs(service('a')) }, { watchDirectory: false, rescanIntervalMs: 100 });
  write('svc.yaml', yamlDocs(service('a', { port: 4242 })));
  await sleep(50);
  await waitUntil('rescan applied the edit', () => port(store, 'default/a') === 4242, 2000);
  t.ok(source.scans >= 2);
});

t.test('a missing directory: not synced, no crash; synced once it appears', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'sluice-manifests-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, 'later');
  const store = new ObjectStore();
  const source = new ManifestSource({ dir, store, logger: captureLogs().logger, debounceMs: 30, rescanIntervalMs: 50 });
  t.teardown(() => source.stop());
  await source.start();
  t.equal(store.isSynced(), false);
  t.match(source.errors()[0]?.message, /cannot read the directory/);
  mkdirSync(dir);
  writeFileSync(join(dir, 'svc.yaml'), yamlDocs(service('a')));
  await waitUntil('synced after the directory appeared', () => store.isSynced(), 2000);
  t.same(store.keys('Service'), ['default/a']);
  // fs.watch is attached now: an edit is seen without waiting for the rescan interval.
  writeFileSync(join(dir, 'svc.yaml'), yamlDocs(service('a', { port: 5555 })));
  await waitUntil('edit seen', () => port(store, 'default/a') === 5555, 2000);
});

t.test('an empty directory is a valid, synced, empty view', async (t) => {
  const { store, source } = await setup(t, {});
  t.equal(store.isSynced(), true);
  t.same(store.snapshot(), { services: [], endpointSlices: [], nodes: [] });
  t.same(source.errors(), []);
});

t.test('a kind typo ("service") is reported and the object keeps its last good state', async (t) => {
  const { store, write, source } = await setup(t, { 'svc.yaml': yamlDocs(service('a'), service('b', { port: 81 })) });
  const typo = { ...service('b', { port: 99 }), kind: 'service' };
  write('svc.yaml', yamlDocs(service('a', { port: 9000 }), typo));
  await waitUntil('the good document applied', () => port(store, 'default/a') === 9000);
  t.equal(port(store, 'default/b'), 81, 'b is not removed, and the typo version is not applied');
  t.match(source.errors()[0], { file: 'svc.yaml', document: 2, kind: 'Service', object: 'default/b', field: 'kind' });
  t.match(source.errors()[0]?.message, /kind: "service" is not "Service" \(kinds are case-sensitive\)/);
});
