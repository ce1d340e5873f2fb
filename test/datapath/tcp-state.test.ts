// Conntrack state and expiry: TCP states follow SYN / SYN-ACK / FIN / RST in both entries of a
// flow, an expired flow is treated as absent (a new SYN chooses a new backend), a flow idle in one
// direction only stays alive, a new SYN on a closed flow's tuple starts over, and the
// timeouts are the `const volatile` tunables.
import t from 'tap';
import { CT_STATE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, tupleKey, type Datapath } from './harness.js';

const VIP = '10.96.0.60';
const CLIENT = '10.244.1.10';
const A = { addr: '10.244.2.11', port: 8080 };
const B = { addr: '10.244.2.22', port: 8080 };
const NS = 1_000_000_000n;
/**
 * The established timeout the expiry tests load with (the default is 1 h): aging an entry moves
 * its last packet into the past, which the monotonic clock allows only as far back as the boot,
 * and a CI machine may be younger than an hour.
 */
const ESTABLISHED_S = 120n;
const shortEstablished = { rodataU64: { sl_ct_timeout_tcp_established_ns: ESTABLISHED_S * NS } };
const FWD = tupleKey(CLIENT, VIP, 50000, 80, IPPROTO.TCP);
const REV_A = tupleKey(A.addr, CLIENT, 8080, 50000, IPPROTO.TCP);

const fromClient = (dp: Datapath, flags: number) => dp.run(PROG.FROM_POD, buildFrame({
  ip: { src: CLIENT, dst: VIP }, tcp: { sport: 50000, dport: 80, flags },
})).parsed.ip?.dst;
const fromBackend = (dp: Datapath, flags: number) => dp.run(PROG.TO_POD, buildFrame({
  ip: { src: A.addr, dst: CLIENT }, tcp: { sport: 8080, dport: 50000, flags },
})).parsed.ip?.src;
const states = (dp: Datapath) => [dp.ct(FWD)?.state, dp.ct(REV_A)?.state];

function ageEntry(dp: Datapath, key: typeof FWD, seconds: bigint): void {
  const v = dp.ct(key);
  if (!v) throw new Error('conntrack entry missing');
  if (v.last_seen_ns <= seconds * NS) throw new Error('ageEntry: the clock is younger than the age asked for');
  dp.setCt(key, { ...v, last_seen_ns: v.last_seen_ns - seconds * NS });
}

/** A flow established on backend A; then the service's only backend becomes B (a new choice would show). */
function establishOnAThenMoveToB(dp: Datapath): void {
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [A] });
  fromClient(dp, TCP_FLAGS.SYN);
  fromBackend(dp, TCP_FLAGS.SYN | TCP_FLAGS.ACK);
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 11, cluster: [B] });
}

t.test('TCP states move in both entries; a SYN reusing a closed tuple selects again', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [A] });
  t.equal(fromClient(dp, TCP_FLAGS.SYN), A.addr);
  t.same(states(dp), [CT_STATE.SYN_SENT, CT_STATE.SYN_SENT], 'SYN: syn-sent');
  t.equal(fromBackend(dp, TCP_FLAGS.SYN | TCP_FLAGS.ACK), VIP);
  t.same(states(dp), [CT_STATE.ESTABLISHED, CT_STATE.ESTABLISHED], 'SYN-ACK: established');
  fromClient(dp, TCP_FLAGS.ACK);
  t.same(states(dp), [CT_STATE.ESTABLISHED, CT_STATE.ESTABLISHED], 'ACK: still established');
  fromClient(dp, TCP_FLAGS.FIN | TCP_FLAGS.ACK);
  t.same(states(dp), [CT_STATE.FIN, CT_STATE.FIN], 'FIN: fin');
  t.equal(fromBackend(dp, TCP_FLAGS.FIN | TCP_FLAGS.ACK), VIP, 'the closing reply is still translated');
  fromBackend(dp, TCP_FLAGS.RST);
  t.same(states(dp), [CT_STATE.CLOSED, CT_STATE.CLOSED], 'RST: closed');

  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 11, cluster: [B] });
  t.equal(fromClient(dp, TCP_FLAGS.ACK), A.addr, 'a stray ACK of the closed flow still follows it');
  t.equal(fromClient(dp, TCP_FLAGS.SYN), B.addr, 'a new SYN on the closed tuple is a new flow');
  t.equal(dp.ct(FWD)?.state, CT_STATE.SYN_SENT);
});

t.test('expiry: an idle flow is forgotten; one idle in a single direction is not', async (t) => {
  const dp = await loadDatapath(t, shortEstablished);
  if (!dp) return;
  establishOnAThenMoveToB(dp);

  // The client has been silent for twice the timeout, but the backend spoke just now: the flow lives.
  ageEntry(dp, FWD, 2n * ESTABLISHED_S);
  t.equal(fromClient(dp, TCP_FLAGS.ACK), A.addr, 'alive through its reverse entry');
  // Both directions silent past the established timeout: gone, a new backend is chosen.
  ageEntry(dp, FWD, ESTABLISHED_S + 1n);
  ageEntry(dp, REV_A, ESTABLISHED_S + 1n);
  t.equal(fromBackend(dp, TCP_FLAGS.ACK), A.addr, 'an expired reverse entry no longer translates');
  // An expired flow is absent: its next segment (no SYN) is left to whoever else translates
  // (kube-proxy beside Sluice, see docs/coexistence.md); a new SYN on the tuple picks again.
  t.equal(fromClient(dp, TCP_FLAGS.ACK), VIP, 'a segment of an expired flow passes untranslated');
  t.equal(fromClient(dp, TCP_FLAGS.SYN), B.addr, 'a new SYN on an expired flow\'s tuple selects a new backend');
});

