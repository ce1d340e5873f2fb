// TCP to a ClusterIP through the TC programs: the SYN is DNATed to a backend with valid
// checksums, the flow's later packets keep that backend through conntrack, and the backend's
// replies are reverse-NATed back to the VIP.
import t from 'tap';
import { CT_STATE, CT_TYPE, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const CLIENT = '10.244.1.10';
const VIP = '10.96.0.10';
const BACKENDS = [
  { addr: '10.244.2.11', port: 8080 },
  { addr: '10.244.2.12', port: 8081 },
  { addr: '10.244.3.13', port: 8082 },
];

const syn = (sport: number) => buildFrame({
  srcMac: '02:00:00:00:01:0a', dstMac: '02:00:00:00:00:01',
  ip: { src: CLIENT, dst: VIP, id: 0x1234 },
  tcp: { sport, dport: 80, flags: TCP_FLAGS.SYN, seq: 1000, options: Buffer.from([2, 4, 5, 0xb4]) },
});

t.test('SYN to a VIP is DNATed to a backend; the flow sticks; replies come back from the VIP', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: BACKENDS });

  const input = syn(40001);
  const out = dp.run(PROG.FROM_POD, input);
  t.equal(out.retval, TC_ACT.UNSPEC);
  const p = out.parsed;
  const chosen = BACKENDS.find((b) => b.addr === p.ip?.dst);
  t.ok(chosen, `DNATed to a backend (got ${p.ip?.dst})`);
  t.equal(p.tcp?.dport, chosen?.port, 'destination port is the backend port');
  t.equal(p.ip?.src, CLIENT, 'the client address is preserved');
  t.equal(p.tcp?.sport, 40001);
  t.same(checksumProblems(p), [], 'IP and TCP checksums are valid');
  t.equal(p.ip?.checksum !== input.readUInt16BE(24), true, 'the IP checksum was really updated');
  // Everything but addresses, ports and checksums is the client's packet, byte for byte.
  t.equal(out.data.length, input.length);
  t.same(out.data.subarray(0, 24), input.subarray(0, 24), 'Ethernet and first IP bytes untouched');
  t.same(out.data.subarray(38, 50), input.subarray(38, 50), 'seq, ack, offset, flags, window untouched');
  t.same(out.data.subarray(52), input.subarray(52), 'TCP options untouched');
  if (!chosen) return;

  const fwd = dp.ct(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP));
  t.match(fwd, { type: CT_TYPE.FORWARD, nat_addr: chosen.addr, nat_port: chosen.port, state: CT_STATE.SYN_SENT, svc_id: 7, flags: 0 });
  const rev = dp.ct(tupleKey(chosen.addr, CLIENT, chosen.port, 40001, IPPROTO.TCP));
  t.match(rev, { type: CT_TYPE.REVERSE, nat_addr: VIP, nat_port: 80, state: CT_STATE.SYN_SENT, svc_id: 7 });

  // The backend's SYN-ACK, delivered towards the pod: source becomes the VIP again.
  const synAck = buildFrame({
    ip: { src: chosen.addr, dst: CLIENT },
    tcp: { sport: chosen.port, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 5000, ack: 1001 },
  });
  const back = dp.run(PROG.TO_POD, synAck);
  t.equal(back.retval, TC_ACT.UNSPEC);
  t.match(back.parsed.ip, { src: VIP, dst: CLIENT });
  t.match(back.parsed.tcp, { sport: 80, dport: 40001, seq: 5000, ack: 1001 });
  t.same(checksumProblems(back.parsed), [], 'reply checksums are valid');
  t.equal(dp.ct(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP))?.state, CT_STATE.ESTABLISHED,
    'the SYN-ACK established both entries');

  // Many further packets of the flow: conntrack keeps the backend every time.
  for (let i = 0; i < 20; i++) {
    const ack = dp.run(PROG.FROM_POD, buildFrame({
      ip: { src: CLIENT, dst: VIP },
      tcp: { sport: 40001, dport: 80, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, seq: 1001 + i, ack: 5001 },
      payload: Buffer.from(`data ${i}`),
    }));
    t.equal(ack.parsed.ip?.dst, chosen.addr, `packet ${i} keeps the backend`);
    t.equal(ack.parsed.tcp?.dport, chosen.port);
    t.same(checksumProblems(ack.parsed), []);
  }

  const c = dp.svcCounters(7);
  t.equal(c.connections, 1n, 'one new flow counted');
  t.equal(c.packets, 21n, 'every client packet counted');
  t.equal(c.rejected, 0n);
  t.ok(c.bytes >= BigInt(21 * 54), `bytes counted (${c.bytes})`);
});

t.test('new flows spread over every backend of the Cluster set', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: BACKENDS });
  const seen = new Map<string, number>();
  for (let sport = 41000; sport < 41090; sport++) {
    const p = dp.run(PROG.FROM_POD, syn(sport)).parsed;
    const key = `${p.ip?.dst}:${p.tcp?.dport}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  t.same([...seen.keys()].sort(), BACKENDS.map((b) => `${b.addr}:${b.port}`).sort(),
    `90 flows used exactly the three backends: ${JSON.stringify([...seen])}`);
  t.equal(dp.svcCounters(7).connections, 90n);
  t.equal(dp.ctCount(), 180, 'two conntrack entries per flow');
});

t.test('IP options: the TCP header is found after them and the options survive the rewrite', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: BACKENDS.slice(0, 1) });
  const options = Buffer.from([0x01, 0x01, 0x94, 0x04, 0x00, 0x00, 0x01, 0x00]); // NOP NOP router-alert NOP EOL
  const input = buildFrame({
    ip: { src: CLIENT, dst: VIP, options },
    tcp: { sport: 42000, dport: 80, flags: TCP_FLAGS.SYN },
    payload: Buffer.from('payload'),
  });
  const out = dp.run(PROG.FROM_POD, input);
  t.match(out.parsed.ip, { dst: '10.244.2.11', headerLength: 28, options });
  t.match(out.parsed.tcp, { sport: 42000, dport: 8080 });
  t.equal(out.parsed.payload.toString(), 'payload');
  t.same(checksumProblems(out.parsed), []);
});
