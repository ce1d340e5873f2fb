// Reusing the previous start's programs (issue 17, docs/upgrades.md#restarts): loading the four
// objects costs the kernel's verifier seconds of CPU at every start, although a restart of the
// same build with the same flags would load byte-for-byte the programs already attached. So each
// load pins its programs under <pinDir>/progs/<object>-<identity>/<program>, where the identity
// digests everything that makes the loaded programs what they are: the object file's bytes, the
// libbpf version, every map's definition as configured (sizes set by flags), and the initial
// bytes of the internal maps (.rodata: the tunables). The next start opens and configures the
// object as usual (BTF checks, the upgrade hooks), computes the identity, and when a generation of
// that identity is pinned and still uses the maps pinned now, takes its programs instead of
// loading: no BPF_PROG_LOAD, the same program ids, and attaching them again changes nothing.
//
// Reuse is refused, and the object loaded as before, when anything is in doubt:
// - no generation of this identity (first start, another build, a changed flag);
// - a program pin or a map pin is missing (a map would be created anew at load);
// - a program uses a map that is not the one pinned under its name now (re-created by a
//   migration, or by hand), or a map that is none of the object's;
// - a pinned program array (sl_host6_progs) holds a program of another generation or an empty
//   slot: a load of another generation over the same pins refilled it;
// - an unpinned program array (sl_handoff) is not empty: someone else fills it;
// - an upgrade over migrated maps is under way (the caller's `enabled`).
// Maps the object does not pin (.rodata, sl_handoff) are the reused programs' own instances,
// found through their map ids: the agent never touches an instance they do not use.
// Caveat for new BPF code: an unpinned program array filled at load (a static initializer) is
// emptied when the loading agent exits, and reuse would keep it empty: pin it, as sl_host6_progs.
//
// A start that loads pins the new generation; once every object is loaded or reused, the other
// generations' pins go (prune): their programs live on only as long as something attached holds
// them. Cleanup (uninstall) removes every generation.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { describeError } from '../bpf/errors.js';
import { MapType } from '../bpf/map-types.js';
import type { BtfEnum, BtfMapLayout, BtfStruct, MapInfo, NativeAddon, NativeMap, NativeObject, NativeProgram, ProgramInfo, RodataVariable } from '../bpf/native.js';

/** Under the pin directory: one directory of program pins per generation. */
export const PROGS_DIR = 'progs';
/** Changes when what the identity covers, or how a generation is pinned, changes. */
const IDENTITY_FORMAT = 'sluice-program-reuse/1';
/** The kernel keeps object names to 15 characters. */
const KERNEL_NAME_LEN = 15;

type ReuseNative = Pick<NativeAddon, 'openPinnedMap' | 'openMapById' | 'libbpfVersion'>;

/** How one object came to run at this start. */
export interface ObjectStart {
  /** The object file's name without .bpf.o: tc, host, connect, sockdestroy. */
  object: string;
  /** Its identity (see above), as in the generation's directory name. */
  identity: string;
  reused: boolean;
  /** Why the previous start's programs could not be reused (when loaded). */
  notReused?: string;
}

/** 'tc' for /x/tc.bpf.o. */
export function objectStem(path: string): string {
  return basename(path).replace(/(\.bpf)?\.o$/, '');
}

/**
 * The identity of an opened, configured (not loaded) object: its bytes, the libbpf that loads
 * it, every map's definition and the internal maps' initial bytes, every program's section.
 */
export function objectIdentity(obj: NativeObject, libbpfVersion: string): string {
  const hash = createHash('sha256');
  const add = (part: string | Buffer) => hash.update(part).update('\0');
  add(IDENTITY_FORMAT);
  add(libbpfVersion);
  add(readFileSync(obj.path));
  for (const m of obj.maps()) {
    add(JSON.stringify([m.name, m.type, m.keySize, m.valueSize, m.maxEntries, m.pinPath ?? null]));
    add(obj.mapInitialValue(m.name) ?? '-');
  }
  for (const p of obj.programs()) add(JSON.stringify([p.name, p.section, p.type]));
  return hash.digest('hex').slice(0, 16);
}

