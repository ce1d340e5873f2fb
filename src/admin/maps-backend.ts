// An AdminBackend that answers from Sluice's maps. sluicectl uses it read-only over the pinned
// maps when the agent is down; the agent can use the same class over its own map handles and
// plug in what only it knows (status, frontend kinds, log level, the conntrack flush that the
// dataplane, as the only map writer, performs).
import { readFileSync } from 'node:fs';
import { fromPackageRoot } from '../bpf/native.js';
import {
  affinityKey4, affinityValue4, backendKey, backendValue4, ctKey4, ctValue4, DROP_REASON_MAX, DROP_REASONS,
  frontendKey4, serviceValue, svcCounters, svcMeta,
} from '../bpf/sluice-structs.js';
import type { SvcCounters } from '../bpf/sluice-structs.js';
import type { LogLevel } from '../log/logger.js';
import { formatServiceRef, serviceKeyMatches } from './filters.js';
import { SLUICE_MAP_NAMES, countEntries, readArrayIndex, readEntries, readPerCpuIndex, readPerCpuU64 } from './map-reader.js';
import type { SluiceMapRole, SluiceMapSet } from './map-reader.js';
import {
  buildAffinityView, buildConntrackView, buildCountersView, buildNatView, buildServicesView, fillRatio, mapTypeName,
} from './map-views.js';
import { AdminError } from './types.js';
import type {
  AdminBackend, AffinityView, ConntrackView, CountersView, FlushResult, FrontendKindView, LogLevelResult, MapsView,
  NatView, ServiceRef, ServicesView, StatusView,
} from './types.js';

let versionCache: string | undefined;
/** The package version (package.json), for status answers. */
export function sluiceVersion(): string {
  if (versionCache === undefined) {
    try {
      versionCache = String((JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version?: unknown }).version ?? '0.0.0');
    } catch {
      versionCache = 'unknown';
    }
  }
  return versionCache;
}

export interface MapsBackendOptions {
  maps: SluiceMapSet;
  pinDir: string;
  /** The agent's status; without it, status says the agent is not running. */
  status?: () => Omit<StatusView, 'version' | 'agentRunning' | 'pinDir'>;
  /** Precise frontend kinds (the agent knows them from the model). */
  frontendKind?: (svcKey: string, ip: string, port: number) => FrontendKindView | undefined;
  setLogLevel?: (level: LogLevel) => LogLevelResult;
  /** Deletes the conntrack entries of these service ports; returns how many were deleted. */
  flushConntrack?: (svcIds: number[], ref: ServiceRef) => number;
  /** CLOCK_MONOTONIC now, in ns (tests inject). */
  nowNs?: () => bigint;
}

const READ_ONLY = 'the agent is not running: sluicectl reads the pinned maps read-only; start the agent to change anything';

export class MapsAdminBackend implements AdminBackend {
  private readonly nowNs: () => bigint;

  constructor(private readonly opts: MapsBackendOptions) {
    this.nowNs = opts.nowNs ?? (() => process.hrtime.bigint());
  }

  /** svc_id → service key for the given ids, from sl_svc_meta. */
  private names(ids: Iterable<number>): Map<number, string> {
    const names = new Map<number, string>();
    for (const id of ids) {
      if (names.has(id)) continue;
      const meta = readArrayIndex(this.opts.maps.svcMeta, id, svcMeta);
      if (meta?.name) names.set(id, meta.name);
    }
    return names;
  }

  private frontendEntries() {
    return readEntries(this.opts.maps.frontends4, frontendKey4, serviceValue);
  }

  status(): StatusView {
    const base = { version: sluiceVersion(), pinDir: this.opts.pinDir };
    if (this.opts.status) return { ...base, agentRunning: true, ...this.opts.status() };
    const programmed = new Set(this.frontendEntries().map((f) => f.value.svc_id)).size;
    return {
      ...base,
      agentRunning: false,
      nodeName: '',
      startedAt: '',
      config: {},
      programs: [],
      sync: {
        state: 'error',
        sourcesSynced: false,
        lastSyncAt: null,
        lastSyncDurationMs: null,
        syncCount: 0,
        servicePortsProgrammed: programmed,
      },
      errors: [],
    };
  }

  natDump(): NatView {
    const frontends = this.frontendEntries();
    const backends = readEntries(this.opts.maps.backends4, backendKey, backendValue4);
    return buildNatView(frontends, backends, this.names(frontends.map((f) => f.value.svc_id)));
  }

  services(): ServicesView {
    return buildServicesView(this.natDump(), this.opts.frontendKind);
  }

  conntrack(): ConntrackView {
    const entries = readEntries(this.opts.maps.ct4, ctKey4, ctValue4);
    return buildConntrackView(entries, this.names(entries.map((e) => e.value.svc_id)), this.nowNs());
  }

  affinity(): AffinityView {
    const entries = readEntries(this.opts.maps.affinity4, affinityKey4, affinityValue4);
    const timeouts = new Map<number, number>();
    for (const f of this.frontendEntries()) timeouts.set(f.value.svc_id, f.value.affinity_timeout_s);
    return buildAffinityView(entries, this.names(entries.map((e) => e.key.svc_id)), timeouts, this.nowNs());
  }

  counters(): CountersView {
    const ids = [...new Set(this.frontendEntries().map((f) => f.value.svc_id))];
    const perService = new Map<number, SvcCounters>();
    for (const id of ids) perService.set(id, readPerCpuIndex(this.opts.maps.svcCounters, id, svcCounters));
    const drops: bigint[] = [];
    const reasons = Math.min(DROP_REASON_MAX, this.opts.maps.dropCounters.info.maxEntries);
    for (let code = 0; code < reasons; code++) drops.push(readPerCpuU64(this.opts.maps.dropCounters, code));
    return buildCountersView(perService, drops, this.names(ids));
  }

  maps(): MapsView {
    const svcIdsInUse = new Set(this.frontendEntries().map((f) => f.value.svc_id)).size;
    // Arrays indexed by svc_id are "full" up to the ids in use; the drop table has one slot per reason.
    const arrayUse: Partial<Record<SluiceMapRole, number>> = {
      svcCounters: svcIdsInUse,
      svcMeta: svcIdsInUse,
      dropCounters: DROP_REASONS.length,
    };
    const maps = (Object.entries(this.opts.maps) as [SluiceMapRole, SluiceMapSet[SluiceMapRole]][]).map(([role, map]) => {
      const entries = arrayUse[role] ?? countEntries(map);
      return {
        // Kernel map names stop at 15 characters (sl_drop_counters): use the pinned name.
        name: SLUICE_MAP_NAMES[role],
        type: mapTypeName(map.info.type),
        entries,
        maxEntries: map.info.maxEntries,
        fill: fillRatio(entries, map.info.maxEntries),
      };
    });
    maps.sort((a, b) => a.name.localeCompare(b.name));
    return { maps };
  }

  setLogLevel(level: LogLevel): LogLevelResult {
    if (!this.opts.setLogLevel) throw new AdminError(503, READ_ONLY);
    return this.opts.setLogLevel(level);
  }

  flushConntrack(ref: ServiceRef): FlushResult {
    if (!this.opts.flushConntrack) throw new AdminError(503, READ_ONLY);
    const ids = this.services()
      .services.filter((s) => serviceKeyMatches(ref, s.key))
      .map((s) => s.svcId);
    if (ids.length === 0) throw new AdminError(404, `unknown service ${formatServiceRef(ref)}: it is not programmed on this node`);
    return { service: formatServiceRef(ref), deleted: this.opts.flushConntrack(ids, ref) };
  }
}
