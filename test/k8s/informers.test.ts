import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectStore } from '../../src/k8s/store.js';
import { KubernetesSource, loadKubeConfig, proxyLabelSelector, reachesApiServerThroughClusterIp } from '../../src/k8s/informers.js';
import { createSource, ManifestSource } from '../../src/k8s/index.js';
import type { ReflectorTiming } from '../../src/k8s/reflector.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import type { FakeApiServer } from '../helpers/fake-apiserver.js';
import { captureLogs, waitUntil } from './helpers.js';
import { endpointSlice, node, service } from './fixtures.js';

const FAST: Partial<ReflectorTiming> = {
  idleTimeoutMs: 5000,
  relistIntervalMs: 0,
  listTimeoutMs: 2000,
  pageSize: 2,
  backoff: { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.5 },
};

async function setup(t: Test, fill: (fake: FakeApiServer) => void, serviceProxyName = '') {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 200 });
  fill(fake);
  const store = new ObjectStore();
  const logs = captureLogs();
  const source = new KubernetesSource({ kubeConfig: loadKubeConfig(fake.kubeconfigPath), store, logger: logs.logger, serviceProxyName, timing: FAST });
  t.teardown(async () => {
    await source.stop();
    await fake.close();
  });
  await source.start();
  return { fake, store, logs, source };
}


t.test('label selector text follows kube-proxy', async (t) => {
  t.equal(proxyLabelSelector(''), '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless');
  t.equal(proxyLabelSelector('sluice'), 'service.kubernetes.io/service-proxy-name=sluice,!service.kubernetes.io/headless');
});

t.test('initial sync fills the store (in pages), honours the selector and marks it synced', async (t) => {
  const { fake, store } = await setup(t, (fake) => {
    for (const name of ['a', 'b', 'c', 'd', 'e']) fake.apply(service(name));
    fake.apply(service('other-proxy', { labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }));
    fake.apply(service('headless', { labels: { 'service.kubernetes.io/headless': '' } }));
    fake.apply(endpointSlice('a-1', 'a'));
    fake.apply(endpointSlice('other-1', 'other-proxy', '10.1.0.9', { 'service.kubernetes.io/service-proxy-name': 'cilium' }));
    fake.apply(node('node-a'));
    fake.apply(node('node-b', '192.168.0.11'));
  });
  await waitUntil("store synced", () => store.isSynced());
  t.same(store.keys('Service'), ['default/a', 'default/b', 'default/c', 'default/d', 'default/e']);
  t.same(store.keys('EndpointSlice'), ['default/a-1']);
  t.same(store.keys('Node'), ['node-a', 'node-b'], 'nodes are not filtered');
  t.ok(fake.listCount('Service') >= 3, 'five services in pages of two take three list calls');
  const svc = store.get('Service', 'default/a');
  t.equal(Object.getPrototypeOf(svc), Object.prototype, 'stored slim (src/k8s/slim.ts): a plain object');
  t.equal(svc?.kind, 'Service', 'list items get their kind');
  t.equal(typeof svc?.metadata?.creationTimestamp, 'string', 'raw JSON: no client-node deserialization');
  const svcQuery = fake.requests.find((r) => r.kind === 'Service')?.query;
  t.equal(svcQuery?.labelSelector, proxyLabelSelector(''));
  t.equal(fake.requests.find((r) => r.kind === 'Node')?.query.labelSelector, undefined, 'nodes: no selector');
  t.ok(fake.requests.every((r) => r.authorized), 'every request carried the kubeconfig token');
  await waitUntil('watches open', () => fake.activeWatchCount() === 3);
  const watchQuery = fake.requests.find((r) => r.watch && r.kind === 'Service')?.query;
  t.equal(watchQuery?.allowWatchBookmarks, 'true');
  t.ok(Number(watchQuery?.timeoutSeconds) >= 300, 'asks for a server-side watch timeout');
  t.ok(Number(watchQuery?.resourceVersion) > 0, 'watch resumes from the list resourceVersion');
});

t.test('adds, modifications and deletions propagate; label changes move objects in and out', async (t) => {
  const { fake, store } = await setup(t, (fake) => {
    fake.apply(service('web'));
    fake.apply(node('node-a'));
  });
  await waitUntil("store synced", () => store.isSynced());
  await waitUntil('watches open', () => fake.activeWatchCount() === 3);
  const changes: string[] = [];
  store.onChange((c) => changes.push(`${c.kind}:${c.reason}:${c.keys.join(',')}`));

  fake.apply(service('api', { namespace: 'prod' }));
  await waitUntil('added', () => store.get('Service', 'prod/api') !== undefined);
  fake.apply(service('web', { port: 8443 }));
  await waitUntil('modified', () => store.get('Service', 'default/web')?.spec?.ports?.[0]?.port === 8443);
  fake.apply(endpointSlice('web-1', 'web'));
  await waitUntil('slice added', () => store.keys('EndpointSlice').length === 1);
  fake.delete('Service', 'prod/api');
  await waitUntil('deleted', () => store.get('Service', 'prod/api') === undefined);
  fake.apply(node('node-a', '192.168.0.99'));
  await waitUntil('node modified', () => store.get('Node', 'node-a')?.status?.addresses?.[0]?.address === '192.168.0.99');

  fake.apply(service('web', { port: 8443, labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }));
  await waitUntil('leaves the selection', () => store.get('Service', 'default/web') === undefined);
  fake.apply(service('web', { port: 8443 }));
  await waitUntil('back in the selection', () => store.get('Service', 'default/web') !== undefined);
  t.same(changes, [
    'Service:added:prod/api',
    'Service:updated:default/web',
    'EndpointSlice:added:default/web-1',
    'Service:removed:prod/api',
    'Node:updated:node-a',
    'Service:removed:default/web',
    'Service:added:default/web',
  ]);
  t.equal(fake.listCount(), 3, 'all of it through the watches, no relist');
});

