// One list/watch loop for one kind, on top of a raw list call (src/k8s/client.ts) and client-node's
// Watch class (client-node's own informer stops on the first error and has no watch deadline).
// The loop:
// list (in pages) → replaceAll → watch from the list's resourceVersion with bookmarks, and
//  - a watch silent for idleTimeoutMs (no event, no bookmark) is restarted from the last rv;
//  - 410 Gone (ERROR event or HTTP status) → relist at once;
//  - a periodic relist every relistIntervalMs repairs anything a watch could have missed;
//  - any failure → retry with capped exponential backoff and jitter.
// Errors never escape: they go to the logger (without credentials) and the store's counters.
import type { Logger } from 'pino';
import type { Watch } from '@kubernetes/client-node';
import { backoffDelay, sleep } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import { describeError, httpStatusOf } from './errors.js';
import { objectKey } from './kinds.js';
import type { KindTypes, ObjectKind } from './kinds.js';
import { asKubeObject } from './serialization.js';
import type { ObjectStore, Prepared } from './store.js';

export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

export interface ListParams {
  labelSelector?: string;
  limit?: number;
  _continue?: string;
  timeoutSeconds?: number;
}

/** One list call (one page); `signal` aborts the HTTP request. */
export type ListFunction<T> = (params: ListParams, signal: AbortSignal) => Promise<ListPage<T>>;

export interface ReflectorTiming {
  /** Server-side watch duration; each watch asks for a random value in [t, 2t) like client-go. */
  watchTimeoutSeconds: number;
  /** A watch that delivers nothing (not even a bookmark) for this long is restarted. */
  idleTimeoutMs: number;
  /** Full relist period; 0 = only when needed (start, 410). */
  relistIntervalMs: number;
  /** Deadline of one list request. */
  listTimeoutMs: number;
  /** Objects per list page (limit/continue); 0 = no paging. */
  pageSize: number;
  /** A watch the server closes sooner than this without any event counts as a failure (backoff). */
  minHealthyWatchMs: number;
  backoff: BackoffOptions;
}

export interface ReflectorOptions<K extends ObjectKind> {
  kind: K;
  /** Collection path for the watch, e.g. /api/v1/services. */
  path: string;
  labelSelector?: string;
  list: ListFunction<KindTypes[K]>;
  watch: Watch;
  store: ObjectStore;
  logger: Logger;
  timing: ReflectorTiming;
  random?: () => number;
}

type WatchEnd =
  | { reason: 'stopped' }
  | { reason: 'idle' }
  | { reason: 'gone' }
  | { reason: 'relist-due' }
  | { reason: 'closed'; healthy: boolean }
  | { reason: 'error'; error: unknown };

interface WatchEvent {
  type?: string;
  object?: { metadata?: { resourceVersion?: string }; code?: number; message?: string; reason?: string };
}

