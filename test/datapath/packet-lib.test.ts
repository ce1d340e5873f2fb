// The TS packet library the datapath tests rely on to judge the kernel's output: its checksums
// must match known vectors and catch single-byte corruption, or every packet test is moot.
import t from 'tap';
import {
  buildFrame, checksumProblems, corruptByte, decodeIpv4, ETH_HLEN, ICMP_TYPE, internetChecksum, IPPROTO, parseFrame, TCP_FLAGS,
} from '../../src/packet/index.js';

t.test('IPv4 header checksum matches a worked example', async (t) => {
  // 192.168.0.1 -> 192.168.0.199, UDP, DF, total length 0x73: the checksum is 0xb861.
  const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  t.equal(internetChecksum(hdr), 0xb861);
  hdr.writeUInt16BE(0xb861, 10);
  const padded = Buffer.concat([hdr, Buffer.alloc(0x73 - 20)]);
  t.equal(decodeIpv4(padded).checksumValid, true);
  t.equal(decodeIpv4(corruptByte(padded, 15)).checksumValid, false);
});

t.test('TCP frame round-trips and every checksum is valid', async (t) => {
  const frame = buildFrame({
    ip: { src: '10.0.0.1', dst: '10.96.0.10', id: 7, options: Buffer.from([1, 1, 1, 0]) },
    tcp: { sport: 40000, dport: 80, flags: TCP_FLAGS.SYN, seq: 0xfffffff0 },
    payload: Buffer.from('hello'),
  });
  const p = parseFrame(frame);
  t.equal(p.ip?.headerLength, 24);
  t.equal(p.ip?.protocol, IPPROTO.TCP);
  t.match(p.tcp, { sport: 40000, dport: 80, flags: TCP_FLAGS.SYN, seq: 0xfffffff0 });
  t.equal(p.payload.toString(), 'hello');
  t.same(checksumProblems(p), []);
});

t.test('a flipped byte anywhere in the segment breaks the TCP checksum', async (t) => {
  const frame = buildFrame({
    ip: { src: '10.0.0.1', dst: '10.96.0.10' },
    tcp: { sport: 1, dport: 2, flags: TCP_FLAGS.ACK },
    payload: Buffer.from('abc'),
  });
  for (const off of [ETH_HLEN + 12, ETH_HLEN + 20, frame.length - 1]) {
    const problems = checksumProblems(parseFrame(corruptByte(frame, off, 0x10)));
    t.ok(problems.some((s) => s.startsWith('TCP')), `byte ${off}: ${problems.join(', ')}`);
  }
});

t.test('UDP: computed checksum, odd payload, and "no checksum"', async (t) => {
  const withSum = parseFrame(buildFrame({
    ip: { src: '10.0.0.1', dst: '10.96.0.10' }, udp: { sport: 5353, dport: 53 }, payload: Buffer.from('odd'),
  }));
  t.equal(withSum.udp?.checksumPresent, true);
  t.same(checksumProblems(withSum), []);
  const good = buildFrame({ ip: { src: '10.0.0.1', dst: '10.96.0.10' }, udp: { sport: 1, dport: 2 }, payload: Buffer.from('x') });
  const bad = corruptByte(good, good.length - 1);
  t.same(checksumProblems(parseFrame(bad)), [`UDP checksum 0x${bad.readUInt16BE(ETH_HLEN + 26).toString(16)} is wrong`]);
  const none = parseFrame(buildFrame({
    ip: { src: '10.0.0.1', dst: '10.96.0.10' }, udp: { sport: 1, dport: 2, noChecksum: true },
  }));
  t.equal(none.udp?.checksum, 0);
  t.equal(none.udp?.checksumPresent, false);
  t.same(checksumProblems(none), []);
});

t.test('ICMP checksum covers the body', async (t) => {
  const frame = buildFrame({
    ip: { src: '10.0.0.1', dst: '10.0.0.2' },
    icmp: { type: ICMP_TYPE.ECHO_REQUEST, code: 0, rest: Buffer.from([0, 1, 0, 2]) },
    payload: Buffer.from('ping'),
  });
  t.same(checksumProblems(parseFrame(frame)), []);
  t.match(checksumProblems(parseFrame(corruptByte(frame, frame.length - 1, 4))), [/^ICMP/]);
});

t.test('malformed frames raise errors naming the header', async (t) => {
  t.throws(() => parseFrame(Buffer.alloc(10)), /Ethernet header truncated: frame has 10 bytes/);
  const frame = buildFrame({ ip: { src: '1.1.1.1', dst: '2.2.2.2' }, udp: { sport: 1, dport: 2 } });
  t.throws(() => parseFrame(frame.subarray(0, ETH_HLEN + 10)), /IPv4 header truncated/);
  const badLen = Buffer.from(frame);
  badLen.writeUInt16BE(500, ETH_HLEN + 2);
  t.throws(() => parseFrame(badLen), /IPv4 total length 500 is invalid/);
  t.throws(() => buildFrame({ ip: { src: '1.1.1.1', dst: '2.2.2.2' } }), /exactly one of tcp, udp, icmp/);
  t.throws(() => buildFrame({ ip: { src: '1.1.1', dst: '2.2.2.2' }, udp: { sport: 1, dport: 2 } }), /not an IPv4 address/);
  t.throws(() => buildFrame({ srcMac: 'zz', ip: { src: '1.1.1.1', dst: '2.2.2.2' }, udp: { sport: 1, dport: 2 } }),
    /not a MAC address/);
});
