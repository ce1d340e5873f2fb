// Turning whatever the Kubernetes client throws into a short, safe description for logs and
// counters. Raw client errors can carry request options, headers and response bodies, so they
// are never logged as objects; anything that looks like a credential is masked as well.

export interface ErrorSummary {
  /** HTTP status code or Status.code when known. */
  status?: number;
  /** Status.reason ('Expired', 'Forbidden', ...) or the error's code ('ECONNREFUSED', ...). */
  reason?: string;
  message: string;
}

const SECRET_PATTERNS: readonly [RegExp, string][] = [
  [/(bearer\s+)[^\s"',;]+/gi, '$1<redacted>'],
  [/(basic\s+)[A-Za-z0-9+/=]+/gi, '$1<redacted>'],
  [/("?(?:token|password|authorization|client-key-data|client-certificate-data)"?\s*[:=]\s*"?)[^\s"',&}]+/gi, '$1<redacted>'],
];

export function redactSecrets(text: string): string {
  return SECRET_PATTERNS.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), text);
}

const MAX_MESSAGE = 300;

export function summarizeError(err: unknown): ErrorSummary {
  const e = (typeof err === 'object' && err !== null ? err : {}) as Record<string, unknown>;
  const status = httpStatusOf(err);
  const body = e.body as Record<string, unknown> | string | undefined;
  let message: string;
  let reason = typeof e.code === 'string' ? e.code : undefined;
  if (body && typeof body === 'object' && typeof body.message === 'string') {
    // A Kubernetes Status from an ApiException: its message says what the server objected to.
    message = body.message;
    if (typeof body.reason === 'string') reason = body.reason;
  } else if (typeof e.message === 'string' && e.message !== '') {
    // ApiException messages embed the response headers and body; keep only the first line.
    message = e.message.split('\n')[0] ?? e.message;
  } else {
    message = String(err);
  }
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
  const summary: ErrorSummary = { message: redactSecrets(message) };
  if (status !== undefined) summary.status = status;
  if (reason !== undefined) summary.reason = reason;
  return summary;
}

/** The HTTP status of a client error: ApiException.code, Watch errors' statusCode, Status.code. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as Record<string, unknown>;
  for (const value of [e.statusCode, e.code, (e.body as Record<string, unknown> | undefined)?.code]) {
    if (typeof value === 'number') return value;
  }
  return undefined;
}

export function describeError(err: unknown): string {
  const s = summarizeError(err);
  const prefix = [s.status, s.reason].filter((p) => p !== undefined).join(' ');
  return prefix ? `${prefix}: ${s.message}` : s.message;
}
