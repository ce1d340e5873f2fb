// Human tables for each admin view. Column headers are the JSON field names in UPPER_SNAKE
// (svcId → SVC_ID) and status labels are the JSON paths (sync.state), and numbers are printed
// as they are, so a table and `-o json` always say the same thing in the same words.
import { formatHostPort } from '../admin/filters.js';
import type {
  AffinityView, ConntrackView, CountersView, FlushResult, LogLevelResult, MapsView, NatView, ServicesView, StatusView,
} from '../admin/types.js';
import { renderKeyValues, renderTable, section } from './format-table.js';
import type { Cell, Column } from './format-table.js';

/** svcId → SVC_ID; the header for a JSON field. */
export function headerOf(field: string): string {
  return field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

const col = (field: string, right = false): Column => ({ header: headerOf(field), right });
const list = (items: readonly string[]): string => (items.length ? items.join(',') : '-');

function flatten(prefix: string, value: unknown, out: [string, Cell][]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, out);
  } else if (Array.isArray(value)) {
    out.push([prefix, value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',') || '-']);
  } else out.push([prefix, value as Cell]);
}

export function formatStatus(s: StatusView): string {
  const pairs: [string, Cell][] = [
    ['version', s.version],
    ['agentRunning', s.agentRunning],
    ['nodeName', s.nodeName],
    ['startedAt', s.startedAt],
    ['pinDir', s.pinDir],
    ...(s.kernel ? [['kernel', s.kernel.release] as [string, Cell]] : []),
  ];
  flatten('sync', s.sync, pairs);
  if (s.maglev) flatten('maglev', s.maglev, pairs);
  let out = renderKeyValues(pairs);
  out += '\n' + section('PROGRAMS', s.programs.length
    ? renderTable([col('program'), col('hook'), col('target'), col('direction'), col('progId', true), col('attached'), col('error')],
      s.programs.map((p) => [p.program, p.hook, p.target, p.direction ?? '-', p.progId, p.attached, p.error ?? '']))
    : '(none known)\n');
  if (s.objects?.length) {
    out += '\n' + section('OBJECTS', renderTable([col('object'), col('identity'), col('programs'), col('not reused because')],
      s.objects.map((o) => [o.object, o.identity, o.reused ? 'reused' : 'loaded', o.notReused ?? ''])));
  }
  if (s.kernel) {
    out += '\n' + section('KERNEL FEATURES', renderTable(
      [col('feature'), col('state'), col('since'), col('without it')],
      s.kernel.features.map((f) => [f.name, f.state, f.since, f.state === 'on' ? '' : `${f.without}${f.reason ? ` (${f.reason})` : ''}`]),
    ));
  }
  out += '\n' + section('ERRORS', s.errors.length
    ? renderTable([col('at'), col('component'), col('object'), col('message')],
      s.errors.map((e) => [e.at, e.component, e.object ?? '-', e.message]))
    : '(none)\n');
  const config: [string, Cell][] = [];
  flatten('', s.config, config);
  if (config.length) out += '\n' + section('CONFIG', renderKeyValues(config));
  return out;
}

export function formatServices(v: ServicesView): string {
  const rows: Cell[][] = [];
  for (const s of v.services) {
    const lines = Math.max(1, s.frontends.length, s.backends.length);
    for (let i = 0; i < lines; i++) {
      const f = s.frontends[i];
      const b = s.backends[i];
      rows.push([
        i === 0 ? s.key : '',
        i === 0 ? s.svcId : '',
        i === 0 ? s.backendId : '',
        i === 0 ? s.clusterCount : '',
        i === 0 ? s.localCount : '',
        i === 0 ? list(s.flags) : '',
        f ? formatHostPort(f) : '',
        f?.kind ?? '',
        b ? formatHostPort(b) : i === 0 ? '(none)' : '',
        b?.set ?? '',
        b ? list([...(b.local ? ['local'] : []), ...(b.terminating ? ['terminating'] : [])]) : '',
      ]);
    }
  }
  return renderTable(
    [col('service'), col('svcId', true), col('backendId', true), col('clusterCount', true), col('localCount', true), col('flags'), col('frontend'), col('kind'), col('backend'), col('set'), col('backendFlags')],
    rows,
  ) + `${v.services.length} service ports\n`;
}

