// ModelConfig checked the same way as Kubernetes objects: the model never throws on bad input.
import { parseCidr, parseIp, type ParsedCidr, type ParsedIp } from './ip.js';
import type { IpFamily, ModelConfig, ModelError } from './types.js';
import { BAD, get, ObjectReport, optArray, optString } from './validate.js';

export interface CheckedConfig {
  /** Deduped, in the given order. */
  families: IpFamily[];
  /** null = the default: every node address except loopback. */
  nodePortCidrs: ParsedCidr[] | null;
  /** The host's own interface addresses for NodePorts; null = use the Node object's addresses. */
  hostAddresses: ParsedIp[] | null;
  serviceProxyName: string;
}

export function checkConfig(config: ModelConfig | unknown, sink: ModelError[]): CheckedConfig {
  const r = new ObjectReport('ModelConfig', 'config', sink);
  const families: IpFamily[] = [];
  const familyList = optArray(r, get(config, 'families'), 'families');
  if (familyList !== BAD) {
    (familyList ?? []).forEach((family, i) => {
      if (family !== 'IPv4' && family !== 'IPv6') r.error(`families[${i}]`, family, "must be 'IPv4' or 'IPv6'");
      else if (!families.includes(family)) families.push(family);
    });
  }
  if (families.length === 0) r.error('families', get(config, 'families'), 'no IP family to proxy: nothing is programmed');

  let nodePortCidrs: ParsedCidr[] | null = null;
  const cidrList = optArray(r, get(config, 'nodePortAddresses'), 'nodePortAddresses');
  if (cidrList === BAD) {
    // Fail closed: a restriction was meant but cannot be read, so no address qualifies.
    nodePortCidrs = [];
  } else if (cidrList && cidrList.length > 0) {
    // A bad entry matches nothing; the others still restrict (never widen to all addresses).
    nodePortCidrs = [];
    cidrList.forEach((text, i) => {
      const cidr = parseCidr(text);
      if (cidr) nodePortCidrs?.push(cidr);
      else r.error(`nodePortAddresses[${i}]`, text, 'is not a valid CIDR');
    });
  }

  let hostAddresses: ParsedIp[] | null = null;
  const hostList = optArray(r, get(config, 'hostAddresses'), 'hostAddresses');
  if (hostList !== BAD && hostList !== undefined) {
    hostAddresses = [];
    const seen = new Set<string>();
    hostList.forEach((text, i) => {
      const ip = parseIp(text);
      if (!ip) r.error(`hostAddresses[${i}]`, text, 'is not a valid IP address');
      else if (!seen.has(ip.canonical)) {
        seen.add(ip.canonical);
        hostAddresses?.push(ip);
      }
    });
  }

  const name = optString(r, get(config, 'serviceProxyName'), 'serviceProxyName');
  return { families, nodePortCidrs, hostAddresses, serviceProxyName: name === BAD || name === undefined ? '' : name };
}
