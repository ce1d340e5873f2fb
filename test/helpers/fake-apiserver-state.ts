// The object state of the fake API server: current objects per kind, one global resourceVersion
// counter and a bounded event history, as etcd plus the watch cache present them to clients.
import { randomUUID } from 'node:crypto';
import { matchesLabels } from './fake-label-selector.js';
import type { LabelSelector } from './fake-label-selector.js';

export type FakeKind = 'Service' | 'EndpointSlice' | 'Node';

export interface ResourceInfo {
  kind: FakeKind;
  listKind: string;
  apiVersion: string;
  /** Collection path across all namespaces. */
  path: string;
  namespaced: boolean;
}

export const RESOURCES: readonly ResourceInfo[] = [
  { kind: 'Service', listKind: 'ServiceList', apiVersion: 'v1', path: '/api/v1/services', namespaced: true },
  {
    kind: 'EndpointSlice',
    listKind: 'EndpointSliceList',
    apiVersion: 'discovery.k8s.io/v1',
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    namespaced: true,
  },
  { kind: 'Node', listKind: 'NodeList', apiVersion: 'v1', path: '/api/v1/nodes', namespaced: false },
];

export function resourceOf(kind: FakeKind): ResourceInfo {
  const info = RESOURCES.find((r) => r.kind === kind);
  if (!info) throw new Error(`fake apiserver: unknown kind ${kind}`);
  return info;
}

/** A stored object: JSON only, always with metadata. */
export interface FakeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface HistoryEvent {
  rv: number;
  kind: FakeKind;
  type: EventType;
  object: FakeObject;
  /** The state before a MODIFIED, to compute selector transitions. */
  previous?: FakeObject;
}

export interface WatchEvent {
  type: EventType;
  object: FakeObject;
}

export class FakeState {
  private rv = 100;
  private readonly objects = new Map<FakeKind, Map<string, FakeObject>>(RESOURCES.map((r) => [r.kind, new Map()]));
  private history: HistoryEvent[] = [];
  /** Watches from a resourceVersion below this get 410 Gone: their events were dropped. */
  private oldestWatchableRv = 100;
  private readonly subscribers = new Set<(event: HistoryEvent) => void>();

  constructor(private readonly historyLimit: number) {}

  get resourceVersion(): number {
    return this.rv;
  }

  key(kind: FakeKind, obj: { metadata?: { name?: string; namespace?: string } }): string {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`fake apiserver: ${kind} without metadata.name`);
    return resourceOf(kind).namespaced ? `${obj.metadata?.namespace ?? 'default'}/${name}` : name;
  }

  /** Creates or replaces an object, bumping the resourceVersion. Returns the stored copy. */
  apply(kind: FakeKind, input: object): FakeObject {
    const obj = structuredClone(input) as FakeObject;
    const info = resourceOf(kind);
    const key = this.key(kind, obj);
    const previous = this.objects.get(kind)?.get(key);
    obj.apiVersion = info.apiVersion;
    obj.kind = kind;
    if (info.namespaced) obj.metadata.namespace ??= 'default';
    obj.metadata.uid ??= previous?.metadata.uid ?? randomUUID();
    obj.metadata.creationTimestamp ??= previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.metadata.resourceVersion = String(++this.rv);
    this.objects.get(kind)?.set(key, obj);
    this.record({ rv: this.rv, kind, type: previous ? 'MODIFIED' : 'ADDED', object: obj, previous });
    return obj;
  }

  /** Deletes an object; the DELETED event carries its last state with a new resourceVersion. */
  delete(kind: FakeKind, key: string): boolean {
    const current = this.objects.get(kind)?.get(key);
    if (!current) return false;
    this.objects.get(kind)?.delete(key);
    const object = structuredClone(current);
    object.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, kind, type: 'DELETED', object });
    return true;
  }

  get(kind: FakeKind, key: string): FakeObject | undefined {
    return this.objects.get(kind)?.get(key);
  }

  list(kind: FakeKind, selector: LabelSelector = []): FakeObject[] {
    const all = [...(this.objects.get(kind)?.entries() ?? [])].sort(([a], [b]) => (a < b ? -1 : 1));
    return all.map(([, obj]) => obj).filter((obj) => matchesLabels(selector, obj.metadata.labels));
  }

  /** Forgets all history: any watch from an older resourceVersion now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestWatchableRv = this.rv;
  }

  /** Events after `fromRv` for this kind, or undefined when they are no longer known (410). */
  eventsSince(kind: FakeKind, fromRv: number): HistoryEvent[] | undefined {
    if (fromRv < this.oldestWatchableRv) return undefined;
    return this.history.filter((e) => e.rv > fromRv && e.kind === kind);
  }

  subscribe(fn: (event: HistoryEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  private record(event: HistoryEvent): void {
    this.history.push(event);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.oldestWatchableRv = dropped.rv;
    }
    for (const fn of [...this.subscribers]) fn(event);
  }
}

/**
 * What a watcher with a label selector sees of an event, like the API server's watch cache:
 * an object leaving the selection is DELETED (its previous state), one entering it is ADDED.
 */
export function eventForSelector(event: HistoryEvent, selector: LabelSelector): WatchEvent | undefined {
  const now = matchesLabels(selector, event.object.metadata.labels);
  if (event.type !== 'MODIFIED') return now ? { type: event.type, object: event.object } : undefined;
  const before = event.previous !== undefined && matchesLabels(selector, event.previous.metadata.labels);
  if (before && now) return { type: 'MODIFIED', object: event.object };
  if (now) return { type: 'ADDED', object: event.object };
  if (before && event.previous) {
    const object = structuredClone(event.previous);
    object.metadata.resourceVersion = String(event.rv);
    return { type: 'DELETED', object };
  }
  return undefined;
}
