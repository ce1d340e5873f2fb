// Issue 5, against a running agent (manifest source, 4 service ports: one with two ports, one
// with ClientIP affinity, one without endpoints): every sluicectl command in table and JSON
// form, checked against the manifests and against the pinned maps read independently with
// bpftool (ops-helpers.ts), the tables cell by cell against the JSON; the program ids against
// what the kernel has attached; `ct dump` showing a live TCP connection through the TC path
// (a client outside the connect-time cgroup); `ct flush`; `log-level` changing what the agent
// logs; the admin socket's permissions and 4xx answers; then the agent stopped (SIGTERM) and
// sluicectl answering from the pinned maps, saying the agent is down, while traffic still flows.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import type {
  AffinityView, ConntrackEntryView, ConntrackView, CountersView, FlushResult, LogLevelResult, MapsView, NatView, ServiceView,
  ServicesView, StatusView,
} from '../../src/admin/types.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { parseTable, sections } from '../cli/table-parse.js';
import { createAgentBed, nodeObject, POD_IP, service, slice, summarize } from './agent-bed.js';
import type { AgentBed, PortSpec, WebPod } from './agent-bed.js';
import {
  adminHttp, adminRaw, BE_FLAG_BITS, bitNames, cell, ctlAsNobody, CT_FORWARD, CT_STATE_NAMES, ctlBoth, ctlRaw, DROP_REASON_NAMES, flagList, holdTcpConnection,
  hostPort, kernelCgroupAttachments, kernelTcAttachments, MAPS, bpftoolShow, parseKeyValues, PROTO_NAMES, readRawMaps,
  SVC_FLAG_BITS, svcIdOf,
} from './ops-helpers.js';
import type { HeldConnection, RawMaps } from './ops-helpers.js';

const VERSION = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version: string }).version;
const CLIENT_IP = '10.244.0.10';

interface SvcSpec {
  key: string;
  name: string;
  portName: string;
  protocol: 'TCP' | 'UDP';
  vip: string;
  port: number;
  targetPort: number;
  pods: WebPod[];
  flags: string[];
  affinitySec: number;
}

const HTTP: PortSpec = { name: 'http', port: 80 };
const DNS: PortSpec = { name: 'dns', port: 53, protocol: 'UDP' };

/** What the manifests say, sorted by key (the order of `services`). */
const SPECS: SvcSpec[] = [
  { key: 'e2e/empty:http/TCP/IPv4', name: 'empty', portName: 'http', protocol: 'TCP', vip: '10.96.0.30', port: 80, targetPort: 8080, pods: [], flags: [], affinitySec: 0 },
  { key: 'e2e/sticky:http/TCP/IPv4', name: 'sticky', portName: 'http', protocol: 'TCP', vip: '10.96.0.20', port: 80, targetPort: 8080, pods: ['web-a', 'web-b', 'web-c'], flags: ['affinity'], affinitySec: 600 },
  { key: 'e2e/web:dns/UDP/IPv4', name: 'web', portName: 'dns', protocol: 'UDP', vip: '10.96.0.10', port: 53, targetPort: 8053, pods: ['web-a', 'web-b'], flags: [], affinitySec: 0 },
  { key: 'e2e/web:http/TCP/IPv4', name: 'web', portName: 'http', protocol: 'TCP', vip: '10.96.0.10', port: 80, targetPort: 8080, pods: ['web-a', 'web-b'], flags: [], affinitySec: 0 },
];
const spec = (key: string): SvcSpec => SPECS.find((s) => s.key === key)!;
const WEB_HTTP = 'e2e/web:http/TCP/IPv4';
const STICKY = 'e2e/sticky:http/TCP/IPv4';

async function program(bed: AgentBed): Promise<void> {
  await bed.writeManifest('e2e.yaml', [
    nodeObject(),
    service('web', '10.96.0.10', [HTTP, DNS]),
    slice('web-1', 'web', ['web-a', 'web-b'], [HTTP, DNS]),
    service('sticky', '10.96.0.20', [HTTP], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }),
    slice('sticky-1', 'sticky', ['web-a', 'web-b', 'web-c'], [HTTP]),
    service('empty', '10.96.0.30', [HTTP]),
    slice('empty-1', 'empty', [], [HTTP]),
  ]);
}

/** Table text without its trailing summary line ("4 service ports", "2 of 10 entries"). */
function splitFooter(text: string): { body: string; footer: string } {
  const lines = text.trimEnd().split('\n');
  const footer = lines.pop() ?? '';
  return { body: lines.join('\n') + '\n', footer };
}

const byHostPort = (a: { ip: string; port: number }, b: { ip: string; port: number }) => a.ip.localeCompare(b.ip, 'en', { numeric: true }) || a.port - b.port;

// ---- expectations from the raw maps --------------------------------------------------------------

function rawFrontend(raw: RawMaps, s: SvcSpec) {
  const fe = raw.frontends.find((f) => f.ip === s.vip && f.port === s.port && PROTO_NAMES[f.proto] === s.protocol);
  if (!fe) throw new Error(`no sl_frontends4 entry for ${s.vip}:${s.port}/${s.protocol}`);
  return fe;
}

/** The ServiceView the maps imply for `s` (values from the maps, names from the manifests). */
function expectedService(raw: RawMaps, s: SvcSpec): ServiceView {
  const fe = rawFrontend(raw, s);
  const block = raw.backends.filter((b) => b.backendId === fe.backendId && b.ordinal < fe.count + fe.localCount).sort((a, b) => a.ordinal - b.ordinal);
  return {
    key: s.key, namespace: 'e2e', name: s.name, portName: s.portName, protocol: s.protocol, family: 'IPv4',
    svcId: fe.svcId, backendId: fe.backendId, flags: s.flags, affinityTimeoutSec: s.affinitySec,
    frontends: [{ ip: s.vip, port: s.port, kind: 'ClusterIP' }],
    clusterCount: fe.count, localCount: fe.localCount,
    backends: block.map((b) => ({
      ip: b.ip, port: b.port, ordinal: b.ordinal, set: b.ordinal < fe.count ? 'cluster' : 'local', nodeIp: b.nodeIp,
      local: (b.flags & 1) !== 0, terminating: (b.flags & 2) !== 0,
    })),
  };
}

