// A map failure in any phase leaves every service either wholly old or wholly new (never half),
// is reported with the service key and the map error, and the next apply retries.
import t, { type Test } from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import type { DesiredState } from '../../src/model/types.js';
import { backend, desired, manyServices, replayViolations, servicesView, snapshot, svcPort } from './helpers.js';

const twoFrontends = (name: string, vip: string, ext: string, bes: string[]) => svcPort({
  name, backends: bes.map((ip) => backend(ip)),
  frontends: [{ kind: 'ClusterIP', ip: vip, port: 80 }, { kind: 'ExternalIP', ip: ext, port: 80 }],
});
const A1 = twoFrontends('a', '10.96.0.10', '192.0.2.10', ['10.1.0.1', '10.1.0.2']);
const A2 = twoFrontends('a', '10.96.0.10', '192.0.2.10', ['10.1.0.3']);
const B1 = twoFrontends('b', '10.96.0.11', '192.0.2.11', ['10.2.0.1']);
const B2 = twoFrontends('b', '10.96.0.11', '192.0.2.11', ['10.2.0.2', '10.2.0.3']);

/** The services view the state would have after a clean apply. */
function cleanView(state: DesiredState) {
  const tables = new MemoryServiceTables();
  new ServiceTableWriter({ tables }).apply(state);
  return servicesView(snapshot(tables));
}

/** Checks that every service in `tables` looks exactly like `before` or like `after`. */
function assertOldOrNew(t: Test, tables: MemoryServiceTables, before: ReturnType<typeof cleanView>, after: ReturnType<typeof cleanView>) {
  const now = servicesView(snapshot(tables));
  for (const key of new Set([...before.keys(), ...after.keys(), ...now.keys()])) {
    const got = JSON.stringify(now.get(key) ?? null);
    const old = JSON.stringify(before.get(key) ?? null);
    const neu = JSON.stringify(after.get(key) ?? null);
    if (got !== old && got !== neu) t.fail(`${key} is half-written: ${got}; old ${old}; new ${neu}`);
  }
}

type Failed = { res: ReturnType<ServiceTableWriter['apply']>; tables: MemoryServiceTables; before: ReturnType<typeof cleanView> };

/** from → to with a failure injected; `check` looks at the failed apply before the retry. */
function run(t: Test, from: DesiredState, to: DesiredState, inject: (tables: MemoryServiceTables) => () => void, check: (f: Failed) => void) {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  t.same(writer.apply(from).errors, []);
  const before = servicesView(snapshot(tables));
  const start = snapshot(tables);
  tables.resetLog();
  const stop = inject(tables);
  const res = writer.apply(to);
  t.same(replayViolations(start, tables.log), [], 'no half-written service at any step');
  const after = cleanView(to);
  assertOldOrNew(t, tables, before, after);
  check({ res, tables, before });
  stop();
  const retry = writer.apply(to);
  t.same(retry.errors, [], 'the next apply succeeds');
  t.same(servicesView(snapshot(tables)), after, 'and converges to the desired state');
  return writer;
}

const isA = (k: unknown) => (k as { addr?: string }).addr === '192.0.2.10';

t.test('new block write fails: the service keeps its old block, the partial new one is cleaned', async (t) => {
  run(t, desired(A1, B1), desired(A2, B2), (tb) =>
    tb.failWhen({ map: 'sl_backends4', op: 'set', code: 'E2BIG', when: (_k, v) => (v as { addr: string }).addr === '10.2.0.3' }),
  ({ res, tables, before }) => {
    t.match(res.errors, [{ key: B1.key, map: 'sl_backends4', code: 'E2BIG', message: /default\/b:\/TCP\/IPv4.*backend block.*E2BIG.*previous state/ }]);
    t.match(res.services, { updated: 1, failed: 1 });
    t.same(servicesView(snapshot(tables)).get(B1.key), before.get(B1.key), 'b is exactly as before');
    t.equal(tables.backends.size, 2, 'a\'s new block and b\'s old one: b\'s partial new block is deleted');
  });
});

