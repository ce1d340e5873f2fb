// The IPv6 Tunnel and DSR modes (bpf/host.bpf.c's sl_host6_tun and sl_host6_decap,
// lib/host6_tunnel.h, lib/tunnel6.h): an external IPv6 flow whose backend is on another node
// travels there inside an outer IPv6 + UDP header (port 6080, UDP checksum 0) with the client's
// address untouched; the backend's node unwraps it (only from a node of sl_tunnel_nodes6) and
// hands it to the kernel for the pod; Tunnel: the pod's reply is wrapped back and translated at
// the ingress node; DSR: the GUE header carries the frontend and the backend's node answers from
// it. Two loaded objects, one per node. Packets sent out are redirected, or (no route in the
// test's namespace) dropped and counted: the bytes after the Ethernet addresses are exact.
import t from 'tap';
import type { Test } from 'tap';
import { CT_F, CT_STATE, CT_TYPE, EXTERNAL_MODE, IPPROTO, SVC_F, TUNNEL } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, internetChecksum, ipv6PseudoHeader, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Frame6Spec } from '../../src/packet/index.js';
import { DsrOptoutWriter } from '../../src/agent/dsr-optout.js';
import { TunnelNodeWriter } from '../../src/agent/tunnel-nodes.js';
import { DSR_OPTOUT_MAPS, TUNNEL_NODES_MAPS } from '../../src/dataplane/table-specs.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { addService6, ct6, ICMP6, icmp6Error, setNodeConfig6 } from './harness6.js';
import { gueDsr6, innerOf, mssOption, tunnelSport6, wrapped6 } from './tunnel-frames.js';

const CLIENT = '2001:db8:77::7';
const OPTED_OUT = '2001:db8:99::9';
const NODE_A = '2001:db8:50::2';
const NODE_B = '2001:db8:50::3';
const STRANGER = '2001:db8:50::99';
const REMOTE = { addr: 'fd00:10:244:2::c', port: 8080, flags: 0, nodeAddr: NODE_B };
const L2 = 12; // Ethernet addresses: rewritten by the redirect
const MSS_CLAMPED = 1500 - TUNNEL.V6_OVERHEAD - 40 - 20; // 1392
const MSS_CLAMPED_DSR = 1500 - TUNNEL.V6_DSR_OVERHEAD - 40 - 20; // 1368

async function tunnelNode(t: Test, self: string, peer: string, mode: number = EXTERNAL_MODE.TUNNEL): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: { sl_external_mode: mode } });
  if (!dp) return null;
  setNodeConfig6(dp, self, 61000, 61009);
  new TunnelNodeWriter(dp.obj.map(TUNNEL_NODES_MAPS.IPv6), 'IPv6').apply([peer]);
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, noRouteBefore: bigint): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRouteBefore + 1n], 'no route here: dropped and counted');
}

/** A TCP frame whose header carries `options` (buildFrame6 has none): data offset and checksum fixed. */
function withOptions(spec: Frame6Spec, options: Buffer): Buffer {
  const f = buildFrame6({ ...spec, payload: options });
  const l4 = ETH_HLEN + 40;
  f[l4 + 12] = ((20 + options.length) / 4) << 4;
  f.writeUInt16BE(0, l4 + 16);
  f.writeUInt16BE(internetChecksum(ipv6PseudoHeader(spec.src, spec.dst, 6, f.length - l4), f.subarray(l4)), l4 + 16);
  return f;
}

/** The MSS option's value in a TCP frame built by withOptions. */
const mssOf = (frame: Buffer, l4: number) => frame.readUInt16BE(l4 + 22);

const synSpec = (src: string, sport: number, dst: string, dport: number, hopLimit: number, flags: number = TCP6_FLAGS.SYN): Frame6Spec =>
  ({ src, dst, hopLimit, tcp: { sport, dport, flags, seq: 1000, ack: flags & TCP6_FLAGS.ACK ? 9001 : 0 } });

