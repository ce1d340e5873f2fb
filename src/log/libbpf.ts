// libbpf's messages, surfaced through pino. The addon's print callback only queues lines (it
// must never call into JS); we drain that queue after each native call that may print and on a
// slow timer, and log each line at the level libbpf gave it.
import type { Logger } from 'pino';
import type { LogLine } from '../bpf/native.js';

/** The one addon method this needs, so tests can pass a fake. */
export interface LibbpfLogSource {
  drainLog(): LogLine[];
}

const LEVELS: Record<LogLine['level'], 'warn' | 'info' | 'debug'> = {
  warn: 'warn',
  info: 'info',
  debug: 'debug',
};

/** Logs every queued libbpf line; returns how many were logged. */
export function drainLibbpfLog(source: LibbpfLogSource, logger: Logger): number {
  let lines: LogLine[];
  try {
    lines = source.drainLog();
  } catch (err) {
    logger.warn({ err }, 'could not drain the libbpf log queue');
    return 0;
  }
  let logged = 0;
  for (const line of lines) {
    // libbpf terminates its lines with '\n' and sometimes prints multi-line verifier output.
    const message = String(line.message).replace(/\s+$/, '');
    if (message === '') continue;
    const level = LEVELS[line.level] ?? 'info';
    logger[level]({ libbpfLevel: line.level }, message);
    logged++;
  }
  return logged;
}

/**
 * Drains on a timer (unref'd: it never keeps the process alive). Returns a stop function that
 * drains one last time, so messages printed during shutdown are not lost.
 */
export function startLibbpfLogPump(source: LibbpfLogSource, logger: Logger, intervalMs = 1000): () => void {
  const timer = setInterval(() => drainLibbpfLog(source, logger), intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    drainLibbpfLog(source, logger);
  };
}
