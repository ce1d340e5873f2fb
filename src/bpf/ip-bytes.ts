// IP address text <-> network-order bytes, as BPF maps hold them.
import { isIPv6 } from 'node:net';

/**
 * Writes the four octets of dotted-quad `ip` into buf[off..off+4); false (buf partly written)
 * when it is not exactly four decimal octets 0-255 without leading zeros. Hand-rolled: this runs
 * for every key and value the writer encodes and every address it validates (a regex here cost
 * ~15% of a 10k-service apply).
 */
function parseIpv4Into(ip: unknown, buf: Buffer | Uint8Array, off: number): boolean {
  if (typeof ip !== 'string') return false;
  let octet = 0;
  let digits = 0;
  let part = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46; // a final '.' closes the last octet
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      buf[off + part++] = octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else {
      return false;
    }
  }
  return part === 4;
}

export function ipv4ToBuffer(ip: string, buf: Buffer = Buffer.alloc(4), off = 0): Buffer {
  if (!parseIpv4Into(ip, buf, off)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return buf;
}

const scratch = new Uint8Array(4);

/** True for exactly the addresses ipv4ToBuffer accepts (canonical dotted quads). */
export function isIpv4Text(ip: unknown): ip is string {
  return parseIpv4Into(ip, scratch, 0);
}

export function ipv4FromBuffer(buf: Buffer, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** IPv4 as the 32-bit number whose big-endian bytes are the address (for sorting, ranges). */
export function ipv4ToNumber(ip: string): number {
  return ipv4ToBuffer(ip).readUInt32BE(0);
}

export function ipv6ToBuffer(ip: string, buf: Buffer = Buffer.alloc(16), off = 0): Buffer {
  if (!isIPv6(ip)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = ipv4ToBuffer(v4[1]);
    text = text.slice(0, -v4[1].length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups];
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), off + i * 2));
  return buf;
}

export function ipv6FromBuffer(buf: Buffer, off = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
