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
import { KubernetesSource, loadKubeConfig } from '../k8s/informers.js';
import { ManifestSource } from '../k8s/manifests.js';
import { ServiceTableWriter } from '../dataplane/writer.js';
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
import { Reconciler } from './reconciler.js';
import { HealthCheckServers } from './health-check-servers.js';
import type { SyncReport } from './reconciler.js';
import { openAgentDatapath } from './datapath.js';
import { localPortRange, nodePortCandidates, readExternalCounters, readHostAddresses, snatAddress, snatRangeProblem, writeNodeConfig } from './host-addresses.js';
import { nodeIPv4 } from './node-address.js';
import { SourceRangeWriter } from '../dataplane/source-ranges.js';
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
    families: ['IPv4'], nodePortAddresses: cfg.nodePortAddresses, serviceProxyName: cfg.serviceProxyName,
    ...(hostAddresses ? { hostAddresses } : {}),
  };
}

function makeSource(cfg: AgentConfig, store: ObjectStore, logging: Logging): Source & { errors?: () => { message: string; object?: string }[] } {
  if (cfg.manifestsDir) {
    return new ManifestSource({ dir: cfg.manifestsDir, store, logger: logging.component('manifests') });
  }
  return new KubernetesSource({
    kubeConfig: loadKubeConfig(cfg.kubeconfig),
    store,
    logger: logging.component('k8s'),
    serviceProxyName: cfg.serviceProxyName,
  });
}

/** Effective configuration for the status answer (nothing secret is in AgentConfig). */
function publicConfig(cfg: AgentConfig): Record<string, unknown> {
  return { ...cfg, ctTimeouts: { ...cfg.ctTimeouts } };
}

