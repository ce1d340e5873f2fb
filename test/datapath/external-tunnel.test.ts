// Tunnel mode (bpf/host.bpf.c, lib/tunnel.h, lib/mss.h): an external flow whose backend is on
// another node travels there inside an outer IPv4 + UDP header (GUE variant 1, port 6080) with
// the client's address untouched; the backend's node unwraps it (only from a cluster node) and
// hands it to the kernel for the pod; the pod's reply is wrapped back at the backend node's host
// egress and unwrapped and reverse-translated at the ingress node. Two loaded objects, one per
// node. Packets sent out are redirected, or (no route in the test's namespace) dropped and
// counted: the bytes after the Ethernet addresses are exact either way.
import t from 'tap';
import type { Test } from 'tap';
import { CT_F, CT_STATE, CT_TYPE, EXTERNAL_MODE, IPPROTO, SVC_F, TUNNEL } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, IP_FLAG_DF, parseFrame, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { mssOption, tunnelSport, wrapped } from './tunnel-frames.js';

const CLIENT = '198.51.100.7';
const NODE_A = '192.168.50.2';
const NODE_B = '192.168.50.3';
const STRANGER = '192.168.50.99';
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: NODE_B };
const L2 = 12; // Ethernet addresses: rewritten by the redirect
const MSS_CLAMPED = 1500 - TUNNEL.OVERHEAD - 20 - 20;

async function tunnelNode(t: Test, self: string, peer: string, mode: number = EXTERNAL_MODE.TUNNEL): Promise<Datapath | null> {
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

const clientSyn: FrameSpec = {
  ip: { src: CLIENT, dst: NODE_A, id: 0x77, ttl: 57, fragOff: IP_FLAG_DF },
  tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.SYN, seq: 1000, options: mssOption(1460) },
};

t.test('Tunnel: the client\'s packet to B and back, exact at every step, the client\'s address kept', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B);
  const b = await tunnelNode(t, NODE_B, NODE_A);
  if (!a || !b) return;
  a.addService({ vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });

  // 1. Ingress node A: DNAT to the backend, TTL -1, MSS clamped, wrapped for node B.
  const out = a.run(PROG.HOST_INGRESS, buildFrame(clientSyn));
  sentOn(t, a, out, 0n);
  const innerA: FrameSpec = {
    ip: { src: CLIENT, dst: REMOTE.addr, id: 0x77, ttl: 56, fragOff: IP_FLAG_DF },
    tcp: { sport: 40001, dport: REMOTE.port, flags: TCP_FLAGS.SYN, seq: 1000, options: mssOption(MSS_CLAMPED) },
  };
  const want = wrapped(NODE_A, NODE_B, tunnelSport(CLIENT, NODE_A, 40001, 30080), innerA, true);
  t.same(out.data.subarray(L2), want.subarray(L2), 'outer A -> B:6080 around client -> backend:8080, MSS 1432');
  t.same(checksumProblems(out.parsed), [], 'outer checksums valid');
  t.same(checksumProblems(parseFrame(Buffer.concat([out.data.subarray(0, 14), out.parsed.payload]))), [], 'inner checksums valid');
  const fwdA = tupleKey(CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP);
  t.match(a.ct(fwdA), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.TUNNEL, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_B, nat_sport: 0 });
  t.match(a.ct(tupleKey(REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP)), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.TUNNEL, nat_addr: NODE_A, nat_port: 30080 });

  // 2. Backend node B: unwrapped, handed to the kernel for the pod with the client's source.
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.equal(inB.retval, TC_ACT.UNSPEC, 'to the kernel, which routes it to the pod');
  t.same(inB.data.subarray(L2), buildFrame(innerA).subarray(L2), 'exactly the inner packet: client -> backend');
  t.same(checksumProblems(inB.parsed), []);
  const fwdB = tupleKey(CLIENT, REMOTE.addr, 40001, REMOTE.port, IPPROTO.TCP);
  t.match(b.ct(fwdB), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.DECAP, nat_addr: REMOTE.addr, nat_saddr: NODE_A, svc_id: 0 });
  const revB = tupleKey(REMOTE.addr, CLIENT, REMOTE.port, 40001, IPPROTO.TCP);
  t.match(b.ct(revB), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.DECAP, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE_A });

  // 3. The pod's SYN-ACK leaving node B: MSS clamped, wrapped back to node A (inner TTL as the
  // kernel forwarded it).
  const synAck: FrameSpec = {
    ip: { src: REMOTE.addr, dst: CLIENT, id: 5, ttl: 63, fragOff: IP_FLAG_DF },
    tcp: { sport: REMOTE.port, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 9000, ack: 1001, options: mssOption(1460) },
  };
  const back = b.run(PROG.HOST_EGRESS, buildFrame(synAck));
  sentOn(t, b, back, 0n);
  const innerB: FrameSpec = { ...synAck, tcp: { ...synAck.tcp!, options: mssOption(MSS_CLAMPED) } };
  const wantBack = wrapped(NODE_B, NODE_A, tunnelSport(REMOTE.addr, CLIENT, REMOTE.port, 40001), innerB, true);
  t.same(back.data.subarray(L2), wantBack.subarray(L2), 'outer B -> A:6080 around backend -> client');
  t.equal(b.ct(fwdB)?.state, CT_STATE.ESTABLISHED, 'node B follows the TCP state');

  // 4. Ingress node A: unwrapped, reverse-translated to frontend -> client, sent out.
  const reply = a.run(PROG.HOST_INGRESS, back.data);
  sentOn(t, a, reply, out.retval === TC_ACT.SHOT ? 1n : 0n);
  const wantReply = buildFrame({ ip: { src: NODE_A, dst: CLIENT, id: 5, ttl: 62, fragOff: IP_FLAG_DF }, tcp: { ...innerB.tcp!, sport: 30080 } });
  t.same(reply.data.subarray(L2), wantReply.subarray(L2), 'node A:30080 -> client:40001');
  t.same(checksumProblems(reply.parsed), []);
  t.equal(a.ct(fwdA)?.state, CT_STATE.ESTABLISHED);

  // The client's next segment takes the tunnel too (MSS untouched: not a SYN).
  const ack = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_A, ttl: 57 }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.ACK, seq: 1001, ack: 9001 } }));
  t.same([ack.parsed.ip?.src, ack.parsed.ip?.dst, ack.parsed.udp?.dport], [NODE_A, NODE_B, TUNNEL.PORT_DEFAULT]);
});

