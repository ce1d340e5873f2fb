import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runSluicectl, USAGE } from '../../src/cli/sluicectl.js';
import type { SluicectlIo } from '../../src/cli/sluicectl.js';
import { headerOf } from '../../src/cli/format-views.js';
import { formatHostPort } from '../../src/admin/filters.js';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { DNS_UDP, WEB } from '../admin/fake-backend.js';
import { NOW_NS, scenarioTables } from '../admin/fake-tables.js';
import { call, startFakeAdmin, tempDir } from '../admin/helpers.js';
import { parseTable, sections } from './table-parse.js';
import { applyPrivilegeProblem } from '../helpers/privileges.js';

interface Result {
  code: number;
  out: string;
  err: string;
}

async function ctl(argv: string[], extra: Partial<SluicectlIo> = {}): Promise<Result> {
  let out = '';
  let err = '';
  const code = await runSluicectl(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
    ...extra,
  });
  return { code, out, err };
}

/** The table without its "N entries" footer. */
const body = (text: string): string => text.replace(/^\d+( of \d+)? (entries|service ports)\n/m, '');

t.test('every read command: JSON is exactly the agent\'s answer, the table says the same', async (t) => {
  const { socketPath } = await startFakeAdmin(t);
  const s = ['--socket', socketPath];
  const commands: [string[], string][] = [
    [['status'], '/v1/status'], [['services'], '/v1/services'], [['nat', 'dump'], '/v1/nat'], [['ct', 'dump'], '/v1/ct'],
    [['aff', 'dump'], '/v1/affinity'], [['counters'], '/v1/counters'], [['maps'], '/v1/maps'],
  ];
  for (const [argv, path] of commands) {
    const json = await ctl([...argv, ...s, '-o', 'json']);
    t.equal(json.code, 0, `${argv.join(' ')} -o json`);
    t.equal(json.err, '');
    t.same(JSON.parse(json.out), (await call(socketPath, 'GET', path)).body, `${argv.join(' ')} JSON`);
    const table = await ctl([...s, ...argv]);
    t.equal(table.code, 0, `${argv.join(' ')} table`);
    t.ok(table.out.length > 0);
  }
});

t.test('status table: JSON paths as labels, programs and errors', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t);
  const { out } = await ctl(['status', '--socket', socketPath]);
  const st = await backend.status();
  t.match(out, /^version: +0\.1\.0$/m);
  t.match(out, /^agentRunning: +yes$/m);
  t.match(out, /^sync\.state: +synced$/m);
  t.match(out, /^sync\.lastSyncDurationMs: +12\.5$/m);
  t.match(out, /^sync\.servicePortsProgrammed: +3$/m);
  const sec = sections(out);
  const programs = parseTable(sec.PROGRAMS ?? '');
  t.same(programs.headers, ['PROGRAM', 'HOOK', 'TARGET', 'DIRECTION', 'PROG_ID', 'ATTACHED', 'ERROR']);
  t.same(programs.rows.map((r) => [r.PROGRAM, r.TARGET, r.PROG_ID]), st.programs.map((p) => [p.program, p.target, String(p.progId)]));
  t.match(parseTable(sec.ERRORS ?? '').rows, [{ COMPONENT: 'model', OBJECT: 'default/bad', MESSAGE: 'spec.ports[0].port: 0 is not a port' }]);
  t.match(sec.CONFIG, /^connectTimeLb: +tcp-udp$/m);
  t.match(sec.CONFIG, /^interfacePatterns: +veth\*$/m);
});

