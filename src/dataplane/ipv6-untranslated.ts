// sl_ipv6_untranslated (bpf/lib/maps6.h): IPv6 packets the TC programs passed untouched because
// of extension headers they do not translate (fragments, routing with segments left, ESP, more
// than four: bpf/lib/parse6.h). A per-CPU array of one slot; read for the
// admin counters view (sluicectl counters) and the sluice_ipv6_untranslated_packets_total metric.
import { decodePerCpu } from '../bpf/codec.js';
import type { NativeMap } from '../bpf/native.js';
import { u32Key, u64Value } from '../bpf/sluice-structs.js';

export const IPV6_UNTRANSLATED_MAP = 'sl_ipv6_untranslated';

/** The slot summed over CPUs (0 when the slot reads empty). */
export function readIpv6Untranslated(map: Pick<NativeMap, 'lookup'>, cpus: number): number {
  const buf = map.lookup(u32Key.encode(0));
  return buf ? Number(decodePerCpu(u64Value, buf, cpus).reduce((a, c) => a + c, 0n)) : 0;
}
