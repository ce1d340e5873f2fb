// kube-proxy's service health checks: one HTTP server per healthCheckNodePort (LoadBalancer
// Services with externalTrafficPolicy=Local). Cloud load balancers probe the port on every node
// and send traffic only to nodes that answer 200, that is, nodes with a local READY endpoint.
//
// The agent calls update() on every sync with healthCheckServices(state) (src/model/health.ts).
// Counts change in place: a server whose port stays is never restarted, so probes never see a
// refused connection because an endpoint came or went. Servers open for new ports and close for
// ports no longer wanted. A port that cannot be bound (in use, not permitted) is logged with the
// Service and port and retried on the next update (and on an optional timer); it never throws.
// Two Services claiming one port: the first by namespace/name serves it, the other is reported.
//
// Any method, any path:
//   200 (local ready endpoints > 0 and the proxy healthy) or 503 (otherwise)
//   Content-Type: application/json
//   X-Content-Type-Options: nosniff
//   X-Load-Balancing-Endpoint-Weight: <N>
//   {"service":{"namespace":"ns","name":"svc"},"localEndpoints":N,"serviceProxyHealthy":true}
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HealthCheckService } from '../model/health.js';

export interface HealthCheckServersOptions {
  logger: Logger;
  /**
   * Address the servers bind to. Default: all addresses (`::`, dual-stack, or `0.0.0.0` where
   * the node has no IPv6), as kube-proxy does. Tests pass 127.0.0.1.
   */
  host?: string;
  /**
   * Whether the proxy itself is healthy (e.g. the agent's liveness: event loop alive, programs
   * attached). False → every answer is 503 with "serviceProxyHealthy":false, so load balancers
   * drain a node whose dataplane is not being kept up to date. Default: always healthy.
   */
  proxyHealthy?: () => boolean;
  /**
   * Retry ports that failed to bind this often, between updates (ms; 0 = only on updates).
   * Default 10 s, so a port freed in a quiet cluster is picked up without waiting for the
   * full-resync period.
   */
  retryIntervalMs?: number;
  /** Called once per new problem (bind failure or port conflict), e.g. for the admin status. */
  onProblem?: (problem: HealthCheckProblem) => void;
}

export interface HealthCheckProblem {
  kind: 'bind' | 'conflict' | 'invalid-port';
  /** 'namespace/name' of the Service that is not being served. */
  service: string;
  port: number;
  message: string;
}

export interface HealthCheckStatus {
  /** Ports with a listening server, ascending. */
  serving: { port: number; service: string; localEndpoints: number }[];
  /** Wanted ports that could not be bound (retried later). */
  failed: { port: number; service: string; error: string }[];
  /** Services not served because another Service (the winner) has the same port. */
  conflicts: { port: number; service: string; winner: string }[];
  /** Services with a port outside 1..65535 (never served). */
  invalid: { port: number; service: string }[];
}

interface PortServer {
  server: Server;
  /** What this port answers for; swapped in place on update. */
  entry: HealthCheckService;
}

interface BindFailure {
  service: string;
  code: string;
  message: string;
}

const serviceId = (s: { namespace: string; name: string }): string => `${s.namespace}/${s.name}`;

/** namespace, then name, by code units (deterministic, locale-independent). */
function byNamespaceName(a: HealthCheckService, b: HealthCheckService): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return 0;
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

