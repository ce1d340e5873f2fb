// An AdminBackend that answers from Sluice's maps, through the dataplane's ServiceTables.
// sluicectl uses it read-only over the pinned maps when the agent is down; the agent can use the
// same class over the writer's tables and plug in what only it knows (status, frontend kinds,
// log level, and the conntrack flush, which the dataplane — the only map writer — performs).
import { readFileSync } from 'node:fs';
import { fromPackageRoot } from '../bpf/native.js';
import type { SvcCounters } from '../bpf/sluice-structs.js';
import { DROP_REASONS } from '../bpf/sluice-structs.js';
import type { ServiceTables, Table, TableRole } from '../dataplane/tables.js';
import { TABLE_ROLES } from '../dataplane/tables.js';
import type { LogLevel } from '../log/logger.js';
import { formatServiceRef, serviceKeyMatches } from './filters.js';
import {
  buildAffinityView, buildConntrackView, buildCountersView, buildNatView, buildServicesView, fillRatio,
} from './map-views.js';
import { AdminError } from './types.js';
import type {
  AdminBackend, AffinityView, ConntrackView, CountersView, ExternalCounterView, FlushResult, FrontendKindView, LogLevelResult, MapsView,
  NatView, ServiceRef, ServicesView, StatusView,
} from './types.js';

let versionCache: string | undefined;
/** The package version (package.json), for status answers. */
export function sluiceVersion(): string {
  if (versionCache === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version?: unknown };
      versionCache = String(pkg.version ?? 'unknown');
    } catch {
      versionCache = 'unknown';
    }
  }
  return versionCache;
}

/** Map types by role (bpf/lib/maps.h), for the fill-level view. */
const MAP_TYPES: Record<TableRole, string> = {
  frontends: 'hash',
  backends: 'hash',
  ct: 'lru_hash',
  affinity: 'lru_hash',
  sockRevnat: 'lru_hash',
  svcMeta: 'array',
  counters: 'percpu_array',
  dropCounters: 'percpu_array',
  vips: 'hash',
};

export interface MapsBackendOptions {
  tables: ServiceTables;
  /**
   * The IPv6 twins (docs/ipv6.md): their frontends, blocks, flows and affinity are listed with
   * IPv4's (both families share the svc_id and backend_id spaces, so the joins hold).
   */
  tables6?: ServiceTables;
  pinDir: string;
  /** The agent's status; without it, status says the agent is not running. */
  status?: () => Omit<StatusView, 'version' | 'agentRunning' | 'pinDir'>;
  /** Precise frontend kinds (the agent knows them from the model). */
  frontendKind?: (svcKey: string, ip: string, port: number) => FrontendKindView | undefined;
  setLogLevel?: (level: LogLevel) => LogLevelResult;
  /** Deletes the conntrack entries of these service ports; returns how many were deleted. */
  flushConntrack?: (svcIds: ReadonlySet<number>, ref: ServiceRef) => number;
  /** CLOCK_MONOTONIC now, in ns (tests inject). */
  nowNs?: () => bigint;
  /** External-traffic counters by frontend kind (sl_ext_counters), when the host programs run. */
  externalCounters?: () => ExternalCounterView[];
  /** IPv6 packets passed untranslated (sl_ipv6_untranslated, src/dataplane/ipv6-untranslated.ts). */
  ipv6Untranslated?: () => number;
}

const READ_ONLY = 'the agent is not running: sluicectl reads the pinned maps read-only; start the agent to change anything';
const ZERO_COUNTERS: SvcCounters = { packets: 0n, bytes: 0n, connections: 0n, rejected: 0n };

export class MapsAdminBackend implements AdminBackend {
  private readonly nowNs: () => bigint;
  private readonly tables: ServiceTables;
  /** The tables of each family the node has. */
  private readonly families: readonly ServiceTables[];

  constructor(private readonly opts: MapsBackendOptions) {
    this.nowNs = opts.nowNs ?? (() => process.hrtime.bigint());
    this.tables = opts.tables;
    this.families = opts.tables6 ? [opts.tables, opts.tables6] : [opts.tables];
  }

