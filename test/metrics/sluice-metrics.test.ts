import t from 'tap';
import { collectFromDataplane, SluiceMetrics } from '../../src/metrics/sluice-metrics.js';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { NOW_NS, scenarioTables } from '../admin/fake-tables.js';
import { parsePrometheus, sampleValue } from './prom-parse.js';

const web = {
  svcId: 1, service: 'default/web:http/TCP/IPv4', namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP',
  family: 'IPv4', packets: 100, bytes: 64000, connections: 10, rejected: 1,
};
const dns = { ...web, svcId: 2, service: 'kube-system/dns:/UDP/IPv4', namespace: 'kube-system', name: 'dns', portName: '', protocol: 'UDP', packets: 5 };
const webLabels = { namespace: 'default', name: 'web', port: 'http', protocol: 'TCP', family: 'IPv4' };

t.test('the metric set: every family is sluice_-prefixed, typed and documented', async (t) => {
  const m = new SluiceMetrics();
  const fams = parsePrometheus(m.registry.expose());
  const expected: Record<string, string> = {
    sluice_build_info: 'gauge',
    sluice_sync_duration_seconds: 'histogram',
    sluice_syncs_total: 'counter',
    sluice_last_sync_timestamp_seconds: 'gauge',
    sluice_sources_synced: 'gauge',
    sluice_service_ports_programmed: 'gauge',
    sluice_frontends_programmed: 'gauge',
    sluice_backends_programmed: 'gauge',
    sluice_map_entries: 'gauge',
    sluice_map_capacity: 'gauge',
    sluice_map_full_errors_total: 'counter',
    sluice_service_packets_total: 'counter',
    sluice_service_bytes_total: 'counter',
    sluice_service_connections_total: 'counter',
    sluice_service_rejected_total: 'counter',
    sluice_drops_total: 'counter',
    sluice_external_packets_total: 'counter',
    sluice_external_bytes_total: 'counter',
    sluice_external_connections_total: 'counter',
    sluice_external_refused_total: 'counter',
    sluice_ipv6_untranslated_packets_total: 'counter',
    sluice_api_objects: 'gauge',
    sluice_api_watch_restarts_total: 'counter',
    sluice_api_relists_total: 'counter',
    sluice_api_errors_total: 'counter',
    sluice_errors_total: 'counter',
    sluice_model_errors: 'gauge',
    sluice_programs_attached: 'gauge',
    sluice_kernel_feature: 'gauge',
  };
  t.same(Object.fromEntries([...fams.values()].map((f) => [f.name, f.type])), expected);
  for (const f of fams.values()) t.ok(f.help.length > 10, `${f.name} has help`);
});

t.test('full-map errors are counted by map; other errors are not', async (t) => {
  const m = new SluiceMetrics();
  m.countMapFull([
    { map: 'sl_frontends4', capacity: 8 }, { map: 'sl_frontends4', capacity: 8 }, { map: 'sl_backends4', capacity: 64 },
    { map: 'sl_backends4' }, {},
  ]);
  const fams = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(fams, 'sluice_map_full_errors_total', { map: 'sl_frontends4' }), 2);
  t.equal(sampleValue(fams, 'sluice_map_full_errors_total', { map: 'sl_backends4' }), 1, 'an sl_backends4 error without a capacity (not a full map) is not counted');
});

