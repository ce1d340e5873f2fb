import t from 'tap';
import type { Test } from 'tap';
import { ObjectStore } from '../../src/k8s/store.js';
import { KubernetesSource, loadKubeConfig } from '../../src/k8s/informers.js';
import type { ReflectorTiming } from '../../src/k8s/reflector.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import type { FakeApiServer, FakeApiServerOptions } from '../helpers/fake-apiserver.js';
import { captureLogs, sleep, waitUntil } from './helpers.js';
import { node, service } from './fixtures.js';

const FAST: Partial<ReflectorTiming> = {
  idleTimeoutMs: 5000,
  relistIntervalMs: 0,
  listTimeoutMs: 2000,
  pageSize: 0,
  minHealthyWatchMs: 100,
  backoff: { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.5 },
};

interface SetupOptions {
  timing?: Partial<ReflectorTiming>;
  server?: FakeApiServerOptions;
  random?: () => number;
  before?: (fake: FakeApiServer) => void;
}

/** Every test's log text and token, checked together by the last test. */
const allLogs: { text: () => string; token: string }[] = [];

async function setup(t: Test, opts: SetupOptions = {}) {
  const fake = await startFakeApiServer(opts.server ?? { bookmarkIntervalMs: 200 });
  fake.apply(service('web'));
  fake.apply(service('old'));
  fake.apply(node('node-a'));
  opts.before?.(fake);
  const store = new ObjectStore();
  const logs = captureLogs();
  const source = new KubernetesSource({
    kubeConfig: loadKubeConfig(fake.kubeconfigPath),
    store,
    logger: logs.logger,
    timing: { ...FAST, ...opts.timing },
    random: opts.random,
  });
  t.teardown(async () => {
    await source.stop();
    await fake.close();
  });
  allLogs.push({ text: logs.text, token: fake.token });
  await source.start();
  return { fake, store, logs, source };
}

const synced = (store: ObjectStore) => waitUntil('store synced', () => store.isSynced());
const watching = (fake: FakeApiServer) => waitUntil('three watches open', () => fake.activeWatchCount() === 3);
const serviceKeysMatch = (fake: FakeApiServer, store: ObjectStore) =>
  waitUntil('store matches the server', () => store.keys('Service').join() === fake.keys('Service').join());

t.test('a dropped connection recovers and catches up from its resourceVersion (no relist)', async (t) => {
  const { fake, store } = await setup(t);
  await synced(store);
  await watching(fake);
  const lists = fake.listCount();
  t.equal(fake.dropWatches(), 3);
  // Changes while the watches are down (the client cannot reconnect before this code yields).
  fake.apply(service('new'));
  fake.delete('Service', 'default/old');
  fake.apply(service('web', { port: 9090 }));
  await serviceKeysMatch(fake, store);
  await waitUntil('modification caught up', () => store.get('Service', 'default/web')?.spec?.ports?.[0]?.port === 9090);
  t.same(store.keys('Service'), ['default/new', 'default/web']);
  t.equal(fake.listCount(), lists, 'resumed from the resourceVersion: no relist needed');
  t.ok(fake.watchCount('Service') >= 2, 'watch reopened');
  t.ok(store.stats().Service.watchRestarts >= 1, 'restart counted');
});

t.test('410 Gone on resume → relist, and deletions made during the gap are noticed', async (t) => {
  const { fake, store, logs } = await setup(t);
  await synced(store);
  await watching(fake);
  fake.dropWatches();
  fake.delete('Service', 'default/old');
  fake.apply(service('added-in-gap'));
  fake.compactHistory(); // the gap's events are gone: resuming gets 410
  await serviceKeysMatch(fake, store);
  t.same(store.keys('Service'), ['default/added-in-gap', 'default/web']);
  t.ok(fake.listCount('Service') >= 2, 'relisted');
  t.ok(store.stats().Service.relists >= 2);
  t.match(logs.text(), /expired \(410\); relisting/);
});

t.test('410 as an HTTP status on the watch request also relists', async (t) => {
  const { fake, store } = await setup(t);
  await synced(store);
  await watching(fake);
  const lists = fake.listCount();
  fake.forceGoneOnNextWatch(3, 'status');
  fake.dropWatches();
  fake.delete('Service', 'default/old');
  await serviceKeysMatch(fake, store);
  await waitUntil('all three relisted', () => fake.listCount() >= lists + 3);
  t.pass('relisted after HTTP 410');
});

t.test('the watchdog restarts a watch that went silent, and the missed change arrives', async (t) => {
  const { fake, store, logs } = await setup(t, { server: { bookmarkIntervalMs: 0 }, timing: { idleTimeoutMs: 400 } });
  await synced(store);
  await watching(fake);
  fake.stallWatches();
  fake.apply(service('while-silent'));
  await sleep(150);
  t.equal(store.get('Service', 'default/while-silent'), undefined, 'the stalled stream delivered nothing');
  await waitUntil('change arrives via the restarted watch', () => store.get('Service', 'default/while-silent') !== undefined, 3000);
  t.ok(store.stats().Service.watchRestarts >= 1);
  t.match(logs.text(), /watch silent too long; restarting it/);
  t.equal(fake.listCount('Service'), 1, 'resumed from the resourceVersion, no relist');
});

