// The kernel matrix's guest check (src/testbed/kernel-matrix/guest.ts) run on this machine's own
// kernel, with the same per-version expectations as the VMs: a quick proof that the check itself
// works (objects, probes, the agent on both paths, status) before it is booted in qemu, and the
// newest kernel of the matrix (this machine's).
import { release } from 'node:os';
import t from 'tap';
import { runGuestCheck } from '../../src/testbed/kernel-matrix/guest.js';
import { assertBuilt } from '../e2e/agent-bed.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { checkKernel } from './expectations.js';

t.test(`the guest check on this kernel (${release()})`, async (t) => {
  if (!(await requirePrivileges(t))) return;
  assertBuilt();
  const start = Date.now();
  const result = await runGuestCheck();
  checkKernel(t, { kernel: { suite: 'host', release: release(), root: '/' }, result, console: JSON.stringify(result), durationMs: Date.now() - start });
});
