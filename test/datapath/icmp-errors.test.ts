// ICMP errors about translated flows (TC path). Towards the pod, an error quoting what the pod
// sent after DNAT (pod -> backend) must quote what the pod's socket sent (pod -> VIP): the
// rewritten quote is compared byte for byte, checksums included, with the packet the pod built.
// From the pod, an error about a reply it got from the VIP goes to the backend, quoting the
// backend's own packet. Errors about untracked flows pass untouched.
import t from 'tap';
import type { Test } from 'tap';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ETH_HLEN, ICMP_TYPE, ICMP_UNREACH_CODE, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath } from './harness.js';

const CLIENT = '10.244.1.10';
const VIP = '10.96.0.70';
const BACKEND = { addr: '10.244.2.11', port: 8080 };
const ROUTER = '10.0.0.1';

/** The IP packet (no Ethernet header) of a frame spec: what an ICMP error quotes. */
const ipPacket = (spec: FrameSpec): Buffer => buildFrame(spec).subarray(ETH_HLEN);

function icmpError(src: string, dst: string, quoted: Buffer, type: number = ICMP_TYPE.DEST_UNREACH, code: number = ICMP_UNREACH_CODE.PORT): Buffer {
  const rest = Buffer.alloc(4);
  if (code === ICMP_UNREACH_CODE.FRAG_NEEDED) rest.writeUInt16BE(1400, 2); // next-hop MTU
  return buildFrame({ ip: { src, dst, ttl: 60 }, icmp: { type, code, rest }, payload: quoted });
}

async function withService(t: Test, proto: number): Promise<Datapath | null> {
  const dp = await loadDatapath(t);
  if (!dp) return null;
  dp.addService({ vip: VIP, port: 80, proto, svcId: 5, backendId: 50, cluster: [BACKEND] });
  return dp;
}

const UDP_SENT: FrameSpec = { ip: { src: CLIENT, dst: VIP, id: 0x1234 }, udp: { sport: 40000, dport: 80 }, payload: Buffer.from('query-bytes') };
const UDP_DNATED: FrameSpec = { ...UDP_SENT, ip: { ...UDP_SENT.ip, dst: BACKEND.addr }, udp: { sport: 40000, dport: BACKEND.port } };

t.test('to the pod: the backend\'s port unreachable about a UDP datagram quotes the VIP', async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  const sent = dp.run(PROG.FROM_POD, buildFrame(UDP_SENT));
  t.equal(sent.parsed.ip?.dst, BACKEND.addr, 'the datagram was DNATed (the flow is tracked)');
  t.same(sent.data.subarray(ETH_HLEN), ipPacket(UDP_DNATED), 'control: the quote below is exactly what left for the backend');

  const out = dp.run(PROG.TO_POD, icmpError(BACKEND.addr, CLIENT, ipPacket(UDP_DNATED)));
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.match(out.parsed.ip, { src: VIP, dst: CLIENT, protocol: IPPROTO.ICMP }, 'the backend reporting about itself: its address becomes the VIP');
  t.match(out.parsed.icmp, { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT });
  t.same(checksumProblems(out.parsed), [], 'outer IP and ICMP checksums valid');
  t.same(out.parsed.payload, ipPacket(UDP_SENT), 'the quote is the datagram the pod sent to the VIP, byte for byte (IP and UDP checksums included)');
});

