import t from 'tap';
import { Writable } from 'node:stream';
import {
  LogLevelError, createLogging, parseLogLevel, resolveLogLevel,
} from '../../src/log/logger.js';
import { drainLibbpfLog, startLibbpfLogPump } from '../../src/log/libbpf.js';
import type { LogLine } from '../../src/bpf/native.js';

/** A destination that keeps every line, parsed. */
function collector(): { stream: Writable & { write(s: string): boolean }; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      for (const line of String(chunk).split('\n')) {
        if (line === '') continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { stream, lines, raw };
}

t.test('lines are JSON with level names, component and name', async (t) => {
  const { stream, lines } = collector();
  const logging = createLogging({ level: 'info', destination: stream });
  logging.component('k8s').info({ kind: 'Service' }, 'watch started');
  logging.component('k8s').debug('not shown at info');
  t.equal(lines.length, 1);
  t.match(lines[0], { level: 'info', component: 'k8s', name: 'sluice-agent', kind: 'Service', msg: 'watch started' });
  t.match(lines[0]?.time, /^\d{4}-\d\d-\d\dT/);
});

t.test('setLevel applies to the root, existing children and grandchildren, and later ones', async (t) => {
  const { stream, lines } = collector();
  const logging = createLogging({ level: 'info', destination: stream });
  const child = logging.component('dataplane');
  const grandchild = child.child({ service: 'default/web' });
  grandchild.debug('hidden');
  t.equal(lines.length, 0);

  const result = logging.setLevel('debug');
  t.same(result, { level: 'debug', previous: 'info' });
  t.equal(logging.level, 'debug');
  child.debug('child debug');
  grandchild.debug('grandchild debug');
  logging.root.debug('root debug');
  logging.component('later').debug('later debug');
  t.same(lines.map((l) => l.msg), ['child debug', 'grandchild debug', 'root debug', 'later debug']);
  t.ok(logging.trackedChildren >= 3);

  logging.setLevel('error');
  grandchild.warn('hidden again');
  child.error('shown');
  t.same(lines.slice(4).map((l) => l.msg), ['shown']);
  t.throws(() => logging.setLevel('loud' as never), LogLevelError);
  t.equal(logging.level, 'error', 'a bad level leaves the current one');
});

t.test('level from flag, env, fallback; bad values name their source', async (t) => {
  t.equal(resolveLogLevel(undefined, {}), 'info');
  t.equal(resolveLogLevel(undefined, { SLUICE_LOG_LEVEL: 'debug' }), 'debug');
  t.equal(resolveLogLevel('WARN', { SLUICE_LOG_LEVEL: 'debug' }), 'warn');
  t.throws(() => resolveLogLevel(undefined, { SLUICE_LOG_LEVEL: 'chatty' }), /SLUICE_LOG_LEVEL: "chatty" is not a log level/);
  t.throws(() => resolveLogLevel('x', {}), /--log-level: "x" is not a log level \(one of fatal, error/);
  t.throws(() => parseLogLevel(3), /log level: 3 is not a log level/);
});

t.test('secrets never appear, whatever shape they arrive in', async (t) => {
  const { stream, raw, lines } = collector();
  const logging = createLogging({ level: 'trace', destination: stream });
  const log = logging.component('k8s');
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLWJ5dGVz';
  const opaque = 'opaque-credential-5e1f0c';
  const headers = { Authorization: `Bearer ${opaque}`, accept: 'application/json' };
  const kubeconfig = { users: [{ name: 'sa', user: { token: opaque, 'client-key-data': 'LS0tLS1CRUdJTi' } }] };
  const err = Object.assign(new Error(`request failed: Authorization: Bearer ${opaque}`), {
    options: { headers: { authorization: `Bearer ${opaque}` } },
  });

  log.info({ headers }, 'request');
  log.info({ req: { headers: { authorization: opaque } } }, 'req');
  log.info({ token: opaque, bearerToken: opaque }, 'fields');
  log.info({ kubeconfig }, 'deep');
  log.error({ err }, 'error object');
  log.warn(`message with Bearer ${opaque} inside`);
  log.info('service account token %s', token);
  log.child({ auth: `bearer ${opaque}` }).info('binding');

  t.equal(raw.length, 8);
  for (const line of raw) {
    t.notMatch(line, opaque, 'opaque credential masked');
    t.notMatch(line, token, 'JWT masked');
    t.notMatch(line, 'LS0tLS1CRUdJTi', 'client key masked');
  }
  // What is not secret survives, so logs stay useful.
  t.match(lines[0], { headers: { accept: 'application/json', Authorization: '[REDACTED]' } });
  t.match(lines[3], { kubeconfig: { users: [{ name: 'sa', user: { token: '[REDACTED]' } }] } });
  t.match(lines[4], { err: { type: 'Error', message: /request failed/ }, msg: 'error object' });
  t.match(lines[5]?.msg, 'message with Bearer [REDACTED] inside');
  // The caller's objects are not modified by the scrub.
  t.equal(kubeconfig.users[0]?.user.token, opaque);
  t.equal(headers.Authorization, `Bearer ${opaque}`);
});

t.test('libbpf lines are logged at their own level', async (t) => {
  const { stream, lines } = collector();
  const logging = createLogging({ level: 'debug', destination: stream });
  const queue: LogLine[] = [
    { level: 'warn', message: 'libbpf: map sl_ct4: pin path mismatch\n' },
    { level: 'info', message: 'libbpf: loaded object\n' },
    { level: 'debug', message: 'libbpf: sec tc: relo #0\n' },
    { level: 'debug', message: '\n' },
  ];
  const source = { drainLog: () => queue.splice(0) };
  t.equal(drainLibbpfLog(source, logging.component('libbpf')), 3);
  t.same(lines.map((l) => [l.level, l.msg, l.component]), [
    ['warn', 'libbpf: map sl_ct4: pin path mismatch', 'libbpf'],
    ['info', 'libbpf: loaded object', 'libbpf'],
    ['debug', 'libbpf: sec tc: relo #0', 'libbpf'],
  ]);

  // At info, libbpf's debug chatter is filtered like any other debug line.
  logging.setLevel('info');
  queue.push({ level: 'debug', message: 'hidden' }, { level: 'warn', message: 'visible' });
  const stop = startLibbpfLogPump(source, logging.component('libbpf'), 60_000);
  stop(); // the final drain on stop
  t.same(lines.slice(3).map((l) => l.msg), ['visible']);

  const broken = { drainLog: (): LogLine[] => { throw new Error('addon gone'); } };
  t.equal(drainLibbpfLog(broken, logging.root), 0);
  t.match(lines.at(-1), { level: 'warn', msg: 'could not drain the libbpf log queue' });
});