function expectedNat(raw: RawMaps): NatView {
  const frontends = raw.frontends.map((f) => ({
    ip: f.ip, port: f.port, protocol: PROTO_NAMES[f.proto] ?? `proto-${f.proto}`, scope: f.scope, svcId: f.svcId, backendId: f.backendId,
    count: f.count, localCount: f.localCount, kind: ['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer'][(f.flags >> 8) & 3] as string,
    flags: bitNames(f.flags & ~0x300, SVC_FLAG_BITS), affinityTimeoutSec: f.affinityTimeoutSec,
    service: raw.names.get(f.svcId) ?? `svc#${f.svcId}`,
  })).sort((a, b) => a.service.localeCompare(b.service) || byHostPort(a, b) || a.protocol.localeCompare(b.protocol));
  const backends = raw.backends.map((b) => ({
    backendId: b.backendId, ordinal: b.ordinal, ip: b.ip, port: b.port, nodeIp: b.nodeIp, flags: bitNames(b.flags, BE_FLAG_BITS),
  })).sort((a, b) => a.backendId - b.backendId || a.ordinal - b.ordinal);
  return { frontends, backends };
}

/** A conntrack entry as the admin view shows it, without the clock-dependent ages. */
type CtShape = Omit<ConntrackEntryView, 'ageSec' | 'idleSec'>;
const ctShape = (e: ConntrackEntryView): CtShape => {
  const { ageSec: _a, idleSec: _i, ...rest } = e;
  return rest;
};
const ctOrder = (a: CtShape, b: CtShape) =>
  a.service.localeCompare(b.service) || byHostPort(a.client, b.client) || byHostPort(a.backend, b.backend) || a.direction.localeCompare(b.direction);

// The conntrack flags as sluice.h numbers them (written here, not imported: the view is checked).
const CT_FLAG_BITS: [number, string][] = [[1, 'hairpin'], [2, 'external'], [4, 'snat'], [8, 'tunnel'], [16, 'decap'], [32, 'dsr'], [128, 'fin-seen']];

function expectedCt(raw: RawMaps): CtShape[] {
  return raw.ct.map((c) => {
    const forward = c.type === CT_FORWARD;
    const src = { ip: c.saddr, port: c.sport };
    const dst = { ip: c.daddr, port: c.dport };
    const nat = { ip: c.natAddr, port: c.natPort };
    return {
      protocol: PROTO_NAMES[c.proto] ?? `proto-${c.proto}`,
      direction: forward ? 'forward' as const : 'reverse' as const,
      state: CT_STATE_NAMES[c.state] ?? `STATE_${c.state}`,
      client: forward ? src : dst,
      frontend: forward ? dst : nat,
      backend: forward ? nat : src,
      natSource: c.natSaddr === '0.0.0.0' ? '' : c.natSaddr,
      svcId: c.svcId,
      service: raw.names.get(c.svcId) ?? `svc#${c.svcId}`,
      flags: CT_FLAG_BITS.filter(([bit]) => c.flags & bit).map(([, name]) => name),
    };
  }).sort(ctOrder);
}

function expectedCounters(raw: RawMaps): CountersView {
  const services = SPECS.map((s) => {
    const id = rawFrontend(raw, s).svcId;
    const c = raw.counters.get(id) ?? { packets: 0, bytes: 0, connections: 0, rejected: 0 };
    return { svcId: id, service: s.key, namespace: 'e2e', name: s.name, portName: s.portName, protocol: s.protocol, family: 'IPv4', ...c };
  });
  const drops = DROP_REASON_NAMES.slice(1).map((reason, i) => ({ reason, code: i + 1, packets: raw.drops.get(i + 1) ?? 0 }));
  // sl_ipv6_untranslated: no unicast IPv6 with extension headers in this IPv4 bed (the pods' MLD
  // reports go to a multicast group and are not counted).
  return { services, drops, ipv6Untranslated: 0 };
}

// ---- table ⇄ JSON ---------------------------------------------------------------------------------

function servicesRows(v: ServicesView): Record<string, string>[] {
  const rows: Record<string, string>[] = [];
  for (const s of v.services) {
    for (let i = 0; i < Math.max(1, s.frontends.length, s.backends.length); i++) {
      const f = s.frontends[i];
      const b = s.backends[i];
      rows.push({
        SERVICE: i === 0 ? s.key : '', SVC_ID: i === 0 ? String(s.svcId) : '',
        BACKEND_ID: i === 0 ? String(s.backendId) : '', CLUSTER_COUNT: i === 0 ? String(s.clusterCount) : '', LOCAL_COUNT: i === 0 ? String(s.localCount) : '',
        FLAGS: i === 0 ? flagList(s.flags) : '',
        FRONTEND: f ? hostPort(f) : '', KIND: f?.kind ?? '', BACKEND: b ? hostPort(b) : i === 0 ? '(none)' : '', SET: b?.set ?? '',
        BACKEND_FLAGS: b ? flagList([...(b.local ? ['local'] : []), ...(b.terminating ? ['terminating'] : [])]) : '',
      });
    }
  }
  return rows;
}

function natTables(t: Test, table: string, json: NatView, what: string): void {
  const sec = sections(table);
  t.strictSame(Object.keys(sec), ['FRONTENDS', 'BACKENDS'], `${what}: two sections`);
  const fe = parseTable(sec.FRONTENDS ?? '');
  t.strictSame(fe.headers, ['FRONTEND', 'PROTOCOL', 'KIND', 'SVC_ID', 'BACKEND_ID', 'COUNT', 'LOCAL_COUNT', 'FLAGS', 'AFFINITY_TIMEOUT_SEC', 'SERVICE'], `${what}: frontend columns`);
  t.strictSame(fe.rows, json.frontends.map((f) => ({
    FRONTEND: hostPort(f), PROTOCOL: f.protocol, KIND: f.kind, SVC_ID: cell(f.svcId), BACKEND_ID: cell(f.backendId), COUNT: cell(f.count),
    LOCAL_COUNT: cell(f.localCount), FLAGS: flagList(f.flags), AFFINITY_TIMEOUT_SEC: cell(f.affinityTimeoutSec), SERVICE: f.service,
  })), `${what}: frontend rows = JSON`);
  const be = parseTable(sec.BACKENDS ?? '');
  t.strictSame(be.headers, ['BACKEND_ID', 'ORDINAL', 'BACKEND', 'NODE_IP', 'FLAGS'], `${what}: backend columns`);
  t.strictSame(be.rows, json.backends.map((b) => ({
    BACKEND_ID: cell(b.backendId), ORDINAL: cell(b.ordinal), BACKEND: hostPort(b), NODE_IP: b.nodeIp || '-', FLAGS: flagList(b.flags),
  })), `${what}: backend rows = JSON`);
}

