import t from 'tap';
import {
  assertIfname, assertRunPrefix, hostIfname, IFNAME_MAX, netnsName, newRunPrefix, runDirName, runPrefixOf,
} from '../../src/testbed/names.js';

t.test('run prefixes are sl + 4 hex digits and vary', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const p = newRunPrefix();
    t.match(p, /^sl[0-9a-f]{4}$/);
    seen.add(p);
  }
  t.ok(seen.size > 40, `50 prefixes gave ${seen.size} distinct values`);
  t.throws(() => assertRunPrefix('sl12345'), /run prefix "sl12345"/);
  t.throws(() => assertRunPrefix('xx1234'), /run prefix/);
});

t.test('namespace and directory names carry the distinctive prefixes', async (t) => {
  t.equal(netnsName('sl0a1b', 'pod3'), 'slt-sl0a1b-pod3');
  t.equal(runDirName('sl0a1b'), 'sluice-test-sl0a1b');
  t.throws(() => netnsName('sl0a1b', '../x'), /namespace name "..\/x"/);
  t.throws(() => netnsName('sl0a1b', ''), /namespace name ""/);
});

t.test('runPrefixOf recognises only our names', async (t) => {
  t.equal(runPrefixOf('slt-sl0a1b-pod3'), 'sl0a1b');
  t.equal(runPrefixOf('sluice-test-sl0a1b'), 'sl0a1b');
  t.equal(runPrefixOf('sluice-test-probe-123'), null);
  t.equal(runPrefixOf('slt-other'), null);
  t.equal(runPrefixOf('cni-1234'), null);
  t.equal(runPrefixOf('xslt-sl0a1b-pod3'), null);
});

t.test('interface names respect the 15-character limit', async (t) => {
  const name = hostIfname('sl0a1b', 'p', 999);
  t.equal(name, 'vethsl0a1bp999');
  t.ok(name.length <= IFNAME_MAX);
  t.throws(() => hostIfname('sl0a1b', 'p', 1234567), /interface name "vethsl0a1bp1234567"/);
  t.throws(() => hostIfname('sl0a1b', 'pp', 1), /tag "pp"/);
  t.throws(() => hostIfname('sl0a1b', 'p', -1), /interface number -1/);
  t.throws(() => assertIfname('eth 0'), /interface name "eth 0"/);
  t.doesNotThrow(() => assertIfname('eth0'));
});
