// The admin API's contract: what the agent (or the read-only pinned-map reader) answers, as
// plain JSON. sluicectl renders exactly these objects, as tables or as JSON, so names and
// numbers match between the two. Counters are JSON numbers (exact up to 2^53).
import type { LogLevel } from '../log/logger.js';

/** An address and port as text and number (IPv6 in canonical form). */
export interface HostPort {
  ip: string;
  port: number;
}

/** A program Sluice attached, and where. */
export interface ProgramAttachment {
  /** Program name in the object, e.g. 'sl_connect4', 'sl_tc_ingress'. */
  program: string;
  /** 'cgroup' (sock_addr hooks) or 'tc' (clsact). */
  hook: 'cgroup' | 'tc';
  /** cgroup path, or interface name for TC. */
  target: string;
  /** TC only. */
  direction?: 'ingress' | 'egress';
  /** Kernel program id; 0 when not attached. */
  progId: number;
  attached: boolean;
  /** Why it is not attached, when it is not. */
  error?: string;
}

export type SyncState = 'waiting-for-sources' | 'syncing' | 'synced' | 'error';

export interface SyncStatus {
  state: SyncState;
  /** Every object source (API watches or manifest dir) has its initial list. */
  sourcesSynced: boolean;
  /** ISO time the last sync finished, null before the first. */
  lastSyncAt: string | null;
  lastSyncDurationMs: number | null;
  syncCount: number;
  servicePortsProgrammed: number;
}

export interface StatusError {
  /** ISO time. */
  at: string;
  component: string;
  message: string;
  /** Object the error concerns (namespace/name), when there is one. */
  object?: string;
}

export interface StatusView {
  version: string;
  /** False when sluicectl read the pinned maps itself because the agent is down. */
  agentRunning: boolean;
  nodeName: string;
  /** ISO time the agent started ('' when unknown). */
  startedAt: string;
  pinDir: string;
  /** Effective configuration (no secrets). */
  config: Record<string, unknown>;
  programs: ProgramAttachment[];
  sync: SyncStatus;
  /** Recent errors, newest last. */
  errors: StatusError[];
  /** What the running kernel gives the datapath (absent when the agent is down). */
  kernel?: KernelFeaturesView;
  /**
   * Per BPF object, whether this start reused the previous start's programs or loaded them, and
   * why not reused (docs/upgrades.md#restarts); absent when the agent is down.
   */
  objects?: ObjectStartView[];
  /** External services' Maglev tables (absent without external traffic or when the agent is down). */
  maglev?: MaglevView;
}

/** sl_maglev4: how many tables (one per external service port's backend set) and their size. */
export interface MaglevView {
  tables: number;
  /** Slots per table (--maglev-table-size). */
  size: number;
  chunksPerTable: number;
  /** Bytes of the tables' chunk values (the kernel adds its hash-element overhead). */
  valueBytes: number;
}

/** One datapath feature on this kernel (docs/kernels.md): on, off (kernel lacks it) or disabled. */
export interface KernelFeatureView {
  name: string;
  state: 'on' | 'off' | 'disabled';
  what: string;
  /** Oldest Linux version that has it. */
  since: string;
  /** What happens without it. */
  without: string;
  /** Why it is off or disabled. */
  reason?: string;
}

export interface ObjectStartView {
  /** tc, host, connect, sockdestroy. */
  object: string;
  /** Digest of the object file and its load-time configuration. */
  identity: string;
  reused: boolean;
  notReused?: string;
}

export interface KernelFeaturesView {
  release: string;
  features: KernelFeatureView[];
}

/** Frontend kinds; 'External' when the maps only say "external" (agent down). */
export type FrontendKindView = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer' | 'External';

export interface FrontendView extends HostPort {
  kind: FrontendKindView;
}

export interface BackendView extends HostPort {
  /** Slot in the service's backend block. */
  ordinal: number;
  /** 'cluster': ordinals [0, count); 'local': [count, count + localCount). */
  set: 'cluster' | 'local';
  /** Node of the endpoint ('' when unknown). */
  nodeIp: string;
  local: boolean;
  terminating: boolean;
}

/** One Service port in one IP family, as programmed. */
export interface ServiceView {
  /** `namespace/name:portName/PROTOCOL/family`, the model's key ('' port name when unnamed). */
  key: string;
  namespace: string;
  name: string;
  portName: string;
  protocol: string;
  family: 'IPv4' | 'IPv6';
  svcId: number;
  backendId: number;
  /** Flag names: internal-local, external-local, affinity, external, source-ranges, dsr, maglev. */
  flags: string[];
  affinityTimeoutSec: number;
  frontends: FrontendView[];
  clusterCount: number;
  localCount: number;
  backends: BackendView[];
}

export interface ServicesView {
  services: ServiceView[];
}