t.test('services table lists every frontend and backend of each service port', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t);
  const { out } = await ctl(['services', '--socket', socketPath]);
  t.match(out, /^3 service ports$/m);
  const table = parseTable(body(out));
  t.same(table.headers, ['SERVICE', 'SVC_ID', 'BACKEND_ID', 'CLUSTER_COUNT', 'LOCAL_COUNT', 'FLAGS', 'FRONTEND', 'KIND', 'BACKEND', 'SET', 'BACKEND_FLAGS']);
  // Rows belong to the service named above them.
  let current = '';
  const seen = new Map<string, { frontends: string[]; backends: string[]; svcId: string }>();
  for (const row of table.rows) {
    if (row.SERVICE) {
      current = row.SERVICE;
      seen.set(current, { frontends: [], backends: [], svcId: row.SVC_ID ?? '' });
    }
    const entry = seen.get(current);
    if (row.FRONTEND) entry?.frontends.push(`${row.FRONTEND} ${row.KIND}`);
    if (row.BACKEND && row.BACKEND !== '(none)') entry?.backends.push(`${row.BACKEND} ${row.SET}`);
  }
  for (const svc of backend.services().services) {
    const got = seen.get(svc.key);
    t.ok(got, svc.key);
    t.equal(got?.svcId, String(svc.svcId));
    t.same(got?.frontends, svc.frontends.map((f) => `${formatHostPort(f)} ${f.kind}`), `${svc.key} frontends`);
    t.same(got?.backends, svc.backends.map((b) => `${formatHostPort(b)} ${b.set}`), `${svc.key} backends`);
  }
  t.match(out, /kube-system\/dns:dns-tcp\/TCP\/IPv4 +3 +12 +0 +0 +- +10\.96\.0\.53:53 +ClusterIP +\(none\)/);
});

t.test('tables use the JSON names and numbers: counters, maps, ct, aff, nat', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t);
  const s = ['--socket', socketPath];

  const counters = sections((await ctl(['counters', ...s])).out);
  const svcRows = parseTable(counters.SERVICES ?? '').rows;
  t.same(svcRows, backend.counters().services.map((c) => ({
    SERVICE: c.service, SVC_ID: String(c.svcId), PACKETS: String(c.packets), BYTES: String(c.bytes),
    CONNECTIONS: String(c.connections), REJECTED: String(c.rejected),
  })));
  t.same(parseTable(counters.DROPS ?? '').rows, backend.counters().drops.map((d) => ({ REASON: d.reason, CODE: String(d.code), PACKETS: String(d.packets) })));

  const maps = parseTable((await ctl(['maps', ...s])).out);
  t.same(maps.headers, ['name', 'type', 'entries', 'maxEntries', 'fill'].map(headerOf));
  t.same(maps.rows, backend.maps().maps.map((m) => ({
    NAME: m.name, TYPE: m.type, ENTRIES: String(m.entries), MAX_ENTRIES: String(m.maxEntries), FILL: String(m.fill),
  })));

  const ct = await ctl(['ct', 'dump', ...s]);
  t.match(ct.out, /^3 of 3 entries$/m);
  t.same(parseTable(body(ct.out)).rows, backend.conntrack().entries.map((e) => ({
    PROTOCOL: e.protocol, DIRECTION: e.direction, STATE: e.state, CLIENT: formatHostPort(e.client),
    FRONTEND: formatHostPort(e.frontend), BACKEND: formatHostPort(e.backend), SERVICE: e.service,
    AGE_SEC: String(e.ageSec), IDLE_SEC: String(e.idleSec), FLAGS: '-',
  })));

  const aff = await ctl(['aff', 'dump', ...s]);
  t.same(parseTable(body(aff.out)).rows, [{
    SERVICE: WEB, CLIENT: '10.244.1.20', BACKEND: '10.244.2.7:8080', IDLE_SEC: '2', TIMEOUT_SEC: '10800', EXPIRED: 'no',
  }]);

  const nat = sections((await ctl(['nat', 'dump', '10.96.0.53:53', ...s])).out);
  t.same(parseTable(nat.FRONTENDS ?? '').rows.map((r) => [r.FRONTEND, r.PROTOCOL, r.SVC_ID, r.BACKEND_ID, r.COUNT, r.SERVICE]), [
    ['10.96.0.53:53', 'TCP', '3', '12', '0', 'kube-system/dns:dns-tcp/TCP/IPv4'],
    ['10.96.0.53:53', 'UDP', '2', '11', '1', DNS_UDP],
  ]);
  t.same(parseTable(nat.BACKENDS ?? '').rows, [{ BACKEND_ID: '11', ORDINAL: '0', BACKEND: '10.244.2.9:53', NODE_IP: '-', FLAGS: 'terminating' }]);
});

