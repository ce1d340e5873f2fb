// ICMP about tunnelled flows (bpf/host.bpf.c, Tunnel and DSR modes):
//  - a pod's reply too large to wrap back (Tunnel, and DSR's opt-out path) is answered, when it
//    has DF, with ICMP fragmentation needed carrying the MTU that fits once wrapped, from the
//    client to the pod, handed to the host interface's ingress (the kernel routes it to the pod);
//    without DF dropped and counted;
//  - a network's error about a reply the ingress node sent as the frontend is wrapped for the
//    backend's node quoting what the pod sent, and that node hands it unwrapped to its kernel;
//  - a Tunnel backend's (or its node's) error about a client's packet is wrapped back to the
//    ingress node, which sends it to the client quoting client -> frontend.
// Two loaded objects, one per node; every produced packet compared byte for byte with one built
// independently (test/datapath/tunnel-frames.ts, src/packet), checksums checked: outer IPv4,
// ICMP, the quoted IPv4 header and, where the quote is whole, the quoted TCP/UDP checksum.
import t from 'tap';
import type { Test } from 'tap';
import { DsrOptoutWriter } from '../../src/agent/dsr-optout.js';
import { BE_F, EXTERNAL_MODE, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { DSR_OPTOUT_MAP } from '../../src/dataplane/table-specs.js';
import { buildFrame, checksumProblems, checksumValid, ETH_HLEN, ICMP_TYPE, ICMP_UNREACH_CODE, IP_FLAG_DF, parseFrame, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { tunnelSport, wrapped } from './tunnel-frames.js';

const CLIENT = '198.51.100.7';
const OPTED_OUT = '203.0.113.9';
const NODE_A = '192.168.50.2';
const NODE_B = '192.168.50.3';
const NODE_C = '192.168.50.4';
const ROUTER = '198.51.100.1';
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: NODE_B };
const L2 = 12; // Ethernet addresses: rewritten by a redirect
const FITS = 1500 - 28; // the largest inner packet that fits once wrapped (Tunnel)

async function node(t: Test, self: string, peers: string[], mode: number = EXTERNAL_MODE.TUNNEL): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: { sl_external_mode: mode } });
  if (!dp) return null;
  dp.setNodeConfig(self, 61000, 61009);
  for (const p of peers) dp.addTunnelNode(p);
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, noRouteBefore: bigint): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRouteBefore + 1n], 'no route here: dropped and counted');
}

const ipOf = (spec: FrameSpec): Buffer => buildFrame(spec).subarray(ETH_HLEN);
const mtuWord = (mtu: number) => Buffer.from([0, 0, mtu >> 8, mtu & 0xff]);
const icmp = (src: string, dst: string, ttl: number, code: number, quote: Buffer, rest?: Buffer, extra: Partial<FrameSpec['ip']> = {}) =>
  buildFrame({ ip: { src, dst, ttl, ...extra }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code, rest }, payload: quote });
/** The inner packet of a Tunnel-wrapped frame, as a frame. */
const innerOf = (out: RunResult) => parseFrame(Buffer.concat([out.data.subarray(0, ETH_HLEN), out.parsed.payload]));

/** Checksum problems of a quote: its IPv4 header always, its TCP/UDP checksum when quoted whole. */
function quoteProblems(quote: Buffer, whole: boolean): string[] {
  const problems: string[] = [];
  const ihl = ((quote[0] ?? 0) & 0x0f) * 4;
  if (!checksumValid(quote.subarray(0, ihl))) problems.push('quoted IPv4 header checksum is wrong');
  if (whole) problems.push(...checksumProblems(parseFrame(Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x00]), quote]))).map((p) => `quoted ${p}`));
  return problems;
}

/** A UDP flow client -> frontend:30053 through node a to the pod on node b; returns what b delivered. */
function udpFlow(t: Test, a: Datapath, b: Datapath, client: string): RunResult {
  const sent = buildFrame({ ip: { src: client, dst: NODE_A, ttl: 60 }, udp: { sport: 5353, dport: 30053 }, payload: Buffer.from('query') });
  const out = a.run(PROG.HOST_INGRESS, sent);
  t.same([out.parsed.ip?.dst, out.parsed.udp?.dport, out.parsed.payload.subarray(0, 1)[0]! >> 4], [NODE_B, 6080, 4], 'control: the request is wrapped for node B (Tunnel)');
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  t.same([inB.retval, inB.parsed.ip?.src, inB.parsed.ip?.dst], [TC_ACT.UNSPEC, client, REMOTE.addr], 'control: node B delivers it to the pod');
  return inB;
}

