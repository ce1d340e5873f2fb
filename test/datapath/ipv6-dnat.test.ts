// IPv6 through the TC programs (BPF_PROG_TEST_RUN on the real tc.bpf.o): TCP and UDP DNAT to a
// backend and the reply's reverse NAT, byte for byte (the program's incremental pseudo-header
// checksum update must equal a checksum computed from scratch), conntrack in sl_ct6; ICMPv6
// (neighbour discovery included) and packets with extension headers pass untouched, the latter
// counted; a service without endpoints and an unknown port of an IPv6 ClusterIP are dropped.
import t from 'tap';
import { decodePerCpu } from '../../src/bpf/codec.js';
import {
  backendKey, backendValue6, CT_STATE, CT_TYPE, ctKey6, ctValue6, frontendKey6, IPPROTO, serviceValue, u32Key, u64Value, vipKey6, vipValue,
} from '../../src/bpf/sluice-structs.js';
import { buildFrame6, NEXTHDR, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Datapath } from './harness.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::10';
const EMPTY_VIP = 'fd00:96::11';
const BACKENDS = [
  { addr: 'fd00:10:244::1f', port: 8080 },
  { addr: 'fd00:10:244::20', port: 8081 },
];

function addService6(dp: Datapath, vip: string, port: number, proto: number, svcId: number, backendId: number, backends: typeof BACKENDS): void {
  const be = dp.obj.map('sl_backends6');
  const fe = dp.obj.map('sl_frontends6');
  backends.forEach((b, ordinal) => {
    be.update(backendKey.encode({ backend_id: backendId, ordinal }), backendValue6.encode({ addr: b.addr, port: b.port, flags: 0, node_addr: '::' }));
  });
  fe.update(frontendKey6.encode({ addr: vip, port, proto, scope: 0 }), serviceValue.encode({
    svc_id: svcId, backend_id: backends.length ? backendId : 0, count: backends.length, local_count: 0, flags: 0, affinity_timeout_s: 0,
  }));
  dp.obj.map('sl_vips6').update(vipKey6.encode({ addr: vip }), vipValue.encode({ flags: 1 }));
}

const ct6 = (dp: Datapath, saddr: string, daddr: string, sport: number, dport: number, proto: number) => {
  const v = dp.obj.map('sl_ct6').lookup(ctKey6.encode({ saddr, daddr, sport, dport, proto }));
  return v ? ctValue6.decode(v) : null;
};

const untranslated = (dp: Datapath): bigint => {
  const buf = dp.obj.map('sl_ipv6_untranslated').lookup(u32Key.encode(0));
  return buf ? decodePerCpu(u64Value, buf, dp.addon.numPossibleCpus()).reduce((a, c) => a + c, 0n) : -1n;
};

t.test('TCP to an IPv6 ClusterIP: DNAT and reverse NAT byte for byte, conntrack in sl_ct6', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, VIP, 80, IPPROTO.TCP, 7, 70, BACKENDS);
  const payload = Buffer.from('odd-length payload!');
  const syn = buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40000, dport: 80, flags: TCP6_FLAGS.SYN, seq: 1 }, payload });
  const out = dp.run(PROG.FROM_POD, syn);
  t.equal(out.retval, TC_ACT.UNSPEC, 'passed on, translated');
  const got = parseFrame6(out.data);
  const be = BACKENDS.find((b) => b.addr === got.dst);
  t.ok(be, `DNATed to a backend (got ${got.dst})`);
  if (!be) return;
  t.same(out.data, buildFrame6({ src: CLIENT, dst: be.addr, tcp: { sport: 40000, dport: be.port, flags: TCP6_FLAGS.SYN, seq: 1 }, payload }),
    'exactly the frame a client would have sent to the backend, TCP checksum included');
  t.ok(got.checksumOk, 'the TCP checksum verifies against the new pseudo-header');
  t.match(ct6(dp, CLIENT, VIP, 40000, 80, IPPROTO.TCP), { type: CT_TYPE.FORWARD, nat_addr: be.addr, nat_port: be.port, state: CT_STATE.SYN_SENT, svc_id: 7 });
  t.match(ct6(dp, be.addr, CLIENT, be.port, 40000, IPPROTO.TCP), { type: CT_TYPE.REVERSE, nat_addr: VIP, nat_port: 80 });

  const synAck = buildFrame6({ src: be.addr, dst: CLIENT, tcp: { sport: be.port, dport: 40000, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 9, ack: 2 } });
  const reply = dp.run(PROG.TO_POD, synAck);
  t.equal(reply.retval, TC_ACT.UNSPEC);
  t.same(reply.data, buildFrame6({ src: VIP, dst: CLIENT, tcp: { sport: 80, dport: 40000, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 9, ack: 2 } }),
    'the reply comes from the VIP, checksum exact');
  t.equal(ct6(dp, CLIENT, VIP, 40000, 80, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED, 'both entries established');

  for (let i = 0; i < 5; i++) {
    const ack = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40000, dport: 80, seq: 2 + i, ack: 10 }, payload: Buffer.from(`data ${i}`) }));
    t.equal(parseFrame6(ack.data).dst, be.addr, `segment ${i} keeps the backend`);
  }
  t.match(dp.svcCounters(7), { connections: 1n, packets: 6n });
});

