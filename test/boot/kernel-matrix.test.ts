// The kernel matrix (docs/kernels.md): Debian's cloud kernels 5.10, 6.1 and 6.12 booted in qemu
// (TCG), each running src/testbed/kernel-matrix/guest.ts: every object loads or is reported as
// an optional feature the kernel lacks, and the real agent serves ClusterIP traffic on both paths,
// refuses a service without endpoints and shows the degraded features in `sluicectl status`.
// The expectations are the supported behaviour per kernel version, not what today's objects do.
//
// SLUICE_MATRIX_SUITES=bookworm,trixie picks suites (default all three). Without qemu this test
// skips, except under CI=true, where a kernel the matrix cannot run fails it (so does a failed
// download, naming what failed).
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import t from 'tap';
import { bootKernel, DEFAULT_SUITES, fetchKernels, matrixWorkDir } from '../../src/testbed/kernel-matrix/host.js';
import { checkKernel } from '../kernels/expectations.js';
import { assertBuilt } from '../e2e/agent-bed.js';

const CI = process.env.CI === 'true';
const suites = (process.env.SLUICE_MATRIX_SUITES ?? DEFAULT_SUITES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
/** Per kernel: boot, agent start under TCG, a dozen node processes. Generous for a loaded CI. */
const BOOT_TIMEOUT_MS = 10 * 60_000;

t.setTimeout(suites.length * (BOOT_TIMEOUT_MS + 90_000) + 15 * 60_000);

function missingTools(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const tool of ['qemu-system-x86_64', 'cpio', 'depmod', 'modprobe', 'apt-get', 'dpkg-deb']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (run scripts/setup.sh)`;
    }
  }
  return null;
}

t.test('kernel matrix', async (tt) => {
  const problem = missingTools();
  if (problem) {
    if (CI) tt.fail(`the kernel matrix cannot run under CI: ${problem}`);
    else tt.comment(`skipping the kernel matrix: ${problem}`);
    return;
  }
  assertBuilt();
  let kernels;
  try {
    kernels = await fetchKernels(suites);
  } catch (err) {
    tt.fail((err as Error).message);
    return;
  }
  tt.same(kernels.map((k) => k.suite), suites, 'every suite has a kernel');
  const work = await matrixWorkDir();
  tt.teardown(() => rm(work, { recursive: true, force: true }));
  for (const kernel of kernels) {
    await tt.test(`${kernel.suite} (${kernel.release})`, async (kt) => {
      checkKernel(kt, await bootKernel(kernel, work, BOOT_TIMEOUT_MS));
    });
  }
});
