// A service without backends refuses flows instead of black-holing them: a TCP RST or an ICMP
// port unreachable from the VIP, bounced back out of the interface (TC_ACT_REDIRECT), counted.
import t from 'tap';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, ETH_HLEN, ICMP_TYPE, ICMP_UNREACH_CODE, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';

const CLIENT = '10.244.1.10';
const VIP = '10.96.0.99';
const CLIENT_MAC = '02:00:00:00:01:0a';
const HOST_MAC = '02:00:00:00:00:01';

t.test('TCP SYN to an empty service: RST+ACK from the VIP, redirected back', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 443, proto: IPPROTO.TCP, svcId: 9, backendId: 90, cluster: [] });
  const out = dp.run(PROG.FROM_POD, buildFrame({
    srcMac: CLIENT_MAC, dstMac: HOST_MAC,
    ip: { src: CLIENT, dst: VIP, options: Buffer.from([1, 1, 1, 0]) },
    tcp: { sport: 33333, dport: 443, flags: TCP_FLAGS.SYN, seq: 0xfffffffe, options: Buffer.from([2, 4, 5, 0xb4]) },
    payload: Buffer.from('xy'),
  }));
  t.equal(out.retval, TC_ACT.REDIRECT, 'bounced with bpf_redirect');
  const p = out.parsed;
  t.match(p.eth, { src: HOST_MAC, dst: CLIENT_MAC });
  t.match(p.ip, { src: VIP, dst: CLIENT, protocol: IPPROTO.TCP, headerLength: 20, totalLength: 40, ttl: 64 });
  t.equal(out.data.length, ETH_HLEN + 40, 'frame trimmed to the RST');
  // No ACK in the SYN: the RST acknowledges SYN + 2 payload bytes (sequence wraps).
  t.match(p.tcp, { sport: 443, dport: 33333, seq: 0, ack: 1, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK, headerLength: 20 });
  t.same(checksumProblems(p), [], 'IP and TCP checksums are valid');
  t.equal(dp.drops('no_backend'), 1n);
  t.equal(dp.svcCounters(9).rejected, 1n);
  t.equal(dp.svcCounters(9).connections, 0n);
  t.equal(dp.ctCount(), 0, 'no conntrack for a refused flow');
});

t.test('TCP segment with ACK to an empty service: RST with seq = its ack; a RST is never answered', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 443, proto: IPPROTO.TCP, svcId: 9, backendId: 90, cluster: [] });
  const out = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: CLIENT, dst: VIP },
    tcp: { sport: 33334, dport: 443, flags: TCP_FLAGS.ACK, seq: 10, ack: 777 },
  }));
  t.equal(out.retval, TC_ACT.REDIRECT);
  t.match(out.parsed.tcp, { seq: 777, flags: TCP_FLAGS.RST });
  t.same(checksumProblems(out.parsed), []);
  const rst = dp.run(PROG.FROM_POD, buildFrame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: 33335, dport: 443, flags: TCP_FLAGS.RST } }));
  t.equal(rst.retval, TC_ACT.SHOT, 'a RST to an empty service is dropped, not answered');
  t.equal(dp.drops('no_backend'), 2n);
});

t.test('UDP to an empty service: ICMP port unreachable quoting the datagram', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [] });
  for (const options of [Buffer.alloc(0), Buffer.from([1, 1, 1, 1, 1, 1, 1, 0])]) {
    const input = buildFrame({
      srcMac: CLIENT_MAC, dstMac: HOST_MAC,
      ip: { src: CLIENT, dst: VIP, id: 0xbeef, options },
      udp: { sport: 5000, dport: 53 }, payload: Buffer.from('a fairly long query that is not quoted'),
    });
    const out = dp.run(PROG.FROM_POD, input);
    t.equal(out.retval, TC_ACT.REDIRECT);
    const p = out.parsed;
    t.match(p.eth, { src: HOST_MAC, dst: CLIENT_MAC });
    t.match(p.ip, { src: VIP, dst: CLIENT, protocol: IPPROTO.ICMP, headerLength: 20 });
    t.match(p.icmp, { type: ICMP_TYPE.DEST_UNREACH, code: ICMP_UNREACH_CODE.PORT });
    const quoteLen = 20 + options.length + 8;
    t.same(p.payload, input.subarray(ETH_HLEN, ETH_HLEN + quoteLen), `quotes the IP header (+${options.length} option bytes) and 8 bytes`);
    t.equal(p.ip?.totalLength, 20 + 8 + quoteLen);
    t.equal(out.data.length, ETH_HLEN + 20 + 8 + quoteLen);
    t.same(checksumProblems(p), [], 'IP and ICMP checksums are valid');
  }
  t.equal(dp.drops('no_backend'), 2n);
  t.equal(dp.svcCounters(4).rejected, 2n);
});
