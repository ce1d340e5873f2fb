// The object store: the current Services, EndpointSlices and Nodes, written by one source (the
// API server informers or the manifest directory) and read by the reconciler as snapshots.
// Objects are replaced, never mutated in place, so a snapshot stays valid after later writes.
// The store keeps each object's slim form (src/k8s/slim.ts: the fields Sluice reads), and an
// update that changes none of them is no change — a Node's heartbeat, say, which would otherwise
// recompute every Service.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { OBJECT_KINDS, objectKey } from './kinds.js';
import type { KindTypes, KubeObject, ObjectKind } from './kinds.js';
import { sameContent } from './object-equal.js';
import { slimObject, SlimPool } from './slim.js';

/** A producer of store contents. start() begins delivering; it need not wait for the first sync. */
export interface Source {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface StoreSnapshot {
  services: V1Service[];
  endpointSlices: V1EndpointSlice[];
  nodes: V1Node[];
}

export type ChangeReason = 'added' | 'updated' | 'removed' | 'replaced' | 'synced';

export interface StoreChange {
  kind: ObjectKind;
  reason: ChangeReason;
  /** Keys of the objects that changed (empty for 'synced'). */
  keys: string[];
}

export interface KindCounters {
  /** Objects currently held. */
  objects: number;
  /** Upserts and removals received from the source, including no-ops. */
  events: number;
  /** Real changes (objects added, updated or removed). */
  changes: number;
  /** Full relists (replaceAll calls). */
  relists: number;
  /** Watches restarted for any reason other than stop (idle, 410, error, server close). */
  watchRestarts: number;
  /** Errors reported by the source (failed lists/watches, bad objects). */
  errors: number;
}

/** An object already in its slim form (ObjectStore.prepare), which the store takes as it is. */
export type Prepared<T> = T & { readonly __prepared: unique symbol };

export interface ReplaceResult {
  added: string[];
  updated: string[];
  removed: string[];
}

type Listener = (change: StoreChange) => void;

export class ObjectStore {
  private readonly objects = new Map<ObjectKind, Map<string, KubeObject>>();
  private readonly synced = new Set<ObjectKind>();
  private readonly listeners = new Set<Listener>();
  private readonly kindCounters = new Map<ObjectKind, Omit<KindCounters, 'objects'>>();
  private cachedSnapshot: StoreSnapshot | undefined;
  private readonly lastErrors = new Map<ObjectKind, { at: string; message: string }>();
  private readonly pool = new SlimPool();

  constructor() {
    for (const kind of OBJECT_KINDS) {
      this.objects.set(kind, new Map());
      this.kindCounters.set(kind, { events: 0, changes: 0, relists: 0, watchRestarts: 0, errors: 0 });
    }
  }

  /**
   * Adds or replaces one object (its slim form). Returns true when the store changed: not when
   * only fields Sluice does not read, or the resourceVersion, did. Throws on a nameless object.
   */
  upsert<K extends ObjectKind>(kind: K, given: KindTypes[K]): boolean {
    const key = this.requireKey(kind, given);
    this.counters(kind).events++;
    const obj = slimObject(kind, given, this.pool);
    const previous = this.map(kind).get(key);
    if (previous !== undefined && isUnchanged(previous, obj)) return false;
    this.map(kind).set(key, obj);
    this.changed({ kind, reason: previous === undefined ? 'added' : 'updated', keys: [key] }, 1);
    return true;
  }

  /** Removes one object by key ('namespace/name', or the name for Nodes). Returns true if it existed. */
  remove(kind: ObjectKind, key: string): boolean {
    this.counters(kind).events++;
    if (!this.map(kind).delete(key)) return false;
    this.changed({ kind, reason: 'removed', keys: [key] }, 1);
    return true;
  }

  /**
   * The slim form of `obj`, for replacePrepared: a relist slims each page as it arrives, so the
   * full objects of a 10,000-object list never all live at once.
   */
  prepare<K extends ObjectKind>(kind: K, obj: KindTypes[K]): Prepared<KindTypes[K]> {
    return slimObject(kind, obj, this.pool) as Prepared<KindTypes[K]>;
  }

  /**
   * Makes the store hold exactly `objs` for this kind (after a relist): objects missing from the
   * list are removed, unchanged ones kept as they are. One change notification for the batch.
   */
  replaceAll<K extends ObjectKind>(kind: K, objs: readonly KindTypes[K][]): ReplaceResult {
    return this.replacePrepared(kind, objs.map((obj) => this.prepare(kind, obj)));
  }

