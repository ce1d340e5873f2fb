// What the running kernel gives the datapath, and what the agent does without (docs/kernels.md).
// Two sources, both asked at start: libbpf's probes (does this kernel load a program type, may a
// program type call a helper: libbpf_probe_bpf_prog_type / libbpf_probe_bpf_helper through the
// addon), and the outcome of loading each object (the verifier has the last word: a kernel may
// offer every helper and still reject a program). Every object but tc.bpf.o is optional: one
// that does not load turns its feature off, says why once, and the agent runs with the rest.
import { release } from 'node:os';
import type { Logger } from 'pino';
import { isNativeError } from '../bpf/errors.js';
import type { NativeAddon } from '../bpf/native.js';

export const FEATURE_NAMES = ['tc-datapath', 'connect-time-lb', 'connect-econnrefused', 'udp-socket-sweep', 'external-traffic'] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

/** on: in use; off: this kernel cannot (reason says why); disabled: configuration turned it off. */
export type FeatureState = 'on' | 'off' | 'disabled';

export interface FeatureInfo {
  /** What the feature does. */
  what: string;
  /** The oldest Linux version that has everything it needs. */
  since: string;
  /** What happens on a kernel without it. */
  without: string;
}

/** The feature table of docs/kernels.md (keep the two in step). */
export const FEATURES: Record<FeatureName, FeatureInfo> = {
  'tc-datapath': {
    what: 'TC NAT and conntrack on the pod veths (tc.bpf.o)',
    since: '5.10',
    without: 'the agent cannot run: no service is translated',
  },
  'connect-time-lb': {
    what: 'connect-time load balancing on the cgroup (connect.bpf.o: connect, sendmsg, recvmsg and getpeername in both families)',
    since: '5.10',
    without: 'every service connection goes through the TC path (NAT on the pod veth): still served, with per-packet NAT',
  },
  'connect-econnrefused': {
    what: 'a connect() to a service without endpoints fails with ECONNREFUSED (bpf_set_retval)',
    since: '5.18',
    without: 'such a connect() fails with EPERM instead, still at once',
  },
  'udp-socket-sweep': {
    what: 'connected UDP sockets balanced to a removed backend are closed (sockdestroy.bpf.o, bpf_sock_destroy kfunc)',
    since: '6.5',
    without: 'such sockets keep sending to the removed backend until the application reopens them',
  },
  'external-traffic': {
    what: 'NodePort, LoadBalancer and ExternalIP traffic from outside the node (host.bpf.o on the host interfaces)',
    since: '5.10',
    without: 'traffic from outside the node is not translated (pods and the node itself still reach every Service)',
  },
};

/** enum bpf_prog_type values probed (uapi linux/bpf.h). */
export const PROG_TYPES = { sched_cls: 3, cgroup_sock_addr: 18 } as const;
export type ProbedProgType = keyof typeof PROG_TYPES;

export interface HelperNeed {
  /** enum bpf_func_id value. */
  id: number;
  name: string;
}

/**
 * Every helper each object calls, by program type (test/datapath/kernel-features.test.ts checks
 * this list against the compiled objects' call instructions, so it cannot drift). set_retval is
 * listed apart: connect.bpf.o checks for it itself and falls back to EPERM.
 */
export const OBJECT_HELPERS: Record<'tc' | 'connect', { progType: ProbedProgType; helpers: HelperNeed[] }> = {
  tc: {
    progType: 'sched_cls',
    helpers: [
      { id: 1, name: 'map_lookup_elem' }, { id: 2, name: 'map_update_elem' }, { id: 3, name: 'map_delete_elem' },
      { id: 5, name: 'ktime_get_ns' }, { id: 7, name: 'get_prandom_u32' }, { id: 9, name: 'skb_store_bytes' },
      { id: 10, name: 'l3_csum_replace' }, { id: 11, name: 'l4_csum_replace' }, { id: 12, name: 'tail_call' },
      { id: 23, name: 'redirect' },
      { id: 26, name: 'skb_load_bytes' }, { id: 28, name: 'csum_diff' }, { id: 38, name: 'skb_change_tail' },
      { id: 39, name: 'skb_pull_data' },
    ],
  },
  connect: {
    progType: 'cgroup_sock_addr',
    helpers: [
      { id: 1, name: 'map_lookup_elem' }, { id: 2, name: 'map_update_elem' }, { id: 5, name: 'ktime_get_ns' },
      { id: 7, name: 'get_prandom_u32' }, { id: 46, name: 'get_socket_cookie' }, { id: 107, name: 'sk_storage_get' },
      { id: 122, name: 'get_netns_cookie' },
    ],
  },
};
export const SET_RETVAL: HelperNeed = { id: 187, name: 'set_retval' };