function ctTable(t: Test, table: string, json: ConntrackView, what: string): void {
  const { body, footer } = splitFooter(table);
  t.equal(footer, `${json.entries.length} of ${json.total} entries`, `${what}: footer`);
  const parsed = parseTable(body);
  t.strictSame(parsed.headers, ['PROTOCOL', 'DIRECTION', 'STATE', 'CLIENT', 'FRONTEND', 'BACKEND', 'SERVICE', 'AGE_SEC', 'IDLE_SEC', 'FLAGS'], `${what}: columns`);
  // Ages tick between the two runs: compare them within a second.
  t.strictSame(parsed.rows.map(({ AGE_SEC: _a, IDLE_SEC: _i, ...r }) => r), json.entries.map((e) => ({
    PROTOCOL: e.protocol, DIRECTION: e.direction, STATE: e.state, CLIENT: hostPort(e.client), FRONTEND: hostPort(e.frontend),
    BACKEND: hostPort(e.backend), SERVICE: e.service, FLAGS: flagList(e.flags),
  })), `${what}: rows = JSON`);
  parsed.rows.forEach((r, i) => {
    const e = json.entries[i];
    if (e && Math.abs(Number(r.AGE_SEC) - e.ageSec) > 1) t.fail(`${what}: row ${i} AGE_SEC ${r.AGE_SEC} vs JSON ${e.ageSec}`);
  });
}

// ---- the test ---------------------------------------------------------------------------------------

