// DSR mode (bpf/host.bpf.c, lib/tunnel.h): an external flow whose backend is on another node is
// carried there as in Tunnel mode, inside a GUE variant 0 header that holds the frontend the
// client sent to; the backend's node unwraps it for the pod (the client's address kept) and
// sends the pod's reply straight to the client with that frontend as its source. Clients in
// sl_dsr_optout4 (--dsr-optout-cidrs, written by the agent's DsrOptoutWriter) get the Tunnel
// path. Two loaded objects, one per node; packets sent out are redirected, or (no route in the
// test's namespace) dropped and counted: the bytes after the Ethernet addresses are exact.
import t from 'tap';
import type { Test } from 'tap';
import { CT_F, CT_STATE, CT_TYPE, EXTERNAL_MODE, FRONTEND_KIND, IPPROTO, SVC_F, TUNNEL } from '../../src/bpf/sluice-structs.js';
import { DsrOptoutWriter } from '../../src/agent/dsr-optout.js';
import { DSR_OPTOUT_MAP } from '../../src/dataplane/table-specs.js';
import { buildFrame, checksumProblems, ICMP_TYPE, ICMP_UNREACH_CODE, IP_FLAG_DF, parseFrame, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { gueDsrHeader, mssOption, tunnelSport, wrapped } from './tunnel-frames.js';

const CLIENT = '198.51.100.7';
const OPTED_OUT = '203.0.113.9';
const NODE_A = '192.168.50.2';
const NODE_B = '192.168.50.3';
const STRANGER = '192.168.50.99';
const LB_IP = '203.0.113.200';
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: NODE_B };
const L2 = 12; // Ethernet addresses: rewritten by the redirect
const LB_KIND = FRONTEND_KIND.LoadBalancer << SVC_F.KIND_SHIFT;
/** What the client may send so that it fits the path once wrapped with the DSR header. */
const MSS_DSR = 1500 - TUNNEL.DSR_OVERHEAD - 20 - 20;
const MSS_TUNNEL = 1500 - TUNNEL.OVERHEAD - 20 - 20;

async function node(t: Test, self: string, peer: string, mode: number = EXTERNAL_MODE.DSR): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: { sl_external_mode: mode } });
  if (!dp) return null;
  dp.setNodeConfig(self, 61000, 61009);
  dp.addTunnelNode(peer);
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, noRouteBefore: bigint): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRouteBefore + 1n], 'no route here: dropped and counted');
}

/** The inner packet of a wrapped frame (after outer IPv4, UDP and `gue` bytes), as a frame. */
const innerOf = (out: RunResult, gueLen: number) => parseFrame(Buffer.concat([out.data.subarray(0, 14), out.parsed.payload.subarray(gueLen)]));

const clientSyn: FrameSpec = {
  ip: { src: CLIENT, dst: NODE_A, id: 0x77, ttl: 57, fragOff: IP_FLAG_DF },
  tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.SYN, seq: 1000, options: mssOption(1460) },
};

