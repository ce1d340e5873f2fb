// sluice-agent: wires the layers together. Sources fill the object store; the reconciler turns
// the store into desired state (src/model) and hands it to the service-table writer
// (src/dataplane), the only map writer. The datapath (loaded programs, links, TC filters) stays
// pinned and attached when the agent exits, so services keep working across restarts and
// upgrades; `sluice-agent cleanup` is the explicit way to remove it all.
import type { Logger } from 'pino';
import { HealthCheckIndex } from '../model/index.js';
import { nodeAddressLookup } from './node-address.js';
import { IncrementalModel } from '../model/incremental.js';
import type { ModelConfig } from '../model/types.js';
import { ObjectStore } from '../k8s/store.js';
import type { Source } from '../k8s/store.js';
import { KubernetesSource, loadKubeConfig, reachesApiServerThroughClusterIp } from '../k8s/informers.js';
import { ManifestSource } from '../k8s/manifests.js';
import { ServiceTableWriter } from '../dataplane/writer.js';
import type { ApplyResult } from '../dataplane/writer.js';
import type { DesiredState } from '../model/types.js';
import { IPV6_UNTRANSLATED_MAP, readIpv6Untranslated } from '../dataplane/ipv6-untranslated.js';
import { createLogging } from '../log/logger.js';
import type { Logging } from '../log/logger.js';
import { startAdminServer } from '../admin/server.js';
import type { AdminServer } from '../admin/server.js';
import { MapsAdminBackend, sluiceVersion } from '../admin/maps-backend.js';
import type { StatusError, SyncState } from '../admin/types.js';
import { collectFromDataplane, SluiceMetrics } from '../metrics/sluice-metrics.js';
import { startLibbpfLogPump } from '../log/libbpf.js';
import { loadNative } from '../bpf/native.js';
import { AgentHealth } from '../metrics/health.js';
import { startMetricsServer } from '../metrics/server.js';
import type { MetricsServer } from '../metrics/server.js';
import type { AgentConfig } from './config.js';
import { InterfaceWatcher } from './interfaces.js';
import { MemoryReleaseScheduler } from './memory-release.js';
import { loadMemoryAddon } from './process-memory.js';
import { Reconciler } from './reconciler.js';
import { HealthCheckServers } from './health-check-servers.js';
import type { SyncReport } from './reconciler.js';
import { openAgentDatapath } from './datapath.js';
import { checkTcBinary } from '../datapath/tc-filters.js';
import { ExternalTraffic } from './external.js';
import type { AgentDatapath } from './datapath.js';

const MAX_STATUS_ERRORS = 50;

export interface RunningAgent {
  readonly datapath: AgentDatapath;
  readonly reconciler: Reconciler;
  readonly store: ObjectStore;
  /** Stops the agent; the dataplane stays programmed and attached. */
  stop(): Promise<void>;
}

function modelConfig(cfg: AgentConfig, hostAddresses?: string[]): ModelConfig {
  return {
    families: [...cfg.ipFamilies], nodePortAddresses: cfg.nodePortAddresses, serviceProxyName: cfg.serviceProxyName,
    ...(hostAddresses ? { hostAddresses } : {}),
  };
}

function makeSource(cfg: AgentConfig, store: ObjectStore, logging: Logging): Source & { errors?: () => { message: string; object?: string }[] } {
  if (cfg.manifestsDir) {
    return new ManifestSource({ dir: cfg.manifestsDir, store, logger: logging.component('manifests') });
  }
  const kubeConfig = loadKubeConfig(cfg.kubeconfig, cfg.k8sApiServer);
  if (reachesApiServerThroughClusterIp(kubeConfig, cfg.k8sApiServer)) {
    logging.component('k8s').warn({ server: kubeConfig.getCurrentCluster()?.server },
      'reaching the API server through its ClusterIP: a node without kube-proxy cannot start this way; set --k8s-api-server (SLUICE_K8S_API_SERVER) to its real address');
  }
  return new KubernetesSource({
    kubeConfig,
    store,
    logger: logging.component('k8s'),
    serviceProxyName: cfg.serviceProxyName,
  });
}

/** Effective configuration for the status answer (nothing secret is in AgentConfig). */
function publicConfig(cfg: AgentConfig): Record<string, unknown> {
  return { ...cfg, ctTimeouts: { ...cfg.ctTimeouts } };
}

