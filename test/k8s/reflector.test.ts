// The list/watch loop against a scripted Watch and list function (no HTTP), for the odd events a
// real server rarely sends: nameless objects, unknown event types, non-410 ERROR events.
import t from 'tap';
import type { Test } from 'tap';
import type { Watch } from '@kubernetes/client-node';
import { Reflector } from '../../src/k8s/reflector.js';
import type { ListPage, ReflectorTiming } from '../../src/k8s/reflector.js';
import { ObjectStore } from '../../src/k8s/store.js';
import type { V1Service } from '@kubernetes/client-node';
import { captureLogs, waitUntil } from './helpers.js';

type EventCallback = (type: string, obj: unknown) => void;

/** A Watch whose streams the test drives: emit events, end streams. */
class ScriptedWatch {
  streams: { params: Record<string, unknown>; emit: EventCallback; end: (err: unknown) => void; aborted: boolean }[] = [];
  async watch(_path: string, params: Record<string, unknown>, cb: EventCallback, done: (err: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    const stream = { params, emit: cb, end: done, aborted: false };
    controller.signal.addEventListener('abort', () => (stream.aborted = true));
    this.streams.push(stream);
    return controller;
  }
  get last() {
    const s = this.streams.at(-1);
    if (!s) throw new Error('no watch yet');
    return s;
  }
}

const TIMING: ReflectorTiming = {
  watchTimeoutSeconds: 60,
  idleTimeoutMs: 10_000,
  relistIntervalMs: 0,
  listTimeoutMs: 1000,
  pageSize: 0,
  minHealthyWatchMs: 0,
  backoff: { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 },
};

function setup(t: Test, timing: Partial<ReflectorTiming> = {}) {
  const store = new ObjectStore();
  const watch = new ScriptedWatch();
  const logs = captureLogs();
  let lists = 0;
  const list = async (): Promise<ListPage<V1Service>> => {
    lists++;
    return { items: [{ metadata: { name: 'listed', namespace: 'default', resourceVersion: '10' } }], metadata: { resourceVersion: '10' } };
  };
  const reflector = new Reflector({
    kind: 'Service',
    path: '/api/v1/services',
    list,
    watch: watch as unknown as Watch,
    store,
    logger: logs.logger,
    timing: { ...TIMING, ...timing },
  });
  reflector.start();
  t.teardown(() => reflector.stop());
  return { store, watch, logs, lists: () => lists };
}

t.test('odd events are reported and skipped; the watch carries on', async (t) => {
  const { store, watch, logs } = setup(t);
  await waitUntil('watching', () => watch.streams.length === 1);
  t.equal(watch.last.params.resourceVersion, '10');
  watch.last.emit('ADDED', { metadata: { namespace: 'default', resourceVersion: '11' } });
  watch.last.emit('SURPRISE', { metadata: { name: 'x', resourceVersion: '12' } });
  watch.last.emit('ADDED', { metadata: { name: 'fine', namespace: 'default', resourceVersion: '13' } });
  t.same(store.keys('Service'), ['default/fine', 'default/listed']);
  t.equal(store.stats().Service.errors, 2);
  t.match(logs.text(), /Service without metadata.name ignored/);
  t.match(logs.text(), /unknown watch event type \\"SURPRISE\\"/);
  t.equal(watch.streams.length, 1, 'same watch still open');
  watch.last.end(null);
  await waitUntil('resumed', () => watch.streams.length === 2);
  t.equal(watch.last.params.resourceVersion, '13', 'resumes after the last applied event');
});

t.test('a non-410 ERROR event ends the watch with backoff but keeps the resourceVersion', async (t) => {
  const { watch, lists, store } = setup(t);
  await waitUntil('watching', () => watch.streams.length === 1);
  watch.last.emit('ERROR', { kind: 'Status', code: 500, message: 'etcd hiccup' });
  t.equal(watch.streams[0]?.aborted, true, 'the failed stream is closed');
  await waitUntil('rewatch', () => watch.streams.length === 2);
  t.equal(watch.last.params.resourceVersion, '10');
  t.equal(lists(), 1, 'no relist for a non-410 error');
  t.equal(store.stats().Service.errors, 1);
});

t.test('a 410 ERROR event relists; a second 410 straight after backs off', async (t) => {
  const { watch, lists, store } = setup(t);
  await waitUntil('watching', () => watch.streams.length === 1);
  watch.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
  await waitUntil('relisted and watching again', () => lists() === 2 && watch.streams.length === 2);
  t.equal(store.stats().Service.errors, 0, 'one 410 is routine, not an error');
  watch.last.emit('ERROR', { kind: 'Status', code: 410 });
  await waitUntil('relisted again', () => lists() === 3);
  t.equal(store.stats().Service.errors, 1, 'a 410 right after a relist counts as a failure');
});

t.test('relist falls due during a quiet watch', async (t) => {
  const { watch, lists, store } = setup(t, { relistIntervalMs: 150 });
  await waitUntil('watching', () => watch.streams.length === 1);
  await waitUntil('periodic relist', () => lists() >= 2, 2000);
  t.equal(watch.streams[0]?.aborted, true, 'the watch was closed for the relist');
  t.equal(store.stats().Service.watchRestarts, 0, 'a planned relist is not a watch restart');
});
