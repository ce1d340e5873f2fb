// IPv6 frames for the IPv6 packet tests: Ethernet + fixed IPv6 header (+ optional extension
// headers) + TCP, UDP or ICMPv6, with the L4 checksum over the IPv6 pseudo-header (RFC 8200 8.1).
// The TCP/UDP header layouts are the IPv4 ones; only the pseudo-header differs.
import { ipv6FromBuffer, ipv6ToBuffer } from '../bpf/ip-bytes.js';
import { internetChecksum } from './checksum.js';
import { encodeEthernet, ETH_HLEN, ETHERTYPE } from './ethernet.js';
import { DEFAULT_DST_MAC, DEFAULT_SRC_MAC } from './frame.js';

export const IPV6_HLEN = 40;
export const NEXTHDR = { HOP_BY_HOP: 0, TCP: 6, UDP: 17, ICMPV6: 58, DEST_OPTS: 60 } as const;

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
  /** Extension headers before the upper layer, each 8 bytes of padding options (next-header filled in). */
  extensions?: Array<typeof NEXTHDR.HOP_BY_HOP | typeof NEXTHDR.DEST_OPTS>;
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
  const exts = spec.extensions ?? [];
  const extBytes = exts.map((_, i) => {
    const e = Buffer.alloc(8);
    e[0] = i + 1 < exts.length ? (exts[i + 1] as number) : next;
    e[1] = 0; // length in 8-byte units beyond the first
    e[2] = 1; // PadN option filling the remaining 6 bytes
    e[3] = 4;
    return e;
  });
  const ip = Buffer.alloc(IPV6_HLEN);
  ip.writeUInt32BE(6 << 28, 0);
  ip.writeUInt16BE(8 * exts.length + l4.length, 4);
  ip[6] = exts.length > 0 ? (exts[0] as number) : next;
  ip[7] = spec.hopLimit ?? 64;
  ipv6ToBuffer(spec.src, ip, 8);
  ipv6ToBuffer(spec.dst, ip, 24);
  const eth = encodeEthernet({ dst: spec.dstMac ?? DEFAULT_DST_MAC, src: spec.srcMac ?? DEFAULT_SRC_MAC, etherType: ETHERTYPE.IPV6 });
  return Buffer.concat([eth, ip, ...extBytes, l4]);
}

export interface Parsed6 {
  src: string;
  dst: string;
  next: number;
  sport: number;
  dport: number;
  /** The upper-layer checksum verifies against the pseudo-header (no extension headers). */
  checksumOk: boolean;
}

/** The addresses, ports and checksum validity of a frame buildFrame6 could have made (no extensions). */
export function parseFrame6(frame: Buffer): Parsed6 {
  if (frame.length < ETH_HLEN + IPV6_HLEN || frame.readUInt16BE(12) !== ETHERTYPE.IPV6) throw new RangeError('parseFrame6: not an IPv6 frame');
  const ip = frame.subarray(ETH_HLEN, ETH_HLEN + IPV6_HLEN);
  const next = ip[6] as number;
  const l4 = frame.subarray(ETH_HLEN + IPV6_HLEN, ETH_HLEN + IPV6_HLEN + ip.readUInt16BE(4));
  const src = ipv6FromBuffer(ip, 8);
  const dst = ipv6FromBuffer(ip, 24);
  const ports = next === NEXTHDR.TCP || next === NEXTHDR.UDP;
  return {
    src, dst, next,
    sport: ports ? l4.readUInt16BE(0) : 0,
    dport: ports ? l4.readUInt16BE(2) : 0,
    checksumOk: internetChecksum(ipv6PseudoHeader(src, dst, next, l4.length), l4) === 0,
  };
}
