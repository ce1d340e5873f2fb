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
  [/("?(?:token|password|authorization|client-key-data|client-certificate-data)"?\s*[:=]\s*"?)(?:(?:bearer|basic)\s+)?[^\s"',&}]+/gi, '$1<redacted>'],
];

export function redactSecrets(text: string): string {
  return SECRET_PATTERNS.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), text);
}

const MAX_MESSAGE = 300;

export function summarizeError(err: unknown): ErrorSummary {
  const e = (typeof err === 'object' && err !== null ? err : {}) as Record<string, unknown>;
  const status = httpStatusOf(err);
  const body = parseBody(e.body);
  let message: string;
  let reason = typeof e.code === 'string' ? e.code : undefined;
  if (body && typeof body.message === 'string') {
    // A Kubernetes Status from an ApiException: its message says what the server objected to.
    message = body.message;
    if (typeof body.reason === 'string') reason = body.reason;
  } else if (typeof e.message === 'string' && e.message !== '') {
    // ApiException messages embed the response headers and body: keep only their "Message:" line.
    const apiMessage = /^Message: (.*)$/m.exec(e.message)?.[1];
    message = apiMessage ?? e.message.split('\n')[0] ?? e.message;
  } else {
    message = String(err);
  }
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
  const summary: ErrorSummary = { message: redactSecrets(message) };
  if (status !== undefined) summary.status = status;
  if (reason !== undefined) summary.reason = reason;
  return summary;
}

/** ApiException bodies are the raw response text; a Kubernetes Status is JSON. */
function parseBody(body: unknown): Record<string, unknown> | undefined {
  if (typeof body === 'object' && body !== null) return body as Record<string, unknown>;
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The HTTP status of a client error: ApiException.code, Watch errors' statusCode, Status.code. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as Record<string, unknown>;
  for (const value of [e.statusCode, e.code, parseBody(e.body)?.code]) {
    if (typeof value === 'number') return value;
  }
  return undefined;
}

export function describeError(err: unknown): string {
  const s = summarizeError(err);
  const prefix = [s.status, s.reason].filter((p) => p !== undefined).join(' ');
  return prefix ? `${prefix}: ${s.message}` : s.message;
}
