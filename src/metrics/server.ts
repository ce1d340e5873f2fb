// /metrics, /healthz and /readyz on a configurable host:port (default 127.0.0.1:9963 in the
// agent config). Read-only, GET/HEAD only; short timeouts so scrapers and probes never pile up.
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HealthSource } from './health.js';
import { PROMETHEUS_CONTENT_TYPE } from './registry.js';
import type { Registry } from './registry.js';

export class MetricsAddressError extends Error {
  constructor(address: string, why: string) {
    super(`metrics address "${address}" ${why}; expected host:port such as 127.0.0.1:9963 or [::1]:9963`);
    this.name = 'MetricsAddressError';
  }
}

/** Parses `host:port`, `[ipv6]:port` or `:port` (all addresses). Port 0 picks a free port. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  if (!m) throw new MetricsAddressError(address, 'is not host:port');
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw new MetricsAddressError(address, `has port ${port} above 65535`);
  if (m[1] !== undefined && isIP(m[1]) !== 6) throw new MetricsAddressError(address, `has "${m[1]}" in brackets, which is not an IPv6 address`);
  return { host: host === '' ? '::' : host, port };
}

export interface MetricsServerOptions {
  address: string;
  registry: Registry;
  health: HealthSource;
  logger?: Logger;
  /** How long collectors may take before the last values are served anyway (default 5 s). */
  collectTimeoutMs?: number;
}

export interface MetricsServer {
  readonly server: Server;
  /** The bound host:port (useful with port 0). */
  readonly address: string;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : text);
}

/** Runs the collectors, but never lets a stuck one hold a scrape for longer than `ms`. */
function collectWithin(registry: Registry, ms: number): Promise<Error[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Error[]>((resolve) => {
    timer = setTimeout(() => resolve([new Error(`metrics collectors did not finish within ${ms} ms`)]), ms);
  });
  return Promise.race([registry.collect(), late]).finally(() => clearTimeout(timer));
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(opts.address);
  const log = opts.logger;
  const server = createServer({ headersTimeout: 5000, requestTimeout: 10_000, connectionsCheckingInterval: 1000, keepAliveTimeout: 5000 }, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://sluice').pathname;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      sendJson(res, 405, { error: `${path} accepts GET and HEAD, not ${req.method ?? '?'}` }, false);
      return;
    }
    switch (path) {
      case '/metrics':
        void collectWithin(opts.registry, opts.collectTimeoutMs ?? 5000).then((errors) => {
          for (const err of errors) log?.warn({ err }, 'metrics collector failed; serving the last values');
          const text = opts.registry.expose();
          res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
          res.end(head ? undefined : text);
        });
        return;
      case '/healthz': {
        const r = opts.health.liveness();
        sendJson(res, r.ok ? 200 : 503, r, head);
        return;
      }
      case '/readyz': {
        const r = opts.health.readiness();
        sendJson(res, r.ok ? 200 : 503, r, head);
        return;
      }
      default:
        sendJson(res, 404, { error: `no such endpoint ${path} (endpoints: /metrics, /healthz, /readyz)` }, head);
    }
  });
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log?.info({ address }, 'metrics and health endpoints listening');
  return {
    server,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