/** A raw sl_frontends4 entry, decoded. */
export interface NatFrontendEntry extends HostPort {
  protocol: string;
  scope: number;
  svcId: number;
  backendId: number;
  count: number;
  localCount: number;
  /** The frontend's kind (flags bits 8-9): ClusterIP, NodePort, ExternalIP, LoadBalancer. */
  kind: string;
  flags: string[];
  affinityTimeoutSec: number;
  /** Service key from sl_svc_meta ('' when unnamed). */
  service: string;
}

/** A raw sl_backends4 entry, decoded. */
export interface NatBackendEntry extends HostPort {
  backendId: number;
  ordinal: number;
  nodeIp: string;
  flags: string[];
}

export interface NatView {
  frontends: NatFrontendEntry[];
  backends: NatBackendEntry[];
}

/** One conntrack entry (sl_ct4). FORWARD and REVERSE entries are listed separately. */
export interface ConntrackEntryView {
  protocol: string;
  direction: 'forward' | 'reverse';
  state: 'NEW' | 'SYN_SENT' | 'ESTABLISHED' | 'FIN' | 'CLOSED' | string;
  /** Derived for both directions, so filters and tables read the same way. */
  client: HostPort;
  frontend: HostPort;
  backend: HostPort;
  /** Hairpin: the source address written instead of the client's ('' when untouched). */
  natSource: string;
  svcId: number;
  service: string;
  ageSec: number;
  idleSec: number;
  flags: string[];
}

export interface ConntrackView {
  /** Entries in the map before filtering. */
  total: number;
  entries: ConntrackEntryView[];
}

export interface AffinityEntryView {
  svcId: number;
  service: string;
  client: string;
  backend: HostPort;
  idleSec: number;
  /** The service's affinity timeout; 0 when the service is gone or has none. */
  timeoutSec: number;
  expired: boolean;
}

export interface AffinityView {
  entries: AffinityEntryView[];
}

export interface ServiceCountersView {
  svcId: number;
  service: string;
  namespace: string;
  name: string;
  portName: string;
  protocol: string;
  family: string;
  packets: number;
  bytes: number;
  connections: number;
  rejected: number;
}

export interface DropCounterView {
  reason: string;
  code: number;
  packets: number;
}

/** External traffic (host interfaces) by frontend kind: sl_ext_counters. */
export interface ExternalCounterView {
  kind: string;
  /** Packets and bytes of new flows. */
  packets: number;
  bytes: number;
  connections: number;
  /** Refused: no backend (rejected), no local backend or outside the source ranges (dropped). */
  refused: number;
}

export interface CountersView {
  services: ServiceCountersView[];
  /** Present when the agent runs the external-traffic programs. */
  external?: ExternalCounterView[];
  /** Every known drop reason, zeros included, so scripts see a stable set. */
  drops: DropCounterView[];
  /**
   * IPv6 packets the TC path passed untouched, not translated, because they carry extension
   * headers (sl_ipv6_untranslated; docs/ipv6.md). Present when the node has the IPv6 maps.
   */
  ipv6Untranslated?: number;
}

export interface MapFillView {
  name: string;
  /** 'hash', 'lru_hash', 'array', 'percpu_array', ... */
  type: string;
  entries: number;
  maxEntries: number;
  /** entries / maxEntries, 0..1, rounded to 4 decimals. */
  fill: number;
}

export interface MapsView {
  maps: MapFillView[];
}

export interface LogLevelResult {
  level: LogLevel;
  previous: LogLevel;
}

export interface FlushResult {
  service: string;
  /** Conntrack entries removed (both directions). */
  deleted: number;
}

/** `namespace/name`, optionally narrowed to one port name (`namespace/name:port`). */
export interface ServiceRef {
  namespace: string;
  name: string;
  portName?: string;
}

export type NatFilter = { service: ServiceRef } | { frontend: HostPort } | Record<string, never>;

export interface ConntrackFilter {
  service?: ServiceRef;
  client?: string;
  backend?: { ip: string; port?: number };
}

/**
 * What the admin server serves. Methods may answer synchronously or with a promise; the server
 * applies the filters itself after the backend answers (backends may pre-filter as an
 * optimisation), so every backend gives the same answers. Throw AdminError for a 4xx.
 */
export interface AdminBackend {
  status(): StatusView | Promise<StatusView>;
  services(): ServicesView | Promise<ServicesView>;
  natDump(filter: NatFilter): NatView | Promise<NatView>;
  conntrack(filter: ConntrackFilter): ConntrackView | Promise<ConntrackView>;
  affinity(): AffinityView | Promise<AffinityView>;
  counters(): CountersView | Promise<CountersView>;
  maps(): MapsView | Promise<MapsView>;
  setLogLevel(level: LogLevel): LogLevelResult | Promise<LogLevelResult>;
  flushConntrack(service: ServiceRef): FlushResult | Promise<FlushResult>;
}

/** An error with the HTTP status the admin server should answer with. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}
