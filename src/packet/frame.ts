// Whole Ethernet/IPv4 frames: build one from a spec, parse one back with every checksum checked.
import { decodeEthernet, encodeEthernet, ETH_HLEN, ETHERTYPE, type EthernetHeader } from './ethernet.js';
import { decodeIcmp, encodeIcmp, type IcmpHeader, type IcmpSpec } from './icmp.js';
import { decodeIpv4, encodeIpv4, IP_FLAG_MF, IPPROTO, type Ipv4Header, type Ipv4Spec } from './ipv4.js';
import { decodeTcp, encodeTcp, type TcpHeader, type TcpSpec } from './tcp.js';
import { decodeUdp, encodeUdp, type UdpHeader, type UdpSpec } from './udp.js';

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

/** A frame to build: exactly one of tcp, udp, icmp. */
export interface FrameSpec {
  srcMac?: string;
  dstMac?: string;
  ip: Ipv4Spec;
  tcp?: TcpSpec;
  udp?: UdpSpec;
  icmp?: IcmpSpec;
  payload?: Buffer;
}

export interface ParsedFrame {
  eth: EthernetHeader;
  /** Absent when the EtherType is not IPv4. */
  ip?: Ipv4Header;
  tcp?: TcpHeader;
  udp?: UdpHeader;
  icmp?: IcmpHeader;
  /** L4 payload (ICMP: the body after the 8-byte header); for other L3/L4, what follows. */
  payload: Buffer;
}

export function buildFrame(spec: FrameSpec): Buffer {
  const l4Count = [spec.tcp, spec.udp, spec.icmp].filter((x) => x !== undefined).length;
  if (l4Count !== 1) throw new TypeError(`buildFrame: exactly one of tcp, udp, icmp must be given (got ${l4Count})`);
  const payload = spec.payload ?? Buffer.alloc(0);
  let protocol: number;
  let l4: Buffer;
  if (spec.tcp) {
    protocol = IPPROTO.TCP;
    l4 = encodeTcp(spec.tcp, spec.ip.src, spec.ip.dst, payload);
  } else if (spec.udp) {
    protocol = IPPROTO.UDP;
    l4 = encodeUdp(spec.udp, spec.ip.src, spec.ip.dst, payload);
  } else {
    protocol = IPPROTO.ICMP;
    l4 = encodeIcmp(spec.icmp as IcmpSpec, payload);
  }
  const eth = encodeEthernet({
    dst: spec.dstMac ?? DEFAULT_DST_MAC,
    src: spec.srcMac ?? DEFAULT_SRC_MAC,
    etherType: ETHERTYPE.IPV4,
  });
  return Buffer.concat([eth, encodeIpv4(spec.ip, protocol, l4.length), l4]);
}

/** Parses a frame; throws a RangeError naming the header and field when it is malformed. */
export function parseFrame(frame: Buffer): ParsedFrame {
  const eth = decodeEthernet(frame);
  if (eth.etherType !== ETHERTYPE.IPV4) return { eth, payload: Buffer.from(frame.subarray(ETH_HLEN)) };
  const ip = decodeIpv4(frame.subarray(ETH_HLEN));
  const l4 = frame.subarray(ETH_HLEN + ip.headerLength, ETH_HLEN + ip.totalLength);
  const fragment = (ip.fragOff & (IP_FLAG_MF | 0x1fff)) !== 0;
  if (fragment) return { eth, ip, payload: Buffer.from(l4) };
  switch (ip.protocol) {
    case IPPROTO.TCP: {
      const { header, payload } = decodeTcp(l4, ip.src, ip.dst);
      return { eth, ip, tcp: header, payload };
    }
    case IPPROTO.UDP: {
      const { header, payload } = decodeUdp(l4, ip.src, ip.dst);
      return { eth, ip, udp: header, payload };
    }
    case IPPROTO.ICMP: {
      const { header, payload } = decodeIcmp(l4);
      return { eth, ip, icmp: header, payload };
    }
    default:
      return { eth, ip, payload: Buffer.from(l4) };
  }
}

/**
 * Every checksum of a parsed frame that fails, as readable strings (empty = all valid). A UDP
 * datagram without a checksum counts as valid.
 */
export function checksumProblems(p: ParsedFrame): string[] {
  const problems: string[] = [];
  if (p.ip && !p.ip.checksumValid) problems.push(`IPv4 header checksum 0x${p.ip.checksum.toString(16)} is wrong`);
  if (p.tcp && !p.tcp.checksumValid) problems.push(`TCP checksum 0x${p.tcp.checksum.toString(16)} is wrong`);
  if (p.udp && !p.udp.checksumValid) problems.push(`UDP checksum 0x${p.udp.checksum.toString(16)} is wrong`);
  if (p.icmp && !p.icmp.checksumValid) problems.push(`ICMP checksum 0x${p.icmp.checksum.toString(16)} is wrong`);
  return problems;
}

/** Flips bits of one byte of a frame copy (tests: prove a check notices corruption). */
export function corruptByte(frame: Buffer, offset: number, mask = 0x01): Buffer {
  if (offset < 0 || offset >= frame.length) {
    throw new RangeError(`corruptByte: offset ${offset} outside a ${frame.length}-byte frame`);
  }
  const copy = Buffer.from(frame);
  copy.writeUInt8(copy.readUInt8(offset) ^ mask, offset);
  return copy;
}
