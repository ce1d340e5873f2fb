// The IPv6 frame builder and parser the IPv6 packet tests judge the kernel's output with: extension
// headers laid out as RFC 8200 says (next-header chain, length units: 8 bytes, AH 4), walked back
// by parseFrame6 to the upper layer, and a checksum check that notices corruption.
import t from 'tap';
import {
  authHeader, buildFrame6, corruptByte, espHeader, ETH_HLEN, fragmentHeader, IPV6_HLEN, NEXTHDR, optionsHeader, parseFrame6,
  routingHeader, TCP6_FLAGS,
} from '../../src/packet/index.js';

const SRC = 'fd00::1';
const DST = 'fd00::2';

t.test('options headers: length field in 8-byte units minus one, PadN filling the rest', async (t) => {
  t.same([...optionsHeader(NEXTHDR.HOP_BY_HOP).bytes], [0, 0, 1, 4, 0, 0, 0, 0]);
  const long = optionsHeader(NEXTHDR.DEST_OPTS, 24).bytes;
  t.equal(long.length, 24);
  t.same([long[1], long[2], long[3]], [2, 1, 20], 'hdrlen 2; one PadN of 20 bytes');
  const huge = optionsHeader(NEXTHDR.DEST_OPTS, 272).bytes;
  t.same([huge[1], huge[2], huge[3], huge[2 + 2 + 255], huge[2 + 2 + 255 + 1]], [33, 1, 255, 1, 11], 'two PadN options when one cannot hold the padding');
  t.throws(() => optionsHeader(NEXTHDR.HOP_BY_HOP, 12), RangeError);
});

t.test('routing, fragment, AH and ESP headers', async (t) => {
  const rh = routingHeader(1, ['fd00::a', 'fd00::b']).bytes;
  t.same([rh.length, rh[1], rh[2], rh[3], rh[4]], [40, 4, 4, 1, 1], 'SRH: 8 + 2 x 16 bytes, hdrlen 4, type 4, segments left 1, last entry 1');
  t.equal(rh.subarray(8, 24).toString('hex'), `fd00${'0'.repeat(27)}a`, 'the first segment');
  const fh = fragmentHeader(185, true, 7).bytes;
  t.same([...fh], [0, 0, 0x05, 0xc9, 0, 0, 0, 7], 'offset 185 << 3 | M, identification 7');
  const ah = authHeader(12).bytes;
  t.same([ah.length, ah[1]], [24, 4], 'AH: 24 bytes, length 24 / 4 - 2');
  t.throws(() => authHeader(10), RangeError);
  t.equal(espHeader(0x01020304).bytes.readUInt32BE(0), 0x01020304, 'ESP starts with its SPI');
});

t.test('a chain of four headers + UDP: next headers chained, lengths summed, walked back to the upper layer', async (t) => {
  const payload = Buffer.from('odd');
  const frame = buildFrame6({
    src: SRC, dst: DST, extensions: [NEXTHDR.HOP_BY_HOP, routingHeader(0, [DST]), authHeader(12), optionsHeader(NEXTHDR.DEST_OPTS, 16)],
    udp: { sport: 1000, dport: 53 }, payload,
  });
  const ext = ETH_HLEN + IPV6_HLEN;
  t.equal(frame[ETH_HLEN + 6], NEXTHDR.HOP_BY_HOP, 'the fixed header names the first');
  t.equal(frame[ext], NEXTHDR.ROUTING, 'hop-by-hop -> routing');
  t.equal(frame[ext + 8], NEXTHDR.AH, 'routing (24 bytes) -> AH');
  t.equal(frame[ext + 32], NEXTHDR.DEST_OPTS, 'AH (24 bytes) -> destination options');
  t.equal(frame[ext + 56], NEXTHDR.UDP, 'destination options (16 bytes) -> UDP');
  t.equal(frame.readUInt16BE(ETH_HLEN + 4), 72 + 8 + 3, 'payload length: the headers and the datagram');
  t.equal(frame.length, ext + 72 + 11);
  const p = parseFrame6(frame);
  t.same(p, { src: SRC, dst: DST, next: NEXTHDR.UDP, extensions: [0, 43, 51, 60], l4Offset: ext + 72, sport: 1000, dport: 53, checksumOk: true });
  t.equal(parseFrame6(corruptByte(frame, frame.length - 1)).checksumOk, false, 'a corrupted payload byte fails the checksum');
  t.equal(parseFrame6(corruptByte(frame, ETH_HLEN + 8)).checksumOk, false, 'so does a corrupted source address (pseudo-header)');
});

t.test('the walk stops at a fragment or ESP header; a chain past the packet is an error', async (t) => {
  const frag = parseFrame6(buildFrame6({ src: SRC, dst: DST, extensions: [NEXTHDR.HOP_BY_HOP, fragmentHeader(0, true)], tcp: { sport: 1, dport: 2, flags: TCP6_FLAGS.SYN } }));
  t.match(frag, { next: NEXTHDR.FRAGMENT, extensions: [0, 44], sport: 0, dport: 0, checksumOk: false });
  const esp = buildFrame6({ src: SRC, dst: DST, extensions: [espHeader(0xaabbccdd)], udp: { sport: 1, dport: 2 } });
  t.equal(esp.readUInt32BE(ETH_HLEN + IPV6_HLEN), 0xaabbccdd, "ESP's SPI is not overwritten by a next header");
  t.match(parseFrame6(esp), { next: NEXTHDR.ESP, extensions: [50] });
  const cut = buildFrame6({ src: SRC, dst: DST, extensions: [NEXTHDR.HOP_BY_HOP], udp: { sport: 1, dport: 2 } });
  cut[ETH_HLEN + IPV6_HLEN + 1] = 9;
  t.throws(() => parseFrame6(cut), RangeError);
  t.same(parseFrame6(buildFrame6({ src: SRC, dst: DST, tcp: { sport: 5, dport: 6 } })).extensions, [], 'no extension headers');
});
