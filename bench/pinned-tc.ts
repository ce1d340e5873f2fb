// The setup the map benches share: dist/bpf/tc.bpf.o opened with its maps pinned in a fresh
// test-bed run directory (nothing attached anywhere), handed to `fn`, and everything removed
// afterwards — on success, failure and SIGINT/SIGTERM.
import { openBpfObject } from '../src/bpf/loader.js';
import type { NativeAddon, NativeObject } from '../src/bpf/native.js';
import { fromPackageRoot, loadNative } from '../src/bpf/native.js';
import { allStructCodecs } from '../src/bpf/sluice-structs.js';
import { TestbedRun } from '../src/testbed/run.js';

export interface PinnedTc {
  run: TestbedRun;
  native: NativeAddon;
  /** The run's bpffs directory holding the object's maps. */
  pinDir: string;
  obj: NativeObject;
}

export async function withPinnedTc<T>(fn: (tc: PinnedTc) => T | Promise<T>): Promise<T> {
  const native = loadNative();
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  try {
    const pinDir = await run.pinDir();
    const obj = await openBpfObject(fromPackageRoot('dist', 'bpf', 'tc.bpf.o'), { pinRoot: pinDir, codecs: allStructCodecs, addon: native });
    run.cleanup.add('tc object', () => obj.close());
    return await fn({ run, native, pinDir, obj });
  } finally {
    await run.destroy();
  }
}
