// The API server source over HTTPS, as in a cluster: the server's certificate is verified
// against the kubeconfig's CA and the token goes with every list and watch; a server whose
// certificate that CA did not sign gets no request at all (the token never leaves), and the
// failure is reported, not retried silently as success.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectStore } from '../../src/k8s/store.js';
import { KubernetesSource, loadKubeConfig } from '../../src/k8s/informers.js';
import type { ReflectorTiming } from '../../src/k8s/reflector.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import { makeTestTls } from '../helpers/test-tls.js';
import { captureLogs, waitUntil } from './helpers.js';
import { endpointSlice, node, service } from './fixtures.js';

const FAST: Partial<ReflectorTiming> = {
  idleTimeoutMs: 5000, relistIntervalMs: 0, listTimeoutMs: 2000, pageSize: 2,
  backoff: { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.5 },
};
const tls = makeTestTls();

t.test('lists and watches over HTTPS with the kubeconfig CA and token', async (t) => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 200, tls });
  t.teardown(() => fake.close());
  t.match(fake.url, /^https:\/\/127\.0\.0\.1:/);
  for (const name of ['a', 'b', 'c']) fake.apply(service(name));
  fake.apply(endpointSlice('a-1', 'a'));
  fake.apply(node('node-a'));
  const store = new ObjectStore();
  const logs = captureLogs();
  const source = new KubernetesSource({ kubeConfig: loadKubeConfig(fake.kubeconfigPath), store, logger: logs.logger, timing: FAST });
  t.teardown(() => source.stop());
  await source.start();
  await waitUntil('store synced over HTTPS', () => store.isSynced());
  t.same(store.keys('Service'), ['default/a', 'default/b', 'default/c'], 'paged list over TLS');
  t.same(store.keys('EndpointSlice'), ['default/a-1']);
  fake.apply(service('d'));
  await waitUntil('the watch delivers over TLS', () => store.keys('Service').includes('default/d'));
  t.ok(fake.requests.length >= 4 && fake.requests.every((r) => r.authorized), 'every request carried the token');
  t.ok(fake.requests.some((r) => r.watch), 'watches ran');
});

t.test('a server certificate the kubeconfig CA did not sign: no request gets through, the error is reported', async (t) => {
  const fake = await startFakeApiServer({ tls });
  t.teardown(() => fake.close());
  fake.apply(service('a'));
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const wrong = join(dir, 'kubeconfig');
  writeFileSync(wrong, fake.kubeconfigYaml().replace(Buffer.from(tls.ca).toString('base64'), Buffer.from(tls.otherCa).toString('base64')));
  const store = new ObjectStore();
  const logs = captureLogs();
  const source = new KubernetesSource({ kubeConfig: loadKubeConfig(wrong), store, logger: logs.logger, timing: FAST });
  t.teardown(() => source.stop());
  await source.start();
  await waitUntil('a list error recorded', () => store.recentErrors().length > 0);
  await new Promise((r) => setTimeout(r, 300)); // a few retries
  t.notOk(store.isSynced(), 'never synced');
  t.equal(fake.requests.length, 0, 'no request reached the server: the token never left');
  const messages = store.recentErrors().map((e) => e.message).join(' | ');
  t.match(messages, /certificate|self.signed|issuer/i, `the error says why (${messages})`);
  t.notMatch(logs.text(), new RegExp(fake.token), 'the token is not in the logs');
});