t.test('IPv6 Tunnel: the client\'s packet to B and back, exact at every step, the client\'s address kept', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B);
  const b = await tunnelNode(t, NODE_B, NODE_A);
  if (!a || !b) return;
  addService6(a, { vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL, clusterIp: false });

  // 1. Ingress node A: DNAT to the backend, hop limit - 1, MSS clamped, wrapped for node B.
  const out = a.run(PROG.HOST_INGRESS, withOptions(synSpec(CLIENT, 40001, NODE_A, 30080, 57), mssOption(1440)));
  sentOn(t, a, out, 0n);
  const innerA = withOptions(synSpec(CLIENT, 40001, REMOTE.addr, REMOTE.port, 56), mssOption(MSS_CLAMPED));
  const want = wrapped6(NODE_A, NODE_B, tunnelSport6(CLIENT, NODE_A, 40001, 30080), innerA);
  t.same(out.data.subarray(L2), want.subarray(L2), `outer [A] -> [B]:6080 (UDP checksum 0) around client -> backend:8080, MSS ${MSS_CLAMPED}`);
  t.ok(parseFrame6(innerOf(out.data, TUNNEL.V6_OVERHEAD)).checksumOk, 'inner TCP checksum valid');
  t.match(ct6(a, CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.TUNNEL, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_B, nat_sport: 0, svc_id: 3 });
  t.match(ct6(a, REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.TUNNEL, nat_addr: NODE_A, nat_port: 30080, nat_saddr: NODE_B });

  // 2. Backend node B: unwrapped, handed to the kernel for the pod with the client's source.
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.equal(inB.retval, TC_ACT.UNSPEC, 'to the kernel, which routes it to the pod');
  t.same(inB.data.subarray(L2), innerA.subarray(L2), 'exactly the inner packet: client -> backend');
  t.match(ct6(b, CLIENT, REMOTE.addr, 40001, REMOTE.port, IPPROTO.TCP), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.DECAP, nat_addr: REMOTE.addr, nat_saddr: NODE_A, svc_id: 0 });
  t.match(ct6(b, REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.DECAP, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_A });

  // 3. The pod's SYN-ACK leaving node B: MSS clamped, wrapped back to node A (hop limit as the
  // kernel forwarded it).
  const synAck = synSpec(REMOTE.addr, REMOTE.port, CLIENT, 40001, 63, TCP6_FLAGS.SYN | TCP6_FLAGS.ACK);
  const back = b.run(PROG.HOST_EGRESS, withOptions(synAck, mssOption(1440)));
  sentOn(t, b, back, 0n);
  const innerB = withOptions(synAck, mssOption(MSS_CLAMPED));
  t.same(back.data.subarray(L2), wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, REMOTE.port, 40001), innerB).subarray(L2), 'outer [B] -> [A]:6080 around backend -> client');

  // 4. Ingress node A: unwrapped, source back to the frontend, sent to the client.
  const reply = a.run(PROG.HOST_INGRESS, back.data);
  sentOn(t, a, reply, out.retval === TC_ACT.SHOT ? 1n : 0n);
  const wantReply = withOptions({ ...synAck, src: NODE_A, hopLimit: 62, tcp: { ...synAck.tcp!, sport: 30080 } }, mssOption(MSS_CLAMPED));
  t.same(reply.data.subarray(L2), wantReply.subarray(L2), '[A]:30080 -> client:40001, TCP checksum as computed afresh');
  t.equal(ct6(a, CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED);

  // The client's next segment takes the tunnel too.
  const ack = a.run(PROG.HOST_INGRESS, buildFrame6(synSpec(CLIENT, 40001, NODE_A, 30080, 57, TCP6_FLAGS.ACK)));
  const outer = parseFrame6(ack.data);
  t.same([outer.src, outer.dst, outer.dport], [NODE_A, NODE_B, TUNNEL.PORT_DEFAULT]);
  t.same(parseFrame6(innerOf(ack.data, TUNNEL.V6_OVERHEAD)).src, CLIENT, 'the client\'s address inside');
});