export class HealthCheckServers {
  private readonly log: Logger;
  private readonly host: string | undefined;
  private readonly proxyHealthy: () => boolean;
  private readonly onProblem: ((p: HealthCheckProblem) => void) | undefined;
  /** Listening servers by port. */
  private readonly servers = new Map<number, PortServer>();
  /** The latest wanted assignment: port → the Service that owns it. */
  private assigned = new Map<number, HealthCheckService>();
  private conflicts: HealthCheckStatus['conflicts'] = [];
  private invalid: HealthCheckStatus['invalid'] = [];
  /** Wanted ports that failed to bind, with the last error (a repeat of it is logged at debug). */
  private readonly failures = new Map<number, BindFailure>();
  /** Conflicts and invalid ports of the last update, so a steady one is not re-logged every sync. */
  private reported = new Set<string>();
  /** Server set changes run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly retryIntervalMs: number;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  constructor(opts: HealthCheckServersOptions) {
    this.log = opts.logger;
    this.host = opts.host;
    this.proxyHealthy = opts.proxyHealthy ?? (() => true);
    this.onProblem = opts.onProblem;
    this.retryIntervalMs = opts.retryIntervalMs ?? 10_000;
  }

  /**
   * Takes the full set of health-check Services (healthCheckServices(state)). Counts take effect
   * at once; servers open and close in the background. The promise resolves (never rejects)
   * once the server set matches this update, with the resulting status.
   */
  update(services: ReadonlyMap<string, HealthCheckService>): Promise<HealthCheckStatus> {
    if (this.stopped) return Promise.resolve(this.status());
    const assigned = new Map<number, HealthCheckService>();
    const conflicts: HealthCheckStatus['conflicts'] = [];
    const invalid: HealthCheckStatus['invalid'] = [];
    for (const s of [...services.values()].sort(byNamespaceName)) {
      const port = s.healthCheckNodePort;
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        invalid.push({ port, service: serviceId(s) });
        continue;
      }
      const winner = assigned.get(port);
      if (winner) conflicts.push({ port, service: serviceId(s), winner: serviceId(winner) });
      else assigned.set(port, { ...s });
    }
    this.assigned = assigned;
    this.conflicts = conflicts;
    this.invalid = invalid;
    this.reportAssignmentProblems();
    for (const [port, srv] of this.servers) srv.entry = this.entryFor(port, srv.entry);
    for (const port of this.failures.keys()) if (!assigned.has(port)) this.failures.delete(port);
    return this.enqueue();
  }

  /** What is served, failing and conflicting now. */
  status(): HealthCheckStatus {
    const serving = [...this.servers]
      .sort(([a], [b]) => a - b)
      .map(([port, srv]) => ({ port, service: serviceId(srv.entry), localEndpoints: srv.entry.localEndpoints }));
    const failed = [...this.failures]
      .filter(([port]) => this.assigned.has(port) && !this.servers.has(port))
      .sort(([a], [b]) => a - b)
      .map(([port, f]) => ({ port, service: f.service, error: f.message }));
    return { serving, failed, conflicts: [...this.conflicts], invalid: [...this.invalid] };
  }

  /** Closes every server (open connections included); later updates do nothing. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      await this.queue;
      const all = [...this.servers.entries()];
      this.servers.clear();
      await Promise.all(all.map(([, srv]) => closeServer(srv.server)));
      if (all.length > 0) this.log.info({ ports: all.map(([port]) => port) }, 'health check servers closed');
    })();
    return this.stopping;
  }

  private enqueue(): Promise<HealthCheckStatus> {
    const run = this.queue.then(() => this.reconcile());
    this.queue = run.catch((err: unknown) => this.log.error({ err }, 'health check servers: reconcile failed'));
    return this.queue.then(() => this.status());
  }

  /** The entry a server on `port` answers with: its owner's, or the last one with 0 endpoints. */
  private entryFor(port: number, previous: HealthCheckService): HealthCheckService {
    return this.assigned.get(port) ?? { ...previous, localEndpoints: 0 };
  }

  /** Makes the server set match `this.assigned` (the latest update, read at each step). */
  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const closing = [...this.servers].filter(([port]) => !this.assigned.has(port));
    for (const [port] of closing) this.servers.delete(port);
    await Promise.all(
      closing.map(async ([port, srv]) => {
        await closeServer(srv.server);
        this.log.info({ port, service: serviceId(srv.entry) }, 'health check server closed');
      }),
    );
    const opening = [...this.assigned].filter(([port]) => !this.servers.has(port));
    await Promise.all(opening.map(([port, entry]) => this.open(port, entry)));
    this.scheduleRetry();
  }

  private async open(port: number, entry: HealthCheckService): Promise<void> {
    const service = serviceId(entry);
    const server = createServer(
      { headersTimeout: 5000, requestTimeout: 10_000, keepAliveTimeout: 5000, connectionsCheckingInterval: 1000 },
      (req, res) => this.answer(record.entry, req, res),
    );
    // The handler reads this record, so update() can swap the entry without touching the server.
    const record: PortServer = { server, entry };
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: this.host }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.bindFailed(port, service, err);
      return;
    }
    // Errors after listening (rare: accept failures) are logged; they must not crash the agent.
    server.on('error', (err) => this.log.error({ err, port, service: serviceId(record.entry) }, 'health check server error'));
    const current = this.assigned.get(port);
    if (this.stopped || !current) {
      // Stopped, or the port became unwanted while binding: do not keep it.
      await closeServer(server);
      return;
    }
    record.entry = current;
    this.servers.set(port, record);
    const recovered = this.failures.get(port);
    this.failures.delete(port);
    const bound = server.address() as AddressInfo;
    this.log.info(
      { port, service: serviceId(current), address: bound.address, localEndpoints: current.localEndpoints, ...(recovered ? { previousError: recovered.message } : {}) },
      'health check server listening',
    );
  }

  private bindFailed(port: number, service: string, err: unknown): void {
    const code = errorCode(err);
    const detail = code === 'EADDRINUSE' ? 'port already in use' : (err as Error | undefined)?.message ?? String(err);
    const message = `health check for Service ${service} cannot listen on port ${port}: ${detail}; retrying`;
    const previous = this.failures.get(port);
    this.failures.set(port, { service, code, message });
    if (previous && previous.service === service && previous.code === code) {
      this.log.debug({ port, service, code }, message);
      return;
    }
    this.log.error({ port, service, code, err }, message);
    this.onProblem?.({ kind: 'bind', service, port, message });
  }

  /** Conflicts and invalid ports: reported when they first appear, forgotten when they go. */
  private reportAssignmentProblems(): void {
    const current = new Set<string>();
    for (const c of this.conflicts) {
      const key = `conflict:${c.port}:${c.service}:${c.winner}`;
      current.add(key);
      if (this.reported.has(key)) continue;
      const message = `health check for Service ${c.service} not served: port ${c.port} is already the health check port of Service ${c.winner}`;
      this.log.error({ port: c.port, service: c.service, winner: c.winner }, message);
      this.onProblem?.({ kind: 'conflict', service: c.service, port: c.port, message });
    }
    for (const i of this.invalid) {
      const key = `invalid:${i.port}:${i.service}`;
      current.add(key);
      if (this.reported.has(key)) continue;
      const message = `health check for Service ${i.service} not served: ${i.port} is not a port`;
      this.log.error({ port: i.port, service: i.service }, message);
      this.onProblem?.({ kind: 'invalid-port', service: i.service, port: i.port, message });
    }
    this.reported = current;
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryIntervalMs <= 0 || this.retryTimer) return;
    const pending = [...this.assigned.keys()].some((port) => !this.servers.has(port));
    if (!pending) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.enqueue();
    }, this.retryIntervalMs);
    this.retryTimer.unref();
  }

  private answer(entry: HealthCheckService, req: IncomingMessage, res: ServerResponse): void {
    req.resume(); // any request body is ignored
    const count = entry.localEndpoints;
    let healthy: boolean;
    try {
      healthy = this.proxyHealthy();
    } catch (err) {
      this.log.error({ err }, 'health check: proxy health function threw; answering unhealthy');
      healthy = false;
    }
    const body = JSON.stringify({
      service: { namespace: entry.namespace, name: entry.name },
      localEndpoints: count,
      serviceProxyHealthy: healthy,
    });
    res.writeHead(count > 0 && healthy ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(count),
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  }
}

/** Stops listening and drops open (keep-alive) connections, so probes see the port closed. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
