import t from 'tap';
import { connect } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAdminServer } from '../../src/admin/server.js';
import { FakeBackend } from './fake-backend.js';
import { call, startFakeAdmin, tempDir } from './helpers.js';

const quiet = pino({ level: 'silent' });

t.test('every read route answers with the backend view as JSON', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t);
  const routes: [string, unknown][] = [
    ['/v1/status', await backend.status()],
    ['/v1/services', backend.services()],
    ['/v1/nat', backend.natDump()],
    ['/v1/ct', backend.conntrack()],
    ['/v1/affinity', backend.affinity()],
    ['/v1/counters', backend.counters()],
    ['/v1/maps', backend.maps()],
  ];
  for (const [path, expected] of routes) {
    const res = await call(socketPath, 'GET', path);
    t.equal(res.status, 200, path);
    t.match(res.headers['content-type'], /^application\/json/, `${path} content type`);
    t.same(res.body, expected, `${path} body`);
  }
  // A trailing slash is the same endpoint.
  t.equal((await call(socketPath, 'GET', '/v1/maps/')).status, 200);
});

t.test('nat filters: by service, by frontend, and clear errors', async (t) => {
  const { socketPath } = await startFakeAdmin(t);
  type Nat = { frontends: { ip: string; port: number; protocol: string }[]; backends: { backendId: number; ordinal: number }[] };
  const web = (await call(socketPath, 'GET', '/v1/nat?service=default/web')).body as Nat;
  t.same(web.frontends.map((f) => `${f.ip}:${f.port}`), ['10.96.0.10:80', '192.168.1.5:30080']);
  t.same(web.backends.map((b) => [b.backendId, b.ordinal]), [[10, 0], [10, 1], [10, 2]]);

  const dns = (await call(socketPath, 'GET', '/v1/nat?frontend=10.96.0.53:53')).body as Nat;
  t.same(dns.frontends.map((f) => f.protocol), ['TCP', 'UDP'], 'both protocols on one VIP:port');
  t.same(dns.backends.map((b) => b.backendId), [11]);

  const dnsPort = (await call(socketPath, 'GET', '/v1/nat?service=kube-system/dns:dns')).body as Nat;
  t.same(dnsPort.frontends.map((f) => f.protocol), ['UDP'], 'ns/name:port narrows to one port');

  const cases: [string, number, RegExp][] = [
    ['/v1/nat?service=default/nope', 404, /unknown service default\/nope/],
    ['/v1/nat?frontend=10.1.1.1:80', 404, /no frontend 10\.1\.1\.1:80/],
    ['/v1/nat?frontend=10.96.0.10', 400, /frontend: "10\.96\.0\.10" is not an address as IP:port/],
    ['/v1/nat?frontend=10.96.0.10:99999', 400, /port from 1 to 65535/],
    ['/v1/nat?service=web', 400, /service: "web" is not a service as namespace\/name/],
    ['/v1/nat?service=default/web&frontend=10.96.0.10:80', 400, /either service or frontend, not both/],
    ['/v1/nat?vip=1', 400, /unknown query parameter "vip" for \/v1\/nat \(accepted: service, frontend\)/],
    ['/v1/nat?service=default/web&service=default/web', 400, /"service" given more than once/],
    ['/v1/nat?service=', 400, /"service" is empty/],
    ['/v1/status?verbose=1', 400, /unknown query parameter "verbose" for \/v1\/status \(it takes none\)/],
  ];
  for (const [path, status, error] of cases) {
    const res = await call(socketPath, 'GET', path);
    t.equal(res.status, status, path);
    t.match(res.body, { error }, path);
  }
});

t.test('conntrack filters by service, client and backend', async (t) => {
  const { socketPath } = await startFakeAdmin(t);
  type Ct = { total: number; entries: { service: string; direction: string }[] };
  const get = async (q: string): Promise<Ct> => (await call(socketPath, 'GET', `/v1/ct${q}`)).body as Ct;
  t.equal((await get('')).entries.length, 3);
  t.same((await get('?service=kube-system/dns')).entries.map((e) => e.service), ['kube-system/dns:dns/UDP/IPv4']);
  t.same((await get('?client=10.244.1.20')).entries.map((e) => e.direction), ['forward', 'reverse']);
  t.equal((await get('?backend=10.244.2.7:8080')).entries.length, 2);
  t.equal((await get('?backend=10.244.2.7:9999')).entries.length, 0);
  t.equal((await get('?backend=10.244.2.9')).entries.length, 1);
  const both = await get('?service=default/web&client=10.244.1.21');
  t.same(both, { total: 3, entries: [] }, 'filters combine; total counts the whole map');

  for (const [q, error] of [
    ['?client=10.244.1', /client: "10\.244\.1" is not an IPv4 or IPv6 address/],
    ['?backend=nohost:80', /backend: "nohost:80" is not an address as IP or IP:port/],
    ['?service=default/nope', /unknown service default\/nope/],
  ] as const) {
    const res = await call(socketPath, 'GET', `/v1/ct${q}`);
    t.ok(res.status >= 400 && res.status < 500, `${q} → ${res.status}`);
    t.match(res.body, { error }, q);
  }
});

