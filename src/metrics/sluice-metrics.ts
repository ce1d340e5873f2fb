// The agent's metric set (all names start with sluice_) and typed update methods. The agent
// feeds it from the reconciler's sync reports, the watchers, and — at scrape time, through a
// registry collector — from the same counter and map-fill views the admin API serves, so
// /metrics and sluicectl always agree.
import type { AdminBackend, DropCounterView, ExternalCounterView, MapFillView, ServiceCountersView } from '../admin/types.js';
import { Registry } from './registry.js';
import type { Counter, Gauge, Histogram } from './registry.js';

/** Seconds; from 1 ms (a small incremental sync) to 10 s (a cold start at scale). */
export const SYNC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type ServiceLabel = 'namespace' | 'name' | 'port' | 'protocol' | 'family';
const SERVICE_LABELS: ServiceLabel[] = ['namespace', 'name', 'port', 'protocol', 'family'];

export interface SyncObservation {
  durationMs: number;
  /** Everything recomputed and re-diffed, rather than only what the changes touched. */
  full: boolean;
  ok: boolean;
  /** When it finished (default now). */
  at?: Date;
}

export class SluiceMetrics {
  readonly registry: Registry;
  readonly buildInfo: Gauge<'version' | 'libbpf'>;
  readonly syncDuration: Histogram<'kind'>;
  readonly syncs: Counter<'kind' | 'result'>;
  readonly lastSync: Gauge;
  readonly sourcesSynced: Gauge;
  readonly servicePorts: Gauge;
  readonly frontends: Gauge;
  readonly backends: Gauge;
  readonly mapEntries: Gauge<'map'>;
  readonly mapCapacity: Gauge<'map'>;
  readonly mapFullErrors: Counter<'map'>;
  readonly servicePackets: Counter<ServiceLabel>;
  readonly serviceBytes: Counter<ServiceLabel>;
  readonly serviceConnections: Counter<ServiceLabel>;
  readonly serviceRejected: Counter<ServiceLabel>;
  readonly drops: Counter<'reason'>;
  readonly external: Record<'packets' | 'bytes' | 'connections' | 'refused', Counter<'kind'>>;
  readonly ipv6Untranslated: Counter;
  readonly apiObjects: Gauge<'resource'>;
  readonly watchRestarts: Counter<'resource'>;
  readonly relists: Counter<'resource'>;
  readonly apiErrors: Counter<'resource'>;
  readonly errors: Counter<'component'>;
  readonly modelErrors: Gauge;
  readonly programsAttached: Gauge<'hook'>;
  readonly kernelFeature: Gauge<'feature'>;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const r = registry;
    this.buildInfo = r.gauge({ name: 'sluice_build_info', help: 'Always 1; labels carry the agent and libbpf versions.', labelNames: ['version', 'libbpf'] });
    this.syncDuration = r.histogram({
      name: 'sluice_sync_duration_seconds', help: 'Time to compute and apply one sync of the service table.', labelNames: ['kind'], buckets: SYNC_BUCKETS,
    });
    this.syncs = r.counter({ name: 'sluice_syncs_total', help: 'Syncs of the service table, by kind and result.', labelNames: ['kind', 'result'] });
    this.lastSync = r.gauge({ name: 'sluice_last_sync_timestamp_seconds', help: 'Unix time the last successful sync finished.' });
    this.sourcesSynced = r.gauge({ name: 'sluice_sources_synced', help: '1 when every object source has its initial list, else 0.' });
    this.servicePorts = r.gauge({ name: 'sluice_service_ports_programmed', help: 'Service ports (per IP family) programmed in the maps.' });
    this.frontends = r.gauge({ name: 'sluice_frontends_programmed', help: 'Frontends (ClusterIP, NodePort, external and LoadBalancer addresses) programmed.' });
    this.backends = r.gauge({ name: 'sluice_backends_programmed', help: 'Backend slots programmed, over all service ports.' });
    this.mapEntries = r.gauge({ name: 'sluice_map_entries', help: 'Entries in each BPF map (conntrack included).', labelNames: ['map'] });
    this.mapCapacity = r.gauge({ name: 'sluice_map_capacity', help: 'Maximum entries of each BPF map.', labelNames: ['map'] });
    this.mapFullErrors = r.counter({
      name: 'sluice_map_full_errors_total',
      help: 'Service ports (and ClusterIPs) a sync could not program because a map was full, by map; each retry that fails again counts again (size it: --map-size-*).',
      labelNames: ['map'],
    });
    const svc = (what: string, help: string) =>
      r.counter({ name: `sluice_service_${what}_total`, help, labelNames: SERVICE_LABELS });
    this.servicePackets = svc('packets', 'Packets translated towards each service port (TC path).');
    this.serviceBytes = svc('bytes', 'Bytes of the packets translated towards each service port (TC path).');
    this.serviceConnections = svc('connections', 'New connections or flows balanced for each service port (both paths).');
    this.serviceRejected = svc('rejected', 'Connections refused for each service port because no backend was usable.');
    this.drops = r.counter({ name: 'sluice_drops_total', help: 'Packets dropped by the datapath, by reason.', labelNames: ['reason'] });
    this.external = {
      packets: r.counter({ name: 'sluice_external_packets_total', help: 'New external flows\' first packets on the host interfaces, by frontend kind.', labelNames: ['kind'] }),
      bytes: r.counter({ name: 'sluice_external_bytes_total', help: 'Bytes of those packets, by frontend kind.', labelNames: ['kind'] }),
      connections: r.counter({ name: 'sluice_external_connections_total', help: 'External flows balanced on the host interfaces, by frontend kind.', labelNames: ['kind'] }),
      refused: r.counter({ name: 'sluice_external_refused_total', help: 'External flows refused (no backend, no local backend, source range), by frontend kind.', labelNames: ['kind'] }),
    };
    this.ipv6Untranslated = r.counter({
      name: 'sluice_ipv6_untranslated_packets_total', help: 'IPv6 packets the TC path passed untouched, not translated, because of extension headers it does not translate (fragments, routing with segments left, ESP, ...).',
    });
    this.apiObjects = r.gauge({ name: 'sluice_api_objects', help: 'Kubernetes objects held in the agent\'s cache, by resource.', labelNames: ['resource'] });
    this.watchRestarts = r.counter({
      name: 'sluice_api_watch_restarts_total', help: 'Watches restarted for any reason but a stop (idle, 410 gone, error, server close), by resource.', labelNames: ['resource'],
    });
    this.relists = r.counter({ name: 'sluice_api_relists_total', help: 'Full relists of a resource (start, 410 gone, periodic).', labelNames: ['resource'] });
    this.apiErrors = r.counter({ name: 'sluice_api_errors_total', help: 'Errors reported by an object source (failed lists or watches, bad objects), by resource.', labelNames: ['resource'] });
    this.errors = r.counter({ name: 'sluice_errors_total', help: 'Errors handled by the agent, by component.', labelNames: ['component'] });
    this.modelErrors = r.gauge({ name: 'sluice_model_errors', help: 'Kubernetes objects currently rejected as malformed (others still apply).' });
    this.programsAttached = r.gauge({ name: 'sluice_programs_attached', help: 'BPF program attachments in place, by hook (cgroup, tc).', labelNames: ['hook'] });
    this.kernelFeature = r.gauge({
      name: 'sluice_kernel_feature', help: '1 when the datapath feature is in use on this kernel, 0 when the kernel lacks it or it is disabled (docs/kernels.md).', labelNames: ['feature'],
    });
  }

  setBuildInfo(version: string, libbpf: string): void {
    this.buildInfo.reset();
    this.buildInfo.set({ version, libbpf }, 1);
  }

  observeSync(o: SyncObservation): void {
    const kind = o.full ? 'full' : 'incremental';
    this.syncDuration.observe({ kind }, o.durationMs / 1000);
    this.syncs.inc({ kind, result: o.ok ? 'ok' : 'error' });
    if (o.ok) this.lastSync.set(undefined, (o.at ?? new Date()).getTime() / 1000);
  }

  setSourcesSynced(synced: boolean): void {
    this.sourcesSynced.set(undefined, synced ? 1 : 0);
  }

  /** A sync's errors: those of a full map are counted by map. */
  countMapFull(errors: readonly { map?: string; capacity?: number }[]): void {
    for (const e of errors) if (e.capacity !== undefined && e.map) this.mapFullErrors.inc({ map: e.map });
  }

  setProgrammed(counts: { servicePorts: number; frontends: number; backends: number }): void {
    this.servicePorts.set(undefined, counts.servicePorts);
    this.frontends.set(undefined, counts.frontends);
    this.backends.set(undefined, counts.backends);
  }

  /** Replaces the map fill series (maps that disappeared are dropped). */
  setMapFill(maps: readonly Pick<MapFillView, 'name' | 'entries' | 'maxEntries'>[]): void {
    this.mapEntries.reset();
    this.mapCapacity.reset();
    for (const m of maps) {
      this.mapEntries.set({ map: m.name }, m.entries);
      this.mapCapacity.set({ map: m.name }, m.maxEntries);
    }
  }

  /**
   * Sets the per-service totals from the per-CPU counters. Service ports not in the list are
   * dropped, so deleted services stop being exported.
   */
  setServiceCounters(services: readonly ServiceCountersView[]): void {
    const counters = [this.servicePackets, this.serviceBytes, this.serviceConnections, this.serviceRejected];
    const keep = new Set<string>();
    for (const s of services) {
      const labels = { namespace: s.namespace, name: s.name, port: s.portName, protocol: s.protocol, family: s.family };
      keep.add(JSON.stringify(SERVICE_LABELS.map((l) => labels[l])));
      this.servicePackets.setTotal(labels, s.packets);
      this.serviceBytes.setTotal(labels, s.bytes);
      this.serviceConnections.setTotal(labels, s.connections);
      this.serviceRejected.setTotal(labels, s.rejected);
    }
    for (const c of counters) c.retain((l) => keep.has(JSON.stringify(SERVICE_LABELS.map((k) => l[k]))));
  }

  setDrops(drops: readonly DropCounterView[]): void {
    for (const d of drops) this.drops.setTotal({ reason: d.reason }, d.packets);
  }

  /** sl_ext_counters, labelled by frontend kind. */
  setExternalCounters(counters: readonly ExternalCounterView[]): void {
    for (const c of counters) {
      for (const name of ['packets', 'bytes', 'connections', 'refused'] as const) this.external[name].setTotal({ kind: c.kind }, c[name]);
    }
  }

  /** sl_ipv6_untranslated summed over CPUs. */
  setIpv6Untranslated(packets: number): void {
    this.ipv6Untranslated.setTotal(undefined, packets);
  }

  /** The object store's per-kind totals (ObjectStore.stats()), e.g. at scrape time. */
  setSourceStats(stats: Readonly<Record<string, { objects: number; watchRestarts: number; relists: number; errors: number }>>): void {
    for (const [resource, st] of Object.entries(stats)) {
      this.apiObjects.set({ resource }, st.objects);
      this.watchRestarts.setTotal({ resource }, st.watchRestarts);
      this.relists.setTotal({ resource }, st.relists);
      this.apiErrors.setTotal({ resource }, st.errors);
    }
  }

  error(component: string): void {
    this.errors.inc({ component });
  }

  setModelErrors(count: number): void {
    this.modelErrors.set(undefined, count);
  }

  setProgramsAttached(hook: 'cgroup' | 'tc', count: number): void {
    this.programsAttached.set({ hook }, count);
  }

  setKernelFeatures(features: readonly { name: string; state: string }[]): void {
    this.kernelFeature.reset();
    for (const f of features) this.kernelFeature.set({ feature: f.name }, f.state === 'on' ? 1 : 0);
  }
}

/**
 * Refreshes per-service counters, drops and map fill levels from the admin views at every
 * scrape, so /metrics and sluicectl read the same numbers. Reading fill levels walks every map
 * (conntrack included): scrape intervals of 15 s or more keep that cheap.
 */
export function collectFromDataplane(metrics: SluiceMetrics, source: Pick<AdminBackend, 'counters' | 'maps'>): void {
  metrics.registry.onCollect(async () => {
    const counters = await source.counters();
    metrics.setServiceCounters(counters.services);
    metrics.setDrops(counters.drops);
    if (counters.external) metrics.setExternalCounters(counters.external);
    if (counters.ipv6Untranslated !== undefined) metrics.setIpv6Untranslated(counters.ipv6Untranslated);
    metrics.setMapFill((await source.maps()).maps);
  });
}
