// Parsing and applying the admin API's filters (service, frontend, client, backend). Shared by
// the server, sluicectl and the pinned-map reader, so a filter means the same thing everywhere.
// A bad value is a FilterError (HTTP 400) naming the field, the value and the accepted form.
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6FromBuffer, ipv6ToBuffer } from '../bpf/ip-bytes.js';
import { AdminError } from './types.js';
import type { ConntrackFilter, ConntrackView, HostPort, NatFilter, NatView, ServiceRef } from './types.js';

export class FilterError extends AdminError {
  constructor(field: string, value: string, expected: string) {
    super(400, `${field}: ${JSON.stringify(value)} is not ${expected}`);
    this.name = 'FilterError';
  }
}

// Kubernetes DNS labels (namespaces, service names) and port names: lowercase alphanumerics
// and '-', at most 63 characters, no leading or trailing '-'.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Parses `namespace/name` or `namespace/name:portName`. */
export function parseServiceRef(text: string, field = 'service'): ServiceRef {
  const m = /^([^/:]+)\/([^/:]+)(?::([^/:]*))?$/.exec(text.trim());
  const expected = 'a service as namespace/name (or namespace/name:port-name)';
  if (!m?.[1] || !m[2] || !DNS_LABEL.test(m[1]) || !DNS_LABEL.test(m[2])) {
    throw new FilterError(field, text, expected);
  }
  const ref: ServiceRef = { namespace: m[1], name: m[2] };
  if (m[3] !== undefined) {
    if (m[3] !== '' && !DNS_LABEL.test(m[3])) throw new FilterError(field, text, expected);
    ref.portName = m[3];
  }
  return ref;
}

export function formatServiceRef(ref: ServiceRef): string {
  return `${ref.namespace}/${ref.name}${ref.portName !== undefined ? `:${ref.portName}` : ''}`;
}

/** An IP in the form the maps decode to (IPv6 canonical), or null when it is not an IP. */
export function canonicalIp(text: string): string | null {
  if (isIPv4(text)) return text;
  if (isIPv6(text)) return ipv6FromBuffer(ipv6ToBuffer(text));
  return null;
}

export function parseIp(text: string, field: string): string {
  const ip = canonicalIp(text.trim());
  if (ip === null) throw new FilterError(field, text, 'an IPv4 or IPv6 address');
  return ip;
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

/**
 * Parses `IP:port` ( `[IPv6]:port` ) — or, with portOptional, also a bare IP. A bare IPv6
 * address is never read as having a port: brackets are required for that.
 */
export function parseHostPort(text: string, field: string, portOptional: true): { ip: string; port?: number };
export function parseHostPort(text: string, field: string, portOptional?: false): HostPort;
export function parseHostPort(text: string, field: string, portOptional = false): { ip: string; port?: number } {
  const value = text.trim();
  const expected = portOptional ? 'an address as IP or IP:port ([IPv6]:port)' : 'an address as IP:port ([IPv6]:port)';
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(value);
  let host: string | undefined;
  let portText: string | undefined;
  if (bracketed) [, host, portText] = bracketed;
  else if (v4) [, host, portText] = v4;
  else if (portOptional && isIPv6(value)) host = value;
  const ip = host === undefined ? null : canonicalIp(host);
  if (ip === null) throw new FilterError(field, text, expected);
  if (portText === undefined) {
    if (!portOptional) throw new FilterError(field, text, expected);
    return { ip };
  }
  const port = parsePort(portText);
  if (port === null) throw new FilterError(field, text, `${expected} with a port from 1 to 65535`);
  return { ip, port };
}

/** `namespace/name:portName/PROTOCOL/family`, the model's service-port key. */
export interface ServiceKeyParts {
  namespace: string;
  name: string;
  portName: string;
  protocol: string;
  family: string;
}

export function parseServiceKey(key: string): ServiceKeyParts | null {
  const m = /^([^/]+)\/([^/:]+):([^/]*)\/([^/]+)\/([^/]+)$/.exec(key);
  if (!m) return null;
  return { namespace: m[1] ?? '', name: m[2] ?? '', portName: m[3] ?? '', protocol: m[4] ?? '', family: m[5] ?? '' };
}

/** Whether a service-port key belongs to the referenced service (and port, when given). */
export function serviceKeyMatches(ref: ServiceRef, key: string): boolean {
  const parts = parseServiceKey(key);
  if (!parts) return false;
  return (
    parts.namespace === ref.namespace &&
    parts.name === ref.name &&
    (ref.portName === undefined || parts.portName === ref.portName)
  );
}

/** Parses the `nat` query: at most one of service=ns/name and frontend=VIP:port. */
export function parseNatFilter(query: { service?: string; frontend?: string }): NatFilter {
  if (query.service !== undefined && query.frontend !== undefined) {
    throw new AdminError(400, 'give either service or frontend, not both');
  }
  if (query.service !== undefined) return { service: parseServiceRef(query.service, 'service') };
  if (query.frontend !== undefined) return { frontend: parseHostPort(query.frontend, 'frontend') };
  return {};
}

/** `ns/name` or `VIP:port`, the positional argument of `sluicectl nat dump`. */
export function parseNatTarget(text: string): NatFilter {
  if (text.includes('/')) return { service: parseServiceRef(text, 'service') };
  return { frontend: parseHostPort(text, 'frontend') };
}

export function parseConntrackFilter(query: { service?: string; client?: string; backend?: string }): ConntrackFilter {
  const filter: ConntrackFilter = {};
  if (query.service !== undefined) filter.service = parseServiceRef(query.service, 'service');
  if (query.client !== undefined) filter.client = parseIp(query.client, 'client');
  if (query.backend !== undefined) filter.backend = parseHostPort(query.backend, 'backend', true);
  return filter;
}

export function applyNatFilter(view: NatView, filter: NatFilter): NatView {
  let frontends = view.frontends;
  if ('service' in filter) frontends = frontends.filter((f) => serviceKeyMatches(filter.service, f.service));
  else if ('frontend' in filter) {
    frontends = frontends.filter((f) => f.ip === filter.frontend.ip && f.port === filter.frontend.port);
  } else return view;
  const ids = new Set(frontends.map((f) => f.backendId));
  return { frontends, backends: view.backends.filter((b) => ids.has(b.backendId)) };
}

export function applyConntrackFilter(view: ConntrackView, filter: ConntrackFilter): ConntrackView {
  const { service, client, backend } = filter;
  const entries = view.entries.filter(
    (e) =>
      (service === undefined || serviceKeyMatches(service, e.service)) &&
      (client === undefined || e.client.ip === client) &&
      (backend === undefined || (e.backend.ip === backend.ip && (backend.port === undefined || e.backend.port === backend.port))),
  );
  return { total: view.total, entries };
}

/** `ip:port`, bracketing IPv6. */
export function formatHostPort(hp: { ip: string; port?: number }): string {
  const host = hp.ip.includes(':') ? `[${hp.ip}]` : hp.ip;
  return hp.port === undefined ? host : `${host}:${hp.port}`;
}
