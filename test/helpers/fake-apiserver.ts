// A fake Kubernetes API server on node:http (127.0.0.1 or a given address, random port) speaking the real list/watch
// protocol to the real @kubernetes/client-node: Services, EndpointSlices and Nodes, label
// selectors, chunked lists, watch streams with bookmarks, 410 Gone, and controls for tests to
// inject faults (dropped or silent watches, slow responses, failing lists). It runs in the test
// process; an agent under test in a child process reaches it through `kubeconfigPath`.
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeState, RESOURCES, resourceOf } from './fake-apiserver-state.js';
import type { FakeKind, FakeObject } from './fake-apiserver-state.js';
import { LabelSelectorError, parseLabelSelector } from './fake-label-selector.js';
import { FakeWatch, statusBody } from './fake-apiserver-watch.js';

export type { FakeKind, FakeObject } from './fake-apiserver-state.js';

export interface FakeApiServerOptions {
  /** Events kept for watch resumption; older resourceVersions get 410 Gone. Default 1000. */
  historyLimit?: number;
  /** BOOKMARK period for watches that allow them; 0 = never. Default 0. */
  bookmarkIntervalMs?: number;
  /** Serve HTTPS with this key and certificate (PEM); the kubeconfig then trusts `ca`, not everything. */
  tls?: { key: string; cert: string; ca: string };
  /** IPv4 address to listen on (default 127.0.0.1); the certificate must name it. */
  host?: string;
}

export interface RequestRecord {
  kind: FakeKind | undefined;
  watch: boolean;
  query: Record<string, string>;
  authorized: boolean;
  /** performance.now() when the request arrived. */
  at: number;
}

interface ListSnapshot {
  items: FakeObject[];
  rv: number;
}

export class FakeApiServer {
  /** A random bearer token: tests assert it never shows up in logs. */
  readonly token = `fake-token-${randomBytes(12).toString('hex')}`;
  readonly requests: RequestRecord[] = [];
  readonly kubeconfigPath: string;
  private readonly state: FakeState;
  private readonly watches = new Set<FakeWatch>();
  private readonly continuations = new Map<string, ListSnapshot>();
  private readonly dir: string;
  private server!: http.Server;
  private port = 0;
  private delay = { ms: 0, only: undefined as 'list' | 'watch' | undefined };
  private failLists = { remaining: 0, status: 500 };
  private goneWatches = { remaining: 0, mode: 'event' as 'event' | 'status' };
  private bookmarkIntervalMs: number;
  private closeWatchesAtOnce = false;
  private readonly tls: FakeApiServerOptions['tls'];
  private readonly host: string;

