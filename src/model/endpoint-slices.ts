// V1EndpointSlice → ParsedSlice, and the index of slices by Service. Every slice is parsed once,
// however many Service ports read it. A bad endpoint or port is reported and skipped alone.
import { parseIp, type ParsedIp } from './ip.js';
import { PROTOCOLS } from './service-ports.js';
import type { IpFamily, L4Protocol, ModelError } from './types.js';
import {
  BAD, get, guarded, isRecord, ObjectReport, openObject, optArray, optBool, optEnum, optInt, optLabels, optRecord, optString,
} from './validate.js';

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

export interface SlicePort {
  name: string;
  protocol: L4Protocol;
  port: number;
}

export interface SliceEndpoint {
  ip: ParsedIp;
  nodeName: string | null;
  zone: string | null;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** hints.forZones names; null when the endpoint has no zone hint. */
  zoneHints: ReadonlySet<string> | null;
  /** hints.forNodes names (PreferSameNode); null when the endpoint has no node hint. */
  nodeHints: ReadonlySet<string> | null;
}

export interface ParsedSlice {
  name: string;
  family: IpFamily;
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
}

function parseSlicePort(r: ObjectReport, raw: unknown, at: string): SlicePort | null {
  if (!isRecord(raw)) {
    r.error(at, raw, 'must be an object');
    return null;
  }
  // A nil name is read as '' (an unnamed Service port), see docs/model.md.
  const name = optString(r, raw['name'], `${at}.name`);
  const protocol = optEnum(r, raw['protocol'], `${at}.protocol`, PROTOCOLS);
  const port = optInt(r, raw['port'], `${at}.port`, 0, 65535);
  if (name === BAD || protocol === BAD || port === BAD) return null;
  // A nil or 0 port means "all ports" in the API, which nothing implements: ignored, like kube-proxy.
  if (!port) return null;
  return { name: name ?? '', protocol: protocol ?? 'TCP', port };
}

function parseHintNames(r: ObjectReport, hints: unknown, key: string, at: string): ReadonlySet<string> | null | typeof BAD {
  const list = optArray(r, get(hints, key), `${at}.${key}`);
  if (list === BAD) return BAD;
  if (!list || list.length === 0) return null;
  const names = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const name = get(list[i], 'name');
    if (typeof name !== 'string' || name === '') return r.error(`${at}.${key}[${i}].name`, name, 'must be a non-empty string');
    names.add(name);
  }
  return names;
}

const isAbsent = (v: unknown): boolean => v === undefined || v === null;
const isOptBool = (v: unknown): boolean => isAbsent(v) || typeof v === 'boolean';
const isOptString = (v: unknown): boolean => isAbsent(v) || typeof v === 'string';

/**
 * The endpoint when it is plainly well formed — what the API server sends, 100k times at
 * 10,000 Services — read without building a field path per check; undefined otherwise, and the
 * validating reader below (which names every bad field) takes it. Both give the same endpoint
 * for the same input: test/model/endpoint-fast-path.test.ts compares them over random inputs.
 */
function plainEndpoint(raw: unknown, family: IpFamily): SliceEndpoint | undefined {
  if (!isRecord(raw)) return undefined;
  const addresses = raw['addresses'];
  if (!Array.isArray(addresses) || addresses.length === 0) return undefined;
  const ip = parseIp(addresses[0]);
  if (!ip || ip.family !== family) return undefined;
  const conditions = raw['conditions'];
  let ready: unknown;
  let serving: unknown;
  let terminating: unknown;
  if (!isAbsent(conditions)) {
    if (!isRecord(conditions)) return undefined;
    ready = conditions['ready'];
    serving = conditions['serving'];
    terminating = conditions['terminating'];
    if (!isOptBool(ready) || !isOptBool(serving) || !isOptBool(terminating)) return undefined;
  }
  const nodeName = raw['nodeName'];
  const zone = raw['zone'];
  if (!isOptString(nodeName) || !isOptString(zone) || !isAbsent(raw['hints'])) return undefined;
  return {
    ip,
    nodeName: (nodeName as string | null | undefined) || null,
    zone: (zone as string | null | undefined) || null,
    ready: ready !== false,
    serving: serving !== false,
    terminating: terminating === true,
    zoneHints: null,
    nodeHints: null,
  };
}

/** Endpoint `index` of a slice: the plain reading when it applies, else the validating one. */
export function parseEndpoint(r: ObjectReport, raw: unknown, index: number, family: IpFamily): SliceEndpoint | null {
  return plainEndpoint(raw, family) ?? parseEndpointValidating(r, raw, `endpoints[${index}]`, family);
}