for (const [label, mode, client] of [['Tunnel', EXTERNAL_MODE.TUNNEL, CLIENT], ['DSR opt-out', EXTERNAL_MODE.DSR, OPTED_OUT]] as const) {
  t.test(`${label}: a pod's reply too large to wrap back is answered with fragmentation needed (DF) or dropped (no DF)`, async (t) => {
    const a = await node(t, NODE_A, [NODE_B], mode);
    const b = await node(t, NODE_B, [NODE_A], mode);
    if (!a || !b) return;
    if (mode === EXTERNAL_MODE.DSR) new DsrOptoutWriter(a.obj.map(DSR_OPTOUT_MAP)).apply(['203.0.113.0/24']);
    a.addService({ vip: NODE_A, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 53 }], flags: SVC_F.EXTERNAL });
    udpFlow(t, a, b, client);

    // The pod's replies as they reach node B's host egress (forwarded: TTL 63).
    const reply = (ipLen: number, fragOff: number, id: number): FrameSpec => ({
      ip: { src: REMOTE.addr, dst: client, ttl: 63, id, fragOff }, udp: { sport: 53, dport: 5353 }, payload: Buffer.alloc(ipLen - 28, 0x61),
    });
    const fits = b.run(PROG.HOST_EGRESS, buildFrame(reply(FITS, IP_FLAG_DF, 1)));
    t.same([fits.parsed.ip?.totalLength, fits.parsed.ip?.dst, b.drops('tunnel_mtu')], [1500, NODE_A, 0n], `a ${FITS}-byte reply fits: wrapped back to node A, 1500 bytes`);

    const noDf = b.run(PROG.HOST_EGRESS, buildFrame(reply(FITS + 1, 0, 2)));
    t.same([noDf.retval, b.drops('tunnel_mtu')], [TC_ACT.SHOT, 1n], `a ${FITS + 1}-byte one without DF: dropped and counted (Sluice does not fragment)`);

    const bigDf = buildFrame(reply(FITS + 1, IP_FLAG_DF, 3));
    const tooBig = b.run(PROG.HOST_EGRESS, bigDf);
    t.equal(tooBig.retval, TC_ACT.REDIRECT, 'with DF: answered (redirected into the host interface\'s ingress)');
    const quote = bigDf.subarray(ETH_HLEN, ETH_HLEN + 28);
    const expected = icmp(client, REMOTE.addr, 64, ICMP_UNREACH_CODE.FRAG_NEEDED, quote, mtuWord(FITS), { tos: 0xc0, fragOff: IP_FLAG_DF });
    t.same(tooBig.data.subarray(L2), expected.subarray(L2),
      `ICMP 3/4, next-hop MTU ${FITS}, client -> pod, quoting the reply's IPv4 and UDP headers as they left the pod`);
    t.same(checksumProblems(tooBig.parsed), [], 'IPv4 and ICMP checksums valid');
    t.same(quoteProblems(tooBig.parsed.payload, false), [], 'the quoted IPv4 header\'s checksum valid');
    const sent = parseFrame(bigDf);
    t.same([tooBig.parsed.eth.dst, tooBig.parsed.eth.src], [sent.eth.src, sent.eth.dst], 'addressed to this interface\'s own MAC (the frame\'s source as it left)');
    t.equal(b.drops('tunnel_mtu'), 2n, 'and counted');

    // Handed to node B's ingress, the error passes untouched to the kernel, which routes it to the pod.
    const back = b.run(PROG.HOST_INGRESS, tooBig.data);
    t.same([back.retval, back.data], [TC_ACT.UNSPEC, tooBig.data], 'node B\'s ingress leaves it alone (a DECAP flow\'s error)');
  });
}

t.test('Tunnel: a TCP segment too large to wrap back (a flow older than the clamp) is answered quoting its TCP header', async (t) => {
  const b = await node(t, NODE_B, [NODE_A]);
  if (!b) return;
  // The flow arrives tunnelled from node A (its SYN then carried a 1460 MSS: no clamp yet).
  const synIn: FrameSpec = { ip: { src: CLIENT, dst: REMOTE.addr, ttl: 56 }, tcp: { sport: 40001, dport: REMOTE.port, flags: TCP_FLAGS.SYN, seq: 1000 } };
  t.equal(b.run(PROG.HOST_INGRESS, wrapped(NODE_A, NODE_B, 50000, synIn, false)).retval, TC_ACT.UNSPEC);
  const seg = buildFrame({ ip: { src: REMOTE.addr, dst: CLIENT, ttl: 63, fragOff: IP_FLAG_DF }, tcp: { sport: REMOTE.port, dport: 40001, flags: TCP_FLAGS.ACK, seq: 9001, ack: 1001 }, payload: Buffer.alloc(1460 - 8, 0x62) });
  const out = b.run(PROG.HOST_EGRESS, seg);
  t.equal(out.retval, TC_ACT.REDIRECT);
  t.same(out.data.subarray(L2), icmp(CLIENT, REMOTE.addr, 64, ICMP_UNREACH_CODE.FRAG_NEEDED, seg.subarray(ETH_HLEN, ETH_HLEN + 28), mtuWord(FITS), { tos: 0xc0, fragOff: IP_FLAG_DF }).subarray(L2),
    'quoting the segment\'s IPv4 header and its ports and sequence number (what the pod\'s TCP checks)');
  t.same(checksumProblems(out.parsed), []);
});

