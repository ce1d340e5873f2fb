// The UDP socket sweep: closes connected UDP sockets that connect-time load balancing pointed at a
// backend that has left its service (bpf/sockdestroy.bpf.c, an iter/udp program calling the
// bpf_sock_destroy kfunc). A socket iterator walks the sockets of the network namespace that
// creates it, so one sweep runs the program once in every network namespace of the node: the
// agent's own, every namespace a process lives in (/proc/*/ns/net), and the named ones
// (/run/netns), each once (deduplicated by namespace inode).
//
// The object is optional: a kernel older than 6.5 has no bpf_sock_destroy (nor the iter/udp
// kfunc permission), the load fails, and the sweeper says so once at warn and does nothing.
// The writer runs sweep() before it deletes the socket reverse-NAT entries of removed UDP
// backends: the program finds the sockets to close through those entries (docs/dataplane.md).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { drainLibbpfLog, libbpfLogger } from '../bpf/loader.js';
import type { NativeAddon, NativeObject, NativeProgram } from '../bpf/native.js';
import { fromPackageRoot, loadNative } from '../bpf/native.js';
import { isNativeError } from '../bpf/errors.js';
import { loadErrorSummary } from './kernel-features.js';
import type { ProgramGenerations } from './program-reuse.js';

export const SOCKDESTROY_OBJECT = 'sockdestroy.bpf.o';
export const SOCKDESTROY_PROGRAM = 'sl_sock_destroy_udp';

/** A network namespace to sweep. */
export interface NetnsRef {
  /** A file that names it (/proc/<pid>/ns/net, /run/netns/<name>); null for the agent's own. */
  path: string | null;
  /** `<dev>:<inode>` of the namespace: equal for every file naming the same namespace. */
  id: string;
}

export interface NamespaceSources {
  /** procfs to enumerate processes in (default /proc; e.g. the host's /proc mounted elsewhere). */
  procRoot?: string;
  /** Directories of named namespace files (default ['/run/netns']); missing ones are fine. */
  netnsDirs?: readonly string[];
}

const OWN_NETNS = '/proc/self/ns/net';

