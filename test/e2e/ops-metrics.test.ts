// Issue 5, metrics and health against a running agent: /readyz 503 before the first sync and
// 200 after; /healthz 200; /metrics parses as Prometheus text (strict parser) and agrees with
// sluicectl (same numbers, read from the same maps); per-service counters move with real
// traffic; sluice_service_ports_programmed follows services added and deleted.
//
// "Before the first sync" is made to last: the agent reads from the fake API server, which
// fails every list until the test lets it answer (failNextLists), so the agent's watches retry
// and its sources stay unsynced. The metrics address is 127.0.0.1:9963 inside the node
// namespace, scraped from a child process there (ops-helpers.ts scrape).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runInNetns } from '../../src/testbed/netns.js';
import type { CountersView, MapsView, NatView, ServicesView } from '../../src/admin/types.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { parsePrometheus, sampleValue } from '../metrics/prom-parse.js';
import type { Family } from '../metrics/prom-parse.js';
import { createAgentBed, expectServed, nodeObject, service, slice, summarize } from './agent-bed.js';
import type { PortSpec } from './agent-bed.js';
import { poll, scrape } from './ops-helpers.js';
import type { HttpAnswer } from './ops-helpers.js';

const VERSION = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version: string }).version;
const ADDRESS = '127.0.0.1:9963';
const HTTP: PortSpec = { name: 'http', port: 80 };
const WEB = { namespace: 'e2e', name: 'web', port: 'http', protocol: 'TCP', family: 'IPv4' };
const EMPTY = { ...WEB, name: 'empty' };

interface HealthBody {
  ok: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
  reasons: string[];
}

/** Sum of the samples named `name` (histogram _count/_sum/_bucket included) matching `labels`. */
const sum = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number =>
  [...families.values()].flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

