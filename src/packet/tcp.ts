// TCP headers (RFC 793) with the checksum over the IPv4 pseudo-header.
import { checksumValid, internetChecksum, ipv4PseudoHeader } from './checksum.js';
import { IPPROTO } from './ipv4.js';

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

export interface TcpSpec {
  sport: number;
  dport: number;
  /** TCP_FLAGS bits. */
  flags: number;
  seq?: number;
  ack?: number;
  /** Default 65535. */
  window?: number;
  urgent?: number;
  /** Options, padded by the caller to a multiple of 4 bytes (max 40). */
  options?: Buffer;
}

export interface TcpHeader extends Required<TcpSpec> {
  headerLength: number;
  checksum: number;
  checksumValid: boolean;
}

/** Header + payload with the checksum computed for the given IPv4 addresses. */
export function encodeTcp(spec: TcpSpec, src: string, dst: string, payload: Buffer): Buffer {
  const options = spec.options ?? Buffer.alloc(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(`TCP options: length ${options.length} must be a multiple of 4 and at most 40`);
  }
  const hlen = 20 + options.length;
  const seg = Buffer.alloc(hlen + payload.length);
  seg.writeUInt16BE(spec.sport, 0);
  seg.writeUInt16BE(spec.dport, 2);
  seg.writeUInt32BE((spec.seq ?? 0) >>> 0, 4);
  seg.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  seg[12] = (hlen / 4) << 4;
  seg[13] = spec.flags;
  seg.writeUInt16BE(spec.window ?? 65535, 14);
  seg.writeUInt16BE(spec.urgent ?? 0, 18);
  options.copy(seg, 20);
  payload.copy(seg, hlen);
  seg.writeUInt16BE(internetChecksum(ipv4PseudoHeader(src, dst, IPPROTO.TCP, seg.length), seg), 16);
  return seg;
}

/** Decodes a TCP segment (header + payload); src/dst are the IPv4 addresses for the checksum. */
export function decodeTcp(seg: Buffer, src: string, dst: string): { header: TcpHeader; payload: Buffer } {
  if (seg.length < 20) throw new RangeError(`packet: TCP header truncated: ${seg.length} bytes, needs 20`);
  const headerLength = ((seg[12] ?? 0) >> 4) * 4;
  if (headerLength < 20 || headerLength > seg.length) {
    throw new RangeError(`packet: TCP data offset ${headerLength} is invalid for ${seg.length} bytes`);
  }
  const header: TcpHeader = {
    sport: seg.readUInt16BE(0),
    dport: seg.readUInt16BE(2),
    seq: seg.readUInt32BE(4),
    ack: seg.readUInt32BE(8),
    headerLength,
    flags: seg[13] ?? 0,
    window: seg.readUInt16BE(14),
    checksum: seg.readUInt16BE(16),
    urgent: seg.readUInt16BE(18),
    options: Buffer.from(seg.subarray(20, headerLength)),
    checksumValid: checksumValid(ipv4PseudoHeader(src, dst, IPPROTO.TCP, seg.length), seg),
  };
  return { header, payload: Buffer.from(seg.subarray(headerLength)) };
}
