// Kernel features (src/datapath/kernel-features.ts): the report built from probes and load
// outcomes for kernels we do not run on here (5.10, 6.1 shapes), libbpf's real probes on this
// kernel, the helper table checked against the compiled objects, and a datapath whose
// connect.bpf.o the kernel rejects: it loads anyway, with connect-time load balancing off and
// the verifier's verdict as the reason (the VM matrix, test/boot/kernel-matrix.test.ts, proves it on real kernels).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { openBpfObject } from '../../src/bpf/loader.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { Datapath } from '../../src/datapath/datapath.js';
import {
  FEATURE_NAMES, kernelFeatures, loadErrorSummary, OBJECT_HELPERS, PROG_TYPES, probeKernel, SET_RETVAL,
} from '../../src/datapath/kernel-features.js';
import type { KernelProbes } from '../../src/datapath/kernel-features.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { objectDirWithRejectedConnect, UNKNOWN_HELPER } from '../helpers/broken-object.js';

const BPF = (name: string) => fromPackageRoot('dist', 'bpf', name);

/** Probes of a kernel that has everything but the helpers named. */
function probesWithout(...missing: string[]): KernelProbes {
  const helpers: KernelProbes['helpers'] = {};
  for (const { progType, helpers: hs } of Object.values(OBJECT_HELPERS)) for (const h of hs) helpers[`${progType}/${h.name}`] = !missing.includes(h.name);
  helpers[`cgroup_sock_addr/${SET_RETVAL.name}`] = !missing.includes(SET_RETVAL.name);
  return { progTypes: { sched_cls: true, cgroup_sock_addr: true }, helpers };
}

const stateOf = (kf: ReturnType<typeof kernelFeatures>) => Object.fromEntries(kf.features.map((f) => [f.name, f.state]));

t.test('the report, for kernels of each shape', async (t) => {
  const loaded = { loaded: true } as const;
  const full = kernelFeatures({ release: '6.12.0', probes: probesWithout(), tc: loaded, connect: loaded, udpSocketSweep: loaded, external: loaded });
  t.same(full.features.map((f) => f.name), [...FEATURE_NAMES], 'every feature, in table order');
  t.same(stateOf(full), { 'tc-datapath': 'on', 'connect-time-lb': 'on', 'connect-econnrefused': 'on', 'udp-socket-sweep': 'on', 'external-traffic': 'on' }, '6.12: everything on');

  const sweepError = 'this kernel has no bpf_sock_destroy kfunc (needs Linux 6.5 or newer)';
  const v61 = kernelFeatures({ release: '6.1.0', probes: probesWithout(), tc: loaded, connect: loaded, udpSocketSweep: { loaded: false, error: sweepError } });
  t.same(stateOf(v61), { 'tc-datapath': 'on', 'connect-time-lb': 'on', 'connect-econnrefused': 'on', 'udp-socket-sweep': 'off', 'external-traffic': 'disabled' }, '6.1: no socket sweep');
  t.equal(v61.features.find((f) => f.name === 'udp-socket-sweep')?.reason, sweepError, 'the sweep says why');

  // 5.10 once connect.bpf.o falls back to EPERM: connect-time on, ECONNREFUSED off.
  const v510 = kernelFeatures({ release: '5.10.0', probes: probesWithout('set_retval'), tc: loaded, connect: loaded, udpSocketSweep: { loaded: false, error: sweepError } });
  t.same(stateOf(v510), { 'tc-datapath': 'on', 'connect-time-lb': 'on', 'connect-econnrefused': 'off', 'udp-socket-sweep': 'off', 'external-traffic': 'disabled' }, '5.10: EPERM instead of ECONNREFUSED');
  const refused = v510.features.find((f) => f.name === 'connect-econnrefused');
  t.match(refused, { since: '5.18', without: /EPERM/, reason: /no bpf_set_retval/ }, 'says what happens instead, and why');

  // 5.10 with today's connect.bpf.o: rejected, the agent runs on TC.
  const rejected = kernelFeatures({
    release: '5.10.0', probes: probesWithout('set_retval'), tc: loaded,
    connect: { loaded: false, error: 'verifier says "invalid func unknown#187"' }, udpSocketSweep: { loaded: false, skipped: 'disabled' },
  });
  t.same(stateOf(rejected), { 'tc-datapath': 'on', 'connect-time-lb': 'off', 'connect-econnrefused': 'off', 'udp-socket-sweep': 'disabled', 'external-traffic': 'disabled' });
  t.match(rejected.features.find((f) => f.name === 'connect-time-lb')?.reason, /invalid func unknown#187/, 'the verifier verdict is the reason');

  // A kernel without a helper connect.bpf.o needs: the probe names it next to the load error.
  const old = kernelFeatures({ probes: probesWithout('get_netns_cookie'), tc: loaded, connect: { loaded: false, error: 'EINVAL' }, udpSocketSweep: loaded });
  t.match(old.features.find((f) => f.name === 'connect-time-lb')?.reason, /lacks bpf_get_netns_cookie for cgroup_sock_addr programs; EINVAL/);

  const disabled = kernelFeatures({ probes: probesWithout(), tc: loaded, connect: { loaded: false, skipped: 'disabled' }, udpSocketSweep: { loaded: false, skipped: 'disabled' } });
  t.same(stateOf(disabled), { 'tc-datapath': 'on', 'connect-time-lb': 'disabled', 'connect-econnrefused': 'disabled', 'udp-socket-sweep': 'disabled', 'external-traffic': 'disabled' }, 'configuration, not the kernel');

  const unknown = kernelFeatures({ probes: { ...probesWithout(), helpers: { 'cgroup_sock_addr/set_retval': { error: 'EPERM' } } }, tc: loaded, connect: loaded, udpSocketSweep: loaded });
  t.match(unknown.features.find((f) => f.name === 'connect-econnrefused'), { state: 'off', reason: /could not probe bpf_set_retval: EPERM/ }, 'a probe that cannot answer is not a yes');
});

t.test('load error summaries', async (t) => {
  t.equal(loadErrorSummary(new Error('boom')), 'boom', 'a plain error');
  t.equal(loadErrorSummary(Object.assign(new Error('bpf_object__load(x): Invalid argument'), {
    libbpfWarnings: ['libbpf: a', "libbpf: extern (func ksym) 'bpf_sock_destroy': not found in kernel BTF\n", "libbpf: failed to load object 'x'\n"],
  })),
    'bpf_object__load(x): Invalid argument: libbpf says "libbpf: extern (func ksym) \'bpf_sock_destroy\': not found in kernel BTF"', "libbpf's last warning");
  if (!(await requirePrivileges(t))) return;
  const err = await openBpfObject(BPF('test/reject.bpf.o')).then(() => null, (e: unknown) => e);
  t.ok(err, 'the verifier rejects the fixture');
  t.match(loadErrorSummary(err), /program reject_unchecked\): verifier says "R1 offset is outside of the packet"$/, "the verifier's verdict, not its bookkeeping");
});