/** What every phase of the start shares: the config, logging, metrics, health and the error list. */
interface AgentContext {
  cfg: AgentConfig;
  logging: Logging;
  metrics: SluiceMetrics;
  health: AgentHealth;
  startedAt: Date;
  errors: StatusError[];
  /** The one place errors are recorded: status lists them, sluice_errors_total{component} counts them. */
  recordError(component: string, message: string, object?: string): void;
}

function agentContext(cfg: AgentConfig, logging: Logging): AgentContext {
  const metrics = new SluiceMetrics();
  const errors: StatusError[] = [];
  return {
    cfg, logging, metrics, health: new AgentHealth(), startedAt: new Date(), errors,
    recordError: (component, message, object) => {
      errors.push({ at: new Date().toISOString(), component, message, ...(object ? { object } : {}) });
      if (errors.length > MAX_STATUS_ERRORS) errors.splice(0, errors.length - MAX_STATUS_ERRORS);
      metrics.error(component);
    },
  };
}

/** The writer over the datapath's maps, with what the maps hold read before the sources sync. */
function openWriter(ctx: AgentContext, datapath: AgentDatapath, store: ObjectStore): ServiceTableWriter {
  const writer = new ServiceTableWriter({
    tables: datapath.tables,
    // IPv6 service ports go to the IPv6 maps, programmed independently of IPv4 (docs/ipv6.md).
    ...(datapath.tables6 ? { tables6: datapath.tables6 } : {}),
    logger: ctx.logging.component('dataplane'),
    udpSocketSweep: datapath.udpSocketSweep,
    // Each backend records its node's address (for forwarding to remote backends and DSR).
    nodeAddress: nodeAddressLookup(store),
  });
  try {
    writer.preload();
  } catch (err) {
    // The first apply reads them again and reports what fails.
    ctx.logging.component('agent').warn({ error: (err as Error).message }, 'reading the service maps failed; retried by the first sync');
  }
  return writer;
}

/** Where the syncs stand, for the status answer. */
interface SyncStatus {
  state: SyncState;
}

/** What each sync report updates: the `applied` log line, metrics, health, the error list. */
function syncReporter(ctx: AgentContext, status: SyncStatus): (report: SyncReport) => void {
  const syncLog = ctx.logging.component('reconciler');
  const { metrics, health } = ctx;
  return (report) => {
    health.syncEnded();
    const ok = report.applyErrors.length === 0;
    if (report.applied) {
      // One line per sync: what changed, and how many map elements that took (0 writes and 0
      // deletes when nothing changed, e.g. the first sync after a restart over unchanged state).
      syncLog.info({
        services: report.applied.services, ops: report.applied.ops, full: report.full, incremental: report.incremental,
        durationMs: Number(report.durationMs.toFixed(2)), errors: report.applyErrors.length,
      }, 'applied');
    }
    metrics.observeSync({ durationMs: report.durationMs, full: !report.incremental, ok, at: new Date() });
    metrics.setModelErrors(report.modelErrors.length);
    metrics.countMapFull(report.applyErrors);
    for (const e of report.applyErrors) {
      ctx.recordError('dataplane', e.message, e.key);
    }
    if (ok) {
      metrics.setProgrammed({ servicePorts: report.services, frontends: report.frontends, backends: report.backends });
      status.state = 'synced';
      health.markSynced();
    } else {
      status.state = 'error';
      // Only full maps: everything that fits is programmed and the sync loop works. Readiness
      // must not wait for room that may never come (the startup probe would restart the agent
      // every few minutes for nothing); the error state, the errors and
      // sluice_map_full_errors_total say what is left out.
      if (report.applyErrors.every((e) => e.capacity !== undefined)) health.markSynced();
    }
  };
}

/**
 * A full sync gives the event loop a turn after each slice of this many ms (src/model/steps.ts):
 * at 65,536 dual-stack Services a full sync is seconds of CPU, and the admin socket, metrics and
 * watches are served between slices instead of after it.
 */
const SYNC_SLICE_MS = 20;

/**
 * The reconciler from the store through the writer, with kube-proxy's healthCheckNodePort servers
 * (updated after each apply, so a node answers 200 only once its local endpoints are programmed)
 * and the memory release its sync reports drive.
 */
