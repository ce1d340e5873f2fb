// ICMPv6 errors about external IPv6 flows on the host interfaces (bpf/lib/host6.h:
// sl_host_icmp_in6, sl_host_icmp_out6; the rewrite is lib/icmp6.h's). IPv6 routers never
// fragment: a Packet Too Big about a translated flow that reaches no socket black-holes every
// large segment, so the error must quote what the socket at the other end sent. Ingress: an
// error about a reply this node sent (quoting frontend -> client) goes to the backend quoting
// backend -> client (DNAT only: the kernel routes it to the pod) or backend -> node:sport (SNAT:
// sent out to the backend's node); an error about an SNATed request (node:sport -> backend) goes
// to the client quoting client -> frontend. Egress: a local backend's error about its flow
// quotes the frontend. Each result is compared whole with an error built from scratch around the
// expected quote, so the ICMPv6 checksum and the quoted TCP/UDP checksum are exact. Errors about
// unknown flows or a local backend's flow arriving from outside, and neighbour discovery, pass
// untouched.
import t from 'tap';
import type { Test } from 'tap';
import { BE_F, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, NEXTHDR, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Frame6Spec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath, ProgName, RunResult } from './harness.js';
import { addService6, ct6, ICMP6, icmp6Error, ipv6Packet, setNodeConfig6 } from './harness6.js';

const CLIENT = '2001:db8:77::7';
const NODE = '2001:db8:50::2';
const LB_IP = '2001:db8:113::10';
const ROUTER = '2001:db8:60::1';
const POD = { addr: 'fd00:10:244::b', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: 'fd00:10:244:2::c', port: 8080, flags: 0, nodeAddr: '2001:db8:50::3' };
const MTU = 1280;
const L2 = 12; // Ethernet addresses: rewritten by a redirect
const kind = (k: keyof typeof FRONTEND_KIND) => FRONTEND_KIND[k] << SVC_F_KIND_SHIFT;
const EXT = SVC_F.EXTERNAL;
const CLIENT_MAC = '02:00:00:00:07:07';
const NODE_MAC = '02:00:00:00:50:02';
const fromNet = { srcMac: CLIENT_MAC, dstMac: NODE_MAC };
const toNet = { srcMac: NODE_MAC, dstMac: CLIENT_MAC };

/** One node: a NodePort TCP and an LB UDP service on a local pod, the same on a remote backend. */
async function node(t: Test): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return null;
  setNodeConfig6(dp, NODE, 61000, 61009);
  addService6(dp, { vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [POD], flags: EXT | kind('NodePort'), clusterIp: false });
  addService6(dp, { vip: LB_IP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...POD, port: 5353 }], flags: EXT | kind('LoadBalancer'), clusterIp: false });
  addService6(dp, { vip: NODE, port: 30081, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [REMOTE], flags: EXT | kind('NodePort'), clusterIp: false });
  addService6(dp, { vip: LB_IP, port: 54, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [{ ...REMOTE, port: 5454 }], flags: EXT | kind('LoadBalancer'), clusterIp: false });
  return dp;
}

/** Opens a flow from the client (its first packet through the ingress program). */
function open(t: Test, dp: Datapath, spec: Frame6Spec): RunResult {
  const noRoute = dp.drops('no_route');
  const out = dp.run(PROG.HOST_INGRESS, buildFrame6({ ...fromNet, ...spec }));
  // A local backend's: to the kernel; a remote one's: sent out, or dropped for want of a route.
  t.ok(out.retval === TC_ACT.UNSPEC || out.retval === TC_ACT.REDIRECT || dp.drops('no_route') === noRoute + 1n, 'the flow opened');
  return out;
}

/**
 * Runs an error through the ingress program, which must send it out: redirected, or dropped for
 * want of a route in this namespace and counted (the bytes are exact either way).
 */
function sendOut(t: Test, dp: Datapath, frame: Buffer): RunResult {
  const noRoute = dp.drops('no_route');
  const out = dp.run(PROG.HOST_INGRESS, frame);
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRoute + 1n], 'no route here: dropped and counted');
  return out;
}

