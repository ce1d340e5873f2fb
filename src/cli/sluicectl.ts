#!/usr/bin/env node
// sluicectl: the operator's view of a node's dataplane. Talks to the agent's admin socket; when
// the agent is down, read-only commands answer from the pinned maps through the very same route
// code (so filters and errors are identical) and say so. Exit codes: 0 ok, 1 error, 2 usage.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { adminRequest, AdminClientError } from '../admin/client.js';
import { parseConntrackFilter, parseNatTarget, parseServiceRef } from '../admin/filters.js';
import { openPinnedMapsForDump } from '../admin/map-reader.js';
import { MapsAdminBackend } from '../admin/maps-backend.js';
import { ROUTES, readQuery } from '../admin/routes.js';
import { DEFAULT_ADMIN_SOCKET } from '../admin/server.js';
import type { AdminBackend } from '../admin/types.js';
import { loadNative } from '../bpf/native.js';
import { isLogLevel, LOG_LEVELS } from '../log/logger.js';
import {
  formatAffinity, formatConntrack, formatCounters, formatFlush, formatLogLevel, formatMaps, formatNat, formatServices,
  formatStatus,
} from './format-views.js';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/sluice';

export interface SluicectlIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env?: NodeJS.ProcessEnv;
  /** Opens the read-only backend over pinned maps (tests may substitute a fake). */
  openPinned?: (pinDir: string) => { backend: AdminBackend; close(): void };
}

export const USAGE = `Usage: sluicectl [options] <command>

Commands:
  status                          agent version, config, attached programs, sync state, errors
  services                        service ports: frontends, backends (with ids, sets, flags)
  nat dump [ns/name|VIP:port]     raw frontend and backend map entries
  ct dump [--service ns/name] [--client IP] [--backend IP[:port]]
                                  conntrack entries with state and age
  ct flush --service ns/name      delete the conntrack entries of one service (agent only)
  aff dump                        ClientIP session-affinity entries
  counters                        per-service packets/bytes/connections and drops by reason
  maps                            map fill levels (entries vs capacity)
  log-level LEVEL                 set the agent's log level (${LOG_LEVELS.join(', ')})

Options:
  --socket PATH      admin socket (default ${DEFAULT_ADMIN_SOCKET}, $SLUICE_ADMIN_SOCKET)
  --pin-dir PATH     pinned maps, read when the agent is down (default ${DEFAULT_PIN_DIR}, $SLUICE_PIN_DIR)
  -o, --output FMT   table (default) or json
  --timeout MS       how long to wait for the agent (default 10000)
  -h, --help         this text

Exit codes: 0 success, 1 error (agent error, permission denied, agent busy), 2 usage error.
When the agent is not running, read-only commands read the pinned maps directly and say so on
stderr; ct flush and log-level fail.
`;

class UsageError extends Error {}

interface Parsed {
  words: string[];
  opts: Map<string, string>;
  help: boolean;
}

const VALUE_OPTIONS = new Set(['--socket', '--pin-dir', '--output', '--timeout', '--service', '--client', '--backend']);

function parseArgs(argv: readonly string[]): Parsed {
  const words: string[] = [];
  const opts = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-h' || arg === '--help') help = true;
    else if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      let name = eq > 0 ? arg.slice(0, eq) : arg;
      if (name === '-o') name = '--output';
      if (!VALUE_OPTIONS.has(name)) throw new UsageError(`unknown option ${name}`);
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
      if (opts.has(name)) throw new UsageError(`${name} given more than once`);
      opts.set(name, value);
    } else words.push(arg);
  }
  return { words, opts, help };
}

interface Plan {
  method: 'GET' | 'POST';
  path: string;
  query: Record<string, string>;
  body?: Record<string, string>;
  write: boolean;
  format(result: unknown): string;
}

