// The verdicts that let other TC programs share the hooks (docs/coexistence.md): Sluice passes
// with TC_ACT_UNSPEC (on to the next filter) whatever it translated or let through, ends the
// chain only with its own drops and rejects, and leaves alone a TCP segment that kube-proxy's
// DNAT carries (a connection to a frontend that Sluice does not track and that opens nothing).
import t from 'tap';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
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
