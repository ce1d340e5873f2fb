// Names for everything a test bed run creates. Every name carries the run prefix (`sl` + 4 hex
// digits) so parallel runs never collide and the sweeper can tell leftovers of a crashed run
// from a live one. The distinctive outer prefixes (`slt-` for namespaces, `sluice-test-` for
// cgroup and pin directories) make sure the sweeper only ever touches clearly-ours things.
import { randomBytes } from 'node:crypto';

/** Linux limit on interface names (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;
/** Network namespace names start with this. */
export const NETNS_PREFIX = 'slt-';
/** Per-run cgroup and bpffs directories start with this. */
export const DIR_PREFIX = 'sluice-test-';

const RUN_PREFIX_RE = /^sl[0-9a-f]{4}$/;
const LOCAL_NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;

/** A fresh run prefix such as `sl3fa2`. */
export function newRunPrefix(): string {
  return 'sl' + randomBytes(2).toString('hex');
}

export function assertRunPrefix(prefix: string): void {
  if (!RUN_PREFIX_RE.test(prefix)) {
    throw new Error(`testbed: run prefix "${prefix}" is not "sl" followed by 4 lowercase hex digits`);
  }
}

function assertLocalName(what: string, name: string): void {
  if (!LOCAL_NAME_RE.test(name)) {
    throw new Error(`testbed: ${what} name "${name}" must be 1-31 characters of a-z, 0-9 and '-'`);
  }
}

/** Network namespace name for `name` in run `prefix`: `slt-<prefix>-<name>`. */
export function netnsName(prefix: string, name: string): string {
  assertRunPrefix(prefix);
  assertLocalName('namespace', name);
  return `${NETNS_PREFIX}${prefix}-${name}`;
}

/** Directory name (cgroup subtree, bpffs pin dir) for run `prefix`: `sluice-test-<prefix>`. */
export function runDirName(prefix: string): string {
  assertRunPrefix(prefix);
  return `${DIR_PREFIX}${prefix}`;
}

/** Checks an interface name against the kernel's rules (length, no '/', ':' or whitespace). */
export function assertIfname(name: string): void {
  if (name.length === 0 || name.length > IFNAME_MAX || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new Error(
      `testbed: interface name "${name}" must be 1-${IFNAME_MAX} characters of letters, digits, _ . -`,
    );
  }
}

/**
 * Host-side veth name for the n-th link of a run: `veth<prefix><tag><n>`, e.g. `vethsl3fa2p0`.
 * Starts with `veth` so the agent's default workload interface globs match it.
 */
export function hostIfname(prefix: string, tag: string, n: number): string {
  assertRunPrefix(prefix);
  if (!/^[a-z]$/.test(tag)) throw new Error(`testbed: interface tag "${tag}" must be one letter a-z`);
  if (!Number.isInteger(n) || n < 0) throw new Error(`testbed: interface number ${n} must be a non-negative integer`);
  const name = `veth${prefix}${tag}${n}`;
  assertIfname(name);
  return name;
}

/** The run prefix inside a namespace or directory name of ours, or null when it is not ours. */
export function runPrefixOf(name: string): string | null {
  const m = new RegExp(`^(?:${NETNS_PREFIX}|${DIR_PREFIX})(sl[0-9a-f]{4})(?:-|$)`).exec(name);
  return m?.[1] ?? null;
}
