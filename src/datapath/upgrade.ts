// The loader's upgrade hooks, in one place: the struct codecs follow the BTF of the object being
// loaded (src/bpf/btf-codec.ts), and pinned maps of another layout or size are migrated
// (map-migration.ts). Datapath.load calls beforeLoad on every object it opens, afterLoad once
// each is loaded, restore when a load fails; the agent calls finish once its programs are
// attached (cgroup links updated, TC filters replaced).
import type { Logger } from 'pino';
import { codecsFollowingBtf } from '../bpf/btf-codec.js';
import type { NativeAddon, NativeObject } from '../bpf/native.js';
import { allStructCodecs } from '../bpf/sluice-structs.js';
import type { StructLayouts } from '../dataplane/table-specs.js';
import type { MapCarryReport } from './map-migration.js';
import { MapMigration } from './map-migration.js';

export class DatapathUpgrade {
  private readonly migration: MapMigration;
  /** Codecs following the first object's BTF, where it differs from the declared ones. */
  layouts: StructLayouts = new Map();
  private first = true;

  constructor(private readonly opts: { native: Pick<NativeAddon, 'openPinnedMap' | 'numPossibleCpus'>; pinDir: string; logger?: Logger }) {
    this.migration = new MapMigration(opts);
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

  /** Every program now uses the new maps: last copy of what the old programs made, old pins go. */
  finish(obj: NativeObject): MapCarryReport[] {
    return this.migration.finish(obj);
  }

  /** What the carry-over did, per map (empty when no map needed it). */
  get reports(): readonly MapCarryReport[] {
    return this.migration.reports;
  }
}
