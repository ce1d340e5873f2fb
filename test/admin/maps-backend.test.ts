import t from 'tap';
import { pino } from 'pino';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { startAdminServer } from '../../src/admin/server.js';
import { AdminError } from '../../src/admin/types.js';
import { NOW_NS, scenarioTables } from './fake-tables.js';
import { call, tempDir } from './helpers.js';
import { join } from 'node:path';

function backend(opts: Partial<ConstructorParameters<typeof MapsAdminBackend>[0]> = {}) {
  const tables = scenarioTables();
  return { tables, backend: new MapsAdminBackend({ tables, pinDir: '/sys/fs/bpf/x', nowNs: () => NOW_NS, ...opts }) };
}

t.test('services group frontends and the served part of the backend block', async (t) => {
  const { backend: b } = backend();
  const { services } = b.services();
  t.same(services.map((s) => [s.key, s.svcId, s.backendId]), [
    ['default/web:http/TCP/IPv4', 1, 10],
    ['kube-system/dns:dns/UDP/IPv4', 2, 11],
  ]);
  const web = services[0];
  t.match(web, {
    namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP', family: 'IPv4',
    flags: ['affinity'], affinityTimeoutSec: 10800, clusterCount: 2, localCount: 1,
    frontends: [{ ip: '10.96.0.10', port: 80, kind: 'ClusterIP' }, { ip: '192.168.1.5', port: 30080, kind: 'External' }],
  });
  t.same(web?.backends, [
    { ip: '10.244.1.5', port: 8080, ordinal: 0, set: 'cluster', nodeIp: '192.168.1.5', local: true, terminating: false },
    { ip: '10.244.2.7', port: 8080, ordinal: 1, set: 'cluster', nodeIp: '192.168.1.6', local: false, terminating: false },
    { ip: '10.244.1.5', port: 8080, ordinal: 2, set: 'local', nodeIp: '192.168.1.5', local: true, terminating: false },
  ], 'ordinal 3 lies beyond count + localCount and is not listed');
  t.match(services[1]?.backends, [{ ip: '10.244.2.9', port: 53, terminating: true, nodeIp: '' }]);

  const kinds = backend({ frontendKind: (_k, _ip, port) => (port === 30080 ? 'NodePort' : undefined) }).backend;
  t.same(kinds.services().services[0]?.frontends.map((f) => f.kind), ['ClusterIP', 'NodePort']);
});

t.test('nat dump lists raw entries, leftovers included', async (t) => {
  const { backend: b } = backend();
  const nat = b.natDump();
  t.equal(nat.frontends.length, 3);
  t.match(nat.frontends.find((f) => f.port === 30080), {
    ip: '192.168.1.5', protocol: 'TCP', svcId: 1, backendId: 10, count: 2, localCount: 1,
    flags: ['affinity', 'external'], affinityTimeoutSec: 10800, service: 'default/web:http/TCP/IPv4',
  });
  t.same(nat.backends.map((x) => `${x.backendId}/${x.ordinal}=${x.ip}:${x.port}[${x.flags.join(',')}]`), [
    '10/0=10.244.1.5:8080[local]', '10/1=10.244.2.7:8080[]', '10/2=10.244.1.5:8080[local]', '10/3=10.244.9.9:8080[]',
    '11/0=10.244.2.9:53[terminating]',
  ]);
});

t.test('conntrack entries read the same way in both directions, with ages', async (t) => {
  const { backend: b } = backend();
  const ct = b.conntrack();
  t.equal(ct.total, 3);
  const web = ct.entries.filter((e) => e.svcId === 1);
  t.same(web.map((e) => e.direction), ['forward', 'reverse']);
  for (const e of web) {
    t.match(e, {
      protocol: 'TCP', state: 'ESTABLISHED', service: 'default/web:http/TCP/IPv4', ageSec: 30, idleSec: 2,
      client: { ip: '10.244.1.20', port: 40000 }, frontend: { ip: '10.96.0.10', port: 80 }, backend: { ip: '10.244.2.7', port: 8080 },
    }, e.direction);
  }
  t.match(ct.entries.find((e) => e.svcId === 2), { protocol: 'UDP', state: 'NEW', ageSec: 5 });

});

