// kube-proxy's refusals for external traffic (bpf/host.bpf.c): externalTrafficPolicy Local keeps
// to local backends and drops (never rejects) when there is none here; a service without any
// endpoint rejects at once (TCP RST / ICMP port unreachable back out of the interface);
// loadBalancerSourceRanges drop sources outside the ranges (LPM per service).
import t from 'tap';
import { BE_F, CT_F, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ETH_HLEN, ICMP_TYPE, ICMP_UNREACH_CODE, TCP_FLAGS } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const CLIENT = '198.51.100.7';
const NODE = '192.168.50.2';
const LB_IP = '203.0.113.10';
const LOCAL = { addr: '10.244.1.11', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0 };
const EXT = SVC_F.EXTERNAL;

const synTo = (dst: string, dport: number, src = CLIENT, sport = 40001) =>
  buildFrame({ ip: { src, dst, id: 1 }, tcp: { sport, dport, flags: TCP_FLAGS.SYN, seq: 100 } });

t.test('eTP=Local: only the local set; a node without a local backend drops (no reply at all)', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  const flags = EXT | SVC_F.EXTERNAL_LOCAL;
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], local: [], flags });
  dp.addService({ vip: NODE, port: 30081, proto: IPPROTO.TCP, svcId: 4, backendId: 40, cluster: [REMOTE, LOCAL], local: [LOCAL], flags });

  const frame = synTo(NODE, 30080);
  const drop = dp.run(PROG.HOST_INGRESS, frame);
  t.equal(drop.retval, TC_ACT.SHOT, 'dropped');
  t.same(drop.data, frame, 'not turned into a RST');
  t.equal(dp.drops('no_local_backend'), 1n);
  t.equal(dp.svcCounters(3).rejected, 1n);
  t.equal(dp.ctCount(), 0);

  for (let sport = 41000; sport < 41020; sport++) {
    const out = dp.run(PROG.HOST_INGRESS, synTo(NODE, 30081, CLIENT, sport));
    t.equal(out.retval, TC_ACT.UNSPEC);
    t.match(out.parsed.ip, { src: CLIENT, dst: LOCAL.addr }, 'always the local backend, client address kept');
  }
  t.match(dp.ct(tupleKey(CLIENT, NODE, 41000, 30081, IPPROTO.TCP)), { flags: CT_F.EXTERNAL }, 'DNAT only, no SNAT');
});

t.test('no endpoints at all: TCP RST and ICMP port unreachable from the frontend, sent back out', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: LB_IP, port: 443, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [], flags: EXT | SVC_F.EXTERNAL_LOCAL });
  dp.addService({ vip: LB_IP, port: 53, proto: IPPROTO.UDP, svcId: 6, backendId: 60, cluster: [], flags: EXT });
  const rst = dp.run(PROG.HOST_INGRESS, synTo(LB_IP, 443));
  t.equal(rst.retval, TC_ACT.REDIRECT, 'bounced out of the interface it came in on');
  t.match(rst.parsed.ip, { src: LB_IP, dst: CLIENT });
  t.match(rst.parsed.tcp, { sport: 443, dport: 40001, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK, ack: 101 });
  t.same(checksumProblems(rst.parsed), []);

  const dgram = buildFrame({ ip: { src: CLIENT, dst: LB_IP }, udp: { sport: 5000, dport: 53 }, payload: Buffer.from('q') });
  const icmp = dp.run(PROG.HOST_INGRESS, dgram);
  t.equal(icmp.retval, TC_ACT.REDIRECT);
  t.match(icmp.parsed.ip, { src: LB_IP, dst: CLIENT, protocol: IPPROTO.ICMP });
  t.match(icmp.parsed.icmp, { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT });
  t.same(icmp.parsed.payload, dgram.subarray(ETH_HLEN, ETH_HLEN + 28), 'quotes the datagram\'s IP header and 8 bytes');
  t.same(checksumProblems(icmp.parsed), []);
  t.equal(dp.drops('no_backend'), 2n);
  t.equal(dp.ctCount(), 0);
});

t.test('loadBalancerSourceRanges: sources inside a range are served, others dropped; other services unaffected', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: LB_IP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: [LOCAL], flags: EXT | SVC_F.SRC_RANGES });
  dp.addService({ vip: LB_IP, port: 81, proto: IPPROTO.TCP, svcId: 8, backendId: 80, cluster: [LOCAL], flags: EXT | SVC_F.SRC_RANGES });
  dp.addSrcRange(7, '198.51.100.0/24');
  dp.addSrcRange(7, '192.0.2.128/25');
  dp.addSrcRange(8, '10.0.0.0/8'); // another service's range must not let anyone into svc 7

  for (const src of ['198.51.100.7', '198.51.100.255', '192.0.2.200']) {
    t.equal(dp.run(PROG.HOST_INGRESS, synTo(LB_IP, 80, src)).parsed.ip?.dst, LOCAL.addr, `${src} allowed`);
  }
  for (const src of ['198.51.101.7', '192.0.2.1', '10.1.2.3']) {
    const frame = synTo(LB_IP, 80, src);
    const out = dp.run(PROG.HOST_INGRESS, frame);
    t.equal(out.retval, TC_ACT.SHOT, `${src} dropped`);
    t.same(out.data, frame);
  }
  t.equal(dp.drops('src_range'), 3n);
  t.equal(dp.run(PROG.HOST_INGRESS, synTo(LB_IP, 81, '10.1.2.3')).parsed.ip?.dst, LOCAL.addr, 'svc 8 serves its own range');
});
