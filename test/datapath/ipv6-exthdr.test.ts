// IPv6 extension headers on the TC path (BPF_PROG_TEST_RUN on the real tc.bpf.o; lib/parse6.h):
// TCP and UDP behind hop-by-hop, destination options, routing (segments left 0) and AH headers,
// up to four, are translated like any other packet, in both directions, the extension headers
// kept as they were. Each result is compared whole with a frame built from scratch (so the
// incremental pseudo-header checksum equals a full one), and its L4 checksum is verified again
// by walking the frame. Passed untouched and counted in sl_ipv6_untranslated: a routing header
// with segments left, fragments (first or not), ESP, a fifth header. ICMPv6 behind extension
// headers is never touched, never counted; a multicast packet is never counted. Rejects, ICMPv6
// errors quoting a packet with extension headers, and hairpin behind them are handled too.
import t from 'tap';
import type { Test } from 'tap';
import { decodePerCpu } from '../../src/bpf/codec.js';
import { CT_TYPE, IPPROTO, u32Key, u64Value } from '../../src/bpf/sluice-structs.js';
import {
  authHeader, buildFrame6, DEFAULT_DST_MAC, DEFAULT_SRC_MAC, espHeader, ETH_HLEN, fragmentHeader, internetChecksum, ipv6PseudoHeader, NEXTHDR, optionsHeader,
  parseFrame6, routingHeader, TCP6_FLAGS, type Ext6, type Frame6Spec,
} from '../../src/packet/index.js';
import type { Datapath } from './harness.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import { addService6, ct6, ICMP6, icmp6Error, ipv6Packet } from './harness6.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::10';
const EMPTY_VIP = 'fd00:96::11';
const BACKEND = { addr: 'fd00:10:244::1f', port: 8080 };
const ROUTER = 'fd00:0:0:1::1';
const HBH = NEXTHDR.HOP_BY_HOP;
const DEST = NEXTHDR.DEST_OPTS;

const untranslated = (dp: Datapath): bigint => {
  const buf = dp.obj.map('sl_ipv6_untranslated').lookup(u32Key.encode(0));
  return buf ? decodePerCpu(u64Value, buf, dp.addon.numPossibleCpus()).reduce((a, c) => a + c, 0n) : -1n;
};

async function withServices(t: Test): Promise<Datapath | null> {
  const dp = await loadDatapath(t);
  if (!dp) return null;
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: [BACKEND] });
  addService6(dp, { vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 8, backendId: 80, cluster: [BACKEND] });
  return dp;
}

/** The frame's L4 checksum recomputed from scratch: the walk finds the upper layer, sum over the pseudo-header. */
function l4ChecksumValid(frame: Buffer): boolean {
  const p = parseFrame6(frame);
  const end = ETH_HLEN + 40 + frame.readUInt16BE(ETH_HLEN + 4);
  return internetChecksum(ipv6PseudoHeader(p.src, p.dst, p.next, end - p.l4Offset), frame.subarray(p.l4Offset, end)) === 0;
}

/** Sends spec (to the VIP) from the pod and the backend's answer to the pod, both with `exts`; checks both whole. */
function roundTrip(t: Test, dp: Datapath, exts: Frame6Spec['extensions'], l4: 'tcp' | 'udp', sport: number, what: string): void {
  const payload = Buffer.from('odd-length payload!');
  const vport = l4 === 'tcp' ? 80 : 53;
  const req = (dst: string, dport: number): Frame6Spec => ({
    src: CLIENT, dst, extensions: exts, payload,
    ...(l4 === 'tcp' ? { tcp: { sport, dport, flags: TCP6_FLAGS.SYN, seq: 1 } } : { udp: { sport, dport } }),
  });
  const rep = (src: string, port: number): Frame6Spec => ({
    src, dst: CLIENT, extensions: exts, payload,
    ...(l4 === 'tcp' ? { tcp: { sport: port, dport: sport, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 9, ack: 2 } } : { udp: { sport: port, dport: sport } }),
  });
  const out = dp.run(PROG.FROM_POD, buildFrame6(req(VIP, vport)));
  t.equal(out.retval, TC_ACT.UNSPEC, `${what}: passed on`);
  t.same(out.data, buildFrame6(req(BACKEND.addr, BACKEND.port)), `${what}: DNATed byte for byte, extension headers unchanged`);
  t.ok(l4ChecksumValid(out.data), `${what}: the L4 checksum verifies from scratch`);
  const proto = l4 === 'tcp' ? IPPROTO.TCP : IPPROTO.UDP;
  t.match(ct6(dp, CLIENT, VIP, sport, vport, proto), { type: CT_TYPE.FORWARD, nat_addr: BACKEND.addr, nat_port: BACKEND.port }, `${what}: FORWARD entry from the walked tuple`);
  const back = dp.run(PROG.TO_POD, buildFrame6(rep(BACKEND.addr, BACKEND.port)));
  t.equal(back.retval, TC_ACT.UNSPEC);
  t.same(back.data, buildFrame6(rep(VIP, vport)), `${what}: the reply (extension headers too) reverse-NATed to the VIP byte for byte`);
  t.ok(l4ChecksumValid(back.data), `${what}: the reply's L4 checksum verifies from scratch`);
}