t.test('Tunnel: UDP, wrapped and unwrapped with valid checksums', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B);
  const b = await tunnelNode(t, NODE_B, NODE_A);
  if (!a || !b) return;
  a.addService({ vip: NODE_A, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 53 }], flags: SVC_F.EXTERNAL });
  const payload = Buffer.from('query');
  const out = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_A, ttl: 60 }, udp: { sport: 5353, dport: 30053 }, payload }));
  const inner: FrameSpec = { ip: { src: CLIENT, dst: REMOTE.addr, ttl: 59 }, udp: { sport: 5353, dport: 53 }, payload };
  t.same(out.data.subarray(L2), wrapped(NODE_A, NODE_B, tunnelSport(CLIENT, NODE_A, 5353, 30053), inner, false).subarray(L2), 'no DF inside, none outside');
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.equal(inB.retval, TC_ACT.UNSPEC);
  t.same(inB.parsed.ip?.src, CLIENT, 'the backend sees the client');
  t.same(checksumProblems(inB.parsed), []);
  const answer = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: REMOTE.addr, dst: CLIENT, ttl: 63 }, udp: { sport: 53, dport: 5353 }, payload }));
  const reply = a.run(PROG.HOST_INGRESS, answer.data);
  t.same([reply.parsed.ip?.src, reply.parsed.udp?.sport, reply.parsed.ip?.dst, reply.parsed.udp?.dport], [NODE_A, 30053, CLIENT, 5353]);
  t.same(checksumProblems(reply.parsed), []);

  // A datagram that would not fit once wrapped is dropped and counted, never sent to be lost.
  const big = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_A }, udp: { sport: 5354, dport: 30053 }, payload: Buffer.alloc(1472) }));
  t.same([big.retval, a.drops('tunnel_mtu')], [TC_ACT.SHOT, 1n]);
});

t.test('tunnel traffic from an address that is no cluster node is dropped and counted', async (t) => {
  const b = await tunnelNode(t, NODE_B, NODE_A);
  if (!b) return;
  const inner: FrameSpec = { ip: { src: CLIENT, dst: REMOTE.addr }, tcp: { sport: 1, dport: REMOTE.port, flags: TCP_FLAGS.SYN } };
  const forged = wrapped(STRANGER, NODE_B, 50000, inner, false);
  const out = b.run(PROG.HOST_INGRESS, forged);
  t.same([out.retval, b.drops('tunnel_source')], [TC_ACT.SHOT, 1n]);
  t.equal(b.ctCount(), 0, 'no entry created');
  // From a node it passes (the same bytes, another outer source).
  t.equal(b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false)).retval, TC_ACT.UNSPEC);

  // In SNAT mode too: a node must take what a node already switched to Tunnel sends it (a
  // rolling restart), and refuse strangers the same way.
  const snat = await tunnelNode(t, NODE_B, NODE_A, EXTERNAL_MODE.SNAT);
  if (!snat) return;
  t.same([snat.run(PROG.HOST_INGRESS, forged).retval, snat.drops('tunnel_source')], [TC_ACT.SHOT, 1n], 'SNAT mode: a stranger refused');
  const fromNode = snat.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, inner, false));
  t.same([fromNode.retval, fromNode.parsed.ip?.src, fromNode.parsed.ip?.dst], [TC_ACT.UNSPEC, CLIENT, REMOTE.addr], 'SNAT mode: a node\'s tunnel traffic unwrapped');
});

t.test('SNAT mode: a remote backend is still SNATed (the default stays kube-proxy\'s)', async (t) => {
  const a = await tunnelNode(t, NODE_A, NODE_B, EXTERNAL_MODE.SNAT);
  if (!a) return;
  a.addService({ vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  const out = a.run(PROG.HOST_INGRESS, buildFrame(clientSyn));
  t.same([out.parsed.ip?.src, out.parsed.ip?.dst, out.parsed.ip?.protocol], [NODE_A, REMOTE.addr, IPPROTO.TCP]);
  t.match(a.ct(tupleKey(CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP)), { flags: CT_F.EXTERNAL | CT_F.SNAT });
});
