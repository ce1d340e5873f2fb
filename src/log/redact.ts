// Keeping secrets out of the logs. Three layers, because a token can arrive in many shapes:
//  1. pino `redact` paths for the places we know (authorization headers, token fields);
//  2. a key-based scrub of each logged object at any depth (a kubeconfig's users[0].user.token,
//     an error carrying its request options), copy-on-write so callers' objects are untouched;
//  3. a last pass over every finished line that masks bearer credentials and JWT-shaped strings
//     wherever they ended up (messages, error stacks, child bindings).

export const REDACTED = '[REDACTED]';

/** Fixed paths for pino's own redaction (fast-redact syntax). */
export const REDACT_PATHS: string[] = [
  'authorization',
  'Authorization',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'token',
  '*.token',
  'bearerToken',
  '*.bearerToken',
  'password',
  '*.password',
];

// Compared after lower-casing and dropping '-' and '_' so 'Bearer_Token', 'client-key-data' match.
const SENSITIVE_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'token',
  'bearertoken',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'password',
  'secret',
  'clientkeydata',
  'clientkey',
  'privatekey',
  'apikey',
]);

export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

const MAX_DEPTH = 8;

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Returns `value` with every sensitive key's value replaced, at any depth up to MAX_DEPTH.
 * Objects that contain nothing sensitive are returned as they are (no copy).
 */
export function scrubSecrets<T>(value: T, depth = 0, seen = new WeakSet<object>()): T {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  const obj = value as unknown as object;
  if (seen.has(obj)) return value;
  seen.add(obj);

  if (Array.isArray(obj)) {
    let copy: unknown[] | undefined;
    obj.forEach((item: unknown, i) => {
      const scrubbed = scrubSecrets(item, depth + 1, seen);
      if (scrubbed !== item) {
        copy ??= obj.slice();
        copy[i] = scrubbed;
      }
    });
    return (copy ?? value) as T;
  }

  const isError = obj instanceof Error;
  if (!isError && !isPlainObject(obj)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(obj)) {
    const scrubbed = isSensitiveKey(key) && item != null && item !== '' ? REDACTED : scrubSecrets(item, depth + 1, seen);
    if (scrubbed === item) continue;
    if (!copy) {
      // An Error keeps its prototype, name, message and stack so pino's err serializer still
      // recognises it; own enumerable fields are copied and then overridden.
      copy = isError ? (Object.create(Object.getPrototypeOf(obj) as object) as Record<string, unknown>) : {};
      if (isError) {
        const err = obj as Error;
        Object.defineProperty(copy, 'message', { value: err.message, enumerable: false, writable: true });
        Object.defineProperty(copy, 'stack', { value: err.stack, enumerable: false, writable: true });
        Object.defineProperty(copy, 'name', { value: err.name, enumerable: false, writable: true });
      }
      Object.assign(copy, obj);
    }
    copy[key] = scrubbed;
  }
  return (copy ?? value) as T;
}

// "Bearer <credential>" (RFC 6750 token68 characters) and JWTs (Kubernetes service-account
// tokens are JWTs: three base64url parts, the first two starting with '{"' encoded as 'eyJ').
const BEARER = /(bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi;
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+/g;

/** Masks bearer credentials and JWT-shaped strings in a finished log line. */
export function scrubLine(line: string): string {
  if (!/bearer|eyJ/i.test(line)) return line;
  return line.replace(BEARER, `$1${REDACTED}`).replace(JWT, REDACTED);
}
