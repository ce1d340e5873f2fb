// IPv6 hairpin on the TC path: a pod reaching its own IPv6 service and landing on itself. As in
// IPv4 (hairpin.test.ts), the DNATed packet's source becomes the VIP too (the pod would drop a
// packet from its own address), it goes straight back out of the pod's interface (Ethernet
// addresses swapped, TC_ACT_REDIRECT), and the pod's answer to VIP:client-port becomes
// VIP:port -> pod:client-port. Frames are compared whole with ones built from scratch.
import t from 'tap';
import { CT_F, CT_STATE, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, DEFAULT_DST_MAC, DEFAULT_SRC_MAC, TCP6_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import { addService6, ct6 } from './harness6.js';

const VIP = 'fd00:96::50';
const POD = 'fd00:10:244::a';
const OTHER = 'fd00:10:244::b';
/** What the program sends back out: the pod's frame with its Ethernet addresses swapped. */
const back = { srcMac: DEFAULT_DST_MAC, dstMac: DEFAULT_SRC_MAC };

t.test('TCP hairpin: both directions translated, byte for byte', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 6, backendId: 60, cluster: [{ addr: POD, port: 8080 }] });

  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: VIP, tcp: { sport: 45000, dport: 80, flags: TCP6_FLAGS.SYN, seq: 1 } }));
  t.equal(out.retval, TC_ACT.REDIRECT, "sent straight back out of the pod's interface");
  t.same(out.data, buildFrame6({ ...back, src: VIP, dst: POD, tcp: { sport: 45000, dport: 8080, flags: TCP6_FLAGS.SYN, seq: 1 } }),
    'from the VIP to the pod, checksum exact');
  t.match(ct6(dp, POD, VIP, 45000, 80, IPPROTO.TCP), { type: CT_TYPE.FORWARD, flags: CT_F.HAIRPIN, nat_addr: POD, nat_port: 8080, nat_saddr: VIP });
  t.match(ct6(dp, POD, VIP, 8080, 45000, IPPROTO.TCP), { type: CT_TYPE.REVERSE, flags: CT_F.HAIRPIN, nat_addr: VIP, nat_port: 80, nat_saddr: VIP });

  t.same(dp.run(PROG.TO_POD, out.data).data, out.data, 'to_pod leaves the hairpinned packet alone');

  const reply = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: VIP, tcp: { sport: 8080, dport: 45000, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 900, ack: 2 } }));
  t.equal(reply.retval, TC_ACT.REDIRECT, 'the reply goes straight back too');
  t.same(reply.data, buildFrame6({ ...back, src: VIP, dst: POD, tcp: { sport: 80, dport: 45000, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 900, ack: 2 } }),
    'reply: VIP:80 -> pod:45000');
  t.equal(ct6(dp, POD, VIP, 45000, 80, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED, 'the SYN-ACK established both entries (the twins find each other)');

  const payload = Buffer.from('GET /');
  const next = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: VIP, tcp: { sport: 45000, dport: 80, flags: TCP6_FLAGS.ACK, seq: 2, ack: 901 }, payload }));
  t.same(next.data, buildFrame6({ ...back, src: VIP, dst: POD, tcp: { sport: 45000, dport: 8080, flags: TCP6_FLAGS.ACK, seq: 2, ack: 901 }, payload }),
    'later packets of the flow are hairpinned too');
  t.equal(ct6(dp, POD, VIP, 8080, 45000, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED, 'REVERSE entry established too');
});

t.test('UDP hairpin, and no source rewrite when the backend is another pod', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [{ addr: POD, port: 5353 }] });
  const q = Buffer.from('q');
  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: VIP, udp: { sport: 4000, dport: 53 }, payload: q }));
  t.equal(out.retval, TC_ACT.REDIRECT);
  t.same(out.data, buildFrame6({ ...back, src: VIP, dst: POD, udp: { sport: 4000, dport: 5353 }, payload: q }));
  const a = Buffer.from('answer');
  const reply = dp.run(PROG.FROM_POD, buildFrame6({ src: POD, dst: VIP, udp: { sport: 5353, dport: 4000 }, payload: a }));
  t.equal(reply.retval, TC_ACT.REDIRECT);
  t.same(reply.data, buildFrame6({ ...back, src: VIP, dst: POD, udp: { sport: 53, dport: 4000 }, payload: a }));

  const other = dp.run(PROG.FROM_POD, buildFrame6({ src: OTHER, dst: VIP, udp: { sport: 4000, dport: 53 }, payload: q }));
  t.equal(other.retval, TC_ACT.UNSPEC, 'another pod: translated and passed on for routing');
  t.same(other.data, buildFrame6({ src: OTHER, dst: POD, udp: { sport: 4000, dport: 5353 }, payload: q }), 'another pod keeps its own source address');
  t.equal(ct6(dp, OTHER, VIP, 4000, 53, IPPROTO.UDP)?.flags, 0, 'not flagged hairpin');
});