t.test('to the pod: a router\'s fragmentation-needed about a TCP segment (truncated and full quotes)', async (t) => {
  const dp = await withService(t, IPPROTO.TCP);
  if (!dp) return;
  const syn: FrameSpec = { ip: { src: CLIENT, dst: VIP, id: 7 }, tcp: { sport: 40001, dport: 80, flags: TCP_FLAGS.SYN, seq: 1000 } };
  dp.run(PROG.FROM_POD, buildFrame(syn));
  const big: FrameSpec = { ip: { src: CLIENT, dst: VIP, id: 8 }, tcp: { sport: 40001, dport: 80, flags: TCP_FLAGS.ACK, seq: 1001, ack: 5 }, payload: Buffer.alloc(1200, 0x61) };
  const bigDnated: FrameSpec = { ...big, ip: { ...big.ip, dst: BACKEND.addr }, tcp: { ...big.tcp!, dport: BACKEND.port } };

  // RFC 792 quotes the IP header and 8 bytes (no TCP checksum); Linux quotes up to 576 bytes.
  for (const [what, len] of [['header + 8 bytes', 28], ['548 bytes', 548]] as const) {
    const out = dp.run(PROG.TO_POD, icmpError(ROUTER, CLIENT, ipPacket(bigDnated).subarray(0, len), ICMP_TYPE.DEST_UNREACH, ICMP_UNREACH_CODE.FRAG_NEEDED));
    t.equal(out.retval, TC_ACT.UNSPEC, what);
    t.match(out.parsed.ip, { src: ROUTER, dst: CLIENT }, `${what}: a router's own address stays`);
    t.equal(out.parsed.icmp?.rest.readUInt16BE(2), 1400, `${what}: the next-hop MTU is kept`);
    t.same(checksumProblems(out.parsed), [], `${what}: ICMP checksum valid`);
    t.same(out.parsed.payload, ipPacket(big).subarray(0, len), `${what}: the quote is the segment the pod sent to the VIP`);
  }

  const exceeded = dp.run(PROG.TO_POD, icmpError(ROUTER, CLIENT, ipPacket(bigDnated).subarray(0, 28), ICMP_TYPE.TIME_EXCEEDED, 0));
  t.same(exceeded.parsed.payload, ipPacket(big).subarray(0, 28), 'time exceeded is translated too');
  t.same(checksumProblems(exceeded.parsed), []);
});

t.test('from the pod: its port unreachable about a reply from the VIP goes to the backend', async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  dp.run(PROG.FROM_POD, buildFrame(UDP_SENT));
  const reply: FrameSpec = { ip: { src: BACKEND.addr, dst: CLIENT, id: 99 }, udp: { sport: BACKEND.port, dport: 40000 }, payload: Buffer.from('answer') };
  const seen = dp.run(PROG.TO_POD, buildFrame(reply));
  t.equal(seen.parsed.ip?.src, VIP, 'control: the pod got the reply from the VIP');

  const out = dp.run(PROG.FROM_POD, icmpError(CLIENT, VIP, seen.data.subarray(ETH_HLEN)));
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.match(out.parsed.ip, { src: CLIENT, dst: BACKEND.addr, protocol: IPPROTO.ICMP }, 'addressed to the backend, not the VIP');
  t.same(checksumProblems(out.parsed), []);
  t.same(out.parsed.payload, ipPacket(reply), 'quoting the backend\'s own datagram, byte for byte');
});

t.test('UDP without a checksum stays without one; errors about untracked flows pass untouched', async (t) => {
  const dp = await withService(t, IPPROTO.UDP);
  if (!dp) return;
  const noCsum = (p: Buffer): Buffer => {
    const b = Buffer.from(p);
    b.writeUInt16BE(0, 20 + 6);
    return b;
  };
  dp.run(PROG.FROM_POD, buildFrame(UDP_SENT));
  const out = dp.run(PROG.TO_POD, icmpError(BACKEND.addr, CLIENT, noCsum(ipPacket(UDP_DNATED))));
  t.same(checksumProblems(out.parsed), []);
  t.same(out.parsed.payload, noCsum(ipPacket(UDP_SENT)), 'rewritten, the UDP checksum still 0 ("none")');

  const stranger: FrameSpec = { ip: { src: CLIENT, dst: BACKEND.addr }, udp: { sport: 40999, dport: BACKEND.port }, payload: Buffer.from('x') };
  for (const frame of [
    icmpError(BACKEND.addr, CLIENT, ipPacket(stranger)),
    buildFrame({ ip: { src: BACKEND.addr, dst: CLIENT }, icmp: { type: ICMP_TYPE.ECHO_REPLY, code: 0 }, payload: Buffer.from('ping') }),
  ]) {
    const r = dp.run(PROG.TO_POD, frame);
    t.equal(r.retval, TC_ACT.UNSPEC);
    t.same(r.data, frame, 'untouched, byte for byte');
  }
  const fromPod = icmpError(CLIENT, '10.96.0.71', ipPacket({ ip: { src: '10.96.0.71', dst: CLIENT }, udp: { sport: 80, dport: 40000 } }));
  t.same(dp.run(PROG.FROM_POD, fromPod).data, fromPod, 'from the pod, about no tracked flow: untouched');
});