t.test('failing lists back off exponentially (capped) and finally succeed; not synced before', async (t) => {
  const failures = 9;
  const { fake, store, logs } = await setup(t, {
    timing: { backoff: { initialMs: 40, maxMs: 1000, factor: 2, jitter: 0.5 } },
    random: () => 0, // no jitter: delays are exactly 40, 80, 160 ms
    before: (fake) => fake.failNextLists(failures),
  });
  await waitUntil('first round of lists answered', () => fake.listCount() >= 3);
  t.equal(store.isSynced(), false, 'nothing synced while lists fail');
  t.match(store.recentErrors().find((e) => e.kind === 'Service'), { message: /list\/watch \/api\/v1\/services failed: 500 InternalError: injected list failure/ }, 'the last error is kept for status');
  await synced(store);
  t.same(store.recentErrors(), [], 'and cleared once the lists succeed');
  t.equal(fake.listCount(), failures + 3, 'each kind retried until its list succeeded');
  const announced = (kind: string) =>
    logs.lines.map((l) => JSON.parse(l) as { kind?: string; retryInMs?: number }).filter((l) => l.kind === kind && l.retryInMs !== undefined).map((l) => l.retryInMs);
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) {
    t.same(announced(kind), [40, 80, 160], `${kind}: delays double from the initial one`);
    const times = fake.requests.filter((r) => r.kind === kind && !r.watch).map((r) => r.at);
    const gaps = times.slice(1).map((at, i) => at - (times[i] ?? 0));
    // Timers may fire a little late on a busy machine, never early.
    t.ok([40, 80, 160].every((ms, i) => (gaps[i] ?? 0) >= ms - 5), `${kind}: waited as announced (${gaps.map((g) => g.toFixed(0)).join(', ')} ms)`);
    t.ok(store.stats()[kind].errors >= 3, `${kind}: errors counted`);
  }
  t.match(logs.text(), /"error":"500 InternalError: injected list failure"/, 'the status reason and message are logged');
});

t.test('a slow list times out and is retried until the server answers in time', async (t) => {
  const { fake, store } = await setup(t, {
    timing: { listTimeoutMs: 150 },
    before: (fake) => fake.setResponseDelay(400),
  });
  await waitUntil('a list timed out', () => store.stats().Service.errors >= 1, 3000);
  t.equal(store.isSynced(), false);
  fake.setResponseDelay(0);
  await synced(store);
  t.same(store.keys('Service'), ['default/old', 'default/web']);
});

t.test('stop() aborts hanging lists and watches promptly', async (t) => {
  const { fake, store, source } = await setup(t, { timing: { listTimeoutMs: 60_000 } });
  await synced(store);
  await watching(fake);
  fake.setResponseDelay(10_000, 'list');
  fake.forceGoneOnNextWatch(1, 'status'); // one kind relists: that list hangs
  fake.dropWatches();
  await waitUntil('a relist hangs', () => fake.listCount() >= 4);
  // The other two kinds must be watching again before their watches are dropped a second time:
  // a re-watch still on its way would otherwise miss the drop and never be counted (a race).
  await waitUntil('the other kinds watch again', () => fake.activeWatchCount() === 2);
  fake.setResponseDelay(10_000); // and the other kinds' watches hang too
  fake.dropWatches();
  await waitUntil('watches hang', () => fake.watchCount() >= 8);
  const lists = fake.listCount();
  const t0 = performance.now();
  await source.stop();
  t.ok(performance.now() - t0 < 1000, 'stop does not wait for the hanging requests');
  await sleep(100);
  t.equal(fake.listCount(), lists, 'nothing runs after stop');
});

t.test('periodic relist repairs what no watch reported', async (t) => {
  const { fake, store } = await setup(t, { timing: { relistIntervalMs: 300 }, server: { bookmarkIntervalMs: 0 } });
  await synced(store);
  await watching(fake);
  fake.stallWatches();
  fake.delete('Service', 'default/old');
  await waitUntil('relist removed it', () => store.get('Service', 'default/old') === undefined, 3000);
  t.ok(store.stats().Service.relists >= 2);
});

t.test('a server closing every watch at once is retried with backoff, not in a tight loop', async (t) => {
  const { fake, store } = await setup(t, { timing: { backoff: { initialMs: 20, maxMs: 100, factor: 2, jitter: 0 } } });
  await synced(store);
  await watching(fake);
  const before = fake.watchCount('Service');
  fake.endWatchesAtOnce(true);
  fake.dropWatches();
  await sleep(600);
  const reconnects = fake.watchCount('Service') - before;
  // Backoff 20+40+80+100+100+... ms: about 8 attempts in 600 ms; a tight loop would make hundreds.
  t.ok(reconnects >= 3 && reconnects <= 12, `bounded reconnects (${reconnects})`);
  t.ok(store.stats().Service.errors >= 3, 'short empty watches count as failures');
  fake.endWatchesAtOnce(false);
  fake.apply(service('after'));
  await waitUntil('healthy again', () => store.get('Service', 'default/after') !== undefined, 3000);
});

t.test('wrong credentials: errors are reported, the process keeps running, no secret logged', async (t) => {
  const fake = await startFakeApiServer();
  const store = new ObjectStore();
  const logs = captureLogs();
  const kc = loadKubeConfig(fake.kubeconfigPath);
  const user = kc.getCurrentUser();
  if (user) (user as { token?: string }).token = 'wrong-secret-token-value';
  const source = new KubernetesSource({ kubeConfig: kc, store, logger: logs.logger, timing: FAST });
  await source.start();
  await waitUntil('errors counted', () => store.stats().Node.errors >= 2);
  await source.stop();
  await fake.close();
  t.equal(store.isSynced(), false);
  t.match(logs.text(), /401/);
  t.notMatch(logs.text(), 'wrong-secret-token-value');
  t.notMatch(logs.text(), fake.token);
});

t.test('the bearer token never appears in any of the logs above', async (t) => {
  t.ok(allLogs.length >= 8);
  const warnings = allLogs.filter((l) => /"level":40/.test(l.text())).length;
  t.ok(warnings >= 3, 'the logs hold warnings with error details, so there was something to leak');
  for (const { text, token } of allLogs) t.notMatch(text(), token);
});
