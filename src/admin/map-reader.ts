// Reading Sluice's maps for dumps: open them from the pin directory (sluicectl with the agent
// down) or take the agent's own handles, and decode whole maps with the shared codecs. Reads
// only; the dataplane stays the only writer.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Codec } from '../bpf/codec.js';
import type { NativeAddon, NativeMap } from '../bpf/native.js';

/** The maps a dump reads, by role → pinned name (bpf/lib/maps.h). */
export const SLUICE_MAP_NAMES = {
  frontends4: 'sl_frontends4',
  backends4: 'sl_backends4',
  ct4: 'sl_ct4',
  affinity4: 'sl_affinity4',
  sockRevnat4: 'sl_sock_revnat4',
  svcCounters: 'sl_svc_counters',
  dropCounters: 'sl_drop_counters',
  svcMeta: 'sl_svc_meta',
} as const;

export type SluiceMapRole = keyof typeof SLUICE_MAP_NAMES;
export type SluiceMapSet = Record<SluiceMapRole, NativeMap>;

export class PinnedMapsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PinnedMapsError';
  }
}

/** Opens every Sluice map pinned under `pinDir`. Missing maps are an error naming them. */
export function openPinnedMaps(native: Pick<NativeAddon, 'openPinnedMap'>, pinDir: string): SluiceMapSet {
  if (!existsSync(pinDir)) {
    throw new PinnedMapsError(`no pinned maps: ${pinDir} does not exist (has the agent ever run on this node?)`);
  }
  const opened: Partial<SluiceMapSet> = {};
  const missing: string[] = [];
  try {
    for (const [role, name] of Object.entries(SLUICE_MAP_NAMES) as [SluiceMapRole, string][]) {
      const path = join(pinDir, name);
      try {
        opened[role] = native.openPinnedMap(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') missing.push(name);
        else if (code === 'EACCES' || code === 'EPERM') {
          throw new PinnedMapsError(`permission denied opening ${path}: reading BPF maps needs root`);
        } else throw new PinnedMapsError(`cannot open ${path}: ${(err as Error).message}`);
      }
    }
    if (missing.length) throw new PinnedMapsError(`maps missing under ${pinDir}: ${missing.join(', ')}`);
  } catch (err) {
    for (const map of Object.values(opened)) map.close();
    throw err;
  }
  return opened as SluiceMapSet;
}

export function closeMaps(maps: SluiceMapSet): void {
  for (const map of Object.values(maps)) map.close();
}

/** Every (key, value) of a hash map: one batched read when the kernel allows, else key by key. */
export function readRawEntries(map: NativeMap): { key: Buffer; value: Buffer }[] {
  const { keySize, valueSize } = map.info;
  try {
    const batch = map.lookupBatch();
    const out: { key: Buffer; value: Buffer }[] = [];
    for (let i = 0; i < batch.count; i++) {
      out.push({
        key: batch.keys.subarray(i * keySize, (i + 1) * keySize),
        value: batch.values.subarray(i * valueSize, (i + 1) * valueSize),
      });
    }
    return out;
  } catch {
    // Entries deleted between get_next_key and lookup are simply skipped.
    const out: { key: Buffer; value: Buffer }[] = [];
    for (const key of map.keys()) {
      const value = map.lookup(key);
      if (value) out.push({ key, value });
    }
    return out;
  }
}

export function readEntries<K, V>(map: NativeMap, keyCodec: Codec<K>, valueCodec: Codec<V>): { key: K; value: V }[] {
  return readRawEntries(map).map((e) => ({ key: keyCodec.decode(e.key), value: valueCodec.decode(e.value) }));
}

/** Number of entries in a hash map. */
export function countEntries(map: NativeMap): number {
  try {
    return map.lookupBatch().count;
  } catch {
    return map.keys().length;
  }
}

/** Per-CPU values arrive as one slot per possible CPU, each rounded up to 8 bytes. */
export function perCpuSlots(buf: Buffer, valueSize: number): Buffer[] {
  const stride = Math.ceil(valueSize / 8) * 8;
  const slots: Buffer[] = [];
  for (let off = 0; off + valueSize <= buf.length; off += stride) slots.push(buf.subarray(off, off + valueSize));
  return slots;
}

/** Sums the bigint fields of a per-CPU value across CPUs. */
export function sumPerCpu<T extends Record<string, bigint>>(buf: Buffer, codec: Codec<T>): T {
  const slots = perCpuSlots(buf, codec.size).map((s) => codec.decode(s));
  const total = { ...(slots[0] ?? codec.decode(Buffer.alloc(codec.size))) } as Record<string, bigint>;
  for (const slot of slots.slice(1)) {
    for (const [field, value] of Object.entries(slot)) total[field] = (total[field] ?? 0n) + value;
  }
  return total as T;
}

/** Reads one index of a per-CPU array of structs, summed. */
export function readPerCpuIndex<T extends Record<string, bigint>>(map: NativeMap, index: number, codec: Codec<T>): T {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  const buf = map.lookup(key);
  return buf ? sumPerCpu(buf, codec) : codec.decode(Buffer.alloc(codec.size));
}

/** Reads one index of a per-CPU array of __u64, summed. */
export function readPerCpuU64(map: NativeMap, index: number): bigint {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  const buf = map.lookup(key);
  if (!buf) return 0n;
  return perCpuSlots(buf, 8).reduce((sum, slot) => sum + slot.readBigUInt64LE(0), 0n);
}

/** Reads one index of a plain array map. */
export function readArrayIndex<T>(map: NativeMap, index: number, codec: Codec<T>): T | null {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  const buf = map.lookup(key);
  return buf ? codec.decode(buf) : null;
}