/** A probe's answer: true/false, or the error when libbpf could not tell. */
export type ProbeAnswer = boolean | { error: string };

export interface KernelProbes {
  progTypes: Record<ProbedProgType, ProbeAnswer>;
  /** `<progType>/<helper name>` → answer. */
  helpers: Record<string, ProbeAnswer>;
}

function ask(fn: () => boolean): ProbeAnswer {
  try {
    return fn();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * Runs libbpf's probes for every program type and helper the objects need. Never throws.
 * libbpf 1.1 answers "no" when the verifier does not know the helper id ("invalid func") or
 * refuses it for the program type in the older wording ("unknown func"): exact on the old
 * kernels where it matters (5.10 lacks set_retval, 187, altogether); on newer kernels a helper
 * refused for a program type may read as "yes", which the load result then corrects.
 */
export function probeKernel(native: NativeAddon): KernelProbes {
  const progTypes = {} as Record<ProbedProgType, ProbeAnswer>;
  for (const [name, type] of Object.entries(PROG_TYPES)) progTypes[name as ProbedProgType] = ask(() => native.probeBpfProgType(type));
  const helpers: Record<string, ProbeAnswer> = {};
  for (const { progType, helpers: needs } of Object.values(OBJECT_HELPERS)) {
    for (const h of needs) helpers[`${progType}/${h.name}`] = ask(() => native.probeBpfHelper(PROG_TYPES[progType], h.id));
  }
  helpers[`cgroup_sock_addr/${SET_RETVAL.name}`] = ask(() => native.probeBpfHelper(PROG_TYPES.cgroup_sock_addr, SET_RETVAL.id));
  return { progTypes, helpers };
}

/** How loading one object went. */
export type ObjectOutcome = { loaded: true } | { loaded: false; error: string } | { loaded: false; skipped: 'disabled' };

export interface KernelFeature extends FeatureInfo {
  name: FeatureName;
  state: FeatureState;
  /** Why it is off (the probe or the verifier's message). */
  reason?: string;
}

export interface KernelFeatures {
  /** uname -r of the running kernel. */
  release: string;
  features: KernelFeature[];
}

/** What the probes say is missing for an object ('' when nothing is, or the probes could not tell). */
function missingFor(probes: KernelProbes, obj: 'tc' | 'connect'): string {
  const { progType, helpers } = OBJECT_HELPERS[obj];
  if (probes.progTypes[progType] === false) return `the kernel has no ${progType} programs`;
  const missing = helpers.filter((h) => probes.helpers[`${progType}/${h.name}`] === false).map((h) => `bpf_${h.name}`);
  return missing.length > 0 ? `the kernel lacks ${missing.join(', ')} for ${progType} programs` : '';
}

function feature(name: FeatureName, state: FeatureState, reason?: string): KernelFeature {
  return { name, ...FEATURES[name], state, ...(reason ? { reason } : {}) };
}

function fromOutcome(name: FeatureName, outcome: ObjectOutcome, probeSays: string): KernelFeature {
  if (outcome.loaded) return feature(name, 'on');
  if ('skipped' in outcome) return feature(name, 'disabled', 'turned off by configuration');
  return feature(name, 'off', probeSays ? `${probeSays}; ${outcome.error}` : outcome.error);
}

/** The features, from the probes and the load outcomes (pure: tests feed it any kernel). */
export function kernelFeatures(input: {
  release?: string;
  probes: KernelProbes;
  tc: ObjectOutcome;
  connect: ObjectOutcome;
  udpSocketSweep: ObjectOutcome;
  /** host.bpf.o (default: not asked for, e.g. `--host-interfaces none`). */
  external?: ObjectOutcome;
}): KernelFeatures {
  const { probes } = input;
  const connect = fromOutcome('connect-time-lb', input.connect, missingFor(probes, 'connect'));
  const retval = probes.helpers[`cgroup_sock_addr/${SET_RETVAL.name}`];
  let refused: KernelFeature;
  if (connect.state !== 'on') refused = feature('connect-econnrefused', connect.state, 'connect-time load balancing is not running');
  else if (retval === true) refused = feature('connect-econnrefused', 'on');
  else if (retval === false) refused = feature('connect-econnrefused', 'off', 'the kernel has no bpf_set_retval for cgroup programs');
  else refused = feature('connect-econnrefused', 'off', `could not probe bpf_set_retval: ${retval?.error ?? 'not probed'}`);
  return {
    release: input.release ?? release(),
    features: [
      fromOutcome('tc-datapath', input.tc, missingFor(probes, 'tc')),
      connect,
      refused,
      fromOutcome('udp-socket-sweep', input.udpSocketSweep, ''),
      fromOutcome('external-traffic', input.external ?? { loaded: false, skipped: 'disabled' }, ''),
    ],
  };
}

const BOOKKEEPING = /^(processed \d+ insns|verification time|stack depth|mark_precise|-- END PROG LOAD LOG --)/;

/**
 * One line saying why an object did not load: the error, plus the verifier's verdict (the last
 * line of its log that is not bookkeeping), e.g. "invalid func unknown#187", or else libbpf's
 * last warning (openBpfObject attaches them to the error as `libbpfWarnings`).
 */
export function loadErrorSummary(err: unknown, libbpfWarnings: readonly string[] = (err as { libbpfWarnings?: string[] } | null)?.libbpfWarnings ?? []): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!isNativeError(err) || !err.verifierLog) {
    // No verifier log: libbpf refused before the kernel saw a program (a missing kfunc or BTF
    // type); its last warning says which.
    // Its closing "failed to load object" says nothing: the line before it does.
    const last = libbpfWarnings.map((l) => l.trim()).filter((l) => l && !/failed to load (object|BPF skeleton)/.test(l)).at(-1);
    return last ? `${message}: libbpf says "${last}"` : message;
  }
  const lines = err.verifierLog.split('\n').map((l) => l.trim()).filter((l) => l && !BOOKKEEPING.test(l));
  const verdict = lines.at(-1);
  return verdict ? `${message}${err.program ? ` (program ${err.program})` : ''}: verifier says "${verdict}"` : message;
}

