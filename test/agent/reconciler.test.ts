import t from 'tap';
import pino from 'pino';
import type { V1Service } from '@kubernetes/client-node';
import { Reconciler } from '../../src/agent/reconciler.js';
import type { ObjectSnapshotSource, DesiredStateSink } from '../../src/agent/reconciler.js';
import type { DesiredState, ModelInput, ModelResult } from '../../src/model/types.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class FakeSource implements ObjectSnapshotSource {
  synced = false;
  services: V1Service[] = [];
  listeners = new Set<() => void>();
  isSynced() { return this.synced; }
  snapshot() { return { services: this.services, endpointSlices: [], nodes: [] }; }
  onChange(l: () => void) { this.listeners.add(l); return () => this.listeners.delete(l); }
  change(fn: () => void) { fn(); for (const l of this.listeners) l(); }
}

class FakeSink implements DesiredStateSink {
  applied: DesiredState[] = [];
  resyncs = 0;
  failNext = 0;
  apply(state: DesiredState) {
    if (this.failNext > 0) { this.failNext--; return { errors: [{ key: 'x', message: 'map full' }] }; }
    this.applied.push(state);
    return { errors: [] };
  }
  resync() { this.resyncs++; }
}

// A model stand-in that maps each Service to one entry; the real model has its own tests.
const compute = (input: ModelInput): ModelResult => ({
  state: { services: new Map(input.services.map((s) => [s.metadata!.name!, { frontends: [{}], clusterBackends: [], localBackends: [] } as never])) },
  errors: input.services.filter((s) => s.metadata?.name === 'bad').map(() => ({
    kind: 'Service', object: 'default/bad', field: 'spec.ports[0].port', value: 0, message: 'port 0',
  })),
});

function setup(minSyncPeriodMs = 30) {
  const source = new FakeSource();
  const sink = new FakeSink();
  const reports: number[] = [];
  const rec = new Reconciler({
    source, sink, compute, nodeName: 'n1', logger, minSyncPeriodMs, fullResyncPeriodMs: 60_000,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    onSync: (r) => reports.push(r.services),
  });
  return { source, sink, rec, reports };
}
const svc = (name: string): V1Service => ({ metadata: { name, namespace: 'default' } });

t.test('holds the first apply until every source synced', async (t) => {
  const { source, sink, rec } = setup();
  rec.start();
  t.teardown(() => rec.stop());
  source.change(() => source.services.push(svc('a')));
  await sleep(80);
  t.equal(sink.applied.length, 0, 'nothing programmed from a partial view');
  t.notOk(rec.synced);
  source.change(() => { source.synced = true; });
  await sleep(80);
  t.equal(sink.applied.length, 1);
  t.equal(sink.applied[0]!.services.size, 1);
  t.ok(rec.synced);
});

t.test('coalesces a burst into few syncs', async (t) => {
  const { source, sink, rec } = setup(100);
  source.synced = true;
  rec.start();
  t.teardown(() => rec.stop());
  await sleep(30);
  const before = sink.applied.length;
  for (let i = 0; i < 50; i++) source.change(() => source.services.push(svc(`s${i}`)));
  await sleep(250);
  const syncs = sink.applied.length - before;
  t.ok(syncs >= 1 && syncs <= 2, `50 changes became ${syncs} sync(s)`);
  t.equal(sink.applied.at(-1)!.services.size, 50, 'the last sync saw every change');
});

t.test('a failed apply is retried and does not count as synced', async (t) => {
  const { source, sink, rec } = setup(20);
  source.synced = true;
  sink.failNext = 2;
  rec.start();
  t.teardown(() => rec.stop());
  await sleep(200);
  t.equal(sink.applied.length, 1, 'third attempt succeeded');
  t.equal(rec.syncCount, 1);
});

t.test('model errors reach the report; full resync re-reads the maps', async (t) => {
  const { source, sink, rec } = setup();
  source.synced = true;
  source.services.push(svc('ok'), svc('bad'));
  const report = await rec.syncNow(true);
  t.equal(sink.resyncs, 1);
  t.equal(report?.modelErrors.length, 1);
  t.equal(report?.modelErrors[0]?.field, 'spec.ports[0].port');
  t.equal(report?.services, 2, 'the bad object does not stop the rest');
  t.equal(report?.full, true);
});

t.test('a throwing sink does not kill the loop', async (t) => {
  const { source, rec } = setup(20);
  source.synced = true;
  let calls = 0;
  (rec as unknown as { opts: { sink: DesiredStateSink } }).opts.sink = {
    apply() { calls++; if (calls === 1) throw new Error('boom'); return { errors: [] }; },
  };
  rec.start();
  t.teardown(() => rec.stop());
  await sleep(150);
  t.ok(calls >= 2, 'retried after the throw');
  t.equal(rec.syncCount, 1);
});

t.test('the report counts frontends and backend slots', async (t) => {
  const { source, rec } = setup();
  source.synced = true;
  source.services.push(svc('a'), svc('b'));
  const report = await rec.syncNow();
  t.equal(report?.frontends, 2);
  t.equal(report?.backends, 0);
});

t.test('a full map whose entries the failed sync deleted is retried without the built-up backoff', async (t) => {
  const { source, rec } = setup(20);
  source.synced = true;
  type Outcome = ReturnType<DesiredStateSink['apply']>;
  let next: Outcome = { errors: [] };
  (rec as unknown as { opts: { sink: DesiredStateSink } }).opts.sink = { apply: () => next };
  const failures = () => (rec as unknown as { failures: number }).failures;
  t.teardown(() => rec.stop());
  const full = { key: 'default/a:/TCP/IPv4', map: 'sl_frontends4', capacity: 8, message: 'sl_frontends4 is full' };
  const counts = (deletes: number) => ({ services: { added: 0, updated: 0, removed: deletes, unchanged: 0 }, ops: { writes: 0, deletes } });
  next = { errors: [full], ...counts(0) };
  for (let i = 0; i < 5; i++) await rec.syncNow();
  t.equal(failures(), 5, 'a map that stays full backs off further each time');
  next = { errors: [{ key: 'default/b:/TCP/IPv4', message: 'EPERM' }], ...counts(2) };
  await rec.syncNow();
  t.equal(failures(), 6, 'deletes with another error: the backoff goes on');
  next = { errors: [full], ...counts(2) };
  await rec.syncNow();
  t.equal(failures(), 1, 'deletes made room in a full map: the retry waits one step only');
});
