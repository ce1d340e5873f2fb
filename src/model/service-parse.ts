// V1Service (or whatever a manifest holds) → ParsedService, or null when the Service is skipped
// (not ours, no virtual IP) or unusable (reported).
import { parseIp, type ParsedCidr } from './ip.js';
import { NO_IPS, parseExternalIps, parseLoadBalancerIngress, parseSourceRanges, type LocatedIp } from './service-external.js';
import { labelsSelectService, specHasVirtualIp } from './service-filter.js';
import { parseServiceOptions, type ServiceOptions } from './service-options.js';
import { parseServicePorts, type ParsedServicePort } from './service-ports.js';
import { flatText, type Exact } from './flat-text.js';
import type { IpFamily, ModelError } from './types.js';
import { BAD, get, openObject, optArray, optEnum, optLabels, optRecord, optString, type ObjectReport } from './validate.js';

export type ProxiedServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';
export type ClusterIps = Readonly<Partial<Record<IpFamily, LocatedIp>>>;

export interface ParsedService extends ServiceOptions {
  namespace: string;
  name: string;
  report: ObjectReport;
  /** metadata.creationTimestamp in ms; +Infinity when unknown (counts as newest). */
  createdAtMs: number;
  type: ProxiedServiceType;
  /**
   * At most one cluster IP per family (spec.clusterIPs, or spec.clusterIP alone). A plain object,
   * not a Map: kept for every Service, a Map of one entry cost ~270 bytes.
   */
  clusterIps: ClusterIps;
  ports: Exact<ParsedServicePort>;
  externalIps: readonly LocatedIp[];
  loadBalancerIngress: readonly LocatedIp[];
  /** null = unrestricted; 'broken' = an invalid entry, so no LoadBalancer VIP at all. */
  sourceRanges: ParsedCidr[] | null | 'broken';
}

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;

function creationTime(metadata: unknown): number {
  const value = get(metadata, 'creationTimestamp');
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : Infinity;
}

/** The cluster IPs as written: spec.clusterIPs when non-empty, else [spec.clusterIP]. */
function rawClusterIps(r: ObjectReport, spec: unknown): { values: unknown[]; field: string } | null {
  const list = optArray(r, get(spec, 'clusterIPs'), 'spec.clusterIPs');
  const single = optString(r, get(spec, 'clusterIP'), 'spec.clusterIP');
  if (list === BAD || single === BAD) return null;
  if (list && list.length > 0) {
    if (single !== undefined && single !== '' && single !== list[0]) {
      r.error('spec.clusterIP', single, `must equal spec.clusterIPs[0] (${String(list[0])})`);
      return null;
    }
    return { values: list, field: 'spec.clusterIPs' };
  }
  return { values: single === undefined ? [] : [single], field: 'spec.clusterIP' };
}

function parseClusterIps(r: ObjectReport, values: unknown[], field: string): ClusterIps | null {
  const byFamily: Partial<Record<IpFamily, LocatedIp>> = {};
  for (let i = 0; i < values.length; i++) {
    const at = field === 'spec.clusterIPs' ? flatText(field, '[', i, ']') : field;
    const ip = parseIp(values[i]);
    if (!ip) {
      r.error(at, values[i], 'is not a valid IP address; Service skipped');
      return null;
    }
    if (byFamily[ip.family]) {
      r.error(at, values[i], `is a second ${ip.family} cluster IP; Service skipped`);
      return null;
    }
    byFamily[ip.family] = { ip, field: at };
  }
  return byFamily;
}

export function parseService(
  raw: unknown,
  index: number,
  config: { serviceProxyName: string },
  sink: ModelError[],
): ParsedService | null {
  const opened = openObject('Service', raw, `services[${index}]`, sink);
  if (!opened) return null;
  const { report: r, namespace, name } = opened;
  const metadata = get(raw, 'metadata');
  const labels = optLabels(r, metadata);
  if (labels === BAD) return null;
  if (!labelsSelectService(labels, config.serviceProxyName)) return null;

  const spec = optRecord(r, get(raw, 'spec'), 'spec');
  if (spec === BAD) return null;
  if (spec === undefined) {
    r.error('spec', undefined, 'is required');
    return null;
  }
  const type = optEnum(r, spec['type'], 'spec.type', SERVICE_TYPES);
  if (type === BAD || type === 'ExternalName') return null;
  const clusterIpText = rawClusterIps(r, spec);
  if (!clusterIpText) return null;
  if (!specHasVirtualIp(type, clusterIpText.values[0])) return null;
  const clusterIps = parseClusterIps(r, clusterIpText.values, clusterIpText.field);
  if (!clusterIps) return null;

  const proxiedType: ProxiedServiceType = type ?? 'ClusterIP';
  const isLoadBalancer = proxiedType === 'LoadBalancer';
  return {
    namespace,
    name,
    report: r,
    createdAtMs: creationTime(metadata),
    type: proxiedType,
    clusterIps,
    ports: parseServicePorts(r, spec, proxiedType !== 'ClusterIP'),
    externalIps: parseExternalIps(r, spec),
    loadBalancerIngress: isLoadBalancer ? parseLoadBalancerIngress(r, get(raw, 'status')) : NO_IPS,
    sourceRanges: isLoadBalancer ? parseSourceRanges(r, spec) : null,
    ...parseServiceOptions(r, spec, proxiedType),
  };
}
