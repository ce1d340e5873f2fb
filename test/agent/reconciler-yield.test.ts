// A long full sync gives the event loop turns (src/model/steps.ts): the admin socket is answered
// while it runs, and a watch event that arrives meanwhile is applied by the next sync without
// disturbing this one. No timing: the reconciler's `turn` hook is where the sync is paused, and
// the test acts there — without pause points the hook is never called and both tests fail.
import t from 'tap';
import type { Test } from 'tap';
import pino from 'pino';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { Reconciler } from '../../src/agent/reconciler.js';
import type { SyncReport } from '../../src/agent/reconciler.js';
import { adminRequest } from '../../src/admin/client.js';
import { startAdminServer } from '../../src/admin/server.js';
import type { StatusView } from '../../src/admin/types.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { Mirror } from '../../src/dataplane/mirror.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { ObjectStore } from '../../src/k8s/store.js';
import { IncrementalModel } from '../../src/model/incremental.js';
import { nextTurn } from '../../src/model/steps.js';
import { FakeBackend } from '../admin/fake-backend.js';

const logger = pino({ level: 'silent' });
/** Enough objects for many pause points (one per 256 objects or service ports, and per phase). */
const SERVICES = 2000;

const ip = (base: number, i: number) => `10.${base + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const svc = (i: number): V1Service => ({
  metadata: { name: `s${i}`, namespace: 'default', resourceVersion: '1' },
  spec: { type: 'ClusterIP', clusterIP: ip(96, i + 1), clusterIPs: [ip(96, i + 1)], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (i: number, endpoint: string, rv = '1'): V1EndpointSlice => ({
  metadata: { name: `s${i}-1`, namespace: 'default', resourceVersion: rv, labels: { 'kubernetes.io/service-name': `s${i}` } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: [endpoint], conditions: { ready: true } }],
});
const portKey = (i: number) => `default/s${i}:http/TCP/IPv4`;

/** A synced store of SERVICES Services, and a reconciler over the real model and writer that pauses at every pause point. */
function setup(t: Test, turn: () => Promise<void>) {
  const store = new ObjectStore();
  store.upsert('Node', { metadata: { name: 'n1', resourceVersion: '1' }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] } });
  for (let i = 0; i < SERVICES; i++) {
    store.upsert('Service', svc(i));
    store.upsert('EndpointSlice', slice(i, ip(128, i + 1)));
  }
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) store.markSynced(kind);
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const reports: SyncReport[] = [];
  const rec = new Reconciler({
    source: store,
    sink: { apply: (s, h) => writer.apply(s, h), applySteps: (s, h) => writer.applySteps(s, h), resync: () => writer.resync() },
    model: new IncrementalModel(), nodeName: 'n1', logger, minSyncPeriodMs: 0, fullResyncPeriodMs: 60_000,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    onSync: (r) => reports.push(r),
    yieldEveryMs: 0,
    turn,
  });
  t.teardown(() => rec.stop());
  return { store, tables, rec, reports };
}

t.test('the admin socket answers a status request while a full sync runs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-yield-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let served: () => void = () => undefined;
  const statusServed = new Promise<void>((resolve) => (served = resolve));
  let turns = 0;
  // The first pause waits until the status request has been answered: only the event loop,
  // turning while the sync is paused, can answer it.
  const { tables, rec } = setup(t, async () => {
    turns++;
    await (turns === 1 ? statusServed : nextTurn());
  });
  let syncDone = false;
  let syncDoneAtStatus: boolean | undefined;
  const backend = new FakeBackend();
  const status = backend.status.bind(backend);
  backend.status = async () => {
    syncDoneAtStatus = syncDone;
    return status();
  };
  const admin = await startAdminServer({ socketPath: join(dir, 'admin.sock'), backend, logger });
  t.teardown(() => admin.close());

  const sync = rec.syncNow().then((r) => {
    syncDone = true;
    return r;
  });
  const answer = adminRequest<StatusView>({ socketPath: admin.socketPath, method: 'GET', path: '/v1/status', timeoutMs: 60_000 }).then((v) => {
    served();
    return v;
  });
  const [report, view] = await Promise.all([sync, answer]);
  t.equal(view.nodeName, 'node-a', 'the status request was answered');
  t.equal(syncDoneAtStatus, false, 'before the sync had finished');
  t.ok(turns > 10, `the sync gave the event loop turns (${turns})`);
  t.equal(report?.applyErrors.length, 0);
  t.equal(report?.services, SERVICES, 'and then programmed every service port');
  t.equal(tables.frontends.size, SERVICES);
});

t.test('a watch event that arrives while a full sync is paused is applied by the next sync', async (t) => {
  let acted = false;
  const stores: ObjectStore[] = [];
  const { tables, rec, reports, store } = setup(t, async () => {
    if (!acted) {
      acted = true;
      // While the model or the writer is paused: an endpoint moves and a Service goes.
      stores[0]?.upsert('EndpointSlice', slice(7, '10.200.0.7', '2'));
      stores[0]?.remove('Service', 'default/s9');
    }
    await nextTurn();
  });
  stores.push(store);
  rec.start();
  for (let i = 0; i < 400 && reports.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(acted, 'the changes arrived while the first sync was paused');
  t.equal(reports.length, 2, 'a second sync followed');
  t.notOk(reports[0]!.incremental, 'the first is full');
  t.equal(reports[0]!.services, SERVICES, 'and programmed the objects as they were when it started');
  t.ok(reports[1]!.incremental, 'the second is incremental');
  t.same(reports.map((r) => r.applyErrors.length), [0, 0]);

  const programmed = Mirror.read(tables).services();
  t.equal(programmed.size, SERVICES - 1, 'the removed Service is gone from the maps');
  t.notOk(programmed.has(portKey(9)));
  const mirror = Mirror.read(tables);
  const fe = [...(programmed.get(portKey(7))?.frontends.values() ?? [])][0];
  const block = fe ? mirror.blocks.get(fe.value.backend_id)?.entries().map(([, be]) => be.addr) : undefined;
  t.same(block, ['10.200.0.7'], 'the moved endpoint is programmed');
  const other = [...(programmed.get(portKey(8))?.frontends.values() ?? [])][0];
  t.same(other ? mirror.blocks.get(other.value.backend_id)?.entries().map(([, be]) => be.addr) : undefined, [ip(128, 9)], 'the others are untouched');
});
