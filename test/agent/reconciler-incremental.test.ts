// The reconciler with the real incremental model and the real object store: Service and
// EndpointSlice changes become incremental syncs whose hint names exactly the changed service
// ports; the first sync, a Node change, the full-resync request and the sync after a failed
// apply recompute everything (no hint). And a change that arrives while a sync runs is never
// left waiting for the next event.
import t from 'tap';
import pino from 'pino';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Reconciler } from '../../src/agent/reconciler.js';
import type { DesiredStateSink, SyncReport } from '../../src/agent/reconciler.js';
import { ObjectStore } from '../../src/k8s/store.js';
import { IncrementalModel } from '../../src/model/incremental.js';
import type { DesiredState } from '../../src/model/types.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const svc = (name: string, ip: string, rv = '1'): V1Service => ({
  metadata: { name, namespace: 'default', resourceVersion: rv },
  spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (svcName: string, ips: string[], rv = '1'): V1EndpointSlice => ({
  metadata: { name: `${svcName}-1`, namespace: 'default', resourceVersion: rv, labels: { 'kubernetes.io/service-name': svcName } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});
const nodeObj = (rv = '1', zone = 'z1'): V1Node => ({ metadata: { name: 'n1', resourceVersion: rv, labels: { 'topology.kubernetes.io/zone': zone } }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] } });

class RecordingSink implements DesiredStateSink {
  calls: Array<{ state: DesiredState; changed?: string[] }> = [];
  failNext = 0;
  failKey: string | undefined;
  /** Delays the apply, so changes can arrive while a sync runs. */
  delayMs = 0;
  async apply(state: DesiredState, hint?: { changed: ReadonlySet<string> }) {
    if (this.delayMs) await sleep(this.delayMs);
    this.calls.push({ state, ...(hint ? { changed: [...hint.changed].sort() } : {}) });
    if (this.failNext > 0) {
      this.failNext--;
      return { errors: [{ message: 'map full' }] };
    }
    // A port the maps keep refusing (it names its key, like the writer's per-port errors).
    if (this.failKey && state.services.has(this.failKey)) return { errors: [{ key: this.failKey, message: 'no space left in sl_backends4' }] };
    return { errors: [] };
  }
  resync() {}
}

async function setup() {
  const store = new ObjectStore();
  const sink = new RecordingSink();
  const reports: SyncReport[] = [];
  const rec = new Reconciler({
    source: store, sink, model: new IncrementalModel(), nodeName: 'n1', logger, minSyncPeriodMs: 10, fullResyncPeriodMs: 60_000,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    onSync: (r) => reports.push(r),
  });
  store.upsert('Node', nodeObj());
  store.upsert('Service', svc('a', '10.96.0.1'));
  store.upsert('Service', svc('b', '10.96.0.2'));
  store.upsert('EndpointSlice', slice('a', ['10.1.0.1']));
  store.upsert('EndpointSlice', slice('b', ['10.1.0.2']));
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) store.markSynced(kind);
  rec.start();
  await rec.syncNow();
  return { store, sink, rec, reports };
}

/** Waits until the sink has seen `n` applies. */
async function applies(sink: RecordingSink, n: number): Promise<void> {
  for (let i = 0; i < 200 && sink.calls.length < n; i++) await sleep(5);
}

const backends = (state: DesiredState, key: string) => state.services.get(key)?.clusterBackends.map((b) => b.ip);

t.test('endpoint and Service changes are incremental and name the changed ports', async (t) => {
  const { store, sink, rec, reports } = await setup();
  t.teardown(() => rec.stop());
  t.equal(sink.calls.length, 1);
  t.equal(sink.calls[0]!.changed, undefined, 'the first sync is full (no hint)');
  t.notOk(reports[0]!.incremental);

  store.upsert('EndpointSlice', slice('a', ['10.1.0.1', '10.1.0.3'], '2'));
  await applies(sink, 2);
  t.same(sink.calls[1]!.changed, ['default/a:http/TCP/IPv4'], 'an endpoint change: one port named');
  t.same(backends(sink.calls[1]!.state, 'default/a:http/TCP/IPv4'), ['10.1.0.1', '10.1.0.3'], 'and the state has it');
  t.ok(reports[1]!.incremental, 'reported as incremental');

  store.remove('Service', 'default/b');
  await applies(sink, 3);
  t.same(sink.calls[2]!.changed, ['default/b:http/TCP/IPv4'], 'a removed Service: its port named');
  t.notOk(sink.calls[2]!.state.services.has('default/b:http/TCP/IPv4'));
});

t.test('Node changes, resync requests and a failed apply make the next sync full', async (t) => {
  const { store, sink, rec } = await setup();
  t.teardown(() => rec.stop());
  store.upsert('Node', nodeObj('2', 'z2'));
  await applies(sink, 2);
  t.equal(sink.calls[1]!.changed, undefined, 'a Node change: full');

  await rec.syncNow(true);
  t.equal(sink.calls[2]!.changed, undefined, 'a full resync: full');

  sink.failNext = 1;
  store.upsert('EndpointSlice', slice('a', ['10.1.0.9'], '3'));
  await applies(sink, 5);
  t.same(sink.calls[3]!.changed, ['default/a:http/TCP/IPv4'], 'the change is tried incrementally');
  t.equal(sink.calls[4]!.changed, undefined, 'the retry after the failure is full');
  t.same(backends(sink.calls[4]!.state, 'default/a:http/TCP/IPv4'), ['10.1.0.9']);
});