/** Reads an endpoint field by field, reporting each bad one by its path. Exported for tests. */
export function parseEndpointValidating(r: ObjectReport, raw: unknown, at: string, family: IpFamily): SliceEndpoint | null {
  if (!isRecord(raw)) {
    r.error(at, raw, 'must be an object');
    return null;
  }
  const addresses = optArray(r, raw['addresses'], `${at}.addresses`);
  // No address: nothing to send traffic to (kube-proxy skips it too).
  if (addresses === BAD || !addresses || addresses.length === 0) return null;
  const ip = parseIp(addresses[0]);
  if (!ip) {
    r.error(`${at}.addresses[0]`, addresses[0], 'is not a valid IP address');
    return null;
  }
  if (ip.family !== family) {
    r.error(`${at}.addresses[0]`, addresses[0], `is not an ${family} address (the slice's addressType)`);
    return null;
  }
  const conditions = optRecord(r, raw['conditions'], `${at}.conditions`);
  if (conditions === BAD) return null;
  const ready = optBool(r, conditions?.['ready'], `${at}.conditions.ready`);
  const serving = optBool(r, conditions?.['serving'], `${at}.conditions.serving`);
  const terminating = optBool(r, conditions?.['terminating'], `${at}.conditions.terminating`);
  const nodeName = optString(r, raw['nodeName'], `${at}.nodeName`);
  const zone = optString(r, raw['zone'], `${at}.zone`);
  const hints = optRecord(r, raw['hints'], `${at}.hints`);
  if (ready === BAD || serving === BAD || terminating === BAD) return null;
  if (nodeName === BAD || zone === BAD || hints === BAD) return null;
  // A malformed hint drops only the hints: the endpoint then disables topology routing, the safe side.
  const zoneHints = parseHintNames(r, hints, 'forZones', `${at}.hints`);
  const nodeHints = parseHintNames(r, hints, 'forNodes', `${at}.hints`);
  return {
    ip,
    nodeName: nodeName || null,
    zone: zone || null,
    // Unknown readiness counts as ready and serving (the API's own reading); terminating only if said.
    ready: ready !== false,
    serving: serving !== false,
    terminating: terminating === true,
    zoneHints: zoneHints === BAD ? null : zoneHints,
    nodeHints: nodeHints === BAD ? null : nodeHints,
  };
}

/** The slice, or null when skipped: FQDN slices silently, malformed ones with an error. */
export function parseEndpointSlice(
  raw: unknown,
  index: number,
  sink: ModelError[],
): { slice: ParsedSlice; namespace: string; serviceName: string } | null {
  const opened = openObject('EndpointSlice', raw, `endpointSlices[${index}]`, sink);
  if (!opened) return null;
  const { report: r, namespace, name } = opened;
  const labels = optLabels(r, get(raw, 'metadata'));
  if (labels === BAD) return null;
  const serviceName = labels[LABEL_SERVICE_NAME];
  if (!serviceName) {
    r.error(`metadata.labels['${LABEL_SERVICE_NAME}']`, serviceName, 'is required (the owning Service name)');
    return null;
  }
  const addressTypeValue = get(raw, 'addressType');
  const addressType = optEnum(r, addressTypeValue, 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const);
  if (addressType === BAD) return null;
  if (addressType === undefined) {
    r.error('addressType', addressTypeValue, 'is required');
    return null;
  }
  if (addressType === 'FQDN') return null;
  const rawPorts = optArray(r, get(raw, 'ports'), 'ports');
  const rawEndpoints = optArray(r, get(raw, 'endpoints'), 'endpoints');
  if (rawPorts === BAD || rawEndpoints === BAD) return null;
  const ports: SlicePort[] = [];
  (rawPorts ?? []).forEach((p, i) => {
    const port = parseSlicePort(r, p, `ports[${i}]`);
    if (port) ports.push(port);
  });
  const endpoints: SliceEndpoint[] = [];
  (rawEndpoints ?? []).forEach((e, i) => {
    const endpoint = parseEndpoint(r, e, i, addressType);
    if (endpoint) endpoints.push(endpoint);
  });
  return { slice: { name, family: addressType, ports, endpoints }, namespace, serviceName };
}

/**
 * Parses every slice once and groups them by 'namespace/service-name', each group sorted by
 * slice name so that merging (which depends on order for duplicates) is deterministic.
 */
export function indexEndpointSlices(raw: readonly unknown[], sink: ModelError[]): Map<string, ParsedSlice[]> {
  const byService = new Map<string, ParsedSlice[]>();
  const seen = new Set<string>();
  raw.forEach((item, index) => {
    const parsed = guarded(sink, 'EndpointSlice', item, null, () => parseEndpointSlice(item, index, sink));
    if (!parsed) return;
    const id = `${parsed.namespace}/${parsed.slice.name}`;
    if (seen.has(id)) {
      new ObjectReport('EndpointSlice', id, sink).error('metadata.name', parsed.slice.name, 'is a duplicate; skipped');
      return;
    }
    seen.add(id);
    const key = `${parsed.namespace}/${parsed.serviceName}`;
    const group = byService.get(key);
    if (group) group.push(parsed.slice);
    else byService.set(key, [parsed.slice]);
  });
  for (const group of byService.values()) group.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return byService;
}
