// HealthCheckServers against real HTTP on 127.0.0.1 with ephemeral ports.
import t from 'tap';
import type { Test } from 'tap';
import { Agent, request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { HealthCheckServers } from '../../src/agent/health-check-servers.js';
import type { HealthCheckProblem, HealthCheckServersOptions } from '../../src/agent/health-check-servers.js';
import type { HealthCheckService } from '../../src/model/health.js';
import { healthCheckServices } from '../../src/model/health.js';
import type { Backend, DesiredServicePort, DesiredState } from '../../src/model/types.js';
import { BackendList } from '../../src/model/backend-list.js';

const HOST = '127.0.0.1';

/** A port that was free a moment ago (bind port 0, read it, close). */
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, HOST, () => resolve());
  });
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Holds a port so the servers cannot bind it. */
async function occupy(port: number): Promise<NetServer> {
  const s = createNetServer((sock) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, HOST, () => resolve());
  });
  return s;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The request went over a connection an earlier request opened (keep-alive agent only). */
  reused: boolean;
}

function get(port: number, opts: { path?: string; method?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path: opts.path ?? '/', method: opts.method ?? 'GET', agent: opts.agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the error code of a request that must fail (ECONNREFUSED for a closed port). */
async function failure(port: number): Promise<string> {
  try {
    const r = await get(port);
    return `answered ${r.status}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

function svc(name: string, port: number, localEndpoints: number, namespace = 'default'): HealthCheckService {
  return { namespace, name, healthCheckNodePort: port, localEndpoints };
}

function services(...list: HealthCheckService[]): Map<string, HealthCheckService> {
  return new Map(list.map((s) => [`${s.namespace}/${s.name}`, s]));
}

/** A logger whose lines are kept, parsed. */
function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

function start(t: Test, opts: Partial<HealthCheckServersOptions> = {}) {
  const { logger, lines } = capture();
  const problems: HealthCheckProblem[] = [];
  const hc = new HealthCheckServers({ logger, host: HOST, retryIntervalMs: 0, onProblem: (p) => problems.push(p), ...opts });
  t.teardown(() => hc.stop());
  return { hc, lines, problems };
}

const bodyOf = (ns: string, name: string, n: number, healthy = true) =>
  `{"service":{"namespace":"${ns}","name":"${name}"},"localEndpoints":${n},"serviceProxyHealthy":${healthy}}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('200 with local endpoints, 503 without; exact headers and body; counts change in place', async (t) => {
  const { hc } = start(t);
  const port = await freePort();
  await hc.update(services(svc('web', port, 2)));

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const first = await get(port, { agent });
  t.equal(first.status, 200);
  t.equal(first.headers['content-type'], 'application/json');
  t.equal(first.headers['x-content-type-options'], 'nosniff');
  t.equal(first.headers['x-load-balancing-endpoint-weight'], '2');
  t.equal(first.headers['content-length'], String(Buffer.byteLength(first.body)));
  t.equal(first.body, bodyOf('default', 'web', 2));

  const other = await get(port, { path: '/healthz?probe=1', agent });
  t.equal(other.status, 200, 'any path answers');
  t.equal(other.body, bodyOf('default', 'web', 2));
  t.ok(other.reused, 'keep-alive connection');

  // Endpoints go away: 503 on the same connection, so the server was not restarted.
  const st = await hc.update(services(svc('web', port, 0)));
  t.same(st.serving, [{ port, service: 'default/web', localEndpoints: 0 }]);
  const none = await get(port, { agent });
  t.equal(none.status, 503);
  t.equal(none.headers['x-load-balancing-endpoint-weight'], '0');
  t.equal(none.headers['content-type'], 'application/json');
  t.equal(none.headers['x-content-type-options'], 'nosniff');
  t.equal(none.body, bodyOf('default', 'web', 0));
  t.ok(none.reused, 'same connection: no restart');

  // Back to one endpoint; counts take effect without waiting for the promise.
  void hc.update(services(svc('web', port, 1)));
  const one = await get(port, { agent });
  t.equal(one.status, 200);
  t.equal(one.headers['x-load-balancing-endpoint-weight'], '1');
  t.equal(one.body, bodyOf('default', 'web', 1));
  t.ok(one.reused);

  const post = await get(port, { method: 'POST', path: '/x' });
  t.equal(post.status, 200, 'any method answers');
  t.equal(post.body, bodyOf('default', 'web', 1));
  const head = await get(port, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers['x-load-balancing-endpoint-weight'], '1');
  t.equal(head.body, '', 'HEAD: headers only');
});

t.test('proxy unhealthy → 503 with serviceProxyHealthy:false, whatever the count', async (t) => {
  let healthy = true;
  let throws = false;
  const { hc, lines } = start(t, {
    proxyHealthy: () => {
      if (throws) throw new Error('boom');
      return healthy;
    },
  });
  const port = await freePort();
  await hc.update(services(svc('web', port, 3)));
  t.equal((await get(port)).status, 200);

  healthy = false;
  const down = await get(port);
  t.equal(down.status, 503);
  t.equal(down.headers['x-load-balancing-endpoint-weight'], '3', 'the weight is still the count');
  t.equal(down.body, bodyOf('default', 'web', 3, false));

  healthy = true;
  const up = await get(port);
  t.equal(up.status, 200);
  t.equal(up.body, bodyOf('default', 'web', 3, true));

  throws = true;
  const broken = await get(port);
  t.equal(broken.status, 503, 'a throwing health function counts as unhealthy');
  t.equal(broken.body, bodyOf('default', 'web', 3, false));
  t.ok(lines.some((l) => l['level'] === 50 && /proxy health function threw/.test(String(l['msg']))));

  throws = false;
  await hc.update(services(svc('web', port, 0)));
  const both = await get(port);
  t.equal(both.status, 503);
  t.equal(both.body, bodyOf('default', 'web', 0, true));
});

t.test('servers open for new ports and close for ports no longer wanted', async (t) => {
  const { hc, lines } = start(t);
  const [a, b, c] = [await freePort(), await freePort(), await freePort()];

  let st = await hc.update(services(svc('a', a, 1)));
  t.same(st.serving.map((s) => s.port), [a]);
  t.equal((await get(a)).body, bodyOf('default', 'a', 1));
  t.equal(await failure(b), 'ECONNREFUSED');

  st = await hc.update(services(svc('a', a, 1), svc('b', b, 2)));
  t.same(st.serving.map((s) => s.port).sort(), [a, b].sort());
  t.equal((await get(b)).body, bodyOf('default', 'b', 2));

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  await get(b, { agent });

  st = await hc.update(services(svc('b', b, 2)));
  t.same(st.serving, [{ port: b, service: 'default/b', localEndpoints: 2 }]);
  t.equal(await failure(a), 'ECONNREFUSED', 'a removed Service closes its port');
  const kept = await get(b, { agent });
  t.equal(kept.status, 200);
  t.ok(kept.reused, 'the server of a port that stays is untouched');

  // The Service moves to another port: old closed, new open.
  st = await hc.update(services(svc('b', c, 2)));
  t.same(st.serving, [{ port: c, service: 'default/b', localEndpoints: 2 }]);
  t.equal(await failure(b), 'ECONNREFUSED');
  t.equal((await get(c)).body, bodyOf('default', 'b', 2));

  st = await hc.update(new Map());
  t.same(st, { serving: [], failed: [], conflicts: [], invalid: [] });
  t.equal(await failure(c), 'ECONNREFUSED');

  const opened = lines.filter((l) => l['msg'] === 'health check server listening').map((l) => l['port']);
  const closed = lines.filter((l) => l['msg'] === 'health check server closed').map((l) => l['port']);
  t.same(opened, [a, b, c], 'each port opened once');
  t.same(closed.sort(), [a, b, c].sort(), 'each port closed once');
});

t.test('a port in use: error naming the Service and port, others still served, retried on the next update', async (t) => {
  const { hc, lines, problems } = start(t);
  const busy = await freePort();
  const free = await freePort();
  const blocker = await occupy(busy);
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));

  let st = await hc.update(services(svc('lb', busy, 1, 'shop'), svc('other', free, 1)));
  t.same(st.serving.map((s) => s.port), [free], 'the other Service is served');
  t.equal(st.failed.length, 1);
  t.match(st.failed[0], { port: busy, service: 'shop/lb', error: /port already in use/ });
  const errors = lines.filter((l) => l['level'] === 50);
  t.equal(errors.length, 1);
  t.match(errors[0], { port: busy, service: 'shop/lb', code: 'EADDRINUSE' });
  t.match(String(errors[0]?.['msg']), `Service shop/lb cannot listen on port ${busy}`);
  t.same(problems.map((p) => [p.kind, p.service, p.port]), [['bind', 'shop/lb', busy]]);
  t.equal((await get(free)).status, 200);

  // Still busy: retried, not re-reported at error level.
  st = await hc.update(services(svc('lb', busy, 2, 'shop'), svc('other', free, 1)));
  t.equal(st.failed.length, 1);
  t.equal(lines.filter((l) => l['level'] === 50).length, 1, 'the same failure is logged once at error');
  t.ok(lines.some((l) => l['level'] === 20 && l['port'] === busy), 'the retry is logged at debug');
  t.equal(problems.length, 1);

  await new Promise<void>((r) => blocker.close(() => r()));
  st = await hc.update(services(svc('lb', busy, 2, 'shop'), svc('other', free, 1)));
  t.same(st.failed, []);
  t.same(st.serving.map((s) => s.port).sort(), [busy, free].sort());
  const res = await get(busy);
  t.equal(res.status, 200);
  t.equal(res.body, bodyOf('shop', 'lb', 2));
  t.ok(lines.some((l) => l['msg'] === 'health check server listening' && l['port'] === busy && /in use/.test(String(l['previousError']))));
});

t.test('with a retry interval, a freed port is bound without another update', async (t) => {
  const { hc } = start(t, { retryIntervalMs: 50 });
  const port = await freePort();
  const blocker = await occupy(port);
  const st = await hc.update(services(svc('web', port, 1)));
  t.equal(st.failed.length, 1);
  await new Promise<void>((r) => blocker.close(() => r()));
  const deadline = Date.now() + 5000;
  while (hc.status().serving.length === 0 && Date.now() < deadline) await sleep(20);
  t.same(hc.status().serving, [{ port, service: 'default/web', localEndpoints: 1 }]);
  t.equal((await get(port)).status, 200);
});

t.test('two Services on one port: the first by namespace/name wins, the other is reported', async (t) => {
  const { hc, lines, problems } = start(t);
  const port = await freePort();
  // 'a' sorts before 'a-b' as a namespace, although the key 'a-b/web' sorts before 'a/web'.
  const winner = svc('web', port, 1, 'a');
  const loser = svc('web', port, 4, 'a-b');
  let st = await hc.update(services(loser, winner));
  t.same(st.serving, [{ port, service: 'a/web', localEndpoints: 1 }]);
  t.same(st.conflicts, [{ port, service: 'a-b/web', winner: 'a/web' }]);
  t.equal((await get(port)).body, bodyOf('a', 'web', 1));
  const conflictLogs = lines.filter((l) => l['level'] === 50 && l['service'] === 'a-b/web');
  t.equal(conflictLogs.length, 1);
  t.match(String(conflictLogs[0]?.['msg']), `port ${port} is already the health check port of Service a/web`);
  t.same(problems.map((p) => [p.kind, p.service, p.port]), [['conflict', 'a-b/web', port]]);

  // A steady conflict is not reported again.
  await hc.update(services(loser, { ...winner, localEndpoints: 0 }));
  t.equal(lines.filter((l) => l['level'] === 50).length, 1);
  t.equal(problems.length, 1);

  // The winner goes away: the other Service takes the port in place.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  await get(port, { agent });
  st = await hc.update(services(loser));
  t.same(st.conflicts, []);
  t.same(st.serving, [{ port, service: 'a-b/web', localEndpoints: 4 }]);
  const res = await get(port, { agent });
  t.equal(res.body, bodyOf('a-b', 'web', 4));
  t.ok(res.reused, 'the port changed hands without a restart');

  // Same namespace: by name.
  st = await hc.update(services(svc('zeta', port, 1), svc('alpha', port, 0)));
  t.same(st.conflicts, [{ port, service: 'default/zeta', winner: 'default/alpha' }]);
  t.equal((await get(port)).status, 503, 'default/alpha (0 endpoints) answers');
});

t.test('a port outside 1..65535 is reported, never bound', async (t) => {
  const { hc, problems } = start(t);
  const st = await hc.update(services(svc('big', 70000, 1), svc('neg', -1, 1)));
  t.same(st.serving, []);
  t.same(st.invalid, [{ port: 70000, service: 'default/big' }, { port: -1, service: 'default/neg' }]);
  t.same(problems.map((p) => p.kind), ['invalid-port', 'invalid-port']);
});

t.test('overlapping updates settle on the last one', async (t) => {
  const { hc } = start(t);
  const [a, b] = [await freePort(), await freePort()];
  const p1 = hc.update(services(svc('a', a, 1)));
  const p2 = hc.update(new Map());
  const p3 = hc.update(services(svc('b', b, 5)));
  const [s1, s2, s3] = await Promise.all([p1, p2, p3]);
  t.same(s3.serving, [{ port: b, service: 'default/b', localEndpoints: 5 }]);
  t.ok(s1 && s2);
  t.equal(await failure(a), 'ECONNREFUSED');
  t.equal((await get(b)).body, bodyOf('default', 'b', 5));
});

t.test('stop() closes every server and its connections; later updates do nothing', async (t) => {
  const { hc, lines } = start(t);
  const [a, b] = [await freePort(), await freePort()];
  await hc.update(services(svc('a', a, 1), svc('b', b, 0)));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await get(a, { agent })).status, 200);
  t.equal((await get(b)).status, 503);

  await hc.stop();
  t.equal(await failure(a), 'ECONNREFUSED');
  t.equal(await failure(b), 'ECONNREFUSED');
  let viaKeepAlive: string;
  try {
    viaKeepAlive = `answered ${(await get(a, { agent })).status}`;
  } catch (err) {
    viaKeepAlive = (err as NodeJS.ErrnoException).code ?? 'error';
  }
  t.not(viaKeepAlive, 'answered 200', 'the kept-alive connection is gone too');
  t.ok(lines.some((l) => l['msg'] === 'health check servers closed'));

  const st = await hc.update(services(svc('a', a, 1)));
  t.same(st.serving, []);
  t.equal(await failure(a), 'ECONNREFUSED');
  await hc.stop(); // idempotent
});