export class Reflector<K extends ObjectKind> {
  private resourceVersion = '';
  private lastListAt = 0;
  private failures = 0;
  /** 410s in a row with no event between: a server stuck on 410 must not get a tight relist loop. */
  private consecutiveGone = 0;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly stopSignal = new AbortController();
  private cancelWatch: (() => void) | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: ReflectorOptions<K>) {
    this.log = opts.logger.child({ kind: opts.kind });
  }

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal.abort();
    this.cancelWatch?.();
    await this.running;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let failure: unknown;
      try {
        if (this.resourceVersion === '' || this.relistDue()) await this.relist();
        if (this.stopped) return;
        const end = await this.watchOnce();
        if (end.reason === 'stopped') return;
        if (end.reason === 'relist-due') continue;
        this.opts.store.recordWatchRestart(this.opts.kind);
        if (end.reason === 'gone') {
          this.log.info({ resourceVersion: this.resourceVersion }, 'watch resourceVersion expired (410); relisting');
          this.resourceVersion = '';
          if (++this.consecutiveGone > 1) failure = new Error('410 Gone again right after a relist');
        } else if (end.reason === 'idle') {
          // Info, not warn: a quiet collection on a server that sends no bookmarks looks the same.
          this.log.info({ idleTimeoutMs: this.opts.timing.idleTimeoutMs }, 'watch silent too long; restarting it');
        } else if (end.reason === 'error') {
          failure = end.error;
        } else if (!end.healthy) {
          failure = new Error('watch closed by the server at once without any event');
        } else {
          this.log.debug({ resourceVersion: this.resourceVersion }, 'watch closed by the server; resuming');
        }
      } catch (err) {
        failure = err;
      }
      if (failure !== undefined && !this.stopped) await this.backOff(failure);
    }
  }

  private async backOff(err: unknown): Promise<void> {
    this.failures++;
    this.opts.store.recordError(this.opts.kind, `list/watch ${this.opts.path} failed: ${describeError(err)}`);
    const delayMs = backoffDelay(this.failures, this.opts.timing.backoff, this.opts.random);
    this.log.warn({ error: describeError(err), attempt: this.failures, retryInMs: delayMs }, 'list/watch failed; retrying');
    await sleep(delayMs, this.stopSignal.signal);
  }

  private relistDue(): boolean {
    const interval = this.opts.timing.relistIntervalMs;
    return interval > 0 && Date.now() - this.lastListAt >= interval;
  }

  /** Lists every object (page by page) and makes the store match; marks the kind synced. */
  private async relist(): Promise<void> {
    const { kind, timing, labelSelector, store } = this.opts;
    // Each page is slimmed as it arrives: the full objects of one page at a time, not of the list.
    const items: Prepared<KindTypes[K]>[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const params: ListParams = { timeoutSeconds: Math.ceil(timing.listTimeoutMs / 1000) };
      if (labelSelector) params.labelSelector = labelSelector;
      if (timing.pageSize > 0) params.limit = timing.pageSize;
      if (cont) params._continue = cont;
      const page = await this.listWithDeadline(params);
      // prepare() also sets apiVersion and kind, which list items lack.
      for (const item of page.items ?? []) if (this.hasKey(item, 'list')) items.push(store.prepare(kind, item));
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont && !this.stopped);
    if (this.stopped) return;
    const result = store.replacePrepared(kind, items);
    this.resourceVersion = rv;
    this.lastListAt = Date.now();
    this.failures = 0;
    store.clearError(kind);
    this.log.debug({ objects: items.length, resourceVersion: rv, added: result.added.length, updated: result.updated.length, removed: result.removed.length }, 'listed');
    store.markSynced(kind);
  }

  private async listWithDeadline(params: ListParams): Promise<ListPage<KindTypes[K]>> {
    const deadline = AbortSignal.timeout(this.opts.timing.listTimeoutMs);
    const signal = AbortSignal.any([deadline, this.stopSignal.signal]);
    try {
      return await this.opts.list(params, signal);
    } catch (err) {
      if (deadline.aborted) throw new Error(`list timed out after ${this.opts.timing.listTimeoutMs} ms`);
      throw err;
    }
  }

  /** Runs one watch until it ends; resolves with why. Never rejects. */
  private watchOnce(): Promise<WatchEnd> {
    const { timing, labelSelector } = this.opts;
    return new Promise<WatchEnd>((resolve) => {
      let settled = false;
      let controller: AbortController | undefined;
      let idleTimer: NodeJS.Timeout | undefined;
      let relistTimer: NodeJS.Timeout | undefined;
      let events = 0;
      const startedAt = Date.now();
      const finish = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(idleTimer);
        clearTimeout(relistTimer);
        this.cancelWatch = undefined;
        controller?.abort();
        resolve(end);
      };
      const armIdle = () => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => finish({ reason: 'idle' }), timing.idleTimeoutMs);
      };
      this.cancelWatch = () => finish({ reason: 'stopped' });
      armIdle();
      if (timing.relistIntervalMs > 0) {
        const remaining = Math.max(0, this.lastListAt + timing.relistIntervalMs - Date.now());
        relistTimer = setTimeout(() => finish({ reason: 'relist-due' }), remaining);
      }
      const random = this.opts.random ?? Math.random;
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: Math.max(1, Math.floor(timing.watchTimeoutSeconds * (1 + random()))),
      };
      if (labelSelector) params.labelSelector = labelSelector;
      const onEvent = (type: string, object: unknown) => {
        if (settled) return;
        armIdle();
        events++;
        if (type !== 'ERROR') {
          // The server delivers again: later failures start over at the shortest backoff.
          this.failures = 0;
          this.consecutiveGone = 0;
        }
        // The Watch class swallows exceptions thrown here, so report them ourselves.
        try {
          const end = this.handleEvent({ type, object } as WatchEvent);
          if (end) finish(end);
        } catch (err) {
          this.opts.store.recordError(this.opts.kind, `could not apply a ${type} event: ${describeError(err)}`);
          this.log.error({ error: describeError(err), eventType: type }, 'could not apply a watch event');
        }
      };
      const onDone = (err: unknown) => {
        if (settled) return;
        if (err == null) finish({ reason: 'closed', healthy: events > 0 || Date.now() - startedAt >= timing.minHealthyWatchMs });
        else if (httpStatusOf(err) === 410) finish({ reason: 'gone' });
        else finish({ reason: 'error', error: err });
      };
      this.opts.watch.watch(this.opts.path, params, onEvent, onDone).then(
        (c) => {
          controller = c;
          if (settled) c.abort(); // ended (idle, stop) while the request was still connecting
        },
        (err: unknown) => finish({ reason: 'error', error: err }),
      );
    });
  }

  /** Applies one watch event; returns how the watch ends when the event ends it. */
  private handleEvent(event: WatchEvent): WatchEnd | undefined {
    const { kind, store } = this.opts;
    const object = event.object;
    if (event.type === 'ERROR') {
      if (object?.code === 410) return { reason: 'gone' };
      const status = object?.code ?? 'unknown';
      return { reason: 'error', error: new Error(`watch ERROR event (code ${status}): ${object?.message ?? 'no message'}`) };
    }
    const rv = object?.metadata?.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return undefined;
    }
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED' && event.type !== 'DELETED') {
      throw new Error(`unknown watch event type ${JSON.stringify(event.type)}`);
    }
    const obj = asKubeObject(kind, object);
    if (this.hasKey(obj, `${event.type} event`)) {
      if (event.type === 'DELETED') store.remove(kind, objectKey(kind, obj) as string);
      else store.upsert(kind, obj);
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  private hasKey(obj: KindTypes[K], origin: string): boolean {
    if (objectKey(this.opts.kind, obj) !== undefined) return true;
    this.opts.store.recordError(this.opts.kind);
    this.log.error({ origin, namespace: obj.metadata?.namespace }, `${this.opts.kind} without metadata.name ignored`);
    return false;
  }
}
