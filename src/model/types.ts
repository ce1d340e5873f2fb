// The model's contract: what the control plane computes from Kubernetes objects and what the
// dataplane programs. Pure data, no I/O.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { BackendList } from './backend-list.js';

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IpFamily = 'IPv4' | 'IPv6';
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer';

/**
 * One endpoint address:port as kube-proxy sees it, after slice merge and dedupe. `ip` is in
 * canonical form (RFC 5952 for IPv6). The model's output holds these packed (BackendList).
 */
export interface Backend {
  ip: string;
  port: number;
  /** EndpointSlice endpoint nodeName, when set. */
  nodeName: string | null;
  /** topology.kubernetes.io/zone of the endpoint, when set. */
  zone: string | null;
  /** nodeName equals this node. */
  local: boolean;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

/** An address:port a client reaches the service on. */
export interface Frontend {
  kind: FrontendKind;
  /** Canonical form. */
  ip: string;
  port: number;
}

/**
 * One Service port in one IP family: the unit the dataplane programs. All of its frontends
 * share the same backend sets.
 */
export interface DesiredServicePort {
  /** Stable identity: `${namespace}/${name}:${portName}/${protocol}/${family}`. */
  key: string;
  namespace: string;
  name: string;
  /** Service port name, '' when unnamed. */
  portName: string;
  protocol: L4Protocol;
  family: IpFamily;
  /**
   * Sorted by kind (ClusterIP, LoadBalancer, ExternalIP, NodePort), then IP, then port. May be
   * empty when another Service already holds every address:port (conflicts are reported).
   */
  frontends: Frontend[];
  /**
   * The Cluster set (ready + topology filter, else serving-terminating), sorted by IP
   * (numerically) then port. Always computed, whatever the policies: non-empty exactly when
   * the Service port has usable endpoints somewhere, which tells reject (none anywhere) from
   * drop (none local) when a Local policy applies.
   */
  clusterBackends: BackendList;
  /** The Local set (local ready, else local serving-terminating), same order. Always computed. */
  localBackends: BackendList;
  /**
   * internalTrafficPolicy=Local: traffic from inside the cluster (to the ClusterIP) uses
   * localBackends only; otherwise clusterBackends.
   */
  internalLocal: boolean;
  /**
   * externalTrafficPolicy=Local and externally accessible (a NodePort frontend, a LoadBalancer
   * VIP or an external IP): external traffic uses localBackends (no SNAT); traffic to those
   * frontends from pods on this node still uses clusterBackends. Otherwise clusterBackends.
   */
  externalLocal: boolean;
  /** ClientIP session affinity timeout in seconds; 0 = no affinity. */
  affinityTimeoutSec: number;
  /** healthCheckNodePort of the Service (eTP=Local LoadBalancer), 0 when none. */
  healthCheckNodePort: number;
  /**
   * loadBalancerSourceRanges of this family (canonical CIDRs, sorted), applying to LoadBalancer
   * frontends only; [] = unrestricted unless loadBalancerSourcesClosed. A Service whose ranges
   * are invalid gets no LoadBalancer frontend (fail closed, reported).
   */
  loadBalancerSourceRanges: string[];
  /**
   * True when the Service lists loadBalancerSourceRanges but none of this family: the LoadBalancer
   * frontends are restricted like any with ranges (SL_SVC_F_SRC_RANGES) and admit no client of
   * this family (fail closed). Absent otherwise.
   */
  loadBalancerSourcesClosed?: true;
}

export interface DesiredState {
  /** By DesiredServicePort.key, inserted in key order. */
  services: Map<string, DesiredServicePort>;
}

export interface ModelConfig {
  /** IP families this node proxies (a view per family). */
  families: IpFamily[];
  /** CIDRs whose node addresses get NodePort frontends; empty = every node address but loopback. */
  nodePortAddresses: string[];
  /**
   * The addresses on this node's own interfaces, as kube-proxy picks NodePort addresses: when
   * given, NodePort frontends are made on these (filtered by nodePortAddresses) instead of the
   * Node object's InternalIP/ExternalIP addresses.
   */
  hostAddresses?: string[];
  /**
   * This proxy's service.kubernetes.io/service-proxy-name. '' = the default proxy: it takes
   * Services WITHOUT that label. A named proxy takes only Services labelled with its name.
   */
  serviceProxyName: string;
}

export interface ModelInput {
  services: V1Service[];
  endpointSlices: V1EndpointSlice[];
  nodes: V1Node[];
  nodeName: string;
  config: ModelConfig;
}

/** A problem with one object; the rest of the state is still computed. */
export interface ModelError {
  /** 'Service', 'EndpointSlice', 'Node', 'ModelConfig' or 'ModelInput'. */
  kind: string;
  /** namespace/name (a Node: its name; an unnamed object: its list position, e.g. 'services[3]'). */
  object: string;
  /** JSON path of the offending field, e.g. 'spec.ports[1].port' ('' = the whole object). */
  field: string;
  value: unknown;
  /** Self-contained: 'Service ns/name: field: problem (got value)'. */
  message: string;
}

export interface ModelResult {
  state: DesiredState;
  /** Sorted (kind, object, field, message), so equal inputs give equal errors. */
  errors: ModelError[];
}
