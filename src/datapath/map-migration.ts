// Upgrading over pinned maps of another layout or size, without taking the node out of service.
// libbpf reuses a pinned map only when type, key/value size, max_entries and flags match, and
// never compares BTF: an agent whose sluice.h changed would be refused (EINVAL) or, worse, reuse a
// map whose members moved. Instead, for each map of the object being loaded:
//   1. before load: compare the pinned map with the object's definition (type, sizes,
//      max_entries, and the key/value layouts from BTF: the pinned map's own BTF, as the kernel
//      keeps it, against the object's). A pin that differs is moved aside to `<name>__upgrading`;
//      the old programs keep using the old map (they hold it, not the pin).
//   2. load: libbpf creates the new map beside it and pins it under the old name.
//   3. carry over: every element of the old map is translated member by member by name
//      (btf-translate.ts) and written into the new map: service and backend ids, conntrack,
//      affinity, socket reverse NAT, counters.
//   4. the agent switches the programs (cgroup links updated in place, TC filters replaced).
//   5. finish: a last pass copies the conntrack, affinity and reverse-NAT entries the old
//      programs created between 3 and 4 (only those the new map lacks), then the aside pins go.
// A smaller size (a --map-size-* flag lowered) is carried like any change, but refused before
// anything moves when a service map holds more than the new size takes (shrinkProblem): what
// is programmed is never dropped. The LRU maps (conntrack, affinity, socket rev-NAT) may shrink
// anyway: they hold flows, not configuration, and evict when full.
// A failed load puts the old pins back (restore), so the previous version can still start. An
// agent that dies between 2 and 5 leaves the aside pins: the next start carries from them again
// (never overwriting) and finishes. docs/upgrades.md says what is lost and why.
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { describeError, isBatchUnsupported } from '../bpf/errors.js';
import { MapType } from '../bpf/map-types.js';
import type { MapInfo, NativeAddon, NativeMap, NativeObject } from '../bpf/native.js';
import { mapSizeFlagOf } from '../dataplane/map-sizes.js';
import { nonZeroSlots } from '../dataplane/table-specs.js';
import type { MapTranslation } from './btf-translate.js';
import { layoutDifferences, planMapTranslation, translateElements, UntranslatableError } from './btf-translate.js';

/** bpffs refuses dots in names (reserved for its own files). */
export const ASIDE_SUFFIX = '__upgrading';
const BPF_NOEXIST = 1;

/** Maps whose entries the programs create: the last pass looks for entries made meanwhile. */
const PROGRAM_WRITTEN = new Set<number>([MapType.LRU_HASH, MapType.LRU_PERCPU_HASH]);
const PER_CPU = new Set<number>([MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH]);
const ARRAYS = new Set<number>([MapType.ARRAY, MapType.PERCPU_ARRAY]);

export interface MapCarryReport {
  map: string;
  /** Why the pinned map could not be reused. */
  reasons: string[];
  /** Elements written into the new map. */
  carried: number;
  /** Elements that could not be written (a smaller map, an index past its end), with a sample error. */
  notCarried: number;
  sampleError?: string;
  /** Old members the new layout lacks (their values are gone), and new members (zero). */
  droppedMembers: string[];
  addedMembers: string[];
  /** Set when nothing could be carried: the reason (e.g. a member changed size). */
  untranslatable?: string;
}

export interface MigrationOptions {
  native: Pick<NativeAddon, 'openPinnedMap' | 'numPossibleCpus'>;
  pinDir: string;
  logger?: Logger;
}

/** Why the map pinned at `path` cannot serve as `want` (the object's definition); empty when it can. */
export function pinIncompatibility(pinned: NativeMap, want: MapInfo, wantLayout: ReturnType<NativeObject['mapBtfLayout']>): string[] {
  const have = pinned.info;
  const reasons: string[] = [];
  for (const field of ['type', 'keySize', 'valueSize', 'maxEntries'] as const) {
    if (have[field] !== want[field]) reasons.push(`${field} ${have[field]} -> ${want[field]}`);
  }
  const haveLayout = pinned.btfLayout();
  reasons.push(...layoutDifferences('key', haveLayout?.key ?? null, wantLayout?.key ?? null));
  reasons.push(...layoutDifferences('value', haveLayout?.value ?? null, wantLayout?.value ?? null));
  return reasons;
}