t.test('affinity knows each service timeout and marks expired entries', async (t) => {
  const { backend: b } = backend();
  t.same(b.affinity().entries, [
    { svcId: 1, service: 'default/web:http/TCP/IPv4', client: '10.244.1.20', backend: { ip: '10.244.2.7', port: 8080 }, idleSec: 20, timeoutSec: 10800, expired: false },
    { svcId: 2, service: 'kube-system/dns:dns/UDP/IPv4', client: '10.244.1.99', backend: { ip: '10.244.2.9', port: 53 }, idleSec: 40, timeoutSec: 0, expired: true },
  ]);
  // Idle longer than the service's timeout: expired although the service still has affinity.
  const { tables, backend: b2 } = backend();
  tables.affinity.set({ svc_id: 1, client_addr: '10.244.1.77' }, { last_used_ns: NOW_NS - 10_801n * 1_000_000_000n, backend_addr: '10.244.1.5', backend_port: 8080 });
  t.match(b2.affinity().entries.find((e) => e.client === '10.244.1.77'), { idleSec: 10801, timeoutSec: 10800, expired: true });
});

t.test('counters are summed over CPUs; drops list every reason', async (t) => {
  const { backend: b } = backend();
  const c = b.counters();
  t.same(c.services.map((s) => [s.service, s.packets, s.bytes, s.connections, s.rejected]), [
    ['default/web:http/TCP/IPv4', 15, 1500, 3, 0],
    ['kube-system/dns:dns/UDP/IPv4', 3, 300, 3, 1],
  ]);
  t.match(c.services[0], { namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP', family: 'IPv4' });
  t.same(c.drops.map((d) => [d.reason, d.packets]), [
    ['no_backend', 7], ['no_local_backend', 0], ['backend_missing', 0], ['ct_full', 0], ['csum', 0], ['malformed', 1], ['src_range', 0],
    ['unknown_port', 0], ['snat_ports', 0], ['no_route', 0], ['ttl', 0], ['tunnel_source', 0], ['tunnel_mtu', 0],
  ]);
});

t.test('map fill levels use the pinned names', async (t) => {
  const { backend: b } = backend();
  const byName = Object.fromEntries(b.maps().maps.map((m) => [m.name, m]));
  t.match(byName.sl_ct4, { type: 'lru_hash', entries: 3, maxEntries: 524288, fill: 0 });
  t.match(byName.sl_frontends4, { type: 'hash', entries: 3, maxEntries: 65536 });
  t.match(byName.sl_drop_counters, { type: 'percpu_array', entries: 2, maxEntries: 16 }, 'full name, not the kernel\'s 15 characters');
  t.match(byName.sl_svc_counters, { entries: 2 });
  t.match(byName.sl_svc_meta, { type: 'array', entries: 2, maxEntries: 65536 });
  t.equal(byName.sl_backends4?.fill, Math.round((5 / 262144) * 10000) / 10000);
});

t.test('status and writes: read-only without the agent, delegated with it', async (t) => {
  const { backend: ro } = backend();
  t.match(ro.status(), { agentRunning: false, pinDir: '/sys/fs/bpf/x', sync: { servicePortsProgrammed: 2 } });
  t.throws(() => ro.setLogLevel('debug'), AdminError);
  t.throws(() => ro.flushConntrack({ namespace: 'default', name: 'web' }), { status: 503, message: /read-only/ });

  const flushed: number[][] = [];
  const { backend: rw } = backend({
    flushConntrack: (ids) => {
      flushed.push([...ids]);
      return 2;
    },
    setLogLevel: (level) => ({ level, previous: 'info' }),
  });
  t.same(rw.flushConntrack({ namespace: 'default', name: 'web' }), { service: 'default/web', deleted: 2 });
  t.same(flushed, [[1]]);
  t.throws(() => rw.flushConntrack({ namespace: 'x', name: 'y' }), { status: 404, message: /unknown service x\/y/ });
  t.same(rw.setLogLevel('warn'), { level: 'warn', previous: 'info' });
});

t.test('served over the admin socket, the server filters the maps backend too', async (t) => {
  const { backend: b } = backend();
  const server = await startAdminServer({ socketPath: join(tempDir(t), 'a.sock'), backend: b, logger: pino({ level: 'silent' }) });
  t.teardown(() => server.close());
  const res = await call(server.socketPath, 'GET', '/v1/ct?backend=10.244.2.7:8080');
  t.equal((res.body as { entries: unknown[] }).entries.length, 2);
  const nat = await call(server.socketPath, 'GET', '/v1/nat?service=kube-system/dns');
  t.same((nat.body as { backends: { backendId: number }[] }).backends.map((x) => x.backendId), [11]);
  const flush = await call(server.socketPath, 'POST', '/v1/ct/flush', '{"service":"default/web"}');
  t.equal(flush.status, 503);
});