/** Checks the words and options of one command and says what to ask the agent. */
function plan(p: Parsed): Plan {
  const [cmd, sub, ...rest] = p.words;
  const cmdOpts = [...p.opts.keys()].filter((k) => ['--service', '--client', '--backend'].includes(k));
  // Commands with a subcommand (nat dump, ct flush, aff dump) are named by both words.
  const label = ['nat', 'ct', 'aff'].includes(cmd ?? '') ? `${cmd} ${sub ?? ''}` : (cmd ?? '');
  const only = (allowed: string[], extra: string[]): void => {
    const bad = cmdOpts.find((o) => !allowed.includes(o));
    if (bad) throw new UsageError(`${label}: unknown option ${bad}`);
    if (extra.length) throw new UsageError(`${label}: unexpected argument ${extra.join(' ')}`);
  };
  const get = (path: string, format: (r: never) => string, query: Record<string, string> = {}): Plan => ({
    method: 'GET', path, query, write: false, format: format as (r: unknown) => string,
  });
  // A filter the agent would reject is a usage error here: say so before asking anyone.
  const check = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  switch (cmd) {
    case 'status':
    case 'services':
    case 'counters':
    case 'maps': {
      only([], [sub, ...rest].filter((w): w is string => w !== undefined));
      const format = { status: formatStatus, services: formatServices, counters: formatCounters, maps: formatMaps }[cmd];
      return get(`/v1/${cmd}`, format);
    }
    case 'nat':
      if (sub !== 'dump') throw new UsageError(`nat: expected "nat dump", got "nat${sub ? ` ${sub}` : ''}"`);
      only([], rest.slice(1));
      if (rest[0] === undefined) return get('/v1/nat', formatNat);
      {
        const filter = check(() => parseNatTarget(rest[0] ?? ''));
        const query: Record<string, string> = 'service' in filter ? { service: rest[0] ?? '' } : { frontend: rest[0] ?? '' };
        return get('/v1/nat', formatNat, query);
      }
    case 'ct': {
      const query: Record<string, string> = {};
      for (const name of ['service', 'client', 'backend']) {
        const v = p.opts.get(`--${name}`);
        if (v !== undefined) query[name] = v;
      }
      check(() => parseConntrackFilter(query));
      if (sub === 'dump') {
        only(['--service', '--client', '--backend'], rest);
        return get('/v1/ct', formatConntrack, query);
      }
      if (sub === 'flush') {
        only(['--service'], rest);
        if (query.service === undefined) throw new UsageError('ct flush: --service ns/name is required');
        check(() => parseServiceRef(query.service ?? ''));
        return { method: 'POST', path: '/v1/ct/flush', query: {}, body: { service: query.service }, write: true, format: formatFlush as (r: unknown) => string };
      }
      throw new UsageError(`ct: expected "ct dump" or "ct flush", got "ct${sub ? ` ${sub}` : ''}"`);
    }
    case 'aff':
      if (sub !== 'dump') throw new UsageError(`aff: expected "aff dump", got "aff${sub ? ` ${sub}` : ''}"`);
      only([], rest);
      return get('/v1/affinity', formatAffinity);
    case 'log-level':
      only([], rest);
      if (sub === undefined) throw new UsageError(`log-level: give a level (${LOG_LEVELS.join(', ')})`);
      if (!isLogLevel(sub)) throw new UsageError(`log-level: "${sub}" is not a log level (${LOG_LEVELS.join(', ')})`);
      return { method: 'POST', path: '/v1/log-level', query: {}, body: { level: sub }, write: true, format: formatLogLevel as (r: unknown) => string };
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

function defaultOpenPinned(pinDir: string): { backend: AdminBackend; close(): void } {
  const { tables, tables6, ipv6Untranslated, close } = openPinnedMapsForDump(loadNative(), pinDir);
  return { backend: new MapsAdminBackend({ tables, ...(tables6 ? { tables6 } : {}), ...(ipv6Untranslated ? { ipv6Untranslated } : {}), pinDir }), close };
}

/** Answers a plan in-process from the pinned maps, through the server's own route code. */
async function answerFromPinnedMaps(pl: Plan, backend: AdminBackend): Promise<unknown> {
  const route = ROUTES.find((r) => r.path === pl.path && r.method === pl.method);
  if (!route) throw new Error(`internal: no route for ${pl.method} ${pl.path}`);
  return route.handle({ backend, query: readQuery(route, new URLSearchParams(pl.query)), body: {} });
}

export async function runSluicectl(argv: readonly string[], io: SluicectlIo): Promise<number> {
  const env = io.env ?? process.env;
  const fail = (code: number, message: string): number => {
    io.stderr.write(`sluicectl: ${message}\n`);
    if (code === EXIT_USAGE) io.stderr.write('run "sluicectl --help" for usage\n');
    return code;
  };
  let parsed: Parsed;
  let pl: Plan;
  let output: string;
  let timeoutMs: number;
  try {
    parsed = parseArgs(argv);
    if (parsed.help) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    output = parsed.opts.get('--output') ?? 'table';
    if (output !== 'table' && output !== 'json') throw new UsageError(`-o: "${output}" is not table or json`);
    const timeoutText = parsed.opts.get('--timeout') ?? '10000';
    timeoutMs = Number(timeoutText);
    if (!/^\d+$/.test(timeoutText) || timeoutMs < 1) throw new UsageError(`--timeout: "${timeoutText}" is not a number of milliseconds`);
    pl = plan(parsed);
  } catch (err) {
    if (err instanceof UsageError) return fail(EXIT_USAGE, err.message);
    throw err;
  }
  const socketPath = parsed.opts.get('--socket') ?? env.SLUICE_ADMIN_SOCKET ?? DEFAULT_ADMIN_SOCKET;
  const pinDir = parsed.opts.get('--pin-dir') ?? env.SLUICE_PIN_DIR ?? DEFAULT_PIN_DIR;
  const query = new URLSearchParams(pl.query).toString();

  let result: unknown;
  try {
    result = await adminRequest({ socketPath, method: pl.method, path: pl.path + (query ? `?${query}` : ''), body: pl.body, timeoutMs });
  } catch (err) {
    if (!(err instanceof AdminClientError)) return fail(EXIT_ERROR, (err as Error).message);
    if (err.kind !== 'agent-down') return fail(EXIT_ERROR, err.message);
    if (pl.write) return fail(EXIT_ERROR, `${err.message}; "${parsed.words.join(' ')}" needs a running agent (pinned maps are read-only here)`);
    let pinned: { backend: AdminBackend; close(): void };
    try {
      pinned = (io.openPinned ?? defaultOpenPinned)(pinDir);
    } catch (inner) {
      return fail(EXIT_ERROR, `${err.message}; and ${(inner as Error).message}`);
    }
    io.stderr.write(`sluicectl: ${err.message}\nsluicectl: agent is not running; showing pinned maps read-only from ${pinDir}\n`);
    try {
      result = await answerFromPinnedMaps(pl, pinned.backend);
    } catch (inner) {
      return fail(EXIT_ERROR, (inner as Error).message);
    } finally {
      pinned.close();
    }
  }
  io.stdout.write(output === 'json' ? JSON.stringify(result, null, 2) + '\n' : pl.format(result));
  return EXIT_OK;
}

// Run when executed (also through the npm bin symlink), not when imported by tests.
function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  runSluicectl(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`sluicectl: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT_ERROR;
    },
  );
}