t.test('POST /v1/log-level and /v1/ct/flush, and malformed bodies', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t, { maxBodyBytes: 256 });
  let res = await call(socketPath, 'POST', '/v1/log-level', '{"level":"debug"}');
  t.equal(res.status, 200);
  t.same(res.body, { level: 'debug', previous: 'info' });
  t.equal(backend.level, 'debug');

  res = await call(socketPath, 'POST', '/v1/ct/flush', '{"service":"default/web"}');
  t.same(res.body, { service: 'default/web', deleted: 2 });
  t.same(backend.flushed, [{ namespace: 'default', name: 'web' }]);

  const bad: [string, string, number, RegExp, Record<string, string>?][] = [
    ['/v1/log-level', '{"level":', 400, /request body is not valid JSON/],
    ['/v1/log-level', '["debug"]', 400, /must be a JSON object like \{"level": \.\.\.\}/],
    ['/v1/log-level', '{}', 400, /body field "level" is required/],
    ['/v1/log-level', '{"level":"loud"}', 400, /body field "level": "loud" is not a log level/],
    ['/v1/log-level', '{"level":5}', 400, /"level" must be a string, got 5/],
    ['/v1/log-level', '{"level":"info","force":true}', 400, /unknown body field "force" for \/v1\/log-level \(accepted: level\)/],
    ['/v1/log-level', 'level=debug', 415, /must be application\/json, got application\/x-www-form-urlencoded/,
      { 'Content-Type': 'application/x-www-form-urlencoded' }],
    ['/v1/log-level', JSON.stringify({ level: 'x'.repeat(400) }), 413, /larger than 256 bytes/],
    ['/v1/ct/flush', '{"service":"default/nope"}', 404, /unknown service default\/nope/],
    ['/v1/ct/flush', '{"service":"nope"}', 400, /body field "service": "nope" is not a service/],
  ];
  for (const [path, body, status, error, headers] of bad) {
    res = await call(socketPath, 'POST', path, body, headers);
    t.equal(res.status, status, `${path} ${body.slice(0, 30)}`);
    t.match(res.body, { error }, `${path} ${body.slice(0, 30)}`);
  }
  t.equal(backend.level, 'debug', 'rejected requests changed nothing');
  t.equal(backend.flushed.length, 1);
});

t.test('unknown paths are 404, wrong methods 405 with Allow', async (t) => {
  const { socketPath } = await startFakeAdmin(t);
  let res = await call(socketPath, 'GET', '/v1/nothing');
  t.equal(res.status, 404);
  t.match(res.body, { error: /no such endpoint \/v1\/nothing \(endpoints: \/v1\/status, / });
  res = await call(socketPath, 'POST', '/v1/status', '{}');
  t.equal(res.status, 405);
  t.equal(res.headers.allow, 'GET');
  t.match(res.body, { error: '/v1/status accepts GET, not POST' });
  res = await call(socketPath, 'GET', '/v1/log-level');
  t.equal(res.status, 405);
  t.equal(res.headers.allow, 'POST');
  res = await call(socketPath, 'DELETE', '/v1/ct/flush');
  t.equal(res.status, 405);
});

t.test('socket 0600 in a 0700 directory; the file goes away on close', async (t) => {
  const { socketPath, server } = await startFakeAdmin(t);
  const st = lstatSync(socketPath);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o600, 'socket mode');
  t.equal(statSync(join(socketPath, '..')).mode & 0o777, 0o700, 'directory mode');
  t.equal(st.uid, process.getuid?.());
  await server.close();
  t.throws(() => lstatSync(socketPath), { code: 'ENOENT' });
});

