// sluicectl and /metrics against the real datapath carrying real traffic: the TC programs
// attached in the test bed's node namespace, a Service programmed by the real writer, a client
// pod holding a TCP connection open through the ClusterIP. The admin server and the metrics
// registry read the run's pinned maps exactly as the agent wires them. Asserts that `ct dump`
// shows that connection with the right service, client and backend, that counters move with
// traffic in both sluicectl and /metrics, and that a flush removes the service's entries.
import t from 'tap';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { startAdminServer } from '../../src/admin/server.js';
import { loadNative } from '../../src/bpf/native.js';
import { runSluicectl } from '../../src/cli/sluicectl.js';
import { flushServiceConntrack } from '../../src/dataplane/flow-cleanup.js';
import { openPinnedTables } from '../../src/dataplane/native-tables.js';
import { AgentHealth } from '../../src/metrics/health.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { collectFromDataplane, SluiceMetrics } from '../../src/metrics/sluice-metrics.js';
import { spawnInNetns } from '../../src/testbed/netns.js';
import { backendOf, clusterIpService, createBed, desiredState } from '../traffic/bed.js';
import { tempDir } from '../admin/helpers.js';
import { parsePrometheus, sampleValue } from '../metrics/prom-parse.js';
import { parseTable } from './table-parse.js';

const VIP = '10.96.0.10';
const PORT = 80;
const BACKEND_PORT = 8080;
const WEB = 'default/web:/TCP/IPv4';
const WEB_LABELS = { namespace: 'default', name: 'web', port: '', protocol: 'TCP', family: 'IPv4' };

interface CtEntry {
  direction: string;
  state: string;
  service: string;
  client: { ip: string; port: number };
  frontend: { ip: string; port: number };
  backend: { ip: string; port: number };
}

// A plain-JS client (no TypeScript loader inside the namespace): connects, prints the echo
// server's greeting with its own local port, then keeps the connection open.
const HOLD_OPEN = `
const s = require('net').connect(${PORT}, '${VIP}');
s.once('data', (d) => { console.log(JSON.stringify({ localPort: s.localPort, hello: JSON.parse(String(d).split('\\n')[0]) })); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
setInterval(() => {}, 1000);
`;