t.test('DSR: the request carried to B with its frontend; the reply leaves B as the frontend, to the client', async (t) => {
  const a = await node(t, NODE_A, NODE_B);
  const b = await node(t, NODE_B, NODE_A);
  if (!a || !b) return;
  a.addService({ vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });

  // 1. Ingress node A: DNAT to the backend, TTL -1, wrapped for node B with the GUE header
  // naming the frontend node A:30080. The client's MSS is left alone (the backend's segments
  // come back unwrapped).
  const out = a.run(PROG.HOST_INGRESS, buildFrame(clientSyn));
  sentOn(t, a, out, 0n);
  const innerA: FrameSpec = {
    ip: { src: CLIENT, dst: REMOTE.addr, id: 0x77, ttl: 56, fragOff: IP_FLAG_DF },
    tcp: { sport: 40001, dport: REMOTE.port, flags: TCP_FLAGS.SYN, seq: 1000, options: mssOption(1460) },
  };
  const want = wrapped(NODE_A, NODE_B, tunnelSport(CLIENT, NODE_A, 40001, 30080), innerA, true, gueDsrHeader(NODE_A, 30080));
  t.same(out.data.subarray(L2), want.subarray(L2), 'outer A -> B:6080, GUE [v0 hlen 2, IPv4, frontend 192.168.50.2:30080], client -> backend:8080');
  t.equal(out.data.length, buildFrame(clientSyn).length + TUNNEL.DSR_OVERHEAD, '40 bytes more');
  t.same(checksumProblems(out.parsed), [], 'outer checksums valid');
  t.same(checksumProblems(innerOf(out, 12)), [], 'inner checksums valid');
  const fwdA = tupleKey(CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP);
  t.match(a.ct(fwdA), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.TUNNEL | CT_F.DSR, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_B, state: CT_STATE.SYN_SENT });

  // 2. Backend node B: unwrapped, handed to the kernel for the pod with the client's source.
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.equal(inB.retval, TC_ACT.UNSPEC, 'to the kernel, which routes it to the pod');
  t.same(inB.data.subarray(L2), buildFrame(innerA).subarray(L2), 'exactly the inner packet: client -> backend');
  t.same(checksumProblems(inB.parsed), []);
  const fwdB = tupleKey(CLIENT, REMOTE.addr, 40001, REMOTE.port, IPPROTO.TCP);
  const revB = tupleKey(REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP);
  t.match(b.ct(fwdB), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.DECAP | CT_F.DSR, nat_addr: REMOTE.addr, nat_saddr: NODE_A, svc_id: 0 });
  t.match(b.ct(revB), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.DECAP | CT_F.DSR, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_A, nat_sport: 30080 },
    'the REVERSE entry holds the frontend the replies leave from');

  // 3. The pod's SYN-ACK leaving node B: source node A:30080, straight to the client (the kernel
  // routed it there: passed on, not redirected), MSS clamped for what the client sends through
  // the tunnel.
  const synAck: FrameSpec = {
    ip: { src: REMOTE.addr, dst: CLIENT, id: 5, ttl: 63, fragOff: IP_FLAG_DF },
    tcp: { sport: REMOTE.port, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 9000, ack: 1001, options: mssOption(1460) },
  };
  const reply = b.run(PROG.HOST_EGRESS, buildFrame(synAck));
  t.equal(reply.retval, TC_ACT.UNSPEC, 'on its way to the client, as the kernel routed it');
  const wantReply = buildFrame({ ip: { ...synAck.ip!, src: NODE_A }, tcp: { ...synAck.tcp!, sport: 30080, options: mssOption(MSS_DSR) } });
  t.same(reply.data.subarray(L2), wantReply.subarray(L2), `node A:30080 -> client:40001, MSS ${MSS_DSR}, no tunnel`);
  t.same(checksumProblems(reply.parsed), [], 'checksums valid');
  t.equal(b.ct(fwdB)?.state, CT_STATE.ESTABLISHED, 'node B follows the TCP state (it sees both directions)');

  // 4. The client's ACK: wrapped again with the frontend; node A, which never sees the
  // SYN-ACK, takes it as the end of the handshake.
  const created = b.ct(fwdB)?.created_ns;
  const ack = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_A, ttl: 57 }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.ACK, seq: 1001, ack: 9001 } }));
  t.same([ack.parsed.ip?.src, ack.parsed.ip?.dst, ack.parsed.udp?.dport], [NODE_A, NODE_B, TUNNEL.PORT_DEFAULT]);
  t.same(ack.parsed.payload.subarray(0, 12), gueDsrHeader(NODE_A, 30080), 'the frontend on every packet');
  t.equal(a.ct(fwdA)?.state, CT_STATE.ESTABLISHED, 'node A: established on the client\'s ACK');
  t.equal(b.run(PROG.HOST_INGRESS, ack.data).retval, TC_ACT.UNSPEC);
  t.equal(b.ct(fwdB)?.created_ns, created, 'node B\'s entries kept (same ingress node, same frontend)');

  // 5. Node B lost its entries (evicted, agent maps rebuilt): the next packet carries the
  // frontend, so the reply still leaves from it.
  b.deleteCt(fwdB);
  b.deleteCt(revB);
  t.equal(b.run(PROG.HOST_INGRESS, ack.data).retval, TC_ACT.UNSPEC);
  const data = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: REMOTE.addr, dst: CLIENT, ttl: 63 }, tcp: { sport: REMOTE.port, dport: 40001, flags: TCP_FLAGS.ACK, seq: 9001, ack: 1001 }, payload: Buffer.from('hello') }));
  t.same([data.parsed.ip?.src, data.parsed.tcp?.sport, data.parsed.ip?.dst, data.parsed.tcp?.dport], [NODE_A, 30080, CLIENT, 40001], 'after B lost its conntrack: still from the frontend');
  t.same(checksumProblems(data.parsed), []);
});