t.test('the helper table is what the objects call', async (t) => {
  // llvm-objdump shows `call N` for each helper call (kfuncs are `call -1`).
  const calls = (obj: string) => new Set(
    [...execFileSync('llvm-objdump', ['-d', BPF(obj)], { encoding: 'utf8' }).matchAll(/\bcall (\d+)\b/g)].map((m) => Number(m[1])),
  );
  t.same([...calls('tc.bpf.o')].sort((a, b) => a - b), OBJECT_HELPERS.tc.helpers.map((h) => h.id).sort((a, b) => a - b), 'tc.bpf.o');
  const connect = [...calls('connect.bpf.o')].filter((id) => id !== SET_RETVAL.id).sort((a, b) => a - b);
  t.same(connect, OBJECT_HELPERS.connect.helpers.map((h) => h.id).sort((a, b) => a - b), 'connect.bpf.o (set_retval apart)');
});

t.test("libbpf's probes on this kernel", async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = loadNative();
  const probes = probeKernel(native);
  const errors = Object.entries({ ...probes.progTypes, ...probes.helpers }).filter(([, v]) => typeof v !== 'boolean');
  t.same(errors, [], 'every probe answered');
  t.equal(probes.progTypes.cgroup_sock_addr, true, 'cgroup sock_addr programs');
  const [major = 0, minor = 0] = (await import('node:os')).release().split('.').map(Number);
  t.equal(probes.helpers['cgroup_sock_addr/set_retval'], major * 100 + minor >= 518, 'set_retval as the kernel version says');
  // A probe can say no: no kernel has helper 100000. (libbpf 1.1 reads a helper the kernel knows
  // but refuses for the program type as "supported" on kernels whose verifier words that
  // refusal in the newer way, so only unknown helpers are a sure "no" here; see kernel-features.ts.)
  t.equal(native.probeBpfHelper(PROG_TYPES.sched_cls, 100000), false, 'an unknown helper');
  t.throws(() => native.probeBpfHelper(-1, 1), /progType must be a non-negative integer/);
});

t.test('a rejected connect.bpf.o turns connect-time load balancing off, the rest loads', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const pinDir = join(await run.pinDir(), 'sluice');
  const cg = await createCgroup(await run.cgroup(), 'pods');
  const objects = objectDirWithRejectedConnect();
  t.teardown(objects.remove);
  const dp = await Datapath.load({ pinDir, connectTimeLb: 'tcp-udp', objectDir: objects.dir, udpSocketSweep: { namespaces: () => [] } });
  t.teardown(() => dp.close());
  t.equal(dp.connectTimeAvailable, false, 'no connect-time programs');
  t.same(stateOf(dp.kernelFeatures), { 'tc-datapath': 'on', 'connect-time-lb': 'off', 'connect-econnrefused': 'off', 'udp-socket-sweep': 'on', 'external-traffic': 'disabled' });
  t.match(dp.kernelFeatures.features.find((f) => f.name === 'connect-time-lb')?.reason, new RegExp(`verifier says "invalid func unknown#${UNKNOWN_HELPER}"`), 'with the verifier verdict');
  t.ok(dp.programIds().sl_tc_from_pod, 'the TC programs are loaded');
  t.same(dp.attachConnectTime(cg), { updated: [], created: [], detached: 0 }, 'nothing attached to the cgroup');
});