/** The SNAT port of the flow client:cport -> frontend:fport. */
function snatPort(t: Test, dp: Datapath, frontend: string, cport: number, fport: number, proto: number): number {
  const fwd = ct6(dp, CLIENT, frontend, cport, fport, proto);
  t.ok(fwd, 'the SNAT flow has its FORWARD entry');
  return fwd?.nat_sport ?? 0;
}

// A pod's reply segment as it left the node (from node:30080) and as the pod sent it.
const podData = (src: string, sport: number): Frame6Spec => ({
  src, dst: CLIENT, hopLimit: 63, tcp: { sport, dport: 40001, flags: TCP6_FLAGS.ACK | TCP6_FLAGS.PSH, seq: 7001, ack: 1001 }, payload: Buffer.alloc(1300, 0x62),
});
const SYN: Frame6Spec = { src: CLIENT, dst: NODE, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.SYN, seq: 1000 } };
const QUERY: Frame6Spec = { src: CLIENT, dst: LB_IP, udp: { sport: 5000, dport: 53 }, payload: Buffer.from('query-bytes') };

t.test('local backend, ingress: a router\'s Packet Too Big about the pod\'s reply reaches the pod quoting what it sent', async (t) => {
  const dp = await node(t);
  if (!dp) return;
  open(t, dp, SYN);
  const left = podData(NODE, 30080);
  const sent = podData(POD.addr, POD.port);
  // The header + 8 bytes (no TCP checksum quoted), and what Linux quotes (as much as fits in 1280).
  for (const [what, len] of [['header + 8 bytes', 48], ['1232 bytes', 1232]] as const) {
    const out = dp.run(PROG.HOST_INGRESS, icmp6Error(ROUTER, NODE, ipv6Packet(left).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU, fromNet));
    t.equal(out.retval, TC_ACT.UNSPEC, `${what}: handed to the kernel, which routes it to the pod`);
    t.same(out.data, icmp6Error(ROUTER, POD.addr, ipv6Packet(sent).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU, fromNet),
      `${what}: to the pod (the frontend was the outer destination), the router and MTU kept, quoting pod:8080 -> client`);
  }
  // Time exceeded about a UDP answer of the LB service.
  open(t, dp, QUERY);
  const answer = (src: string, sport: number): Frame6Spec => ({ src, dst: CLIENT, udp: { sport, dport: 5000 }, payload: Buffer.from('answer') });
  const out = dp.run(PROG.HOST_INGRESS, icmp6Error(ROUTER, LB_IP, ipv6Packet(answer(LB_IP, 53)), ICMP6.TIME_EXCEEDED, 0, 0, fromNet));
  t.equal(out.retval, TC_ACT.UNSPEC, 'time exceeded: to the kernel');
  t.same(out.data, icmp6Error(ROUTER, POD.addr, ipv6Packet(answer(POD.addr, 5353)), ICMP6.TIME_EXCEEDED, 0, 0, fromNet),
    'quoting pod:5353 -> client, the UDP checksum of the quote exact');
});

t.test('local backend, egress: the pod\'s errors about the client\'s packets quote the frontend', async (t) => {
  const dp = await node(t);
  if (!dp) return;
  open(t, dp, QUERY);
  const dnated: Frame6Spec = { ...QUERY, dst: POD.addr, udp: { sport: 5000, dport: 5353 } };
  const out = dp.run(PROG.HOST_EGRESS, icmp6Error(POD.addr, CLIENT, ipv6Packet(dnated), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toNet));
  t.equal(out.retval, TC_ACT.UNSPEC, 'port unreachable: on its way');
  t.same(out.data, icmp6Error(LB_IP, CLIENT, ipv6Packet(QUERY), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toNet),
    'port unreachable from the LB IP (the pod reported about itself), quoting the datagram the client sent');

  open(t, dp, SYN);
  const big: Frame6Spec = { ...SYN, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.ACK, seq: 1001, ack: 7001 }, payload: Buffer.alloc(1300, 0x61) };
  const bigDnated: Frame6Spec = { ...big, dst: POD.addr, tcp: { ...big.tcp!, dport: POD.port } };
  // This node reports for the pod (from another of its addresses): the outer source stays.
  const out2 = dp.run(PROG.HOST_EGRESS, icmp6Error(ROUTER, CLIENT, ipv6Packet(bigDnated).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, MTU, toNet));
  t.equal(out2.retval, TC_ACT.UNSPEC, 'Packet Too Big: on its way');
  t.same(out2.data, icmp6Error(ROUTER, CLIENT, ipv6Packet(big).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, MTU, toNet),
    'Packet Too Big quoting client -> node:30080, the TCP checksum of the quote exact');
});

