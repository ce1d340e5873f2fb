// Shared set-up for the attach tests: the addon, the compiled attach fixture, counter reads and
// the "nothing left behind" checks (namespaces, cgroups, pins, and the ROOT cgroup's hooks).
import { existsSync } from 'node:fs';
import type { Test } from 'tap';
import type { NativeAddon, NativeMap, NativeObject } from '../../src/bpf/native.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { cgroup2Mount } from '../../src/testbed/cgroup.js';
import { run } from '../../src/testbed/exec.js';
import { listNetns } from '../../src/testbed/netns.js';
import type { TestbedRun } from '../../src/testbed/run.js';

export const ATTACH_OBJ = fromPackageRoot('dist', 'bpf', 'test', 'attach_fixture.bpf.o');

export const SLOT = { primary: 0, secondary: 1, connect: 2 } as const;

/** The addon; a missing build is an error, not a reason to skip. */
export function addon(): NativeAddon {
  if (!existsSync(ATTACH_OBJ)) throw new Error(`${ATTACH_OBJ} is missing: run \`npm run build:bpf\``);
  return loadNative();
}

/** Opens the fixture, sets rodata, loads it; closed at the run's cleanup (closing twice is fine). */
export async function loadAttachFixture(
  native: NativeAddon, testbed: TestbedRun, rodata: Record<string, Buffer> = {},
): Promise<NativeObject> {
  const obj = native.openObject(ATTACH_OBJ);
  testbed.cleanup.add('attach fixture object', () => obj.close());
  for (const [name, value] of Object.entries(rodata)) obj.setRodata(name, value);
  await obj.load();
  return obj;
}

/** A u16 in host byte order, as a `const volatile __u16` holds it. */
export function u16(value: number): Buffer {
  return Buffer.from(new Uint16Array([value]).buffer);
}

export function counter(map: NativeMap, slot: number): bigint {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(slot);
  const value = map.lookup(key);
  if (!value) throw new Error(`attach_counters[${slot}] is missing`);
  return value.readBigUInt64LE(0);
}

interface CgroupAttachment {
  id: number;
  attach_type: string;
  name: string;
}

/** Programs attached directly to `cgroup`, per bpftool. */
export async function cgroupAttachments(cgroup: string): Promise<CgroupAttachment[]> {
  const { stdout } = await run(['bpftool', '-j', 'cgroup', 'show', cgroup]);
  return stdout.trim() ? (JSON.parse(stdout) as CgroupAttachment[]) : [];
}

/** Asserts, after the run's cleanup, that nothing of it is left and the ROOT cgroup is untouched. */
export async function assertNothingLeft(
  t: Test, what: { prefix: string; cgroup?: string; pinDir?: string },
): Promise<void> {
  const left = (await listNetns()).filter((n) => n.startsWith(`slt-${what.prefix}-`));
  t.same(left, [], 'no namespace of the run is left (ip netns list)');
  if (what.cgroup) t.notOk(existsSync(what.cgroup), `cgroup ${what.cgroup} is gone`);
  if (what.pinDir) t.notOk(existsSync(what.pinDir), `pin dir ${what.pinDir} is gone`);
  const root = cgroup2Mount();
  t.same(await cgroupAttachments(root), [], `nothing is attached to the root cgroup ${root} (bpftool cgroup show)`);
}