t.test('TCP behind hop-by-hop, UDP behind destination options, chains, routing with segments left 0, AH: translated both ways', async (t) => {
  const dp = await withServices(t);
  if (!dp) return;
  roundTrip(t, dp, [HBH], 'tcp', 41000, 'hop-by-hop + TCP');
  roundTrip(t, dp, [DEST], 'udp', 41001, 'destination options + UDP');
  roundTrip(t, dp, [HBH, optionsHeader(DEST, 24)], 'tcp', 41002, 'hop-by-hop + 24-byte destination options + TCP');
  roundTrip(t, dp, [HBH, routingHeader(0, [VIP, ROUTER]), DEST], 'udp', 41003, 'hop-by-hop + routing (segments left 0) + destination options + UDP');
  roundTrip(t, dp, [HBH, authHeader(12)], 'tcp', 41004, 'hop-by-hop + AH (length in 4-byte units) + TCP');
  roundTrip(t, dp, [HBH, DEST, routingHeader(0, [VIP]), optionsHeader(DEST, 16)], 'tcp', 41005, 'four headers (the bound) + TCP');
  t.equal(untranslated(dp), 0n, 'nothing counted');
  t.match(dp.svcCounters(7), { connections: 4n }, 'the TCP flows counted for the service');
});

t.test('a corrupted frame fails the from-scratch checksum check (the check can fail)', async (t) => {
  const frame = buildFrame6({ src: CLIENT, dst: VIP, extensions: [HBH, DEST], tcp: { sport: 1, dport: 80 } });
  t.ok(l4ChecksumValid(frame));
  const bad = Buffer.from(frame);
  bad.writeUInt8(bad.readUInt8(bad.length - 18) ^ 1, bad.length - 18); // the TCP destination port
  t.notOk(l4ChecksumValid(bad));
});

t.test('passed untouched and counted: routing with segments left, fragments, ESP, a fifth header', async (t) => {
  const dp = await withServices(t);
  if (!dp) return;
  const cases: Array<[string, Ext6 | typeof HBH | typeof DEST, ...Array<Ext6 | typeof HBH | typeof DEST>]> = [
    ['routing, segments left 1 (the destination is a waypoint)', HBH, routingHeader(1, [ROUTER, VIP])],
    ['routing type 0, segments left 2', routingHeader(2, [ROUTER, VIP], 0)],
    ['a first fragment', fragmentHeader(0, true)],
    ['a last fragment', HBH, fragmentHeader(185, false)],
    ['ESP', espHeader()],
    ['five headers', HBH, DEST, DEST, DEST, DEST],
  ];
  let n = 0n;
  for (const [i, [what, ...exts]] of cases.entries()) {
    for (const l4 of ['tcp', 'udp'] as const) {
      const frame = buildFrame6({
        src: CLIENT, dst: VIP, extensions: exts, payload: Buffer.from('data'),
        ...(l4 === 'tcp' ? { tcp: { sport: 42000 + i, dport: 80, flags: TCP6_FLAGS.SYN } } : { udp: { sport: 42000 + i, dport: 53 } }),
      });
      const r = dp.run(PROG.FROM_POD, frame);
      t.equal(r.retval, TC_ACT.UNSPEC, `${what} (${l4}): passes`);
      t.same(r.data, frame, `${what} (${l4}): untouched`);
      t.equal(untranslated(dp), ++n, `${what} (${l4}): counted`);
      t.equal(ct6(dp, CLIENT, VIP, 42000 + i, l4 === 'tcp' ? 80 : 53, l4 === 'tcp' ? IPPROTO.TCP : IPPROTO.UDP), null, `${what} (${l4}): no flow`);
    }
  }
  // The reply direction: a backend's fragment passes untouched, counted.
  const frag = buildFrame6({ src: BACKEND.addr, dst: CLIENT, extensions: [fragmentHeader(0, true)], udp: { sport: BACKEND.port, dport: 42000 } });
  t.same(dp.run(PROG.TO_POD, frag).data, frag, 'a fragment towards the pod: untouched');
  t.equal(untranslated(dp), n + 1n, 'counted');
  // A header that says it is longer than the packet: untouched, not counted (truncated, not untranslatable).
  const cut = buildFrame6({ src: CLIENT, dst: VIP, extensions: [HBH], tcp: { sport: 42100, dport: 80, flags: TCP6_FLAGS.SYN } });
  cut[ETH_HLEN + 40 + 1] = 200;
  t.same(dp.run(PROG.FROM_POD, cut).data, cut, 'a truncated chain passes untouched');
  t.equal(untranslated(dp), n + 1n, 'and is not counted');
});

