// The upgrade hand-off (bpf/lib/handoff.h, docs/upgrades.md): during an upgrade over a conntrack
// map of another layout, the previous build's TC programs go into the new object's sl_handoff
// program array as each interface switches, so a packet of a flow they opened in the instant of
// the switch (not yet copied into the new map) is handed back to them rather than sent on
// untranslated. Emptied when the upgrade finishes, after the last copy.
import type { Logger } from 'pino';
import type { NativeAddon, NativeObject, TcDirection } from '../bpf/native.js';
import { HANDOFF } from '../bpf/sluice-structs.js';

export const HANDOFF_MAP = 'sl_handoff';
const SLOTS: Readonly<Record<TcDirection, number>> = { ingress: HANDOFF.INGRESS, egress: HANDOFF.EGRESS };

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

export class UpgradeHandoff {
  /** The previous program id in each filled slot. */
  private readonly filled = new Map<TcDirection, number>();

  constructor(private readonly native: Pick<NativeAddon, 'openProgramById'>, private readonly logger?: Logger) {}

  /**
   * The programs a TC switch is about to replace (ids from the hooks' filters) and the ones
   * replacing them: the first previous program of each hook fills its slot. Best effort: a
   * program gone meanwhile, or one the array refuses, is logged and the switch goes on.
   */
  offer(obj: NativeObject, previous: Partial<Record<TcDirection, number>>, current: Record<TcDirection, number>): void {
    for (const direction of ['ingress', 'egress'] as const) {
      const id = previous[direction];
      if (!id || id === current[direction] || this.filled.has(direction)) continue;
      try {
        const map = obj.map(HANDOFF_MAP);
        const prog = this.native.openProgramById(id);
        try {
          map.update(u32(SLOTS[direction]), u32(prog.info.fd));
        } finally {
          prog.close();
          map.close();
        }
        this.filled.set(direction, id);
        this.logger?.info({ direction, previousProgram: id }, 'upgrade: packets the new program cannot place go to the previous one until the last copy');
      } catch (err) {
        this.logger?.warn({ direction, previousProgram: id, err: (err as Error).message }, 'upgrade: no hand-off to the previous program (a flow opened in the instant of the switch may reset)');
      }
    }
  }

  /** After the last copy: the previous programs leave the array (and are freed with their last reference). */
  clear(obj: NativeObject): void {
    if (this.filled.size === 0) return;
    const map = obj.map(HANDOFF_MAP);
    try {
      for (const direction of this.filled.keys()) map.delete(u32(SLOTS[direction]));
    } finally {
      map.close();
    }
    this.filled.clear();
  }

  /** Previous program ids in the slots now (for tests and logs). */
  get slots(): ReadonlyMap<TcDirection, number> {
    return this.filled;
  }
}