t.test('bookmarks advance the watch without touching the store', async (t) => {
  const { fake, store } = await setup(t, (fake) => fake.apply(service('web')));
  await waitUntil("store synced", () => store.isSynced());
  const before = store.stats().Service.events;
  fake.apply(node('elsewhere')); // bumps the global resourceVersion past the service watch's
  await new Promise((r) => setTimeout(r, 500)); // two bookmark periods
  t.equal(store.stats().Service.events, before, 'bookmarks are not object events');
  fake.dropWatches();
  await waitUntil('service watch reopened', () => fake.watchCount('Service') >= 2);
  const resumed = fake.requests.filter((r) => r.watch && r.kind === 'Service').at(-1)?.query.resourceVersion;
  t.equal(resumed, fake.get('Node', 'elsewhere')?.metadata.resourceVersion, 'resumes from the bookmarked resourceVersion');
});

t.test('a named proxy takes only services labelled with its name', async (t) => {
  const { store } = await setup(
    t,
    (fake) => {
      fake.apply(service('plain'));
      fake.apply(service('mine', { labels: { 'service.kubernetes.io/service-proxy-name': 'sluice' } }));
      fake.apply(service('theirs', { labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }));
      fake.apply(
        service('mine-headless', {
          labels: { 'service.kubernetes.io/service-proxy-name': 'sluice', 'service.kubernetes.io/headless': '' },
        }),
      );
    },
    'sluice',
  );
  await waitUntil("store synced", () => store.isSynced());
  t.same(store.keys('Service'), ['default/mine']);
});

t.test('loadKubeConfig: a file, a broken file, and no credentials anywhere', async (t) => {
  const fake = await startFakeApiServer();
  t.teardown(() => fake.close());
  t.equal(loadKubeConfig(fake.kubeconfigPath).getCurrentCluster()?.server, fake.url);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => loadKubeConfig(join(dir, 'missing')), /ENOENT/);
  writeFileSync(join(dir, 'no-cluster'), 'apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: []\nclusters: []\nusers: []\n');
  t.throws(() => loadKubeConfig(join(dir, 'no-cluster')), /names no cluster/);
  // Nothing to find: no file given, not in a pod, no $KUBECONFIG, an empty home directory.
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG, HOST: process.env.KUBERNETES_SERVICE_HOST };
  t.teardown(() => {
    for (const [k, v] of [['HOME', saved.HOME], ['KUBECONFIG', saved.KUBECONFIG], ['KUBERNETES_SERVICE_HOST', saved.HOST]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  process.env.HOME = dir;
  delete process.env.KUBECONFIG;
  delete process.env.KUBERNETES_SERVICE_HOST;
  t.throws(() => loadKubeConfig(''), /no Kubernetes credentials/);
  process.env.KUBECONFIG = fake.kubeconfigPath;
  t.equal(loadKubeConfig('').getCurrentCluster()?.server, fake.url, '$KUBECONFIG is used');
});

t.test('loadKubeConfig with an API server address: the server is replaced, CA and credentials kept', async (t) => {
  const fake = await startFakeApiServer();
  t.teardown(() => fake.close());
  const plain = loadKubeConfig(fake.kubeconfigPath);
  const kc = loadKubeConfig(fake.kubeconfigPath, 'https://api.example:6443');
  t.equal(kc.getCurrentCluster()?.server, 'https://api.example:6443');
  t.same({ ...kc.getCurrentCluster(), server: '' }, { ...plain.getCurrentCluster(), server: '' }, 'the rest of the cluster entry (TLS settings) is the same');
  t.same(kc.getCurrentUser(), plain.getCurrentUser(), 'the same credentials');
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  t.teardown(() => {
    if (saved === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
    else process.env.KUBERNETES_SERVICE_HOST = saved;
  });
  process.env.KUBERNETES_SERVICE_HOST = new URL(fake.url).hostname;
  t.ok(reachesApiServerThroughClusterIp(plain, ''), 'the server is KUBERNETES_SERVICE_HOST and nothing overrides it');
  t.notOk(reachesApiServerThroughClusterIp(kc, 'https://api.example:6443'), 'overridden');
  process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
  t.notOk(reachesApiServerThroughClusterIp(plain, ''), 'a kubeconfig naming another server');
});

t.test('createSource picks the manifest directory or the API server from the settings', async (t) => {
  const fake = await startFakeApiServer();
  t.teardown(() => fake.close());
  const store = new ObjectStore();
  const logger = captureLogs().logger;
  const common = { serviceProxyName: '', store, logger };
  t.ok(createSource({ ...common, manifestsDir: '/nonexistent', kubeconfig: '' }) instanceof ManifestSource);
  t.ok(createSource({ ...common, manifestsDir: '', kubeconfig: fake.kubeconfigPath }) instanceof KubernetesSource);
  t.throws(() => createSource({ ...common, manifestsDir: '', kubeconfig: '/nonexistent/kubeconfig' }), /ENOENT/);
});