t.test('DSR: UDP to a LoadBalancer IP, the reply from the LoadBalancer IP; a datagram too large once wrapped is dropped', async (t) => {
  const a = await node(t, NODE_A, NODE_B);
  const b = await node(t, NODE_B, NODE_A, EXTERNAL_MODE.SNAT); // the backend's node unwraps in any mode
  if (!a || !b) return;
  a.addService({ vip: LB_IP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 5353 }], flags: SVC_F.EXTERNAL | LB_KIND });
  const payload = Buffer.from('query');
  const out = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: LB_IP, ttl: 60 }, udp: { sport: 5000, dport: 53 }, payload }));
  const inner: FrameSpec = { ip: { src: CLIENT, dst: REMOTE.addr, ttl: 59 }, udp: { sport: 5000, dport: 5353 }, payload };
  t.same(out.data.subarray(L2), wrapped(NODE_A, NODE_B, tunnelSport(CLIENT, LB_IP, 5000, 53), inner, false, gueDsrHeader(LB_IP, 53)).subarray(L2), 'the LoadBalancer IP:53 in the GUE header');
  t.same(checksumProblems(innerOf(out, 12)), []);
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.same([inB.retval, inB.parsed.ip?.src, inB.parsed.ip?.dst], [TC_ACT.UNSPEC, CLIENT, REMOTE.addr], 'node B (SNAT mode) unwraps it: the pod sees the client');
  const answer = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: REMOTE.addr, dst: CLIENT, ttl: 63 }, udp: { sport: 5353, dport: 5000 }, payload: Buffer.from('answer') }));
  t.equal(answer.retval, TC_ACT.UNSPEC);
  t.same(answer.data.subarray(L2), buildFrame({ ip: { src: LB_IP, dst: CLIENT, ttl: 63 }, udp: { sport: 53, dport: 5000 }, payload: Buffer.from('answer') }).subarray(L2),
    'LoadBalancer IP:53 -> client:5000');
  t.same(checksumProblems(answer.parsed), [], 'UDP checksum valid');

  // The pod's "port unreachable" about the datagram leaves node B like a reply: from the
  // LoadBalancer IP, quoting what the client sent (so the client's socket matches it).
  const unreachable = (src: string, quoted: Buffer) => buildFrame({ ip: { src, dst: CLIENT, ttl: 64 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT }, payload: quoted });
  const err = b.run(PROG.HOST_EGRESS, unreachable(REMOTE.addr, inB.data.subarray(14)));
  t.equal(err.retval, TC_ACT.UNSPEC);
  const asSent = buildFrame({ ip: { src: CLIENT, dst: LB_IP, ttl: 59 }, udp: { sport: 5000, dport: 53 }, payload }).subarray(14);
  t.same(err.data.subarray(L2), unreachable(LB_IP, asSent).subarray(L2), 'ICMP from the LoadBalancer IP quoting client -> LoadBalancer IP:53');
  t.same(checksumProblems(err.parsed), [], 'ICMP checksum valid');

  // 1500 - 40 = 1460 bytes of inner packet fit; one more does not.
  const sized = (n: number, sport: number, fragOff = 0) => buildFrame({ ip: { src: CLIENT, dst: LB_IP, fragOff }, udp: { sport, dport: 53 }, payload: Buffer.alloc(n - 28) });
  const fits = a.run(PROG.HOST_INGRESS, sized(1460, 5001));
  t.same([fits.parsed.ip?.totalLength, a.drops('tunnel_mtu')], [1500, 0n], 'a 1460-byte datagram fits once wrapped');
  const big = a.run(PROG.HOST_INGRESS, sized(1461, 5002));
  t.same([big.retval, a.drops('tunnel_mtu')], [TC_ACT.SHOT, 1n], 'a 1461-byte one without DF is dropped and counted (a router would fragment it; Sluice cannot)');
  // With DF (what path MTU discovery sends): answered with "fragmentation needed" and the MTU
  // that fits, from the address the client sent to, quoting what it sent; out where it came in.
  const bigDf = sized(1461, 5003, IP_FLAG_DF);
  const tooBig = a.run(PROG.HOST_INGRESS, bigDf);
  t.equal(tooBig.retval, TC_ACT.REDIRECT, 'a 1461-byte one with DF is answered');
  const mtu = Buffer.from([0, 0, 1460 >> 8, 1460 & 0xff]);
  const expected = buildFrame({ ip: { src: LB_IP, dst: CLIENT, ttl: 64, tos: 0xc0, fragOff: IP_FLAG_DF }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.FRAG_NEEDED, rest: mtu }, payload: bigDf.subarray(14, 14 + 28) });
  t.same(tooBig.data.subarray(L2), expected.subarray(L2), 'ICMP fragmentation needed, next-hop MTU 1460, LoadBalancer IP -> client, quoting the datagram\'s IP and UDP headers');
  t.same(checksumProblems(tooBig.parsed), [], 'IP and ICMP checksums valid');
  t.same([tooBig.parsed.eth.dst, tooBig.parsed.eth.src], [parseFrame(bigDf).eth.src, parseFrame(bigDf).eth.dst], 'back to where it came from');
  t.equal(a.drops('tunnel_mtu'), 2n, 'and counted');
});

