// What every supported kernel must show in the kernel matrix's guest check (docs/kernels.md),
// by kernel version: shared by the VM matrix (matrix.test.ts) and the same check on this
// machine's kernel (guest-on-host.test.ts).
import type { Test } from 'tap';
import type { GuestResult } from '../../src/testbed/kernel-matrix/guest.js';
import { HOST_DSR } from '../../src/testbed/kernel-matrix/guest.js';
import type { BootResult } from '../../src/testbed/kernel-matrix/host.js';
import { consoleTail, kernelVersion } from '../../src/testbed/kernel-matrix/host.js';

function featureState(r: GuestResult, name: string): string | undefined {
  return r.agent.kernel?.features.find((f) => f.name === name)?.state;
}

/** The assertions for one kernel: the supported behaviour on its version. */
export function checkKernel(tt: Test, boot: BootResult): void {
  const { kernel, result: r } = boot;
  tt.comment(`${kernel.suite}: ${kernel.release}, checked in ${Math.round(boot.durationMs / 1000)} s`);
  if (r?.stepsMs) tt.comment(`guest steps: ${Object.entries(r.stepsMs).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ')}`);
  if (!r || r.fatal) {
    tt.fail(`${kernel.suite} (${kernel.release}): the guest check reported no result`, { fatal: r?.fatal, console: consoleTail(boot.console) });
    return;
  }
  const v = kernelVersion(r.release);
  tt.equal(r.release, kernel.release, 'the VM ran the kernel asked for');
  // For the CI log: what each object and feature came to on this kernel, and why.
  for (const [name, o] of Object.entries(r.objects)) tt.comment(`${name}: ${o.loaded ? 'loaded' : `rejected: ${o.error}`} (by the ${o.by})`);
  for (const f of r.agent.kernel?.features ?? []) tt.comment(`feature ${f.name}: ${f.state}${f.reason ? ` (${f.reason})` : ''}`);
  const why = (name: string) => r.objects[name]?.error ?? '';
  // Objects: tc and connect must load everywhere (connect.bpf.o falls back to EPERM without
  // bpf_set_retval); the socket sweep only where bpf_sock_destroy exists.
  tt.ok(r.objects['tc.bpf.o']?.loaded, `tc.bpf.o passes the verifier on ${r.release}`, { error: why('tc.bpf.o') });
  tt.ok(r.objects['connect.bpf.o']?.loaded, `connect.bpf.o passes the verifier on ${r.release}`, { error: why('connect.bpf.o') });
  tt.ok(r.objects['host.bpf.o']?.loaded, `host.bpf.o (both families' external paths, SNAT mode) passes the verifier on ${r.release}`, { error: why('host.bpf.o') });
  tt.ok(r.objects[HOST_DSR]?.loaded, `host.bpf.o in DSR mode (the IPv4 and IPv6 tunnel paths) passes the verifier on ${r.release}`, { error: why(HOST_DSR) });
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
  tt.match(r.agent.statusText ?? '', /\nkernel: +\S+\n[\s\S]*KERNEL FEATURES\n/, 'sluicectl status prints the kernel features');
  for (const f of r.agent.kernel?.features ?? []) {
    if (f.state === 'off') tt.match(r.agent.statusText ?? '', new RegExp(`${f.name}\\s+off\\s+${f.since.replace('.', '\\.')}`), `sluicectl status says ${f.name} is off (needs ${f.since})`);
  }
  // A restart with the same build and flags reuses every object's programs (docs/upgrades.md#restarts).
  const restart = r.agent.restart;
  tt.ok(restart && Object.keys(restart.first).includes('tc') && Object.values(restart.first).every((x) => !x), 'first start: every object loaded', { restart });
  tt.same(restart?.second, Object.fromEntries(Object.keys(restart?.first ?? {}).map((o) => [o, true])), 'restart: every object\'s programs reused', { notReused: restart?.notReused });
  tt.ok(restart?.sameProgramIds, 'restart: every attachment runs the same program id');
  // Traffic: both paths served by the backends, client address kept; no endpoints refused.
  for (const [path, s] of [['connect-time', r.agent.connectTime], ['TC', r.agent.tc]] as const) {
    tt.ok(s && s.ok === 4 && s.failed === 0, `${path} path: every ClusterIP connection answered`, { summary: s });
    tt.ok(s?.pods.every((p) => p === 'web-a' || p === 'web-b') && s.clientIpKept, `${path} path: answered by the web pods, which saw the client's own address`, { summary: s });
  }
  // IPv6: the same Service's twin at an IPv6 ClusterIP, from the same client pod on both paths.
  for (const [path, s] of [['connect-time', r.agent.connectTime6], ['TC', r.agent.tc6]] as const) {
    tt.ok(s && s.ok === 2 && s.failed === 0, `${path} path: every IPv6 ClusterIP connection answered`, { summary: s });
    tt.ok(s?.pods.every((p) => p === 'web-a' || p === 'web-b') && s.clientIpKept, `${path} path (IPv6): answered by the web pods, which saw the client's own IPv6 address`, { summary: s });
  }
  const refusedCode = featureState(r, 'connect-econnrefused') === 'on' ? 'ECONNREFUSED' : 'EPERM';
  tt.same(r.agent.noEndpointsConnectTime?.codes, [refusedCode], `no endpoints, connect-time path: ${refusedCode} (as the features say)`, { summary: r.agent.noEndpointsConnectTime });
  tt.same(r.agent.noEndpointsTc?.codes, ['ECONNREFUSED'], 'no endpoints, TC path: ECONNREFUSED', { summary: r.agent.noEndpointsTc });
}

