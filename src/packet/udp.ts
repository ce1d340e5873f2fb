// UDP headers (RFC 768). Over IPv4 a zero checksum means "none"; a computed zero is sent as 0xffff.
import { checksumValid, internetChecksum, ipv4PseudoHeader } from './checksum.js';
import { IPPROTO } from './ipv4.js';

export interface UdpSpec {
  sport: number;
  dport: number;
  /** Send without a checksum (0). Default false. */
  noChecksum?: boolean;
}

export interface UdpHeader {
  sport: number;
  dport: number;
  length: number;
  checksum: number;
  /** False when the checksum field is 0 (none). */
  checksumPresent: boolean;
  /** True when present and correct, or absent. */
  checksumValid: boolean;
}

export function encodeUdp(spec: UdpSpec, src: string, dst: string, payload: Buffer): Buffer {
  const dgram = Buffer.alloc(8 + payload.length);
  dgram.writeUInt16BE(spec.sport, 0);
  dgram.writeUInt16BE(spec.dport, 2);
  dgram.writeUInt16BE(dgram.length, 4);
  payload.copy(dgram, 8);
  if (!spec.noChecksum) {
    const sum = internetChecksum(ipv4PseudoHeader(src, dst, IPPROTO.UDP, dgram.length), dgram);
    dgram.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  }
  return dgram;
}

export function decodeUdp(dgram: Buffer, src: string, dst: string): { header: UdpHeader; payload: Buffer } {
  if (dgram.length < 8) throw new RangeError(`packet: UDP header truncated: ${dgram.length} bytes, needs 8`);
  const length = dgram.readUInt16BE(4);
  if (length < 8 || length > dgram.length) {
    throw new RangeError(`packet: UDP length field ${length} is invalid for ${dgram.length} bytes`);
  }
  const body = dgram.subarray(0, length);
  const checksum = dgram.readUInt16BE(6);
  const checksumPresent = checksum !== 0;
  const header: UdpHeader = {
    sport: dgram.readUInt16BE(0),
    dport: dgram.readUInt16BE(2),
    length,
    checksum,
    checksumPresent,
    checksumValid: !checksumPresent || checksumValid(ipv4PseudoHeader(src, dst, IPPROTO.UDP, length), body),
  };
  return { header, payload: Buffer.from(dgram.subarray(8, length)) };
}
