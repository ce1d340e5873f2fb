// ICMPv6 errors about tunnelled IPv6 flows (bpf/lib/host6.h, lib/host6_tunnel.h: the IPv6 twin of
// external-tunnel-icmp.test.ts), Tunnel and DSR modes, two loaded objects, one per node:
//  - ingress node: a network's error about a reply it sent as the frontend (a router's Packet Too
//    Big quoting frontend -> client) quotes the pod's own packet (backend -> client), is wrapped
//    for the backend's node (outer source port: the client's tuple, never a GUE header), hop
//    limit - 1, the MTU kept; too large to wrap: dropped and counted (tunnel_mtu);
//  - backend's node: that error, unwrapped, goes to the kernel untouched (for the pod);
//  - backend's node: a Tunnel pod's (or its node's) error about a client's packet (quoting
//    client -> backend) is wrapped back to the ingress node untouched;
//  - ingress node: such an error, unwrapped, from the flow's own backend node goes to the client
//    quoting client -> frontend (from the frontend when the pod sent it); from another node, or
//    about no flow, it passes untranslated.
// Every produced packet is compared whole with one built independently (src/packet,
// tunnel-frames.ts), so the ICMPv6 checksum (pseudo-header included) and the quoted TCP/UDP
// checksum are exact. Packets sent out are redirected, or (no route in the test's namespace)
// dropped and counted: the bytes after the Ethernet addresses are exact either way.
import t from 'tap';
import type { Test } from 'tap';
import { CT_F, CT_TYPE, EXTERNAL_MODE, IPPROTO, SVC_F, TUNNEL } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Frame6Spec } from '../../src/packet/index.js';
import { TunnelNodeWriter } from '../../src/agent/tunnel-nodes.js';
import { TUNNEL_NODES_MAPS } from '../../src/dataplane/table-specs.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { addService6, ct6, ICMP6, icmp6Error, ipv6Packet, setNodeConfig6 } from './harness6.js';
import { innerOf, tunnelSport6, wrapped6 } from './tunnel-frames.js';

const CLIENT = '2001:db8:77::7';
const NODE_A = '2001:db8:50::2';
const NODE_B = '2001:db8:50::3';
const NODE_C = '2001:db8:50::4';
const ROUTER = '2001:db8:60::1';
const REMOTE = { addr: 'fd00:10:244:2::c', port: 8080, flags: 0, nodeAddr: NODE_B };
const L2 = 12; // Ethernet addresses: rewritten by a redirect
const ADDR_UNREACH = 3; // ICMPv6 destination unreachable, code 3: address unreachable

async function node(t: Test, self: string, peers: string[], mode: number = EXTERNAL_MODE.TUNNEL, tunnelMtu = 1500): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: { sl_external_mode: mode, sl_tunnel_mtu: tunnelMtu } });
  if (!dp) return null;
  setNodeConfig6(dp, self, 61000, 61009);
  new TunnelNodeWriter(dp.obj.map(TUNNEL_NODES_MAPS.IPv6), 'IPv6').apply(peers);
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, what: string): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass(`${what}: redirected out of the node`);
  else t.same([out.retval, dp.drops('no_route') > 0n], [TC_ACT.SHOT, true], `${what}: no route here, dropped and counted`);
}

/** A TCP flow client:40001 -> [A]:30080 through the tunnel to the pod on node B (its SYN). */
function tcpFlow(t: Test, a: Datapath, b: Datapath): void {
  addService6(a, { vip: NODE_A, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL, clusterIp: false });
  const out = a.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE_A, hopLimit: 57, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.SYN, seq: 1000 } }));
  const outer = parseFrame6(out.data);
  t.same([outer.src, outer.dst, outer.dport], [NODE_A, NODE_B, TUNNEL.PORT_DEFAULT], 'control: the SYN is wrapped for node B');
  t.equal(b.run(PROG.HOST_INGRESS, out.data).retval, TC_ACT.UNSPEC, 'control: node B delivers it to the pod');
}

/** A UDP flow client:5353 -> [A]:30053 through the tunnel to the pod's :53 on node B; what B delivered. */
function udpFlow(t: Test, a: Datapath, b: Datapath, payload: Buffer): RunResult {
  addService6(a, { vip: NODE_A, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 53 }], flags: SVC_F.EXTERNAL, clusterIp: false });
  const out = a.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE_A, hopLimit: 60, udp: { sport: 5353, dport: 30053 }, payload }));
  t.equal(parseFrame6(out.data).dst, NODE_B, 'control: the request is wrapped for node B');
  const inB = b.run(PROG.HOST_INGRESS, out.data);
  const p = parseFrame6(inB.data);
  t.same([inB.retval, p.src, p.dst, p.dport], [TC_ACT.UNSPEC, CLIENT, REMOTE.addr, 53], 'control: node B delivers it to the pod');
  return inB;
}