t.test('filters and writes reach the agent', async (t) => {
  const { socketPath, backend } = await startFakeAdmin(t);
  const s = ['--socket', socketPath, '-o', 'json'];
  let r = await ctl(['ct', 'dump', '--service', 'kube-system/dns', ...s]);
  t.same((JSON.parse(r.out) as { entries: { service: string }[] }).entries.map((e) => e.service), [DNS_UDP]);
  r = await ctl(['ct', 'dump', '--client=10.244.1.20', '--backend', '10.244.2.7:8080', ...s]);
  t.equal((JSON.parse(r.out) as { entries: unknown[] }).entries.length, 2);
  r = await ctl(['nat', 'dump', 'default/web', ...s]);
  t.equal((JSON.parse(r.out) as { frontends: unknown[] }).frontends.length, 2);

  r = await ctl(['ct', 'flush', '--service', 'default/web', '--socket', socketPath]);
  t.equal(r.code, 0);
  t.match(r.out, /^deleted: +2$/m);
  t.same(backend.flushed, [{ namespace: 'default', name: 'web' }]);
  r = await ctl(['log-level', 'debug', ...s]);
  t.same(JSON.parse(r.out), { level: 'debug', previous: 'info' });
  t.equal(backend.level, 'debug');

  // The agent's own refusals are errors (exit 1) with its message.
  r = await ctl(['nat', 'dump', 'default/nope', ...s]);
  t.equal(r.code, 1);
  t.equal(r.out, '');
  t.match(r.err, /^sluicectl: unknown service default\/nope: it is not programmed on this node$/m);
});

t.test('usage errors exit 2 with a clear message; --help exits 0', async (t) => {
  const help = await ctl(['--help']);
  t.equal(help.code, 0);
  t.equal(help.out, USAGE);
  t.match(USAGE, /Exit codes: 0 success, 1 error .*, 2 usage error/);
  const cases: [string[], RegExp][] = [
    [[], /no command given/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['status', '--verbose'], /unknown option --verbose/],
    [['status', 'extra'], /status: unexpected argument extra/],
    [['status', '-o', 'yaml'], /-o: "yaml" is not table or json/],
    [['status', '--socket'], /--socket needs a value/],
    [['status', '--timeout', 'soon'], /--timeout: "soon" is not a number of milliseconds/],
    [['nat'], /expected "nat dump", got "nat"/],
    [['nat', 'dump', 'web'], /frontend: "web" is not an address as IP:port/],
    [['nat', 'dump', 'default/Web'], /service: "default\/Web" is not a service as namespace\/name/],
    [['ct', 'dump', '--client', '10.1'], /client: "10\.1" is not an IPv4 or IPv6 address/],
    [['ct', 'dump', '--backend', '10.0.0.1:0'], /backend: "10\.0\.0\.1:0" is not .* with a port from 1 to 65535/],
    [['ct', 'flush'], /ct flush: --service ns\/name is required/],
    [['ct', 'flush', '--service', 'default/web', '--client', '10.0.0.1'], /ct flush: unknown option --client/],
    [['ct', 'drop'], /expected "ct dump" or "ct flush", got "ct drop"/],
    [['maps', '--service', 'a/b'], /maps: unknown option --service/],
    [['log-level'], /log-level: give a level \(fatal, error, warn, info, debug, trace, silent\)/],
    [['log-level', 'loud'], /log-level: "loud" is not a log level/],
    [['status', '--socket', 'a', '--socket', 'b'], /--socket given more than once/],
  ];
  for (const [argv, message] of cases) {
    const r = await ctl(argv);
    t.equal(r.code, 2, argv.join(' ') || '(nothing)');
    t.match(r.err, message, argv.join(' ') || '(nothing)');
    t.match(r.err, /run "sluicectl --help" for usage/);
  }
});

