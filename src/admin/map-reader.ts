// Opening the pinned maps for sluicectl when the agent is down. The reading itself is the
// dataplane's ServiceTables (src/dataplane/native-tables.ts); this adds the checks that turn a
// missing directory, missing maps or a permission problem into a message an operator can act on.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeAddon } from '../bpf/native.js';
import { IPV6_UNTRANSLATED_MAP, readIpv6Untranslated } from '../dataplane/ipv6-untranslated.js';
import { openPinnedTables } from '../dataplane/native-tables.js';
import { MAP_NAMES, MAP_NAMES6 } from '../dataplane/tables.js';
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
): { tables: ServiceTables; tables6?: ServiceTables; ipv6Untranslated?: () => number; close(): void } {
  if (!existsSync(pinDir)) {
    throw new PinnedMapsError(`no pinned maps: ${pinDir} does not exist (has the agent ever run on this node?)`);
  }
  const missing = Object.values(MAP_NAMES).filter((name) => !existsSync(join(pinDir, name)));
  if (missing.length) throw new PinnedMapsError(`maps missing under ${pinDir}: ${missing.join(', ')}`);
  try {
    // Read-only fds: the agent-down view cannot change the dataplane, even by a bug of ours.
    const v4 = openPinnedTables(native, pinDir, { readOnly: true });
    // The IPv6 twins, when pinned (an agent older than docs/ipv6.md has none).
    if (!Object.values(MAP_NAMES6).every((name) => existsSync(join(pinDir, name)))) return v4;
    try {
      const v6 = openPinnedTables(native, pinDir, { readOnly: true, family: 'IPv6' });
      const untranslatedPin = join(pinDir, IPV6_UNTRANSLATED_MAP);
      let untranslated: ReturnType<typeof native.openPinnedMap> | undefined;
      try {
        untranslated = existsSync(untranslatedPin) ? native.openPinnedMap(untranslatedPin, { readOnly: true }) : undefined;
      } catch (err) {
        v6.close();
        throw err;
      }
      const cpus = native.numPossibleCpus();
      return {
        tables: v4.tables,
        tables6: v6.tables,
        ...(untranslated ? { ipv6Untranslated: () => readIpv6Untranslated(untranslated, cpus) } : {}),
        close: () => { v4.close(); v6.close(); untranslated?.close(); },
      };
    } catch (err) {
      v4.close();
      throw err;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PinnedMapsError(`permission denied opening the maps under ${pinDir}: reading BPF maps needs root`);
    }
    throw new PinnedMapsError(`cannot open the maps under ${pinDir}: ${(err as Error).message}`);
  }
}