  /** The entries of one per-family table, both families' together. */
  private all<K, V>(pick: (f: ServiceTables) => Table<K, V>): Array<[K, V]> {
    return this.families.flatMap((f) => pick(f).entries());
  }

  /** svc_id → service key for the given ids, from sl_svc_meta. */
  private names(ids: Iterable<number>): Map<number, string> {
    const names = new Map<number, string>();
    for (const id of new Set(ids)) {
      const meta = this.tables.svcMeta.get(id);
      if (meta?.name) names.set(id, meta.name);
    }
    return names;
  }

  private svcIdsInUse(): Set<number> {
    return new Set(this.all((f) => f.frontends).map(([, v]) => v.svc_id));
  }

  status(): StatusView {
    const base = { version: sluiceVersion(), pinDir: this.opts.pinDir };
    if (this.opts.status) return { ...base, agentRunning: true, ...this.opts.status() };
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
        servicePortsProgrammed: this.svcIdsInUse().size,
      },
      errors: [],
    };
  }

  natDump(): NatView {
    const frontends = this.all((f) => f.frontends);
    const backends = this.all((f) => f.backends);
    return buildNatView(frontends, backends, this.names(frontends.map(([, v]) => v.svc_id)));
  }

  services(): ServicesView {
    return buildServicesView(this.natDump(), this.opts.frontendKind);
  }

  conntrack(): ConntrackView {
    const entries = this.all((f) => f.ct);
    return buildConntrackView(entries, this.names(entries.map(([, v]) => v.svc_id)), this.nowNs());
  }

  affinity(): AffinityView {
    const entries = this.all((f) => f.affinity);
    const timeouts = new Map<number, number>();
    for (const [, v] of this.all((f) => f.frontends)) timeouts.set(v.svc_id, v.affinity_timeout_s);
    return buildAffinityView(entries, this.names(entries.map(([k]) => k.svc_id)), timeouts, this.nowNs());
  }

  counters(): CountersView {
    // Every programmed service port is listed, zeros included, so scripts see a stable set.
    const ids = this.svcIdsInUse();
    const perService = new Map<number, SvcCounters>();
    for (const id of ids) {
      const perCpu = this.tables.counters.get(id) ?? [];
      perService.set(id, perCpu.reduce((sum, c) => ({
        packets: sum.packets + c.packets,
        bytes: sum.bytes + c.bytes,
        connections: sum.connections + c.connections,
        rejected: sum.rejected + c.rejected,
      }), ZERO_COUNTERS));
    }
    const drops: bigint[] = [];
    for (const [reason, perCpu] of this.tables.dropCounters.entries()) drops[reason] = perCpu.reduce((a, c) => a + c, 0n);
    const view = buildCountersView(perService, Array.from({ length: Math.max(drops.length, DROP_REASONS.length) }, (_, i) => drops[i] ?? 0n), this.names(ids));
    const external = this.opts.externalCounters?.();
    const untranslated = this.opts.ipv6Untranslated?.();
    return { ...view, ...(external ? { external } : {}), ...(untranslated === undefined ? {} : { ipv6Untranslated: untranslated }) };
  }

  maps(): MapsView {
    const seen = new Set<string>();
    const tables = this.families.flatMap((f) => TABLE_ROLES.map((role) => ({ role, table: f[role] })))
      .filter(({ table }) => !seen.has(table.name) && seen.add(table.name));
    const maps = tables.map(({ role, table }) => {
      // Arrays count their non-empty slots (the dataplane's Table semantics).
      const entries = table.entries().length;
      return { name: table.name, type: MAP_TYPES[role], entries, maxEntries: table.maxEntries, fill: fillRatio(entries, table.maxEntries) };
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
    const ids = new Set(this.services().services.filter((s) => serviceKeyMatches(ref, s.key)).map((s) => s.svcId));
    if (ids.size === 0) throw new AdminError(404, `unknown service ${formatServiceRef(ref)}: it is not programmed on this node`);
    return { service: formatServiceRef(ref), deleted: this.opts.flushConntrack(ids, ref) };
  }
}
