// Traffic that is not for a service must leave both TC programs byte for byte as it came, with
// TC_ACT_UNSPEC (on to the next filter): other destinations, other ports and protocols, non-IPv4 frames, fragments and
// malformed headers.
import t from 'tap';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, ETH_HLEN, ICMP_TYPE, IP_FLAG_MF, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT } from './harness.js';

const VIP = '10.96.0.10';
const POD = '10.244.1.10';

function cases(): Array<[string, Buffer]> {
  const udpToVip = buildFrame({ ip: { src: POD, dst: VIP }, udp: { sport: 1000, dport: 80 } });
  const arp = Buffer.concat([Buffer.from('ffffffffffff020000000001', 'hex'), Buffer.from([0x08, 0x06]), Buffer.alloc(28, 1)]);
  const ipv6 = Buffer.concat([Buffer.from('333300000001020000000001', 'hex'), Buffer.from([0x86, 0xdd]), Buffer.alloc(48, 2)]);
  const truncatedTcp = buildFrame({ ip: { src: POD, dst: VIP }, tcp: { sport: 1, dport: 80, flags: TCP_FLAGS.SYN } })
    .subarray(0, ETH_HLEN + 20 + 10);
  return [
    ['TCP to another pod', buildFrame({ ip: { src: POD, dst: '10.244.2.11' }, tcp: { sport: 1234, dport: 80, flags: TCP_FLAGS.SYN } })],
    ['TCP to the VIP on a port that is not a frontend', buildFrame({ ip: { src: POD, dst: VIP }, tcp: { sport: 1234, dport: 81, flags: TCP_FLAGS.SYN } })],
    ['UDP to the VIP when only TCP is a frontend', udpToVip],
    ['ICMP echo to the VIP', buildFrame({ ip: { src: POD, dst: VIP }, icmp: { type: ICMP_TYPE.ECHO_REQUEST, code: 0 }, payload: Buffer.from('ping') })],
    ['first fragment of a UDP datagram to the VIP', buildFrame({ ip: { src: POD, dst: VIP, fragOff: IP_FLAG_MF }, udp: { sport: 1, dport: 80 } })],
    ['ARP', arp],
    ['IPv6', ipv6],
    ['a TCP header cut short', Buffer.from(truncatedTcp)],
    ['an Ethernet header only', Buffer.alloc(ETH_HLEN, 0xaa)],
  ];
}

t.test('non-service packets pass both programs untouched', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [{ addr: '10.244.2.11', port: 8080 }] });
  // Proof that the service is live: the same VIP:80/TCP is translated.
  const hit = dp.run(PROG.FROM_POD, buildFrame({ ip: { src: POD, dst: VIP }, tcp: { sport: 9, dport: 80, flags: TCP_FLAGS.SYN } }));
  t.equal(hit.parsed.ip?.dst, '10.244.2.11', 'control: the frontend itself is translated');
  const ctBefore = dp.ctCount();

  for (const [name, frame] of cases()) {
    for (const prog of [PROG.FROM_POD, PROG.TO_POD]) {
      const res = dp.obj.program(prog).testRun({ data: frame });
      t.equal(res.retval, TC_ACT.UNSPEC, `${prog}: ${name}: TC_ACT_UNSPEC`);
      t.same(res.data, frame, `${prog}: ${name}: byte for byte`);
    }
  }
  t.equal(dp.ctCount(), ctBefore, 'no conntrack entry was created');
  t.equal(dp.drops('malformed'), 0n, 'passing is not dropping');
});