/**
 * Loads an optional object: its failure becomes an outcome (logged once at error, with the
 * verifier's verdict and what the agent does without), never an exception.
 */
export async function loadOptional<T>(name: FeatureName, load: () => Promise<T>, logger?: Logger): Promise<{ value: T | null; outcome: ObjectOutcome }> {
  try {
    return { value: await load(), outcome: { loaded: true } };
  } catch (err) {
    const error = loadErrorSummary(err);
    logger?.error({ feature: name, err: error }, `${name} is off: ${FEATURES[name].what} did not load on kernel ${release()}; ${FEATURES[name].without}`);
    return { value: null, outcome: { loaded: false, error } };
  }
}

/** The start-up line: which features the kernel gives, which the agent does without. */
export function logKernelFeatures(logger: Logger, kf: KernelFeatures): void {
  const by = (s: FeatureState) => kf.features.filter((f) => f.state === s).map((f) => f.name);
  const without = kf.features.filter((f) => f.state === 'off');
  const line = { kernel: kf.release, on: by('on'), off: by('off'), disabled: by('disabled') };
  if (without.length === 0) {
    logger.info(line, `kernel ${kf.release}: every datapath feature available`);
    return;
  }
  logger.warn(
    { ...line, without: Object.fromEntries(without.map((f) => [f.name, { since: f.since, reason: f.reason, effect: f.without }])) },
    `kernel ${kf.release}: running without ${without.map((f) => `${f.name} (needs ${f.since})`).join(', ')}`,
  );
}