t.test('frontend switch fails half-way: the switched frontend is rolled back', async (t) => {
  run(t, desired(A1, B1), desired(A2, B2), (tb) => tb.failWhen({ map: 'sl_frontends4', op: 'set', code: 'ENOMEM', when: isA }),
    ({ res, tables, before }) => {
      t.match(res.errors, [{ key: A1.key, map: 'sl_frontends4', code: 'ENOMEM', message: /rolled back/ }]);
      t.same(servicesView(snapshot(tables)).get(A1.key), before.get(A1.key), 'a is exactly as before');
    });
});

t.test('a removal whose frontend delete fails is rolled back whole', async (t) => {
  run(t, desired(A1, B1), desired(B1), (tb) => tb.failWhen({ map: 'sl_frontends4', op: 'delete', code: 'EPERM', when: isA }),
    ({ res, tables, before }) => {
      t.match(res.errors, [{ key: A1.key, code: 'EPERM' }]);
      t.equal(res.services.removed, 0);
      t.same(servicesView(snapshot(tables)).get(A1.key), before.get(A1.key), 'a is exactly as before');
      t.ok(tables.svcMeta.entries().some(([, m]) => m.name === A1.key), 'its name stays while its frontends do');
    });
});

t.test('a new service whose name cannot be written is not added; its id is freed', async (t) => {
  const writer = run(t, desired(B1), desired(A1, B1), (tb) => tb.failWhen({ map: 'sl_svc_meta', op: 'set', code: 'EFAULT' }),
    ({ res, tables }) => {
      t.match(res.errors, [{ key: A1.key, map: 'sl_svc_meta' }]);
      t.equal(tables.frontends.size, 2, 'only b\'s frontends');
      t.equal(tables.backends.size, 1, 'no block written for a');
      t.same(tables.svcMeta.entries().map(([, m]) => m.name), [B1.key], 'no name for a');
    });
  t.equal(writer.serviceId(A1.key), 3, 'the retry got the next id (2 is free again, reused last)');
});

t.test('one failing service among a thousand: only it stays old', async (t) => {
  const from = manyServices(1000, 4);
  const to = manyServices(1000, 5);
  run(t, from, to, (tb) => tb.failWhen({ map: 'sl_frontends4', op: 'set', code: 'EBUSY', when: (k) => (k as { addr: string }).addr === '10.96.1.244' }),
    ({ res }) => {
      t.equal(res.errors.length, 1);
      t.match(res.errors[0], { key: 'default/svc-500:/TCP/IPv4', code: 'EBUSY' });
      t.equal(res.services.updated, 999);
    });
});

t.test('unreadable maps: nothing is written, the error says so', async (t) => {
  const tables = new MemoryServiceTables();
  tables.frontends.entries = () => {
    throw Object.assign(new Error('bpf_map_lookup_batch(sl_frontends4): EPERM'), { code: 'EPERM' });
  };
  const res = new ServiceTableWriter({ tables }).apply(desired(A1));
  t.match(res.errors, [{ code: 'EPERM', message: /reading the service maps failed, nothing written/ }]);
  t.equal(tables.log.length, 0);
});

t.test('bad desired input names the service, field and value; its programmed state is kept', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  writer.apply(desired(A1, B1));
  const before = servicesView(snapshot(tables));
  const bad = twoFrontends('a', '10.96.0.10', '192.0.2.10', ['10.1.0.300']);
  const badPort = svcPort({ name: 'b', vip: '10.96.0.11', backends: [backend('10.2.0.1', 70000)] });
  const res = writer.apply(desired(bad, badPort));
  t.match(res.errors, [
    { key: A1.key, message: 'service port default/a:/TCP/IPv4: clusterBackends[0].ip "10.1.0.300" is not an IPv4 address' },
    { key: B1.key, message: /clusterBackends\[0\]\.port 70000 is not a port number/ },
  ]);
  t.equal(res.services.failed, 2);
  t.same(servicesView(snapshot(tables)), before, 'nothing removed or changed');
});
