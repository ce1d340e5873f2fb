// A struct codec that follows the layout the compiled object's BTF gives its struct, instead of
// insisting on the layout declared in sluice-structs.ts. An agent built against one sluice.h
// then reads and writes maps of an object that grew members (a field appended for a later
// feature, a test build made with -DSL_UPGRADE_TEST_LAYOUT): every member the codec knows is read
// and written at the offset BTF gives it, members it does not know are written as zeros, and
// the element size is BTF's. What it cannot follow is a member it knows that BTF lacks or sized
// differently: that is a real drift, and it fails loudly naming the member.
// The exact check (verifyCodecAgainstBtf) still guards the build in test/datapath/btf-contract.
import type { FieldType, StructCodec } from './codec.js';
import { verifyCodecAgainstBtf } from './codec.js';
import type { BtfStruct } from './native.js';

type AnyStructCodec = StructCodec<Record<string, never>>;
/** Any struct codec (the declared ones of sluice-structs.ts). */
export type SomeStructCodec = StructCodec<Record<string, FieldType<unknown>>>;

export interface FollowedCodec<C> {
  codec: C;
  /** BTF members the codec does not know (written as zeros, not decoded). */
  unknownMembers: string[];
}

function isPadding(codec: AnyStructCodec, name: string): boolean {
  // Padding members decode to nothing: a zero-byte encode leaves them out of the value.
  return !(name in codec.decode(Buffer.alloc(codec.size)));
}

/** `codec` itself when BTF agrees exactly; otherwise a codec over BTF's layout (see above). */
export function codecFollowingBtf<C extends SomeStructCodec>(codec: C, btf: BtfStruct | null): FollowedCodec<C> {
  let exact: Error;
  try {
    verifyCodecAgainstBtf(codec as unknown as AnyStructCodec, btf);
    return { codec, unknownMembers: [] };
  } catch (err) {
    exact = err as Error;
  }
  if (!btf) throw exact;
  try {
    return followLayout(codec, btf);
  } catch (err) {
    throw new Error(`${exact.message}; and the codec cannot follow it: ${(err as Error).message}`);
  }
}

function followLayout<C extends SomeStructCodec>(codec: C, btf: BtfStruct): FollowedCodec<C> {
  const base = codec as unknown as AnyStructCodec;
  const sorted = [...btf.members].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (prev.offset + prev.size > sorted[i]!.offset) throw new Error(`members ${prev.name} and ${sorted[i]!.name} overlap (a union is not followed)`);
  }
  const last = sorted[sorted.length - 1];
  if (last && last.offset + last.size > btf.size) throw new Error(`member ${last.name} ends past the struct's ${btf.size} bytes`);
  const byName = new Map(btf.members.map((m) => [m.name, m]));
  const moves: Array<{ name: string; from: number; to: number; size: number }> = [];
  for (const m of base.members) {
    if (isPadding(base, m.name)) continue;
    const theirs = byName.get(m.name);
    if (!theirs) throw new Error(`member ${m.name} is missing from the object's BTF (its struct has ${btf.members.map((x) => x.name).join(', ')})`);
    if (theirs.size !== m.size || theirs.bitfieldSize !== 0) {
      throw new Error(`member ${m.name} is ${theirs.size} bytes in the object's BTF${theirs.bitfieldSize ? ' (a bitfield)' : ''}, ${m.size} in the codec`);
    }
    moves.push({ name: m.name, from: m.offset, to: theirs.offset, size: m.size });
  }
  const known = new Set(base.members.map((m) => m.name));
  const unknownMembers = btf.members.filter((m) => !known.has(m.name) && !/^pad\d*$/.test(m.name)).map((m) => m.name);
  const size = btf.size;
  // Through the declared codec: encode into its own layout, then move each member to BTF's
  // offset (and the reverse to decode). The declared codec keeps its range checks and messages.
  const followed = {
    name: base.name,
    size,
    align: base.align,
    members: btf.members.map((m) => ({ name: m.name, offset: m.offset, size: m.size })),
    encode(value: never, buf: Buffer = Buffer.alloc(size), at = 0): Buffer {
      const own = base.encode(value);
      buf.fill(0, at, at + size);
      for (const mv of moves) own.copy(buf, at + mv.to, mv.from, mv.from + mv.size);
      return buf;
    },
    decode(buf: Buffer, at = 0): never {
      if (buf.length - at < size) throw new RangeError(`${base.name}: need ${size} bytes, got ${buf.length - at}`);
      const own = Buffer.alloc(base.size);
      for (const mv of moves) buf.copy(own, mv.from, at + mv.to, at + mv.to + mv.size);
      return base.decode(own) as never;
    },
  };
  return { codec: followed as unknown as C, unknownMembers };
}

/** Codecs by struct name, each following the BTF `structOf` gives for it. */
export function codecsFollowingBtf(
  codecs: readonly SomeStructCodec[],
  structOf: (name: string) => BtfStruct | null,
): { layouts: Map<string, SomeStructCodec>; unknownMembers: Record<string, string[]> } {
  const layouts = new Map<string, SomeStructCodec>();
  const unknownMembers: Record<string, string[]> = {};
  for (const c of codecs) {
    const { codec, unknownMembers: extra } = codecFollowingBtf(c, structOf(c.name));
    if (codec !== c) layouts.set(c.name, codec);
    if (extra.length > 0) unknownMembers[c.name] = extra;
  }
  return { layouts, unknownMembers };
}
