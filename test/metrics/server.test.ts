import t from 'tap';
import { request } from 'node:http';
import { AgentHealth } from '../../src/metrics/health.js';
import { parseListenAddress, startMetricsServer } from '../../src/metrics/server.js';
import { Registry } from '../../src/metrics/registry.js';
import { parsePrometheus, sampleValue } from './prom-parse.js';

function get(address: string, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string; allow?: string }> {
  const { host, port } = parseListenAddress(address);
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body, allow: res.headers.allow }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('listen addresses', async (t) => {
  t.same(parseListenAddress('127.0.0.1:9963'), { host: '127.0.0.1', port: 9963 });
  t.same(parseListenAddress('[::1]:9963'), { host: '::1', port: 9963 });
  t.same(parseListenAddress(':9963'), { host: '::', port: 9963 });
  t.same(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  t.throws(() => parseListenAddress('9963'), /metrics address "9963" is not host:port; expected host:port such as/);
  t.throws(() => parseListenAddress('127.0.0.1:70000'), /has port 70000 above 65535/);
  t.throws(() => parseListenAddress('[fe80::1'), /is not host:port/);
  t.throws(() => parseListenAddress('[10.0.0.1]:80'), /not an IPv6 address/);
  t.throws(() => parseListenAddress('::1:80'), /is not host:port/, 'IPv6 needs brackets');
});

t.test('/metrics serves parseable text and runs collectors on each scrape', async (t) => {
  const registry = new Registry();
  const scrapes = registry.counter({ name: 'demo_scrapes_total', help: 'Scrapes seen by the collector.' });
  registry.onCollect(() => scrapes.inc());
  const server = await startMetricsServer({ address: '127.0.0.1:0', registry, health: new AgentHealth() });
  t.teardown(() => server.close());
  t.match(server.address, /^127\.0\.0\.1:\d+$/);

  const first = await get(server.address, '/metrics');
  t.equal(first.status, 200);
  t.equal(first.type, 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(sampleValue(parsePrometheus(first.body), 'demo_scrapes_total'), 1);
  const second = await get(server.address, '/metrics');
  t.equal(sampleValue(parsePrometheus(second.body), 'demo_scrapes_total'), 2, 'the value moves between scrapes');

  const head = await get(server.address, '/metrics', 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body, '');
  const post = await get(server.address, '/metrics', 'POST');
  t.equal(post.status, 405);
  t.equal(post.allow, 'GET, HEAD');
  const missing = await get(server.address, '/nope');
  t.equal(missing.status, 404);
  t.match(JSON.parse(missing.body), { error: 'no such endpoint /nope (endpoints: /metrics, /healthz, /readyz)' });
});

t.test('a failing or stuck collector does not break the scrape', async (t) => {
  const registry = new Registry();
  const g = registry.gauge({ name: 'demo_value', help: 'x' });
  g.set(undefined, 7);
  registry.onCollect(() => {
    throw new Error('map gone');
  });
  registry.onCollect(() => new Promise<void>(() => undefined)); // never finishes
  const server = await startMetricsServer({ address: '127.0.0.1:0', registry, health: new AgentHealth(), collectTimeoutMs: 200 });
  t.teardown(() => server.close());
  const started = Date.now();
  const res = await get(server.address, '/metrics');
  t.equal(res.status, 200);
  t.equal(sampleValue(parsePrometheus(res.body), 'demo_value'), 7);
  t.ok(Date.now() - started < 2000);
});

t.test('/readyz is 503 before the first sync with programs loaded, 200 after', async (t) => {
  const health = new AgentHealth();
  const server = await startMetricsServer({ address: '127.0.0.1:0', registry: new Registry(), health });
  t.teardown(() => server.close());
  let res = await get(server.address, '/readyz');
  t.equal(res.status, 503);
  t.equal(res.type, 'application/json');
  t.match(JSON.parse(res.body), {
    ok: false,
    reasons: ['programs not loaded yet', 'programs not attached', 'waiting for the first complete sync'],
  });
  health.setProgramsLoaded(true);
  health.setProgramsAttached(true);
  res = await get(server.address, '/readyz');
  t.equal(res.status, 503, 'programs alone are not enough');
  t.same(JSON.parse(res.body).reasons, ['waiting for the first complete sync']);
  health.markSynced();
  res = await get(server.address, '/readyz');
  t.equal(res.status, 200);
  t.match(JSON.parse(res.body), { ok: true, reasons: [], checks: { synced: { ok: true, detail: /^first sync at \d{4}-/ } } });
  // Losing the programs makes the node unready again.
  health.setProgramsAttached(false, 'tc on veth3 detached');
  res = await get(server.address, '/readyz');
  t.equal(res.status, 503);
  t.same(JSON.parse(res.body).reasons, ['programs not attached: tc on veth3 detached']);
});

t.test('/healthz: heartbeat and attachment, with a start-up grace', async (t) => {
  let now = 1_000_000;
  const health = new AgentHealth({ now: () => now, heartbeatTimeoutMs: 10_000, startupGraceMs: 60_000 });
  const server = await startMetricsServer({ address: '127.0.0.1:0', registry: new Registry(), health });
  t.teardown(() => server.close());
  const check = async () => {
    const res = await get(server.address, '/healthz');
    return { status: res.status, body: JSON.parse(res.body) as { ok: boolean; reasons: string[] } };
  };
  let r = await check();
  t.equal(r.status, 200, 'starting up: not attached yet is fine');
  t.match(r.body, { checks: { programs: { ok: true, detail: 'starting: programs not attached yet' } } });

  now += 15_000;
  r = await check();
  t.equal(r.status, 503);
  t.match(r.body.reasons, [/event loop stalled: last heartbeat 15000 ms ago \(limit 10000 ms\)/]);
  health.heartbeat();
  t.equal((await check()).status, 200);

  now += 60_000;
  health.heartbeat();
  r = await check();
  t.equal(r.status, 503, 'never attached after the grace period');
  t.same(r.body.reasons, ['programs not attached 60 s after start']);
  health.setProgramsAttached(true);
  t.equal((await check()).status, 200);
  health.setProgramsAttached(false, 'cgroup link gone');
  r = await check();
  t.same(r.body.reasons, ['programs not attached: cgroup link gone']);

  // The real heartbeat timer beats on its own.
  const live = new AgentHealth({ heartbeatTimeoutMs: 50 });
  const stop = live.startHeartbeat(10);
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.ok(live.liveness().checks.eventLoop?.ok, 'timer keeps the heartbeat fresh');
  stop();
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.notOk(live.liveness().checks.eventLoop?.ok, 'stopped heartbeat goes stale');
});

t.test('/healthz: a sync that never ends fails liveness (the loop is stuck, not just slow)', async (t) => {
  let now = 5_000_000;
  const health = new AgentHealth({ now: () => now, syncStallMs: 30_000 });
  health.setProgramsAttached(true);
  t.ok(health.liveness().ok, 'idle: healthy');
  health.syncStarted();
  now += 20_000;
  health.heartbeat();
  t.ok(health.liveness().ok, 'a slow sync (20 s) is fine');
  now += 15_000;
  health.heartbeat();
  const stuck = health.liveness();
  t.notOk(stuck.ok, 'past the limit: not alive');
  t.match(stuck.reasons, [/sync loop stuck: one sync has been running for 35000 ms \(limit 30000 ms\)/]);
  health.syncEnded();
  t.ok(health.liveness().ok, 'the sync ended: alive again');
});