t.test('IPv6 Tunnel: UDP both ways; a datagram too large to wrap is answered with Packet Too Big and counted', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B);
  const b = await tunnelNode(t, NODE_B, NODE_A);
  if (!a || !b) return;
  addService6(a, { vip: NODE_A, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 53 }], flags: SVC_F.EXTERNAL, clusterIp: false });
  const payload = Buffer.from('query');
  const out = a.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE_A, hopLimit: 60, udp: { sport: 5353, dport: 30053 }, payload }));
  const inner = buildFrame6({ src: CLIENT, dst: REMOTE.addr, hopLimit: 59, udp: { sport: 5353, dport: 53 }, payload });
  t.same(out.data.subarray(L2), wrapped6(NODE_A, NODE_B, tunnelSport6(CLIENT, NODE_A, 5353, 30053), inner).subarray(L2));
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.equal(inB.retval, TC_ACT.UNSPEC);
  t.ok(parseFrame6(inB.data).checksumOk, 'the inner UDP checksum holds');
  const answer = b.run(PROG.HOST_EGRESS, buildFrame6({ src: REMOTE.addr, dst: CLIENT, hopLimit: 63, udp: { sport: 53, dport: 5353 }, payload }));
  const reply = parseFrame6(a.run(PROG.HOST_INGRESS, answer.data).data);
  t.same([reply.src, reply.sport, reply.dst, reply.dport, reply.checksumOk], [NODE_A, 30053, CLIENT, 5353, true]);

  // 1500 - 48 = 1452 bytes fit once wrapped: 40 + 8 + 1404 does, 1405 does not.
  const fits = a.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE_A, udp: { sport: 5354, dport: 30053 }, payload: Buffer.alloc(1404) }));
  t.equal(a.drops('tunnel_mtu'), 0n, `1452 bytes fit (${fits.retval})`);
  const big = buildFrame6({ src: CLIENT, dst: NODE_A, udp: { sport: 5355, dport: 30053 }, payload: Buffer.alloc(1405) });
  const ptb = a.run(PROG.HOST_INGRESS, big);
  t.same([ptb.retval, a.drops('tunnel_mtu')], [TC_ACT.REDIRECT, 1n], 'answered and counted');
  const p = parseFrame6(ptb.data);
  t.same([p.src, p.dst, p.next, p.checksumOk], [NODE_A, CLIENT, 58, true], 'ICMPv6 from the frontend to the client');
  const icmp = ptb.data.subarray(p.l4Offset);
  t.same([icmp[0], icmp[1], icmp.readUInt32BE(4)], [2, 0, 1500 - TUNNEL.V6_OVERHEAD], 'Packet Too Big, MTU 1452');
  t.same(icmp.subarray(8, 8 + 104), big.subarray(ETH_HLEN, ETH_HLEN + 104), 'quoting the datagram as the client sent it');
});

t.test('IPv6 tunnel traffic from an address that is no cluster node is dropped and counted (in SNAT mode too)', async (t) => {
  for (const mode of [EXTERNAL_MODE.TUNNEL, EXTERNAL_MODE.SNAT]) {
    const b = await tunnelNode(t, NODE_B, NODE_A, mode);
    if (!b) return;
    const inner = buildFrame6(synSpec(CLIENT, 1, REMOTE.addr, REMOTE.port, 60));
    const forged = b.run(PROG.HOST_INGRESS, wrapped6(STRANGER, NODE_B, 50000, inner));
    t.same([forged.retval, b.drops('tunnel_source')], [TC_ACT.SHOT, 1n], `mode ${mode}: refused`);
    t.equal(ct6(b, CLIENT, REMOTE.addr, 1, REMOTE.port, IPPROTO.TCP), null, 'no entry created');
    const fromNode = b.run(PROG.HOST_INGRESS, wrapped6(NODE_A, NODE_B, 50000, inner));
    t.same([fromNode.retval, fromNode.data.subarray(L2)], [TC_ACT.UNSPEC, inner.subarray(L2)], `mode ${mode}: from a node it is unwrapped`);
  }
});

