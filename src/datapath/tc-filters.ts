// Reading the TC filters of interfaces in the order the kernel runs them. libbpf can query one
// filter by handle and priority but cannot list a hook, and only a listing shows who runs
// before whom: within one priority, cls_bpf runs its filters newest first, and `tc filter show`
// dumps them in that same order (lower priorities first). One `tc -batch` process reads every
// hook of a check, so the periodic check costs one process, not one per interface.
import { runCommand } from './command.js';
import type { TcDirection } from '../bpf/native.js';
import { argvInNetns as argvIn, listLinks } from './links.js';


/** One filter on a clsact hook, as `tc -j filter show` reports it. */
export interface TcFilterEntry {
  priority: number;
  /** The filter's handle (0 when tc did not report one). */
  handle: number;
  kind: string;
  /** The BPF program of a cls_bpf filter (0 / '' for other kinds). */
  progId: number;
  progName: string;
}

export interface TcHookRef {
  ifname: string;
  direction: TcDirection;
}

interface RawFilter {
  pref?: number;
  kind?: string;
  chain?: number;
  options?: { handle?: string; prog?: { id?: number; name?: string } };
}

/** What the agent needs iproute2's tc for: said in every error about it. */
export const TC_NEEDED_FOR = 'Sluice reads its TC filters back with it (which filter runs first on each pod interface, whether Sluice\'s is still attached, which ones `sluice-agent cleanup` removes)';

/** tc could not be run, or answered something other than a filter listing. */
export class TcUnavailableError extends Error {
  constructor(detail: string) {
    super(`the tc binary (iproute2) is not usable: ${detail}. ${TC_NEEDED_FOR}; install iproute2 (the Sluice image ships it) or put a tc with JSON output (-j) on PATH`);
    this.name = 'TcUnavailableError';
  }
}

/** A spawn failure of tc itself (not on PATH, not executable) as a TcUnavailableError; anything else unchanged. */
function tcSpawnError(err: unknown): unknown {
  const { code, path } = err as { code?: unknown; path?: unknown };
  if ((code === 'ENOENT' || code === 'EACCES') && path === 'tc') {
    return new TcUnavailableError(`tc cannot be run (${code}, PATH=${process.env.PATH ?? ''})`);
  }
  return err;
}

/**
 * Start-up check (the agent and `sluice-agent cleanup` refuse to start without it): tc runs and
 * lists a hook as JSON. Reads the filters of `lo`'s ingress hook (an empty list without clsact),
 * which every namespace has; changes nothing.
 */
export async function checkTcBinary(netns?: string): Promise<void> {
  const argv = argvIn(netns, ['tc', '-j', 'filter', 'show', 'dev', 'lo', 'ingress']);
  let stdout: string;
  try {
    ({ stdout } = await runCommand(argv));
  } catch (err) {
    const spawn = tcSpawnError(err);
    if (spawn !== err) throw spawn;
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    throw new TcUnavailableError(`\`${argv.join(' ')}\` failed (${stderr || (err as Error).message})`);
  }
  try {
    parseTcFilterJson(stdout.trim() || '[]');
  } catch (err) {
    throw new TcUnavailableError(`\`${argv.join(' ')}\` printed no JSON filter list (${(err as Error).message})`);
  }
}

/** Parses one `tc -j filter show` array: the filters of chain 0, in run order. */
export function parseTcFilterJson(text: string): TcFilterEntry[] {
  const raw = JSON.parse(text) as RawFilter[];
  if (!Array.isArray(raw)) throw new Error(`tc filter show: expected a JSON array, got ${text.slice(0, 80)}`);
  // tc prints each priority's classifier once without options, then each of its filters.
  return raw
    .filter((f) => f.options !== undefined && (f.chain ?? 0) === 0)
    .map((f) => ({
      priority: f.pref ?? 0,
      handle: f.options?.handle ? Number.parseInt(f.options.handle, 16) : 0,
      kind: f.kind ?? '',
      progId: f.options?.prog?.id ?? 0,
      progName: f.options?.prog?.name ?? '',
    }));
}

const hookKey = (h: TcHookRef) => `${h.ifname}/${h.direction}`;

/**
 * The filters of each hook, in run order, keyed `ifname/direction`. A hook without a clsact
 * qdisc or filters reads as empty. An interface that vanished meanwhile is left out of the
 * result (the batch is then read one hook at a time).
 */
export async function listTcFilters(hooks: readonly TcHookRef[], netns?: string): Promise<Map<string, TcFilterEntry[]>> {
  const out = new Map<string, TcFilterEntry[]>();
  if (hooks.length === 0) return out;
  const argv = argvIn(netns, ['tc', '-j', '-batch', '-']);
  const script = hooks.map((h) => `filter show dev ${h.ifname} ${h.direction}\n`).join('');
  try {
    const { stdout } = await runCommand(argv, { input: script });
    const lines = stdout.split('\n').filter((l) => l.trim() !== '');
    if (lines.length !== hooks.length) throw new Error(`tc -batch: ${lines.length} answers for ${hooks.length} hooks`);
    hooks.forEach((h, i) => out.set(hookKey(h), parseTcFilterJson(lines[i] as string)));
    return out;
  } catch {
    // One hook at a time: a missing interface fails alone.
    for (const h of hooks) {
      try {
        const { stdout } = await runCommand([...argv.slice(0, -2), 'filter', 'show', 'dev', h.ifname, h.direction]);
        out.set(hookKey(h), parseTcFilterJson(stdout.trim() || '[]'));
      } catch (err) {
        if (!/Cannot find device/.test(String((err as { stderr?: string }).stderr ?? ''))) throw tcSpawnError(err);
      }
    }
    return out;
  }
}

/** The filters of one hook, in run order ([] when it has none; throws when the interface is gone). */
export async function hookFilters(hook: TcHookRef, netns?: string): Promise<TcFilterEntry[]> {
  const got = (await listTcFilters([hook], netns)).get(hookKey(hook));
  if (!got) throw new Error(`tc filters of ${hook.ifname} ${hook.direction}: no such interface`);
  return got;
}

export const tcHookKey = hookKey;

/** Interface names by ifindex, in this process's (or `netns`'s) network namespace (netlink, not sysfs). */
export async function interfaceNames(netns?: string): Promise<Map<number, string>> {
  return new Map((await listLinks(netns)).map((l) => [l.ifindex, l.ifname]));
}

