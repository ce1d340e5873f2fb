// The loader's upgrade hooks, in one place: the struct codecs follow the BTF of the object being
// loaded (src/bpf/btf-codec.ts), and pinned maps of another layout or size are migrated
// (map-migration.ts). Datapath.load calls beforeLoad on every object it opens, afterLoad once
// each is loaded, restore when a load fails; the agent calls finish once its programs are
// attached (cgroup links updated, TC filters replaced).
import type { Logger } from 'pino';
import { codecsFollowingBtf } from '../bpf/btf-codec.js';
import type { NativeAddon, NativeObject, TcDirection } from '../bpf/native.js';
import { allStructCodecs } from '../bpf/sluice-structs.js';
import type { StructLayouts } from '../dataplane/table-specs.js';
import type { MapCarryReport } from './map-migration.js';
import { MapMigration } from './map-migration.js';
import { UpgradeHandoff } from './handoff.js';

export class DatapathUpgrade {
  private readonly migration: MapMigration;
  /** Codecs following the first object's BTF, where it differs from the declared ones. */
  layouts: StructLayouts = new Map();
  private first = true;
  private readonly handoff: UpgradeHandoff;

  constructor(private readonly opts: { native: Pick<NativeAddon, 'openPinnedMap' | 'numPossibleCpus' | 'openProgramById'>; pinDir: string; logger?: Logger }) {
    this.migration = new MapMigration(opts);
    this.handoff = new UpgradeHandoff(opts.native, opts.logger);
  }

  /** For openBpfObject's `beforeLoad`: codecs against the object's BTF, then the pinned maps. */
  readonly beforeLoad = (obj: NativeObject): void => {
    const { layouts, unknownMembers } = codecsFollowingBtf(allStructCodecs, (n) => obj.btfStruct(n));
    if (this.first) {
      this.layouts = layouts;
      this.first = false;
      if (layouts.size > 0) {
        this.opts.logger?.warn({ object: obj.path, structs: [...layouts.keys()], unknownMembers },
          'the object\'s structs differ from this build\'s codecs: following its BTF (unknown members are written as zero)');
      }
    }
    this.migration.setAsideIncompatible(obj);
  };

  /** Carries the old maps' elements into the new ones (once per map). */
  afterLoad(obj: NativeObject): MapCarryReport[] {
    return this.migration.carryOver(obj);
  }

  /** A load failed: the old pins are put back. */
  restore(): void {
    this.migration.restore();
  }

  /** True while old maps wait for finish(). */
  get pending(): boolean {
    return this.migration.pending;
  }

  /** Before switching programs: what the old programs created since the carry-over. */
  catchUp(obj: NativeObject): MapCarryReport[] {
    return this.migration.catchUp(obj);
  }

  /**
   * A TC switch is about to replace `previous` (program ids) by `current` while maps are being
   * carried: the previous programs take the packets the new ones cannot place (handoff.ts).
   */
  handOff(obj: NativeObject, previous: Partial<Record<TcDirection, number>>, current: Record<TcDirection, number>): void {
    if (this.pending) this.handoff.offer(obj, previous, current);
  }

  /** The previous programs in the hand-off slots now. */
  get handoffSlots(): ReadonlyMap<TcDirection, number> {
    return this.handoff.slots;
  }

  /**
   * Every program now uses the new maps: last copy of what the old programs made, old pins go,
   * then the hand-off ends (the previous programs open no flow after the switch, so the last
   * copy has every flow they know).
   */
  finish(obj: NativeObject): MapCarryReport[] {
    const out = this.migration.finish(obj);
    this.handoff.clear(obj);
    return out;
  }

  /** What the carry-over did, per map (empty when no map needed it). */
  get reports(): readonly MapCarryReport[] {
    return this.migration.reports;
  }
}
