// The agent's logging: pino JSON lines on stdout, one child logger per component, and one place
// that changes the level at runtime. pino children copy their parent's level when they are
// created and never look back, so `Logging` tracks every descendant (pino's onChild hook is
// inherited by grandchildren too) and sets the level on all of them at once.
import pino from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { REDACTED, REDACT_PATHS, scrubLine, scrubSecrets } from './redact.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The environment variable the agent reads its log level from when no flag is given. */
export const LOG_LEVEL_ENV = 'SLUICE_LOG_LEVEL';

export class LogLevelError extends Error {
  constructor(source: string, value: unknown) {
    super(`${source}: ${JSON.stringify(value)} is not a log level (one of ${LOG_LEVELS.join(', ')})`);
    this.name = 'LogLevelError';
  }
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/** Validates a level; `source` names where it came from (flag, env var, request field). */
export function parseLogLevel(value: unknown, source = 'log level'): LogLevel {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (!isLogLevel(text)) throw new LogLevelError(source, value);
  return text;
}

/**
 * The level to start with: the flag when given, else $SLUICE_LOG_LEVEL, else `fallback`.
 * A bad value throws, naming the flag or the variable.
 */
export function resolveLogLevel(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  fallback: LogLevel = 'info',
): LogLevel {
  if (flag !== undefined && flag !== '') return parseLogLevel(flag, '--log-level');
  const fromEnv = env[LOG_LEVEL_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return parseLogLevel(fromEnv, LOG_LEVEL_ENV);
  return fallback;
}

export interface LoggingOptions {
  level?: LogLevel;
  /** Where lines go (default: stdout). Tests pass a collecting stream. */
  destination?: DestinationStream;
  /** `name` field on every line (default 'sluice-agent'). */
  name?: string;
}

export class Logging {
  readonly root: Logger;
  private currentLevel: LogLevel;
  private readonly descendants = new Set<WeakRef<Logger>>();

  constructor(opts: LoggingOptions = {}) {
    this.currentLevel = opts.level ?? 'info';
    const track = (child: Logger): void => {
      this.descendants.add(new WeakRef(child));
    };
    this.root = pino(
      {
        name: opts.name ?? 'sluice-agent',
        level: this.currentLevel,
        timestamp: pino.stdTimeFunctions.isoTime,
        // Level as its name ("warn"), which is what operators grep for.
        formatters: { level: (label) => ({ level: label }), log: (obj) => scrubSecrets(obj) },
        redact: { paths: REDACT_PATHS, censor: REDACTED },
        hooks: { streamWrite: scrubLine },
        onChild: track,
      },
      opts.destination ?? pino.destination({ dest: 1, sync: false }),
    );
  }

  get level(): LogLevel {
    return this.currentLevel;
  }

  /** A child logger for one component; every line carries `component`. */
  component(name: string, bindings: Record<string, unknown> = {}): Logger {
    return this.root.child({ component: name, ...bindings });
  }

  /** Sets the level on the root and every child created so far (and so on all later ones). */
  setLevel(level: LogLevel): { level: LogLevel; previous: LogLevel } {
    const valid = parseLogLevel(level, 'level');
    const previous = this.currentLevel;
    this.currentLevel = valid;
    this.root.level = valid;
    for (const ref of this.descendants) {
      const child = ref.deref();
      if (child) child.level = valid;
      else this.descendants.delete(ref);
    }
    return { level: valid, previous };
  }

  /** Number of live child loggers being tracked (for tests and diagnostics). */
  get trackedChildren(): number {
    let n = 0;
    for (const ref of this.descendants) if (ref.deref()) n++;
    return n;
  }
}

export function createLogging(opts: LoggingOptions = {}): Logging {
  return new Logging(opts);
}
