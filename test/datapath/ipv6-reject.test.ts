// IPv6 rejects on the TC path (lib/reject6.h): a flow to an IPv6 service without endpoints, or to
// a port an IPv6 ClusterIP does not serve, is refused as in IPv4 — a TCP RST or an ICMPv6
// destination unreachable / port unreachable from the VIP, bounced back out of the pod's
// interface (TC_ACT_REDIRECT). Every reply is compared whole with a frame built from scratch
// (Ethernet addresses swapped, fresh IPv6 header, checksum over the pseudo-header). A Local
// policy without local endpoints stays a counted drop.
import t from 'tap';
import { BE_F, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, TCP6_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import { addService6, ICMP6, icmp6Error } from './harness6.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::10';
const EMPTY_VIP = 'fd00:96::11';
const CLIENT_MAC = '02:00:00:00:01:0a';
const HOST_MAC = '02:00:00:00:00:01';
const BACKEND = { addr: 'fd00:10:244::1f', port: 8080 };
/** From the client towards the host side of its veth, as a pod sends. */
const fromClient = { srcMac: CLIENT_MAC, dstMac: HOST_MAC };
/** The reply: from the host side back to the client. */
const toClient = { srcMac: HOST_MAC, dstMac: CLIENT_MAC };

t.test('TCP SYN to an IPv6 service without endpoints: RST+ACK from the VIP, byte for byte', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: EMPTY_VIP, port: 443, proto: IPPROTO.TCP, svcId: 9, backendId: 90, cluster: [] });
  // No ACK in the SYN: the RST acknowledges SYN + 2 payload bytes (the sequence wraps).
  const out = dp.run(PROG.FROM_POD, buildFrame6({
    ...fromClient, src: CLIENT, dst: EMPTY_VIP, tcp: { sport: 33333, dport: 443, flags: TCP6_FLAGS.SYN, seq: 0xfffffffe }, payload: Buffer.from('xy'),
  }));
  t.equal(out.retval, TC_ACT.REDIRECT, 'bounced with bpf_redirect');
  t.same(out.data, buildFrame6({
    ...toClient, src: EMPTY_VIP, dst: CLIENT, hopLimit: 64, tcp: { sport: 443, dport: 33333, flags: TCP6_FLAGS.RST | TCP6_FLAGS.ACK, seq: 0, ack: 1, window: 0 },
  }), 'exactly a RST+ACK from the VIP (frame trimmed, TCP checksum over the IPv6 pseudo-header)');
  t.equal(dp.drops('no_backend'), 1n);
  t.equal(dp.svcCounters(9).rejected, 1n);
  t.equal(dp.svcCounters(9).connections, 0n);
  t.equal(dp.obj.map('sl_ct6').keys().length, 0, 'no conntrack for a refused flow');
});

t.test('TCP segment with ACK: RST with seq = its ack; a RST is never answered', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: EMPTY_VIP, port: 443, proto: IPPROTO.TCP, svcId: 9, backendId: 90, cluster: [] });
  const out = dp.run(PROG.FROM_POD, buildFrame6({ ...fromClient, src: CLIENT, dst: EMPTY_VIP, tcp: { sport: 33334, dport: 443, flags: TCP6_FLAGS.ACK, seq: 10, ack: 777 } }));
  t.equal(out.retval, TC_ACT.REDIRECT);
  t.same(out.data, buildFrame6({ ...toClient, src: EMPTY_VIP, dst: CLIENT, tcp: { sport: 443, dport: 33334, flags: TCP6_FLAGS.RST, seq: 777, ack: 0, window: 0 } }));
  const rst = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: EMPTY_VIP, tcp: { sport: 33335, dport: 443, flags: TCP6_FLAGS.RST } }));
  t.equal(rst.retval, TC_ACT.SHOT, 'a RST to an empty service is dropped, not answered');
  t.equal(dp.drops('no_backend'), 2n);
});