export const generationDir = (pinDir: string, object: string, identity: string): string => join(pinDir, PROGS_DIR, `${object}-${identity}`);

class Refusal extends Error {}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** The program ids in a program array's slots, by syscall lookup (0: empty). */
function slotProgramIds(map: NativeMap): number[] {
  const out: number[] = [];
  for (let slot = 0; slot < map.info.maxEntries; slot++) out.push(map.lookup(u32(slot))?.readUInt32LE(0) ?? 0);
  return out;
}

/**
 * An object whose programs an earlier start loaded and pinned: the NativeObject surface the
 * datapath uses, over the opened (never loaded) object for BTF and definitions, the pinned
 * programs, and the map instances those programs use. Closing it closes all three.
 */
export class ReusedObject implements NativeObject {
  constructor(
    private readonly opened: NativeObject,
    private readonly progs: ReadonlyMap<string, NativeProgram>,
    /** Every map the programs use, and every pinned map of the object, by the object's name. */
    private readonly instances: ReadonlyMap<string, NativeMap>,
    private readonly native: Pick<NativeAddon, 'openMapById'>,
  ) {}

  get path(): string {
    return this.opened.path;
  }

  setRodata(): void {
    throw new Error(`${this.path}: reused programs are loaded already; configure before reuse`);
  }

  setMaxEntries(): void {
    this.setRodata();
  }

  rodataVariables(): RodataVariable[] {
    return this.opened.rodataVariables();
  }

  load(): Promise<void> {
    return Promise.reject(new Error(`${this.path}: reused programs are loaded already`));
  }

  /** The object's maps with the ids of the instances in use (an unused unpinned map: id 0, fd -1). */
  maps(): MapInfo[] {
    return this.opened.maps().map((def) => {
      const instance = this.instances.get(def.name);
      return instance ? { ...instance.info, name: def.name, ...(def.pinPath ? { pinPath: def.pinPath } : {}) } : def;
    });
  }

  programs(): ProgramInfo[] {
    return [...this.progs.values()].map((p) => p.info);
  }

  /** A new handle on the instance the programs use (its name is the kernel's, cut at 15 characters). */
  map(name: string): NativeMap {
    const instance = this.instances.get(name);
    if (!instance) throw Object.assign(new Error(`${this.path}: no map '${name}' among those the reused programs use`), { code: 'ENOENT' });
    return this.native.openMapById(instance.info.id);
  }

  /** A new handle on the reused program (by id: it lives as long as this object holds it). */
  program(name: string): NativeProgram {
    const prog = this.progs.get(name);
    if (!prog) throw Object.assign(new Error(`${this.path}: no program '${name}'`), { code: 'ENOENT' });
    return this.opened.loadedProgram(name, prog.info.id);
  }

  loadedProgram(name: string, pinPathOrId: string | number): NativeProgram {
    return this.opened.loadedProgram(name, pinPathOrId);
  }

  mapInitialValue(name: string): Buffer | null {
    return this.opened.mapInitialValue(name);
  }

  btfStruct(name: string): BtfStruct | null {
    return this.opened.btfStruct(name);
  }

  btfEnum(name: string): BtfEnum | null {
    return this.opened.btfEnum(name);
  }

  mapBtfLayout(mapName: string): BtfMapLayout | null {
    return this.opened.mapBtfLayout(mapName);
  }

  close(): void {
    for (const p of this.progs.values()) p.close();
    for (const m of this.instances.values()) m.close();
    this.opened.close();
  }
}

/**
 * The generation pinned at `dir` for `opened` (configured, not loaded) as a ReusedObject, or why
 * it cannot serve. On success the ReusedObject owns `opened`; otherwise the caller still does.
 */