t.test('SNAT, ingress: a Packet Too Big about the reply goes to the backend quoting backend -> node:sport', async (t) => {
  const dp = await node(t);
  if (!dp) return;
  open(t, dp, { ...SYN, tcp: { ...SYN.tcp!, dport: 30081 } });
  const sport = snatPort(t, dp, NODE, 40001, 30081, IPPROTO.TCP);
  const left = podData(NODE, 30081); // the backend's reply as this node sent it on
  const backendSent: Frame6Spec = { ...podData(REMOTE.addr, REMOTE.port), dst: NODE, tcp: { ...podData(REMOTE.addr, REMOTE.port).tcp!, dport: sport } };
  for (const len of [48, 1232]) {
    const out = sendOut(t, dp, icmp6Error(ROUTER, NODE, ipv6Packet(left).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU, fromNet));
    t.same(out.data.subarray(L2), icmp6Error(ROUTER, REMOTE.addr, ipv6Packet(backendSent).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU, { hopLimit: 63 }).subarray(L2),
      `${len} bytes quoted: router -> backend (hop limit 63), quoting backend:8080 -> node:${sport}`);
    t.ok(parseFrame6(out.data).checksumOk, 'ICMPv6 checksum valid');
  }

  // The client itself reports a UDP answer unreachable: the source becomes this node.
  open(t, dp, { ...QUERY, udp: { sport: 5000, dport: 54 } });
  const usport = snatPort(t, dp, LB_IP, 5000, 54, IPPROTO.UDP);
  const answer: Frame6Spec = { src: LB_IP, dst: CLIENT, udp: { sport: 54, dport: 5000 }, payload: Buffer.from('answer') };
  const out = sendOut(t, dp, icmp6Error(CLIENT, LB_IP, ipv6Packet(answer), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, fromNet));
  t.same(out.data.subarray(L2), icmp6Error(NODE, REMOTE.addr, ipv6Packet({ ...answer, src: REMOTE.addr, dst: NODE, udp: { sport: 5454, dport: usport } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 }).subarray(L2),
    `node -> backend quoting backend:5454 -> node:${usport}, as if the node had refused it`);
});

t.test('SNAT, ingress: an error about the SNATed request goes to the client quoting client -> frontend', async (t) => {
  const dp = await node(t);
  if (!dp) return;
  open(t, dp, { ...QUERY, udp: { sport: 5000, dport: 54 } });
  const sport = snatPort(t, dp, LB_IP, 5000, 54, IPPROTO.UDP);
  const snated: Frame6Spec = { ...QUERY, src: NODE, dst: REMOTE.addr, udp: { sport, dport: 5454 } };
  // The backend itself: port unreachable, from the LB IP once translated.
  const out = sendOut(t, dp, icmp6Error(REMOTE.addr, NODE, ipv6Packet(snated), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, fromNet));
  t.same(out.data.subarray(L2), icmp6Error(LB_IP, CLIENT, ipv6Packet({ ...QUERY, udp: { sport: 5000, dport: 54 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 }).subarray(L2),
    'LB IP -> client quoting client:5000 -> LB IP:54');

  // A router on the way to the backend: Packet Too Big about a TCP segment, the router kept.
  open(t, dp, { ...SYN, tcp: { ...SYN.tcp!, dport: 30081 } });
  const tsport = snatPort(t, dp, NODE, 40001, 30081, IPPROTO.TCP);
  const big: Frame6Spec = { src: CLIENT, dst: NODE, tcp: { sport: 40001, dport: 30081, flags: TCP6_FLAGS.ACK, seq: 1001, ack: 7001 }, payload: Buffer.alloc(1300, 0x61) };
  const bigSnated: Frame6Spec = { ...big, src: NODE, dst: REMOTE.addr, tcp: { ...big.tcp!, sport: tsport, dport: REMOTE.port } };
  const out2 = sendOut(t, dp, icmp6Error(ROUTER, NODE, ipv6Packet(bigSnated).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, MTU, fromNet));
  t.same(out2.data.subarray(L2), icmp6Error(ROUTER, CLIENT, ipv6Packet(big).subarray(0, 1232), ICMP6.PKT_TOOBIG, 0, MTU, { hopLimit: 63 }).subarray(L2),
    'router -> client quoting client:40001 -> node:30081, the TCP checksum of the quote exact');
  t.ok(parseFrame6(out2.data).checksumOk, 'ICMPv6 checksum valid');

  // The request carried a destination options header: the quote is walked as the packet was.
  const opts: Frame6Spec = { ...QUERY, udp: { sport: 5001, dport: 54 }, extensions: [NEXTHDR.DEST_OPTS] };
  open(t, dp, opts);
  const osport = snatPort(t, dp, LB_IP, 5001, 54, IPPROTO.UDP);
  const out3 = sendOut(t, dp, icmp6Error(REMOTE.addr, NODE, ipv6Packet({ ...opts, src: NODE, dst: REMOTE.addr, udp: { sport: osport, dport: 5454 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, fromNet));
  t.same(out3.data.subarray(L2), icmp6Error(LB_IP, CLIENT, ipv6Packet(opts), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, { hopLimit: 63 }).subarray(L2),
    'behind destination options: LB IP -> client quoting client:5001 -> LB IP:54');
});

t.test('untouched: errors about unknown flows, a local flow\'s error from outside, neighbour discovery', async (t) => {
  const dp = await node(t);
  if (!dp) return;
  open(t, dp, SYN);
  const unknown: Frame6Spec = { src: NODE, dst: CLIENT, tcp: { sport: 30080, dport: 40999, flags: TCP6_FLAGS.ACK, seq: 1 } };
  const toPod: Frame6Spec = { src: CLIENT, dst: POD.addr, tcp: { sport: 40001, dport: POD.port, flags: TCP6_FLAGS.ACK, seq: 1 } };
  const frames: [string, ProgName, Buffer][] = [
    ['ingress: Packet Too Big about no flow', PROG.HOST_INGRESS, icmp6Error(ROUTER, NODE, ipv6Packet(unknown), ICMP6.PKT_TOOBIG, 0, MTU, fromNet)],
    ['egress: port unreachable about no flow', PROG.HOST_EGRESS, icmp6Error(POD.addr, CLIENT, ipv6Packet({ ...toPod, tcp: { ...toPod.tcp!, sport: 40999 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toNet)],
    ['ingress: about a local backend\'s flow quoting client -> pod (the pod side\'s)', PROG.HOST_INGRESS, icmp6Error(ROUTER, CLIENT, ipv6Packet(toPod), ICMP6.TIME_EXCEEDED, 0, 0, fromNet)],
    ['egress: about the pod\'s reply (an ingress error)', PROG.HOST_EGRESS, icmp6Error(ROUTER, POD.addr, ipv6Packet(podData(POD.addr, POD.port)).subarray(0, 48), ICMP6.PKT_TOOBIG, 0, MTU, toNet)],
  ];
  for (const prog of [PROG.HOST_INGRESS, PROG.HOST_EGRESS]) {
    frames.push([`NDP neighbour solicitation (${prog})`, prog, buildFrame6({ src: 'fe80::1', dst: 'ff02::1:ff00:2', hopLimit: 255, icmp6: { type: 135, code: 0 }, payload: Buffer.concat([Buffer.alloc(4), Buffer.from('20010db8005000000000000000000002', 'hex')]) })]);
    frames.push([`echo request (${prog})`, prog, buildFrame6({ src: CLIENT, dst: NODE, icmp6: { type: 128, code: 0 }, payload: Buffer.from('ping') })]);
  }
  for (const [what, prog, frame] of frames) {
    const out = dp.run(prog, frame);
    t.equal(out.retval, TC_ACT.UNSPEC, what);
    t.same(out.data, frame, `${what}: byte for byte`);
  }
});
