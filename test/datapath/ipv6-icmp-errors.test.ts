// ICMPv6 errors about translated flows (TC path, lib/icmp6.h). Towards the pod, an error quoting
// what the pod sent after DNAT (pod -> backend) must quote what the pod's socket sent
// (pod -> VIP), or the kernel matches no socket: a Packet Too Big would leave path-MTU discovery
// without its answer. From the pod, an error about a reply it got from the VIP goes to the
// backend, quoting the backend's own packet. Each result is compared whole with an error built
// from scratch around the expected quote, so the quoted L4 checksum and the ICMPv6 checksum
// (over the outer pseudo-header) are exact. Errors about untracked or hairpinned flows, and
// neighbour discovery, pass untouched.
import t from 'tap';
import type { Test } from 'tap';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, TCP6_FLAGS, type Frame6Spec } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath } from './harness.js';
import { addService6, ICMP6, icmp6Error, ipv6Packet } from './harness6.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::70';
const BACKEND = { addr: 'fd00:10:244:2::b', port: 8080 };
const ROUTER = 'fd00:0:0:1::1';
const MTU = 1400;

async function withService(t: Test, proto: number): Promise<Datapath | null> {
  const dp = await loadDatapath(t);
  if (!dp) return null;
  addService6(dp, { vip: VIP, port: 80, proto, svcId: 5, backendId: 50, cluster: [BACKEND] });
  return dp;
}

const UDP_SENT: Frame6Spec = { src: CLIENT, dst: VIP, udp: { sport: 40000, dport: 80 }, payload: Buffer.from('query-bytes') };
const UDP_DNATED: Frame6Spec = { ...UDP_SENT, dst: BACKEND.addr, udp: { sport: 40000, dport: BACKEND.port } };

t.test("to the pod: the backend's port unreachable about a UDP datagram quotes the VIP", async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  const sent = dp.run(PROG.FROM_POD, buildFrame6(UDP_SENT));
  t.same(sent.data.subarray(ETH_HLEN), ipv6Packet(UDP_DNATED), 'control: the datagram was DNATed, and the quote below is exactly what left');

  const out = dp.run(PROG.TO_POD, icmp6Error(BACKEND.addr, CLIENT, ipv6Packet(UDP_DNATED), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH));
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.same(out.data, icmp6Error(VIP, CLIENT, ipv6Packet(UDP_SENT), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH),
    'from the VIP (the backend reporting about itself), quoting the datagram the pod sent, byte for byte');
});

t.test("to the pod: a router's Packet Too Big about a TCP segment (short and long quotes), time exceeded", async (t) => {
  const dp = await withService(t, IPPROTO.TCP);
  if (!dp) return;
  dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40001, dport: 80, flags: TCP6_FLAGS.SYN, seq: 1000 } }));
  const big: Frame6Spec = { src: CLIENT, dst: VIP, tcp: { sport: 40001, dport: 80, flags: TCP6_FLAGS.ACK, seq: 1001, ack: 5 }, payload: Buffer.alloc(1300, 0x61) };
  const bigDnated: Frame6Spec = { ...big, dst: BACKEND.addr, tcp: { ...big.tcp!, dport: BACKEND.port } };
  const sent = dp.run(PROG.FROM_POD, buildFrame6(big));
  t.same(sent.data.subarray(ETH_HLEN), ipv6Packet(bigDnated), 'control: the segment was DNATed');

  // The header + 8 bytes (no TCP checksum quoted); what Linux sends (as much as fits in 1280).
  for (const [what, len] of [['header + 8 bytes', 48], ['1232 bytes', 1232]] as const) {
    const out = dp.run(PROG.TO_POD, icmp6Error(ROUTER, CLIENT, ipv6Packet(bigDnated).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU));
    t.equal(out.retval, TC_ACT.UNSPEC, what);
    t.same(out.data, icmp6Error(ROUTER, CLIENT, ipv6Packet(big).subarray(0, len), ICMP6.PKT_TOOBIG, 0, MTU),
      `${what}: the router's address and the MTU stay, the quote is the segment the pod sent to the VIP`);
  }
  const exceeded = dp.run(PROG.TO_POD, icmp6Error(ROUTER, CLIENT, ipv6Packet(bigDnated).subarray(0, 200), ICMP6.TIME_EXCEEDED, 0));
  t.same(exceeded.data, icmp6Error(ROUTER, CLIENT, ipv6Packet(big).subarray(0, 200), ICMP6.TIME_EXCEEDED, 0), 'time exceeded is translated too');
});