// A large reply as it reached the client's side: from the frontend [A]:30080 (sent by node A,
// Tunnel, or by node B itself, DSR), and as the pod sent it.
const replyAsSent: Frame6Spec = { src: NODE_A, dst: CLIENT, hopLimit: 61, tcp: { sport: 30080, dport: 40001, flags: TCP6_FLAGS.ACK | TCP6_FLAGS.PSH, seq: 9001, ack: 1001 }, payload: Buffer.alloc(1300, 0x63) };
const replyPodSent: Frame6Spec = { ...replyAsSent, src: REMOTE.addr, tcp: { ...replyAsSent.tcp!, sport: REMOTE.port } };

for (const [label, mode] of [['Tunnel', EXTERNAL_MODE.TUNNEL], ['DSR', EXTERNAL_MODE.DSR]] as const) {
  t.test(`IPv6 ${label}: a router's Packet Too Big about a reply reaches the pod on node B quoting the pod's own segment`, async (t) => {
    const a = await node(t, NODE_A, [NODE_B], mode);
    const b = await node(t, NODE_B, [NODE_A], mode);
    if (!a || !b) return;
    tcpFlow(t, a, b);
    t.match(ct6(a, CLIENT, NODE_A, 40001, 30080, IPPROTO.TCP), { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.TUNNEL | (mode === EXTERNAL_MODE.DSR ? CT_F.DSR : 0) });
    // The fixed header + 8 bytes (no TCP checksum quoted), and what Linux quotes (as much as fits
    // in 1280 bytes).
    for (const len of [48, 1232]) {
      const err = icmp6Error(ROUTER, NODE_A, ipv6Packet(replyAsSent).subarray(0, len), ICMP6.PKT_TOOBIG, 0, 1400, { hopLimit: 60 });
      const out = a.run(PROG.HOST_INGRESS, err);
      sentOn(t, a, out, `quote of ${len} bytes`);
      // Wrapped like the flow's packets (outer source port: the client's tuple), never with a GUE
      // header; inside, the error to the pod quoting pod:8080 -> client, hop limit - 1, MTU kept.
      const inner = icmp6Error(ROUTER, REMOTE.addr, ipv6Packet(replyPodSent).subarray(0, len), ICMP6.PKT_TOOBIG, 0, 1400, { hopLimit: 59 });
      const want = wrapped6(NODE_A, NODE_B, tunnelSport6(CLIENT, NODE_A, 40001, 30080), inner);
      t.same(out.data.subarray(L2), want.subarray(L2),
        `quote of ${len} bytes: wrapped [A] -> [B]:6080 around router -> pod, quoting pod:8080 -> client:40001, MTU 1400 kept`);
      t.equal(out.data.length, want.length, 'nothing else in the frame');
      if (out.data.length === want.length) t.ok(parseFrame6(innerOf(out.data, TUNNEL.V6_OVERHEAD)).checksumOk, 'the inner ICMPv6 checksum holds');

      // Node B unwraps it (as built here) and hands it to its kernel, which routes it to the
      // pod: untouched.
      const inB = b.run(PROG.HOST_INGRESS, want);
      t.equal(inB.retval, TC_ACT.UNSPEC, 'node B: to the kernel, for the pod');
      t.same(inB.data.subarray(L2), inner.subarray(L2), 'exactly the error the router would have sent the pod about its own segment');
    }
    // Time exceeded (no MTU) takes the same way.
    const te = a.run(PROG.HOST_INGRESS, icmp6Error(ROUTER, NODE_A, ipv6Packet(replyAsSent).subarray(0, 48), ICMP6.TIME_EXCEEDED, 0, 0, { hopLimit: 60 }));
    t.same(te.data.subarray(L2), wrapped6(NODE_A, NODE_B, tunnelSport6(CLIENT, NODE_A, 40001, 30080),
      icmp6Error(ROUTER, REMOTE.addr, ipv6Packet(replyPodSent).subarray(0, 48), ICMP6.TIME_EXCEEDED, 0, 0, { hopLimit: 59 })).subarray(L2), 'time exceeded: wrapped for node B too');
  });
}

