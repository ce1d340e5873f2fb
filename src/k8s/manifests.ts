// The standalone source: Services, EndpointSlices and Nodes from *.yaml, *.yml and *.json files
// in one directory, for running without an API server. The directory is watched (fs.watch,
// debounced) and rescanned periodically in case an event was missed (network filesystems,
// ConfigMap volumes swapping a symlink). Each scan makes the store hold exactly what the files
// say, except that an error never wipes state: a broken object keeps its last good version,
// and a file too broken to tell what it held keeps everything it held before.
import { watch as watchDir } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isObjectKind, OBJECT_KINDS } from './kinds.js';
import type { KindTypes, ObjectKind } from './kinds.js';
import { parseManifestFile } from './manifest-parse.js';
import type { ManifestError, ManifestObject, ParsedFile } from './manifest-parse.js';
import type { ObjectStore, Source } from './store.js';

export type { ManifestError } from './manifest-parse.js';

export interface ManifestSourceOptions {
  dir: string;
  store: ObjectStore;
  logger: Logger;
  /** Quiet period after a change event before the directory is read. */
  debounceMs?: number;
  /** Periodic full rescan, the fallback for missed events; 0 = none. */
  rescanIntervalMs?: number;
  /** Follow the directory with fs.watch (default true; false leaves only the rescan). */
  watchDirectory?: boolean;
}

const MANIFEST_FILE = /^[^.].*\.(ya?ml|json)$/i;

interface CachedFile {
  /** Identity of the content read: a change to any of these means read again. */
  version: string;
  parsed: ParsedFile;
}

export class ManifestSource implements Source {
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly rescanIntervalMs: number;
  private readonly cache = new Map<string, CachedFile>();
  /** What this source last put in the store, with where each object came from. */
  private applied = new Map<string, ManifestObject>();
  private currentErrors: ManifestError[] = [];
  private reported = new Set<string>();
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private scanAgain = false;
  private stopped = false;
  scans = 0;

  constructor(private readonly opts: ManifestSourceOptions) {
    this.log = opts.logger.child({ component: 'manifests', dir: opts.dir });
    this.debounceMs = opts.debounceMs ?? 200;
    this.rescanIntervalMs = opts.rescanIntervalMs ?? 30_000;
  }

  /** Reads the directory once (the store is synced after it), then follows changes. */
  async start(): Promise<void> {
    await this.rescan();
    if (this.rescanIntervalMs > 0) {
      this.rescanTimer = setInterval(() => void this.rescan(), this.rescanIntervalMs);
      this.rescanTimer.unref();
    }
  }