t.test('control: a local backend\'s large reply (not tunnelled) is translated and passed, never answered', async (t) => {
  const b = await node(t, NODE_B, [NODE_A]);
  if (!b) return;
  const local = { addr: '10.244.2.13', port: 53, flags: BE_F.LOCAL };
  b.addService({ vip: NODE_B, port: 30053, proto: IPPROTO.UDP, svcId: 5, backendId: 50, cluster: [local], flags: SVC_F.EXTERNAL });
  t.equal(b.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_B }, udp: { sport: 5353, dport: 30053 }, payload: Buffer.from('q') })).retval, TC_ACT.UNSPEC);
  const out = b.run(PROG.HOST_EGRESS, buildFrame({ ip: { src: local.addr, dst: CLIENT, ttl: 63, fragOff: IP_FLAG_DF }, udp: { sport: 53, dport: 5353 }, payload: Buffer.alloc(1480 - 28) }));
  t.same([out.retval, out.parsed.ip?.src, out.parsed.udp?.sport, out.parsed.ip?.totalLength, b.drops('tunnel_mtu')], [TC_ACT.UNSPEC, NODE_B, 30053, 1480, 0n]);
});

/** A TCP flow client:40001 -> node A:30080 through the tunnel to the pod on node B (its SYN). */
function tcpFlow(t: Test, a: Datapath, b: Datapath): void {
  a.addService({ vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  const out = a.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE_A, ttl: 57 }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.SYN, seq: 1000 } }));
  t.same([out.parsed.ip?.dst, out.parsed.udp?.dport], [NODE_B, 6080], 'control: the SYN is wrapped for node B');
  t.equal(b.run(PROG.HOST_INGRESS, out.data).retval, TC_ACT.UNSPEC);
}

for (const [label, mode] of [['Tunnel', EXTERNAL_MODE.TUNNEL], ['DSR', EXTERNAL_MODE.DSR]] as const) {
  t.test(`${label}: a router's fragmentation needed about a reply reaches the pod on node B quoting the pod's own segment`, async (t) => {
    const a = await node(t, NODE_A, [NODE_B], mode);
    const b = await node(t, NODE_B, [NODE_A], mode);
    if (!a || !b) return;
    tcpFlow(t, a, b);
    // A large reply as it reached the client's side: from the frontend (node A:30080), sent by
    // node A (Tunnel) or by node B directly (DSR). A router on the way reports it.
    const asSent: FrameSpec = { ip: { src: NODE_A, dst: CLIENT, id: 7, ttl: 61, fragOff: IP_FLAG_DF }, tcp: { sport: 30080, dport: 40001, flags: TCP_FLAGS.ACK, seq: 9001, ack: 1001 }, payload: Buffer.alloc(300, 0x63) };
    const podSent: FrameSpec = { ...asSent, ip: { ...asSent.ip, src: REMOTE.addr }, tcp: { ...asSent.tcp!, sport: REMOTE.port } };
    for (const len of [28, 340]) {
      const err = icmp(ROUTER, NODE_A, 60, ICMP_UNREACH_CODE.FRAG_NEEDED, ipOf(asSent).subarray(0, len), mtuWord(1400));
      const noRoute = a.drops('no_route');
      const out = a.run(PROG.HOST_INGRESS, err);
      sentOn(t, a, out, noRoute);
      // Wrapped like the flow's packets (outer source port: the client's tuple), never with a
      // GUE header; the error inside: to the pod, quoting pod:8080 -> client, TTL -1.
      const inner: FrameSpec = { ip: { src: ROUTER, dst: REMOTE.addr, ttl: 59 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.FRAG_NEEDED, rest: mtuWord(1400) }, payload: ipOf(podSent).subarray(0, len) };
      t.same(out.data.subarray(L2), wrapped(NODE_A, NODE_B, tunnelSport(CLIENT, NODE_A, 40001, 30080), inner, false).subarray(L2),
        `quote of ${len} bytes: wrapped A -> B:6080 around router -> pod, quoting pod:8080 -> client:40001`);
      t.same(checksumProblems(out.parsed), [], 'outer checksums valid');
      const inside = innerOf(out);
      t.same(checksumProblems(inside), [], 'inner IPv4 and ICMP checksums valid');
      t.same(quoteProblems(inside.payload, len === 340), [], 'quoted IPv4 (and, quoted whole, TCP) checksums valid');
      t.equal(inside.icmp?.rest.readUInt16BE(2), 1400, 'next-hop MTU kept');

      // Node B unwraps it and hands it to its kernel, which routes it to the pod: untouched.
      const inB = b.run(PROG.HOST_INGRESS, out.data);
      t.equal(inB.retval, TC_ACT.UNSPEC, 'node B: to the kernel, for the pod');
      t.same(inB.data.subarray(L2), buildFrame(inner).subarray(L2), 'exactly the error the router would have sent the pod about its own segment');
    }
  });
}

