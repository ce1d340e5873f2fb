// Issue 4's 'see it work' command, as CI runs it: the demo (dist/src/demo/demo.js, what
// `npm run demo` ends in) runs non-interactively; its output shows both paths, the pods that
// answered, the client address they saw and the VIP the client saw, the scale-down; and it
// leaves nothing behind: no namespace, cgroup, pin directory, lease, work directory or process.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { BPFFS_ROOT, removePinDir } from '../../src/testbed/bpffs.js';
import { cgroup2Mount, removeCgroupTree } from '../../src/testbed/cgroup.js';
import { deleteNetns, listNetns } from '../../src/testbed/netns.js';
import { runDirName } from '../../src/testbed/names.js';
import { LEASE_DIR } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { assertBuilt, DEMO_JS } from './agent-bed.js';

const VIP = '10.96.0.10';
const CLIENT = '10.244.0.10';
const TIMEOUT_MS = 150_000;

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runDemo(): Promise<DemoRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO_JS], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    // On a hang: SIGTERM first (the demo cleans up on it), SIGKILL if that does not end it.
    const term = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS);
    const kill = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS + 20_000);
    child.once('exit', (code, signal) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Pids whose command line mentions `needle` (the demo's agent names its pin dir and cgroup). */
function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Lines between the line matching `start` and the next blank line. */
function section(lines: string[], start: RegExp): string[] {
  const i = lines.findIndex((l) => start.test(l));
  if (i < 0) return [];
  const end = lines.findIndex((l, j) => j > i && l.trim() === '');
  return lines.slice(i + 1, end < 0 ? undefined : end).map((l) => l.trim());
}

t.test('the demo runs non-interactively, shows Sluice working, and leaves nothing behind', async (t) => {
  if (!(await requirePrivileges(t))) return;
  assertBuilt();
  const r = await runDemo();
  const out = r.stdout;
  const lines = out.split('\n');
  const prefix = /node namespace slt-(sl[0-9a-f]{4})-node/.exec(out)?.[1];
  const workDir = /has programmed (\/\S+)\/manifests/.exec(out)?.[1];
  // Whatever happened, remove what a failed demo may have left (after recording it below).
  const leftovers = () => {
    if (!prefix) return Promise.resolve({ netns: [], paths: [], pids: [] } as { netns: string[]; paths: string[]; pids: number[] });
    return listNetns().then((all) => ({
      netns: all.filter((n) => n.startsWith(`slt-${prefix}-`)),
      paths: [join(cgroup2Mount(), runDirName(prefix)), join(BPFFS_ROOT, runDirName(prefix)), join(LEASE_DIR, prefix), ...(workDir ? [workDir] : [])].filter((p) => existsSync(p)),
      pids: pidsMentioning(runDirName(prefix)),
    }));
  };
  t.teardown(async () => {
    const left = await leftovers();
    for (const pid of left.pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const ns of left.netns) await deleteNetns(ns);
    if (!prefix) return;
    await removeCgroupTree(join(cgroup2Mount(), runDirName(prefix))).catch(() => undefined);
    await removePinDir(join(BPFFS_ROOT, runDirName(prefix))).catch(() => undefined);
    await rm(join(LEASE_DIR, prefix), { force: true });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  t.equal(r.code, 0, 'the demo exits 0', { stderr: r.stderr, signal: r.signal, stdout: out });
  t.equal(r.stderr.trim(), '', 'nothing on stderr');
  t.ok(prefix, 'it names its sandbox (node namespace slt-<prefix>-node)');
  t.equal(lines.filter(Boolean).at(-1), 'Demo finished.', 'the last line is "Demo finished."');
  t.notMatch(out, /FAILED/, 'no request failed');

  const connectTime = section(lines, /^Connect-time load balancing/);
  const tcp = connectTime.filter((l) => / TCP /.test(l));
  const udp = connectTime.filter((l) => / UDP /.test(l));
  t.equal(tcp.length, 6, 'connect-time: six TCP requests', { connectTime });
  t.equal(udp.length, 2, 'connect-time: two UDP requests', { connectTime });
  const answered = /→ answered by (web-a|web-b), which saw client (\S+):\d+; (getpeername|recvfrom) says (\S+)/;
  for (const l of tcp) {
    const m = answered.exec(l);
    t.ok(m && m[2] === CLIENT && m[3] === 'getpeername' && m[4] === `${VIP}:80`, `connect-time TCP: answered by a web pod that saw ${CLIENT}; getpeername says ${VIP}:80`, { line: l });
  }
  for (const l of udp) {
    const m = answered.exec(l);
    t.ok(m && m[2] === CLIENT && m[3] === 'recvfrom' && m[4] === `${VIP}:53`, `connect-time UDP: answered by a web pod that saw ${CLIENT}; recvfrom says ${VIP}:53`, { line: l });
  }
  const tcPath = section(lines, /^TC path/).filter((l) => / TCP /.test(l));
  t.equal(tcPath.length, 4, 'TC path: four TCP requests', { tcPath });
  for (const l of tcPath) {
    const m = answered.exec(l);
    t.ok(m && m[2] === CLIENT && m[4] === `${VIP}:80`, `TC path: answered by a web pod that saw ${CLIENT}`, { line: l });
  }
  // 12 answers from 2 pods: both show up unless the balancer is broken (or with odds of 1 in 2048).
  const pods = new Set([...tcp, ...udp, ...tcPath].map((l) => answered.exec(l)?.[1]));
  t.same([...pods].sort(), ['web-a', 'web-b'], 'both web pods answered before the scale-down');

  t.match(out, /sluicectl services:\n\s+SERVICE/, 'it shows sluicectl services');
  t.match(out, /demo\/echo:http\/TCP\/IPv4\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s+10\.96\.0\.10:80\s+ClusterIP/, 'with the ClusterIP frontend (svc id, backend id, counts, flags)');
  const after = section(lines, /^Scaling down/).filter((l) => / TCP /.test(l));
  t.equal(after.length, 4, 'scale-down: four requests after web-a left', { after });
  t.ok(after.every((l) => answered.exec(l)?.[1] === 'web-b'), 'scale-down: all answered by web-b', { after });
  t.match(out, /Cleaning up: agent stopped, programs detached, pins, namespaces and cgroup removed\./, 'it says it cleans up');

  const left = await leftovers();
  t.same(left.netns, [], 'no network namespace of the demo left');
  t.same(left.paths, [], 'no cgroup, pin directory, lease or work directory of the demo left');
  t.same(left.pids, [], 'no process of the demo left (agent, echo servers)');
});
