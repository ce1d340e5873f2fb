// Test files run in two forms: the TypeScript sources under tap's TS loader (`npx tap test/…`),
// and their compiled JavaScript in dist/test (`bash scripts/test.sh`: no per-process transpiling).
// A child script of ours beside a test file is then a .ts beside the source or a .js beside the
// compiled file: this picks the one of the same form as the caller.
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The script `relative` (no extension) to the directory of `importMetaUrl`'s file, in that file's form (.ts or .js). */
export function siblingScript(importMetaUrl: string, relative: string): string {
  const here = fileURLToPath(importMetaUrl);
  return join(dirname(here), relative + extname(here));
}
