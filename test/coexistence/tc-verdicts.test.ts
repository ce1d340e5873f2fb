// The verdicts that let other TC programs share the hooks (docs/coexistence.md): Sluice passes
// with TC_ACT_UNSPEC (on to the next filter) whatever it translated or let through, ends the
// chain only with its own drops and rejects, and leaves alone a TCP segment that kube-proxy's
// DNAT carries (a connection to a frontend that Sluice does not track and that opens nothing).
import t from 'tap';
import { frontendKey4, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, tupleKey } from '../datapath/harness.js';

const CLIENT = '10.244.1.10';
const VIP = '10.96.0.10';
const EMPTY_VIP = '10.96.0.11';
const BACKENDS = [{ addr: '10.244.2.11', port: 8080 }, { addr: '10.244.2.12', port: 8080 }];

const segment = (dst: string, sport: number, flags: number, src = CLIENT, dport = 80) =>
  buildFrame({ ip: { src, dst }, tcp: { sport, dport, flags, seq: 1, ack: 1 } });

t.test('translated and untouched packets go on to the next filter; own verdicts end the chain', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: BACKENDS });
  dp.addService({ vip: EMPTY_VIP, port: 80, proto: IPPROTO.TCP, svcId: 2, backendId: 20, cluster: [] });

  const syn = dp.run(PROG.FROM_POD, segment(VIP, 40000, TCP_FLAGS.SYN));
  t.equal(syn.retval, TC_ACT.UNSPEC, 'a translated SYN: UNSPEC');
  const backend = syn.parsed.ip?.dst ?? '';
  t.ok(BACKENDS.some((b) => b.addr === backend), 'and it was translated');
  const reply = dp.run(PROG.TO_POD, segment(CLIENT, 8080, TCP_FLAGS.SYN | TCP_FLAGS.ACK, backend, 40000));
  t.equal(reply.retval, TC_ACT.UNSPEC, 'a reverse-translated reply: UNSPEC');
  t.equal(reply.parsed.ip?.src, VIP);
  t.equal(dp.run(PROG.FROM_POD, segment('10.244.9.9', 40001, TCP_FLAGS.SYN)).retval, TC_ACT.UNSPEC, 'not a service: UNSPEC');
  t.equal(dp.run(PROG.FROM_POD, segment(EMPTY_VIP, 40002, TCP_FLAGS.SYN)).retval, TC_ACT.REDIRECT, 'a reject is Sluice\'s verdict');
});

t.test('a segment of a connection kube-proxy translated passes untouched and untracked', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: BACKENDS });
  dp.addService({ vip: EMPTY_VIP, port: 80, proto: IPPROTO.TCP, svcId: 2, backendId: 20, cluster: [] });

  for (const flags of [TCP_FLAGS.ACK, TCP_FLAGS.ACK | TCP_FLAGS.PSH, TCP_FLAGS.FIN | TCP_FLAGS.ACK, TCP_FLAGS.RST]) {
    const out = dp.run(PROG.FROM_POD, segment(VIP, 41000, flags));
    t.equal(out.retval, TC_ACT.UNSPEC, `flags ${flags}: passes`);
    t.equal(out.parsed.ip?.dst, VIP, `flags ${flags}: still to the ClusterIP, for kube-proxy's DNAT`);
  }
  t.equal(dp.ct(tupleKey(CLIENT, VIP, 41000, 80, IPPROTO.TCP)), null, 'no conntrack entry made for it');
  t.same([dp.svcCounters(1).connections, dp.svcCounters(1).packets], [0n, 0n], 'and nothing counted for the service');
  const empty = dp.run(PROG.FROM_POD, segment(EMPTY_VIP, 41001, TCP_FLAGS.ACK));
  t.equal(empty.retval, TC_ACT.REDIRECT, 'a service without endpoints still refuses it (as kube-proxy)');
});