t.test('stop() while a bind is in flight leaves nothing listening', async (t) => {
  const { hc } = start(t);
  const port = await freePort();
  void hc.update(services(svc('web', port, 1)));
  // Let the queued change start its bind (a few microtasks), then stop before it is kept.
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await hc.stop();
  t.equal(await failure(port), 'ECONNREFUSED');
  t.same(hc.status().serving, []);
});

/** A DesiredServicePort of default/web with the given local backends (other fields fixed). */
function desiredPort(portName: string, healthCheckNodePort: number, localBackends: Backend[]): DesiredServicePort {
  return {
    key: `default/web:${portName}/TCP/IPv4`,
    namespace: 'default',
    name: 'web',
    portName,
    protocol: 'TCP',
    family: 'IPv4',
    frontends: [],
    clusterBackends: BackendList.of(localBackends),
    localBackends: BackendList.of(localBackends),
    internalLocal: false,
    externalLocal: true,
    affinityTimeoutSec: 0,
    healthCheckNodePort,
    loadBalancerSourceRanges: [],
  };
}

function backend(ip: string, port: number, o: { ready?: boolean; terminating?: boolean } = {}): Backend {
  const ready = o.ready ?? true;
  return { ip, port, nodeName: 'node-a', zone: null, local: true, ready, serving: true, terminating: o.terminating ?? false };
}

t.test('fed with healthCheckServices(state): unique local ready IPs over all ports, terminating ones not', async (t) => {
  const { hc } = start(t);
  const port = await freePort();
  const state = (http: Backend[], https: Backend[]): DesiredState => ({
    services: new Map([desiredPort('http', port, http), desiredPort('https', port, https)].map((p) => [p.key, p])),
  });
  const terminating = backend('10.0.0.3', 8080, { ready: false, terminating: true });

  await hc.update(healthCheckServices(state(
    [backend('10.0.0.1', 8080), backend('10.0.0.2', 8080), terminating],
    [backend('10.0.0.1', 8443)],
  )));
  let res = await get(port);
  t.equal(res.status, 200);
  t.equal(res.body, bodyOf('default', 'web', 2));

  await hc.update(healthCheckServices(state([terminating], [])));
  res = await get(port);
  t.equal(res.status, 503, 'only terminating endpoints here: the load balancer drains the node');
  t.equal(res.body, bodyOf('default', 'web', 0));
});
