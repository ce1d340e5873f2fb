// Opening the pinned maps for sluicectl when the agent is down. The reading itself is the
// dataplane's ServiceTables (src/dataplane/native-tables.ts); this adds the checks that turn a
// missing directory, missing maps or a permission problem into a message an operator can act on.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeAddon } from '../bpf/native.js';
import { openPinnedTables } from '../dataplane/native-tables.js';
import { MAP_NAMES } from '../dataplane/tables.js';
import type { ServiceTables } from '../dataplane/tables.js';

export class PinnedMapsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PinnedMapsError';
  }
}

export function openPinnedMapsForDump(
  native: Pick<NativeAddon, 'openPinnedMap' | 'numPossibleCpus'>,
  pinDir: string,
): { tables: ServiceTables; close(): void } {
  if (!existsSync(pinDir)) {
    throw new PinnedMapsError(`no pinned maps: ${pinDir} does not exist (has the agent ever run on this node?)`);
  }
  const missing = Object.values(MAP_NAMES).filter((name) => !existsSync(join(pinDir, name)));
  if (missing.length) throw new PinnedMapsError(`maps missing under ${pinDir}: ${missing.join(', ')}`);
  try {
    // Read-only fds: the agent-down view cannot change the dataplane, even by a bug of ours.
    return openPinnedTables(native, pinDir, { readOnly: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PinnedMapsError(`permission denied opening the maps under ${pinDir}: reading BPF maps needs root`);
    }
    throw new PinnedMapsError(`cannot open the maps under ${pinDir}: ${(err as Error).message}`);
  }
}