t.test('ICMPv6 behind extension headers is never touched nor counted; multicast is never counted', async (t) => {
  const dp = await withServices(t);
  if (!dp) return;
  const frames: Array<[string, Buffer]> = [
    ['an MLDv2 report (hop-by-hop, ff02::16)', buildFrame6({ src: 'fe80::1', dst: 'ff02::16', hopLimit: 1, extensions: [HBH], icmp6: { type: 143, code: 0 }, payload: Buffer.alloc(4) })],
    ['a neighbour solicitation behind destination options', buildFrame6({ src: CLIENT, dst: 'ff02::1:ff00:10', hopLimit: 255, extensions: [DEST], icmp6: { type: 135, code: 0 }, payload: Buffer.alloc(20, 1) })],
    ['an echo request to the VIP behind hop-by-hop', buildFrame6({ src: CLIENT, dst: VIP, extensions: [HBH], icmp6: { type: 128, code: 0 }, payload: Buffer.from('ping') })],
    ['a neighbour advertisement behind two headers', buildFrame6({ src: BACKEND.addr, dst: CLIENT, hopLimit: 255, extensions: [HBH, DEST], icmp6: { type: 136, code: 0 }, payload: Buffer.alloc(20, 2) })],
    ['a fragment to a multicast group', buildFrame6({ src: CLIENT, dst: 'ff05::1:3', extensions: [fragmentHeader(0, true)], udp: { sport: 546, dport: 547 } })],
  ];
  for (const [what, frame] of frames) {
    for (const prog of [PROG.FROM_POD, PROG.TO_POD]) {
      const r = dp.run(prog, frame);
      t.equal(r.retval, TC_ACT.UNSPEC, `${what} (${prog}) passes`);
      t.same(r.data, frame, `${what} (${prog}) untouched`);
    }
  }
  t.equal(untranslated(dp), 0n, 'none counted');
});

t.test('to a service without endpoints behind extension headers: RST acknowledging only the payload; port unreachable quoting the headers', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: EMPTY_VIP, port: 443, proto: IPPROTO.TCP, svcId: 9, backendId: 90, cluster: [] });
  const macs = { srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:01' };
  const out = dp.run(PROG.FROM_POD, buildFrame6({
    ...macs, src: CLIENT, dst: EMPTY_VIP, extensions: [HBH, optionsHeader(DEST, 16)], tcp: { sport: 33333, dport: 443, flags: TCP6_FLAGS.SYN, seq: 100 }, payload: Buffer.from('xyz'),
  }));
  t.equal(out.retval, TC_ACT.REDIRECT, 'bounced');
  t.same(out.data, buildFrame6({
    srcMac: macs.dstMac, dstMac: macs.srcMac, src: EMPTY_VIP, dst: CLIENT, tcp: { sport: 443, dport: 33333, flags: TCP6_FLAGS.RST | TCP6_FLAGS.ACK, seq: 0, ack: 104, window: 0 },
  }), 'a RST+ACK acknowledging SYN + 3 bytes (the 24 bytes of extension headers are no segment data)');

  // UDP: the port unreachable quotes the datagram with its extension headers (the pod's kernel
  // walks them to find its socket), up to the IPv6 header + 64 bytes.
  addService6(dp, { vip: EMPTY_VIP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [] });
  const input = buildFrame6({ ...macs, src: CLIENT, dst: EMPTY_VIP, extensions: [HBH], udp: { sport: 5000, dport: 53 }, payload: Buffer.alloc(100, 0x71) });
  const udp = dp.run(PROG.FROM_POD, input);
  t.equal(udp.retval, TC_ACT.REDIRECT, 'bounced');
  t.same(udp.data, icmp6Error(EMPTY_VIP, CLIENT, input.subarray(ETH_HLEN, ETH_HLEN + 40 + 64), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { srcMac: macs.dstMac, dstMac: macs.srcMac }),
    'an ICMPv6 port unreachable from the VIP quoting the header, the hop-by-hop header, the UDP header and 48 bytes');
});

