// The agent bench (bench/agent-scale.ts) at tiny scale, so it cannot rot: the real agent starts
// against the fake API server, programs every service port of the synthetic cluster, follows
// each change, and everything it made is removed. Timing is not asserted (docs/benchmarks.md), nor
// RSS: under tap, @tapjs/processinfo puts its loader into every child's NODE_OPTIONS.
import { readdirSync } from 'node:fs';
import t from 'tap';
import { formatAgentScale, measureAgentScale } from '../../bench/agent-scale.js';
import { ClusterState } from '../../bench/cluster.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';

t.test('the real agent at tiny scale: programmed, follows changes, measured, nothing left', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const pinsBefore = new Set(readdirSync('/sys/fs/bpf'));
  const r = await measureAgentScale({ services: 30, endpoints: 3, changes: 4, restMs: 300 });
  t.comment(formatAgentScale(r));
  const expected = new ClusterState(30, 3).expected();
  t.equal(r.firstSync.servicePorts, expected.servicePorts, `every service port of 30 Services (${expected.servicePorts}) programmed by the first apply`);
  t.ok(r.firstSync.writes > 38, `map elements written (${r.firstSync.writes})`);
  t.ok(r.startToProgrammedMs > r.firstSync.durationMs, 'process start → programmed includes the first sync');
  t.equal(r.changes.count, 4, 'one latency per change');
  t.ok(r.changes.latencyMs.min > 0 && r.changes.latencyMs.min <= r.changes.latencyMs.p99, 'ordered, positive latencies');
  for (const [name, v] of Object.entries(r.rss)) t.ok(Number.isFinite(v) && v > 0, `rss.${name} is a positive number (${v})`);
  t.ok(r.rss.peak >= r.rss.programmed, 'the peak is at least any sample');
  // Only this process's runs: another test file running beside this one (tap runs files in
  // parallel) has pin directories of its own.
  const leftovers = readdirSync('/sys/fs/bpf').filter((p) => !pinsBefore.has(p) && TestbedRun.startedHere.has(p.slice('sluice-test-'.length)));
  t.same(leftovers, [], 'no pin directory left');
});
