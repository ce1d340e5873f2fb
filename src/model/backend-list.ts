// The endpoint sets of a Service port as the model outputs them: packed, five slots per backend in
// one array, not a Backend object each. At 10,000 Services × 10 endpoints the model holds 131,500
// backends between syncs; as objects (88 bytes plus a slot each, arrays grown with spare room)
// they were ~13 MB of the agent's heap, packed they are ~5.5 MB. Read by index (no object
// built, as the writer does) or as Backend objects built on demand (at(), iteration, toArray()).
import type { Backend } from './types.js';

/** Slots per backend: ip, port, nodeName, zone, flags. */
const STRIDE = 5;
const LOCAL = 1;
const READY = 2;
const SERVING = 4;
const TERMINATING = 8;

type Slot = string | number | null;

const flagsOf = (b: Backend): number =>
  (b.local ? LOCAL : 0) | (b.ready ? READY : 0) | (b.serving ? SERVING : 0) | (b.terminating ? TERMINATING : 0);

/**
 * An immutable list of backends. Values are kept as given, unchecked (a bad port stays that bad
 * port): the dataplane validates what it programs and names the field, e.g. clusterBackends[0].port.
 */
export class BackendList implements Iterable<Backend> {
  static readonly EMPTY = new BackendList([]);

  private constructor(private readonly slots: readonly Slot[]) {}

  static of(backends: readonly Backend[]): BackendList {
    if (backends.length === 0) return BackendList.EMPTY;
    const slots = new Array<Slot>(backends.length * STRIDE);
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i] as Backend;
      const at = i * STRIDE;
      slots[at] = b.ip;
      slots[at + 1] = b.port;
      slots[at + 2] = b.nodeName;
      slots[at + 3] = b.zone;
      slots[at + 4] = flagsOf(b);
    }
    return new BackendList(slots);
  }

  get length(): number {
    return this.slots.length / STRIDE;
  }

  ip(i: number): string {
    return this.slots[i * STRIDE] as string;
  }

  port(i: number): number {
    return this.slots[i * STRIDE + 1] as number;
  }

  nodeName(i: number): string | null {
    return this.slots[i * STRIDE + 2] as string | null;
  }

  zone(i: number): string | null {
    return this.slots[i * STRIDE + 3] as string | null;
  }

  private flags(i: number): number {
    return this.slots[i * STRIDE + 4] as number;
  }

  local(i: number): boolean {
    return (this.flags(i) & LOCAL) !== 0;
  }

  terminating(i: number): boolean {
    return (this.flags(i) & TERMINATING) !== 0;
  }

  /** Backend i as an object (a new one each call); undefined outside [0, length). */
  at(i: number): Backend | undefined {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) return undefined;
    const flags = this.flags(i);
    return {
      ip: this.ip(i),
      port: this.port(i),
      nodeName: this.nodeName(i),
      zone: this.zone(i),
      local: (flags & LOCAL) !== 0,
      ready: (flags & READY) !== 0,
      serving: (flags & SERVING) !== 0,
      terminating: (flags & TERMINATING) !== 0,
    };
  }

  toArray(): Backend[] {
    const out = new Array<Backend>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.at(i) as Backend;
    return out;
  }

  map<T>(fn: (b: Backend, i: number) => T): T[] {
    return this.toArray().map(fn);
  }

  *[Symbol.iterator](): Iterator<Backend> {
    for (let i = 0; i < this.length; i++) yield this.at(i) as Backend;
  }

  /** Same backends, same order, every field. */
  equals(other: BackendList): boolean {
    if (other === this) return true;
    if (other.slots.length !== this.slots.length) return false;
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i] !== other.slots[i]) return false;
    return true;
  }

  /** As Backend objects: what JSON.stringify, structured logs and test diffs show. */
  toJSON(): Backend[] {
    return this.toArray();
  }
}
