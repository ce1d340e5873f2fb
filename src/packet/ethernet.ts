// Ethernet II headers.

export const ETH_HLEN = 14;
export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806, IPV6: 0x86dd } as const;

export interface EthernetHeader {
  /** aa:bb:cc:dd:ee:ff */
  dst: string;
  src: string;
  etherType: number;
}

export function macToBuffer(mac: string, buf: Buffer = Buffer.alloc(6), off = 0): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  }
  parts.forEach((p, i) => (buf[off + i] = parseInt(p, 16)));
  return buf;
}

export function macFromBuffer(buf: Buffer, off = 0): string {
  return [...buf.subarray(off, off + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function encodeEthernet(h: EthernetHeader): Buffer {
  const buf = Buffer.alloc(ETH_HLEN);
  macToBuffer(h.dst, buf, 0);
  macToBuffer(h.src, buf, 6);
  buf.writeUInt16BE(h.etherType, 12);
  return buf;
}

export function decodeEthernet(frame: Buffer): EthernetHeader {
  if (frame.length < ETH_HLEN) {
    throw new RangeError(`packet: Ethernet header truncated: frame has ${frame.length} bytes, needs ${ETH_HLEN}`);
  }
  return { dst: macFromBuffer(frame, 0), src: macFromBuffer(frame, 6), etherType: frame.readUInt16BE(12) };
}