export async function startAgent(cfg: AgentConfig, logging: Logging = createLogging({ level: cfg.logLevel })): Promise<RunningAgent> {
  const log = logging.component('agent');
  const startedAt = new Date();
  const errors: StatusError[] = [];
  // The one place errors are recorded: status lists them, sluice_errors_total{component} counts them.
  const recordError = (component: string, message: string, object?: string) => {
    errors.push({ at: new Date().toISOString(), component, message, ...(object ? { object } : {}) });
    if (errors.length > MAX_STATUS_ERRORS) errors.splice(0, errors.length - MAX_STATUS_ERRORS);
    metrics.error(component);
  };
  log.info({ nodeName: cfg.nodeName, pinDir: cfg.pinDir, version: sluiceVersion() }, 'starting sluice-agent');

  const metrics = new SluiceMetrics();
  const health = new AgentHealth();
  const stopHeartbeat = health.startHeartbeat();
  // libbpf's messages are collected by the addon (never a call into JS from its callback).
  const stopLibbpfPump = startLibbpfLogPump(loadNative(), logging.component('libbpf'));
  // The source first: unusable credentials (a malformed kubeconfig, no in-cluster token) fail
  // here, before anything is pinned or attached.
  const store = new ObjectStore();
  let source: ReturnType<typeof makeSource>;
  try {
    source = makeSource(cfg, store, logging);
  } catch (err) {
    stopLibbpfPump();
    stopHeartbeat();
    throw err;
  }
  const datapath = await openAgentDatapath(cfg, logging.component('datapath'));
  health.setProgramsLoaded(true);
  metrics.setBuildInfo(sluiceVersion(), datapath.libbpfVersion);

  const writer = new ServiceTableWriter({
    tables: datapath.tables,
    logger: logging.component('dataplane'),
    udpSocketSweep: datapath.udpSocketSweep,
    // Each backend records its node's address (for forwarding to remote backends and DSR).
    nodeAddress: nodeAddressLookup(store),
  });
  try {
    writer.preload();
  } catch (err) {
    // The first apply reads them again and reports what fails.
    log.warn({ error: (err as Error).message }, 'reading the service maps failed; retried by the first sync');
  }
  let syncState: SyncState = 'waiting-for-sources';

  // External traffic (host-facing interfaces): NodePort addresses from the host's interfaces,
  // the SNAT address and port range in sl_node_config, loadBalancerSourceRanges in their map.
  const external = cfg.hostInterfacePatterns.length > 0;
  const hostLog = logging.component('external');
  let hostAddresses: string[] | undefined;
  let snatAddr: string | undefined;
  const sourceRanges = external ? new SourceRangeWriter(datapath.map('sl_src_ranges4'), (key) => writer.serviceId(key)) : undefined;
  const refreshHost = async (): Promise<boolean> => {
    if (!external) return false;
    let addrs;
    try {
      addrs = await readHostAddresses();
    } catch (err) {
      recordError('external', `reading the host's addresses failed: ${(err as Error).message}`);
      return false;
    }
    const snat = snatAddress(addrs, cfg.hostInterfacePatterns, nodeIPv4(store.get('Node', cfg.nodeName)));
    if (snat !== snatAddr) {
      snatAddr = snat;
      writeNodeConfig(datapath.map('sl_node_config'), snat, cfg.snatPortRange);
      hostLog.info({ snatAddress: snat ?? null, snatPorts: `${cfg.snatPortRange.min}-${cfg.snatPortRange.max}` }, 'SNAT source for external flows to remote backends');
    }
    const candidates = nodePortCandidates(addrs);
    if (hostAddresses && candidates.join(',') === hostAddresses.join(',')) return false;
    hostAddresses = candidates;
    hostLog.info({ addresses: candidates }, 'host addresses for NodePorts');
    return true;
  };
  if (external) {
    await refreshHost();
    const problem = snatRangeProblem(cfg.snatPortRange, await localPortRange());
    if (problem) recordError('external', problem);
  }

  const syncLog = logging.component('reconciler');
  const onSync = (report: SyncReport) => {
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
    for (const e of report.applyErrors) {
      recordError('dataplane', e.message, e.key);
    }
    if (ok) {
      metrics.setProgrammed({ servicePorts: report.services, frontends: report.frontends, backends: report.backends });
      syncState = 'synced';
      health.markSynced();
    } else {
      syncState = 'error';
    }
  };
  // kube-proxy's healthCheckNodePort servers, updated after each apply so a node answers 200
  // only once its local endpoints are programmed.
  const healthChecks = new HealthCheckServers({
    logger: logging.component('health-check'),
    proxyHealthy: () => health.liveness().ok,
    onProblem: (p) => recordError('health-check', p.message, p.service),
  });
  // Without a hint (a full sync, or after a failure) the index is rebuilt from the whole state.
  const healthCheckIndex = new HealthCheckIndex();
  const reconciler = new Reconciler({
    source: store,
    sink: {
      apply: (state, hint) => {
        const outcome = writer.apply(state, hint);
        for (const e of sourceRanges?.apply(state).errors ?? []) recordError('dataplane', e);
        void healthChecks.update(healthCheckIndex.services(state, hint?.changed));
        return outcome;
      },
      resync: () => writer.resync(),
    },
    model: new IncrementalModel(),
    nodeName: cfg.nodeName,
    modelConfig: modelConfig(cfg, hostAddresses),
    minSyncPeriodMs: cfg.minSyncPeriodMs,
    fullResyncPeriodMs: cfg.fullResyncPeriodMs,
    logger: logging.component('reconciler'),
    onSync,
    onSyncStart: () => health.syncStarted(),
    releaseMemory: () => loadNative().releaseMemory(),
  });

  await datapath.attachConnectTime();
  const watcher = new InterfaceWatcher({
    patterns: cfg.interfacePatterns,
    logger: logging.component('interfaces'),
    onAdded: (iface) => datapath.attachInterface(iface).catch((err: unknown) => {
      recordError('tc-attach', `attaching to ${iface.name} failed: ${(err as Error).message}`, iface.name);
      throw err;
    }),
    onRemoved: (iface) => datapath.forgetInterface(iface),
  });
  await watcher.start();
  // The node's host-facing interfaces (eth*, ens*, ...) get the external-traffic programs; one
  // appearing or going may move the NodePort addresses and the SNAT source.
  const onHostChange = async () => {
    if (await refreshHost()) reconciler.setModelConfig(modelConfig(cfg, hostAddresses));
  };
  const hostWatcher = external ? new InterfaceWatcher({
    patterns: cfg.hostInterfacePatterns,
    logger: logging.component('host-interfaces'),
    onAdded: async (iface) => {
      await datapath.attachHostInterface(iface).catch((err: unknown) => {
        recordError('tc-attach', `attaching the external-traffic programs to ${iface.name} failed: ${(err as Error).message}`, iface.name);
        throw err;
      });
      await onHostChange();
    },
    onRemoved: async (iface) => {
      datapath.forgetInterface(iface);
      await onHostChange();
    },
  }) : undefined;
  await hostWatcher?.start();
  // Addresses can change without a link event: looked at again with the attachments.
  store.onChange((change) => {
    if (change.kind === 'Node') void onHostChange();
  });
  const attachLog = logging.component('datapath');
  const refreshAttachHealth = async () => {
    let programs = await datapath.verify().catch(() => datapath.attachments());
    // Something removed our filters or detached our links (an operator, another tool): repair
    // it, record it, and look again. Until it is repaired, /healthz says what is missing.
    if (programs.some((p) => !p.attached && p.progId !== 0)) {
      try {
        const repaired = await datapath.repair();
        for (const p of repaired) recordError('attach', `${p.program} on ${p.target} was gone (${p.error ?? 'detached'}); re-attached`, p.target);
        attachLog.warn({ repaired: repaired.map((p) => `${p.program} on ${p.target}`) }, 'programs were detached behind our back: re-attached');
      } catch (err) {
        recordError('attach', `re-attaching failed: ${(err as Error).message}`);
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
    void onHostChange();
  }, 5000);
  attachTimer.unref();

  const backend = new MapsAdminBackend({
    tables: datapath.tables,
    pinDir: cfg.pinDir,
    status: () => ({
      nodeName: cfg.nodeName,
      startedAt: startedAt.toISOString(),
      config: { ...publicConfig(cfg), logLevel: logging.level },
      programs: datapath.attachments(),
      sync: {
        state: syncState === 'waiting-for-sources' && store.isSynced() ? 'syncing' : syncState,
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
    ...(external ? { externalCounters: () => readExternalCounters(datapath.map('sl_ext_counters'), loadNative().numPossibleCpus()) } : {}),
  });
  const admin: AdminServer = await startAdminServer({ socketPath: cfg.adminSocket, backend, logger: logging.component('admin') });
  let metricsServer: MetricsServer | undefined;
  if (cfg.metricsAddress) {
    metrics.registry.onCollect(() => {
      metrics.setSourcesSynced(store.isSynced());
      metrics.setSourceStats(store.stats());
    });
    collectFromDataplane(metrics, backend);
    metricsServer = await startMetricsServer({ address: cfg.metricsAddress, registry: metrics.registry, health, logger: logging.component('metrics') });
  }

  await source.start();
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
      hostWatcher?.stop();
      await reconciler.stop();
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
