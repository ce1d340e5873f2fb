// Hairpin: a pod reaching its own service and landing on itself. The DNATed packet would carry
// the pod's own address as source (a martian to the pod), so the source becomes the VIP too,
// and the pod's answer (to VIP:client-port) is turned back into VIP:port -> pod:client-port.
import t from 'tap';
import { CT_F, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, DEFAULT_DST_MAC, DEFAULT_SRC_MAC, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const VIP = '10.96.0.50';
const POD = '10.244.1.10';
const OTHER = '10.244.1.11';

t.test('TCP hairpin: both directions are translated, checksums valid', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 6, backendId: 60, cluster: [{ addr: POD, port: 8080 }] });

  const out = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: POD, dst: VIP }, tcp: { sport: 45000, dport: 80, flags: TCP_FLAGS.SYN, seq: 1 },
  }));
  t.equal(out.retval, TC_ACT.REDIRECT, 'sent straight back out of the pod\'s interface (a NodePort frontend is a local address: the input path would drop it)');
  t.same([out.parsed.eth.src, out.parsed.eth.dst], [DEFAULT_DST_MAC, DEFAULT_SRC_MAC], 'Ethernet addresses swapped');
  t.match(out.parsed.ip, { src: VIP, dst: POD }, 'source rewritten to the VIP, destination to the pod');
  t.match(out.parsed.tcp, { sport: 45000, dport: 8080 });
  t.same(checksumProblems(out.parsed), []);
  t.match(dp.ct(tupleKey(POD, VIP, 45000, 80, IPPROTO.TCP)),
    { type: CT_TYPE.FORWARD, flags: CT_F.HAIRPIN, nat_addr: POD, nat_port: 8080, nat_saddr: VIP });
  t.match(dp.ct(tupleKey(POD, VIP, 8080, 45000, IPPROTO.TCP)),
    { type: CT_TYPE.REVERSE, flags: CT_F.HAIRPIN, nat_addr: VIP, nat_port: 80 });

  // The translated packet on its way into the pod is not translated again.
  const inbound = dp.run(PROG.TO_POD, out.data);
  t.same(inbound.data, out.data, 'to_pod leaves the hairpinned packet alone');

  // The pod answers VIP:45000 from 8080; that leaves the pod through the same veth.
  const reply = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: POD, dst: VIP }, tcp: { sport: 8080, dport: 45000, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 900, ack: 2 },
  }));
  t.equal(reply.retval, TC_ACT.REDIRECT, 'the reply goes straight back too');
  t.match(reply.parsed.ip, { src: VIP, dst: POD }, 'reply: from the VIP to the pod');
  t.match(reply.parsed.tcp, { sport: 80, dport: 45000, seq: 900, ack: 2 }, 'reply: from the service port to the client port');
  t.same(checksumProblems(reply.parsed), []);

  const next = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: POD, dst: VIP }, tcp: { sport: 45000, dport: 80, flags: TCP_FLAGS.ACK, seq: 2, ack: 901 }, payload: Buffer.from('GET /'),
  }));
  t.match(next.parsed.ip, { src: VIP, dst: POD }, 'later packets of the flow are hairpinned too');
  t.match(next.parsed.tcp, { sport: 45000, dport: 8080 });
  t.same(checksumProblems(next.parsed), []);
});

t.test('UDP hairpin, and no source rewrite when the backend is another pod', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [{ addr: POD, port: 5353 }] });
  const out = dp.run(PROG.FROM_POD, buildFrame({ ip: { src: POD, dst: VIP }, udp: { sport: 4000, dport: 53 }, payload: Buffer.from('q') }));
  t.match(out.parsed.ip, { src: VIP, dst: POD });
  t.match(out.parsed.udp, { sport: 4000, dport: 5353 });
  t.same(checksumProblems(out.parsed), []);
  const reply = dp.run(PROG.FROM_POD, buildFrame({ ip: { src: POD, dst: VIP }, udp: { sport: 5353, dport: 4000 }, payload: Buffer.from('a') }));
  t.match(reply.parsed.ip, { src: VIP, dst: POD });
  t.match(reply.parsed.udp, { sport: 53, dport: 4000 });
  t.same(checksumProblems(reply.parsed), []);

  const other = dp.run(PROG.FROM_POD, buildFrame({ ip: { src: OTHER, dst: VIP }, udp: { sport: 4000, dport: 53 } }));
  t.match(other.parsed.ip, { src: OTHER, dst: POD }, 'another pod keeps its own source address');
  t.equal(dp.ct(tupleKey(OTHER, VIP, 4000, 53, IPPROTO.UDP))?.flags, 0, 'not flagged hairpin');
});