t.test('metrics and health against a running agent', async (t) => {
  const bed = await createAgentBed(t, { source: 'api' });
  if (!bed) return;
  const api = bed.api!;
  await api.call('failNextLists', 1_000_000);
  await api.apply(nodeObject());
  await api.apply(service('web', '10.96.0.10', [HTTP]));
  await api.apply(slice('web-1', 'web', ['web-a', 'web-b'], [HTTP]));
  const startedAt = Date.now();
  const agent = bed.startAgent(['--metrics-address', ADDRESS]);
  const agentGone = () => (agent.running ? undefined : `the agent exited:\n${agent.tail()}`);
  const get = (...paths: string[]) => scrape(bed.topo.nodeNs, ADDRESS, paths);
  const metrics = async (): Promise<Map<string, Family>> => {
    const [m] = await get('/metrics');
    if (m?.status !== 200) throw new Error(`/metrics answered ${m?.status}: ${m?.body}`);
    return parsePrometheus(m.body);
  };

  await t.test('before the first sync: /readyz 503, /healthz 200', async (t) => {
    const answers = await poll('the metrics server to listen', async () => {
      const a = await get('/readyz', '/healthz', '/metrics');
      return a.every((x) => x.status !== 0) ? a : undefined;
    }, 30_000, agentGone);
    const [ready, health, prom] = answers as [HttpAnswer, HttpAnswer, HttpAnswer];
    t.equal(ready.status, 503, '/readyz 503');
    t.match(ready.contentType, 'application/json');
    const rb = JSON.parse(ready.body) as HealthBody;
    t.equal(rb.ok, false);
    t.ok(rb.reasons.includes('waiting for the first complete sync'), `reason given: ${JSON.stringify(rb.reasons)}`);
    t.match(rb.checks, { programsLoaded: { ok: true }, synced: { ok: false } });
    t.equal(health.status, 200, '/healthz 200 meanwhile');
    t.equal((JSON.parse(health.body) as HealthBody).ok, true);
    const early = parsePrometheus(prom.body);
    t.equal(sampleValue(early, 'sluice_service_ports_programmed'), 0, 'nothing programmed yet');

    // Still not ready once the source has visibly failed (and is retrying).
    const failing = await poll('failed lists in sluice_api_errors_total', async () => {
      const m = await metrics();
      return sum(m, 'sluice_api_errors_total') > 0 ? m : undefined;
    }, 20_000, agentGone);
    t.equal(sampleValue(failing, 'sluice_sources_synced'), 0, 'sluice_sources_synced 0');
    const status = await bed.status();
    t.match(status.sync, { state: 'waiting-for-sources', sourcesSynced: false, servicePortsProgrammed: 0 }, 'sluicectl agrees');
    const [again] = await get('/readyz');
    t.equal(again?.status, 503, '/readyz still 503 while the lists fail');
  });

  await t.test('after the first sync: /readyz 200', async (t) => {
    await api.call('failNextLists', 0);
    const ready = await poll('/readyz 200', async () => {
      const [r] = await get('/readyz');
      return r?.status === 200 ? r : undefined;
    }, 45_000, agentGone);
    const rb = JSON.parse(ready.body) as HealthBody;
    t.match(rb, { ok: true, reasons: [], checks: { programsLoaded: { ok: true }, programsAttached: { ok: true }, synced: { ok: true } } });
    const [health] = await get('/healthz');
    t.equal(health?.status, 200, '/healthz 200');
    t.match(JSON.parse(health?.body ?? '{}') as HealthBody, { ok: true, checks: { eventLoop: { ok: true }, programs: { ok: true } } });
    t.match((await bed.status()).sync, { state: 'synced', sourcesSynced: true, servicePortsProgrammed: 1 });
    const [nope] = await get('/nope');
    t.equal(nope?.status, 404, 'unknown path 404');
  });

  await t.test('/metrics: strict Prometheus text, the same numbers as sluicectl', async (t) => {
    const [m] = await get('/metrics');
    t.equal(m?.status, 200);
    t.equal(m?.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const fam = parsePrometheus(m?.body ?? '');
    const [status, services, nat, maps] = await Promise.all([
      bed.status(), bed.ctl<ServicesView>(['services']), bed.ctl<NatView>(['nat', 'dump']), bed.ctl<MapsView>(['maps']),
    ]);
    t.equal(fam.get('sluice_build_info')?.samples.length, 1);
    t.match(fam.get('sluice_build_info')?.samples[0], { labels: { version: VERSION }, value: 1 }, 'build info');
    t.equal(sampleValue(fam, 'sluice_sources_synced'), 1);
    t.equal(sampleValue(fam, 'sluice_service_ports_programmed'), 1, 'one service port programmed');
    t.equal(sampleValue(fam, 'sluice_service_ports_programmed'), status.sync.servicePortsProgrammed, '= sluicectl status');
    t.equal(sampleValue(fam, 'sluice_service_ports_programmed'), services.services.length, '= sluicectl services');
    t.equal(sampleValue(fam, 'sluice_frontends_programmed'), nat.frontends.length, 'frontends = nat dump');
    t.equal(sampleValue(fam, 'sluice_backends_programmed'), nat.backends.length, 'backend slots = nat dump');
    for (const mp of maps.maps) {
      t.equal(sampleValue(fam, 'sluice_map_entries', { map: mp.name }), mp.entries, `${mp.name}: entries = sluicectl maps`);
      t.equal(sampleValue(fam, 'sluice_map_capacity', { map: mp.name }), mp.maxEntries, `${mp.name}: capacity = sluicectl maps`);
    }
    t.equal(fam.get('sluice_map_entries')?.samples.length, maps.maps.length, 'one series per map, conntrack included');
    const attached = (hook: string) => status.programs.filter((p) => p.hook === hook && p.attached).length;
    t.equal(sampleValue(fam, 'sluice_programs_attached', { hook: 'cgroup' }), attached('cgroup'), 'cgroup attachments');
    t.equal(sampleValue(fam, 'sluice_programs_attached', { hook: 'tc' }), attached('tc'), 'tc attachments');
    t.equal(attached('tc'), 2 * bed.topo.pods.length, 'two TC programs per pod veth');
    const syncs = sum(fam, 'sluice_syncs_total');
    t.ok(sum(fam, 'sluice_syncs_total', { result: 'ok' }) >= 1, 'a successful sync counted');
    t.equal(sum(fam, 'sluice_sync_duration_seconds_count'), syncs, 'every sync observed in the histogram');
    t.equal(fam.get('sluice_sync_duration_seconds')?.type, 'histogram');
    const last = sampleValue(fam, 'sluice_last_sync_timestamp_seconds') ?? 0;
    t.ok(last * 1000 >= startedAt && last * 1000 <= Date.now(), 'last sync time during the test');
    for (const resource of ['Service', 'EndpointSlice', 'Node']) {
      t.equal(sampleValue(fam, 'sluice_api_objects', { resource }), 1, `one ${resource} in the cache`);
      t.ok((sampleValue(fam, 'sluice_api_errors_total', { resource }) ?? 0) >= 1, `${resource}: the failed lists were counted`);
    }
    t.equal(sampleValue(fam, 'sluice_model_errors'), 0);
    t.strictSame((fam.get('sluice_drops_total')?.samples ?? []).map((s) => s.labels.reason).sort(),
      ['backend_missing', 'csum', 'ct_full', 'malformed', 'no_backend', 'no_local_backend', 'no_route', 'snat_ports', 'src_range', 'ttl', 'tunnel_mtu', 'tunnel_source', 'unknown_port'],
      'every drop reason exported');
    for (const name of ['packets', 'bytes', 'connections', 'rejected']) {
      t.equal(sampleValue(fam, `sluice_service_${name}_total`, WEB), 0, `sluice_service_${name}_total for web, 0 before traffic`);
      t.equal(fam.get(`sluice_service_${name}_total`)?.type, 'counter');
    }
  });

  await t.test('per-service counters move with real traffic', async (t) => {
    const before = await metrics();
    const v = (f: Map<string, Family>, what: string, labels = WEB) => sampleValue(f, `sluice_service_${what}_total`, labels) ?? -1;
    const tc = summarize(await bed.traffic('tc', '10.96.0.10', 80, 3));
    const ct = summarize(await bed.traffic('connect-time', '10.96.0.10', 80, 2));
    t.match({ tc, ct }, { tc: { ok: 3 }, ct: { ok: 2 } }, 'traffic answered');
    const after = await metrics();
    const counters = await bed.ctl<CountersView>(['counters']);
    t.equal(v(after, 'connections'), v(before, 'connections') + 5, 'connections +5 (3 TC, 2 connect-time)');
    t.ok(v(after, 'packets') >= v(before, 'packets') + 3 * 3, `packets moved (${v(before, 'packets')} → ${v(after, 'packets')}): at least SYN, ACK, FIN per TC connection`);
    t.ok(v(after, 'bytes') >= v(before, 'bytes') + 3 * 3 * 40, `bytes moved (${v(before, 'bytes')} → ${v(after, 'bytes')})`);
    t.equal(v(after, 'rejected'), 0);
    const web = counters.services.find((s) => s.service === 'e2e/web:http/TCP/IPv4');
    t.match(web, { packets: v(after, 'packets'), bytes: v(after, 'bytes'), connections: v(after, 'connections'), rejected: 0 }, '= sluicectl counters');
    const maps = await bed.ctl<MapsView>(['maps']);
    const ctEntries = maps.maps.find((m) => m.name === 'sl_ct4')?.entries ?? -1;
    t.ok(ctEntries >= 6, `conntrack entries of the TC connections (${ctEntries})`);
    t.equal(sampleValue(after, 'sluice_map_entries', { map: 'sl_ct4' }), ctEntries, 'sluice_map_entries{map="sl_ct4"} moved with them');
  });

  await t.test('a service added and deleted: programmed gauge and series follow', async (t) => {
    await api.apply(service('empty', '10.96.0.30', [HTTP]));
    await api.apply(slice('empty-1', 'empty', [], [HTTP]));
    await bed.waitForServices('web and empty', (s) => s.length === 2);
    const added = await poll('sluice_service_ports_programmed 2', async () => {
      const m = await metrics();
      return sampleValue(m, 'sluice_service_ports_programmed') === 2 ? m : undefined;
    }, 10_000, agentGone);
    t.equal(sampleValue(added, 'sluice_service_rejected_total', EMPTY), 0, 'the new port has its series');
    const drops0 = sampleValue(added, 'sluice_drops_total', { reason: 'no_backend' }) ?? -1;
    const refused = await bed.traffic('tc', '10.96.0.30', 80, 1);
    t.equal(refused[0]?.error?.code, 'ECONNREFUSED', 'no endpoints: refused');
    const m = await metrics();
    t.equal(sampleValue(m, 'sluice_service_rejected_total', EMPTY), 1, 'rejected +1');
    t.ok((sampleValue(m, 'sluice_drops_total', { reason: 'no_backend' }) ?? -1) > drops0, 'drops_total{reason="no_backend"} moved');
    t.equal((await bed.status()).sync.servicePortsProgrammed, 2, '= sluicectl status');

    await api.delete('Service', 'empty');
    await api.delete('EndpointSlice', 'empty-1');
    await bed.waitForServices('web only', (s) => s.length === 1);
    const removed = await poll('sluice_service_ports_programmed 1', async () => {
      const r = await metrics();
      return sampleValue(r, 'sluice_service_ports_programmed') === 1 ? r : undefined;
    }, 10_000, agentGone);
    t.equal(sampleValue(removed, 'sluice_service_rejected_total', EMPTY), undefined, 'series of the deleted service gone');
    t.ok((sampleValue(removed, 'sluice_service_connections_total', WEB) ?? 0) >= 5, 'web keeps its series');
    t.equal(agent.otherOutput.length, 0, 'the agent wrote only JSON log lines');
  });

  await t.test('a TC filter or cgroup link removed behind the agent\'s back is re-attached and recorded', async (t) => {
    const iface = bed.client.hostIfname;
    const filters = async () => (await runInNetns(bed.topo.nodeNs, ['tc', 'filter', 'show', 'dev', iface, 'ingress'])).stdout;
    t.match(await filters(), /sl_tc_from_pod/, 'control: the ingress filter is there');
    await runInNetns(bed.topo.nodeNs, ['tc', 'filter', 'del', 'dev', iface, 'ingress', 'pref', '1', 'handle', '0x5c1', 'bpf']);
    t.notMatch(await filters(), /sl_tc_from_pod/, 'deleted by hand');
    await poll('the filter re-attached', async () => (/sl_tc_from_pod/.test(await filters()) ? true : undefined), 15_000, agentGone);
    t.pass('the agent put sl_tc_from_pod back');
    const status = await poll('status: attached and the repair recorded', async () => {
      const s = await bed.status();
      return s.programs.every((p) => p.attached) && s.errors.some((e) => e.component === 'attach' && e.object === iface) ? s : undefined;
    }, 10_000, agentGone);
    t.match(status.errors.find((e) => e.component === 'attach')?.message, new RegExp(`sl_tc_from_pod on ${iface} was gone .*re-attached`), 'status says what was gone and that it was re-attached');
    expectServed(t, await bed.traffic('tc', '10.96.0.10', 80, 3), ['web-a', 'web-b'], 'the TC path serves again');

    // The connect-time link: detached through its pin (as `bpftool link detach` would).
    const { cgroupLinkPin } = await import('../../src/datapath/attach.js');
    const { loadNative } = await import('../../src/bpf/native.js');
    const link = loadNative().openPinnedLink(cgroupLinkPin(bed.pinDir, bed.clientCgroup, 'sl_connect4'));
    link.detach();
    link.close();
    await poll('the connect4 link replaced', async () => {
      const s = await bed.status();
      return s.programs.every((p) => p.attached) && s.errors.some((e) => e.component === 'attach' && /sl_connect4 .* was gone/.test(e.message)) ? s : undefined;
    }, 15_000, agentGone);
    t.pass('the agent replaced the detached connect4 link');
    expectServed(t, await bed.traffic('connect-time', '10.96.0.10', 80, 3), ['web-a', 'web-b'], 'connect-time serves again', { vip: '10.96.0.10', port: 80 });
    const [h] = await get('/healthz');
    t.equal(h?.status, 200, '/healthz is 200 again');
    t.ok((sampleValue(await metrics(), 'sluice_errors_total', { component: 'attach' }) ?? 0) >= 2, 'sluice_errors_total{component="attach"} counts both repairs');
  });
});