t.test('IPv6 Tunnel: an error too large to wrap is dropped and counted (tunnel_mtu), both ways', async (t) => {
  // --tunnel-mtu 1280: a 1280-byte error (what Linux sends quoting a large packet) plus 48 bytes
  // of tunnel header does not fit; a short one does.
  const a = await node(t, NODE_A, [NODE_B], EXTERNAL_MODE.TUNNEL, 1280);
  const b = await node(t, NODE_B, [NODE_A], EXTERNAL_MODE.TUNNEL, 1280);
  if (!a || !b) return;
  tcpFlow(t, a, b);
  const small = a.run(PROG.HOST_INGRESS, icmp6Error(ROUTER, NODE_A, ipv6Packet(replyAsSent).subarray(0, 48), ICMP6.PKT_TOOBIG, 0, 1280));
  t.same([parseFrame6(small.data).dst, a.drops('tunnel_mtu')], [NODE_B, 0n], 'ingress node: a 96-byte error is wrapped for node B');
  const big = a.run(PROG.HOST_INGRESS, icmp6Error(ROUTER, NODE_A, ipv6Packet(replyAsSent).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, 1280));
  t.same([big.retval, a.drops('tunnel_mtu')], [TC_ACT.SHOT, 1n], 'ingress node: a 1280-byte one is dropped and counted');

  const request: Frame6Spec = { src: CLIENT, dst: REMOTE.addr, hopLimit: 56, tcp: { sport: 40001, dport: REMOTE.port, flags: TCP6_FLAGS.ACK, seq: 1001, ack: 9001 }, payload: Buffer.alloc(1300, 0x61) };
  const bigBack = b.run(PROG.HOST_EGRESS, icmp6Error(NODE_B, CLIENT, ipv6Packet(request).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, 1280));
  t.same([bigBack.retval, b.drops('tunnel_mtu')], [TC_ACT.SHOT, 1n], 'backend\'s node: a 1280-byte error about a request is dropped and counted');
  const smallBack = b.run(PROG.HOST_EGRESS, icmp6Error(NODE_B, CLIENT, ipv6Packet(request).subarray(0, 48), ICMP6.PKT_TOOBIG, 0, 1280));
  t.same([parseFrame6(smallBack.data).dst, b.drops('tunnel_mtu')], [NODE_A, 1n], 'backend\'s node: a short one is wrapped back to node A');
});