function startSyncing(ctx: AgentContext, store: ObjectStore, writer: ServiceTableWriter, status: SyncStatus, external: ExternalTraffic | null) {
  const { cfg, logging, health } = ctx;
  const healthChecks = new HealthCheckServers({
    logger: logging.component('health-check'),
    proxyHealthy: () => health.liveness().ok,
    onProblem: (p) => ctx.recordError('health-check', p.message, p.service),
  });
  // Without a hint (a full sync, or after a failure) the index is rebuilt from the whole state.
  const healthCheckIndex = new HealthCheckIndex();
  const memory = new MemoryReleaseScheduler({ release: () => loadMemoryAddon().releaseMemory(), logger: logging.component('reconciler') });
  const report = syncReporter(ctx, status);
  const afterApply = (state: DesiredState, hint: { changed: ReadonlySet<string> } | undefined, outcome: ApplyResult): ApplyResult => {
    external?.applySourceRanges(state);
    external?.applyMaglev(outcome);
    void healthChecks.update(healthCheckIndex.services(state, hint?.changed));
    return outcome;
  };
  const reconciler = new Reconciler({
    source: store,
    sink: {
      apply: (state, hint) => afterApply(state, hint, writer.apply(state, hint)),
      applySteps: function* (state, hint) {
        return afterApply(state, hint, yield* writer.applySteps(state, hint));
      },
      resync: () => writer.resync(),
    },
    model: new IncrementalModel(),
    nodeName: cfg.nodeName,
    modelConfig: modelConfig(cfg, external?.hostAddresses),
    minSyncPeriodMs: cfg.minSyncPeriodMs,
    fullResyncPeriodMs: cfg.fullResyncPeriodMs,
    logger: logging.component('reconciler'),
    onSync: (r) => {
      report(r);
      memory.onSync(r);
    },
    onSyncStart: () => {
      health.syncStarted();
      memory.onSyncStart();
    },
    yieldEveryMs: SYNC_SLICE_MS,
  });
  return { reconciler, healthChecks, memory };
}

/**
 * On a first install the TC hooks are new: creating an interface's clsact qdisc briefly
 * deactivates the device, and a SYN or SYN-ACK in flight through kube-proxy then is lost. Its
 * retransmit (1 s later) must meet kube-proxy again, not a Sluice that has just been programmed
 * and would pick another backend than the one kube-proxy's conntrack holds (a reset connection:
 * docs/coexistence.md). So the first apply waits until the new hooks are 2 s old. A restart over
 * programmed maps finds its hooks in place and does not wait.
 */
const NEW_HOOK_SETTLE_MS = 2000;
async function settleNewHooks(log: { info(o: object, msg: string): void }, attachedAt: number): Promise<void> {
  const waitMs = attachedAt + NEW_HOOK_SETTLE_MS - Date.now();
  if (waitMs <= 0) return;
  log.info({ waitMs }, 'first install: letting in-flight connections settle on the new TC hooks before programming');
  await new Promise((r) => setTimeout(r, waitMs));
}

/** TC on the interfaces that match (as they come and go), the connect-time programs on the cgroup. */
async function attachDatapath(ctx: AgentContext, datapath: AgentDatapath, external: ExternalTraffic | null, reconciler: Reconciler): Promise<InterfaceWatcher> {
  await datapath.attachConnectTime();
  const watcher = new InterfaceWatcher({
    patterns: ctx.cfg.interfacePatterns,
    logger: ctx.logging.component('interfaces'),
    onAdded: (iface) => datapath.attachInterface(iface).catch((err: unknown) => {
      ctx.recordError('tc-attach', `attaching to ${iface.name} failed: ${(err as Error).message}`, iface.name);
      throw err;
    }),
    onRemoved: (iface) => datapath.forgetInterface(iface),
  });
  await watcher.start();
  // The host-facing interfaces get the external-traffic programs; one appearing or going may move
  // the NodePort addresses and the SNAT source.
  await external?.start(() => reconciler.setModelConfig(modelConfig(ctx.cfg, external.hostAddresses)));
  // Upgrade hook: every program now runs from the new objects; old maps of another layout go.
  datapath.finishUpgrade();
  return watcher;
}

