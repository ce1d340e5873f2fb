// ICMP errors about external flows (bpf/host.bpf.c): path-MTU discovery for a large reply through
// the node must work, so a router's "fragmentation needed" about a reply the node sent (quoting
// frontend -> client) reaches the backend quoting what the backend sent; a local backend's own
// errors leave quoting the frontend. Quotes compared byte for byte, checksums included.
import t from 'tap';
import { BE_F, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ETH_HLEN, ICMP_TYPE, ICMP_UNREACH_CODE, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';

const CLIENT = '198.51.100.7';
const NODE = '192.168.50.2';
const ROUTER = '192.168.50.254';
const POD = { addr: '10.244.1.11', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0 };
const L2 = 12;

const ipPacket = (spec: FrameSpec): Buffer => buildFrame(spec).subarray(ETH_HLEN);
function fragNeeded(src: string, dst: string, quoted: Buffer, ttl = 60): Buffer {
  const rest = Buffer.alloc(4);
  rest.writeUInt16BE(1400, 2);
  return buildFrame({ ip: { src, dst, ttl }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.FRAG_NEEDED, rest }, payload: quoted });
}
const syn: FrameSpec = { ip: { src: CLIENT, dst: NODE, id: 1 }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.SYN, seq: 1 } };
/** A large reply segment as it left the node towards the client (after translation). */
const bigReplyOut: FrameSpec = {
  ip: { src: NODE, dst: CLIENT, id: 7, fragOff: 0x4000 }, tcp: { sport: 30080, dport: 40001, flags: TCP_FLAGS.ACK, seq: 5000, ack: 2 }, payload: Buffer.alloc(1300, 0x62),
};

t.test('local backend: fragmentation needed about a reply reaches the pod quoting its own segment', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [POD], flags: SVC_F.EXTERNAL });
  dp.run(PROG.HOST_INGRESS, buildFrame(syn));
  const podSent: FrameSpec = { ...bigReplyOut, ip: { ...bigReplyOut.ip, src: POD.addr }, tcp: { ...bigReplyOut.tcp!, sport: POD.port } };
  for (const len of [28, 548]) {
    const out = dp.run(PROG.HOST_INGRESS, fragNeeded(ROUTER, NODE, ipPacket(bigReplyOut).subarray(0, len)));
    t.equal(out.retval, TC_ACT.UNSPEC, 'to the kernel, which routes it to the pod');
    t.same(out.data, fragNeeded(ROUTER, POD.addr, ipPacket(podSent).subarray(0, len)),
      `quote of ${len} bytes: exactly the error the router would have sent the pod about its own segment`);
    t.equal(out.parsed.icmp?.rest.readUInt16BE(2), 1400, 'next-hop MTU kept');
  }
});

t.test('local backend: the pod\'s port unreachable leaves quoting the frontend', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: NODE, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...POD, port: 5353 }], flags: SVC_F.EXTERNAL });
  const sent: FrameSpec = { ip: { src: CLIENT, dst: NODE, id: 3 }, udp: { sport: 5000, dport: 30053 }, payload: Buffer.from('q') };
  const delivered = dp.run(PROG.HOST_INGRESS, buildFrame(sent));
  const err = buildFrame({ ip: { src: POD.addr, dst: CLIENT, ttl: 64 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT }, payload: delivered.data.subarray(ETH_HLEN) });
  const out = dp.run(PROG.HOST_EGRESS, err);
  t.equal(out.retval, TC_ACT.UNSPEC);
  t.same(out.data, buildFrame({ ip: { src: NODE, dst: CLIENT, ttl: 64 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT }, payload: ipPacket(sent) }),
    'from node:30053, quoting the datagram the client sent');
});

t.test('remote backend (SNAT): fragmentation needed about a reply goes to the backend quoting backend -> node:sport', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.setNodeConfig(NODE, 61000, 61000); // one port: the SNAT tuple is known
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  const first = dp.run(PROG.HOST_INGRESS, buildFrame(syn));
  t.equal(first.parsed.tcp?.sport, 61000, 'control: SNAT port 61000');
  const backendSent: FrameSpec = { ...bigReplyOut, ip: { ...bigReplyOut.ip, src: REMOTE.addr, dst: NODE }, tcp: { ...bigReplyOut.tcp!, sport: REMOTE.port, dport: 61000 } };
  const out = dp.run(PROG.HOST_INGRESS, fragNeeded(ROUTER, NODE, ipPacket(bigReplyOut).subarray(0, 28)));
  t.ok(out.retval === TC_ACT.REDIRECT || out.retval === TC_ACT.SHOT, 'sent on directly (or no route in this namespace)');
  t.same(out.data.subarray(L2), fragNeeded(ROUTER, REMOTE.addr, ipPacket(backendSent).subarray(0, 28), 59).subarray(L2),
    'to the backend, quoting its own segment to node:61000 (TTL decremented)');
  t.same(checksumProblems(out.parsed), []);
});

t.test('remote backend (SNAT): the backend\'s port unreachable about an SNATed datagram reaches the client quoting client -> frontend', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.setNodeConfig(NODE, 61000, 61000); // one port: the SNAT tuple is known
  dp.addService({ vip: NODE, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 5353 }], flags: SVC_F.EXTERNAL });
  const sent: FrameSpec = { ip: { src: CLIENT, dst: NODE, id: 3, ttl: 60 }, udp: { sport: 5000, dport: 30053 }, payload: Buffer.from('query') };
  const delivered = dp.run(PROG.HOST_INGRESS, buildFrame(sent));
  t.match(delivered.parsed.udp, { sport: 61000, dport: 5353 }, 'control: SNATed to node:61000 -> backend:5353');
  // Nothing listens on the backend: its kernel answers node:61000 about the datagram it got.
  const err = buildFrame({ ip: { src: REMOTE.addr, dst: NODE, ttl: 63 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT }, payload: delivered.data.subarray(ETH_HLEN) });
  const out = dp.run(PROG.HOST_INGRESS, err);
  t.ok(out.retval === TC_ACT.REDIRECT || out.retval === TC_ACT.SHOT, 'sent on directly (or no route in this namespace)');
  // The quote is the datagram as the client sent it, but for the TTL the node decremented.
  const asQuoted: FrameSpec = { ...sent, ip: { ...sent.ip, ttl: 59 } };
  t.same(out.data.subarray(L2), buildFrame({ ip: { src: NODE, dst: CLIENT, ttl: 62 }, icmp: { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT }, payload: ipPacket(asQuoted) }).subarray(L2),
    'from node:30053 to the client, quoting client:5000 -> node:30053 (TTL decremented)');
  t.same(checksumProblems(out.parsed), []);
});
