// A ClusterIP refuses the ports its Service does not have (as kube-proxy's nftables mode): a new
// TCP connection gets a RST and a UDP datagram an ICMP port unreachable from the ClusterIP,
// counted as `unknown_port`. The Service's own ports, other segments of a TCP flow and addresses
// that are not listed in sl_vips4 pass as before.
import t from 'tap';
import type { Test } from 'tap';
import { IPPROTO, VIP_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ICMP_TYPE, ICMP_UNREACH_CODE, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath } from './harness.js';

const CLIENT = '10.244.1.10';
const VIP = '10.96.0.77';
const OTHER = '10.96.0.78';
const BACKEND = { addr: '10.244.2.11', port: 8080 };

const tcp = (dp: Datapath, dst: string, dport: number, flags: number) =>
  dp.run(PROG.FROM_POD, buildFrame({ ip: { src: CLIENT, dst }, tcp: { sport: 40000, dport, flags } }));
const udp = (dp: Datapath, dst: string, dport: number) =>
  dp.run(PROG.FROM_POD, buildFrame({ ip: { src: CLIENT, dst }, udp: { sport: 40001, dport }, payload: Buffer.from('q') }));

async function withVip(t: Test): Promise<Datapath | null> {
  const dp = await loadDatapath(t);
  if (!dp) return null;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [BACKEND] });
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [BACKEND] });
  dp.addVip(VIP, VIP_F.REJECT_UNKNOWN);
  return dp;
}

t.test('TCP SYN to an unknown port of a ClusterIP: RST from the ClusterIP, counted', async (t) => {
  const dp = await withVip(t);
  if (!dp) return;
  const out = tcp(dp, VIP, 8443, TCP_FLAGS.SYN);
  t.equal(out.retval, TC_ACT.REDIRECT, 'bounced back to the pod');
  t.match(out.parsed.ip, { src: VIP, dst: CLIENT, protocol: IPPROTO.TCP });
  t.match(out.parsed.tcp, { sport: 8443, dport: 40000, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK });
  t.same(checksumProblems(out.parsed), [], 'valid checksums');
  t.equal(dp.drops('unknown_port'), 1n, 'counted as unknown_port');
  t.equal(dp.drops('no_backend'), 0n, 'not as a service without backends');
  t.equal(dp.ctCount(), 0, 'no conntrack entry');

  const ack = tcp(dp, VIP, 8443, TCP_FLAGS.ACK);
  t.equal(ack.retval, TC_ACT.UNSPEC, 'a segment that opens nothing passes (only connection attempts are refused)');
  t.equal(ack.parsed.ip?.dst, VIP, 'untouched');
  t.equal(dp.drops('unknown_port'), 1n);
});

t.test('UDP to an unknown port of a ClusterIP: ICMP port unreachable', async (t) => {
  const dp = await withVip(t);
  if (!dp) return;
  const out = udp(dp, VIP, 5353);
  t.equal(out.retval, TC_ACT.REDIRECT);
  t.match(out.parsed.ip, { src: VIP, dst: CLIENT, protocol: IPPROTO.ICMP });
  t.match(out.parsed.icmp, { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT });
  t.same(checksumProblems(out.parsed), []);
  t.equal(dp.drops('unknown_port'), 1n);
});

t.test('the Service\'s own ports, other protocols and unlisted addresses are not refused', async (t) => {
  const dp = await withVip(t);
  if (!dp) return;
  const own = tcp(dp, VIP, 80, TCP_FLAGS.SYN);
  t.equal(own.retval, TC_ACT.UNSPEC);
  t.equal(own.parsed.ip?.dst, BACKEND.addr, 'a frontend port is DNATed as before');
  t.equal(udp(dp, VIP, 53).parsed.ip?.dst, BACKEND.addr, 'the UDP frontend too');
  t.equal(tcp(dp, VIP, 53, TCP_FLAGS.SYN).retval, TC_ACT.REDIRECT, 'port 53 is a UDP frontend only: TCP to it is refused');

  const other = tcp(dp, OTHER, 8443, TCP_FLAGS.SYN);
  t.equal(other.retval, TC_ACT.UNSPEC, 'an address not in sl_vips4 passes');
  t.equal(other.parsed.ip?.dst, OTHER);
  t.equal(udp(dp, OTHER, 5353).retval, TC_ACT.UNSPEC);

  dp.addVip(OTHER, 0);
  t.equal(tcp(dp, OTHER, 8443, TCP_FLAGS.SYN).retval, TC_ACT.UNSPEC, 'a listed address without SL_VIP_F_REJECT_UNKNOWN passes');
  t.equal(dp.drops('unknown_port'), 1n, 'only the TCP-to-UDP-port SYN was refused');
});