/** Checks every 5 s that the programs are still attached; repairs and records what was detached. */
async function watchAttachments(ctx: AgentContext, datapath: AgentDatapath, external: ExternalTraffic | null): Promise<NodeJS.Timeout> {
  const { health, metrics } = ctx;
  const attachLog = ctx.logging.component('datapath');
  const refreshAttachHealth = async () => {
    let programs = await datapath.verify().catch(() => datapath.attachments());
    // Something removed our filters or detached our links (an operator, another tool): repair
    // it, record it, and look again. Until it is repaired, /healthz says what is missing.
    if (programs.some((p) => !p.attached && p.progId !== 0)) {
      try {
        const repaired = await datapath.repair();
        for (const p of repaired) ctx.recordError('attach', `${p.program} on ${p.target} was gone (${p.error ?? 'detached'}); re-attached`, p.target);
        attachLog.warn({ repaired: repaired.map((p) => `${p.program} on ${p.target}`) }, 'programs were detached behind our back: re-attached');
      } catch (err) {
        ctx.recordError('attach', `re-attaching failed: ${(err as Error).message}`);
      }
      programs = await datapath.verify().catch(() => datapath.attachments());
    }
    const failed = programs.filter((p) => !p.attached);
    health.setProgramsAttached(failed.length === 0, failed.map((p) => `${p.program} on ${p.target}: ${p.error ?? 'detached'}`).join('; '));
    metrics.setProgramsAttached('cgroup', programs.filter((p) => p.hook === 'cgroup' && p.attached).length);
    metrics.setProgramsAttached('tc', programs.filter((p) => p.hook === 'tc' && p.attached).length);
  };
  await refreshAttachHealth();
  const attachTimer = setInterval(() => {
    void refreshAttachHealth();
    void external?.onHostChange();
  }, 5000);
  attachTimer.unref();
  return attachTimer;
}

interface ServerParts {
  datapath: AgentDatapath;
  store: ObjectStore;
  source: ReturnType<typeof makeSource>;
  writer: ServiceTableWriter;
  reconciler: Reconciler;
  status: SyncStatus;
  external: ExternalTraffic | null;
}

/** The admin socket (status, maps, log level, conntrack flush) and, when configured, the metrics server. */
async function startServers(ctx: AgentContext, p: ServerParts): Promise<{ admin: AdminServer; metricsServer: MetricsServer | undefined }> {
  const { cfg, logging, metrics, startedAt, errors } = ctx;
  const { datapath, store, source, writer, reconciler, status, external } = p;
  const backend = new MapsAdminBackend({
    tables: datapath.tables,
    ...(datapath.tables6 ? { tables6: datapath.tables6 } : {}),
    pinDir: cfg.pinDir,
    status: () => ({
      nodeName: cfg.nodeName,
      startedAt: startedAt.toISOString(),
      config: { ...publicConfig(cfg), logLevel: logging.level },
      programs: datapath.attachments(),
      kernel: datapath.kernelFeatures,
      objects: [...datapath.objectStarts],
      ...(external ? { maglev: external.maglev.summary() } : {}),
      sync: {
        state: status.state === 'waiting-for-sources' && store.isSynced() ? 'syncing' : status.state,
        sourcesSynced: store.isSynced(),
        lastSyncAt: reconciler.lastReport ? new Date(reconciler.lastReport.startedAt.getTime() + reconciler.lastReport.durationMs).toISOString() : null,
        lastSyncDurationMs: reconciler.lastReport ? Math.round(reconciler.lastReport.durationMs * 1000) / 1000 : null,
        syncCount: reconciler.syncCount,
        servicePortsProgrammed: reconciler.lastReport?.services ?? 0,
      },
      errors: [...errors, ...store.recentErrors().map((e) => ({ at: e.at, component: 'k8s', object: e.kind, message: e.message })), ...(source.errors?.() ?? []).map((e) => ({
        at: startedAt.toISOString(), component: 'manifests', message: e.message, ...(e.object ? { object: e.object } : {}),
      })), ...(reconciler.lastReport?.modelErrors ?? []).map((e) => ({
        at: reconciler.lastReport!.startedAt.toISOString(), component: 'model', object: e.object, message: `${e.kind} ${e.object}: ${e.field}=${JSON.stringify(e.value)}: ${e.message}`,
      }))],
    }),
    frontendKind: (key, ip, port) => writer.frontendKind(key, ip, port),
    setLogLevel: (level) => logging.setLevel(level),
    flushConntrack: (ids) => writer.flushConntrackIds([...ids]),
    ...(external ? { externalCounters: () => external.externalCounters() } : {}),
    ...(datapath.tables6 ? { ipv6Untranslated: () => readIpv6Untranslated(datapath.map(IPV6_UNTRANSLATED_MAP), loadNative().numPossibleCpus()) } : {}),
  });
  const admin: AdminServer = await startAdminServer({ socketPath: cfg.adminSocket, backend, logger: logging.component('admin') });
  let metricsServer: MetricsServer | undefined;
  if (cfg.metricsAddress) {
    metrics.registry.onCollect(() => {
      metrics.setSourcesSynced(store.isSynced());
      metrics.setSourceStats(store.stats());
    });
    collectFromDataplane(metrics, backend);
    metricsServer = await startMetricsServer({ address: cfg.metricsAddress, registry: metrics.registry, health: ctx.health, logger: logging.component('metrics') });
  }
  return { admin, metricsServer };
}