export function reuseGeneration(opened: NativeObject, dir: string, native: Pick<NativeAddon, 'openPinnedMap' | 'openMapById'>): ReusedObject | string {
  if (!existsSync(dir)) return 'no programs pinned for this build and configuration';
  const held: Array<{ close(): void }> = [];
  try {
    const progs = new Map<string, NativeProgram>();
    for (const { name } of opened.programs()) {
      const pin = join(dir, name);
      if (!existsSync(pin)) throw new Refusal(`program ${name} is not pinned`);
      const prog = opened.loadedProgram(name, pin);
      held.push(prog);
      progs.set(name, prog);
    }
    const defs = opened.maps();
    const instances = new Map<string, NativeMap>();
    const pinnedIds = new Map<number, string>();
    for (const def of defs) {
      if (!def.pinPath) continue;
      if (!existsSync(def.pinPath)) throw new Refusal(`map ${def.name} is not pinned (a load creates it)`);
      const map = native.openPinnedMap(def.pinPath);
      held.push(map);
      instances.set(def.name, map);
      pinnedIds.set(map.info.id, def.name);
    }
    const used = new Set([...progs.values()].flatMap((p) => p.mapIds()));
    for (const id of used) {
      if (pinnedIds.has(id)) continue;
      const map = native.openMapById(id);
      held.push(map);
      const named = defs.filter((d) => d.name.slice(0, KERNEL_NAME_LEN) === map.info.name);
      const pinned = named.find((d) => d.pinPath);
      if (pinned) {
        throw new Refusal(`map ${pinned.name} was re-created: the programs use map id ${id}, the pin holds id ${instances.get(pinned.name)?.info.id}`);
      }
      if (named.length !== 1) throw new Refusal(`the programs use map id ${id} (${map.info.name}), which is not one of the object's maps`);
      const def = named[0] as MapInfo;
      if (map.info.type === MapType.PROG_ARRAY && slotProgramIds(map).some((p) => p !== 0)) {
        throw new Refusal(`the unpinned program array ${def.name} is not empty (another loader holds it)`);
      }
      instances.set(def.name, map);
    }
    const generation = new Set([...progs.values()].map((p) => p.info.id));
    for (const [name, map] of instances) {
      if (map.info.type !== MapType.PROG_ARRAY || !pinnedIds.has(map.info.id) || !used.has(map.info.id)) continue;
      const slots = slotProgramIds(map);
      const stray = slots.findIndex((p) => !generation.has(p));
      if (stray >= 0) throw new Refusal(`${name} slot ${stray} holds ${slots[stray] ? `program ${slots[stray]}, of another generation` : 'no program'}`);
    }
    return new ReusedObject(opened, progs, instances, native);
  } catch (err) {
    for (const h of held) h.close();
    if (err instanceof Refusal) return err.message;
    return `checking the pinned programs failed: ${describeError(err)}`;
  }
}

/** Removes a generation's program pins and its directory. Returns how many pins went. */
function removeGeneration(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    unlinkSync(join(dir, name));
    n++;
  }
  rmdirSync(dir);
  return n;
}

/**
 * Every generation's program pins under pinDir, and the progs directory (cleanup, uninstall).
 * Returns how many pins went; problems are pushed to `problems`.
 */
export function removeProgramPins(pinDir: string, problems: string[] = [], keep: ReadonlySet<string> = new Set()): number {
  const root = join(pinDir, PROGS_DIR);
  if (!existsSync(root)) return 0;
  let n = 0;
  for (const name of readdirSync(root)) {
    if (keep.has(name)) continue;
    try {
      n += removeGeneration(join(root, name));
    } catch (err) {
      problems.push(`program pins ${name}: ${describeError(err)}`);
    }
  }
  if (keep.size === 0) {
    try {
      rmdirSync(root);
    } catch (err) {
      problems.push(`${root}: ${describeError(err)}`);
    }
  }
  return n;
}