t.test('sluicectl and /metrics on a live datapath', async (t) => {
  const bed = await createBed(t, { pods: ['client', 'be0', 'be1'], ctlb: 'off', tc: true });
  if (!bed) return;
  await bed.startBackends(['be0', 'be1'], BACKEND_PORT);
  bed.writer.apply(desiredState(clusterIpService({
    name: 'web', vip: VIP, port: PORT, protocol: 'TCP', backends: ['be0', 'be1'].map((n) => backendOf(bed.pod(n), BACKEND_PORT)),
  })));

  // The admin and metrics side, over the run's pinned maps (as the agent wires it).
  const pinned = openPinnedTables(loadNative(), bed.pinDir);
  t.teardown(() => pinned.close());
  const backend = new MapsAdminBackend({
    tables: pinned.tables,
    pinDir: bed.pinDir,
    flushConntrack: (ids) => flushServiceConntrack(pinned.tables, ids),
  });
  const admin = await startAdminServer({ socketPath: join(tempDir(t), 'admin.sock'), backend, logger: pino({ level: 'silent' }) });
  t.teardown(() => admin.close());
  const metrics = new SluiceMetrics();
  collectFromDataplane(metrics, backend);
  const metricsServer = await startMetricsServer({ address: '127.0.0.1:0', registry: metrics.registry, health: new AgentHealth() });
  t.teardown(() => metricsServer.close());

  const ctl = async (...argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runSluicectl([...argv, '--socket', admin.socketPath], {
      stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {},
    });
    t.equal(code, 0, `sluicectl ${argv.join(' ')} ${err}`);
    return out;
  };
  const scrape = () => new Promise<ReturnType<typeof parsePrometheus>>((resolve, reject) => {
    const [host, port] = metricsServer.address.split(':');
    request({ host, port: Number(port), path: '/metrics' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(parsePrometheus(text)));
    }).on('error', reject).end();
  });

  // A connection the client pod holds open through the ClusterIP.
  const holder = bed.run.own(spawnInNetns(bed.clientPod.ns, [process.execPath, '-e', HOLD_OPEN]), 'hold-open client');
  const first = await new Promise<{ localPort: number; hello: { pod: string; peer: { address: string; port: number } } }>((resolve, reject) => {
    createInterface({ input: holder.stdout! }).once('line', (l) => resolve(JSON.parse(l) as never));
    holder.once('exit', (code) => reject(new Error(`hold-open client exited ${code}`)));
  });
  const backendIp = bed.pod(first.hello.pod).ip;

  await t.test('ct dump shows the live connection with its service, client and backend', async (t) => {
    const ct = JSON.parse(await ctl('ct', 'dump', '--client', bed.clientPod.ip, '-o', 'json')) as { entries: CtEntry[] };
    const mine = ct.entries.filter((e) => e.client.port === first.localPort);
    t.same(mine.map((e) => e.direction).sort(), ['forward', 'reverse'], 'both directions of the flow');
    for (const e of mine) {
      t.match(e, {
        state: 'ESTABLISHED', service: WEB,
        client: { ip: bed.clientPod.ip, port: first.localPort },
        frontend: { ip: VIP, port: PORT },
        backend: { ip: backendIp, port: BACKEND_PORT },
      }, `${e.direction} entry`);
    }
    t.same(first.hello.peer, { address: bed.clientPod.ip, port: first.localPort }, 'the backend saw the same client address');

    const rows = parseTable((await ctl('ct', 'dump', '--backend', `${backendIp}:${BACKEND_PORT}`)).replace(/^\d+ of \d+ entries\n/m, '')).rows;
    t.ok(rows.some((r) => r.CLIENT === `${bed.clientPod.ip}:${first.localPort}` && r.SERVICE === WEB && r.STATE === 'ESTABLISHED'),
      'the table shows the same flow');
  });

  await t.test('services and nat dump show what the writer programmed', async (t) => {
    const { services } = JSON.parse(await ctl('services', '-o', 'json')) as { services: { key: string; frontends: unknown[]; backends: { ip: string; port: number }[] }[] };
    const web = services.find((s) => s.key === WEB);
    t.same(web?.frontends, [{ ip: VIP, port: PORT, kind: 'ClusterIP' }]);
    t.same(web?.backends.map((b) => `${b.ip}:${b.port}`).sort(), ['be0', 'be1'].map((n) => `${bed.pod(n).ip}:${BACKEND_PORT}`).sort());
    const nat = JSON.parse(await ctl('nat', 'dump', `${VIP}:${PORT}`, '-o', 'json')) as { frontends: { count: number }[]; backends: unknown[] };
    t.equal(nat.frontends[0]?.count, 2);
    t.equal(nat.backends.length, 2);
  });

  await t.test('counters move with traffic, the same in sluicectl and /metrics', async (t) => {
    const read = async () => {
      const c = JSON.parse(await ctl('counters', '-o', 'json')) as { services: { service: string; packets: number; connections: number }[] };
      return c.services.find((s) => s.service === WEB);
    };
    const before = await read();
    const m0 = await scrape();
    t.equal(sampleValue(m0, 'sluice_service_connections_total', WEB_LABELS), before?.connections, 'metrics = sluicectl');
    t.ok((before?.connections ?? 0) >= 1, 'the held connection was counted');

    const results = await bed.client.tcp({ host: VIP, port: PORT }, 20);
    t.equal(results.filter((a) => !a.ok).length, 0, 'traffic flowed');
    const after = await read();
    const m1 = await scrape();
    t.equal((after?.connections ?? 0) - (before?.connections ?? 0), 20, '20 new connections counted');
    t.ok((after?.packets ?? 0) > (before?.packets ?? 0), 'packets moved');
    t.equal(sampleValue(m1, 'sluice_service_connections_total', WEB_LABELS), after?.connections);
    t.equal(sampleValue(m1, 'sluice_service_packets_total', WEB_LABELS), after?.packets);
    t.ok((sampleValue(m1, 'sluice_map_entries', { map: 'sl_ct4' }) ?? 0) >= 2, 'conntrack fill is exported');
  });

  await t.test('ct flush removes the service\'s entries', async (t) => {
    t.match(await ctl('ct', 'flush', '--service', 'default/web'), /^deleted: +[1-9]\d*$/m);
    const ct = JSON.parse(await ctl('ct', 'dump', '--service', 'default/web', '-o', 'json')) as { entries: CtEntry[] };
    t.same(ct.entries, []);
  });
});
