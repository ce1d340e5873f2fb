// The host side of the kernel matrix (docs/kernels.md): fetch Debian's cloud kernels
// (scripts/kernel-matrix/fetch-kernels.sh), build one initramfs per kernel
// (build-initramfs.sh), boot each in qemu (TCG: KVM is not available on nested CI machines) and
// read the guest's SLUICE-MATRIX-RESULT line from the serial console.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPackageRoot } from '../../bpf/native.js';
import { run as runCommand } from '../exec.js';
import type { GuestResult } from './guest.js';
import { RESULT_MARK } from './guest.js';

// no_timer_check: under TCG on a busy host the kernel's IO-APIC timer check can miss its ticks
// and panic ("IO-APIC + timer doesn't work!"); the emulated timer works, the check is skipped.

/** Debian suites booted by default: 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie). */
export const DEFAULT_SUITES = ['bullseye', 'bookworm', 'trixie'] as const;

export interface FetchedKernel {
  suite: string;
  release: string;
  /** The extracted package: boot/vmlinuz-<release>, modules/. */
  root: string;
}

const script = (name: string) => fromPackageRoot('scripts', 'kernel-matrix', name);

/** Downloads (or finds cached) the suites' kernels. Throws naming the suite and step that failed. */
export async function fetchKernels(suites: readonly string[]): Promise<FetchedKernel[]> {
  const res = await runCommand(['bash', script('fetch-kernels.sh'), ...suites], { allowFailure: true, timeoutMs: 15 * 60_000 });
  if (res.code !== 0) throw new Error(`kernel download failed: ${res.stderr.trim() || res.stdout.trim()}`);
  return res.stdout.trim().split('\n').map((line) => {
    const [suite, release, root] = line.split(' ');
    if (!suite || !release || !root) throw new Error(`fetch-kernels.sh printed an unexpected line: ${line}`);
    return { suite, release, root };
  });
}

export interface BootResult {
  kernel: FetchedKernel;
  /** The guest's report, or null when it printed none (see console). */
  result: (GuestResult & { fatal?: string }) | null;
  /** The serial console, for failure messages. */
  console: string;
  durationMs: number;
}

/** The last `lines` lines of a console log. */
export function consoleTail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Parses the guest's result line out of a console log. */
export function parseGuestResult(consoleText: string): (GuestResult & { fatal?: string }) | null {
  const line = consoleText.split('\n').reverse().find((l) => l.startsWith(RESULT_MARK));
  if (!line) return null;
  return JSON.parse(line.slice(RESULT_MARK.length).trim()) as GuestResult & { fatal?: string };
}

/**
 * Builds the kernel's initramfs (the project part once per work dir) and boots it; the VM powers
 * itself off when the check is done. Killed after `timeoutMs`.
 */
export async function bootKernel(kernel: FetchedKernel, work: string, timeoutMs: number): Promise<BootResult> {
  const initrd = join(work, `${kernel.suite}.cpio`);
  const build = await runCommand(['bash', script('build-initramfs.sh'), fromPackageRoot(), kernel.root, kernel.release, initrd], { allowFailure: true, timeoutMs: 10 * 60_000 });
  if (build.code !== 0) throw new Error(`initramfs for ${kernel.suite} (${kernel.release}) failed: ${build.stderr.trim()}`);
  const start = Date.now();
  const argv = [
    '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '2048', '-nodefaults', '-no-reboot', '-display', 'none', '-serial', 'stdio',
    '-kernel', join(kernel.root, 'boot', `vmlinuz-${kernel.release}`), '-initrd', initrd,
    '-append', 'console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4 no_timer_check',
  ];
  let consoleText = '';
  const child = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (c: Buffer) => { consoleText += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { consoleText += c.toString(); });
  const timer = setTimeout(() => {
    consoleText += `\n[matrix: killed qemu after ${timeoutMs} ms]\n`;
    child.kill('SIGKILL');
  }, timeoutMs);
  await new Promise<void>((resolve) => {
    child.once('error', (err) => { consoleText += `\n[matrix: qemu did not start: ${err.message}]\n`; resolve(); });
    child.once('exit', () => resolve());
  });
  clearTimeout(timer);
  await rm(initrd, { force: true });
  await writeFile(join(work, `${kernel.suite}.console.log`), consoleText);
  let result: BootResult['result'] = null;
  try {
    result = parseGuestResult(consoleText);
  } catch (err) {
    consoleText += `\n[matrix: unreadable result line: ${(err as Error).message}]\n`;
  }
  return { kernel, result, console: consoleText, durationMs: Date.now() - start };
}

/** A work directory for one matrix run (initramfs images, console logs). */
export function matrixWorkDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sluice-kernel-matrix-'));
}

/** `major.minor` of a release string as one comparable number (5.10 → 510, 6.12 → 612). */
export function kernelVersion(release: string): number {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw new Error(`not a kernel release: ${release}`);
  return Number(m[1]) * 100 + Number(m[2]);
}
