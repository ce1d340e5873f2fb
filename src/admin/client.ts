// The admin API client sluicectl uses. Failures are sorted into what an operator can act on:
// the agent is down (socket missing or refusing: fall back to the pinned maps), permission
// denied (run as root), the agent is busy (no answer in time), or the agent said no (4xx/5xx
// with its JSON error).
import { request } from 'node:http';

export type AdminClientErrorKind = 'agent-down' | 'permission' | 'timeout' | 'http' | 'protocol';

export class AdminClientError extends Error {
  constructor(
    readonly kind: AdminClientErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'AdminClientError';
  }
}

export interface AdminRequest {
  socketPath: string;
  method: 'GET' | 'POST';
  /** Path with query, e.g. '/v1/ct?service=default%2Fweb'. */
  path: string;
  body?: unknown;
  timeoutMs?: number;
}

function classify(err: NodeJS.ErrnoException, socketPath: string): AdminClientError {
  switch (err.code) {
    case 'ENOENT':
      return new AdminClientError('agent-down', `agent is not running: no admin socket at ${socketPath}`);
    case 'ECONNREFUSED':
      return new AdminClientError('agent-down', `agent is not running: nothing listens on ${socketPath}`);
    case 'EACCES':
    case 'EPERM':
      return new AdminClientError(
        'permission',
        `permission denied on ${socketPath}: the admin socket is root-only; run sluicectl as root (e.g. with sudo)`,
      );
    default:
      return new AdminClientError('protocol', `cannot talk to the agent on ${socketPath}: ${err.message}`);
  }
}

/** Sends one request and resolves with the parsed JSON answer of a 2xx. */
export function adminRequest<T>(req: AdminRequest): Promise<T> {
  const timeoutMs = req.timeoutMs ?? 15_000;
  const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
  return new Promise<T>((resolve, reject) => {
    const r = request(
      {
        socketPath: req.socketPath,
        method: req.method,
        path: req.path,
        headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(classify(err, req.socketPath)));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            reject(new AdminClientError('protocol', `agent answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`, res.statusCode));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else {
            const message = (parsed as { error?: unknown } | null)?.error;
            reject(new AdminClientError('http', typeof message === 'string' ? message : `agent answered ${status}`, status));
          }
        });
      },
    );
    const timer = setTimeout(() => {
      r.destroy();
      reject(new AdminClientError('timeout', `agent did not answer within ${timeoutMs} ms on ${req.socketPath} (busy or stuck?)`));
    }, timeoutMs);
    r.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(classify(err, req.socketPath));
    });
    r.end(payload);
  });
}
