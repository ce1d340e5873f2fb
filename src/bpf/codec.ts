// Struct codecs: a TS description of a C struct, declared once, that encodes/decodes the bytes
// a BPF map holds. Offsets follow C's natural alignment; `verifyCodecAgainstBtf` checks every
// member's name, offset and size (and the struct size) against the compiled object's BTF, so the
// C header stays the single truth and any drift fails loudly.
import type { BtfStruct } from './native.js';
import { ipv4FromBuffer, ipv4ToBuffer, ipv6FromBuffer, ipv6ToBuffer } from './ip-bytes.js';

export interface Codec<T> {
  /** The C struct name, as in BTF. */
  readonly name: string;
  readonly size: number;
  readonly align: number;
  encode(value: T, buf?: Buffer, offset?: number): Buffer;
  decode(buf: Buffer, offset?: number): T;
}

/** One member's wire type. `T` is its JS value type. */
export interface FieldType<T> {
  readonly size: number;
  readonly align: number;
  /** True for padding: not part of the JS value, written as zeros. */
  readonly padding?: boolean;
  /**
   * The Buffer method that writes this (unsigned, checked) integer, e.g. 'writeUInt32LE': a
   * struct's compiled encoder calls it in place instead of going through write().
   */
  readonly bufferWriter?: string;
  write(buf: Buffer, offset: number, value: T): void;
  read(buf: Buffer, offset: number): T;
}

type PadType = FieldType<undefined> & { readonly padding: true };

const intType = (size: 1 | 2 | 4, bigEndian: boolean): FieldType<number> => {
  // Chosen once: the writer encodes hundreds of thousands of fields in a cold start.
  const limit = 2 ** (size * 8);
  const put: (buf: Buffer, v: number, off: number) => unknown =
    size === 1 ? (b, v, o) => b.writeUInt8(v, o)
      : size === 2 ? (bigEndian ? (b, v, o) => b.writeUInt16BE(v, o) : (b, v, o) => b.writeUInt16LE(v, o))
        : bigEndian ? (b, v, o) => b.writeUInt32BE(v, o) : (b, v, o) => b.writeUInt32LE(v, o);
  return {
  size,
  align: size,
  bufferWriter: size === 1 ? 'writeUInt8' : `writeUInt${size * 8}${bigEndian ? 'BE' : 'LE'}`,
  write(buf, off, v) {
    if (!Number.isInteger(v) || v < 0 || v >= limit) {
      throw new RangeError(`value ${String(v)} does not fit an unsigned ${size * 8}-bit field`);
    }
    put(buf, v, off);
  },
  read(buf, off) {
    if (size === 1) return buf.readUInt8(off);
    if (size === 2) return bigEndian ? buf.readUInt16BE(off) : buf.readUInt16LE(off);
    return bigEndian ? buf.readUInt32BE(off) : buf.readUInt32LE(off);
  },
  };
};

// Host byte order is little-endian on every architecture we build for (x86_64, arm64).
export const u8 = intType(1, false);
export const u16 = intType(2, false);
export const u32 = intType(4, false);
/** A __be16 (port) as a plain number. */
export const be16 = intType(2, true);
/** A __be32 as a plain number. */
export const be32 = intType(4, true);

export const u64: FieldType<bigint> = {
  size: 8,
  align: 8,
  write(buf, off, v) {
    buf.writeBigUInt64LE(BigInt.asUintN(64, v), off);
  },
  read(buf, off) {
    return buf.readBigUInt64LE(off);
  },
};

/** A __be32 IPv4 address as dotted quad. */
export const ipv4: FieldType<string> = {
  size: 4,
  align: 4,
  write: (buf, off, v) => ipv4ToBuffer(v, buf, off),
  read: (buf, off) => ipv4FromBuffer(buf, off),
};

/** An IPv6 address (__u32 addr[4], network order) in canonical text form. */
export const ipv6: FieldType<string> = {
  size: 16,
  align: 4,
  write: (buf, off, v) => ipv6ToBuffer(v, buf, off),
  read: (buf, off) => ipv6FromBuffer(buf, off),
};

/** A fixed char array holding a NUL-terminated UTF-8 string. */
export function cstring(size: number): FieldType<string> {
  return {
    size,
    align: 1,
    write(buf, off, v) {
      const bytes = Buffer.from(v, 'utf8');
      if (bytes.length >= size) throw new RangeError(`string of ${bytes.length} bytes does not fit char[${size}]`);
      buf.fill(0, off, off + size);
      bytes.copy(buf, off);
    },
    read(buf, off) {
      const end = buf.indexOf(0, off);
      return buf.toString('utf8', off, end < 0 || end > off + size ? off + size : end);
    },
  };
}