  /** Attaches fs.watch when it is wanted and not attached yet (the directory may appear later). */
  private ensureWatching(): void {
    if (this.watcher || this.stopped || this.opts.watchDirectory === false) return;
    try {
      const watcher = watchDir(this.opts.dir, (_event, filename) => this.changed(filename));
      watcher.on('error', (err) => {
        this.log.warn({ error: err.message }, 'directory watch failed; relying on the periodic rescan');
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch (err) {
      this.log.debug({ error: (err as Error).message }, 'cannot watch the directory yet; relying on the periodic rescan');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearTimeout(this.debounceTimer);
    clearInterval(this.rescanTimer);
    await this.scanning;
  }

  /** The problems found by the last scan (for the admin socket). */
  errors(): ManifestError[] {
    return [...this.currentErrors];
  }

  /** Reads the directory now; concurrent requests collapse into one more scan. */
  rescan(): Promise<void> {
    if (this.scanning) {
      this.scanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.scanAgain = false;
        await this.scanOnce().catch((err: unknown) => this.log.error({ error: String(err) }, 'manifest scan failed'));
      } while (this.scanAgain && !this.stopped);
      this.scanning = undefined;
    })();
    return this.scanning;
  }

  private changed(filename: string | Buffer | null): void {
    if (filename) this.cache.delete(filename.toString()); // same size and mtime can still be new content
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.rescan(), this.debounceMs);
  }

  private async scanOnce(): Promise<void> {
    if (this.stopped) return;
    this.scans++;
    this.ensureWatching();
    const errors: ManifestError[] = [];
    let names: string[];
    try {
      names = (await readdir(this.opts.dir)).filter((n) => MANIFEST_FILE.test(n)).sort();
    } catch (err) {
      // Keep everything as it is: an unreadable directory says nothing about the objects.
      errors.push({ file: this.opts.dir, message: `${this.opts.dir}: cannot read the directory: ${(err as Error).message}` });
      this.finishScan(errors);
      return;
    }
    const parsed = new Map<string, ParsedFile | undefined>();
    for (const name of names) {
      const file = await this.readParsed(name, errors);
      if (file !== 'not-a-file') parsed.set(name, file);
    }
    for (const name of [...this.cache.keys()]) if (!parsed.has(name)) this.cache.delete(name);
    const desired = this.desiredObjects(parsed, errors);
    if (this.stopped) return;
    for (const kind of OBJECT_KINDS) {
      const objects = [...desired.values()].filter((o) => o.kind === kind).map((o) => o.object as KindTypes[ObjectKind]);
      this.opts.store.replaceAll(kind, objects);
      this.opts.store.markSynced(kind);
    }
    this.applied = desired;
    this.finishScan(errors);
  }

  /** undefined: the file exists but could not be read (its objects are kept). */
  private async readParsed(name: string, errors: ManifestError[]): Promise<ParsedFile | undefined | 'not-a-file'> {
    const path = join(this.opts.dir, name);
    try {
      const info = await stat(path);
      if (!info.isFile()) return 'not-a-file';
      const version = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
      const cached = this.cache.get(name);
      if (cached?.version === version) {
        errors.push(...cached.parsed.errors);
        return cached.parsed;
      }
      const result = parseManifestFile(name, await readFile(path, 'utf8'));
      this.cache.set(name, { version, parsed: result });
      errors.push(...result.errors);
      return result;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not-a-file'; // deleted while scanning
      errors.push({ file: name, message: `${name}: cannot read: ${(err as Error).message}` });
      return undefined;
    }
  }

  /** Merges the files (first file by name wins a duplicate) and keeps last good states on errors. */
  private desiredObjects(parsed: Map<string, ParsedFile | undefined>, errors: ManifestError[]): Map<string, ManifestObject> {
    const desired = new Map<string, ManifestObject>();
    const id = (kind: ObjectKind, key: string) => `${kind}/${key}`;
    for (const file of parsed.values()) {
      for (const obj of file?.objects ?? []) {
        const first = desired.get(id(obj.kind, obj.key));
        if (first) {
          errors.push({
            file: obj.file,
            document: obj.document,
            kind: obj.kind,
            object: obj.key,
            message: `${obj.file} (document ${obj.document}) ${obj.kind} ${obj.key}: also defined in ${first.file} (document ${first.document}); ignored`,
          });
        } else desired.set(id(obj.kind, obj.key), obj);
      }
    }
    const keep = (key: string) => {
      const previous = this.applied.get(key);
      if (previous && !desired.has(key)) desired.set(key, previous);
    };
    for (const [name, file] of parsed) {
      for (const broken of file?.brokenObjects ?? []) keep(id(broken.kind, broken.key));
      if (file === undefined || file.unidentifiedBroken) {
        for (const [key, previous] of this.applied) if (previous.file === name) keep(key);
      }
    }
    return desired;
  }

  private finishScan(errors: ManifestError[]): void {
    this.currentErrors = errors;
    // Rescans find the same problems again: log and count each one once, until it is fixed.
    const now = new Set(errors.map((e) => e.message));
    for (const e of errors) {
      if (this.reported.has(e.message)) continue;
      this.log.error({ file: e.file, document: e.document, kind: e.kind, object: e.object, field: e.field }, e.message);
      if (isObjectKind(e.kind)) this.opts.store.recordError(e.kind);
    }
    for (const message of this.reported) if (!now.has(message)) this.log.info(`fixed: ${message}`);
    this.reported = now;
  }
}
