// IP and CIDR text handling for the model: strict parsing (objects from a manifest file were never
// validated by an API server), family detection, canonical text and CIDR containment.
import type { IpFamily } from './types.js';

export interface ParsedIp {
  family: IpFamily;
  /** Dotted quad for IPv4, RFC 5952 text for IPv6: equal addresses have equal text. */
  canonical: string;
  /**
   * Fixed-width hex of the network-order bytes: string order is numeric order within one
   * family, and ipBytes() recovers the bytes (kept out of the hot path: 100k endpoints).
   */
  sortKey: string;
}

export interface ParsedCidr {
  family: IpFamily;
  prefixLength: number;
  /** The network address (host bits cleared). */
  network: Uint8Array;
  /** e.g. '10.0.0.0/8' even when written '10.1.2.3/8'. */
  canonical: string;
}

const IPV6_GROUP = /^[0-9a-f]{1,4}$/;

/**
 * Dotted quad → unsigned 32-bit value, or -1. Hand-rolled (no split, no regex): it runs for
 * every endpoint. Leading zeros are refused: some parsers read them as octal (ambiguous).
 */
function parseIpv4Number(text: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

function parseIpv4Bytes(text: string): Uint8Array | null {
  const value = parseIpv4Number(text);
  if (value < 0) return null;
  return new Uint8Array([value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]);
}

function parseIpv6Groups(text: string): number[] | null {
  if (text === '') return [];
  const groups: number[] = [];
  for (const group of text.split(':')) {
    if (!IPV6_GROUP.test(group)) return null;
    groups.push(parseInt(group, 16));
  }
  return groups;
}

function parseIpv6Bytes(input: string): Uint8Array | null {
  let text = input.toLowerCase();
  // An embedded IPv4 tail (e.g. '64:ff9b::192.0.2.1') stands for the last two groups.
  let tail: Uint8Array | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    tail = parseIpv4Bytes(text.slice(lastColon + 1));
    if (!tail) return null;
    const head = text.slice(0, lastColon + 1);
    text = head.endsWith('::') ? head : head.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const front = parseIpv6Groups(halves[0] ?? '');
  const back = halves.length === 2 ? parseIpv6Groups(halves[1] ?? '') : [];
  if (!front || !back) return null;
  const wanted = tail ? 6 : 8;
  const given = front.length + back.length;
  // '::' must stand for at least one zero group; without it the groups must be complete.
  if (halves.length === 2 ? given >= wanted : given !== wanted) return null;
  const groups = [...front, ...new Array<number>(wanted - given).fill(0), ...back];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  if (tail) bytes.set(tail, 12);
  return bytes;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the first longest run of two or more zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const text = groups.map((g) => g.toString(16));
  if (bestStart < 0) return text.join(':');
  return `${text.slice(0, bestStart).join(':')}::${text.slice(bestStart + bestLength).join(':')}`;
}

function formatIp(family: IpFamily, bytes: Uint8Array): string {
  return family === 'IPv4' ? bytes.join('.') : formatIpv6(bytes);
}

/**
 * Parses an IPv4 or IPv6 address. Refused (null): anything that is not a string, leading
 * zeros in IPv4 parts, IPv6 zones ('%eth0'), and IPv4-mapped IPv6 ('::ffff:a.b.c.d', whose
 * family is ambiguous: Go's parser calls it IPv4).
 */
export function parseIp(text: unknown): ParsedIp | null {
  if (typeof text !== 'string') return null;
  if (!text.includes(':')) {
    const value = parseIpv4Number(text);
    // Strictly parsed dotted decimal is already canonical.
    return value < 0 ? null : { family: 'IPv4', canonical: text, sortKey: value.toString(16).padStart(8, '0') };
  }
  const bytes = parseIpv6Bytes(text);
  if (!bytes || isIpv4Mapped(bytes)) return null;
  return { family: 'IPv6', canonical: formatIpv6(bytes), sortKey: hex(bytes) };
}

/** The network-order bytes of a parsed address (4 or 16). */
export function ipBytes(ip: ParsedIp): Uint8Array {
  const bytes = new Uint8Array(ip.sortKey.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(ip.sortKey.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Parses 'address/prefix'; host bits may be set (they are cleared, as Go's ParseCIDR does). */
export function parseCidr(text: unknown): ParsedCidr | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  const prefixLength = Number(prefixText);
  const bytes = ipBytes(ip);
  if (prefixLength > bytes.length * 8) return null;
  const network = maskBytes(bytes, prefixLength);
  return { family: ip.family, prefixLength, network, canonical: `${formatIp(ip.family, network)}/${prefixLength}` };
}

function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLength - i * 8));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

export function cidrContains(cidr: ParsedCidr, ip: ParsedIp): boolean {
  if (cidr.family !== ip.family) return false;
  const masked = maskBytes(ipBytes(ip), cidr.prefixLength);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== cidr.network[i]) return false;
  return true;
}

/** 127.0.0.0/8 or ::1. */
export function isLoopback(ip: ParsedIp): boolean {
  if (ip.family === 'IPv4') return ip.sortKey.startsWith('7f');
  return ip.sortKey === '00000000000000000000000000000001';
}

export function ipFamilyOf(text: unknown): IpFamily | null {
  return parseIp(text)?.family ?? null;
}
