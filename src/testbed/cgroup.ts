// A cgroup v2 subtree per run (`<cgroup2 mount>/sluice-test-<prefix>/...`) for the test bed's
// "pod" processes: cgroup BPF programs are attached here, never to the root cgroup.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { DIR_PREFIX, runDirName } from './names.js';
import { netnsArgv } from './netns.js';

/** Undoes the octal escapes (\040 for space, ...) of /proc/mounts fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Where cgroup v2 is mounted, from /proc/mounts: /sys/fs/cgroup on a unified host (a real
 * node), /sys/fs/cgroup/unified on a hybrid one. Throws when there is no cgroup2 mount.
 */
export function cgroup2Mount(mountsText = readFileSync('/proc/mounts', 'utf8')): string {
  const mounts = mountsText
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup2' && f[1] !== undefined)
    .map((f) => unescapeMountField(f[1] as string));
  if (mounts.length === 0) throw new Error('testbed: no cgroup2 mount in /proc/mounts (run scripts/setup.sh)');
  return mounts.find((m) => m === '/sys/fs/cgroup') ?? (mounts[0] as string);
}

/** Refuses any path that is not inside a `sluice-test-*` directory directly below the mount. */
function assertOurs(path: string, mount: string): void {
  const rel = relative(mount, path);
  const top = rel.split(sep)[0] ?? '';
  if (rel.startsWith('..') || !top.startsWith(DIR_PREFIX)) {
    throw new Error(`testbed: refusing to touch cgroup ${path}: not inside ${mount}/${DIR_PREFIX}*`);
  }
}

/** Creates (if needed) the run's cgroup `<mount>/sluice-test-<prefix>` and returns its path. */
export async function createRunCgroup(prefix: string, mount = cgroup2Mount()): Promise<string> {
  const path = join(mount, runDirName(prefix));
  await mkdir(path, { recursive: true });
  return path;
}

/** Creates a child cgroup `name` below `parent` (one of ours) and returns its path. */
export async function createCgroup(parent: string, name: string, mount = cgroup2Mount()): Promise<string> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === '.' || name === '..') {
    throw new Error(`testbed: cgroup name "${name}" is not a plain name`);
  }
  const path = join(parent, name);
  assertOurs(path, mount);
  await mkdir(path, { recursive: true });
  return path;
}

export async function movePid(cgroup: string, pid: number, mount = cgroup2Mount()): Promise<void> {
  assertOurs(cgroup, mount);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`testbed: cannot move pid ${pid} into ${cgroup}`);
  await writeFile(join(cgroup, 'cgroup.procs'), `${pid}\n`);
}

/** Pids directly in `cgroup` (not its children). */
export async function cgroupPids(cgroup: string): Promise<number[]> {
  const text = await readFile(join(cgroup, 'cgroup.procs'), 'utf8');
  return text.split('\n').filter(Boolean).map(Number);
}

// The wrapper enters the cgroup itself, before exec, so the command and all its children start
// inside it (no window where the command runs outside). Paths are positional arguments.
const ENTER_CGROUP_SCRIPT = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"';

/** argv that runs `argv` inside `cgroup` (and inside network namespace `ns` when given). */
export function cgroupArgv(cgroup: string, argv: readonly string[], ns?: string, mount = cgroup2Mount()): string[] {
  assertOurs(cgroup, mount);
  if (argv.length === 0) throw new Error('testbed: cgroupArgv needs a command');
  const inner = ns === undefined ? [...argv] : netnsArgv(ns, argv);
  return ['sh', '-c', ENTER_CGROUP_SCRIPT, 'sh', cgroup, ...inner];
}

/** Starts `argv` inside `cgroup` and, when given, network namespace `ns`. */
export function spawnInCgroup(
  cgroup: string, argv: readonly string[], ns?: string, opts: SpawnOptions = {},
): ChildProcess {
  const [file, ...args] = cgroupArgv(cgroup, argv, ns);
  return spawn(file as string, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Kills every process in `cgroup` and its children, waits until they are gone, removes it. */
export async function removeCgroupTree(cgroup: string, mount = cgroup2Mount(), timeoutMs = 5_000): Promise<void> {
  assertOurs(cgroup, mount);
  if (!existsSync(cgroup)) return;
  for (const entry of await readdir(cgroup, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeCgroupTree(join(cgroup, entry.name), mount, timeoutMs);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = await cgroupPids(cgroup).catch(() => [] as number[]);
    if (pids.length === 0) break;
    if (existsSync(join(cgroup, 'cgroup.kill'))) {
      await writeFile(join(cgroup, 'cgroup.kill'), '1\n');
    } else {
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    if (Date.now() > deadline) throw new Error(`testbed: processes ${pids.join(',')} in ${cgroup} would not die`);
    await sleep(20);
  }
  // A killed process leaves the cgroup slightly after cgroup.procs stops listing it: retry EBUSY.
  for (;;) {
    try {
      await rmdir(cgroup);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) {
        throw new Error(`testbed: cannot remove cgroup ${cgroup}: ${(err as Error).message}`);
      }
      await sleep(20);
    }
  }
}