/** A fixed array of __u16 (host order), as a Uint16Array of exactly `length` elements. */
export function u16Array(length: number): FieldType<Uint16Array> {
  return {
    size: length * 2,
    align: 2,
    write(buf, off, v) {
      if (v.length !== length) throw new RangeError(`array of ${v.length} elements does not fit __u16[${length}]`);
      for (let i = 0; i < length; i++) buf.writeUInt16LE(v[i] as number, off + i * 2);
    },
    read(buf, off) {
      const out = new Uint16Array(length);
      for (let i = 0; i < length; i++) out[i] = buf.readUInt16LE(off + i * 2);
      return out;
    },
  };
}

/** Explicit padding bytes (a `__u8 pad[n]` or `__u16 pad` member). Align as the C member does. */
export function pad(size: number, align = 1): PadType {
  return { size, align, padding: true, write: () => undefined, read: () => undefined };
}

/** A nested struct member. */
export function nested<T>(codec: Codec<T>): FieldType<T> {
  return {
    size: codec.size,
    align: codec.align,
    write: (buf, off, v) => void codec.encode(v, buf, off),
    read: (buf, off) => codec.decode(buf, off),
  };
}

type Fields = Record<string, FieldType<unknown>>;
type ValueOf<F> = F extends FieldType<infer T> ? T : never;
/** The JS value of a struct: every non-padding member. */
export type StructValue<F extends Fields> = {
  [K in keyof F as F[K] extends PadType ? never : K]: ValueOf<F[K]>;
};

