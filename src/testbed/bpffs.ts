// A bpffs pin directory per run (`/sys/fs/bpf/sluice-test-<prefix>`), removed with everything
// pinned in it: unpinning the last reference frees maps and detaches pinned links.
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { run } from './exec.js';
import { DIR_PREFIX, runDirName } from './names.js';

export const BPFFS_ROOT = '/sys/fs/bpf';

export function bpffsMounted(mountsText = readFileSync('/proc/mounts', 'utf8')): boolean {
  return mountsText.split('\n').some((l) => {
    const f = l.split(' ');
    return f[1] === BPFFS_ROOT && f[2] === 'bpf';
  });
}

/** Mounts bpffs at /sys/fs/bpf when it is missing (as scripts/setup.sh does). */
export async function ensureBpffs(): Promise<void> {
  if (bpffsMounted()) return;
  await mkdir(BPFFS_ROOT, { recursive: true });
  await run(['mount', '-t', 'bpf', 'bpf', BPFFS_ROOT]);
}

/** Creates the run's pin directory and returns its path. */
export async function createRunPinDir(prefix: string): Promise<string> {
  await ensureBpffs();
  const dir = join(BPFFS_ROOT, runDirName(prefix));
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Removes a pin directory of ours and everything pinned below it. Idempotent. */
export async function removePinDir(dir: string): Promise<void> {
  const normal = normalize(dir);
  if (!normal.startsWith(`${BPFFS_ROOT}/${DIR_PREFIX}`)) {
    throw new Error(`testbed: refusing to remove ${dir}: not inside ${BPFFS_ROOT}/${DIR_PREFIX}*`);
  }
  await rm(normal, { recursive: true, force: true });
}
