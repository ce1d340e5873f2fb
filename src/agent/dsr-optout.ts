// The DSR opt-out CIDRs (--dsr-optout-cidrs), written to sl_dsr_optout4 (IPv4 CIDRs) and
// sl_dsr_optout6 (IPv6 CIDRs), one writer per family: clients in them get the
// Tunnel path instead of DSR (docs/external-traffic.md, "DSR"). The list is a start-time setting;
// the writer makes the pinned map hold exactly it, new entries before stale ones go, so a
// restarted agent with a changed list never leaves a client out of both for a moment.
import type { NativeMap } from '../bpf/native.js';
import { dsrOptoutKey4, dsrOptoutKey6, dsrOptoutValue } from '../bpf/sluice-structs.js';
import { DSR_OPTOUT_MAPS, DSR_OPTOUT_MAX } from '../dataplane/table-specs.js';

export interface DsrOptoutReport {
  added: string[];
  removed: string[];
  errors: string[];
}

type Family = keyof typeof DSR_OPTOUT_MAPS;
const CODECS = { IPv4: dsrOptoutKey4, IPv6: dsrOptoutKey6 } as const;

export class DsrOptoutWriter {
  private readonly mapName: string;

  constructor(private readonly map: Pick<NativeMap, 'update' | 'delete' | 'keys'>, private readonly family: Family = 'IPv4') {
    this.mapName = DSR_OPTOUT_MAPS[family];
  }

  /** addr/len (validated by the config) into the trie's key. */
  private keyOf(cidr: string): Buffer {
    const [addr = '', len = ''] = cidr.split('/');
    return CODECS[this.family].encode({ prefixlen: Number(len), addr });
  }

  /**
   * Makes the map hold exactly the CIDRs of its family among `cidrs` (canonical CIDRs, as
   * parseConfig gives them; the other family's are the other writer's).
   */
  apply(cidrs: readonly string[]): DsrOptoutReport {
    const DSR_OPTOUT_MAP = this.mapName;
    const want = new Set(cidrs.filter((c) => c.includes(':') === (this.family === 'IPv6')));
    const report: DsrOptoutReport = { added: [], removed: [], errors: [] };
    const held = new Set(this.map.keys().map((k) => {
      const { prefixlen, addr } = CODECS[this.family].decode(k);
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
        this.map.update(this.keyOf(cidr), value);
        held.add(cidr);
        report.added.push(cidr);
      } catch (err) {
        report.errors.push(`${DSR_OPTOUT_MAP} update ${cidr}: ${(err as Error).message}`);
      }
    }
    for (const cidr of [...held]) {
      if (want.has(cidr)) continue;
      try {
        this.map.delete(this.keyOf(cidr));
        report.removed.push(cidr);
      } catch (err) {
        report.errors.push(`${DSR_OPTOUT_MAP} delete ${cidr}: ${(err as Error).message}`);
      }
    }
    return report;
  }
}
