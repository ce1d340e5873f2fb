// Shared set-up for the native addon tests: the compiled fixtures, the addon, and a per-run pin
// directory removed in teardown.
import { existsSync } from 'node:fs';
import { createRunPinDir, removePinDir } from '../../src/testbed/bpffs.js';
import { newRunPrefix } from '../../src/testbed/names.js';
import type { NativeAddon, NativeObject } from '../../src/bpf/native.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';

export const FIXTURE_OBJ = fromPackageRoot('dist', 'bpf', 'test', 'fixture.bpf.o');
export const REJECT_OBJ = fromPackageRoot('dist', 'bpf', 'test', 'reject.bpf.o');

interface Teardown {
  teardown(fn: () => unknown): void;
}

export function addon(): NativeAddon {
  for (const obj of [FIXTURE_OBJ, REJECT_OBJ]) {
    if (!existsSync(obj)) throw new Error(`${obj} is missing: run \`npm run build:bpf\``);
  }
  return loadNative();
}

export interface Run {
  prefix: string;
  pinDir: string;
}

/** A fresh run prefix and bpffs directory, removed (with everything pinned in it) in teardown. */
export async function newRun(t: Teardown): Promise<Run> {
  const prefix = newRunPrefix();
  const pinDir = await createRunPinDir(prefix);
  t.teardown(() => removePinDir(pinDir));
  return { prefix, pinDir };
}

/**
 * Opens and loads the fixture object; closed in teardown. Its pinned map goes under `pinRoot`,
 * or a pin directory of this test's own (removed in teardown): never bpffs' root.
 */
export async function loadFixture(
  t: Teardown,
  opts: { pinRoot?: string; rodata?: Record<string, Buffer> } = {},
): Promise<NativeObject> {
  const pinRoot = opts.pinRoot ?? (await newRun(t)).pinDir;
  const obj = addon().openObject(FIXTURE_OBJ, { pinRoot });
  t.teardown(() => obj.close());
  for (const [name, value] of Object.entries(opts.rodata ?? {})) obj.setRodata(name, value);
  await obj.load();
  return obj;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** A minimal Ethernet frame of `length` bytes (zeros after an IPv4 ethertype). */
export function frame(length = 64): Buffer {
  const b = Buffer.alloc(length);
  b.writeUInt16BE(0x0800, 12);
  return b;
}
