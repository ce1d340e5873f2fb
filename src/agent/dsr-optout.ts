// The DSR opt-out CIDRs (--dsr-optout-cidrs), written to sl_dsr_optout4: clients in them get the
// Tunnel path instead of DSR (docs/external-traffic.md, "DSR"). The list is a start-time setting;
// the writer makes the pinned map hold exactly it, new entries before stale ones go, so a
// restarted agent with a changed list never leaves a client out of both for a moment.
import type { NativeMap } from '../bpf/native.js';
import { dsrOptoutKey4, dsrOptoutValue } from '../bpf/sluice-structs.js';
import { DSR_OPTOUT_MAP, DSR_OPTOUT_MAX } from '../dataplane/table-specs.js';

export interface DsrOptoutReport {
  added: string[];
  removed: string[];
  errors: string[];
}

/** a.b.c.d/len (validated by the config) into the trie's key. */
function keyOf(cidr: string): Buffer {
  const [addr = '', len = ''] = cidr.split('/');
  return dsrOptoutKey4.encode({ prefixlen: Number(len), addr });
}

export class DsrOptoutWriter {
  constructor(private readonly map: Pick<NativeMap, 'update' | 'delete' | 'keys'>) {}

  /** Makes the map hold exactly `cidrs` (canonical IPv4 CIDRs, as parseConfig gives them). */
  apply(cidrs: readonly string[]): DsrOptoutReport {
    const want = new Set(cidrs);
    const report: DsrOptoutReport = { added: [], removed: [], errors: [] };
    const held = new Set(this.map.keys().map((k) => {
      const { prefixlen, addr } = dsrOptoutKey4.decode(k);
      return `${addr}/${prefixlen}`;
    }));
    if (want.size > DSR_OPTOUT_MAX) {
      report.errors.push(`${DSR_OPTOUT_MAP}: ${want.size} DSR opt-out CIDRs, the map holds ${DSR_OPTOUT_MAX}; the rest get DSR`);
    }
    const value = dsrOptoutValue.encode({ flags: 0 });
    for (const cidr of want) {
      if (held.has(cidr)) continue;
      if (held.size >= DSR_OPTOUT_MAX) break;
      try {
        this.map.update(keyOf(cidr), value);
        held.add(cidr);
        report.added.push(cidr);
      } catch (err) {
        report.errors.push(`${DSR_OPTOUT_MAP} update ${cidr}: ${(err as Error).message}`);
      }
    }
    for (const cidr of [...held]) {
      if (want.has(cidr)) continue;
      try {
        this.map.delete(keyOf(cidr));
        report.removed.push(cidr);
      } catch (err) {
        report.errors.push(`${DSR_OPTOUT_MAP} delete ${cidr}: ${(err as Error).message}`);
      }
    }
    return report;
  }
}
