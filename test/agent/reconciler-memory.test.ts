// Memory goes back to the OS after a full sync: the scheduler driven by the reconciler's sync
// reports (src/agent/memory-release.ts) releases right after a sync that recomputed everything, never after an incremental one, at most once per
// RELEASE_MEMORY_INTERVAL_MS, and survives it throwing; once changes stop; and at intervals while
// they never stop. And the addon's releaseMemory really returns a dropped heap's pages to the OS,
// and limits the C heap's arenas.
import t from 'tap';
import pino from 'pino';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Reconciler } from '../../src/agent/reconciler.js';
import { MemoryReleaseScheduler, RELEASE_MEMORY_INTERVAL_MS } from '../../src/agent/memory-release.js';
import { limitMallocArenas, loadMemoryAddon, MALLOC_ARENAS, MMAP_BLOCKS_FROM } from '../../src/agent/process-memory.js';
import { ObjectStore } from '../../src/k8s/store.js';
import { IncrementalModel } from '../../src/model/incremental.js';

const svc = (name: string, ip: string): V1Service => ({
  metadata: { name, namespace: 'default', resourceVersion: '1' },
  spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (name: string, ips: string[]): V1EndpointSlice => ({
  metadata: { name: `${name}-1`, namespace: 'default', resourceVersion: '1', labels: { 'kubernetes.io/service-name': name } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});
const node = (zone: string): V1Node => ({ metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': zone } }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] } });

function setup(release: () => void, timing?: { quietMs: number; intervalMs: number; busyIntervalMs?: number }) {
  const store = new ObjectStore();
  const events: string[] = [];
  const releaseTimes: number[] = [];
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  const memory = new MemoryReleaseScheduler({
    release: () => {
      events.push('release');
      releaseTimes.push(performance.now());
      release();
    },
    logger,
    ...(timing ? { timing } : {}),
  });
  const reconciler = new Reconciler({
    source: store, sink: { apply: () => ({ errors: [] }) }, model: new IncrementalModel(), nodeName: 'n1', logger,
    minSyncPeriodMs: 0, fullResyncPeriodMs: 3_600_000,
    modelConfig: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    onSync: (r) => {
      events.push(r.incremental ? 'sync:incremental' : 'sync:full');
      memory.onSync(r);
    },
  });
  const rec = {
    syncNow: () => reconciler.syncNow(),
    stop: async () => {
      memory.stop();
      await reconciler.stop();
    },
  };
  store.upsert('Node', node('z1'));
  store.upsert('Service', svc('a', '10.96.0.1'));
  store.upsert('EndpointSlice', slice('a', ['10.1.0.1']));
  for (const kind of ['Service', 'EndpointSlice', 'Node'] as const) store.markSynced(kind);
  reconciler.start();
  return { store, rec, events, lines, releaseTimes };
}

/** Waits (at most 2 s) until `events` has grown past `from` with an entry `what`; returns the events since `from`. */
async function eventsUntil(events: string[], from: number, what: string): Promise<string[]> {
  for (let i = 0; i < 200 && !events.slice(from).includes(what); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 20)); // a release follows the sync synchronously; anything else would show up now
  return events.slice(from);
}

/** `count` endpoint changes of Service a, one every 20 ms (each a new endpoint set). */
async function changeEvery20Ms(store: ObjectStore, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    store.upsert('EndpointSlice', slice('a', ['10.1.0.1', `10.1.1.${i + 1}`]));
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('after the first (full) sync, not after incremental ones, at most once per interval', async (t) => {
  const { store, rec, events, lines } = setup(() => {});
  t.teardown(() => rec.stop());
  t.same(await eventsUntil(events, 0, 'sync:full'), ['sync:full', 'release'], 'right after the full sync is reported');
  t.ok(lines.some((l) => l.includes('released memory after a full sync') && l.includes('rssAfterMb')), 'logged with the RSS before and after');
  let from = events.length;
  store.upsert('EndpointSlice', slice('a', ['10.1.0.1', '10.1.0.2']));
  t.same(await eventsUntil(events, from, 'sync:incremental'), ['sync:incremental'], 'an incremental sync releases nothing');
  from = events.length;
  store.upsert('Node', node('z2'));
  t.same(await eventsUntil(events, from, 'sync:full'), ['sync:full'], `a second full sync within ${RELEASE_MEMORY_INTERVAL_MS} ms releases nothing`);
});

t.test('a full sync after the interval releases again; a throwing release only logs', async (t) => {
  const realNow = performance.now.bind(performance);
  let skew = 0;
  t.teardown(() => {
    performance.now = realNow;
  });
  performance.now = () => realNow() + skew;
  let fail = true;
  const { store, rec, events, lines } = setup(() => {
    if (fail) throw new Error('no memory to give');
  });
  t.teardown(() => rec.stop());
  t.same(await eventsUntil(events, 0, 'sync:full'), ['sync:full', 'release']);
  t.ok(lines.some((l) => l.includes('releasing memory after a full sync failed') && l.includes('no memory to give')), 'the failure is logged');
  fail = false;
  skew = RELEASE_MEMORY_INTERVAL_MS + 1;
  const from = events.length;
  store.upsert('Node', node('z2'));
  t.same(await eventsUntil(events, from, 'sync:full'), ['sync:full', 'release'], 'the next full sync after the interval releases');
  store.upsert('Service', svc('b', '10.96.0.2'));
  const report = await rec.syncNow();
  t.equal(report?.applyErrors.length, 0, 'syncs go on');
});

t.test('once changes stop, memory is released again (not during a burst, not too soon after the last)', async (t) => {
  const { store, rec, events, lines, releaseTimes } = setup(() => {}, { quietMs: 60, intervalMs: 400 });
  t.teardown(() => rec.stop());
  t.same(await eventsUntil(events, 0, 'sync:full'), ['sync:full', 'release']);
  // A burst: a change every 20 ms for ~100 ms; the quiet timer keeps being pushed back. It ends
  // well before the interval: the quiet release waits for the interval to be over.
  let from = events.length;
  await changeEvery20Ms(store, 5);
  t.notOk(events.slice(from).includes('release'), 'no release during the burst');
  from = events.length;
  const released = await eventsUntil(events, from, 'release');
  t.ok(released.includes('release'), 'released once the changes stopped');
  const gap = (releaseTimes[1] ?? 0) - (releaseTimes[0] ?? 0);
  t.ok(gap >= 400, `but not sooner than the interval after the last release (${gap.toFixed(0)} ms)`);
  t.ok(lines.some((l) => l.includes('released memory once changes stopped')), 'logged as such');
  from = events.length;
  await new Promise((r) => setTimeout(r, 200));
  t.same(events.slice(from), [], 'nothing more without new syncs');
});

t.test('while changes never stop, memory is released at the busy interval, not after every sync', async (t) => {
  // Never quiet long enough for the idle release (quietMs beyond the burst).
  const { store, rec, events, lines, releaseTimes } = setup(() => {}, { quietMs: 10_000, intervalMs: 10_000, busyIntervalMs: 150 });
  t.teardown(() => rec.stop());
  t.same(await eventsUntil(events, 0, 'sync:full'), ['sync:full', 'release']);
  const from = events.length;
  const t0 = performance.now();
  await changeEvery20Ms(store, 30);
  const elapsed = performance.now() - t0;
  const during = events.slice(from);
  const syncs = during.filter((e) => e === 'sync:incremental').length;
  const releases = during.filter((e) => e === 'release').length;
  t.ok(syncs >= 20, `the changes synced (${syncs})`);
  // At most one per busy interval of the burst as it really took (a loaded machine stretches it).
  const most = Math.floor(elapsed / 150) + 1;
  t.ok(releases >= 1 && releases <= most, `released during the changes, at the interval: ${releases} for ${elapsed.toFixed(0)} ms of changes (at most ${most})`);
  for (let i = 1; i < releaseTimes.length; i++) {
    const gap = (releaseTimes[i] ?? 0) - (releaseTimes[i - 1] ?? 0);
    t.ok(gap >= 150, `releases ${i - 1} and ${i} at least the busy interval apart (${gap.toFixed(0)} ms)`);
  }
  t.ok(lines.some((l) => l.includes('released memory while changes go on')), 'logged as such');
});

t.test('the quiet release never lands inside a sync (a full sync pauses: src/model/steps.ts)', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const memory = new MemoryReleaseScheduler({ release: () => {}, logger, timing: { quietMs: 20, intervalMs: 20, busyIntervalMs: 60_000 } });
  t.teardown(() => memory.stop());
  memory.onSync({ incremental: false });
  await new Promise((r) => setTimeout(r, 10));
  t.equal(lines.length, 1, 'the first full sync is released');
  memory.onSync({ incremental: true }); // arms the quiet release
  memory.onSyncStart(); // a full sync begins, and runs past the quiet time
  await new Promise((r) => setTimeout(r, 80));
  t.equal(lines.length, 1, 'nothing released while the sync runs');
  memory.onSync({ incremental: true }); // its report arms it again
  await new Promise((r) => setTimeout(r, 80));
  t.match(lines.at(-1), /released memory once changes stopped/, 'released once it is over and quiet');
});

t.test('the addon gives a dropped heap back to the OS', async (t) => {
  const native = loadMemoryAddon();
  let garbage: Array<{ i: number; s: string }> | null = [];
  for (let i = 0; i < 1_500_000; i++) garbage.push({ i, s: `item-${i}` });
  t.equal(garbage.length, 1_500_000);
  garbage = null;
  const before = process.memoryUsage.rss();
  native.releaseMemory();
  const after = process.memoryUsage.rss();
  t.ok(before - after > 40 * 1048576, `RSS ${(before / 1048576).toFixed(0)} → ${(after / 1048576).toFixed(0)} MB`);
});

t.test('the agent limits the C heap to MALLOC_ARENAS arenas; the addon refuses a bad count by name', async (t) => {
  t.ok(limitMallocArenas(), 'glibc took the limit');
  const native = loadMemoryAddon();
  for (const bad of [0, 1.5, 2000]) t.throws(() => native.limitMallocArenas(bad), { name: 'RangeError', message: /whole number from 1 to 1024/ }, `count ${bad}`);
  t.throws(() => native.limitMallocArenas('2' as unknown as number), { name: 'TypeError', message: /must be a number/ });
  let asked = 0;
  let mmapFrom = 0;
  t.ok(limitMallocArenas({ limitMallocArenas: (n) => ((asked = n), true), mmapLargeBlocks: (b) => ((mmapFrom = b), true) }));
  t.equal(asked, MALLOC_ARENAS, 'asks for MALLOC_ARENAS');
  t.equal(mmapFrom, MMAP_BLOCKS_FROM, 'and maps large blocks apart');
  t.throws(() => native.mmapLargeBlocks(100), { name: 'RangeError', message: /from 4096 to 33554432/ });
});