t.test('typed updates land in the exposition', async (t) => {
  const m = new SluiceMetrics();
  m.setBuildInfo('0.1.0', '1.1.0');
  m.observeSync({ durationMs: 4, full: false, ok: true, at: new Date(1_700_000_000_000) });
  m.observeSync({ durationMs: 1500, full: true, ok: false });
  m.setSourcesSynced(true);
  m.setProgrammed({ servicePorts: 3, frontends: 5, backends: 9 });
  m.setMapFill([{ name: 'sl_ct4', entries: 12, maxEntries: 524288 }, { name: 'sl_frontends4', entries: 5, maxEntries: 65536 }]);
  m.setServiceCounters([web, dns]);
  m.setDrops([{ reason: 'no_backend', code: 1, packets: 7 }, { reason: 'malformed', code: 6, packets: 0 }]);
  // Shaped like ObjectStore.stats() (its extra fields are ignored).
  const stats = {
    Service: { objects: 12, watchRestarts: 2, relists: 3, errors: 1, events: 40, changes: 30 },
    Node: { objects: 3, watchRestarts: 0, relists: 1, errors: 0, events: 3, changes: 3 },
  };
  m.setSourceStats(stats);
  m.error('dataplane');
  m.setModelErrors(2);
  m.setProgramsAttached('tc', 4);
  m.setKernelFeatures([{ name: 'tc-datapath', state: 'on' }, { name: 'connect-econnrefused', state: 'off' }, { name: 'udp-socket-sweep', state: 'disabled' }]);

  const f = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(f, 'sluice_build_info', { version: '0.1.0', libbpf: '1.1.0' }), 1);
  t.equal(sampleValue(f, 'sluice_sync_duration_seconds_bucket', { kind: 'incremental', le: '0.005' }), 1);
  t.equal(sampleValue(f, 'sluice_sync_duration_seconds_bucket', { kind: 'incremental', le: '0.0025' }), 0);
  t.equal(sampleValue(f, 'sluice_sync_duration_seconds_bucket', { kind: 'full', le: '1' }), 0);
  t.equal(sampleValue(f, 'sluice_sync_duration_seconds_bucket', { kind: 'full', le: '2.5' }), 1);
  t.equal(sampleValue(f, 'sluice_sync_duration_seconds_sum', { kind: 'full' }), 1.5);
  t.equal(sampleValue(f, 'sluice_syncs_total', { kind: 'incremental', result: 'ok' }), 1);
  t.equal(sampleValue(f, 'sluice_syncs_total', { kind: 'full', result: 'error' }), 1);
  t.equal(sampleValue(f, 'sluice_last_sync_timestamp_seconds'), 1_700_000_000, 'a failed sync does not move it');
  t.equal(sampleValue(f, 'sluice_sources_synced'), 1);
  t.equal(sampleValue(f, 'sluice_backends_programmed'), 9);
  t.equal(sampleValue(f, 'sluice_map_entries', { map: 'sl_ct4' }), 12);
  t.equal(sampleValue(f, 'sluice_map_capacity', { map: 'sl_ct4' }), 524288);
  t.equal(sampleValue(f, 'sluice_service_packets_total', webLabels), 100);
  t.equal(sampleValue(f, 'sluice_service_bytes_total', webLabels), 64000);
  t.equal(sampleValue(f, 'sluice_service_connections_total', webLabels), 10);
  t.equal(sampleValue(f, 'sluice_service_rejected_total', webLabels), 1);
  t.equal(sampleValue(f, 'sluice_service_packets_total', { namespace: 'kube-system', name: 'dns', port: '', protocol: 'UDP', family: 'IPv4' }), 5);
  t.equal(sampleValue(f, 'sluice_drops_total', { reason: 'no_backend' }), 7);
  t.equal(sampleValue(f, 'sluice_drops_total', { reason: 'malformed' }), 0);
  m.setExternalCounters([{ kind: 'NodePort', packets: 5, bytes: 300, connections: 4, refused: 1 }, { kind: 'LoadBalancer', packets: 0, bytes: 0, connections: 0, refused: 2 }]);
  const g = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(g, 'sluice_external_connections_total', { kind: 'NodePort' }), 4, 'external counters labelled by kind');
  t.equal(sampleValue(g, 'sluice_external_refused_total', { kind: 'LoadBalancer' }), 2);
  t.equal(sampleValue(f, 'sluice_api_objects', { resource: 'Service' }), 12);
  t.equal(sampleValue(f, 'sluice_api_watch_restarts_total', { resource: 'Service' }), 2);
  t.equal(sampleValue(f, 'sluice_api_relists_total', { resource: 'Service' }), 3);
  t.equal(sampleValue(f, 'sluice_api_errors_total', { resource: 'Service' }), 1);
  t.equal(sampleValue(f, 'sluice_api_watch_restarts_total', { resource: 'Node' }), 0);
  t.equal(sampleValue(f, 'sluice_errors_total', { component: 'dataplane' }), 1);
  t.equal(sampleValue(f, 'sluice_model_errors'), 2);
  t.equal(sampleValue(f, 'sluice_programs_attached', { hook: 'tc' }), 4);
  t.equal(sampleValue(f, 'sluice_kernel_feature', { feature: 'tc-datapath' }), 1, 'a feature in use');
  t.equal(sampleValue(f, 'sluice_kernel_feature', { feature: 'connect-econnrefused' }), 0, 'one the kernel lacks');
  t.equal(sampleValue(f, 'sluice_kernel_feature', { feature: 'udp-socket-sweep' }), 0, 'one disabled');
});

t.test('per-service counters follow the datapath: totals move, deleted services disappear', async (t) => {
  const m = new SluiceMetrics();
  m.setServiceCounters([web, dns]);
  m.setServiceCounters([{ ...web, packets: 150, bytes: 96000 }]);
  const f = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(f, 'sluice_service_packets_total', webLabels), 150);
  t.equal(sampleValue(f, 'sluice_service_bytes_total', webLabels), 96000);
  for (const name of ['packets', 'bytes', 'connections', 'rejected']) {
    t.equal(f.get(`sluice_service_${name}_total`)?.samples.length, 1, `${name}: only web is left`);
  }
  m.setMapFill([{ name: 'sl_ct4', entries: 1, maxEntries: 10 }]);
  m.setMapFill([{ name: 'sl_affinity4', entries: 0, maxEntries: 10 }]);
  const g = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(g, 'sluice_map_entries', { map: 'sl_ct4' }), undefined);
  t.equal(sampleValue(g, 'sluice_map_entries', { map: 'sl_affinity4' }), 0);
});

t.test('scrapes read the dataplane: counters move as the per-CPU maps do', async (t) => {
  const tables = scenarioTables();
  const m = new SluiceMetrics();
  collectFromDataplane(m, new MapsAdminBackend({ tables, pinDir: '/x', nowNs: () => NOW_NS }));
  t.same(await m.registry.collect(), []);
  let f = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(f, 'sluice_service_packets_total', webLabels), 15, 'summed over CPUs');
  t.equal(sampleValue(f, 'sluice_drops_total', { reason: 'no_backend' }), 7);
  t.equal(sampleValue(f, 'sluice_map_entries', { map: 'sl_ct4' }), 3);
  t.equal(sampleValue(f, 'sluice_map_capacity', { map: 'sl_ct4' }), 524288);

  // Traffic on one CPU: the next scrape shows it.
  const perCpu = tables.counters.get(1) ?? [];
  perCpu[2] = { packets: 10n, bytes: 900n, connections: 1n, rejected: 0n };
  tables.counters.set(1, perCpu);
  await m.registry.collect();
  f = parsePrometheus(m.registry.expose());
  t.equal(sampleValue(f, 'sluice_service_packets_total', webLabels), 25);
  t.equal(sampleValue(f, 'sluice_service_bytes_total', webLabels), 2400);
});
