// IPv6 frames for the IPv6 packet tests: Ethernet + fixed IPv6 header (+ optional extension
// headers) + TCP, UDP or ICMPv6, with the L4 checksum over the IPv6 pseudo-header (RFC 8200 8.1).
// The TCP/UDP header layouts are the IPv4 ones; only the pseudo-header differs. Extension headers
// are built by the helpers below (options, routing, fragment, AH, ESP) and walked back by
// parseFrame6 the way the datapath walks them (bpf/lib/parse6.h).
import { ipv6FromBuffer, ipv6ToBuffer } from '../bpf/ip-bytes.js';
import { internetChecksum } from './checksum.js';
import { encodeEthernet, ETH_HLEN, ETHERTYPE } from './ethernet.js';
import { DEFAULT_DST_MAC, DEFAULT_SRC_MAC } from './frame.js';

export const IPV6_HLEN = 40;
export const NEXTHDR = {
  HOP_BY_HOP: 0, TCP: 6, UDP: 17, ROUTING: 43, FRAGMENT: 44, ESP: 50, AH: 51, ICMPV6: 58, DEST_OPTS: 60,
} as const;

/**
 * One extension header, whole: `bytes[0]` (its next header) is filled in by buildFrame6, except
 * for ESP (its first bytes are the SPI; what follows is opaque).
 */
export interface Ext6 {
  type: number;
  bytes: Buffer;
}

/** Hop-by-hop or destination options of `length` bytes (a multiple of 8), PadN-filled. */
export function optionsHeader(type: typeof NEXTHDR.HOP_BY_HOP | typeof NEXTHDR.DEST_OPTS, length = 8): Ext6 {
  if (length < 8 || length % 8 !== 0 || length > 2048) throw new RangeError(`optionsHeader: length ${length} is not a multiple of 8 in [8, 2048]`);
  const b = Buffer.alloc(length);
  b[1] = length / 8 - 1;
  // PadN options of at most 255 data bytes fill everything after the first two bytes (a single
  // byte left over is a Pad1: already 0).
  for (let at = 2; at + 1 < length;) {
    const n = Math.min(length - at - 2, 255);
    b[at] = 1;
    b[at + 1] = n;
    at += 2 + n;
  }
  return { type, bytes: b };
}

/** A routing header (type 4, segment routing, by default) listing `segments`. */
export function routingHeader(segmentsLeft: number, segments: string[], routingType = 4): Ext6 {
  const b = Buffer.alloc(8 + 16 * segments.length);
  b[1] = 2 * segments.length;
  b[2] = routingType;
  b[3] = segmentsLeft;
  b[4] = Math.max(segments.length - 1, 0); // SRH's last entry
  segments.forEach((a, i) => ipv6ToBuffer(a, b, 8 + 16 * i));
  return { type: NEXTHDR.ROUTING, bytes: b };
}

