// Translating map elements from one layout to another, member by member by name, using the BTF
// of both sides: the pinned map's own (the kernel's copy, from the agent that created it) and the
// new object's. Raw bytes move, not decoded values: a member neither side's TypeScript codec knows
// (a field an older or newer sluice.h has) still travels when both layouts have it.
// Rules: a member in both layouts with the same size is copied (its offset may differ); a member
// only in the old layout is dropped; a member only in the new one starts as zero; a member whose
// size changed (or a bitfield) cannot be translated, nor can a non-struct type whose size or name
// changed. Padding members (pad, pad2, ...) are never copied.
import type { BtfMapLayout, BtfStruct } from '../bpf/native.js';

export interface MemberCopy {
  name: string;
  from: number;
  to: number;
  size: number;
}

export interface TypeTranslation {
  fromSize: number;
  toSize: number;
  /** The bytes are already in the new layout: copy them whole. */
  identity: boolean;
  copies: MemberCopy[];
  /** Old members with no place in the new layout (their values are lost). */
  dropped: string[];
  /** New members the old layout lacks (zero in every translated element). */
  added: string[];
}

export class UntranslatableError extends Error {
  constructor(what: string, reason: string) {
    super(`${what}: ${reason}`);
    this.name = 'UntranslatableError';
  }
}

const isPad = (name: string) => /^(__)?pad\d*$/.test(name);

function sameLayout(a: BtfStruct, b: BtfStruct): boolean {
  return a.name === b.name && a.size === b.size && a.members.length === b.members.length &&
    a.members.every((m, i) => {
      const o = b.members[i]!;
      return m.name === o.name && m.offset === o.offset && m.size === o.size && m.bitfieldSize === o.bitfieldSize;
    });
}

/** How `from`'s bytes become `to`'s; throws UntranslatableError naming the member that cannot. */
export function planTypeTranslation(what: string, from: BtfStruct | null, to: BtfStruct | null): TypeTranslation {
  if (!from || !to) throw new UntranslatableError(what, `no BTF for the ${from ? 'new' : 'old'} layout`);
  if (sameLayout(from, to)) return { fromSize: from.size, toSize: to.size, identity: true, copies: [], dropped: [], added: [] };
  if (from.members.length === 0 || to.members.length === 0) {
    // Scalars (a __u32 index, a __u64 counter): only the same type carries over.
    if (from.size === to.size && from.name === to.name && from.members.length === to.members.length) {
      return { fromSize: from.size, toSize: to.size, identity: true, copies: [], dropped: [], added: [] };
    }
    throw new UntranslatableError(what, `${from.name || 'anonymous'} (${from.size} bytes) became ${to.name || 'anonymous'} (${to.size} bytes)`);
  }
  const target = new Map(to.members.filter((m) => !isPad(m.name)).map((m) => [m.name, m]));
  const copies: MemberCopy[] = [];
  const dropped: string[] = [];
  for (const m of from.members) {
    if (isPad(m.name)) continue;
    const t = target.get(m.name);
    if (!t) {
      dropped.push(m.name);
      continue;
    }
    if (m.bitfieldSize !== 0 || t.bitfieldSize !== 0) throw new UntranslatableError(what, `member ${m.name} is a bitfield`);
    if (m.size !== t.size) throw new UntranslatableError(what, `member ${m.name} changed size from ${m.size} to ${t.size} bytes`);
    copies.push({ name: m.name, from: m.offset, to: t.offset, size: m.size });
    target.delete(m.name);
  }
  return { fromSize: from.size, toSize: to.size, identity: false, copies, dropped, added: [...target.keys()] };
}

/** Translates one element: src[srcAt, +fromSize) into dst[dstAt, +toSize) (zeroed first). */
export function translateInto(plan: TypeTranslation, src: Buffer, srcAt: number, dst: Buffer, dstAt: number): void {
  if (plan.identity) {
    src.copy(dst, dstAt, srcAt, srcAt + plan.fromSize);
    return;
  }
  dst.fill(0, dstAt, dstAt + plan.toSize);
  for (const c of plan.copies) src.copy(dst, dstAt + c.to, srcAt + c.from, srcAt + c.from + c.size);
}

/** Per-CPU values: one slot per possible CPU, each the value size rounded up to 8 bytes. */
const stride = (size: number) => Math.ceil(size / 8) * 8;

export interface MapTranslation {
  key: TypeTranslation;
  value: TypeTranslation;
  perCpu: boolean;
  cpus: number;
  /** Bytes of one element's value as user space passes it (per-CPU: all CPUs' slots). */
  fromValueBytes: number;
  toValueBytes: number;
}

export function planMapTranslation(mapName: string, from: BtfMapLayout | null, to: BtfMapLayout | null, perCpu: boolean, cpus: number): MapTranslation {
  if (!from || !to) throw new UntranslatableError(mapName, `no BTF for the ${from ? 'new' : 'old'} map`);
  const key = planTypeTranslation(`${mapName} key`, from.key, to.key);
  const value = planTypeTranslation(`${mapName} value`, from.value, to.value);
  const n = perCpu ? cpus : 1;
  return {
    key, value, perCpu, cpus,
    fromValueBytes: perCpu ? stride(value.fromSize) * n : value.fromSize,
    toValueBytes: perCpu ? stride(value.toSize) * n : value.toSize,
  };
}

/** Translates `count` elements (keys and values back to back, as a batch lookup returns them). */
export function translateElements(plan: MapTranslation, keys: Buffer, values: Buffer, count: number): { keys: Buffer; values: Buffer } {
  const outKeys = Buffer.alloc(count * plan.key.toSize);
  const outValues = Buffer.alloc(count * plan.toValueBytes);
  const slots = plan.perCpu ? plan.cpus : 1;
  const fromSlot = plan.perCpu ? stride(plan.value.fromSize) : plan.value.fromSize;
  const toSlot = plan.perCpu ? stride(plan.value.toSize) : plan.value.toSize;
  for (let i = 0; i < count; i++) {
    translateInto(plan.key, keys, i * plan.key.fromSize, outKeys, i * plan.key.toSize);
    for (let s = 0; s < slots; s++) {
      translateInto(plan.value, values, i * plan.fromValueBytes + s * fromSlot, outValues, i * plan.toValueBytes + s * toSlot);
    }
  }
  return { keys: outKeys, values: outValues };
}

/** Why two layouts differ (empty when they are the same), for logs and the compatibility check. */
export function layoutDifferences(what: string, from: BtfStruct | null, to: BtfStruct | null): string[] {
  if (!from && !to) return [];
  if (!from || !to) return [`${what}: BTF ${from ? 'missing in the new object' : 'missing on the pinned map'}`];
  if (sameLayout(from, to)) return [];
  const show = (s: BtfStruct) => `${s.name || 'anonymous'} {${s.members.map((m) => `${m.name}@${m.offset}:${m.size}`).join(' ')}} ${s.size}B`;
  return [`${what}: ${show(from)} -> ${show(to)}`];
}