t.test('DSR opt-out: a client in --dsr-optout-cidrs gets the Tunnel path, the others DSR', async (t) => {
  const a = await node(t, NODE_A, NODE_B);
  const b = await node(t, NODE_B, NODE_A);
  if (!a || !b) return;
  a.addService({ vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  const report = new DsrOptoutWriter(a.obj.map(DSR_OPTOUT_MAP)).apply(['203.0.113.0/24']);
  t.same(report, { added: ['203.0.113.0/24'], removed: [], errors: [] });

  const syn = (src: string): FrameSpec => ({ ...clientSyn, ip: { ...clientSyn.ip!, src } });
  const out = a.run(PROG.HOST_INGRESS, buildFrame(syn(OPTED_OUT)));
  const inner: FrameSpec = {
    ip: { src: OPTED_OUT, dst: REMOTE.addr, id: 0x77, ttl: 56, fragOff: IP_FLAG_DF },
    tcp: { sport: 40001, dport: REMOTE.port, flags: TCP_FLAGS.SYN, seq: 1000, options: mssOption(MSS_TUNNEL) },
  };
  t.same(out.data.subarray(L2), wrapped(NODE_A, NODE_B, tunnelSport(OPTED_OUT, NODE_A, 40001, 30080), inner, true).subarray(L2),
    'opted out: the Tunnel wrapping (no GUE header), the SYN clamped for the tunnel both ways');
  t.match(a.ct(tupleKey(OPTED_OUT, NODE_A, 40001, 30080, IPPROTO.TCP)), { flags: CT_F.EXTERNAL | CT_F.TUNNEL });
  // Node B wraps its reply back to node A, which answers the client: the Tunnel path.
  t.equal(b.run(PROG.HOST_INGRESS, out.data).retval, TC_ACT.UNSPEC);
  t.match(b.ct(tupleKey(REMOTE.addr, OPTED_OUT, REMOTE.port, 40001, IPPROTO.TCP)), { flags: CT_F.EXTERNAL | CT_F.DECAP, nat_saddr: NODE_A });
  const back = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: REMOTE.addr, dst: OPTED_OUT, ttl: 63 }, tcp: { sport: REMOTE.port, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, ack: 1001 } }));
  t.same([back.parsed.ip?.src, back.parsed.ip?.dst, back.parsed.udp?.dport], [NODE_B, NODE_A, TUNNEL.PORT_DEFAULT], 'the reply goes back through the tunnel to node A');
  const reply = a.run(PROG.HOST_INGRESS, back.data);
  sentOn(t, a, reply, out.retval === TC_ACT.SHOT ? 1n : 0n);
  t.same([reply.parsed.ip?.src, reply.parsed.tcp?.sport, reply.parsed.ip?.dst], [NODE_A, 30080, OPTED_OUT], 'and leaves node A as the frontend');
  t.same(checksumProblems(reply.parsed), []);

  // Another client: DSR.
  const dsr = a.run(PROG.HOST_INGRESS, buildFrame(syn(CLIENT)));
  t.same(dsr.parsed.payload.subarray(0, 12), gueDsrHeader(NODE_A, 30080), 'a client outside the CIDRs: DSR');
  t.match(a.ct(tupleKey(CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP)), { flags: CT_F.EXTERNAL | CT_F.TUNNEL | CT_F.DSR });

  // The writer keeps the map equal to the configuration.
  t.same(new DsrOptoutWriter(a.obj.map(DSR_OPTOUT_MAP)).apply([]), { added: [], removed: ['203.0.113.0/24'], errors: [] }, 'a restart without the CIDR removes it');
  const again = a.run(PROG.HOST_INGRESS, buildFrame({ ...syn(OPTED_OUT), tcp: { ...clientSyn.tcp!, sport: 40002 } }));
  t.same(again.parsed.payload.subarray(0, 12), gueDsrHeader(NODE_A, 30080), 'then that client gets DSR too');
});