t.test('Tunnel: the pod\'s port unreachable goes back through node A to the client quoting client -> frontend', async (t) => {
  const a = await node(t, NODE_A, [NODE_B, NODE_C]);
  const b = await node(t, NODE_B, [NODE_A]);
  if (!a || !b) return;
  a.addService({ vip: NODE_A, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 53 }], flags: SVC_F.EXTERNAL });
  const delivered = udpFlow(t, a, b, CLIENT);

  // Nothing listens on the pod: its kernel answers the client about the datagram it got.
  const podErr = icmp(REMOTE.addr, CLIENT, 63, ICMP_UNREACH_CODE.PORT, delivered.data.subarray(ETH_HLEN));
  const noRouteB = b.drops('no_route');
  const back = b.run(PROG.HOST_EGRESS, podErr);
  sentOn(t, b, back, noRouteB);
  t.same(back.data.subarray(L2), wrapped(NODE_B, NODE_A, tunnelSport(REMOTE.addr, CLIENT, 53, 5353), parseSpec(podErr), false).subarray(L2),
    'node B wraps it back to node A untouched (outer source port: the reply tuple\'s, as the replies)');

  const noRouteA = a.drops('no_route');
  const out = a.run(PROG.HOST_INGRESS, back.data);
  sentOn(t, a, out, noRouteA);
  // As the client sent it, but for the TTL node A decremented (60 -> 59).
  const clientSent = ipOf({ ip: { src: CLIENT, dst: NODE_A, ttl: 59 }, udp: { sport: 5353, dport: 30053 }, payload: Buffer.from('query') });
  t.same(out.data.subarray(L2), icmp(NODE_A, CLIENT, 62, ICMP_UNREACH_CODE.PORT, clientSent).subarray(L2),
    'node A:30053 -> client, quoting client:5353 -> node A:30053 (TTL decremented)');
  t.same(checksumProblems(out.parsed), [], 'IPv4 and ICMP checksums valid');
  t.same(quoteProblems(out.parsed.payload, true), [], 'quoted IPv4 and UDP checksums valid');

  // Node B's own error (host unreachable: the pod is gone) keeps node B as its source.
  const nodeErr = icmp(NODE_B, CLIENT, 64, ICMP_UNREACH_CODE.HOST, delivered.data.subarray(ETH_HLEN));
  const out2 = a.run(PROG.HOST_INGRESS, b.run(PROG.HOST_EGRESS, nodeErr).data);
  t.same(out2.data.subarray(L2), icmp(NODE_B, CLIENT, 63, ICMP_UNREACH_CODE.HOST, clientSent).subarray(L2), 'node B -> client, quoting client -> node A:30053');
  t.same(checksumProblems(out2.parsed), []);

  // Controls: the same error wrapped by another node than the flow's passes untranslated; an
  // error about no flow of ours is untouched.
  const fromC = a.run(PROG.HOST_INGRESS, wrapped(NODE_C, NODE_A, 50000, parseSpec(podErr), false));
  t.same([fromC.retval, fromC.data.subarray(L2)], [TC_ACT.UNSPEC, podErr.subarray(L2)], 'wrapped by node C: unwrapped, not translated');
  const stray = icmp(ROUTER, NODE_A, 60, ICMP_UNREACH_CODE.PORT, ipOf({ ip: { src: NODE_A, dst: CLIENT }, udp: { sport: 30053, dport: 9999 } }));
  const strayOut = a.run(PROG.HOST_INGRESS, stray);
  t.same([strayOut.retval, strayOut.data], [TC_ACT.UNSPEC, stray], 'an error about no flow: untouched');
});

/** The FrameSpec of an ICMP frame built by icmp() (for wrapping it again). */
function parseSpec(frame: Buffer): FrameSpec {
  const p = parseFrame(frame);
  return {
    ip: { src: p.ip!.src, dst: p.ip!.dst, ttl: p.ip!.ttl, id: p.ip!.id, tos: p.ip!.tos, fragOff: p.ip!.fragOff },
    icmp: { type: p.icmp!.type, code: p.icmp!.code, rest: p.icmp!.rest },
    payload: p.payload,
  };
}