  /** replaceAll for objects from prepare(). */
  replacePrepared<K extends ObjectKind>(kind: K, objs: readonly Prepared<KindTypes[K]>[]): ReplaceResult {
    const next = new Map<string, KubeObject>();
    for (const obj of objs) next.set(this.requireKey(kind, obj), obj);
    const current = this.map(kind);
    const result: ReplaceResult = { added: [], updated: [], removed: [] };
    for (const [key, obj] of next) {
      const previous = current.get(key);
      if (previous === undefined) result.added.push(key);
      else if (!isUnchanged(previous, obj)) result.updated.push(key);
      else next.set(key, previous); // keep the identical old object: snapshots stay comparable by identity
    }
    for (const key of current.keys()) if (!next.has(key)) result.removed.push(key);
    this.objects.set(kind, next);
    const counters = this.counters(kind);
    counters.relists++;
    const keys = [...result.added, ...result.updated, ...result.removed];
    if (keys.length > 0) this.changed({ kind, reason: 'replaced', keys }, keys.length);
    return result;
  }

  get<K extends ObjectKind>(kind: K, key: string): KindTypes[K] | undefined {
    return this.map(kind).get(key) as KindTypes[K] | undefined;
  }

  keys(kind: ObjectKind): string[] {
    return [...this.map(kind).keys()].sort();
  }

  /** Marks a kind as having completed its initial list. Notifies when this changes readiness. */
  markSynced(kind: ObjectKind): void {
    if (this.synced.has(kind)) return;
    this.synced.add(kind);
    this.notify({ kind, reason: 'synced', keys: [] });
  }

  isKindSynced(kind: ObjectKind): boolean {
    return this.synced.has(kind);
  }

  /** True once every kind has completed its initial list: only then is the view complete. */
  isSynced(): boolean {
    return OBJECT_KINDS.every((kind) => this.synced.has(kind));
  }

  /** Resolves once isSynced() is true. */
  whenSynced(): Promise<void> {
    if (this.isSynced()) return Promise.resolve();
    return new Promise((resolve) => {
      const unsubscribe = this.onChange(() => {
        if (!this.isSynced()) return;
        unsubscribe();
        resolve();
      });
    });
  }

  /**
   * All objects, sorted by key. The arrays are shared until the next change: callers must not
   * mutate them or the objects in them.
   */
  snapshot(): StoreSnapshot {
    this.cachedSnapshot ??= {
      services: this.sorted('Service'),
      endpointSlices: this.sorted('EndpointSlice'),
      nodes: this.sorted('Node'),
    };
    return this.cachedSnapshot;
  }

  /** Calls `listener` after every real change and when a kind first syncs. Returns an unsubscribe. */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  recordWatchRestart(kind: ObjectKind): void {
    this.counters(kind).watchRestarts++;
  }

  /** Counts an error of the source for `kind`; `message` (already free of secrets) is kept as its last one. */
  recordError(kind: ObjectKind, message?: string): void {
    this.counters(kind).errors++;
    if (message !== undefined) this.lastErrors.set(kind, { at: new Date().toISOString(), message });
  }

  /** The last error message of each kind's source, while the source has not succeeded since. */
  recentErrors(): Array<{ kind: ObjectKind; at: string; message: string }> {
    return [...this.lastErrors].map(([kind, e]) => ({ kind, ...e }));
  }

  /** The source of `kind` works again (a list or watch succeeded): its last error is history. */
  clearError(kind: ObjectKind): void {
    this.lastErrors.delete(kind);
  }

  /** Per-kind counters, for metrics and the admin socket. */
  stats(): Record<ObjectKind, KindCounters> {
    const out = {} as Record<ObjectKind, KindCounters>;
    for (const kind of OBJECT_KINDS) out[kind] = { objects: this.map(kind).size, ...this.counters(kind) };
    return out;
  }

  private sorted<K extends ObjectKind>(kind: K): KindTypes[K][] {
    const entries = [...this.map(kind).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.map(([, obj]) => obj as KindTypes[K]);
  }

  private changed(change: StoreChange, count: number): void {
    this.counters(change.kind).changes += count;
    this.cachedSnapshot = undefined;
    this.notify(change);
  }

  private notify(change: StoreChange): void {
    for (const listener of [...this.listeners]) {
      // A failing listener must not stop the others or break the source that wrote the change.
      try {
        listener(change);
      } catch {
        // Listeners own their error reporting; the store has no logger on purpose.
      }
    }
  }

  private requireKey(kind: ObjectKind, obj: KubeObject): string {
    const key = objectKey(kind, obj);
    if (key === undefined) {
      throw new Error(`${kind}: metadata.name is missing or empty (got ${JSON.stringify(obj.metadata?.name)})`);
    }
    return key;
  }

  private map(kind: ObjectKind): Map<string, KubeObject> {
    return this.objects.get(kind) as Map<string, KubeObject>;
  }

  private counters(kind: ObjectKind): Omit<KindCounters, 'objects'> {
    return this.kindCounters.get(kind) as Omit<KindCounters, 'objects'>;
  }
}

/** Same content apart from the resourceVersion: an update that changes nothing Sluice reads. */
function isUnchanged(a: KubeObject, b: KubeObject): boolean {
  if (a.metadata?.resourceVersion === b.metadata?.resourceVersion) return sameContent(a, b);
  const withoutVersion = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return sameContent(withoutVersion(a), withoutVersion(b));
}