t.test('an existing directory of ours is tightened; a shared one is refused', async (t) => {
  const dir = tempDir(t);
  const own = join(dir, 'own');
  mkdirSync(own, { mode: 0o755 });
  chmodSync(own, 0o755);
  const server = await startAdminServer({ socketPath: join(own, 'a.sock'), backend: new FakeBackend(), logger: quiet });
  t.teardown(() => server.close());
  t.equal(statSync(own).mode & 0o777, 0o700);

  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  await t.rejects(
    startAdminServer({ socketPath: join(shared, 'a.sock'), backend: new FakeBackend(), logger: quiet }),
    /admin socket directory .*shared is shared \(mode 1777/,
  );
  t.equal(statSync(shared).mode & 0o7777, 0o1777, 'a shared directory is never chmodded');
  await t.rejects(
    startAdminServer({ socketPath: join(dir, 'x'.repeat(120), 'a.sock'), backend: new FakeBackend(), logger: quiet }),
    /bytes; Unix sockets allow at most 107/,
  );
});

t.test('stale socket of a crashed agent is replaced; a live one or a regular file is not', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'admin.sock');
  // A process that listens and dies by SIGKILL leaves its socket file behind.
  const child = spawn(process.execPath, ['-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.ok(lstatSync(path).isSocket(), 'stale socket left behind');
  const server = await startAdminServer({ socketPath: path, backend: new FakeBackend(), logger: quiet });
  t.equal((await call(path, 'GET', '/v1/maps')).status, 200, 'new server took over the path');

  await t.rejects(startAdminServer({ socketPath: path, backend: new FakeBackend(), logger: quiet }),
    /another process is serving .*admin\.sock/);
  t.equal((await call(path, 'GET', '/v1/maps')).status, 200, 'the live server was left alone');
  await server.close();

  const file = join(dir, 'file.sock');
  writeFileSync(file, 'not a socket');
  await t.rejects(startAdminServer({ socketPath: file, backend: new FakeBackend(), logger: quiet }),
    /exists and is not a socket; refusing to replace it/);
});

t.test('a slow client (half a request) does not block others and is cut off', async (t) => {
  const { socketPath } = await startFakeAdmin(t, { headersTimeoutMs: 800, requestTimeoutMs: 1500 });
  const slow = connect(socketPath);
  await new Promise((resolve) => slow.once('connect', resolve));
  slow.write('GET /v1/status HTTP/1.1\r\nHost: sluice\r\n'); // headers never finish
  const received: Buffer[] = [];
  slow.on('data', (d: Buffer) => received.push(d));
  const closed = new Promise<number>((resolve) => {
    const started = Date.now();
    slow.once('close', () => resolve(Date.now() - started));
  });

  const started = Date.now();
  const res = await call(socketPath, 'GET', '/v1/services');
  t.equal(res.status, 200);
  t.ok(Date.now() - started < 500, 'other requests are answered at once');

  const ms = await closed;
  t.ok(ms < 4000, `slow client cut off after ${ms} ms`);
  t.match(Buffer.concat(received).toString(), /^HTTP\/1\.1 408 /, 'told why');

  // A client that sends headers but never the promised body is cut off as well.
  const lazy = connect(socketPath);
  await new Promise((resolve) => lazy.once('connect', resolve));
  lazy.write('POST /v1/log-level HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"le');
  const lazyMs = await new Promise<number>((resolve) => {
    const s = Date.now();
    lazy.resume();
    lazy.once('close', () => resolve(Date.now() - s));
  });
  t.ok(lazyMs < 4000, `body never finished: cut off after ${lazyMs} ms`);
});

t.test('a backend that does not answer in time gives 503 busy, and others still work', async (t) => {
  const backend = new FakeBackend();
  backend.stallMs = 3000;
  const { socketPath } = await startFakeAdmin(t, { backend, handlerTimeoutMs: 300 });
  const started = Date.now();
  const [status, maps] = await Promise.all([call(socketPath, 'GET', '/v1/status'), call(socketPath, 'GET', '/v1/maps')]);
  t.equal(status.status, 503);
  t.match(status.body, { error: /agent busy: GET \/v1\/status did not finish within 300 ms/ });
  t.equal(maps.status, 200);
  t.ok(Date.now() - started < 2000);
});

t.test('malformed HTTP gets a 400 and does not disturb the server', async (t) => {
  const { socketPath } = await startFakeAdmin(t);
  const sock = connect(socketPath);
  const reply = await new Promise<string>((resolve) => {
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('close', () => resolve(text));
    sock.write('THIS IS NOT HTTP\r\n\r\n');
  });
  t.match(reply, /^HTTP\/1\.1 400 /);
  t.match(reply, /"error":"bad request: /);
  t.equal((await call(socketPath, 'GET', '/v1/status')).status, 200);
});

t.test('only ever a Unix socket: a relative or numeric path is refused, nothing listens on TCP', async (t) => {
  for (const socketPath of ['19999', 'admin.sock']) {
    await t.rejects(startAdminServer({ socketPath, backend: new FakeBackend(), logger: quiet }), /is not an absolute path/, socketPath);
  }
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: 19999 });
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'no TCP listener on 127.0.0.1:19999');
});

t.test('a client that stops reading a large answer is dropped after the idle timeout', async (t) => {
  const dir = tempDir(t);
  class BigBackend extends FakeBackend {
    override conntrack() {
      const view = super.conntrack();
      const one = view.entries[0]!;
      return { ...view, entries: Array.from({ length: 100_000 }, () => one) };
    }
  }
  const server = await startAdminServer({ socketPath: join(dir, 'a.sock'), backend: new BigBackend(), logger: quiet, idleTimeoutMs: 300 });
  t.teardown(() => server.close());
  const connections = () => new Promise<number>((resolve) => server.server.getConnections((_e, n) => resolve(n)));
  const client = connect(join(dir, 'a.sock'));
  t.teardown(() => client.destroy());
  await new Promise<void>((resolve) => client.on('connect', () => resolve()));
  client.write('GET /v1/ct HTTP/1.1\r\nHost: x\r\n\r\n');
  client.pause(); // never read: the server's writes stall once the socket buffers are full
  // (A paused client cannot see the close until it reads, so the server's side is watched.)
  await new Promise((r) => setTimeout(r, 100));
  t.equal(await connections(), 1, 'the stalled connection is open at first');
  let open = 1;
  for (let i = 0; i < 30 && open > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    open = await connections();
  }
  t.equal(open, 0, 'the server dropped it after the idle timeout');
  t.equal((await call(join(dir, 'a.sock'), 'GET', '/v1/status')).status, 200, 'and still serves others');
});
