// The Internet checksum (RFC 1071) and the IPv4 pseudo-header that TCP and UDP checksums cover.
import { ipv4ToBuffer } from '../bpf/ip-bytes.js';

/** One's complement sum of 16-bit big-endian words, not yet folded (an odd tail is zero-padded). */
export function sum16(buf: Buffer, initial = 0): number {
  let sum = initial;
  const even = buf.length & ~1;
  for (let i = 0; i < even; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length & 1) sum += (buf[buf.length - 1] ?? 0) << 8;
  // Fold as we go would be slower; 32-bit overflow needs > 65k words, far beyond a frame.
  return sum;
}

export function fold16(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum to store: complement of the folded sum over all buffers, in order. */
export function internetChecksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const part of parts) {
    if (part.length & 1 && part !== parts[parts.length - 1]) {
      throw new RangeError('internetChecksum: only the last part may have an odd length');
    }
    sum = sum16(part, sum);
  }
  return ~fold16(sum) & 0xffff;
}

/** True when the parts, checksum field included, sum to all ones (the receiver's check). */
export function checksumValid(...parts: Buffer[]): boolean {
  return internetChecksum(...parts) === 0;
}

/** The 12-byte IPv4 pseudo-header: source, destination, zero, protocol, L4 length. */
export function ipv4PseudoHeader(src: string, dst: string, protocol: number, l4Length: number): Buffer {
  const buf = Buffer.alloc(12);
  ipv4ToBuffer(src, buf, 0);
  ipv4ToBuffer(dst, buf, 4);
  buf[9] = protocol;
  buf.writeUInt16BE(l4Length, 10);
  return buf;
}