  private constructor(opts: FakeApiServerOptions) {
    this.tls = opts.tls;
    this.host = opts.host ?? '127.0.0.1';
    this.state = new FakeState(opts.historyLimit ?? 1000);
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 0;
    this.dir = mkdtempSync(join(tmpdir(), 'sluice-fake-apiserver-'));
    this.kubeconfigPath = join(this.dir, 'kubeconfig');
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(opts);
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      fake.handle(req, res).catch((err: unknown) => {
        // A bug in the fake must show up as a failed request, not an unhandled rejection.
        if (!res.headersSent) sendStatus(res, 500, 'InternalError', `fake apiserver: ${String(err)}`);
        else res.destroy();
      });
    };
    fake.server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, onRequest) : http.createServer(onRequest);
    await new Promise<void>((resolve) => fake.server.listen(0, fake.host, resolve));
    fake.port = (fake.server.address() as { port: number }).port;
    writeFileSync(fake.kubeconfigPath, fake.kubeconfigYaml(), { mode: 0o600 });
    return fake;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.state.resourceVersion);
  }

  kubeconfigYaml(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      // client-node refuses plain http unless TLS verification is declared off.
      this.tls
        ? `- name: fake\n  cluster:\n    server: ${this.url}\n    certificate-authority-data: ${Buffer.from(this.tls.ca).toString('base64')}`
        : `- name: fake\n  cluster:\n    server: ${this.url}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: fake\n  user:\n    token: ${this.token}`,
      'contexts:',
      '- name: fake\n  context:\n    cluster: fake\n    user: fake',
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- object controls -------------------------------------------------------------------

  /** Creates or updates an object (kind from `kind`, or given). Returns the stored copy. */
  apply(obj: { kind?: string; metadata?: object } & object, kind?: FakeKind): FakeObject {
    const k = kind ?? (obj.kind as FakeKind);
    resourceOf(k);
    return this.state.apply(k, obj);
  }

  delete(kind: FakeKind, key: string): boolean {
    return this.state.delete(kind, key);
  }

  get(kind: FakeKind, key: string): FakeObject | undefined {
    return this.state.get(kind, key);
  }

  keys(kind: FakeKind): string[] {
    return this.state.list(kind).map((o) => this.state.key(kind, o));
  }

  // ---- fault controls --------------------------------------------------------------------

  /** Cuts every open watch connection (as a network drop would). Returns how many. */
  dropWatches(): number {
    const count = this.watches.size;
    for (const w of [...this.watches]) w.destroy();
    return count;
  }

  /** Open watches stay connected but receive nothing more, not even bookmarks. */
  stallWatches(): number {
    for (const w of this.watches) w.stall();
    return this.watches.size;
  }

  /** The next `count` watches fail with 410 Gone: as an ERROR event (like the watch cache) or HTTP status. */
  forceGoneOnNextWatch(count = 1, mode: 'event' | 'status' = 'event'): void {
    this.goneWatches = { remaining: count, mode };
  }

  /** Drops the event history: resuming from any older resourceVersion gets 410 Gone. */
  compactHistory(): void {
    this.state.compact();
    this.continuations.clear();
  }

  /** While on, every new watch is answered 200 and closed at once, without any event. */
  endWatchesAtOnce(on: boolean): void {
    this.closeWatchesAtOnce = on;
  }

  /** Requests (all, or only lists or watches) wait this long before they are answered (0 = at once). */
  setResponseDelay(ms: number, only?: 'list' | 'watch'): void {
    this.delay = { ms, only };
  }

  failNextLists(count: number, status = 500): void {
    this.failLists = { remaining: count, status };
  }

  setBookmarkInterval(ms: number): void {
    this.bookmarkIntervalMs = ms;
  }

  listCount(kind?: FakeKind): number {
    return this.requests.filter((r) => !r.watch && (kind === undefined || r.kind === kind)).length;
  }

  watchCount(kind?: FakeKind): number {
    return this.requests.filter((r) => r.watch && (kind === undefined || r.kind === kind)).length;
  }

  activeWatchCount(kind?: FakeKind): number {
    return [...this.watches].filter((w) => kind === undefined || w.kind === kind).length;
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.destroy();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const query = Object.fromEntries(url.searchParams);
    const resource = RESOURCES.find((r) => r.path === url.pathname);
    const watch = query.watch === 'true' || query.watch === '1';
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    this.requests.push({ kind: resource?.kind, watch, query, authorized, at: performance.now() });
    const delayed = this.delay.only === undefined || (this.delay.only === 'watch') === watch;
    if (this.delay.ms > 0 && delayed) await new Promise((r) => setTimeout(r, this.delay.ms));
    if (res.destroyed) return;
    if (!authorized) return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    if (req.method !== 'GET' || !resource) return sendStatus(res, 404, 'NotFound', `no route for ${req.method} ${url.pathname}`);
    let selector;
    try {
      selector = parseLabelSelector(query.labelSelector ?? '');
    } catch (err) {
      if (!(err instanceof LabelSelectorError)) throw err;
      return sendStatus(res, 400, 'BadRequest', `unable to parse requirement: ${err.message}`);
    }
    if (!watch) return this.list(res, resource.kind, selector, query);
    if (this.goneWatches.remaining > 0) {
      this.goneWatches.remaining--;
      if (this.goneWatches.mode === 'status') return sendStatus(res, 410, 'Expired', 'too old resource version');
      query.resourceVersion = '1'; // older than anything the history holds
    }
    if (this.closeWatchesAtOnce) return void res.writeHead(200, { 'Content-Type': 'application/json' }).end();
    const fromRv = query.resourceVersion ?? '';
    if (fromRv !== '' && !/^\d+$/.test(fromRv)) return sendStatus(res, 400, 'BadRequest', `invalid resourceVersion "${fromRv}"`);
    const w = new FakeWatch(this.state, resource.kind, selector, res, {
      bookmarkIntervalMs: query.allowWatchBookmarks === 'true' ? this.bookmarkIntervalMs : 0,
      timeoutSeconds: Number(query.timeoutSeconds ?? 0),
      onClose: () => this.watches.delete(w),
    });
    this.watches.add(w);
    w.start(fromRv === '' || fromRv === '0' ? undefined : Number(fromRv));
  }

  private list(res: http.ServerResponse, kind: FakeKind, selector: ReturnType<typeof parseLabelSelector>, query: Record<string, string>): void {
    if (this.failLists.remaining > 0) {
      this.failLists.remaining--;
      return sendStatus(res, this.failLists.status, 'InternalError', 'injected list failure');
    }
    const info = resourceOf(kind);
    let snapshot: ListSnapshot;
    let offset = 0;
    if (query.continue) {
      const [id = '', at = '0'] = query.continue.split(':');
      const found = this.continuations.get(id);
      if (!found) return sendStatus(res, 410, 'Expired', 'the provided continue parameter is too old');
      snapshot = found;
      offset = Number(at);
    } else {
      snapshot = { items: this.state.list(kind, selector), rv: this.state.resourceVersion };
    }
    const limit = Number(query.limit ?? 0);
    const end = limit > 0 ? offset + limit : snapshot.items.length;
    const metadata: Record<string, string> = { resourceVersion: String(snapshot.rv) };
    if (end < snapshot.items.length) {
      const id = randomBytes(6).toString('hex');
      this.continuations.set(id, snapshot);
      metadata.continue = `${id}:${end}`;
    }
    // Like the real server, list items carry no apiVersion/kind: the list says what they are.
    const items = snapshot.items.slice(offset, end).map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    sendJson(res, 200, { kind: info.listKind, apiVersion: info.apiVersion, metadata, items });
  }
}

export function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  return FakeApiServer.start(opts);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, statusBody(code, reason, message));
}
