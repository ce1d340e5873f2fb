// What the tunnel's packets look like (bpf/lib/tunnel.h, lib/tunnel6.h), built independently of
// the programs for the Tunnel and DSR packet tests: the outer UDP source port hash, the FOU
// (Tunnel) and GUE variant 0 (DSR) wrappings in IPv4 and IPv6, a SYN's MSS option.
import { ipv4ToBuffer, ipv6ToBuffer } from '../../src/bpf/ip-bytes.js';
import { TUNNEL } from '../../src/bpf/sluice-structs.js';
import { buildFrame, buildFrame6, ETH_HLEN, IP_FLAG_DF } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';

/** The MSS option (kind 2, length 4) then NOP NOP SACK-permitted: a SYN's usual options. */
export const mssOption = (mss: number) => Buffer.from([2, 4, mss >> 8, mss & 0xff, 1, 1, 4, 2]);

/** lib/tunnel.h's sl_tunnel_sport, over the addresses and ports as the C code loads them. */
export function tunnelSport(saddr: string, daddr: string, sport: number, dport: number): number {
  const le32 = (ip: string) => ipv4ToBuffer(ip, Buffer.alloc(4), 0).readUInt32LE(0);
  const swap16 = (p: number) => ((p & 0xff) << 8) | (p >> 8);
  let h = (le32(saddr) ^ le32(daddr) ^ ((swap16(sport) << 16) | swap16(dport))) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return 49152 + (h & 0x3fff);
}

/**
 * A DSR flow's GUE header: variant 0, C 0, Hlen 2; Proto 4 (IPv4); no flags; then the private
 * data: the frontend address and port, kind 1 (DSR), a reserved 0.
 */
export function gueDsrHeader(frontend: string, port: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x02;
  b[1] = 4;
  ipv4ToBuffer(frontend, b, 4);
  b.writeUInt16BE(port, 8);
  b[10] = TUNNEL.GUE_DSR;
  return b;
}

/**
 * The frame a node sends through the tunnel: outer IPv4 + UDP (no checksum) around `inner`,
 * with `gue` (a DSR flow's header) between them when given.
 */
export function wrapped(outerSrc: string, outerDst: string, sport: number, inner: FrameSpec, df: boolean, gue?: Buffer): Buffer {
  const innerIp = buildFrame(inner).subarray(14);
  return buildFrame({
    ip: { src: outerSrc, dst: outerDst, ttl: TUNNEL.TTL, id: 0, fragOff: df ? IP_FLAG_DF : 0 },
    udp: { sport, dport: TUNNEL.PORT_DEFAULT, noChecksum: true },
    payload: gue ? Buffer.concat([gue, innerIp]) : innerIp,
  });
}

/** lib/tunnel6.h's sl_tunnel_sport6, over the words as the C code loads them (little-endian). */
export function tunnelSport6(saddr: string, daddr: string, sport: number, dport: number): number {
  const words = (ip: string) => { const b = ipv6ToBuffer(ip); return [0, 4, 8, 12].map((o) => b.readUInt32LE(o)); };
  const swap16 = (p: number) => ((p & 0xff) << 8) | (p >> 8);
  let h = [...words(saddr), ...words(daddr)].reduce((a, w) => (a ^ w) >>> 0, 0);
  h = (h ^ ((swap16(sport) << 16) | swap16(dport))) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return 49152 + (h & 0x3fff);
}

/** A DSR flow's IPv6 GUE header: variant 0, Hlen 5, Proto 41; the frontend, its port, kind 1. */
export function gueDsr6(frontend: string, port: number): Buffer {
  const b = Buffer.alloc(24);
  b[0] = 0x05;
  b[1] = 41;
  ipv6ToBuffer(frontend, b, 4);
  b.writeUInt16BE(port, 20);
  b[22] = TUNNEL.GUE_DSR;
  return b;
}

/** What a node sends through the tunnel: outer IPv6 (hop limit 64) + UDP to 6080, checksum 0. */
export function wrapped6(outerSrc: string, outerDst: string, sport: number, inner: Buffer, gue?: Buffer): Buffer {
  const payload = Buffer.concat([gue ?? Buffer.alloc(0), inner.subarray(ETH_HLEN)]);
  const f = buildFrame6({ src: outerSrc, dst: outerDst, hopLimit: TUNNEL.TTL, udp: { sport, dport: TUNNEL.PORT_DEFAULT }, payload });
  f.writeUInt16BE(0, ETH_HLEN + 40 + 6);
  return f;
}

/** The frame inside a wrapped one, with the outer frame's Ethernet header. */
export const innerOf = (frame: Buffer, overhead: number) => Buffer.concat([frame.subarray(0, ETH_HLEN), frame.subarray(ETH_HLEN + overhead)]);