t.test('sluicectl against a running agent, then with the agent stopped', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  await program(bed);
  const agent = bed.startAgent();
  await bed.waitForSynced();
  await bed.waitForServices('4 service ports', (s) => s.length === 4);

  let held: HeldConnection | undefined;
  /** The pods the sticky service pinned the client pod to, through each path. */
  let stickyPod: { tc: string; connect: string } | undefined;
  let beforeStop: { services: ServicesView; counters: CountersView } | undefined;

  await t.test('status', async (t) => {
    const { table, json } = await ctlBoth<StatusView>(bed, ['status']);
    t.equal(json.version, VERSION, 'version from package.json');
    t.equal(json.agentRunning, true);
    t.equal(json.nodeName, 'e2e-node');
    t.equal(json.pinDir, bed.pinDir);
    t.match(json.sync, { state: 'synced', sourcesSynced: true, servicePortsProgrammed: 4 });
    t.ok(json.sync.syncCount >= 1, 'at least one sync');
    t.ok(json.sync.lastSyncAt && Date.parse(json.sync.lastSyncAt) >= Date.parse(json.startedAt), 'last sync after the start');
    t.ok((json.sync.lastSyncDurationMs ?? -1) >= 0, 'sync duration');
    t.strictSame(json.errors, [], 'no errors');
    t.match(json.config, { nodeName: 'e2e-node', manifestsDir: bed.manifestsDir, pinDir: bed.pinDir, cgroupPath: bed.clientCgroup, adminSocket: bed.socket, interfacePatterns: [bed.ifacePattern], logLevel: 'info' });

    // Programs: 8 connect-time programs (both families) on the test cgroup, 2 TC programs on each pod veth,
    // with the program ids the kernel reports for those hooks.
    const cg = json.programs.filter((p) => p.hook === 'cgroup');
    t.strictSame(cg.map((p) => p.program).sort(), [
      'sl_connect4', 'sl_connect6', 'sl_getpeername4', 'sl_getpeername6', 'sl_recvmsg4', 'sl_recvmsg6', 'sl_sendmsg4', 'sl_sendmsg6',
    ], 'cgroup programs');
    t.ok(cg.every((p) => p.target === bed.clientCgroup && p.attached && p.progId > 0), 'cgroup programs attached to the test cgroup only');
    const kernelCg = await kernelCgroupAttachments(bed.clientCgroup);
    t.strictSame(kernelCg.map((k) => k.id).sort(), cg.map((p) => p.progId).sort(), 'cgroup program ids = bpftool cgroup show');
    for (const p of cg) t.equal(kernelCg.find((k) => k.id === p.progId)?.name, p.program.slice(0, 15), `kernel name of ${p.program}`);
    const tc = json.programs.filter((p) => p.hook === 'tc');
    const veths = bed.topo.pods.map((p) => p.hostIfname).sort();
    t.strictSame([...new Set(tc.map((p) => p.target))].sort(), veths, 'TC programs on every pod veth, nothing else');
    t.strictSame(tc.map((p) => `${p.target} ${p.direction} ${p.program}`).sort(),
      veths.flatMap((v) => [`${v} egress sl_tc_to_pod`, `${v} ingress sl_tc_from_pod`]).sort(), 'from-pod on ingress, to-pod on egress');
    const kernelTc = await kernelTcAttachments(bed.topo.nodeNs);
    t.strictSame(kernelTc.map((k) => `${k.devname} ${k.direction} ${k.id}`).sort(), tc.map((p) => `${p.target} ${p.direction} ${p.progId}`).sort(),
      'TC attachments and ids = bpftool net show in the node namespace');
    t.ok(json.programs.every((p) => p.attached && p.error === undefined), 'all attached, no errors');

    // The table says the same thing in the same words.
    const [head = '', rest = ''] = table.split('\nPROGRAMS\n');
    const kv = parseKeyValues(head);
    t.strictSame(kv, {
      version: VERSION, agentRunning: 'yes', nodeName: 'e2e-node', startedAt: json.startedAt, pinDir: bed.pinDir,
      'sync.state': json.sync.state, 'sync.sourcesSynced': 'yes', 'sync.lastSyncAt': cell(json.sync.lastSyncAt),
      'sync.lastSyncDurationMs': cell(json.sync.lastSyncDurationMs), 'sync.syncCount': cell(json.sync.syncCount),
      'sync.servicePortsProgrammed': '4', kernel: json.kernel?.release,
      ...(json.maglev ? Object.fromEntries(Object.entries(json.maglev).map(([k, v]) => [`maglev.${k}`, cell(v)])) : {}),
    }, 'status head = JSON');
    t.ok(json.maglev, 'the Maglev tables are reported (external traffic runs on this kernel)');
    const sec = sections('PROGRAMS\n' + rest);
    t.strictSame(Object.keys(sec), ['PROGRAMS', 'OBJECTS', 'KERNEL FEATURES', 'ERRORS', 'CONFIG'], 'sections');
    const objects = parseTable(sec.OBJECTS ?? '');
    t.strictSame(objects.headers, ['OBJECT', 'IDENTITY', 'PROGRAMS', 'NOT REUSED BECAUSE']);
    t.strictSame(objects.rows, (json.objects ?? []).map((o) => ({ OBJECT: o.object, IDENTITY: o.identity, PROGRAMS: o.reused ? 'reused' : 'loaded', 'NOT REUSED BECAUSE': o.notReused ?? '' })),
      'OBJECTS rows = JSON (whether each object\'s programs were reused from the previous start)');
    t.ok((json.objects ?? []).some((o) => o.object === 'tc'), 'tc among the objects');
    const programs = parseTable(sec.PROGRAMS ?? '');
    t.strictSame(programs.headers, ['PROGRAM', 'HOOK', 'TARGET', 'DIRECTION', 'PROG_ID', 'ATTACHED', 'ERROR']);
    t.strictSame(programs.rows, json.programs.map((p) => ({
      PROGRAM: p.program, HOOK: p.hook, TARGET: p.target, DIRECTION: p.direction ?? '-', PROG_ID: cell(p.progId), ATTACHED: cell(p.attached), ERROR: p.error ?? '',
    })), 'PROGRAMS rows = JSON');
    t.equal(sec.ERRORS?.trim(), '(none)');
    const config = parseKeyValues(sec.CONFIG ?? '');
    t.equal(config.pinDir, bed.pinDir);
    t.equal(config.cgroupPath, bed.clientCgroup);
    t.equal(config.interfacePatterns, bed.ifacePattern);
    t.equal(config['ctTimeouts.tcpEstablished'], cell((json.config.ctTimeouts as Record<string, number>).tcpEstablished));
  });

  await t.test('the admin socket: root-only; malformed requests get a 4xx with a JSON error', async (t) => {
    const sock = statSync(bed.socket);
    t.ok(sock.isSocket(), 'a Unix socket');
    t.equal(sock.mode & 0o777, 0o600, 'socket 0600');
    t.equal(sock.uid, 0, 'owned by root');
    t.equal(statSync(dirname(bed.socket)).mode & 0o777, 0o700, 'directory 0700');
    const nobody = await ctlAsNobody(bed, ['status']);
    t.equal(nobody.code, 1, 'non-root: exit 1');
    t.equal(nobody.stdout, '', 'non-root: nothing on stdout (no pinned-map fallback)');
    t.match(nobody.stderr, `sluicectl: permission denied on ${bed.socket}: the admin socket is root-only; run sluicectl as root`);

    const cases: [string, string, string | undefined, number, RegExp, string?][] = [
      ['POST', '/v1/log-level', '{"level":', 400, /not valid JSON/],
      ['POST', '/v1/log-level', '["debug"]', 400, /must be a JSON object/],
      ['POST', '/v1/log-level', '{"level":"loud"}', 400, /level/],
      ['POST', '/v1/log-level', '{"level":"info","extra":1}', 400, /unknown body field "extra"/],
      ['POST', '/v1/ct/flush', '{}', 400, /body field "service" is required/],
      ['POST', '/v1/log-level', 'level=debug', 415, /application\/json/, 'application/x-www-form-urlencoded'],
      ['POST', '/v1/log-level', JSON.stringify({ level: 'x'.repeat(20_000) }), 413, /larger than/],
      ['GET', '/v1/ct?client=not-an-ip', undefined, 400, /client/],
      ['GET', '/v1/status?verbose=1', undefined, 400, /unknown query parameter "verbose"/],
      ['GET', '/v1/nope', undefined, 404, /./],
      ['DELETE', '/v1/status', undefined, 405, /./],
    ];
    for (const [method, path, body, status, message, type] of cases) {
      const r = await adminHttp(bed.socket, method, path, body, type);
      const what = `${method} ${path}${body ? ` ${body.slice(0, 30)}` : ''}`;
      t.equal(r.status, status, `${what}: ${status}`);
      t.match(r.headers['content-type'], /application\/json/, `${what}: JSON`);
      t.match((JSON.parse(r.body) as { error?: string }).error, message, `${what}: error says what is wrong`);
      if (status === 405) t.match(r.headers.allow, /GET/, `${what}: Allow header`);
    }
    const garbage = await adminRaw(bed.socket, 'THIS IS NOT HTTP\r\n\r\n');
    t.match(garbage, /^HTTP\/1\.1 400 /, 'not HTTP at all: 400');
    t.match(garbage, /"error":"bad request: /);
    t.equal((await adminHttp(bed.socket, 'GET', '/v1/status')).status, 200, 'the agent still answers');
    t.match((await bed.status()).config, { logLevel: 'info' }, 'nothing changed');
  });

  await t.test('services: manifests ⇄ maps ⇄ table', async (t) => {
    const raw = await readRawMaps(bed.pinDir);
    const { table, json } = await ctlBoth<ServicesView>(bed, ['services']);
    t.strictSame(json, { services: SPECS.map((s) => expectedService(raw, s)) }, 'JSON = the maps');
    for (const s of SPECS) {
      const fe = rawFrontend(raw, s);
      t.equal(raw.names.get(fe.svcId), s.key, `${s.key}: sl_svc_meta names svc_id ${fe.svcId}`);
      t.equal(fe.count, s.pods.length, `${s.key}: count = ready endpoints`);
      const cluster = raw.backends.filter((b) => b.backendId === fe.backendId && b.ordinal < fe.count);
      t.strictSame(cluster.map((b) => b.ip).sort(), s.pods.map((p) => POD_IP[p]).sort(), `${s.key}: cluster backends = the slice's endpoints`);
      t.ok(cluster.every((b) => b.port === s.targetPort && b.flags === 1), `${s.key}: backends on ${s.targetPort}, flagged local`);
      t.equal(fe.flags, s.flags.includes('affinity') ? 4 : 0, `${s.key}: frontend flags`);
      t.equal(fe.affinityTimeoutSec, s.affinitySec, `${s.key}: affinity timeout`);
    }
    t.equal(new Set(json.services.map((s) => s.svcId)).size, 4, 'distinct svc ids');
    // Every endpoint runs on node e2e-node, whose Node object gives InternalIP 192.0.2.1; the
    // backend entries' node_addr (NODE_IP, for forwarding and DSR) should say so.
    t.strictSame([...new Set(raw.backends.map((b) => b.nodeIp))], ['192.0.2.1'], 'sl_backends4 node_addr = the endpoints\' node address');
    const { body, footer } = splitFooter(table);
    t.equal(footer, '4 service ports');
    const parsed = parseTable(body);
    t.strictSame(parsed.headers, ['SERVICE', 'SVC_ID', 'BACKEND_ID', 'CLUSTER_COUNT', 'LOCAL_COUNT', 'FLAGS', 'FRONTEND', 'KIND', 'BACKEND', 'SET', 'BACKEND_FLAGS']);
    t.strictSame(parsed.rows, servicesRows(json), 'table rows = JSON');
    // Golden rows for the service with no endpoints and the first line of the affinity one.
    t.strictSame(parsed.rows[0], {
      SERVICE: 'e2e/empty:http/TCP/IPv4', SVC_ID: String(svcIdOf(raw, 'e2e/empty:http/TCP/IPv4')),
      BACKEND_ID: '0', CLUSTER_COUNT: '0', LOCAL_COUNT: '0', FLAGS: '-', FRONTEND: '10.96.0.30:80',
      KIND: 'ClusterIP', BACKEND: '(none)', SET: '', BACKEND_FLAGS: '',
    });
    t.match(parsed.rows[1], { SERVICE: STICKY, FLAGS: 'affinity', FRONTEND: '10.96.0.20:80', KIND: 'ClusterIP', SET: 'cluster', BACKEND_FLAGS: 'local' });
  });

  await t.test('nat dump, whole and filtered', async (t) => {
    const raw = await readRawMaps(bed.pinDir);
    const all = await ctlBoth<NatView>(bed, ['nat', 'dump']);
    const want = expectedNat(raw);
    t.strictSame(all.json, want, 'nat dump JSON = sl_frontends4 + sl_backends4');
    t.equal(all.json.frontends.length, 4);
    t.equal(all.json.backends.length, SPECS.reduce((n, s) => n + 2 * s.pods.length, 0), 'one cluster and one local slot per endpoint');
    natTables(t, all.table, all.json, 'nat dump');

    const webIds = new Set(SPECS.filter((s) => s.name === 'web').map((s) => rawFrontend(raw, s).backendId));
    const web = await ctlBoth<NatView>(bed, ['nat', 'dump', 'e2e/web']);
    t.strictSame(web.json, {
      frontends: want.frontends.filter((f) => f.service.startsWith('e2e/web:')),
      backends: want.backends.filter((b) => webIds.has(b.backendId)),
    }, 'nat dump e2e/web: both ports of web and their blocks only');
    natTables(t, web.table, web.json, 'nat dump e2e/web');

    const http = rawFrontend(raw, spec(WEB_HTTP));
    const vip = await ctlBoth<NatView>(bed, ['nat', 'dump', '10.96.0.10:80']);
    t.strictSame(vip.json, {
      frontends: want.frontends.filter((f) => f.ip === '10.96.0.10' && f.port === 80),
      backends: want.backends.filter((b) => b.backendId === http.backendId),
    }, 'nat dump VIP:port: that frontend and its block');
    natTables(t, vip.table, vip.json, 'nat dump 10.96.0.10:80');

    const port = { json: await bed.ctl<NatView>(['nat', 'dump', 'e2e/web:dns']) };
    t.strictSame(port.json.frontends.map((f) => f.service), ['e2e/web:dns/UDP/IPv4'], 'nat dump ns/name:port narrows to one port');

    const [unknown, noFe, bad] = await Promise.all([
      ctlRaw(bed, ['nat', 'dump', 'e2e/nope']), ctlRaw(bed, ['nat', 'dump', '10.96.0.99:80']), ctlRaw(bed, ['nat', 'dump', 'not a target']),
    ]);
    t.equal(unknown.code, 1, 'unknown service: exit 1');
    t.match(unknown.stderr, 'unknown service e2e/nope: it is not programmed on this node');
    t.equal(noFe.code, 1, 'unknown frontend: exit 1');
    t.match(noFe.stderr, 'no frontend 10.96.0.99:80 is programmed on this node');
    t.equal(bad.code, 2, 'malformed target: usage error');
  });

  await t.test('traffic, then counters', async (t) => {
    const before = await bed.ctl<CountersView>(['counters']);
    t.ok(before.services.every((s) => s.packets + s.bytes + s.connections + s.rejected === 0), 'no traffic yet: zeros');
    t.strictSame(before.services.map((s) => s.service), SPECS.map((s) => s.key), 'every programmed port listed, zeros included');

    const ctWeb = summarize(await bed.traffic('connect-time', '10.96.0.10', 80, 4));
    const tcWeb = summarize(await bed.traffic('tc', '10.96.0.10', 80, 3));
    const dns = summarize(await bed.traffic('connect-time', '10.96.0.10', 53, 2, 'udp'));
    const stickyTc = summarize(await bed.traffic('tc', '10.96.0.20', 80, 3));
    const stickyCt = summarize(await bed.traffic('connect-time', '10.96.0.20', 80, 2));
    const empty = [...await bed.traffic('connect-time', '10.96.0.30', 80, 1), ...await bed.traffic('tc', '10.96.0.30', 80, 1)];
    t.match({ ctWeb, tcWeb, dns, stickyTc, stickyCt }, { ctWeb: { ok: 4 }, tcWeb: { ok: 3 }, dns: { ok: 2 }, stickyTc: { ok: 3 }, stickyCt: { ok: 2 } }, 'traffic answered');
    t.equal(Object.keys(stickyTc.pods).length, 1, `affinity (TC path): one pod (${JSON.stringify(stickyTc.pods)})`);
    t.equal(Object.keys(stickyCt.pods).length, 1, `affinity (connect-time): one pod (${JSON.stringify(stickyCt.pods)})`);
    stickyPod = { tc: Object.keys(stickyTc.pods)[0] ?? '', connect: Object.keys(stickyCt.pods)[0] ?? '' };
    t.strictSame(empty.map((a) => a.error?.code), ['ECONNREFUSED', 'ECONNREFUSED'], 'no endpoints: refused on both paths');

    // A long-lived connection through the TC path, for ct dump.
    held = await holdTcpConnection(bed, bed.client.ns, '10.96.0.10', 80);
    t.strictSame(held.greeting.peer, held.local, 'the backend sees the client address and port');

    const raw = await readRawMaps(bed.pinDir);
    const { table, json } = await ctlBoth<CountersView>(bed, ['counters']);
    const { external, ...serviceAndDrops } = json;
    t.strictSame(serviceAndDrops, expectedCounters(raw), 'counters JSON = sl_svc_counters (summed over CPUs) + sl_drop_counters + sl_ipv6_untranslated');
    // The agent runs with the default host-interface patterns: the external (host.bpf.o) counters
    // per frontend kind are shown too, zeros here (nothing enters from outside this node).
    t.strictSame(external?.map((e) => e.kind), ['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer'], 'external counters per frontend kind');
    const by = (key: string) => json.services.find((s) => s.service === key)!;
    t.equal(by(WEB_HTTP).connections, 4 + 3 + 1, 'web http: 4 connect-time + 3 TC + 1 held connection');
    t.ok(by(WEB_HTTP).packets > 0 && by(WEB_HTTP).bytes > by(WEB_HTTP).packets * 40, 'web http: TC packets and bytes');
    t.equal(by('e2e/web:dns/UDP/IPv4').connections, 2, 'web dns: 2 connected UDP sockets');
    t.equal(by('e2e/web:dns/UDP/IPv4').packets, 0, 'web dns: connect-time only, no TC packets');
    t.equal(by(STICKY).connections, 5, 'sticky: 5 connections');
    t.equal(by('e2e/empty:http/TCP/IPv4').rejected, 2, 'empty: 2 rejected');
    t.equal(by('e2e/empty:http/TCP/IPv4').connections, 0, 'empty: no connection balanced');
    t.ok((json.drops.find((d) => d.reason === 'no_backend')?.packets ?? 0) >= 1, 'no_backend drops counted');
    t.strictSame(json.drops.map((d) => d.reason), DROP_REASON_NAMES.slice(1), 'every drop reason, zeros included');

    const sec = sections(table);
    t.strictSame(Object.keys(sec), ['SERVICES', 'DROPS', 'EXTERNAL', 'UNTRANSLATED']);
    t.strictSame(parseTable(sec.UNTRANSLATED ?? '').rows, [{ REASON: 'ipv6-extension-headers', PACKETS: cell(json.ipv6Untranslated ?? -1) }], 'UNTRANSLATED row = JSON');
    const svc = parseTable(sec.SERVICES ?? '');
    t.strictSame(svc.headers, ['SERVICE', 'SVC_ID', 'PACKETS', 'BYTES', 'CONNECTIONS', 'REJECTED']);
    t.strictSame(svc.rows, json.services.map((s) => ({
      SERVICE: s.service, SVC_ID: cell(s.svcId), PACKETS: cell(s.packets), BYTES: cell(s.bytes), CONNECTIONS: cell(s.connections), REJECTED: cell(s.rejected),
    })), 'SERVICES rows = JSON');
    const drops = parseTable(sec.DROPS ?? '');
    t.strictSame(drops.headers, ['REASON', 'CODE', 'PACKETS']);
    t.strictSame(drops.rows, json.drops.map((d) => ({ REASON: d.reason, CODE: cell(d.code), PACKETS: cell(d.packets) })), 'DROPS rows = JSON');
  });

  await t.test('ct dump shows the live connection', async (t) => {
    if (!held) return t.fail('no held connection');
    const echoedAt = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns
    const echo = await held.echo('still-there');
    t.equal(echo.pod, held.greeting.pod, 'the connection is alive, same backend');
    const backendIp = POD_IP[held.greeting.pod as WebPod];
    const raw = await readRawMaps(bed.pinDir);
    const { table, json } = await ctlBoth<ConntrackView>(bed, ['ct', 'dump']);
    t.equal(json.total, raw.ct.length, 'total = entries in sl_ct4');
    t.strictSame(json.entries.map(ctShape), expectedCt(raw), 'every entry = sl_ct4, decoded');
    const nowNs = process.hrtime.bigint();
    for (const e of json.entries) {
      const r = raw.ct.find((c) => (e.direction === 'forward' ? c.saddr === e.client.ip && c.sport === e.client.port && c.type === CT_FORWARD
        : c.daddr === e.client.ip && c.dport === e.client.port && c.type !== CT_FORWARD) && c.proto === (e.protocol === 'TCP' ? 6 : 17));
      if (!r) continue;
      const age = Number((nowNs - r.createdNs) / 1_000_000_000n);
      if (Math.abs(age - e.ageSec) > 2) t.fail(`ageSec ${e.ageSec} vs created_ns ${age} s ago`);
      const idle = Number((nowNs - r.lastSeenNs) / 1_000_000_000n);
      if (Math.abs(idle - e.idleSec) > 2) t.fail(`idleSec ${e.idleSec} vs last_seen_ns ${idle} s ago`);
    }
    const mine = json.entries.filter((e) => e.client.ip === CLIENT_IP && e.client.port === held!.local.port);
    t.strictSame(mine.map(ctShape), ['forward', 'reverse'].map((direction) => ({
      protocol: 'TCP', direction, state: 'ESTABLISHED', client: { ip: CLIENT_IP, port: held!.local.port }, frontend: { ip: '10.96.0.10', port: 80 },
      backend: { ip: backendIp, port: 8080 }, natSource: '', svcId: svcIdOf(raw, WEB_HTTP), service: WEB_HTTP, flags: [],
    })), 'the live connection: both directions, ESTABLISHED, right service, client and backend');
    // Just used: both entries were refreshed by the echo above (last_seen_ns after it), and
    // idleSec says so (checked against last_seen_ns for every entry above). Not a wall-clock
    // bound: on a loaded machine the dump may come seconds after the echo.
    const mineRaw = raw.ct.filter((c) => c.proto === 6 && ((c.saddr === CLIENT_IP && c.sport === held!.local.port) || (c.daddr === CLIENT_IP && c.dport === held!.local.port)));
    t.ok(mineRaw.length === 2 && mineRaw.every((c) => c.lastSeenNs >= echoedAt), 'just used: both entries refreshed by the echo', { mineRaw: mineRaw.map((c) => String(c.lastSeenNs)), echoedAt: String(echoedAt) });
    ctTable(t, table, json, 'ct dump');

    // Filters, alone and combined; the table of a filtered dump agrees with its JSON.
    const filtered = async (args: string[]) => (await ctlBoth<ConntrackView>(bed, ['ct', 'dump', ...args]));
    const svc = { json: await bed.ctl<ConntrackView>(['ct', 'dump', '--service', 'e2e/web']) };
    t.ok(svc.json.entries.length >= 2 && svc.json.entries.every((e) => e.service.startsWith('e2e/web:')), '--service e2e/web');
    t.equal(svc.json.entries.length, json.entries.filter((e) => e.service.startsWith('e2e/web:')).length, '--service keeps all of web');
    const client = { json: await bed.ctl<ConntrackView>(['ct', 'dump', '--client', CLIENT_IP]) };
    t.equal(client.json.entries.length, json.entries.length, '--client: every entry is from the client pod');
    const nobody = await filtered(['--client', '10.244.0.99']);
    t.strictSame({ total: nobody.json.total, entries: nobody.json.entries }, { total: json.total, entries: [] }, '--client of nobody: none, total unchanged');
    ctTable(t, nobody.table, nobody.json, 'ct dump --client nobody');
    const be = { json: await bed.ctl<ConntrackView>(['ct', 'dump', '--backend', `${backendIp}:8080`]) };
    t.ok(be.json.entries.every((e) => e.backend.ip === backendIp && e.backend.port === 8080) && be.json.entries.some((e) => e.client.port === held!.local.port), '--backend IP:port');
    const other = (['web-a', 'web-b'] as const).map((p) => POD_IP[p]).find((ip) => ip !== backendIp)!;
    const beOther = { json: await bed.ctl<ConntrackView>(['ct', 'dump', '--backend', other]) };
    t.notOk(beOther.json.entries.some((e) => e.client.port === held!.local.port), '--backend of the other pod: not the live connection');
    const combined = await filtered(['--service', 'e2e/web:http', '--client', CLIENT_IP, '--backend', backendIp]);
    t.ok(combined.json.entries.every((e) => e.service === WEB_HTTP && e.backend.ip === backendIp), 'combined filters');
    t.equal(combined.json.entries.filter((e) => e.client.port === held!.local.port).length, 2, 'combined filters keep the live connection');
    ctTable(t, combined.table, combined.json, 'ct dump combined');
    const badClient = await ctlRaw(bed, ['ct', 'dump', '--client', 'not-an-ip']);
    t.equal(badClient.code, 2, 'malformed --client: usage error');
    t.match(badClient.stderr, 'not-an-ip');
    const unknown = await ctlRaw(bed, ['ct', 'dump', '--service', 'e2e/nope']);
    t.equal(unknown.code, 1, 'unknown service: exit 1');
  });

  await t.test('aff dump', async (t) => {
    if (!stickyPod) return t.fail('no sticky traffic');
    const raw = await readRawMaps(bed.pinDir);
    const { table, json } = await ctlBoth<AffinityView>(bed, ['aff', 'dump']);
    const stickyId = svcIdOf(raw, STICKY);
    // Two entries for the one client pod: the TC path keys affinity by the source address; the
    // connect-time path, which runs before a source address exists, by the pod's network
    // namespace, folded into 0.0.0.0/8 (bpf/lib/sock.h sl_sock_client_id4).
    t.equal(raw.affinity.length, 2, 'two sl_affinity4 entries: one per path');
    const nsEntry = raw.affinity.find((a) => a.client !== CLIENT_IP);
    t.match(nsEntry?.client, /^0\.\d+\.\d+\.\d+$/, 'connect-time identity in 0.0.0.0/8');
    t.notOk(nsEntry?.client === '0.0.0.0', 'connect-time identity is not 0.0.0.0');
    const want = [
      { svcId: stickyId, service: STICKY, client: nsEntry?.client ?? '?', backend: { ip: POD_IP[stickyPod.connect as WebPod], port: 8080 }, timeoutSec: 600, expired: false },
      { svcId: stickyId, service: STICKY, client: CLIENT_IP, backend: { ip: POD_IP[stickyPod.tc as WebPod], port: 8080 }, timeoutSec: 600, expired: false },
    ];
    t.strictSame(json.entries.map(({ idleSec: _i, ...e }) => e), want, 'each client identity → the pod it was pinned to, timeout 600 s, live');
    t.strictSame(raw.affinity.map((a) => ({ svcId: a.svcId, client: a.client, backend: { ip: a.backendIp, port: a.backendPort } }))
      .sort((a, b) => a.client.localeCompare(b.client, 'en', { numeric: true })),
    want.map(({ svcId, client, backend }) => ({ svcId, client, backend })), 'JSON = sl_affinity4');
    const nowNs = process.hrtime.bigint();
    for (const e of json.entries) {
      const r = raw.affinity.find((a) => a.client === e.client);
      const idle = Number((nowNs - (r?.lastUsedNs ?? 0n)) / 1_000_000_000n);
      t.ok(Math.abs(e.idleSec - idle) <= 2, `${e.client}: idleSec ${e.idleSec} = now - last_used_ns (${idle})`);
    }
    const { body, footer } = splitFooter(table);
    t.equal(footer, '2 entries');
    const parsed = parseTable(body);
    t.strictSame(parsed.headers, ['SERVICE', 'CLIENT', 'BACKEND', 'IDLE_SEC', 'TIMEOUT_SEC', 'EXPIRED']);
    t.strictSame(parsed.rows.map(({ IDLE_SEC: _i, ...r }) => r), json.entries.map((e) => ({
      SERVICE: e.service, CLIENT: e.client, BACKEND: hostPort(e.backend), TIMEOUT_SEC: cell(e.timeoutSec), EXPIRED: cell(e.expired),
    })), 'table rows = JSON');
  });

  await t.test('maps', async (t) => {
    const raw = await readRawMaps(bed.pinDir);
    const { table, json } = await ctlBoth<MapsView>(bed, ['maps']);
    t.strictSame(json.maps.map((m) => m.name), [...MAPS].sort(), 'every map, by name');
    for (const m of json.maps) {
      const k = await bpftoolShow(`${bed.pinDir}/${m.name}`);
      t.equal(m.type, k.type, `${m.name}: type = kernel's`);
      t.equal(m.maxEntries, k.max_entries, `${m.name}: capacity = kernel's`);
      t.equal(m.entries, raw.entryCounts[m.name], `${m.name}: entries = the map's`);
      t.equal(m.fill, Math.round((m.entries / m.maxEntries) * 10_000) / 10_000, `${m.name}: fill`);
    }
    t.equal(json.maps.find((m) => m.name === 'sl_frontends4')?.entries, 4);
    t.equal(json.maps.find((m) => m.name === 'sl_svc_meta')?.entries, 4, 'one name per service port');
    // Independently of the agent: every ClusterIP address among the frontends is listed, flagged REJECT_UNKNOWN.
    t.ok(raw.vips.size > 0 && [...raw.vips.values()].every((f) => f === 1), 'sl_vips4: ClusterIPs listed with REJECT_UNKNOWN', { vips: [...raw.vips] });
    t.ok([...raw.vips.keys()].every((ip) => raw.frontends.some((f) => f.ip === ip)), 'sl_vips4: each listed address is a programmed frontend address');
    const parsed = parseTable(table);
    t.strictSame(parsed.headers, ['NAME', 'TYPE', 'ENTRIES', 'MAX_ENTRIES', 'FILL']);
    t.strictSame(parsed.rows, json.maps.map((m) => ({ NAME: m.name, TYPE: m.type, ENTRIES: cell(m.entries), MAX_ENTRIES: cell(m.maxEntries), FILL: cell(m.fill) })));
  });

  await t.test('ct flush --service', async (t) => {
    let raw = await readRawMaps(bed.pinDir);
    const stickyId = svcIdOf(raw, STICKY);
    const webIds = new Set(SPECS.filter((s) => s.name === 'web').map((s) => rawFrontend(raw, s).svcId));
    const stickyCount = raw.ct.filter((c) => c.svcId === stickyId).length;
    const webCount = raw.ct.filter((c) => webIds.has(c.svcId)).length;
    t.ok(stickyCount >= 6, `sticky has TC conntrack entries (${stickyCount})`);
    const flushTable = await ctlRaw(bed, ['ct', 'flush', '--service', 'e2e/sticky']);
    t.equal(flushTable.code, 0);
    t.strictSame(parseKeyValues(flushTable.stdout), { service: 'e2e/sticky', deleted: String(stickyCount) }, 'table: service and deleted');
    raw = await readRawMaps(bed.pinDir);
    t.equal(raw.ct.filter((c) => c.svcId === stickyId).length, 0, 'sticky entries gone from sl_ct4');
    t.equal(raw.ct.filter((c) => webIds.has(c.svcId)).length, webCount, 'web entries untouched');

    const flushJson = await ctlRaw(bed, ['ct', 'flush', '--service', 'e2e/web', '-o', 'json']);
    t.equal(flushJson.code, 0);
    t.strictSame(JSON.parse(flushJson.stdout) as FlushResult, { service: 'e2e/web', deleted: webCount }, 'JSON: both ports of web');
    raw = await readRawMaps(bed.pinDir);
    t.equal(raw.ct.length, 0, 'sl_ct4 empty');
    t.strictSame((await bed.ctl<ConntrackView>(['ct', 'dump', '--service', 'e2e/web'])).entries, [], 'ct dump agrees');
    const unknown = await ctlRaw(bed, ['ct', 'flush', '--service', 'e2e/nope']);
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, 'unknown service e2e/nope');
    const missing = await ctlRaw(bed, ['ct', 'flush']);
    t.equal(missing.code, 2, 'no --service: usage error');
    t.match(missing.stderr, '--service ns/name is required');
    await held?.close();
  });

  await t.test('log-level changes what the agent logs', async (t) => {
    const levelOf = (l: { level?: unknown }) => l.level;
    t.equal(agent.logs.filter((l) => levelOf(l) === 'debug').length, 0, 'started at info: no debug lines');
    const on = await ctlRaw(bed, ['log-level', 'debug']);
    t.equal(on.code, 0);
    t.strictSame(parseKeyValues(on.stdout), { level: 'debug', previous: 'info' });
    const mark = agent.logs.length;
    const during = await bed.status();
    t.equal(during.config.logLevel, 'debug', 'status shows the level in effect');
    const line = await agent.waitForLog((l) => levelOf(l) === 'debug' && l.msg === 'admin request' && l.url === '/v1/status', 'a debug line for the status request', 5000, mark);
    t.match(line, { component: 'admin', method: 'GET', status: 200 }, 'debug: the admin request is logged');
    const off = await ctlRaw(bed, ['log-level', 'info', '-o', 'json']);
    t.strictSame(JSON.parse(off.stdout) as LogLevelResult, { level: 'info', previous: 'debug' });
    const mark2 = agent.logs.length;
    await bed.status();
    await new Promise((r) => setTimeout(r, 500));
    t.strictSame(agent.logs.slice(mark2).filter((l) => levelOf(l) === 'debug'), [], 'back at info: no debug lines');
    const bad = await ctlRaw(bed, ['log-level', 'loud']);
    t.equal(bad.code, 2, 'unknown level: usage error');
  });

  await t.test('before the stop: what the running agent says', async () => {
    const [services, counters] = await Promise.all([bed.ctl<ServicesView>(['services']), bed.ctl<CountersView>(['counters'])]);
    beforeStop = { services, counters };
  });

  await t.test('agent stopped: sluicectl reads the pinned maps and says so', async (t) => {
    const exit = await agent.kill('SIGTERM');
    t.strictSame(exit, { code: 0, signal: null }, 'SIGTERM: clean exit');
    t.ok(agent.find((l) => /stopping/.test(l.msg ?? '')).length > 0, 'logged the stop');
    t.strictSame(agent.find((l) => ['warn', 'error', 'fatal'].includes(String(l.level))), [], 'no warnings or errors in the agent log');
    t.strictSame(agent.otherOutput, [], 'only JSON lines on stdout');
    t.notOk(existsSync(bed.socket), 'admin socket removed');
    const down = (r: { stderr: string }, what: string) => {
      t.match(r.stderr, 'agent is not running', `${what}: says the agent is down`);
      t.match(r.stderr, `showing pinned maps read-only from ${bed.pinDir}`, `${what}: names the pin dir`);
    };
    const status = await ctlBoth<StatusView>(bed, ['status']);
    down({ stderr: status.tableStderr }, 'status');
    down({ stderr: status.jsonStderr }, 'status -o json');
    t.match(status.json, { agentRunning: false, pinDir: bed.pinDir, version: VERSION, sync: { servicePortsProgrammed: 4 } });
    t.match(parseKeyValues(status.table.split('\nPROGRAMS\n')[0] ?? ''), { agentRunning: 'no', 'sync.servicePortsProgrammed': '4' });

    // Same answers as the running agent gave, and as the maps hold (read with bpftool).
    const raw = await readRawMaps(bed.pinDir);
    const [services, nat, webOnly, counters, maps, ct, aff] = await Promise.all([
      ctlBoth<ServicesView>(bed, ['services']), ctlBoth<NatView>(bed, ['nat', 'dump']), bed.ctl<NatView>(['nat', 'dump', 'e2e/web']),
      bed.ctl<CountersView>(['counters']), bed.ctl<MapsView>(['maps']), bed.ctl<ConntrackView>(['ct', 'dump']), bed.ctl<AffinityView>(['aff', 'dump']),
    ]);
    down({ stderr: services.jsonStderr }, 'services');
    t.strictSame(services.json, beforeStop?.services, 'same services, ids and backends as the running agent said');
    t.strictSame(parseTable(splitFooter(services.table).body).rows, servicesRows(services.json), 'table = JSON');
    t.strictSame(nat.json, expectedNat(raw), 'nat dump = the maps');
    natTables(t, nat.table, nat.json, 'nat dump (agent down)');
    t.strictSame(webOnly.frontends.map((f) => f.service), ['e2e/web:dns/UDP/IPv4', WEB_HTTP], 'filters work without the agent');
    // The pinned-map fallback reads sl_svc_counters, sl_drop_counters and sl_ipv6_untranslated (not the external ones).
    t.strictSame(counters, {
      services: beforeStop?.counters.services, drops: beforeStop?.counters.drops, ipv6Untranslated: beforeStop?.counters.ipv6Untranslated,
    }, 'same counters as the running agent said');
    t.strictSame(counters, expectedCounters(raw), 'counters = the maps');
    t.strictSame(maps.maps.map((m) => [m.name, m.entries]), [...MAPS].sort().map((m) => [m, raw.entryCounts[m]]), 'maps: entries = the maps');
    t.strictSame(ct.entries.map(ctShape), expectedCt(raw), 'ct dump = sl_ct4');
    t.strictSame(aff.entries.map((e) => [e.svcId, e.client, hostPort(e.backend), e.timeoutSec]),
      raw.affinity.map((a) => [a.svcId, a.client, `${a.backendIp}:${a.backendPort}`, 600]).sort((a, b) => String(a[1]).localeCompare(String(b[1]), 'en', { numeric: true })),
      'aff dump = sl_affinity4');

    const [level, flush] = await Promise.all([ctlRaw(bed, ['log-level', 'debug']), ctlRaw(bed, ['ct', 'flush', '--service', 'e2e/web'])]);
    t.equal(level.code, 1, 'log-level needs the agent');
    t.match(level.stderr, 'needs a running agent');
    t.equal(flush.code, 1, 'ct flush needs the agent');
    t.match(flush.stderr, 'needs a running agent');

    // And the pinned, attached dataplane keeps serving while the agent is away.
    const after = summarize(await bed.traffic('tc', '10.96.0.10', 80, 2));
    t.equal(after.ok, 2, 'the service still answers through the TC path');
  });
});
