// Exponential backoff with jitter, capped: the delay before retry `attempt` (1-based) is
// initial * factor^(attempt-1), capped at max, then spread randomly over [1-jitter, 1] of that
// so many agents that lost the API server at once do not come back in lockstep.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Fraction of the delay that is random, 0..1. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  // Cap the exponent too, so a long outage never overflows to Infinity.
  const base = Math.min(opts.maxMs, opts.initialMs * Math.pow(opts.factor, Math.min(exponent, 64)));
  const jitter = Math.min(1, Math.max(0, opts.jitter));
  return Math.round(base * (1 - jitter * random()));
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