t.test('DSR tunnel traffic: only from cluster nodes, only a well-formed header; a new frontend for a tuple replaces the old', async (t) => {
  const b = await node(t, NODE_B, NODE_A);
  if (!b) return;
  const inner: FrameSpec = { ip: { src: CLIENT, dst: REMOTE.addr }, udp: { sport: 7000, dport: REMOTE.port }, payload: Buffer.from('x') };
  const forged = wrapped(STRANGER, NODE_B, 50000, inner, false, gueDsrHeader(NODE_A, 30080));
  t.same([b.run(PROG.HOST_INGRESS, forged).retval, b.drops('tunnel_source')], [TC_ACT.SHOT, 1n], 'from a stranger: dropped and counted');
  t.equal(b.ctCount(), 0);
  const bad = gueDsrHeader(NODE_A, 30080);
  bad[0] = 0x03; // Hlen 3: not the header Sluice sends
  t.same([b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false, bad)).retval, b.drops('malformed')], [TC_ACT.SHOT, 1n], 'a malformed GUE header: dropped');
  const control = gueDsrHeader(NODE_A, 30080);
  control[0] = 0x22; // the C bit: a GUE control message
  t.same([b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false, control)).retval, b.drops('malformed')], [TC_ACT.SHOT, 2n]);

  t.equal(b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false, gueDsrHeader(NODE_A, 30080))).retval, TC_ACT.UNSPEC);
  const rev = tupleKey(REMOTE.addr, CLIENT, REMOTE.port, 7000, IPPROTO.UDP);
  t.match(b.ct(rev), { nat_saddr: NODE_A, nat_sport: 30080 });
  // The client reuses its port towards another frontend of the same backend (the LB IP).
  t.equal(b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false, gueDsrHeader(LB_IP, 80))).retval, TC_ACT.UNSPEC);
  t.match(b.ct(rev), { flags: CT_F.EXTERNAL | CT_F.DECAP | CT_F.DSR, nat_saddr: LB_IP, nat_sport: 80 }, 'the replies now leave from the frontend last used');
  const answer = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: REMOTE.addr, dst: CLIENT, ttl: 63 }, udp: { sport: REMOTE.port, dport: 7000 }, payload: Buffer.from('y') }));
  t.same([answer.parsed.ip?.src, answer.parsed.udp?.sport], [LB_IP, 80]);
  // The same tuple tunnelled without the header (an ingress node switched to Tunnel): Tunnel again.
  t.equal(b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false)).retval, TC_ACT.UNSPEC);
  t.match(b.ct(rev), { flags: CT_F.EXTERNAL | CT_F.DECAP, nat_saddr: NODE_A, nat_sport: 0 });
});
