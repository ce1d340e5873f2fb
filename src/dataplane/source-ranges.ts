// loadBalancerSourceRanges into sl_src_ranges4 and sl_src_ranges6 (LPM tries keyed by svc_id then
// address, see bpf/include/sluice.h): after each apply, the ranges of every service port that has
// them are written to its family's trie, new entries before stale ones go, so a range being
// replaced never leaves a gap. The frontends carry SL_SVC_F_SRC_RANGES (set by the writer);
// between a new service's frontend write and this write its LoadBalancer IP drops every source
// (fail closed, one apply long).
//
// The model hands each family's port only that family's ranges (canonical CIDRs). An entry that
// is not a CIDR of the port's family (a desired state built elsewhere) is reported, naming the
// Service, the field and the value, and skipped: the port's other ranges are written, so the
// service is at most narrower than asked, never open to a source it did not list.
import type { NativeMap } from '../bpf/native.js';
import { srcRangeKey4, srcRangeKey6, srcRangeValue } from '../bpf/sluice-structs.js';
import { parseCidr } from '../model/ip.js';
import type { DesiredServicePort, DesiredState, IpFamily } from '../model/types.js';
import { SRC_RANGES_MAPS, SRC_RANGES_MAX } from './table-specs.js';

const VALUE = srcRangeValue.encode({ flags: 0 });

/** The trie key of one range of a port, or why it cannot have one. */
export function sourceRangeKey(family: IpFamily, svcId: number, cidr: string): Buffer | string {
  const parsed = parseCidr(cidr);
  if (!parsed) return 'is not a valid CIDR';
  if (parsed.family !== family) return `is not an ${family} CIDR (this is the ${family} service port)`;
  const [addr = ''] = parsed.canonical.split('/');
  const prefixlen = 32 + parsed.prefixLength;
  return family === 'IPv4' ? srcRangeKey4.encode({ prefixlen, svc_id: svcId, addr }) : srcRangeKey6.encode({ prefixlen, svc_id: svcId, addr });
}

export interface SourceRangeReport {
  written: number;
  deleted: number;
  errors: string[];
}

/** The maps the writer fills: IPv6 only when the objects have it. */
export type SourceRangeMaps = { IPv4: NativeMap; IPv6?: NativeMap };

/** One family's trie and what is in it. */
interface Trie {
  name: string;
  map: NativeMap;
  /** Entries in the map, by hex key. */
  present: Map<string, Buffer>;
  want: Map<string, Buffer>;
}

export class SourceRangeWriter {
  private readonly tries: Partial<Record<IpFamily, Trie>> = {};

  constructor(maps: SourceRangeMaps, private readonly serviceId: (key: string) => number | undefined) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const map = maps[family];
      if (!map) continue;
      // Entries a previous agent left: known, so stale ones are deleted by the first apply.
      const present = new Map<string, Buffer>();
      for (const k of map.keys()) present.set(k.toString('hex'), k);
      this.tries[family] = { name: SRC_RANGES_MAPS[family], map, present, want: new Map() };
    }
  }

  apply(state: DesiredState): SourceRangeReport {
    const report: SourceRangeReport = { written: 0, deleted: 0, errors: [] };
    for (const trie of Object.values(this.tries)) trie.want = new Map();
    for (const [key, port] of state.services) {
      if (port.loadBalancerSourceRanges.length === 0) continue;
      const trie = this.tries[port.family];
      if (!trie) continue; // no maps of this family: the writer programs none of its frontends
      const svcId = this.serviceId(key);
      if (svcId === undefined) continue; // not programmed (its apply failed): nothing to guard
      this.wantRanges(trie, port, svcId, report);
    }
    for (const trie of Object.values(this.tries)) this.sync(trie, report);
    return report;
  }

  private wantRanges(trie: Trie, port: DesiredServicePort, svcId: number, report: SourceRangeReport): void {
    port.loadBalancerSourceRanges.forEach((cidr, i) => {
      const k = sourceRangeKey(port.family, svcId, cidr);
      if (typeof k === 'string') {
        report.errors.push(`Service ${port.namespace}/${port.name} (${port.key}): spec.loadBalancerSourceRanges[${i}] "${cidr}" ${k}; skipped, the other ranges apply`);
        return;
      }
      trie.want.set(k.toString('hex'), k);
    });
  }

  /** New entries first, then the stale ones go. */
  private sync(trie: Trie, report: SourceRangeReport): void {
    for (const [hex, k] of trie.want) {
      if (trie.present.has(hex)) continue;
      try {
        trie.map.update(k, VALUE);
        trie.present.set(hex, k);
        report.written++;
      } catch (err) {
        const code = (err as { code?: string }).code;
        const full = code === 'E2BIG' || code === 'ENOSPC' || code === 'ENOMEM' ? ` (${trie.name} holds ${SRC_RANGES_MAX} ranges of all services)` : '';
        report.errors.push(`${trie.name} update: ${(err as Error).message}${full}`);
      }
    }
    for (const [hex, k] of trie.present) {
      if (trie.want.has(hex)) continue;
      try {
        trie.map.delete(k);
        trie.present.delete(hex);
        report.deleted++;
      } catch (err) {
        report.errors.push(`${trie.name} delete: ${(err as Error).message}`);
      }
    }
  }
}