t.test('IPv6 DSR: the frontend travels in the GUE header; node B answers the client from it; an opted-out client takes the tunnel', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B, EXTERNAL_MODE.DSR);
  const b = await tunnelNode(t, NODE_B, NODE_A, EXTERNAL_MODE.DSR);
  if (!a || !b) return;
  t.same(new DsrOptoutWriter(a.obj.map(DSR_OPTOUT_MAPS.IPv6), 'IPv6').apply(['2001:db8:99::/48', '203.0.113.0/24']), { added: ['2001:db8:99::/48'], removed: [], errors: [] }, 'the IPv6 CIDR into sl_dsr_optout6, not the IPv4 one');
  addService6(a, { vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL, clusterIp: false });

  const syn = withOptions(synSpec(CLIENT, 40001, NODE_A, 30080, 57), mssOption(1440));
  const out = a.run(PROG.HOST_INGRESS, syn);
  sentOn(t, a, out, 0n);
  const innerA = withOptions(synSpec(CLIENT, 40001, REMOTE.addr, REMOTE.port, 56), mssOption(1440));
  t.same(out.data.subarray(L2), wrapped6(NODE_A, NODE_B, tunnelSport6(CLIENT, NODE_A, 40001, 30080), innerA, gueDsr6(NODE_A, 30080)).subarray(L2), 'GUE header with [A]:30080; the client\'s MSS untouched');
  t.match(ct6(a, CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP), { flags: CT_F.EXTERNAL | CT_F.TUNNEL | CT_F.DSR, nat_saddr: NODE_B });

  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.same([inB.retval, inB.data.subarray(L2)], [TC_ACT.UNSPEC, innerA.subarray(L2)], 'unwrapped: the inner packet to the kernel');
  t.match(ct6(b, REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.DECAP | CT_F.DSR, nat_saddr: NODE_A, nat_sport: 30080 });

  const synAck = synSpec(REMOTE.addr, REMOTE.port, CLIENT, 40001, 63, TCP6_FLAGS.SYN | TCP6_FLAGS.ACK);
  const reply = b.run(PROG.HOST_EGRESS, withOptions(synAck, mssOption(1440)));
  t.equal(reply.retval, TC_ACT.UNSPEC, 'node B lets it go to the client itself');
  const wantReply = withOptions({ ...synAck, src: NODE_A, tcp: { ...synAck.tcp!, sport: 30080 } }, mssOption(MSS_CLAMPED_DSR));
  t.same(reply.data, wantReply, `from [A]:30080, unwrapped, MSS ${MSS_CLAMPED_DSR}`);
  t.equal(mssOf(reply.data, ETH_HLEN + 40), MSS_CLAMPED_DSR);

  // The pod's ICMPv6 error about the flow leaves node B for the client quoting the frontend (and
  // from it), as the replies do.
  const quoted = (dst: string, dport: number) => withOptions(synSpec(CLIENT, 40001, dst, dport, 56), mssOption(1440)).subarray(ETH_HLEN);
  const err = b.run(PROG.HOST_EGRESS, icmp6Error(REMOTE.addr, CLIENT, quoted(REMOTE.addr, REMOTE.port), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH));
  t.equal(err.retval, TC_ACT.UNSPEC);
  t.same(err.data, icmp6Error(NODE_A, CLIENT, quoted(NODE_A, 30080), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH), 'DSR: port unreachable from [A] quoting client -> [A]:30080, checksums exact');

  // The client's first bare ACK ends the handshake at node A (it never sees the SYN-ACK).
  a.run(PROG.HOST_INGRESS, buildFrame6(synSpec(CLIENT, 40001, NODE_A, 30080, 57, TCP6_FLAGS.ACK)));
  t.equal(ct6(a, CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED);

  // An opted-out client: Tunnel (no GUE header), the replies wrapped back.
  const opted = a.run(PROG.HOST_INGRESS, buildFrame6(synSpec(OPTED_OUT, 40002, NODE_A, 30080, 57)));
  t.match(ct6(a, OPTED_OUT, NODE_A, 40002, 30080, IPPROTO.TCP), { flags: CT_F.EXTERNAL | CT_F.TUNNEL });
  t.equal(opted.data[ETH_HLEN + TUNNEL.V6_OVERHEAD]! >> 4, 6, 'an IPv6 header right after UDP (GUE variant 1)');
  b.run(PROG.HOST_INGRESS, opted.data);
  t.match(ct6(b, REMOTE.addr, OPTED_OUT, REMOTE.port, 40002, IPPROTO.TCP), { flags: CT_F.EXTERNAL | CT_F.DECAP, nat_saddr: NODE_A });
});
