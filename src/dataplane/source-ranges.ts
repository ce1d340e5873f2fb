// loadBalancerSourceRanges into sl_src_ranges4 (an LPM trie keyed by svc_id then address, see
// bpf/include/sluice.h): after each apply, the ranges of every IPv4 service port that has them are
// written, new entries before stale ones go, so a range being replaced never leaves a gap.
// The frontends carry SL_SVC_F_SRC_RANGES (set by the writer); between a new service's frontend
// write and this write its LoadBalancer IP drops every source (fail closed, one apply long).
import type { NativeMap } from '../bpf/native.js';
import { srcRangeKey4, srcRangeValue } from '../bpf/sluice-structs.js';
import type { DesiredState } from '../model/types.js';

const VALUE = srcRangeValue.encode({ flags: 0 });

function keyOf(svcId: number, cidr: string): Buffer | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m) return undefined; // IPv6 ranges belong to the IPv6 view
  return srcRangeKey4.encode({ prefixlen: 32 + Number(m[2]), svc_id: svcId, addr: m[1] as string });
}

export interface SourceRangeReport {
  written: number;
  deleted: number;
  errors: string[];
}

export class SourceRangeWriter {
  /** Entries in the map, by hex key. */
  private readonly present = new Map<string, Buffer>();

  constructor(private readonly map: NativeMap, private readonly serviceId: (key: string) => number | undefined) {
    // Entries a previous agent left: known, so stale ones are deleted by the first apply.
    for (const k of map.keys()) this.present.set(k.toString('hex'), k);
  }

  apply(state: DesiredState): SourceRangeReport {
    const report: SourceRangeReport = { written: 0, deleted: 0, errors: [] };
    const want = new Map<string, Buffer>();
    for (const [key, port] of state.services) {
      if (port.loadBalancerSourceRanges.length === 0) continue;
      const svcId = this.serviceId(key);
      if (svcId === undefined) continue; // not programmed (its apply failed): nothing to guard
      for (const cidr of port.loadBalancerSourceRanges) {
        const k = keyOf(svcId, cidr);
        if (k) want.set(k.toString('hex'), k);
      }
    }
    for (const [hex, k] of want) {
      if (this.present.has(hex)) continue;
      try {
        this.map.update(k, VALUE);
        this.present.set(hex, k);
        report.written++;
      } catch (err) {
        report.errors.push(`sl_src_ranges4 update: ${(err as Error).message}`);
      }
    }
    for (const [hex, k] of this.present) {
      if (want.has(hex)) continue;
      try {
        this.map.delete(k);
        this.present.delete(hex);
        report.deleted++;
      } catch (err) {
        report.errors.push(`sl_src_ranges4 delete: ${(err as Error).message}`);
      }
    }
    return report;
  }
}