export interface StructCodec<F extends Fields> extends Codec<StructValue<F>> {
  /** Members in declaration order with their computed offsets (padding included). */
  readonly members: ReadonlyArray<{ name: string; offset: number; size: number }>;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * Declares a C struct. Members are laid out in insertion order with C's natural alignment;
 * padding the compiler would insert implicitly is an error here: declare it with pad().
 */
export function defineStruct<F extends Fields>(name: string, fields: F): StructCodec<F> {
  const members: { name: string; offset: number; size: number; type: FieldType<unknown> }[] = [];
  let offset = 0;
  let align = 1;
  for (const [member, type] of Object.entries(fields)) {
    if (alignUp(offset, type.align) !== offset) {
      throw new Error(`${name}.${member}: implicit padding before offset ${offset}; declare it with pad()`);
    }
    members.push({ name: member, offset, size: type.size, type });
    offset += type.size;
    align = Math.max(align, type.align);
  }
  if (alignUp(offset, align) !== offset) {
    throw new Error(`${name}: implicit tail padding after ${offset} bytes; declare it with pad()`);
  }
  const size = offset;
  const fastEncode = compileEncoder(members);
  // Member by member, naming the member and value that cannot be encoded.
  const encodeChecked = (value: StructValue<F>, buf: Buffer, at: number): void => {
    const record = value as Record<string, unknown>;
    for (const m of members) {
      // Every writer covers all of its member's bytes: only padding needs zeroing.
      if (m.type.padding) {
        buf.fill(0, at + m.offset, at + m.offset + m.size);
        continue;
      }
      try {
        m.type.write(buf, at + m.offset, record[m.name]);
      } catch (err) {
        const v = record[m.name];
        throw new Error(`${name}.${m.name}: cannot encode ${typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)}: ${(err as Error).message}`);
      }
    }
  };
  return {
    name,
    size,
    align,
    members: members.map(({ name: n, offset: o, size: s }) => ({ name: n, offset: o, size: s })),
    encode(value, buf = Buffer.alloc(size), at = 0) {
      try {
        fastEncode(value, buf, at);
      } catch {
        // The member-by-member encoder names the member and value that failed (and throws).
        encodeChecked(value, buf, at);
      }
      return buf;
    },
    decode(buf, at = 0) {
      if (buf.length - at < size) throw new RangeError(`${name}: need ${size} bytes, got ${buf.length - at}`);
      const out: Record<string, unknown> = {};
      for (const m of members) if (!m.type.padding) out[m.name] = m.type.read(buf, at + m.offset);
      return out as StructValue<F>;
    },
  };
}

type Member = { name: string; offset: number; size: number; type: FieldType<unknown> };

/**
 * A struct's encoder as one generated function: each member is read by a constant property name
 * and written by its own call site, so V8 sees one shape and one callee per site. The generic
 * loop (a keyed read and a write() through whichever type, per member) was ~100 ms of a
 * 10,000-Service cold start, which encodes 166,900 map elements. Member names come from the
 * struct declarations in this repository (sluice-structs.ts), never from input; any exception
 * sends the caller to the checked encoder, which reports the member and value.
 */
function compileEncoder(members: readonly Member[]): (value: unknown, buf: Buffer, at: number) => void {
  const lines = members.map((m, i) => {
    const value = `value[${JSON.stringify(m.name)}]`;
    if (m.type.padding) return `buf.fill(0, at + ${m.offset}, at + ${m.offset + m.size});`;
    // Buffer's integer writers throw on a value out of range, but accept 1.5 or '7': only integers.
    if (m.type.bufferWriter) return `{ const v = ${value}; if (!Number.isInteger(v)) throw 0; buf.${m.type.bufferWriter}(v, at + ${m.offset}); }`;
    return `w${i}(buf, at + ${m.offset}, ${value});`;
  });
  const writers = members.map((m) => m.type.write);
  const factory = new Function(...writers.map((_, i) => `w${i}`), `return function encode(value, buf, at) {\n${lines.join('\n')}\n};`) as
    (...w: FieldType<unknown>['write'][]) => (value: unknown, buf: Buffer, at: number) => void;
  return factory(...writers);
}

/** A plain scalar map key or value (e.g. a __u32 array index or a __u64 counter). */
export function scalar<T>(name: string, type: FieldType<T>): Codec<T> {
  return {
    name,
    size: type.size,
    align: type.align,
    encode(value, buf = Buffer.alloc(type.size), at = 0) {
      type.write(buf, at, value);
      return buf;
    },
    decode: (buf, at = 0) => type.read(buf, at),
  };
}

/**
 * Checks a struct codec against the BTF of the compiled object. Throws an Error naming the struct
 * and the first member that disagrees (missing, extra, renamed, moved or resized).
 */
export function verifyCodecAgainstBtf(codec: StructCodec<Fields>, btf: BtfStruct | null): void {
  if (!btf) throw new Error(`codec ${codec.name}: struct not found in the object's BTF`);
  const problems: string[] = [];
  const count = Math.max(codec.members.length, btf.members.length);
  for (let i = 0; i < count; i++) {
    const ours = codec.members[i];
    const theirs = btf.members[i];
    if (!ours) {
      problems.push(`member ${theirs?.name} (offset ${theirs?.offset}, size ${theirs?.size}) exists in C but not in the codec`);
    } else if (!theirs) {
      problems.push(`member ${ours.name} exists in the codec but not in C`);
    } else if (ours.name !== theirs.name) {
      problems.push(`member #${i} is ${theirs.name} in C but ${ours.name} in the codec`);
    } else if (ours.offset !== theirs.offset || ours.size !== theirs.size || theirs.bitfieldSize !== 0) {
      problems.push(
        `field ${ours.name}: C has offset ${theirs.offset} size ${theirs.size}` +
          `${theirs.bitfieldSize ? ` (bitfield ${theirs.bitfieldSize})` : ''}, codec has offset ${ours.offset} size ${ours.size}`,
      );
    }
  }
  if (codec.size !== btf.size) problems.push(`size: C has ${btf.size} bytes, codec has ${codec.size}`);
  if (problems.length > 0) {
    throw new Error(`codec ${codec.name} disagrees with the BTF of its struct: ${problems.join('; ')}`);
  }
}

/** Per-CPU map values: each CPU's copy sits at a stride of the value size rounded up to 8. */
export function perCpuStride(valueSize: number): number {
  return alignUp(valueSize, 8);
}

export function decodePerCpu<T>(codec: Codec<T>, buf: Buffer, cpus: number): T[] {
  const stride = perCpuStride(codec.size);
  const out: T[] = [];
  for (let cpu = 0; cpu < cpus; cpu++) out.push(codec.decode(buf, cpu * stride));
  return out;
}

export function encodePerCpu<T>(codec: Codec<T>, values: T[]): Buffer {
  const stride = perCpuStride(codec.size);
  const buf = Buffer.alloc(stride * values.length);
  values.forEach((v, cpu) => codec.encode(v, buf, cpu * stride));
  return buf;
}