t.test('from the pod: its port unreachable about a reply from the VIP goes to the backend', async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  dp.run(PROG.FROM_POD, buildFrame6(UDP_SENT));
  const reply: Frame6Spec = { src: BACKEND.addr, dst: CLIENT, udp: { sport: BACKEND.port, dport: 40000 }, payload: Buffer.from('answer') };
  const seen = dp.run(PROG.TO_POD, buildFrame6(reply));
  t.same(seen.data.subarray(ETH_HLEN), ipv6Packet({ ...reply, src: VIP, udp: { sport: 80, dport: 40000 } }), 'control: the pod got the reply from the VIP');

  const out = dp.run(PROG.FROM_POD, icmp6Error(CLIENT, VIP, seen.data.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH));
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.same(out.data, icmp6Error(CLIENT, BACKEND.addr, ipv6Packet(reply), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH),
    "addressed to the backend, quoting the backend's own datagram, byte for byte");
});

t.test('untouched: errors about untracked or hairpinned flows, other ICMPv6, neighbour discovery', async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  const POD = 'fd00:10:244::c';
  addService6(dp, { vip: 'fd00:96::71', port: 53, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [{ addr: POD, port: 5353 }] });
  const hp = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: 'fd00:96::71', udp: { sport: 4000, dport: 53 }, payload: Buffer.from('q') }));
  t.equal(hp.retval, TC_ACT.REDIRECT, 'control: a hairpinned flow exists');

  const stranger: Frame6Spec = { src: CLIENT, dst: BACKEND.addr, udp: { sport: 40999, dport: BACKEND.port }, payload: Buffer.from('x') };
  const cases: [string, string, Buffer][] = [
    ['an error about an untracked flow', PROG.TO_POD, icmp6Error(BACKEND.addr, CLIENT, ipv6Packet(stranger), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH)],
    ['an error about a hairpinned flow', PROG.FROM_POD, icmp6Error(POD, 'fd00:96::71', ipv6Packet({ src: 'fd00:96::71', dst: POD, udp: { sport: 4000, dport: 5353 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH)],
    ['from the pod, about no tracked flow', PROG.FROM_POD, icmp6Error(CLIENT, 'fd00:96::72', ipv6Packet({ src: 'fd00:96::72', dst: CLIENT, udp: { sport: 80, dport: 40000 } }), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH)],
    ['an echo reply', PROG.TO_POD, buildFrame6({ src: BACKEND.addr, dst: CLIENT, icmp6: { type: 129, code: 0 }, payload: Buffer.from('ping') })],
    ['a parameter problem', PROG.TO_POD, icmp6Error(BACKEND.addr, CLIENT, ipv6Packet(UDP_DNATED), 4, 0)],
    ['a neighbour advertisement', PROG.TO_POD, buildFrame6({ src: BACKEND.addr, dst: CLIENT, hopLimit: 255, icmp6: { type: 136, code: 0 }, payload: Buffer.alloc(20, 2) })],
    ['a neighbour solicitation', PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: 'ff02::1:ff00:b', hopLimit: 255, icmp6: { type: 135, code: 0 }, payload: Buffer.alloc(20, 1) })],
  ];
  dp.run(PROG.FROM_POD, buildFrame6(UDP_SENT)); // the parameter problem's flow is tracked: only the type keeps it out
  for (const [what, prog, frame] of cases) {
    const r = dp.run(prog as typeof PROG.TO_POD, frame);
    t.equal(r.retval, TC_ACT.UNSPEC, `${what}: passes`);
    t.same(r.data, frame, `${what}: untouched, byte for byte`);
  }
});