t.test('a port that keeps failing is retried with backoff, by its key; other changes are not held back', async (t) => {
  const { store, sink, rec } = await setup();
  t.teardown(() => rec.stop());
  const a = 'default/a:http/TCP/IPv4';
  const b = 'default/b:http/TCP/IPv4';
  sink.failKey = a;
  store.upsert('EndpointSlice', slice('a', ['10.1.0.7'], '5'));
  await sleep(700);
  const retries = sink.calls.length - 1;
  // min-sync 10 ms: without backoff ~70 attempts; with it 10, 20, 40, 80, 160, 320 ms.
  t.ok(retries >= 4 && retries <= 9, `retried with backoff (${retries} attempts in 700 ms)`);
  t.ok(sink.calls.slice(1).every((c) => c.changed?.includes(a)), 'every retry names the failed port (no full re-diff)');
  t.ok(sink.calls.slice(2).every((c) => c.changed?.length === 1), 'and only it');

  const before = sink.calls.length;
  const t0 = Date.now();
  store.upsert('EndpointSlice', slice('b', ['10.1.0.8'], '5'));
  await applies(sink, before + 1);
  t.ok(Date.now() - t0 < 300, `a change elsewhere syncs at the min-sync period, not after the backoff (${Date.now() - t0} ms)`);
  t.same(sink.calls[before]!.changed, [a, b], 'and carries the retry with it');

  sink.failKey = undefined;
  await sleep(1300);
  const healed = sink.calls.length;
  t.ok(healed > before + 1, 'the failed port is retried until it succeeds');
  await sleep(300);
  t.equal(sink.calls.length, healed, 'then the retries stop');
  store.upsert('EndpointSlice', slice('a', ['10.1.0.9'], '6'));
  await applies(sink, healed + 1);
  t.same(sink.calls[healed]!.changed, [a], 'a later change: plain incremental, nothing left to retry');
});

t.test('a change that arrives while a sync runs gets its own sync at once', async (t) => {
  const { store, sink, rec } = await setup();
  t.teardown(() => rec.stop());
  sink.delayMs = 40;
  store.upsert('EndpointSlice', slice('a', ['10.1.0.4'], '4'));
  await sleep(25); // the sync is now inside apply
  store.upsert('EndpointSlice', slice('b', ['10.1.0.5'], '4'));
  await applies(sink, 3);
  t.equal(sink.calls.length, 3, 'two syncs after the first: the second change was not left waiting');
  t.same(backends(sink.calls[2]!.state, 'default/b:http/TCP/IPv4'), ['10.1.0.5'], 'and it is programmed');
});

t.test('a change made by code resumed from onSync (after the sync returned, before it is marked done) is synced', async (t) => {
  const store = new ObjectStore();
  const sink = new RecordingSink();
  let notify: (() => void) | undefined;
  const rec = new Reconciler({
    source: store, sink, model: new IncrementalModel(), nodeName: 'n1', logger, minSyncPeriodMs: 0, fullResyncPeriodMs: 60_000,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    onSync: () => notify?.(),
  });
  t.teardown(() => rec.stop());
  store.upsert('Node', nodeObj());
  store.upsert('Service', svc('a', '10.96.0.1'));
  const synced = () => new Promise<void>((resolve) => { notify = resolve; });
  let next = synced();
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) store.markSynced(kind);
  rec.start();
  await next; // resumes in a microtask queued inside the sync, before the sync is marked done
  next = synced();
  store.upsert('EndpointSlice', slice('a', ['10.1.0.7'], '9'));
  const timeout = sleep(500).then(() => 'timeout');
  t.equal(await Promise.race([next.then(() => 'synced'), timeout]), 'synced', 'the change got a sync of its own (not only at the next event or the resync timer)');
  t.same(backends(sink.calls.at(-1)!.state, 'default/a:http/TCP/IPv4'), ['10.1.0.7']);
});

t.test('the full-resync timer re-reads the maps and re-diffs everything on its own', async (t) => {
  const store = new ObjectStore();
  let resyncs = 0;
  const calls: Array<{ hinted: boolean }> = [];
  const sink: DesiredStateSink = {
    apply: (_state, hint) => {
      calls.push({ hinted: hint !== undefined });
      return { errors: [] };
    },
    resync: () => void resyncs++,
  };
  const rec = new Reconciler({
    source: store, sink, model: new IncrementalModel(), nodeName: 'n1', logger, minSyncPeriodMs: 0, fullResyncPeriodMs: 120,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
  });
  t.teardown(() => rec.stop());
  store.upsert('Node', nodeObj());
  store.upsert('Service', svc('a', '10.96.0.1'));
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) store.markSynced(kind);
  rec.start();
  await sleep(450);
  t.ok(resyncs >= 2, `the timer fired and re-read the maps (${resyncs} times in 450 ms at a 120 ms period)`);
  t.ok(calls.length >= 3 && calls.every((c) => !c.hinted), 'each of those syncs is a full one (no hint)', { calls });
});
