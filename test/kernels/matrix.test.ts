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
import type { Test } from 'tap';
import { bootKernel, consoleTail, DEFAULT_SUITES, fetchKernels, kernelVersion, matrixWorkDir } from '../../src/testbed/kernel-matrix/host.js';
import type { BootResult } from '../../src/testbed/kernel-matrix/host.js';
import type { GuestResult } from '../../src/testbed/kernel-matrix/guest.js';
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

function featureState(r: GuestResult, name: string): string | undefined {
  return r.agent.kernel?.features.find((f) => f.name === name)?.state;
}

/** The assertions for one kernel: the supported behaviour on its version. */
function checkKernel(tt: Test, boot: BootResult): void {
  const { kernel, result: r } = boot;
  tt.comment(`${kernel.suite}: ${kernel.release}, ${Math.round(boot.durationMs / 1000)} s in qemu`);
  if (!r || r.fatal) {
    tt.fail(`${kernel.suite} (${kernel.release}): the guest check reported no result`, { fatal: r?.fatal, console: consoleTail(boot.console) });
    return;
  }
  const v = kernelVersion(r.release);
  tt.equal(r.release, kernel.release, 'the VM ran the kernel asked for');
  // For the CI log: what each object and feature came to on this kernel, and why.
  for (const [name, o] of Object.entries(r.objects)) tt.comment(`${name}: ${o.loaded ? 'loaded' : `rejected: ${o.error}`}`);
  for (const f of r.agent.kernel?.features ?? []) tt.comment(`feature ${f.name}: ${f.state}${f.reason ? ` (${f.reason})` : ''}`);
  const why = (name: string) => r.objects[name]?.error ?? '';
  // Objects: tc and connect must load everywhere (connect.bpf.o falls back to EPERM without
  // bpf_set_retval); the socket sweep only where bpf_sock_destroy exists.
  tt.ok(r.objects['tc.bpf.o']?.loaded, `tc.bpf.o passes the verifier on ${r.release}`, { error: why('tc.bpf.o') });
  tt.ok(r.objects['connect.bpf.o']?.loaded, `connect.bpf.o passes the verifier on ${r.release}`, { error: why('connect.bpf.o') });
  tt.equal(r.objects['sockdestroy.bpf.o']?.loaded, v >= 605, `sockdestroy.bpf.o loads iff the kernel has bpf_sock_destroy (6.5)`, { error: why('sockdestroy.bpf.o') });
  // Probes agree with the kernel's version.
  if ('error' in r.probes) tt.fail(`probes failed: ${r.probes.error}`);
  else {
    tt.equal(r.probes.helpers['cgroup_sock_addr/set_retval'], v >= 518, 'probe: bpf_set_retval exists iff Linux >= 5.18');
    tt.equal(r.probes.progTypes.cgroup_sock_addr, true, 'probe: cgroup sock_addr programs');
    tt.equal(r.probes.progTypes.sched_cls, true, 'probe: sched_cls programs');
  }
  // The agent: runs, with every feature the kernel offers, and says what it does without.
  tt.ok(r.agent.synced, 'the agent ran and synced', { error: r.agent.error, logs: r.agent.logs.slice(-10) });
  if (!r.agent.synced) return;
  tt.equal(featureState(r, 'tc-datapath'), 'on', 'status: tc-datapath on');
  tt.equal(featureState(r, 'connect-time-lb'), 'on', 'status: connect-time-lb on');
  tt.equal(featureState(r, 'connect-econnrefused'), v >= 518 ? 'on' : 'off', 'status: connect-econnrefused as the kernel allows (5.18)');
  tt.equal(featureState(r, 'udp-socket-sweep'), v >= 605 ? 'on' : 'off', 'status: udp-socket-sweep as the kernel allows (6.5)');
  tt.match(r.agent.statusText ?? '', /KERNEL FEATURES \(Linux /, 'sluicectl status prints the kernel features');
  for (const f of r.agent.kernel?.features ?? []) {
    if (f.state === 'off') tt.match(r.agent.statusText ?? '', new RegExp(`${f.name}\\s+off\\s+${f.since.replace('.', '\\.')}`), `sluicectl status says ${f.name} is off (needs ${f.since})`);
  }
  // Traffic: both paths served by the backends, client address kept; no endpoints refused.
  for (const [path, s] of [['connect-time', r.agent.connectTime], ['TC', r.agent.tc]] as const) {
    tt.ok(s && s.ok === 4 && s.failed === 0, `${path} path: every ClusterIP connection answered`, { summary: s });
    tt.ok(s?.pods.every((p) => p === 'web-a' || p === 'web-b') && s.clientIpKept, `${path} path: answered by the web pods, which saw the client's own address`, { summary: s });
  }
  const refusedCode = featureState(r, 'connect-econnrefused') === 'on' ? 'ECONNREFUSED' : 'EPERM';
  tt.same(r.agent.noEndpointsConnectTime?.codes, [refusedCode], `no endpoints, connect-time path: ${refusedCode} (as the features say)`, { summary: r.agent.noEndpointsConnectTime });
  tt.same(r.agent.noEndpointsTc?.codes, ['ECONNREFUSED'], 'no endpoints, TC path: ECONNREFUSED', { summary: r.agent.noEndpointsTc });
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