t.test('UDP to an IPv6 service without endpoints: ICMPv6 port unreachable quoting the datagram', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: EMPTY_VIP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [] });
  // A short datagram is quoted whole (odd length: the checksum pads it); a long one is cut at
  // the IPv6 header + 64 bytes.
  for (const [what, payload, quoted] of [
    ['short (odd) datagram', Buffer.from('q?!'), 40 + 8 + 3],
    ['long datagram', Buffer.alloc(300, 0x71), 40 + 64],
  ] as const) {
    const input = buildFrame6({ ...fromClient, src: CLIENT, dst: EMPTY_VIP, udp: { sport: 5000, dport: 53 }, payload });
    const out = dp.run(PROG.FROM_POD, input);
    t.equal(out.retval, TC_ACT.REDIRECT, what);
    t.same(out.data, icmp6Error(EMPTY_VIP, CLIENT, input.subarray(ETH_HLEN, ETH_HLEN + quoted), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toClient),
      `${what}: exactly an ICMPv6 port unreachable from the VIP quoting ${quoted} bytes (ICMPv6 checksum over the pseudo-header)`);
  }
  t.equal(dp.drops('no_backend'), 2n);
  t.equal(dp.svcCounters(4).rejected, 2n);
});

t.test('an unknown port of an IPv6 ClusterIP is refused too; other addresses pass', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: [BACKEND] });
  const syn = dp.run(PROG.FROM_POD, buildFrame6({ ...fromClient, src: CLIENT, dst: VIP, tcp: { sport: 40003, dport: 81, flags: TCP6_FLAGS.SYN, seq: 5 } }));
  t.equal(syn.retval, TC_ACT.REDIRECT);
  t.same(syn.data, buildFrame6({ ...toClient, src: VIP, dst: CLIENT, tcp: { sport: 81, dport: 40003, flags: TCP6_FLAGS.RST | TCP6_FLAGS.ACK, seq: 0, ack: 6, window: 0 } }), 'TCP: RST+ACK');
  const dgram = buildFrame6({ ...fromClient, src: CLIENT, dst: VIP, udp: { sport: 5001, dport: 81 }, payload: Buffer.from('x') });
  const udp = dp.run(PROG.FROM_POD, dgram);
  t.equal(udp.retval, TC_ACT.REDIRECT);
  t.same(udp.data, icmp6Error(VIP, CLIENT, dgram.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toClient), 'UDP: port unreachable');
  t.equal(dp.drops('unknown_port'), 2n);
  // A mid-stream segment to an unknown port opens nothing: it passes (as IPv4).
  const ack = buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40004, dport: 81, flags: TCP6_FLAGS.ACK } });
  t.same(dp.run(PROG.FROM_POD, ack).data, ack, 'a non-SYN segment to an unknown port passes untouched');
  // Not a frontend and not a ClusterIP: passes untouched.
  const other = buildFrame6({ src: CLIENT, dst: 'fd00:10:244::99', tcp: { sport: 40005, dport: 80, flags: TCP6_FLAGS.SYN } });
  const r = dp.run(PROG.FROM_POD, other);
  t.equal(r.retval, TC_ACT.UNSPEC);
  t.same(r.data, other);
  t.equal(dp.drops('unknown_port'), 2n);
});

t.test('a Local policy without local endpoints is a counted drop, not a reject', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [BACKEND], local: [], flags: SVC_F.INTERNAL_LOCAL });
  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40010, dport: 80, flags: TCP6_FLAGS.SYN } }));
  t.equal(out.retval, TC_ACT.SHOT);
  t.equal(dp.drops('no_local_backend'), 1n);
  t.equal(dp.drops('no_backend'), 0n);
  t.equal(dp.svcCounters(5).rejected, 1n);
  // Control: with a local endpoint the same SYN is translated.
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [BACKEND], local: [{ ...BACKEND, flags: BE_F.LOCAL }], flags: SVC_F.INTERNAL_LOCAL });
  const ok = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40011, dport: 80, flags: TCP6_FLAGS.SYN } }));
  t.equal(ok.retval, TC_ACT.UNSPEC);
});