/**
 * A pinned service map holds more than the size asked for it: loading would drop programmed
 * entries, so nothing is loaded or moved (the programs in place keep their maps).
 */
export class MapShrinkError extends Error {
  constructor(
    readonly map: string,
    readonly pinnedSize: number,
    readonly askedSize: number,
    /** Entries it holds (hash), or the slots up to its highest one in use (array). */
    readonly needed: number,
    what: string,
  ) {
    const flag = mapSizeFlagOf(map);
    super(`${flag ? `${flag} ${askedSize}` : `max_entries ${askedSize}`}: the pinned ${map} (size ${pinnedSize}) ${what}, more than ${askedSize} can take: ` +
      `refused, nothing changed (the programs in place keep their maps and entries); give at least ${needed}, or shrink after the Services went`);
    this.name = 'MapShrinkError';
  }
}

/**
 * Why the pinned map cannot shrink to `want.maxEntries` without losing programmed entries
 * (hash maps: more entries than that; arrays: a slot in use at or past it), or undefined.
 * LRU and per-CPU maps are not checked: flows and counters, not configuration.
 */
export function shrinkProblem(name: string, pinned: NativeMap, want: MapInfo): MapShrinkError | undefined {
  const have = pinned.info;
  if (want.maxEntries >= have.maxEntries || have.type !== want.type) return undefined;
  if (have.type === MapType.HASH) {
    const held = dumpAll(pinned, have.valueSize).count;
    return held > want.maxEntries ? new MapShrinkError(name, have.maxEntries, want.maxEntries, held, `holds ${held} entries`) : undefined;
  }
  if (have.type === MapType.ARRAY) {
    const { values, count } = dumpAll(pinned, have.valueSize);
    const used = nonZeroSlots(values, count, have.valueSize).filter((i) => i >= want.maxEntries);
    if (used.length === 0) return undefined;
    const top = used[used.length - 1] as number;
    return new MapShrinkError(name, have.maxEntries, want.maxEntries, top + 1, `uses ${used.length} slot(s) at index ${want.maxEntries} or above (the highest ${top})`);
  }
  return undefined;
}

export class MapMigration {
  private readonly cpus: number;
  /** Maps whose pins this run moved aside (fresh new maps: the first carry may overwrite). */
  private readonly setAside = new Map<string, string[]>();
  /** Maps of an interrupted upgrade, found aside at start: carried without overwriting. */
  private readonly resumed = new Set<string>();
  private readonly plans = new Map<string, MapTranslation | null>();
  readonly reports: MapCarryReport[] = [];

  constructor(private readonly opts: MigrationOptions) {
    this.cpus = opts.native.numPossibleCpus();
  }

  private pin(name: string): string {
    return join(this.opts.pinDir, name);
  }

  /** True while some old map waits to be finished (an upgrade is under way). */
  get pending(): boolean {
    return this.setAside.size + this.resumed.size > 0;
  }

  /**
   * Step 1, on an opened object before load: moves aside the pins its maps cannot reuse. Maps
   * already aside from an interrupted upgrade are picked up for carrying.
   */
  setAsideIncompatible(obj: NativeObject): void {
    for (const want of obj.maps()) {
      const path = this.pin(want.name);
      if (this.setAside.has(want.name) || this.resumed.has(want.name)) continue;
      if (existsSync(path + ASIDE_SUFFIX)) {
        this.resumed.add(want.name);
        this.opts.logger?.warn({ map: want.name }, 'an earlier upgrade was interrupted: carrying over from its old map again');
      }
      if (!existsSync(path)) continue;
      let pinned: NativeMap;
      try {
        pinned = this.opts.native.openPinnedMap(path);
      } catch {
        continue; // not a map: libbpf's own error will say so
      }
      let reasons: string[];
      try {
        reasons = pinIncompatibility(pinned, want, obj.mapBtfLayout(want.name));
        if (reasons.length === 0) continue;
        // Datapath.load's failure path puts back what this loop already moved (restore).
        const shrink = shrinkProblem(want.name, pinned, want);
        if (shrink) throw shrink;
        // An interrupted upgrade's new map, incompatible again (a third layout): the newest pin
        // is what the programs attached last use, so it replaces the older aside one.
        movePin(pinned, path, path + ASIDE_SUFFIX);
      } finally {
        pinned.close();
      }
      this.resumed.delete(want.name);
      this.setAside.set(want.name, reasons);
      this.opts.logger?.warn({ map: want.name, reasons }, 'pinned map has another layout or size: building the new map beside it');
    }
  }