/** A fragment header: offset in 8-byte units, the M flag, the identification. */
export function fragmentHeader(offset: number, more: boolean, id = 0x1234): Ext6 {
  const b = Buffer.alloc(8);
  b.writeUInt16BE((offset << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(id, 4);
  return { type: NEXTHDR.FRAGMENT, bytes: b };
}

/** An authentication header with an ICV of `icvLength` bytes (its length field in 4-byte units minus 2). */
export function authHeader(icvLength = 12, spi = 0x100): Ext6 {
  if (icvLength % 4 !== 0) throw new RangeError(`authHeader: ICV length ${icvLength} is not a multiple of 4`);
  const b = Buffer.alloc(12 + icvLength, 0xab);
  b[1] = (12 + icvLength) / 4 - 2;
  b.writeUInt16BE(0, 2);
  b.writeUInt32BE(spi, 4);
  b.writeUInt32BE(1, 8);
  return { type: NEXTHDR.AH, bytes: b };
}

/** An ESP header and opaque ciphertext: nothing behind it can be read. */
export function espHeader(spi = 0x200, cipher = Buffer.alloc(24, 0xcd)): Ext6 {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(spi, 0);
  b.writeUInt32BE(1, 4);
  return { type: NEXTHDR.ESP, bytes: Buffer.concat([b, cipher]) };
}

export interface Frame6Spec {
  src: string;
  dst: string;
  srcMac?: string;
  dstMac?: string;
  hopLimit?: number;
  /** Exactly one of tcp, udp, icmp6 (type and code; the body is the payload). */
  tcp?: { sport: number; dport: number; flags?: number; seq?: number; ack?: number; window?: number };
  udp?: { sport: number; dport: number };
  icmp6?: { type: number; code: number };
  /**
   * Extension headers before the upper layer, in order: a bare HOP_BY_HOP or DEST_OPTS is 8 bytes
   * of padding options; an Ext6 is used as given (next header filled in). The L4 checksum's
   * pseudo-header always uses `dst` (a routing header with segments left is not followed).
   */
  extensions?: Array<typeof NEXTHDR.HOP_BY_HOP | typeof NEXTHDR.DEST_OPTS | Ext6>;
  payload?: Buffer;
}

export const TCP6_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** The 40-byte pseudo-header: source, destination, upper-layer length (32 bits), zeros, next header. */
export function ipv6PseudoHeader(src: string, dst: string, nextHeader: number, l4Length: number): Buffer {
  const buf = Buffer.alloc(40);
  ipv6ToBuffer(src, buf, 0);
  ipv6ToBuffer(dst, buf, 16);
  buf.writeUInt32BE(l4Length, 32);
  buf[39] = nextHeader;
  return buf;
}

function upperLayer(spec: Frame6Spec): { next: number; l4: Buffer; csumAt: number } {
  const payload = spec.payload ?? Buffer.alloc(0);
  if (spec.tcp) {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(spec.tcp.sport, 0);
    h.writeUInt16BE(spec.tcp.dport, 2);
    h.writeUInt32BE(spec.tcp.seq ?? 1000, 4);
    h.writeUInt32BE(spec.tcp.ack ?? 0, 8);
    h[12] = 5 << 4;
    h[13] = spec.tcp.flags ?? TCP6_FLAGS.ACK;
    h.writeUInt16BE(spec.tcp.window ?? 65535, 14);
    return { next: NEXTHDR.TCP, l4: Buffer.concat([h, payload]), csumAt: 16 };
  }
  if (spec.udp) {
    const h = Buffer.alloc(8);
    h.writeUInt16BE(spec.udp.sport, 0);
    h.writeUInt16BE(spec.udp.dport, 2);
    h.writeUInt16BE(8 + payload.length, 4);
    return { next: NEXTHDR.UDP, l4: Buffer.concat([h, payload]), csumAt: 6 };
  }
  if (spec.icmp6) {
    const h = Buffer.alloc(4);
    h[0] = spec.icmp6.type;
    h[1] = spec.icmp6.code;
    return { next: NEXTHDR.ICMPV6, l4: Buffer.concat([h, payload]), csumAt: 2 };
  }
  throw new TypeError('buildFrame6: one of tcp, udp, icmp6 must be given');
}

/** An Ethernet/IPv6 frame with a correct upper-layer checksum. */
export function buildFrame6(spec: Frame6Spec): Buffer {
  const { next, l4, csumAt } = upperLayer(spec);
  const sum = internetChecksum(ipv6PseudoHeader(spec.src, spec.dst, next, l4.length), l4);
  // UDP over IPv6 must not carry 0 ("none" is IPv4 only): a computed 0 is sent as 0xffff.
  l4.writeUInt16BE(next === NEXTHDR.UDP && sum === 0 ? 0xffff : sum, csumAt);
  const exts = (spec.extensions ?? []).map((e) => (typeof e === 'number' ? optionsHeader(e) : e));
  const extBytes = exts.map((e, i) => {
    const b = Buffer.from(e.bytes);
    if (e.type !== NEXTHDR.ESP) b[0] = i + 1 < exts.length ? (exts[i + 1] as Ext6).type : next;
    return b;
  });
  const extLength = extBytes.reduce((n, b) => n + b.length, 0);
  const ip = Buffer.alloc(IPV6_HLEN);
  ip.writeUInt32BE(6 << 28, 0);
  ip.writeUInt16BE(extLength + l4.length, 4);
  ip[6] = exts.length > 0 ? (exts[0] as Ext6).type : next;
  ip[7] = spec.hopLimit ?? 64;
  ipv6ToBuffer(spec.src, ip, 8);
  ipv6ToBuffer(spec.dst, ip, 24);
  const eth = encodeEthernet({ dst: spec.dstMac ?? DEFAULT_DST_MAC, src: spec.srcMac ?? DEFAULT_SRC_MAC, etherType: ETHERTYPE.IPV6 });
  return Buffer.concat([eth, ip, ...extBytes, l4]);
}

export interface Parsed6 {
  src: string;
  dst: string;
  /** The upper-layer protocol, or the extension header the walk stopped at (fragment, ESP, unknown). */
  next: number;
  /** The extension headers walked or stopped at, in order (their next-header values). */
  extensions: number[];
  /** Frame offset of the upper-layer header (or of the header the walk stopped at). */
  l4Offset: number;
  sport: number;
  dport: number;
  /** The upper-layer checksum verifies against the pseudo-header (fixed header's addresses). */
  checksumOk: boolean;
}

const WALKED = new Set<number>([NEXTHDR.HOP_BY_HOP, NEXTHDR.DEST_OPTS, NEXTHDR.ROUTING, NEXTHDR.AH]);

/**
 * The addresses, ports and checksum validity of an IPv6 frame, past its hop-by-hop, destination
 * options, routing and AH headers; a fragment, ESP or other header ends the walk (no ports, the
 * checksum then not checked: false).
 */
export function parseFrame6(frame: Buffer): Parsed6 {
  if (frame.length < ETH_HLEN + IPV6_HLEN || frame.readUInt16BE(12) !== ETHERTYPE.IPV6) throw new RangeError('parseFrame6: not an IPv6 frame');
  const ip = frame.subarray(ETH_HLEN, ETH_HLEN + IPV6_HLEN);
  const end = ETH_HLEN + IPV6_HLEN + ip.readUInt16BE(4);
  if (end > frame.length) throw new RangeError(`parseFrame6: payload length ${ip.readUInt16BE(4)} runs past the ${frame.length}-byte frame`);
  let next = ip[6] as number;
  let at = ETH_HLEN + IPV6_HLEN;
  const extensions: number[] = [];
  while (WALKED.has(next)) {
    if (at + 2 > end) throw new RangeError(`parseFrame6: extension header ${next} at ${at} runs past the packet`);
    extensions.push(next);
    const len = next === NEXTHDR.AH ? ((frame[at + 1] as number) + 2) * 4 : ((frame[at + 1] as number) + 1) * 8;
    next = frame[at] as number;
    at += len;
  }
  if (at > end) throw new RangeError(`parseFrame6: extension headers end at ${at}, past the packet (${end})`);
  if (next === NEXTHDR.FRAGMENT || next === NEXTHDR.ESP) extensions.push(next);
  const l4 = frame.subarray(at, end);
  const src = ipv6FromBuffer(ip, 8);
  const dst = ipv6FromBuffer(ip, 24);
  const ports = next === NEXTHDR.TCP || next === NEXTHDR.UDP;
  const upper = ports || next === NEXTHDR.ICMPV6;
  return {
    src, dst, next, extensions, l4Offset: at,
    sport: ports ? l4.readUInt16BE(0) : 0,
    dport: ports ? l4.readUInt16BE(2) : 0,
    checksumOk: upper && internetChecksum(ipv6PseudoHeader(src, dst, next, l4.length), l4) === 0,
  };
}
