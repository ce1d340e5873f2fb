// The externally reachable addresses of a Service: spec.externalIPs, the LoadBalancer ingress
// IPs in status, and spec.loadBalancerSourceRanges. A bad entry is reported and skipped alone.
import { parseCidr, parseIp, type ParsedCidr, type ParsedIp } from './ip.js';
import { flatText } from './flat-text.js';
import type { IpFamily } from './types.js';
import { BAD, get, isRecord, optArray, optEnum, optString, type ObjectReport } from './validate.js';

/** An address with the field it came from, so a later conflict can be reported precisely. */
export interface LocatedIp {
  ip: ParsedIp;
  field: string;
}

/** The empty list, shared: most Services have no external IPs and no ingress (kept per Service). */
export const NO_IPS: readonly LocatedIp[] = Object.freeze([]);

export function parseExternalIps(r: ObjectReport, spec: unknown): readonly LocatedIp[] {
  const list = optArray(r, get(spec, 'externalIPs'), 'spec.externalIPs');
  if (list === BAD || list === undefined || list.length === 0) return NO_IPS;
  const out: LocatedIp[] = [];
  list.forEach((value, i) => {
    const field = flatText('spec.externalIPs[', i, ']');
    const ip = parseIp(value);
    if (ip) out.push({ ip, field });
    else r.error(field, value, 'is not a valid IP address');
  });
  return out;
}

/**
 * status.loadBalancer.ingress[].ip of a LoadBalancer Service. Hostname-only entries carry no
 * VIP; entries with ipMode 'Proxy' are skipped because the load balancer delivers that traffic
 * to the node addresses itself (the VIP never reaches the node as a destination).
 */
export function parseLoadBalancerIngress(r: ObjectReport, status: unknown): readonly LocatedIp[] {
  const list = optArray(r, get(get(status, 'loadBalancer'), 'ingress'), 'status.loadBalancer.ingress');
  if (list === BAD || list === undefined || list.length === 0) return NO_IPS;
  const out: LocatedIp[] = [];
  list.forEach((entry, i) => {
    const at = `status.loadBalancer.ingress[${i}]`;
    if (!isRecord(entry)) {
      r.error(at, entry, 'must be an object');
      return;
    }
    const text = optString(r, entry['ip'], `${at}.ip`);
    const ipMode = optEnum(r, entry['ipMode'], `${at}.ipMode`, ['VIP', 'Proxy'] as const);
    if (text === BAD || ipMode === BAD || ipMode === 'Proxy' || !text) return;
    const ip = parseIp(text);
    if (ip) out.push({ ip, field: flatText(at, '.ip') });
    else r.error(`${at}.ip`, text, 'is not a valid IP address');
  });
  return out;
}

/**
 * spec.loadBalancerSourceRanges. `null` = no restriction. When any entry is invalid the whole
 * restriction is unusable: `'broken'`, and the caller must fail closed (program no
 * LoadBalancer VIP) rather than open the VIP to every source.
 */
export function parseSourceRanges(r: ObjectReport, spec: unknown): ParsedCidr[] | null | 'broken' {
  const list = optArray(r, get(spec, 'loadBalancerSourceRanges'), 'spec.loadBalancerSourceRanges');
  if (list === BAD) return 'broken';
  if (list === undefined || list.length === 0) return null;
  const out: ParsedCidr[] = [];
  let broken = false;
  list.forEach((value, i) => {
    // The API server accepts space-padded values here (a leftover of the old annotation).
    const cidr = parseCidr(typeof value === 'string' ? value.trim() : value);
    if (cidr) {
      out.push(cidr);
    } else {
      r.error(`spec.loadBalancerSourceRanges[${i}]`, value, 'is not a valid CIDR; no LoadBalancer VIP is programmed');
      broken = true;
    }
  });
  return broken ? 'broken' : out;
}

/**
 * The source ranges of one family, and whether its LoadBalancer VIPs may be programmed. When a
 * range is invalid the VIPs are not programmed (fail closed) instead of being open to every
 * source. When the Service restricts sources but names none of this family, the VIPs are
 * programmed `closed`: every client of this family is outside the ranges and dropped (counted
 * src_range), not left to whatever the node does with an address nobody translates.
 */
/**
 * No source ranges, shared (frozen): nearly every service port of the model's output has none.
 * Typed as the output's string[]; the output is never mutated.
 */
export const NO_RANGES = Object.freeze([]) as unknown as string[];

export function sourceRangesForFamily(
  ranges: ParsedCidr[] | null | 'broken',
  family: IpFamily,
): { allowed: boolean; ranges: string[]; closed: boolean } {
  if (ranges === null) return { allowed: true, ranges: NO_RANGES, closed: false };
  if (ranges === 'broken') return { allowed: false, ranges: NO_RANGES, closed: false };
  const own = ranges.filter((c) => c.family === family);
  const texts = [...new Set(own.map((c) => c.canonical))];
  const sortKey = new Map(own.map((c) => [c.canonical, `${hexOf(c.network)}/${String(c.prefixLength).padStart(3, '0')}`]));
  texts.sort((a, b) => ((sortKey.get(a) ?? '') < (sortKey.get(b) ?? '') ? -1 : 1));
  return { allowed: true, ranges: texts, closed: own.length === 0 };
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