export async function startAgent(cfg: AgentConfig, logging: Logging = createLogging({ level: cfg.logLevel })): Promise<RunningAgent> {
  const log = logging.component('agent');
  const ctx = agentContext(cfg, logging);
  const { metrics, health } = ctx;
  log.info({ nodeName: cfg.nodeName, pinDir: cfg.pinDir, version: sluiceVersion() }, 'starting sluice-agent');

  const stopHeartbeat = health.startHeartbeat();
  // libbpf's messages are collected by the addon (never a call into JS from its callback).
  const stopLibbpfPump = startLibbpfLogPump(loadNative(), logging.component('libbpf'));
  // The source first: unusable credentials (a malformed kubeconfig, no in-cluster token) fail
  // here, before anything is pinned or attached.
  const store = new ObjectStore();
  let source: ReturnType<typeof makeSource>;
  try {
    source = makeSource(cfg, store, logging);
    // iproute2's tc reads the TC hooks back (src/datapath/tc-filters.ts): without it no TC
    // filter is attached or checked, and pods whose traffic needs the TC path go untranslated.
    // The agent refuses to start, before anything is pinned or attached: the reason is then the
    // pod's last log line and its CrashLoopBackOff, where an operator looks first (a running
    // agent with a failing /healthz would be restarted by the liveness probe all the same, only
    // later and with the reason buried). A dataplane a previous agent left keeps serving.
    await checkTcBinary();
  } catch (err) {
    stopLibbpfPump();
    stopHeartbeat();
    throw err;
  }
  const datapath = await openAgentDatapath(cfg, logging.component('datapath'));
  health.setProgramsLoaded(true);
  metrics.setBuildInfo(sluiceVersion(), datapath.libbpfVersion);
  metrics.setKernelFeatures(datapath.kernelFeatures.features);

  const writer = openWriter(ctx, datapath, store);
  const external = await ExternalTraffic.open({
    cfg, datapath, store, writer, logger: logging.component('external'), interfaceLogger: logging.component('host-interfaces'),
    recordError: ctx.recordError,
  });
  const status: SyncStatus = { state: 'waiting-for-sources' };
  const { reconciler, healthChecks, memory } = startSyncing(ctx, store, writer, status, external);
  const firstInstall = writer.programsNothing();
  const watcher = await attachDatapath(ctx, datapath, external, reconciler);
  const attachedAt = Date.now();
  const attachTimer = await watchAttachments(ctx, datapath, external);
  const { admin, metricsServer } = await startServers(ctx, { datapath, store, source, writer, reconciler, status, external });

  await source.start();
  if (firstInstall) await settleNewHooks(log, attachedAt);
  reconciler.start();
  log.info({ adminSocket: admin.socketPath, metrics: cfg.metricsAddress || 'off' }, 'sluice-agent running');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('stopping; the dataplane stays programmed and attached');
      clearInterval(attachTimer);
      stopHeartbeat();
      stopLibbpfPump();
      watcher.stop();
      external?.stop();
      await reconciler.stop();
      memory.stop();
      await healthChecks.stop();
      await source.stop();
      await admin.close();
      await metricsServer?.close();
      datapath.close();
    })();
    return stopping;
  };
  return { datapath, reconciler, store, stop };
}

/** Logs where the agent's own logger is not up yet (bad flags, failed start). */
export function fatal(logger: Logger | undefined, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (logger) logger.fatal({ err }, message);
  else process.stderr.write(`sluice-agent: ${message}\n`);
}