t.test('IPv6 Tunnel: the pod\'s and its node\'s errors about a request go back through node A to the client quoting client -> frontend', async (t) => {
  const a = await node(t, NODE_A, [NODE_B, NODE_C]);
  const b = await node(t, NODE_B, [NODE_A]);
  if (!a || !b) return;
  const query = Buffer.from('query');
  const delivered = udpFlow(t, a, b, query);
  // As the client sent it, but for the hop limit node A decremented (60 -> 59).
  const clientSent: Frame6Spec = { src: CLIENT, dst: NODE_A, hopLimit: 59, udp: { sport: 5353, dport: 30053 }, payload: query };

  // Nothing listens on the pod: its kernel answers the client about the datagram it got (the
  // error as it reaches node B's host egress: forwarded, hop limit 63).
  const podErr = icmp6Error(REMOTE.addr, CLIENT, delivered.data.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 });
  const back = b.run(PROG.HOST_EGRESS, podErr);
  sentOn(t, b, back, 'node B');
  t.same(back.data.subarray(L2), wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), podErr).subarray(L2),
    'node B wraps it back to node A untouched (outer source port: the reply tuple\'s, as the replies)');

  // Node A gets it (as built here: each node's step is proven on its own).
  const out = a.run(PROG.HOST_INGRESS, wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), podErr));
  sentOn(t, a, out, 'node A');
  t.same(out.data.subarray(L2), icmp6Error(NODE_A, CLIENT, ipv6Packet(clientSent), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 62 }).subarray(L2),
    'node A: [A] -> client (the pod reported about itself), quoting client:5353 -> [A]:30053, hop limit 62');
  t.ok(parseFrame6(out.data).checksumOk, 'ICMPv6 checksum valid');

  // Node B's own error (address unreachable: the pod is gone) keeps node B as its source.
  const nodeErr = icmp6Error(NODE_B, CLIENT, delivered.data.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ADDR_UNREACH);
  const nodeBack = b.run(PROG.HOST_EGRESS, nodeErr);
  t.same(nodeBack.data.subarray(L2), wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), nodeErr).subarray(L2), 'node B\'s own error: wrapped back untouched');
  const out2 = a.run(PROG.HOST_INGRESS, wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), nodeErr));
  t.same(out2.data.subarray(L2), icmp6Error(NODE_B, CLIENT, ipv6Packet(clientSent), ICMP6.DEST_UNREACH, ADDR_UNREACH, 0, { hopLimit: 63 }).subarray(L2),
    '[B] -> client, quoting client -> [A]:30053');

  // Node B's Packet Too Big about a large datagram (the pod's link is narrower): the MTU it
  // reports is what the datagram, unwrapped there, must fit; kept.
  const large = Buffer.alloc(1300, 0x71);
  const bigDelivered: Frame6Spec = { src: CLIENT, dst: REMOTE.addr, hopLimit: 59, udp: { sport: 5353, dport: 53 }, payload: large };
  const ptb = icmp6Error(NODE_B, CLIENT, ipv6Packet(bigDelivered).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, 1280);
  const ptbBack = b.run(PROG.HOST_EGRESS, ptb);
  t.same(ptbBack.data.subarray(L2), wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), ptb).subarray(L2), 'Packet Too Big wrapped back untouched');
  const out3 = a.run(PROG.HOST_INGRESS, wrapped6(NODE_B, NODE_A, tunnelSport6(REMOTE.addr, CLIENT, 53, 5353), ptb));
  t.same(out3.data.subarray(L2), icmp6Error(NODE_B, CLIENT, ipv6Packet({ ...clientSent, payload: large }).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, 1280, { hopLimit: 63 }).subarray(L2),
    'Packet Too Big [B] -> client, MTU 1280 kept, quoting client -> [A]:30053 (its UDP checksum exact)');

  // Controls: the same error wrapped by another node than the flow's passes untranslated; an
  // error about no flow of ours, and an echo request, through the tunnel are unwrapped only.
  const fromC = a.run(PROG.HOST_INGRESS, wrapped6(NODE_C, NODE_A, 50000, podErr));
  t.same([fromC.retval, fromC.data.subarray(L2)], [TC_ACT.UNSPEC, podErr.subarray(L2)], 'wrapped by node C: unwrapped, not translated');
  const stray = icmp6Error(REMOTE.addr, CLIENT, ipv6Packet({ ...clientSent, dst: REMOTE.addr, udp: { sport: 9999, dport: 53 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH);
  const strayOut = a.run(PROG.HOST_INGRESS, wrapped6(NODE_B, NODE_A, 50000, stray));
  t.same([strayOut.retval, strayOut.data.subarray(L2)], [TC_ACT.UNSPEC, stray.subarray(L2)], 'an error about no flow: unwrapped, untouched');
  const echo = buildFrame6({ src: REMOTE.addr, dst: CLIENT, icmp6: { type: 128, code: 0 }, payload: Buffer.from('ping') });
  const echoOut = a.run(PROG.HOST_INGRESS, wrapped6(NODE_B, NODE_A, 50000, echo));
  t.same([echoOut.retval, echoOut.data.subarray(L2)], [TC_ACT.UNSPEC, echo.subarray(L2)], 'an echo request: unwrapped, untouched');
});

t.test('IPv6 DSR: the pod\'s error about a request goes to the client straight (not wrapped), quoting the frontend', async (t) => {
  const a = await node(t, NODE_A, [NODE_B], EXTERNAL_MODE.DSR);
  const b = await node(t, NODE_B, [NODE_A], EXTERNAL_MODE.DSR);
  if (!a || !b) return;
  const delivered = udpFlow(t, a, b, Buffer.from('query'));
  t.match(ct6(b, REMOTE.addr, CLIENT, 53, 5353, IPPROTO.UDP), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.DECAP | CT_F.DSR });
  const out = b.run(PROG.HOST_EGRESS, icmp6Error(REMOTE.addr, CLIENT, delivered.data.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 }));
  t.equal(out.retval, TC_ACT.UNSPEC, 'on its way, unwrapped');
  const clientSent: Frame6Spec = { src: CLIENT, dst: NODE_A, hopLimit: 59, udp: { sport: 5353, dport: 30053 }, payload: Buffer.from('query') };
  t.same(out.data, icmp6Error(NODE_A, CLIENT, ipv6Packet(clientSent), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 }),
    '[A] -> client quoting client:5353 -> [A]:30053');
});

t.test('IPv6: neighbour discovery and echo on the tunnel nodes pass untouched', async (t) => {
  const a = await node(t, NODE_A, [NODE_B]);
  const b = await node(t, NODE_B, [NODE_A]);
  if (!a || !b) return;
  tcpFlow(t, a, b);
  const ns = buildFrame6({ src: 'fe80::1', dst: 'ff02::1:ff00:2', hopLimit: 255, icmp6: { type: 135, code: 0 }, payload: Buffer.concat([Buffer.alloc(4), Buffer.from('20010db8005000000000000000000002', 'hex')]) });
  const echo = buildFrame6({ src: CLIENT, dst: NODE_A, icmp6: { type: 128, code: 0 }, payload: Buffer.from('ping') });
  for (const [name, dp] of [['node A', a], ['node B', b]] as const) {
    for (const prog of [PROG.HOST_INGRESS, PROG.HOST_EGRESS]) {
      for (const frame of [ns, echo]) {
        const out = dp.run(prog, frame);
        t.same([out.retval, out.data], [TC_ACT.UNSPEC, frame], `${name} ${prog}: untouched`);
      }
    }
  }
});