t.test('UDP to an IPv6 ClusterIP: DNAT and reverse NAT byte for byte', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, VIP, 53, IPPROTO.UDP, 8, 80, BACKENDS);
  const q = Buffer.from('query');
  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, udp: { sport: 50000, dport: 53 }, payload: q }));
  t.equal(out.retval, TC_ACT.UNSPEC);
  const be = BACKENDS.find((b) => b.addr === parseFrame6(out.data).dst);
  if (!be) return t.fail(`not DNATed: ${parseFrame6(out.data).dst}`);
  t.same(out.data, buildFrame6({ src: CLIENT, dst: be.addr, udp: { sport: 50000, dport: be.port }, payload: q }), 'UDP checksum exact');
  const a = Buffer.from('answer');
  const reply = dp.run(PROG.TO_POD, buildFrame6({ src: be.addr, dst: CLIENT, udp: { sport: be.port, dport: 50000 }, payload: a }));
  t.same(reply.data, buildFrame6({ src: VIP, dst: CLIENT, udp: { sport: 53, dport: 50000 }, payload: a }), 'the answer comes from the VIP');
  t.match(ct6(dp, CLIENT, VIP, 50000, 53, IPPROTO.UDP), { type: CT_TYPE.FORWARD, nat_addr: be.addr });
});

t.test('ICMPv6 and neighbour discovery are never touched; extension headers pass untouched, counted', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, VIP, 80, IPPROTO.TCP, 7, 70, BACKENDS);
  const solicit = buildFrame6({ src: CLIENT, dst: 'ff02::1:ff00:10', hopLimit: 255, icmp6: { type: 135, code: 0 }, payload: Buffer.alloc(20, 1) });
  const echo = buildFrame6({ src: CLIENT, dst: VIP, icmp6: { type: 128, code: 0 }, payload: Buffer.from('ping') });
  for (const [name, frame] of [['neighbour solicitation', solicit], ['echo request to the VIP', echo]] as const) {
    for (const prog of [PROG.FROM_POD, PROG.TO_POD]) {
      const r = dp.run(prog, frame);
      t.equal(r.retval, TC_ACT.UNSPEC, `${name} (${prog}) passes`);
      t.same(r.data, frame, `${name} (${prog}) unchanged`);
    }
  }
  t.equal(untranslated(dp), 0n);
  for (const ext of [NEXTHDR.HOP_BY_HOP, NEXTHDR.DEST_OPTS]) {
    const frame = buildFrame6({ src: CLIENT, dst: VIP, extensions: [ext], tcp: { sport: 40001, dport: 80, flags: TCP6_FLAGS.SYN } });
    const r = dp.run(PROG.FROM_POD, frame);
    t.equal(r.retval, TC_ACT.UNSPEC, `extension header ${ext}: passes`);
    t.same(r.data, frame, `extension header ${ext}: untouched`);
  }
  t.equal(untranslated(dp), 2n, 'both counted in sl_ipv6_untranslated');
  t.equal(ct6(dp, CLIENT, VIP, 40001, 80, IPPROTO.TCP), null, 'no flow was created for them');
});

t.test('an IPv6 service without endpoints and an unknown port of an IPv6 ClusterIP are dropped and counted', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, VIP, 80, IPPROTO.TCP, 7, 70, BACKENDS);
  addService6(dp, EMPTY_VIP, 80, IPPROTO.TCP, 9, 90, []);
  const empty = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: EMPTY_VIP, tcp: { sport: 40002, dport: 80, flags: TCP6_FLAGS.SYN } }));
  t.equal(empty.retval, TC_ACT.SHOT);
  t.equal(dp.drops('no_backend'), 1n);
  t.equal(dp.svcCounters(9).rejected, 1n);
  const unknown = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40003, dport: 81, flags: TCP6_FLAGS.SYN } }));
  t.equal(unknown.retval, TC_ACT.SHOT);
  t.equal(dp.drops('unknown_port'), 1n);
  // Not a frontend and not a ClusterIP: passes untouched.
  const other = buildFrame6({ src: CLIENT, dst: 'fd00:10:244::99', tcp: { sport: 40004, dport: 80, flags: TCP6_FLAGS.SYN } });
  const r = dp.run(PROG.FROM_POD, other);
  t.equal(r.retval, TC_ACT.UNSPEC);
  t.same(r.data, other);
});
