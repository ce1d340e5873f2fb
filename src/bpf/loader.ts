// Opening and loading a BPF object the way the agent (and tests) need it: codecs and constants
// checked against the object's BTF before anything reaches the kernel, rodata constants and map
// sizes set, load off the main thread, and libbpf's own messages forwarded to pino at matching levels, also
// (especially) when something fails.
import type { Logger } from 'pino';
import { verifyCodecAgainstBtf } from './codec.js';
import type { ConstantMirror } from './constants.js';
import { verifyMirrorAgainstBtf } from './constants.js';
import { isNativeError } from './errors.js';
import type { NativeAddon, NativeObject, RodataVariable } from './native.js';
import { loadNative } from './native.js';
import { drainLibbpfLog as logLibbpfLines } from '../log/libbpf.js';

/** A value for a `const volatile` global: raw bytes, or a number/bigint/boolean to encode. */
export type RodataValue = Buffer | number | bigint | boolean;

type StructCodecArg = Parameters<typeof verifyCodecAgainstBtf>[0];

export interface OpenBpfObjectOptions {
  /** bpffs directory for LIBBPF_PIN_BY_NAME maps (reused when already pinned there). */
  pinRoot?: string;
  /** `const volatile` globals to set before load, by name. */
  rodata?: Record<string, RodataValue>;
  /** Map sizes to set before load, by map name. */
  maxEntries?: Record<string, number>;
  /** Struct codecs that must match the object's BTF; any drift fails before load. */
  codecs?: readonly StructCodecArg[];
  /** Constant mirrors that must match the object's BTF enums; any drift fails before load. */
  constants?: readonly ConstantMirror[];
  /** libbpf's messages go to a child logger ({ component: 'libbpf' }). */
  logger?: Logger;
  /** The addon (default: the compiled one). */
  addon?: NativeAddon;
  /**
   * Runs on the opened object after rodata and map sizes are set, just before load: checks of
   * the object's BTF and its maps against what is pinned (src/datapath/map-migration.ts).
   */
  beforeLoad?: (obj: NativeObject) => void;
  /**
   * Runs after beforeLoad: an object whose programs are in the kernel already, returned instead
   * of loading (src/datapath/program-reuse.ts), or null to load as usual.
   */
  reuse?: (obj: NativeObject) => NativeObject | null;
  /** Runs right after a successful load (e.g. pins the programs for the next start). */
  afterLoad?: (obj: NativeObject) => void;
}

/** Forwards the libbpf messages collected so far to logger (or drops them when there is none). */
export function drainLibbpfLog(addon: NativeAddon, logger?: Logger): void {
  if (logger) logLibbpfLines(addon, logger);
  else addon.drainLog();
}

/**
 * The child logger for libbpf's messages about one object. `source`, not `component`: the
 * parent already has a component (pino would print the key twice), and libbpf lines carry
 * `libbpfLevel` to tell them apart.
 */
export function libbpfLogger(logger: Logger | undefined, objectPath: string): Logger | undefined {
  return logger?.child({ source: 'libbpf', object: objectPath });
}

/**
 * Encodes a number/bigint/boolean as the little-endian unsigned integer of the variable's size
 * (1, 2, 4 or 8 bytes); Buffers pass through (the addon checks their size).
 */
export function encodeRodataValue(variable: RodataVariable, value: RodataValue): Buffer {
  if (Buffer.isBuffer(value)) return value;
  const where = `rodata variable '${variable.name}' (${variable.size} bytes)`;
  const big = typeof value === 'boolean' ? (value ? 1n : 0n) : typeof value === 'bigint' ? value : null;
  if (big === null && (typeof value !== 'number' || !Number.isInteger(value))) {
    throw new RangeError(`${where}: ${String(value)} is not an integer`);
  }
  if (![1, 2, 4, 8].includes(variable.size)) {
    throw new RangeError(`${where}: only 1, 2, 4 or 8-byte integers can be set from a number; pass a Buffer`);
  }
  const n = big ?? BigInt(value as number);
  const bits = BigInt(variable.size * 8);
  if (n < -(1n << (bits - 1n)) || n >= 1n << bits) {
    throw new RangeError(`${where}: ${String(value)} does not fit`);
  }
  const eight = Buffer.alloc(8);
  eight.writeBigUInt64LE(BigInt.asUintN(64, n));
  return eight.subarray(0, variable.size);
}

/** Opens, configures and loads `path`; returns the loaded object (close it when done). */
export async function openBpfObject(path: string, opts: OpenBpfObjectOptions = {}): Promise<NativeObject> {
  const addon = opts.addon ?? loadNative();
  const log = libbpfLogger(opts.logger, path);
  let obj: NativeObject | undefined;
  try {
    obj = addon.openObject(path, opts.pinRoot === undefined ? {} : { pinRoot: opts.pinRoot });
    for (const codec of opts.codecs ?? []) verifyCodecAgainstBtf(codec, obj.btfStruct(codec.name));
    for (const mirror of opts.constants ?? []) verifyMirrorAgainstBtf(mirror, obj.btfEnum(mirror.enumName));
    const variables = new Map(obj.rodataVariables().map((v) => [v.name, v]));
    for (const [name, value] of Object.entries(opts.rodata ?? {})) {
      const variable = variables.get(name);
      if (!variable) {
        throw new Error(`${path}: no const volatile variable '${name}' (has: ${[...variables.keys()].join(', ') || 'none'})`);
      }
      obj.setRodata(name, encodeRodataValue(variable, value));
    }
    for (const [mapName, entries] of Object.entries(opts.maxEntries ?? {})) obj.setMaxEntries(mapName, entries);
    opts.beforeLoad?.(obj);
    const reused = opts.reuse?.(obj);
    if (reused) {
      drainLibbpfLog(addon, log);
      return reused;
    }
    await obj.load();
    drainLibbpfLog(addon, log);
    opts.afterLoad?.(obj);
    return obj;
  } catch (err) {
    // libbpf's warnings say why when the kernel never saw a program (a missing kfunc, BTF type
    // or map feature): logged, and kept on the error for callers that report it.
    const lines = addon.drainLog();
    if (log) logLibbpfLines({ drainLog: () => lines }, log);
    if (err instanceof Error) Object.assign(err, { libbpfWarnings: lines.filter((l) => l.level === 'warn').map((l) => String(l.message).trimEnd()) });
    if (isNativeError(err) && err.verifierLog) {
      log?.error({ program: err.program, verifierLog: err.verifierLog }, 'verifier rejected a program');
    }
    obj?.close();
    throw err;
  }
}