t.test('an entry another CPU refreshed after this packet read the clock is live, not expired', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  establishOnAThenMoveToB(dp);
  // Both entries last seen "after" the packet's clock read (a vCPU descheduled between its read
  // and its compare while another CPU carried the flow on): an unsigned now - last_seen wraps
  // to "idle for ages", and the reply below left untranslated (a bulk transfer reset).
  ageEntry(dp, FWD, -2n);
  ageEntry(dp, REV_A, -2n);
  t.equal(fromBackend(dp, TCP_FLAGS.ACK), VIP, 'the reply is still reverse-translated');
  ageEntry(dp, FWD, -2n);
  ageEntry(dp, REV_A, -2n);
  t.equal(fromClient(dp, TCP_FLAGS.ACK), A.addr, 'the client\'s segment still follows its backend');
});

t.test('timeouts come from the tunables', async (t) => {
  const dp = await loadDatapath(t, { rodataU64: { sl_ct_timeout_udp_ns: 5n * NS } });
  if (!dp) return;
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 2, backendId: 20, cluster: [A] });
  const send = () => dp.run(PROG.FROM_POD, buildFrame({ ip: { src: CLIENT, dst: VIP }, udp: { sport: 999, dport: 53 } })).parsed.ip?.dst;
  const key = tupleKey(CLIENT, VIP, 999, 53, IPPROTO.UDP);
  const rev = tupleKey(A.addr, CLIENT, 8080, 999, IPPROTO.UDP);
  t.equal(send(), A.addr);
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 2, backendId: 21, cluster: [B] });
  ageEntry(dp, key, 4n);
  ageEntry(dp, rev, 4n);
  t.equal(send(), A.addr, '4 s idle < 5 s UDP timeout: kept');
  ageEntry(dp, key, 6n);
  ageEntry(dp, rev, 6n);
  t.equal(send(), B.addr, '6 s idle > 5 s UDP timeout: expired (the 60 s default would have kept it)');
  t.ok(dp.obj.rodataVariables().some((v) => v.name === 'sl_ct_timeout_tcp_established_ns' && v.size === 8));
});

t.test('a direct connection reusing a finished service flow\'s client port and backend is not rewritten', async (t) => {
  const dp = await loadDatapath(t, shortEstablished);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [A] });
  const direct = (flags: number) => dp.run(PROG.FROM_POD, buildFrame({ ip: { src: CLIENT, dst: A.addr }, tcp: { sport: 50000, dport: 8080, flags } }));
  const synAck = () => fromBackend(dp, TCP_FLAGS.SYN | TCP_FLAGS.ACK);

  // A live service flow: a direct SYN from the same client port to its backend is a genuine
  // clash; the flow's entries are left alone.
  fromClient(dp, TCP_FLAGS.SYN);
  fromBackend(dp, TCP_FLAGS.SYN | TCP_FLAGS.ACK);
  t.equal(direct(TCP_FLAGS.SYN).parsed.ip?.dst, A.addr, 'the direct SYN passes untouched');
  t.same(states(dp), [CT_STATE.ESTABLISHED, CT_STATE.ESTABLISHED], 'a live flow keeps both entries');

  // The service flow closes; its entries wait out the FIN timeout.
  fromClient(dp, TCP_FLAGS.FIN | TCP_FLAGS.ACK);
  fromBackend(dp, TCP_FLAGS.FIN | TCP_FLAGS.ACK);
  t.equal(synAck(), VIP, 'control: while the closed entry stands, a SYN-ACK from the backend is reverse-NATed');
  const before = direct(TCP_FLAGS.SYN);
  t.equal(before.retval, TC_ACT.UNSPEC, 'the direct SYN passes on (TC_ACT_UNSPEC)');
  t.equal(before.parsed.ip?.dst, A.addr, 'the direct SYN is not translated');
  t.same(states(dp), [undefined, undefined], 'the finished flow\'s two entries are gone');
  t.equal(synAck(), A.addr, 'the direct connection\'s SYN-ACK keeps the backend as its source');
  t.equal(dp.ctCount(), 0, 'and creates no entry');

  // A non-SYN direct packet never touches conntrack; an expired (not closed) flow goes as well.
  fromClient(dp, TCP_FLAGS.SYN);
  fromBackend(dp, TCP_FLAGS.SYN | TCP_FLAGS.ACK);
  direct(TCP_FLAGS.ACK);
  t.equal(dp.ctCount(), 2, 'a direct ACK leaves the live flow alone');
  ageEntry(dp, FWD, ESTABLISHED_S + 1n);
  ageEntry(dp, REV_A, ESTABLISHED_S + 1n);
  direct(TCP_FLAGS.SYN);
  t.equal(dp.ctCount(), 0, 'an expired flow whose tuple a direct SYN reuses is removed');
});
