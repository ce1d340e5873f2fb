// A BPF object the running kernel rejects the way an older kernel rejects ours: the helper id of
// its calls to bpf_set_retval (or, failing that, bpf_map_lookup_elem) replaced by one no kernel
// has. Same BTF, maps and program names: only the verifier says no ("invalid func unknown#N"),
// as 5.10 says of today's connect.bpf.o.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPackageRoot } from '../../src/bpf/native.js';

export const UNKNOWN_HELPER = 0x7ffffff0;
const HELPERS_TO_PATCH = [187, 1];

/** The object with every `call <helper>` (187, else 1) turned into a call of helper UNKNOWN_HELPER. */
export function withUnknownHelper(elf: Buffer): Buffer {
  const out = Buffer.from(elf);
  for (const helper of HELPERS_TO_PATCH) {
    // BPF_JMP|BPF_CALL (0x85), no registers, offset 0, imm = helper id (little-endian).
    const call = Buffer.from([0x85, 0, 0, 0, helper, 0, 0, 0]);
    let n = 0;
    for (let at = out.indexOf(call); at >= 0; at = out.indexOf(call, at + 1)) {
      if (at % 8 !== 0) continue; // instructions are 8-byte aligned in their section
      out.writeInt32LE(UNKNOWN_HELPER, at + 4);
      n++;
    }
    if (n > 0) return out;
  }
  throw new Error('connect.bpf.o has no helper call to patch');
}

/**
 * A directory of the compiled objects in which connect.bpf.o is the rejected kind (pass it as
 * objectDir / --bpf-dir). Returns the path and a remover.
 */
export function objectDirWithRejectedConnect(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-objects-'));
  const bpf = (name: string) => fromPackageRoot('dist', 'bpf', name);
  copyFileSync(bpf('tc.bpf.o'), join(dir, 'tc.bpf.o'));
  copyFileSync(bpf('sockdestroy.bpf.o'), join(dir, 'sockdestroy.bpf.o'));
  writeFileSync(join(dir, 'connect.bpf.o'), withUnknownHelper(readFileSync(bpf('connect.bpf.o'))));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
