// IPv6 through the TC programs (BPF_PROG_TEST_RUN on the real tc.bpf.o): TCP and UDP DNAT to a
// backend and the reply's reverse NAT, byte for byte (the program's incremental pseudo-header
// checksum update must equal a checksum computed from scratch), conntrack in sl_ct6; ICMPv6
// (neighbour discovery included) passes untouched; TCP behind an options header is translated,
// a fragment passes untouched, counted. Rejects, ICMPv6 errors and hairpin have files of their own (ipv6-reject,
// ipv6-icmp-errors, ipv6-hairpin).
import t from 'tap';
import { decodePerCpu } from '../../src/bpf/codec.js';
import { CT_STATE, CT_TYPE, IPPROTO, u32Key, u64Value } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, fragmentHeader, NEXTHDR, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Datapath } from './harness.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import { addService6 as addService6To, ct6, setCt6 } from './harness6.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::10';
const BACKENDS = [
  { addr: 'fd00:10:244::1f', port: 8080 },
  { addr: 'fd00:10:244::20', port: 8081 },
];

function addService6(dp: Datapath, vip: string, port: number, proto: number, svcId: number, backendId: number, backends: typeof BACKENDS): void {
  addService6To(dp, { vip, port, proto, svcId, backendId, cluster: backends });
}

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

  // Both entries last seen after the next packet reads the clock (another CPU carried the flow
  // on meanwhile): live, not "idle for ages" by an unsigned wrap (bpf/lib/clock.h).
  const tuples = [[CLIENT, VIP, 40000, 80], [be.addr, CLIENT, be.port, 40000]] as const;
  for (const [s, d, sp, dp6] of tuples) {
    const v = ct6(dp, s, d, sp, dp6, IPPROTO.TCP);
    if (v) setCt6(dp, s, d, sp, dp6, IPPROTO.TCP, { ...v, last_seen_ns: v.last_seen_ns + 2_000_000_000n });
  }
  const ahead = dp.run(PROG.TO_POD, buildFrame6({ src: be.addr, dst: CLIENT, tcp: { sport: be.port, dport: 40000, flags: TCP6_FLAGS.ACK, seq: 10, ack: 7 } }));
  t.equal(parseFrame6(ahead.data).src, VIP, 'a reply to entries refreshed "in the future" is still reverse-translated');
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

t.test('ICMPv6 and neighbour discovery are never touched; TCP behind extension headers is translated, a fragment passes counted', async (t) => {
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
  // Walked (lib/parse6.h): the SYN behind one options header is DNATed like any other
  // (test/datapath/ipv6-exthdr.test.ts covers the walk in detail).
  for (const [i, ext] of [NEXTHDR.HOP_BY_HOP, NEXTHDR.DEST_OPTS].entries()) {
    const spec = { src: CLIENT, extensions: [ext], tcp: { sport: 40001 + i, dport: 80, flags: TCP6_FLAGS.SYN } };
    const r = dp.run(PROG.FROM_POD, buildFrame6({ ...spec, dst: VIP }));
    t.equal(r.retval, TC_ACT.UNSPEC, `extension header ${ext}: passes on`);
    const be = BACKENDS.find((b) => b.addr === parseFrame6(r.data).dst);
    if (!be) { t.fail(`extension header ${ext}: not DNATed`); continue; }
    t.same(r.data, buildFrame6({ ...spec, dst: be.addr, tcp: { ...spec.tcp, dport: be.port } }), `extension header ${ext}: DNATed byte for byte`);
  }
  t.equal(untranslated(dp), 0n, 'translated packets are not counted');
  const fragment = buildFrame6({ src: CLIENT, dst: VIP, extensions: [fragmentHeader(0, true)], tcp: { sport: 40003, dport: 80, flags: TCP6_FLAGS.SYN } });
  const r = dp.run(PROG.FROM_POD, fragment);
  t.equal(r.retval, TC_ACT.UNSPEC, 'a first fragment passes');
  t.same(r.data, fragment, 'untouched');
  t.equal(untranslated(dp), 1n, 'counted in sl_ipv6_untranslated');
  t.equal(ct6(dp, CLIENT, VIP, 40003, 80, IPPROTO.TCP), null, 'no flow was created for it');
});

t.test('a direct IPv6 connection reusing a finished service flow\'s client port and backend is not rewritten', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const be = BACKENDS[0] as (typeof BACKENDS)[number];
  addService6(dp, VIP, 80, IPPROTO.TCP, 9, 90, [be]);
  const toVip = (flags: number) => dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 41000, dport: 80, flags } }));
  const direct = (flags: number) => dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: be.addr, tcp: { sport: 41000, dport: be.port, flags } }));
  const fromBackend = (flags: number) => parseFrame6(dp.run(PROG.TO_POD, buildFrame6({ src: be.addr, dst: CLIENT, tcp: { sport: be.port, dport: 41000, flags } })).data).src;
  const entries = () => [ct6(dp, CLIENT, VIP, 41000, 80, IPPROTO.TCP)?.state, ct6(dp, be.addr, CLIENT, be.port, 41000, IPPROTO.TCP)?.state];

  // A live service flow: a direct SYN on the same tuple is a genuine clash, left alone.
  toVip(TCP6_FLAGS.SYN);
  fromBackend(TCP6_FLAGS.SYN | TCP6_FLAGS.ACK);
  t.equal(parseFrame6(direct(TCP6_FLAGS.SYN).data).dst, be.addr, 'the direct SYN passes untouched');
  t.same(entries(), [CT_STATE.ESTABLISHED, CT_STATE.ESTABLISHED], 'a live flow keeps both entries');

  // The service flow closes; its entries wait out the FIN timeout.
  toVip(TCP6_FLAGS.FIN | TCP6_FLAGS.ACK);
  fromBackend(TCP6_FLAGS.FIN | TCP6_FLAGS.ACK);
  t.equal(fromBackend(TCP6_FLAGS.SYN | TCP6_FLAGS.ACK), VIP, 'control: while the closed entry stands, the backend\'s SYN-ACK is reverse-NATed');
  const syn = direct(TCP6_FLAGS.SYN);
  t.equal(syn.retval, TC_ACT.UNSPEC, 'the direct SYN passes on');
  t.equal(parseFrame6(syn.data).dst, be.addr, 'untranslated');
  t.same(entries(), [undefined, undefined], 'the finished flow\'s two entries are gone');
  t.equal(fromBackend(TCP6_FLAGS.SYN | TCP6_FLAGS.ACK), be.addr, 'the direct connection\'s SYN-ACK keeps the backend as its source');

  // A SYN to the VIP on the tuple of a finished flow whose REVERSE entry is still there: the
  // old entries go and the new flow is created afresh (sl_tc_forget_reused6).
  toVip(TCP6_FLAGS.SYN);
  fromBackend(TCP6_FLAGS.SYN | TCP6_FLAGS.ACK);
  toVip(TCP6_FLAGS.RST);
  t.equal(entries()[0], CT_STATE.CLOSED, 'the reset flow is closed');
  t.equal(parseFrame6(toVip(TCP6_FLAGS.SYN).data).dst, be.addr, 'a new SYN to the VIP is DNATed again');
  t.same(entries(), [CT_STATE.SYN_SENT, CT_STATE.SYN_SENT], 'by a fresh flow');
});
