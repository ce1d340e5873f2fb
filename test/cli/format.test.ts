import t from 'tap';
import { renderKeyValues, renderTable } from '../../src/cli/format-table.js';
import { formatServices, formatStatus, headerOf } from '../../src/cli/format-views.js';
import type { StatusView } from '../../src/admin/types.js';
import { parseTable } from './table-parse.js';

t.test('tables: aligned columns, numbers right-aligned, no trailing blanks', async (t) => {
  const text = renderTable(
    [{ header: 'NAME' }, { header: 'COUNT', right: true }, { header: 'OK' }, { header: 'NOTE' }],
    [['a', 5, true, ''], ['longer-name', 12345, false, null], ['b', 0, undefined, 'x y']],
  );
  t.equal(text, [
    'NAME         COUNT  OK   NOTE',
    'a                5  yes',
    'longer-name  12345  no',
    'b                0       x y',
    '',
  ].join('\n'));
  t.same(parseTable(text).rows[2], { NAME: 'b', COUNT: '0', OK: '', NOTE: 'x y' }, 'the test parser reads it back');
  t.equal(renderTable([{ header: 'A' }], []), 'A\n', 'an empty table still has its header');
});

t.test('key-value lists and header names', async (t) => {
  t.equal(renderKeyValues([['version', '1'], ['sync.state', 'synced'], ['empty', '']]), 'version:     1\nsync.state:  synced\nempty:\n');
  t.equal(headerOf('svcId'), 'SVC_ID');
  t.equal(headerOf('affinityTimeoutSec'), 'AFFINITY_TIMEOUT_SEC');
  t.equal(headerOf('nodeIp'), 'NODE_IP');
});

t.test('a service with IPv6 frontends and no backends', async (t) => {
  const text = formatServices({
    services: [{
      key: 'default/v6:/TCP/IPv6', namespace: 'default', name: 'v6', portName: '', protocol: 'TCP', family: 'IPv6', svcId: 9,
      backendId: 3, flags: [], affinityTimeoutSec: 0, frontends: [{ ip: 'fd00::10', port: 80, kind: 'ClusterIP' }],
      clusterCount: 0, localCount: 0, backends: [],
    }],
  });
  t.match(text, /^default\/v6:\/TCP\/IPv6 +9 +3 +0 +0 +- +\[fd00::10\]:80 +ClusterIP +\(none\)$/m);
  t.match(text, /^1 service ports$/m);
});

t.test('status: the kernel features section says what is off and what happens instead', async (t) => {
  const status: StatusView = {
    version: '0.1.0', agentRunning: true, nodeName: 'n', startedAt: '', pinDir: '/sys/fs/bpf/sluice', config: {}, programs: [], errors: [],
    sync: { state: 'synced', sourcesSynced: true, lastSyncAt: null, lastSyncDurationMs: null, syncCount: 1, servicePortsProgrammed: 0 },
    kernel: {
      release: '5.15.0-1079-azure',
      features: [
        { name: 'tc-datapath', state: 'on', what: 'TC', since: '5.10', without: 'nothing works' },
        { name: 'connect-econnrefused', state: 'off', what: 'ECONNREFUSED', since: '5.18', without: 'EPERM instead', reason: 'no bpf_set_retval' },
      ],
    },
  };
  const text = formatStatus(status);
  t.match(text, /\nkernel: +5\.15\.0-1079-azure\n/, 'the release among the head lines');
  t.match(text, /KERNEL FEATURES\nFEATURE +STATE +SINCE +WITHOUT IT\ntc-datapath +on +5\.10\nconnect-econnrefused +off +5\.18 +EPERM instead \(no bpf_set_retval\)\n/);
  t.notMatch(formatStatus({ ...status, kernel: undefined } as StatusView), /KERNEL FEATURES/, 'absent when the agent is down');
});

t.test('status: the objects section says which programs were reused and why the others were loaded', async (t) => {
  const status: StatusView = {
    version: '0.1.0', agentRunning: true, nodeName: 'n', startedAt: '', pinDir: '/sys/fs/bpf/sluice', config: {}, programs: [], errors: [],
    sync: { state: 'synced', sourcesSynced: true, lastSyncAt: null, lastSyncDurationMs: null, syncCount: 1, servicePortsProgrammed: 0 },
    objects: [
      { object: 'tc', identity: '0123456789abcdef', reused: true },
      { object: 'connect', identity: 'fedcba9876543210', reused: false, notReused: 'no programs pinned for this build and configuration' },
    ],
  };
  const text = formatStatus(status);
  t.match(text, /OBJECTS\nOBJECT +IDENTITY +PROGRAMS +NOT REUSED BECAUSE\ntc +0123456789abcdef +reused *\nconnect +fedcba9876543210 +loaded +no programs pinned for this build and configuration\n/);
  t.notMatch(formatStatus({ ...status, objects: undefined } as StatusView), /OBJECTS/, 'absent when the agent is down');
});