function nsId(path: string): string | null {
  try {
    // No exception for the common case of a process that exited (ENOENT): listing is hot.
    const st = statSync(path, { throwIfNoEntry: false });
    return st ? `${st.dev}:${st.ino}` : null;
  } catch {
    return null; // not ours to read (EACCES), or gone in another way (ESRCH)
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Every network namespace of the node, once each: the agent's own first (path null: swept
 * without changing namespace), then those of the processes under procRoot, then the named ones.
 * A process that exits meanwhile is skipped.
 */
export function listNetworkNamespaces(sources: NamespaceSources = {}): NetnsRef[] {
  const procRoot = sources.procRoot ?? '/proc';
  const own = nsId(OWN_NETNS);
  const candidates: string[] = [];
  for (const name of entries(procRoot)) if (/^[0-9]+$/.test(name)) candidates.push(join(procRoot, name, 'ns', 'net'));
  for (const dir of sources.netnsDirs ?? ['/run/netns']) for (const name of entries(dir)) candidates.push(join(dir, name));
  if (own === null) return dedupeNamespaces(candidates);
  return [{ path: null, id: own }, ...dedupeNamespaces(candidates, [own])];
}

/** The given namespace files, once each (by inode), but those of `exclude`; files that vanished are left out. */
export function dedupeNamespaces(paths: Iterable<string>, exclude: Iterable<string> = []): NetnsRef[] {
  const out: NetnsRef[] = [];
  const seen = new Set<string>(exclude);
  for (const path of paths) {
    const id = nsId(path);
    if (id === null || seen.has(id)) continue;
    seen.add(id);
    out.push({ path, id });
  }
  return out;
}

export interface SweepReport {
  /** Namespaces the iterator ran in. */
  swept: number;
  /** Namespaces whose process exited before the sweep reached them. */
  vanished: number;
  /** Namespaces where the iterator failed (logged at warn). */
  failed: { path: string; message: string }[];
  durationMs: number;
}

export interface SweepStats {
  /** False when the object could not be loaded: sweep() does nothing. */
  available: boolean;
  sweeps: number;
  namespacesSwept: number;
  namespacesFailed: number;
  lastDurationMs: number;
  lastNamespaces: number;
}

export interface UdpSocketSweeperOptions extends NamespaceSources {
  /** bpffs directory of the datapath's pinned maps (the program reads them by name). */
  pinDir: string;
  /** Path of sockdestroy.bpf.o (default: dist/bpf of the package). */
  objectPath?: string;
  /** Map sizes, as the datapath loaded them (pinned maps are reused only when they match). */
  maxEntries?: Record<string, number>;
  /**
   * The namespace files to sweep, instead of every namespace of the node. Tests use this to
   * stay inside their own namespaces.
   */
  namespaces?: () => Iterable<string>;
  native?: NativeAddon;
  logger?: Logger;
  /** The start's reuse of earlier programs (program-reuse.ts); without it, always loaded. */
  generations?: Pick<ProgramGenerations, 'reuse' | 'afterLoad'>;
}

/** Vanished between listing and sweeping: the namespace file is gone with its process. */
function vanished(err: unknown): boolean {
  return isNativeError(err) && err.call === 'open' && (err.code === 'ENOENT' || err.code === 'ESRCH');
}

export class UdpSocketSweeper {
  private swept = 0;
  private failedTotal = 0;
  private sweeps = 0;
  private last = { durationMs: 0, namespaces: 0 };

  private constructor(
    private readonly opts: UdpSocketSweeperOptions,
    private readonly obj: NativeObject | null,
    private readonly prog: NativeProgram | null,
    /** Why the object did not load (for the kernel feature report), when it did not. */
    readonly loadError?: string,
  ) {}

  /**
   * Loads sockdestroy.bpf.o over the pinned maps. Never rejects for lack of kernel support: the
   * failure is logged once at warn and the sweeper is a no-op (`available` false).
   */
  static async load(opts: UdpSocketSweeperOptions): Promise<UdpSocketSweeper> {
    const native = opts.native ?? loadNative();
    const path = opts.objectPath ?? fromPackageRoot('dist', 'bpf', SOCKDESTROY_OBJECT);
    const libbpfLog = libbpfLogger(opts.logger, path);
    let obj: NativeObject | null = null;
    try {
      obj = native.openObject(path, { pinRoot: opts.pinDir });
      for (const [map, n] of Object.entries(opts.maxEntries ?? {})) obj.setMaxEntries(map, n);
      const reused = opts.generations?.reuse(obj) ?? null;
      if (reused) {
        obj = reused;
      } else {
        await obj.load();
        opts.generations?.afterLoad(obj);
      }
      drainLibbpfLog(native, libbpfLog);
      return new UdpSocketSweeper(opts, obj, obj.program(SOCKDESTROY_PROGRAM));
    } catch (err) {
      obj?.close();
      // One warning carries libbpf's own complaints (which extern is missing, ...); the lines
      // themselves go to debug, so an older kernel logs a single warning per start.
      const lines = native.drainLog();
      for (const line of lines) libbpfLog?.debug(line.message.trimEnd());
      const code = isNativeError(err) ? err.code : undefined;
      // libbpf answers ESRCH when an extern kfunc is missing from the kernel's BTF.
      const why = code === 'ESRCH'
        ? 'this kernel has no bpf_sock_destroy kfunc (needs Linux 6.5 or newer)'
        : 'the socket-destroy program could not be loaded';
      opts.logger?.warn(
        {
          err: (err as Error).message,
          code,
          object: path,
          libbpf: lines.filter((l) => l.level === 'warn').slice(-5).map((l) => l.message.trimEnd()),
          ...(isNativeError(err) && err.verifierLog ? { verifierLog: err.verifierLog.slice(-2000) } : {}),
        },
        `UDP socket sweep disabled: ${why}. Connected UDP sockets balanced to a removed backend keep sending there until the application reopens them`,
      );
      return new UdpSocketSweeper(opts, null, null, `${why}: ${loadErrorSummary(err, lines.filter((l) => l.level === 'warn').map((l) => l.message))}`);
    }
  }

  /** False when the object could not be loaded (sweep() is a no-op). */
  get available(): boolean {
    return this.prog !== null;
  }

  /** The loaded program (for status), or null. */
  programInfo(): { name: string; id: number } | null {
    return this.prog ? { name: this.prog.info.name, id: this.prog.info.id } : null;
  }

  /** The namespaces a sweep would visit now. */
  namespaces(): NetnsRef[] {
    return this.opts.namespaces ? dedupeNamespaces(this.opts.namespaces()) : listNetworkNamespaces(this.opts);
  }

  /**
   * Runs the program once in every namespace. Synchronous (the writer's hook is). Never throws:
   * a namespace whose process exited is skipped; other failures are logged at warn and
   * reported, and the remaining namespaces are still swept.
   */
  sweep(): SweepReport {
    const report: SweepReport = { swept: 0, vanished: 0, failed: [], durationMs: 0 };
    if (!this.prog) return report;
    const start = performance.now();
    const targets = this.namespaces();
    for (const ns of targets) {
      try {
        this.prog.runIterator(ns.path === null ? undefined : { netns: ns.path });
        report.swept++;
      } catch (err) {
        if (vanished(err)) report.vanished++;
        else report.failed.push({ path: ns.path ?? OWN_NETNS, message: (err as Error).message });
      }
    }
    report.durationMs = performance.now() - start;
    this.sweeps++;
    this.swept += report.swept;
    this.failedTotal += report.failed.length;
    this.last = { durationMs: report.durationMs, namespaces: targets.length };
    if (report.failed.length > 0) {
      this.opts.logger?.warn(
        { failed: report.failed.length, swept: report.swept, first: report.failed.slice(0, 5) },
        'UDP socket sweep failed in some network namespaces: connected sockets there may stay on a removed backend',
      );
    }
    this.opts.logger?.debug({ swept: report.swept, vanished: report.vanished, durationMs: Math.round(report.durationMs * 1000) / 1000 }, 'UDP socket sweep');
    return report;
  }

  stats(): SweepStats {
    return {
      available: this.available,
      sweeps: this.sweeps,
      namespacesSwept: this.swept,
      namespacesFailed: this.failedTotal,
      lastDurationMs: this.last.durationMs,
      lastNamespaces: this.last.namespaces,
    };
  }

  close(): void {
    this.obj?.close();
  }
}