export function formatNat(v: NatView): string {
  const fe = renderTable(
    [col('frontend'), col('protocol'), col('kind'), col('svcId', true), col('backendId', true), col('count', true), col('localCount', true),
      col('flags'), col('affinityTimeoutSec', true), col('service')],
    v.frontends.map((f) => [formatHostPort(f), f.protocol, f.kind, f.svcId, f.backendId, f.count, f.localCount, list(f.flags),
      f.affinityTimeoutSec, f.service]),
  );
  const be = renderTable(
    [col('backendId', true), col('ordinal', true), col('backend'), col('nodeIp'), col('flags')],
    v.backends.map((b) => [b.backendId, b.ordinal, formatHostPort(b), b.nodeIp || '-', list(b.flags)]),
  );
  return section('FRONTENDS', fe) + '\n' + section('BACKENDS', be);
}

export function formatConntrack(v: ConntrackView): string {
  return renderTable(
    [col('protocol'), col('direction'), col('state'), col('client'), col('frontend'), col('backend'), col('service'),
      col('ageSec', true), col('idleSec', true), col('flags')],
    v.entries.map((e) => [e.protocol, e.direction, e.state, formatHostPort(e.client), formatHostPort(e.frontend),
      formatHostPort(e.backend), e.service, e.ageSec, e.idleSec, list(e.flags)]),
  ) + `${v.entries.length} of ${v.total} entries\n`;
}

export function formatAffinity(v: AffinityView): string {
  return renderTable(
    [col('service'), col('client'), col('backend'), col('idleSec', true), col('timeoutSec', true), col('expired')],
    v.entries.map((e) => [e.service, e.client, formatHostPort(e.backend), e.idleSec, e.timeoutSec, e.expired]),
  ) + `${v.entries.length} entries\n`;
}

export function formatCounters(v: CountersView): string {
  const svc = renderTable(
    [col('service'), col('svcId', true), col('packets', true), col('bytes', true), col('connections', true), col('rejected', true)],
    v.services.map((s) => [s.service, s.svcId, s.packets, s.bytes, s.connections, s.rejected]),
  );
  const drops = renderTable([col('reason'), col('code', true), col('packets', true)], v.drops.map((d) => [d.reason, d.code, d.packets]));
  const external = v.external
    ? '\n' + section('EXTERNAL', renderTable(
      [col('kind'), col('packets', true), col('bytes', true), col('connections', true), col('refused', true)],
      v.external.map((e) => [e.kind, e.packets, e.bytes, e.connections, e.refused]),
    ))
    : '';
  // Passed, not dropped: packets the IPv6 TC path could not translate (fragments, ESP, ... : extension headers).
  const untranslated = v.ipv6Untranslated === undefined
    ? ''
    : '\n' + section('UNTRANSLATED', renderTable([col('reason'), col('packets', true)], [['ipv6-extension-headers', v.ipv6Untranslated]]));
  return section('SERVICES', svc) + '\n' + section('DROPS', drops) + external + untranslated;
}

export function formatMaps(v: MapsView): string {
  return renderTable(
    [col('name'), col('type'), col('entries', true), col('maxEntries', true), col('fill', true)],
    v.maps.map((m) => [m.name, m.type, m.entries, m.maxEntries, m.fill]),
  );
}

export function formatLogLevel(r: LogLevelResult): string {
  return renderKeyValues([['level', r.level], ['previous', r.previous]]);
}

export function formatFlush(r: FlushResult): string {
  return renderKeyValues([['service', r.service], ['deleted', r.deleted]]);
}