export interface ProgramGenerationsOptions {
  native: ReuseNative;
  pinDir: string;
  logger?: Logger;
  /** Why reuse is off right now (checked at each object), or null when it may go ahead. */
  refuse?: () => string | null;
}

/** One start's reuse-or-load decisions, the generations it pinned, and the pruning of the others. */
export class ProgramGenerations {
  readonly starts: ObjectStart[] = [];
  private readonly identities = new WeakMap<NativeObject, ObjectStart>();
  private readonly pinned: string[] = [];

  constructor(private readonly opts: ProgramGenerationsOptions) {}

  private dirOf(start: ObjectStart): string {
    return generationDir(this.opts.pinDir, start.object, start.identity);
  }

  /**
   * For openBpfObject's `reuse`: on the opened, configured object, the previous generation's
   * programs, or null to load (the reason is logged and kept in `starts`).
   */
  readonly reuse = (opened: NativeObject): NativeObject | null => {
    const start: ObjectStart = { object: objectStem(opened.path), identity: '', reused: false };
    this.identities.set(opened, start);
    try {
      start.identity = objectIdentity(opened, this.opts.native.libbpfVersion());
    } catch (err) {
      // Never a reason to fail the start: it loads, and pins nothing.
      start.notReused = `no identity: ${describeError(err)}`;
      return null;
    }
    const refused = this.opts.refuse?.() ?? null;
    const outcome = refused ?? reuseGeneration(opened, this.dirOf(start), this.opts.native);
    if (typeof outcome === 'string') {
      start.notReused = outcome;
      return null;
    }
    start.reused = true;
    this.starts.push(start);
    this.opts.logger?.info({ object: start.object, identity: start.identity, programs: Object.fromEntries(outcome.programs().map((p) => [p.name, p.id])) },
      'reusing the previous start\'s programs (no load, no verification)');
    return outcome;
  };

  /**
   * For openBpfObject's `afterLoad`: pins the freshly loaded programs as this identity's
   * generation. A failure to pin costs the next start its reuse, never this start.
   */
  readonly afterLoad = (loaded: NativeObject): void => {
    const start = this.identities.get(loaded) ?? { object: objectStem(loaded.path), identity: '', reused: false, notReused: 'not checked' };
    this.starts.push(start);
    this.opts.logger?.info({ object: start.object, identity: start.identity, notReused: start.notReused }, 'loaded the programs (previous start\'s not reused)');
    if (!start.identity) return;
    const dir = this.dirOf(start);
    try {
      if (existsSync(dir)) removeGeneration(dir); // a generation that failed its check: replaced
      mkdirSync(dir, { recursive: true });
      this.pinned.push(dir);
      for (const { name } of loaded.programs()) {
        const prog = loaded.program(name);
        try {
          prog.pin(join(dir, name));
        } finally {
          prog.close();
        }
      }
    } catch (err) {
      this.opts.logger?.warn({ object: start.object, dir, err: describeError(err) }, 'could not pin the programs: the next start loads them again');
    }
  };

  /** Once every object is loaded or reused: the pins of every other generation go. */
  prune(): void {
    const keep = new Set(this.starts.map((s) => `${s.object}-${s.identity}`));
    const problems: string[] = [];
    const removed = removeProgramPins(this.opts.pinDir, problems, keep);
    if (removed > 0) this.opts.logger?.info({ pins: removed }, 'removed the program pins of earlier generations');
    if (problems.length > 0) this.opts.logger?.warn({ problems }, 'could not remove some program pins of earlier generations');
  }

  /** The start failed: the generations it pinned go (the previous ones stay, still attached). */
  abandon(): void {
    for (const dir of this.pinned.splice(0)) {
      try {
        if (existsSync(dir)) removeGeneration(dir);
      } catch (err) {
        this.opts.logger?.warn({ dir, err: describeError(err) }, 'could not remove the program pins of a failed start');
      }
    }
  }
}
