// ip.ts: strict parsing, family detection, canonical text, numeric sort keys, CIDR containment.
import t from 'tap';
import { cidrContains, ipBytes, ipFamilyOf, isLoopback, parseCidr, parseIp } from '../../src/model/ip.js';

const valid: Array<[string, string, string]> = [
  // [input, family, canonical]
  ['10.96.0.10', 'IPv4', '10.96.0.10'],
  ['0.0.0.0', 'IPv4', '0.0.0.0'],
  ['255.255.255.255', 'IPv4', '255.255.255.255'],
  ['fd00::1', 'IPv6', 'fd00::1'],
  ['FD00::0A', 'IPv6', 'fd00::a'],
  ['fd00:0:0:0:0:0:0:1', 'IPv6', 'fd00::1'],
  ['::', 'IPv6', '::'],
  ['::1', 'IPv6', '::1'],
  ['1::', 'IPv6', '1::'],
  ['2001:db8:0:0:1:0:0:1', 'IPv6', '2001:db8::1:0:0:1'], // first of two equal runs
  ['2001:db8:0:1:0:0:0:1', 'IPv6', '2001:db8:0:1::1'], // longest run
  ['2001:db8:1:1:1:1:1:0', 'IPv6', '2001:db8:1:1:1:1:1:0'], // a single zero group is not compressed
  ['2001:0db8:0000:0000:0000:ff00:0042:8329', 'IPv6', '2001:db8::ff00:42:8329'],
  ['64:ff9b::192.0.2.33', 'IPv6', '64:ff9b::c000:221'],
  ['1:2:3:4:5:6:1.2.3.4', 'IPv6', '1:2:3:4:5:6:102:304'],
];

for (const [text, family, canonical] of valid) {
  t.test(`valid ${text}`, async (t) => {
    const ip = parseIp(text);
    t.equal(ip?.family, family);
    t.equal(ip?.canonical, canonical);
    t.equal(ipFamilyOf(text), family);
    // Canonical text parses back to the same address.
    t.equal(parseIp(canonical)?.sortKey, ip?.sortKey);
  });
}

const invalid: unknown[] = [
  '', ' 10.0.0.1', '10.0.0.1 ', '10.0.0', '10.0.0.1.1', '10.0.0.256', '10.0.0.-1', '10..0.1', '.10.0.0.1',
  '10.0.0.1.', '010.0.0.1', '10.0.0.01', '1e1.0.0.1', '0x0a.0.0.1', '10.0.0.1/32',
  ':', ':::', '1:::2', '1::2::3', ':1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7::8', '12345::',
  'fe80::1%eth0', 'g::1', '::ffff:10.0.0.1', '::ffff:a00:1', '::1.2.3', '::1.2.3.256',
  null, undefined, 10, {}, ['10.0.0.1'],
];

t.test('invalid addresses are refused', async (t) => {
  for (const text of invalid) t.equal(parseIp(text), null, JSON.stringify(text) ?? String(text));
});

t.test('sort keys order numerically', async (t) => {
  const ordered = ['9.255.255.255', '10.0.0.9', '10.0.0.10', '10.0.0.100', '10.0.1.0', '255.0.0.0'];
  const keys = ordered.map((ip) => parseIp(ip)?.sortKey ?? '');
  t.same([...keys].sort(), keys);
  const ordered6 = ['::1', '2001:db8::1', 'fd00::9', 'fd00::a', 'fd00::10', 'fd00:1::'];
  const keys6 = ordered6.map((ip) => parseIp(ip)?.sortKey ?? '');
  t.same([...keys6].sort(), keys6);
});

t.test('ipBytes gives network-order bytes', async (t) => {
  const v4 = parseIp('192.168.1.2');
  const v6 = parseIp('fd00::102');
  if (!v4 || !v6) throw new Error('fixture');
  t.same([...ipBytes(v4)], [192, 168, 1, 2]);
  t.same([...ipBytes(v6)], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
});

const cidrs: Array<[string, string | null]> = [
  ['10.0.0.0/8', '10.0.0.0/8'],
  ['10.1.2.3/8', '10.0.0.0/8'],
  ['192.168.1.7/24', '192.168.1.0/24'],
  ['10.0.0.1/32', '10.0.0.1/32'],
  ['0.0.0.0/0', '0.0.0.0/0'],
  ['fd00::1/64', 'fd00::/64'],
  ['fd00:1:2:3:4::/63', 'fd00:1:2:2::/63'],
  ['::/0', '::/0'],
  ['10.0.0.0/33', null],
  ['fd00::/129', null],
  ['10.0.0.0/08', null],
  ['10.0.0.0/', null],
  ['10.0.0.0', null],
  ['10.0.0.0/-1', null],
  ['x/8', null],
];

for (const [text, canonical] of cidrs) {
  t.test(`CIDR ${text}`, async (t) => {
    t.equal(parseCidr(text)?.canonical ?? null, canonical);
  });
}

const contains: Array<[string, string, boolean]> = [
  ['10.0.0.0/8', '10.255.1.2', true],
  ['10.0.0.0/8', '11.0.0.0', false],
  ['192.168.1.0/25', '192.168.1.127', true],
  ['192.168.1.0/25', '192.168.1.128', false],
  ['10.0.0.1/32', '10.0.0.1', true],
  ['10.0.0.1/32', '10.0.0.2', false],
  ['0.0.0.0/0', '1.2.3.4', true],
  ['0.0.0.0/0', 'fd00::1', false],
  ['fd00::/64', 'fd00::ffff', true],
  ['fd00::/64', 'fd00:0:0:1::1', false],
  ['fd00::/63', 'fd00:0:0:1::1', true],
  ['::/0', '10.0.0.1', false],
];

for (const [cidr, ip, expected] of contains) {
  t.test(`${cidr} contains ${ip}: ${expected}`, async (t) => {
    const c = parseCidr(cidr);
    const a = parseIp(ip);
    if (!c || !a) throw new Error('fixture');
    t.equal(cidrContains(c, a), expected);
  });
}

t.test('loopback', async (t) => {
  const cases: Array<[string, boolean]> = [['127.0.0.1', true], ['127.255.0.1', true], ['128.0.0.1', false], ['::1', true], ['::2', false], ['10.0.0.1', false]];
  for (const [ip, expected] of cases) {
    const parsed = parseIp(ip);
    if (!parsed) throw new Error('fixture');
    t.equal(isLoopback(parsed), expected, ip);
  }
});