  /** After a failed load: the new pins go and the old ones come back, as they were. */
  restore(): void {
    for (const name of this.setAside.keys()) {
      const path = this.pin(name);
      try {
        if (existsSync(path)) unlinkSync(path);
        const old = this.opts.native.openPinnedMap(path + ASIDE_SUFFIX);
        try {
          movePin(old, path + ASIDE_SUFFIX, path);
        } finally {
          old.close();
        }
      } catch (err) {
        this.opts.logger?.error({ map: name, err: describeError(err) }, 'could not put the old pin back');
      }
    }
    this.setAside.clear();
    this.resumed.clear();
  }

  /** Step 3, on the loaded object: translates every element of each old map into the new one. */
  carryOver(obj: NativeObject): MapCarryReport[] {
    const out: MapCarryReport[] = [];
    for (const name of [...this.setAside.keys(), ...this.resumed]) {
      if (this.plans.has(name)) continue;
      const report = this.carryMap(obj, name, this.setAside.get(name) ?? ['resumed after an interrupted upgrade'], !this.setAside.has(name));
      out.push(report);
      this.reports.push(report);
      const level = report.untranslatable || report.notCarried > 0 ? 'warn' : 'info';
      this.opts.logger?.[level]({ ...report }, 'carried a pinned map over to its new layout');
    }
    return out;
  }

  private carryMap(obj: NativeObject, name: string, reasons: string[], noOverwrite: boolean): MapCarryReport {
    const report: MapCarryReport = { map: name, reasons, carried: 0, notCarried: 0, droppedMembers: [], addedMembers: [] };
    const old = this.opts.native.openPinnedMap(this.pin(name) + ASIDE_SUFFIX);
    const fresh = obj.map(name);
    try {
      // A program array holds the previous build's programs, which only the previous programs
      // may call (they keep the old array until their pins go); libbpf filled the new one at load.
      if (fresh.info.type === MapType.PROG_ARRAY && old.info.type === MapType.PROG_ARRAY) {
        this.plans.set(name, null);
        return report;
      }
      let plan: MapTranslation;
      try {
        if (old.info.type !== fresh.info.type) throw new UntranslatableError(name, `map type changed from ${old.info.type} to ${fresh.info.type}`);
        plan = planMapTranslation(name, old.btfLayout(), obj.mapBtfLayout(name), PER_CPU.has(fresh.info.type), this.cpus);
      } catch (err) {
        if (!(err instanceof UntranslatableError)) throw err;
        report.untranslatable = err.message;
        this.plans.set(name, null);
        return report;
      }
      this.plans.set(name, plan);
      report.droppedMembers = [...plan.key.dropped, ...plan.value.dropped];
      report.addedMembers = [...plan.key.added, ...plan.value.added];
      this.copy(old, fresh, plan, noOverwrite, report);
      return report;
    } finally {
      old.close();
      fresh.close();
    }
  }

  /** Old elements, translated, into the new map; with noOverwrite only keys it lacks. */
  private copy(old: NativeMap, fresh: NativeMap, plan: MapTranslation, noOverwrite: boolean, report: MapCarryReport): void {
    const { keys, values, count } = dumpAll(old, plan.fromValueBytes);
    const isArray = ARRAYS.has(old.info.type);
    const t = translateElements(plan, keys, values, count);
    const ks = plan.key.toSize;
    const vs = plan.toValueBytes;
    const zero = Buffer.alloc(vs);
    const take: number[] = [];
    for (let i = 0; i < count; i++) {
      // An array's free slots are zeros: nothing to carry (and the new array starts zeroed).
      if (isArray && t.values.compare(zero, 0, vs, i * vs, (i + 1) * vs) === 0) continue;
      take.push(i);
    }
    const fail = (err: unknown) => {
      report.notCarried++;
      report.sampleError ??= describeError(err);
    };
    const one = (i: number, flags: number) => {
      try {
        fresh.update(t.keys.subarray(i * ks, (i + 1) * ks), t.values.subarray(i * vs, (i + 1) * vs), flags);
        report.carried++;
      } catch (err) {
        if (noOverwrite && (err as { code?: string }).code === 'EEXIST') return;
        fail(err);
      }
    };
    if (noOverwrite || isArray) {
      // Element calls: NOEXIST has no batch form, and an array index past a smaller array's end
      // must fail alone.
      for (const i of take) one(i, noOverwrite ? BPF_NOEXIST : 0);
      return;
    }
    try {
      report.carried += fresh.updateBatch(t.keys.subarray(0, count * ks), t.values.subarray(0, count * vs), count);
    } catch (err) {
      // A full map (E2BIG) or no batch support: the rest element by element, each its own fate.
      const done = isBatchUnsupported(err) ? 0 : ((err as { processed?: number }).processed ?? 0);
      report.carried += done;
      for (let i = done; i < count; i++) one(i, 0);
    }
  }

