import t from 'tap';
import type { Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { requirePrivileges } from '../helpers/privileges.js';
import { siblingScript } from '../helpers/sibling-script.js';
import { createRunPinDir, removePinDir } from '../../src/testbed/bpffs.js';
import { newRunPrefix } from '../../src/testbed/names.js';
import { listNetns } from '../../src/testbed/netns.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import { LEASE_DIR, TestbedRun } from '../../src/testbed/run.js';
import { sweepLeftovers } from '../../src/testbed/sweeper.js';
import type { ChildProcess } from 'node:child_process';

interface Made {
  prefix: string;
  netns: string[];
  cgroup: string;
  pinDir: string;
  pinnedMap: string;
  sleeperPid: number;
  /** A child started with boundToParent (as agents are). */
  boundPid: number;
  /** File removed by a second cleanup registry of the fixture. */
  marker: string;
}

const fixture = siblingScript(import.meta.url, 'fixtures/abandoned-run');

/** Starts the fixture and resolves with what it built, once it has built it. */
function startFixture(mode: string): Promise<{ child: ChildProcess; made: Made }> {
  const [file, ...args] = nodeArgv(fixture, [mode]);
  const child = spawn(file as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, made: JSON.parse(out.slice(0, nl)) as Made });
    });
    child.once('exit', (code) => reject(new Error(`fixture ${mode} exited ${code} early: ${err}`)));
  });
}

const exitOf = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

/** Running (a zombie waiting for a reaper that never comes, in a container, counts as dead). */
const pidAlive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

async function assertAllGone(t: Test, made: Made) {
  const ns = await listNetns();
  t.same(made.netns.filter((n) => ns.includes(n)), [], 'no namespace left');
  t.notOk(existsSync(made.cgroup), 'cgroup subtree gone');
  t.notOk(existsSync(made.pinDir), 'pin dir gone');
  t.notOk(existsSync(join(LEASE_DIR, made.prefix)), 'lease gone');
  for (let i = 0; i < 50 && pidAlive(made.sleeperPid); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk(pidAlive(made.sleeperPid), 'process that was in the cgroup is dead');
}

t.test('an uncaught exception cleans everything up and exits non-zero', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const { child, made } = await startFixture('throw');
  t.teardown(() => void child.kill('SIGKILL'));
  t.ok(existsSync(made.pinnedMap), 'the fixture really pinned a map');
  t.same(await exitOf(child), { code: 1, signal: null });
  await assertAllGone(t, made);
  t.notOk(existsSync(made.marker), 'the second registry ran too');
});

t.test('SIGTERM and SIGINT clean everything up and exit 128+signal', async (t) => {
  if (!(await requirePrivileges(t))) return;
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const { child, made } = await startFixture('wait');
    t.teardown(() => void child.kill('SIGKILL'));
    t.ok(existsSync(made.cgroup), `${signal}: the fixture built its cgroup`);
    child.kill(signal);
    t.same(await exitOf(child), { code, signal: null });
    await assertAllGone(t, made);
    t.notOk(existsSync(made.marker), `${signal}: the second registry ran too`);
  }
});

t.test('the sweeper removes what a crashed run left, and leaves live runs alone', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const live = await TestbedRun.start();
  t.teardown(() => live.destroy());
  const liveNs = await live.netns('alive');
  const liveCg = await live.cgroup();
  const livePins = await live.pinDir();

  const { child, made } = await startFixture('hang');
  child.kill('SIGKILL');
  await exitOf(child);
  t.teardown(() => rm(made.marker, { force: true }));
  t.ok(existsSync(made.marker), 'a SIGKILLed run runs no cleanup at all');
  t.ok(made.netns.every((n) => n.startsWith(`slt-${made.prefix}-`)), 'crashed run used its prefix');
  t.ok((await listNetns()).includes(made.netns[0] as string), 'a SIGKILLed run leaves its namespaces');
  t.ok(existsSync(made.pinnedMap), 'and its pins');
  t.ok(pidAlive(made.sleeperPid), 'and its processes');
  // An agent-like child bound to its parent (boundToParent) dies with it: no live orphan.
  for (let i = 0; i < 100 && pidAlive(made.boundPid); i++) await new Promise((r) => setTimeout(r, 20));
  t.notOk(pidAlive(made.boundPid), 'but a child started with boundToParent died with the run');

  // Restricted to the two runs of this test, so parallel test files are never disturbed.
  const only = (p: string) => p === made.prefix || p === live.prefix;
  const dry = await sweepLeftovers({ dryRun: true, only });
  t.ok(dry.netns.includes(made.netns[0] as string), 'dry run reports the leftovers');
  t.ok((await listNetns()).includes(made.netns[0] as string), 'but removes nothing');

  const report = await sweepLeftovers({ only });
  t.same(report.errors, []);
  t.same(report.netns.sort(), [...made.netns].sort());
  t.ok(report.cgroups.includes(made.cgroup), 'cgroup swept');
  t.ok(report.pinDirs.includes(made.pinDir), 'pin dir swept');
  t.ok(report.leases.includes(made.prefix), 'stale lease swept');
  t.ok(report.liveRuns.includes(live.prefix), 'our own run is recognised as alive');
  await assertAllGone(t, made);

  t.ok((await listNetns()).includes(liveNs), 'live namespace untouched');
  t.ok(existsSync(liveCg) && existsSync(livePins), 'live cgroup and pins untouched');
});

t.test('lease-less leftovers are removed only once they have been idle a while', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const prefix = newRunPrefix();
  const pinDir = await createRunPinDir(prefix);
  t.teardown(() => removePinDir(pinDir));
  const mine = (p: string) => p === prefix;

  const young = await sweepLeftovers({ only: mine });
  t.same(young.recent, [pinDir], 'a fresh lease-less pin dir counts as in use');
  t.ok(existsSync(pinDir));

  const old = await sweepLeftovers({ only: mine, unleasedMinAgeMs: 0 });
  t.same(old.pinDirs, [pinDir], 'once idle long enough it is swept');
  t.notOk(existsSync(pinDir));
});

t.test('the sweep command prints its report and refuses unknown arguments', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const script = siblingScript(import.meta.url, '../../src/testbed/sweep-main');
  const dry = await runCommand(nodeArgv(script, ['--dry-run']));
  const report = JSON.parse(dry.stdout) as Record<string, unknown>;
  t.same(Object.keys(report).sort(), ['cgroups', 'errors', 'leases', 'liveRuns', 'netns', 'pinDirs', 'recent']);
  const bad = await runCommand(nodeArgv(script, ['--force']), { allowFailure: true });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown argument --force/);
});
