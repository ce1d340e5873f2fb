// IPv4 headers (RFC 791), options included.
import { ipv4FromBuffer, ipv4ToBuffer } from '../bpf/ip-bytes.js';
import { checksumValid, internetChecksum } from './checksum.js';

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;
export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;

export interface Ipv4Spec {
  src: string;
  dst: string;
  /** Default 64. */
  ttl?: number;
  /** Default 0. */
  id?: number;
  /** Default 0. */
  tos?: number;
  /** Flags and fragment offset (host order, e.g. IP_FLAG_DF); default 0. */
  fragOff?: number;
  /** Options, padded by the caller to a multiple of 4 bytes (max 40). */
  options?: Buffer;
}

export interface Ipv4Header extends Required<Ipv4Spec> {
  protocol: number;
  version: number;
  /** Header length in bytes (ihl * 4). */
  headerLength: number;
  totalLength: number;
  checksum: number;
  checksumValid: boolean;
}

/** A header for a payload of payloadLength bytes, checksum computed. */
export function encodeIpv4(spec: Ipv4Spec, protocol: number, payloadLength: number): Buffer {
  const options = spec.options ?? Buffer.alloc(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(`IPv4 options: length ${options.length} must be a multiple of 4 and at most 40`);
  }
  const hlen = 20 + options.length;
  const buf = Buffer.alloc(hlen);
  buf[0] = 0x40 | (hlen / 4);
  buf[1] = spec.tos ?? 0;
  buf.writeUInt16BE(hlen + payloadLength, 2);
  buf.writeUInt16BE(spec.id ?? 0, 4);
  buf.writeUInt16BE(spec.fragOff ?? 0, 6);
  buf[8] = spec.ttl ?? 64;
  buf[9] = protocol;
  ipv4ToBuffer(spec.src, buf, 12);
  ipv4ToBuffer(spec.dst, buf, 16);
  options.copy(buf, 20);
  buf.writeUInt16BE(internetChecksum(buf), 10);
  return buf;
}

/** Decodes the IPv4 header at the start of buf (the bytes after the Ethernet header). */
export function decodeIpv4(buf: Buffer): Ipv4Header {
  if (buf.length < 20) throw new RangeError(`packet: IPv4 header truncated: ${buf.length} bytes, needs 20`);
  const version = (buf[0] ?? 0) >> 4;
  const headerLength = ((buf[0] ?? 0) & 0x0f) * 4;
  if (version !== 4) throw new RangeError(`packet: IPv4 version field is ${version}, expected 4`);
  if (headerLength < 20 || headerLength > buf.length) {
    throw new RangeError(`packet: IPv4 header length ${headerLength} is invalid for ${buf.length} bytes`);
  }
  const totalLength = buf.readUInt16BE(2);
  if (totalLength < headerLength || totalLength > buf.length) {
    throw new RangeError(`packet: IPv4 total length ${totalLength} is invalid for ${buf.length} bytes`);
  }
  const header = buf.subarray(0, headerLength);
  return {
    version,
    headerLength,
    totalLength,
    tos: buf[1] ?? 0,
    id: buf.readUInt16BE(4),
    fragOff: buf.readUInt16BE(6),
    ttl: buf[8] ?? 0,
    protocol: buf[9] ?? 0,
    checksum: buf.readUInt16BE(10),
    checksumValid: checksumValid(header),
    src: ipv4FromBuffer(buf, 12),
    dst: ipv4FromBuffer(buf, 16),
    options: Buffer.from(buf.subarray(20, headerLength)),
  };
}