  /**
   * Step 5, once the agent has switched every program to the new maps: copies the entries the
   * old programs created meanwhile (never overwriting), then removes the old pins. The old maps
   * are freed when the last old program holding them goes.
   */
  finish(obj: NativeObject): MapCarryReport[] {
    const out = this.catchUp(obj);
    for (const name of [...this.setAside.keys(), ...this.resumed]) {
      const aside = this.pin(name) + ASIDE_SUFFIX;
      if (existsSync(aside)) unlinkSync(aside);
    }
    if (this.pending) this.opts.logger?.info({ maps: [...this.setAside.keys(), ...this.resumed], lastPass: out }, 'upgrade finished: old maps unpinned');
    this.setAside.clear();
    this.resumed.clear();
    return out;
  }

  /**
   * Copies the entries the old programs created since the carry-over into the new maps (only
   * keys the new maps lack). Run right before the TC programs are switched too: a flow the old
   * program opened meanwhile must be known to the new one before its next packet (a reply the
   * new program cannot reverse-translate resets the connection).
   */
  catchUp(obj: NativeObject): MapCarryReport[] {
    const out: MapCarryReport[] = [];
    for (const name of [...this.setAside.keys(), ...this.resumed]) {
      const plan = this.plans.get(name);
      const aside = this.pin(name) + ASIDE_SUFFIX;
      if (plan && existsSync(aside)) {
        const old = this.opts.native.openPinnedMap(aside);
        try {
          if (PROGRAM_WRITTEN.has(old.info.type)) {
            const fresh = obj.map(name);
            const report: MapCarryReport = { map: name, reasons: ['entries made by the old programs during the switch'], carried: 0, notCarried: 0, droppedMembers: [], addedMembers: [] };
            try {
              this.copy(old, fresh, plan, true, report);
            } finally {
              fresh.close();
            }
            out.push(report);
          }
        } finally {
          old.close();
        }
      }
    }
    return out;
  }
}

/**
 * Moves a map's pin (bpffs refuses rename(2) here): pinned again under `to` (replacing what is
 * there), then unpinned from `from`. The map is pinned throughout.
 */
function movePin(map: NativeMap, from: string, to: string): void {
  if (existsSync(to)) unlinkSync(to);
  map.pin(to);
  unlinkSync(from);
}

/** Every element of a map (batch lookup, or key by key where batches are unsupported). */
function dumpAll(map: NativeMap, valueBytes: number): { keys: Buffer; values: Buffer; count: number } {
  try {
    return map.lookupBatch();
  } catch (err) {
    if (!isBatchUnsupported(err)) throw err;
  }
  const keys = map.keys();
  const ks = map.info.keySize;
  const outKeys = Buffer.alloc(keys.length * ks);
  const outValues = Buffer.alloc(keys.length * valueBytes);
  let n = 0;
  for (const k of keys) {
    const v = map.lookup(k);
    if (!v) continue; // gone meanwhile (LRU eviction, a program's delete)
    k.copy(outKeys, n * ks);
    v.copy(outValues, n * valueBytes);
    n++;
  }
  return { keys: outKeys, values: outValues, count: n };
}

/** Aside pins left in pinDir (an interrupted upgrade), for status and cleanup. */
export function asidePins(pinDir: string): string[] {
  return existsSync(pinDir) ? readdirSync(pinDir).filter((n) => n.endsWith(ASIDE_SUFFIX)) : [];
}