t.test('ICMPv6 errors quoting a packet with extension headers: walked like the packet, or passed', async (t) => {
  const dp = await withServices(t);
  if (!dp) return;
  const sent: Frame6Spec = { src: CLIENT, dst: VIP, extensions: [HBH, DEST], tcp: { sport: 43000, dport: 80, flags: TCP6_FLAGS.SYN, seq: 1 }, payload: Buffer.alloc(200, 0x61) };
  const dnated: Frame6Spec = { ...sent, dst: BACKEND.addr, tcp: { ...sent.tcp!, dport: BACKEND.port } };
  t.same(dp.run(PROG.FROM_POD, buildFrame6(sent)).data.subarray(ETH_HLEN), ipv6Packet(dnated), 'control: the segment was DNATed');
  // A router's Packet Too Big quoting the DNATed segment: the quote becomes what the pod sent.
  const ptb = dp.run(PROG.TO_POD, icmp6Error(ROUTER, CLIENT, ipv6Packet(dnated), ICMP6.PKT_TOOBIG, 0, 1280));
  t.equal(ptb.retval, TC_ACT.UNSPEC);
  t.same(ptb.data, icmp6Error(ROUTER, CLIENT, ipv6Packet(sent), ICMP6.PKT_TOOBIG, 0, 1280), 'quote rewritten to the VIP, quoted TCP and ICMPv6 checksums exact');
  // From the pod: its port unreachable about a reply (with a hop-by-hop header) from the VIP goes
  // to the backend, quoting the backend's own packet.
  const reply: Frame6Spec = { src: VIP, dst: CLIENT, extensions: [HBH], tcp: { sport: 80, dport: 43000, flags: TCP6_FLAGS.ACK, seq: 5, ack: 2 } };
  const replySent: Frame6Spec = { ...reply, src: BACKEND.addr, tcp: { ...reply.tcp!, sport: BACKEND.port } };
  const fromPod = dp.run(PROG.FROM_POD, icmp6Error(CLIENT, VIP, ipv6Packet(reply), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH));
  t.same(fromPod.data, icmp6Error(CLIENT, BACKEND.addr, ipv6Packet(replySent), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH), "from the pod: to the backend, quoting the backend's own packet");
  // Quotes the walk would not translate, or cut inside the chain: untouched.
  const frag: Frame6Spec = { ...dnated, extensions: [fragmentHeader(0, true)] };
  const routed: Frame6Spec = { ...dnated, extensions: [routingHeader(1, [ROUTER, BACKEND.addr])] };
  for (const [what, quote] of [
    ['a fragment', ipv6Packet(frag)], ['a routing header with segments left', ipv6Packet(routed)], ['a quote cut inside the chain', ipv6Packet(dnated).subarray(0, 44)],
  ] as const) {
    const err = icmp6Error(ROUTER, CLIENT, quote, ICMP6.PKT_TOOBIG, 0, 1280);
    const r = dp.run(PROG.TO_POD, err);
    t.equal(r.retval, TC_ACT.UNSPEC, `${what}: passes`);
    t.same(r.data, err, `${what}: untouched`);
  }
  t.equal(untranslated(dp), 0n, 'errors are not counted');
});

t.test('hairpin behind a destination options header: both addresses and both ports rewritten past it', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const SELF_VIP = 'fd00:96::50';
  addService6(dp, { vip: SELF_VIP, port: 53, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [{ addr: CLIENT, port: 5353 }] });
  const back = { srcMac: DEFAULT_DST_MAC, dstMac: DEFAULT_SRC_MAC };
  const exts = [optionsHeader(DEST, 16)];
  const q = Buffer.from('q');
  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: SELF_VIP, extensions: exts, udp: { sport: 4000, dport: 53 }, payload: q }));
  t.equal(out.retval, TC_ACT.REDIRECT, "straight back out of the pod's interface");
  t.same(out.data, buildFrame6({ ...back, src: SELF_VIP, dst: CLIENT, extensions: exts, udp: { sport: 4000, dport: 5353 }, payload: q }), 'VIP -> pod, checksum exact');
  const a = Buffer.from('answer');
  const reply = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: SELF_VIP, extensions: exts, udp: { sport: 5353, dport: 4000 }, payload: a }));
  t.equal(reply.retval, TC_ACT.REDIRECT);
  t.same(reply.data, buildFrame6({ ...back, src: SELF_VIP, dst: CLIENT, extensions: exts, udp: { sport: 53, dport: 4000 }, payload: a }), 'the answer: VIP:53 -> pod:4000');
});
