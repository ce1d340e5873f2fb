// The flows bench at small sizes, so it cannot rot: real sl_ct4 maps, the planted flows of the
// removed endpoint deleted every round and nothing else, numbers present, nothing left behind.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { formatFlowCleanup, measureFlowCleanup } from '../../bench/flow-cleanup.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';

t.test('flow cleanup beside a filled conntrack table', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const pinsBefore = new Set(readdirSync('/sys/fs/bpf'));
  const rows = await measureFlowCleanup([1000, 5000]);
  t.comment(formatFlowCleanup(rows));
  t.same(rows.map((r) => r.ctEntries), [1000, 5000]);
  for (const r of rows) {
    t.equal(r.deletedPerRound, 40, `${r.ctEntries}: both directions of the 20 planted UDP flows, and only those`);
    for (const v of [r.udpRemovalMs, r.tcpRemovalMs, r.decodeAllMs]) t.ok(Number.isFinite(v) && v >= 0);
  }
  // Only this process's runs: a test file running beside this one has pin directories of its own.
  const left = readdirSync('/sys/fs/bpf').filter((name) => !pinsBefore.has(name) && TestbedRun.startedHere.has(name.slice('sluice-test-'.length)));
  t.ok(TestbedRun.startedHere.size > 0, 'the bench ran in a test-bed run of its own');
  t.same(left, [], 'its pin directory is gone');
});
