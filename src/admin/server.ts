// The admin server: JSON over HTTP on a Unix socket only (root-only by file permissions; there is
// deliberately no TCP option). A slow or dead client never blocks the agent: headers and whole
// requests have deadlines enforced every second, bodies are size-limited, and a backend call
// that does not answer in time is reported as "busy" instead of holding the connection.
import { STATUS_CODES, createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { chmodSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { ROUTES, readBody, readQuery } from './routes.js';
import type { Route } from './routes.js';
import { prepareSocketDirectory, removeStaleSocket } from './socket-file.js';
import { AdminError } from './types.js';
import type { AdminBackend } from './types.js';

export const DEFAULT_ADMIN_SOCKET = '/run/sluice/admin.sock';

export interface AdminServerOptions {
  socketPath?: string;
  backend: AdminBackend;
  logger: Logger;
  /** Largest accepted request body (default 16 KiB). */
  maxBodyBytes?: number;
  /** Time a client has to send its headers (default 5 s). */
  headersTimeoutMs?: number;
  /** Time a client has to send its whole request (default 10 s). */
  requestTimeoutMs?: number;
  /** Time the backend has to answer before the client gets 503 "busy" (default 10 s). */
  handlerTimeoutMs?: number;
  /** A connection with no traffic for this long (e.g. a client that stops reading) is dropped (default 30 s). */
  idleTimeoutMs?: number;
}

export interface AdminServer {
  readonly socketPath: string;
  readonly server: Server;
  close(): Promise<void>;
}

class BodyTooLarge extends AdminError {
  constructor(limit: number) {
    super(413, `request body is larger than ${limit} bytes`);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function readRawBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new BodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AdminError(503, `agent busy: ${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

async function dispatch(req: IncomingMessage, opts: Required<Omit<AdminServerOptions, 'socketPath'>>): Promise<{ status: number; body: unknown }> {
  const url = new URL(req.url ?? '/', 'http://sluice-admin');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const candidates = ROUTES.filter((r) => r.path === path);
  if (candidates.length === 0) {
    throw new AdminError(404, `no such endpoint ${path} (endpoints: ${[...new Set(ROUTES.map((r) => r.path))].join(', ')})`);
  }
  const route: Route | undefined = candidates.find((r) => r.method === req.method);
  if (!route) {
    const allowed = candidates.map((r) => r.method).join(', ');
    throw Object.assign(new AdminError(405, `${path} accepts ${allowed}, not ${req.method ?? '?'}`), { allow: allowed });
  }
  const query = readQuery(route, url.searchParams);
  let body: Record<string, unknown> = {};
  const raw = await readRawBody(req, opts.maxBodyBytes);
  if (route.method === 'POST') {
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/json\b/i.test(type)) {
      throw new AdminError(415, `request body must be application/json, got ${type}`);
    }
    body = readBody(route, raw);
  }
  const result = await withDeadline(route.handle({ backend: opts.backend, query, body }), opts.handlerTimeoutMs, `${req.method} ${path}`);
  return { status: 200, body: result };
}

/** Starts serving on the Unix socket; resolves once the socket is listening and 0600. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const socketPath = options.socketPath ?? DEFAULT_ADMIN_SOCKET;
  // listen('19999') would be a TCP port: the admin API must only ever be a Unix socket path.
  if (!isAbsolute(socketPath)) throw new Error(`admin socket: "${socketPath}" is not an absolute path (a Unix socket path is required)`);
  const opts = {
    backend: options.backend,
    logger: options.logger,
    maxBodyBytes: options.maxBodyBytes ?? 16 * 1024,
    headersTimeoutMs: options.headersTimeoutMs ?? 5000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    handlerTimeoutMs: options.handlerTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
  };
  const log = opts.logger;
  prepareSocketDirectory(socketPath, log);
  await removeStaleSocket(socketPath, log);

  const server = createServer(
    {
      headersTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      // Deadlines are checked on this interval (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1000, opts.headersTimeoutMs),
      keepAliveTimeout: 5000,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      const started = process.hrtime.bigint();
      dispatch(req, opts)
        .catch((err: unknown) => {
          if (err instanceof AdminError) {
            if (err.status === 405) res.setHeader('Allow', (err as AdminError & { allow?: string }).allow ?? '');
            return { status: err.status, body: { error: err.message } };
          }
          log.error({ err, method: req.method, url: req.url }, 'admin request failed');
          return { status: 500, body: { error: `internal error: ${(err as Error).message}` } };
        })
        .then(({ status, body }) => {
          // A body left unread (error before reading it) must not keep the connection: close it.
          if (!req.complete) res.setHeader('Connection', 'close');
          send(res, status, body);
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          log.debug({ method: req.method, url: req.url, status, ms: Math.round(ms * 10) / 10 }, 'admin request');
        })
        .catch((err: unknown) => log.error({ err }, 'admin response failed'));
    },
  );
  server.maxConnections = 64;
  // A client that stops reading a large answer would otherwise hold one of the 64 slots forever.
  server.timeout = opts.idleTimeoutMs;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ code: err.code }, 'admin client error');
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const text = JSON.stringify({ error: `bad request: ${err.code ?? err.message}` }) + '\n';
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    } else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: socketPath }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    // The directory is already 0700, so nobody else can reach the socket before this chmod.
    chmodSync(socketPath, 0o600);
  } catch (err) {
    server.close();
    throw err;
  }
  log.info({ socketPath }, 'admin socket listening');

  return {
    socketPath,
    server,
    // Node removes the socket file itself when a Unix-socket server closes.
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
