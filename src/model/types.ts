// The model's contract: what the control plane computes from Kubernetes objects and what the
// dataplane programs. Pure data, no I/O.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IpFamily = 'IPv4' | 'IPv6';
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer';

/** One endpoint address:port as kube-proxy sees it, after slice merge and dedupe. */
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
  frontends: Frontend[];
  /** The Cluster set (ready + topology filter, else serving-terminating), sorted by ip:port. */
  clusterBackends: Backend[];
  /** The Local set (local ready, else local serving-terminating), sorted by ip:port. */
  localBackends: Backend[];
  /** internalTrafficPolicy=Local: traffic from inside the cluster uses localBackends only. */
  internalLocal: boolean;
  /** externalTrafficPolicy=Local and externally accessible: external traffic uses localBackends. */
  externalLocal: boolean;
  /** ClientIP session affinity timeout in seconds; 0 = no affinity. */
  affinityTimeoutSec: number;
  /** healthCheckNodePort of the Service (eTP=Local LoadBalancer), 0 when none. */
  healthCheckNodePort: number;
  /** loadBalancerSourceRanges (CIDRs), applying to LoadBalancer frontends only. */
  loadBalancerSourceRanges: string[];
}

export interface DesiredState {
  /** By DesiredServicePort.key. */
  services: Map<string, DesiredServicePort>;
}

export interface ModelConfig {
  /** IP families this node proxies (a view per family). */
  families: IpFamily[];
  /** CIDRs whose node addresses get NodePort frontends; empty = the node's InternalIP/ExternalIP. */
  nodePortAddresses: string[];
  /** This proxy's service.kubernetes.io/service-proxy-name ('' = default proxy). */
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
  /** e.g. 'Service', 'EndpointSlice'. */
  kind: string;
  /** namespace/name */
  object: string;
  /** JSON path of the offending field, e.g. 'spec.ports[1].port'. */
  field: string;
  value: unknown;
  message: string;
}

export interface ModelResult {
  state: DesiredState;
  errors: ModelError[];
}