// The flake of the side-by-side test (docs/coexistence.md, "Uninstall"): during the cleanup
// drain the frontends are gone, kube-proxy carries new connections, and a client port comes
// round again onto a flow Sluice had translated and closed. The new SYN passes to kube-proxy,
// but the handshake's ACK (no SYN) matched the old FORWARD entry and went to the old backend,
// which reset the connection.
t.test('a new connection on a closed flow\'s tuple that Sluice does not translate is left to kube-proxy', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const [old] = BACKENDS as [{ addr: string; port: number }];
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [old] });
  const FWD = tupleKey(CLIENT, VIP, 42000, 80, IPPROTO.TCP);
  const REV = tupleKey(old.addr, CLIENT, 8080, 42000, IPPROTO.TCP);

  // A flow Sluice translated, then closed (FIN both ways): its entries wait out the FIN timeout.
  t.equal(dp.run(PROG.FROM_POD, segment(VIP, 42000, TCP_FLAGS.SYN)).parsed.ip?.dst, old.addr, 'Sluice translated the first connection');
  dp.run(PROG.TO_POD, segment(CLIENT, 8080, TCP_FLAGS.SYN | TCP_FLAGS.ACK, old.addr, 42000));
  dp.run(PROG.FROM_POD, segment(VIP, 42000, TCP_FLAGS.FIN | TCP_FLAGS.ACK));
  dp.run(PROG.TO_POD, segment(CLIENT, 8080, TCP_FLAGS.FIN | TCP_FLAGS.ACK, old.addr, 42000));
  t.ok(dp.ct(FWD) && dp.ct(REV), 'control: the closed flow\'s entries are still there');

  // `sluice-agent cleanup` empties the frontend map; the same client port opens a new connection.
  dp.obj.map('sl_frontends4').delete(frontendKey4.encode({ addr: VIP, port: 80, proto: IPPROTO.TCP, scope: 0 }));
  const syn = dp.run(PROG.FROM_POD, segment(VIP, 42000, TCP_FLAGS.SYN));
  t.equal(syn.retval, TC_ACT.UNSPEC, 'the new SYN passes on');
  t.equal(syn.parsed.ip?.dst, VIP, 'untranslated, to kube-proxy\'s DNAT');
  t.equal(dp.ct(FWD), null, 'the closed flow\'s FORWARD entry is gone');
  t.equal(dp.ct(REV), null, 'and its REVERSE entry');
  for (const flags of [TCP_FLAGS.ACK, TCP_FLAGS.ACK | TCP_FLAGS.PSH, TCP_FLAGS.FIN | TCP_FLAGS.ACK]) {
    const out = dp.run(PROG.FROM_POD, segment(VIP, 42000, flags));
    t.equal(out.parsed.ip?.dst, VIP, `flags ${flags}: the new connection's segment stays on the ClusterIP, not the old backend`);
  }
  t.equal(dp.ctCount(), 0, 'nothing tracked for a connection kube-proxy carries');
});

t.test('a SYN reusing a closed flow\'s tuple that Sluice translates drops the old flow\'s reverse entry', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const [a, b] = BACKENDS as [{ addr: string; port: number }, { addr: string; port: number }];
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [a] });
  dp.run(PROG.FROM_POD, segment(VIP, 42001, TCP_FLAGS.SYN));
  dp.run(PROG.FROM_POD, segment(VIP, 42001, TCP_FLAGS.RST));
  const oldRev = tupleKey(a.addr, CLIENT, 8080, 42001, IPPROTO.TCP);
  t.ok(dp.ct(oldRev), 'control: the reset flow\'s REVERSE entry stands');
  // The service now has another backend; the port comes round again.
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 11, cluster: [b] });
  t.equal(dp.run(PROG.FROM_POD, segment(VIP, 42001, TCP_FLAGS.SYN)).parsed.ip?.dst, b.addr, 'the new connection goes to the new backend');
  t.equal(dp.ct(oldRev), null, 'the old flow\'s REVERSE entry is gone');
  t.equal(dp.ct(tupleKey(CLIENT, VIP, 42001, 80, IPPROTO.TCP))?.nat_addr, b.addr, 'the FORWARD entry is the new flow\'s');
  t.equal(dp.ctCount(), 2, 'just the new flow\'s two entries');
});
