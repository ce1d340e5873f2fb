// UDP to a ClusterIP through the TC programs: DNAT with a correct UDP checksum, conntrack keeps
// the backend, replies are reverse-NATed, and a datagram sent without a checksum stays without.
import t from 'tap';
import { CT_STATE, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ETH_HLEN } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const CLIENT = '10.244.1.20';
const VIP = '10.96.0.53';
const BACKENDS = [
  { addr: '10.244.2.31', port: 5353 },
  { addr: '10.244.2.32', port: 5354 },
];

const query = (sport: number, payload: string, noChecksum = false) => buildFrame({
  ip: { src: CLIENT, dst: VIP },
  udp: { sport, dport: 53, noChecksum },
  payload: Buffer.from(payload),
});

t.test('UDP datagram to a VIP is DNATed, its flow sticks, the answer comes from the VIP', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 3, backendId: 30, cluster: BACKENDS });

  const first = dp.run(PROG.FROM_POD, query(50000, 'odd-length query'));
  t.equal(first.retval, TC_ACT.UNSPEC);
  const chosen = BACKENDS.find((b) => b.addr === first.parsed.ip?.dst);
  t.ok(chosen, `DNATed to a backend (got ${first.parsed.ip?.dst})`);
  if (!chosen) return;
  t.match(first.parsed.udp, { sport: 50000, dport: chosen.port, checksumPresent: true });
  t.same(checksumProblems(first.parsed), [], 'IP and UDP checksums are valid');
  t.equal(first.parsed.payload.toString(), 'odd-length query');
  t.match(dp.ct(tupleKey(CLIENT, VIP, 50000, 53, IPPROTO.UDP)),
    { type: CT_TYPE.FORWARD, nat_addr: chosen.addr, nat_port: chosen.port, state: CT_STATE.NEW });

  for (let i = 0; i < 10; i++) {
    const again = dp.run(PROG.FROM_POD, query(50000, `query ${i}`));
    t.equal(again.parsed.ip?.dst, chosen.addr, `datagram ${i} keeps the backend`);
    t.same(checksumProblems(again.parsed), []);
  }

  const answer = dp.run(PROG.TO_POD, buildFrame({
    ip: { src: chosen.addr, dst: CLIENT }, udp: { sport: chosen.port, dport: 50000 }, payload: Buffer.from('answer'),
  }));
  t.equal(answer.retval, TC_ACT.UNSPEC);
  t.match(answer.parsed.ip, { src: VIP, dst: CLIENT });
  t.match(answer.parsed.udp, { sport: 53, dport: 50000 });
  t.same(checksumProblems(answer.parsed), [], 'reply checksums are valid');
  t.equal(dp.svcCounters(3).connections, 1n);
  t.equal(dp.svcCounters(3).packets, 11n);
});

t.test('a UDP datagram without checksum is translated and still has none', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 3, backendId: 30, cluster: BACKENDS });
  const out = dp.run(PROG.FROM_POD, query(50001, 'no sum', true));
  t.ok(BACKENDS.some((b) => b.addr === out.parsed.ip?.dst), 'DNATed');
  t.equal(out.parsed.udp?.checksum, 0, 'checksum stays 0 ("none"), not a bogus value');
  t.same(checksumProblems(out.parsed), []);
  t.equal(out.data.readUInt16BE(ETH_HLEN + 20 + 6), 0);
});