t.test('agent down: read-only commands read the pinned maps and say so; writes fail', async (t) => {
  const missing = join(tempDir(t), 'no-agent.sock');
  const tables = scenarioTables();
  let opened = 0;
  let closed = 0;
  const openPinned = (pinDir: string) => {
    opened++;
    t.equal(pinDir, '/sys/fs/bpf/other');
    return { backend: new MapsAdminBackend({ tables, pinDir, nowNs: () => NOW_NS }), close: () => void closed++ };
  };
  const s = ['--socket', missing, '--pin-dir', '/sys/fs/bpf/other'];
  let r = await ctl(['services', ...s, '-o', 'json'], { openPinned });
  t.equal(r.code, 0);
  t.match(r.err, `agent is not running: no admin socket at ${missing}`);
  t.match(r.err, 'agent is not running; showing pinned maps read-only from /sys/fs/bpf/other');
  t.same((JSON.parse(r.out) as { services: { key: string }[] }).services.map((x) => x.key), [WEB, DNS_UDP]);

  r = await ctl(['status', ...s], { openPinned });
  t.match(r.out, /^agentRunning: +no$/m);
  // Filters and their errors behave exactly as the agent's.
  r = await ctl(['ct', 'dump', '--backend', '10.244.2.9', ...s, '-o', 'json'], { openPinned });
  t.same((JSON.parse(r.out) as { entries: { service: string }[] }).entries.map((e) => e.service), [DNS_UDP]);
  r = await ctl(['nat', 'dump', 'default/nope', ...s], { openPinned });
  t.equal(r.code, 1);
  t.match(r.err, /unknown service default\/nope/);
  t.equal(opened, closed, 'every opened map set was closed');

  for (const argv of [['ct', 'flush', '--service', 'default/web'], ['log-level', 'debug']]) {
    r = await ctl([...argv, ...s], { openPinned });
    t.equal(r.code, 1, argv.join(' '));
    t.match(r.err, /agent is not running: no admin socket at .*; ".*" needs a running agent \(pinned maps are read-only here\)/);
  }

  // Without pinned maps either, say both things.
  r = await ctl(['maps', '--socket', missing, '--pin-dir', join(tempDir(t), 'nothing-pinned')]);
  t.equal(r.code, 1);
  t.match(r.err, /^sluicectl: agent is not running: no admin socket at .*; and no pinned maps: .*nothing-pinned does not exist/);
  t.notMatch(r.err, 'showing pinned maps', 'no claim to show maps that are not there');
});

t.test('a stale socket counts as agent down; a busy agent is a timeout error', async (t) => {
  const { socketPath, backend, server } = await startFakeAdmin(t);
  backend.stallMs = 2000;
  const busy = await ctl(['status', '--socket', socketPath, '--timeout', '300']);
  t.equal(busy.code, 1);
  t.match(busy.err, /agent did not answer within 300 ms on .* \(busy or stuck\?\)/);

  // Leave a socket file nobody listens on (as a SIGKILLed agent would).
  const stale = join(tempDir(t), 'stale.sock');
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  const r = await ctl(['maps', '--socket', stale, '--pin-dir', '/nonexistent-sluice-pins']);
  t.match(r.err, /agent is not running: nothing listens on .*stale\.sock/);
  t.equal(r.code, 1, 'no pinned maps either');
  await server.close();
});

t.test('a non-root user gets a clear permission error', async (t) => {
  // Only root can switch to nobody; this needs no BPF, so it is not requirePrivileges.
  const problem = process.getuid?.() === 0 ? null : 'not running as root (needed to switch to nobody)';
  if (!applyPrivilegeProblem(t, problem, process.env.CI === 'true')) return;
  const { socketPath } = await startFakeAdmin(t);
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath,
    '--import', '@tapjs/typescript/import', fromPackageRoot('src', 'cli', 'sluicectl.ts'), 'status', '--socket', socketPath], {
    cwd: fromPackageRoot(),
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', NODE_OPTIONS: '' },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 1, `exit code (stderr: ${err})`);
  t.equal(out, '');
  t.match(err, `sluicectl: permission denied on ${socketPath}: the admin socket is root-only; run sluicectl as root`);
});
