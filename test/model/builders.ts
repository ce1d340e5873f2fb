// Tiny builders for model tests: plain objects shaped like @kubernetes/client-node's V1Service,
// V1EndpointSlice and V1Node (camelCase), plus compact views of the result for assertions.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { Backend, DesiredServicePort, ModelConfig, ModelInput, ModelResult } from '../../src/model/types.js';

export const NODE = 'node-a';
export const ZONE = 'zone-a';
export const NS = 'default';

type Obj = Record<string, unknown>;

/** A ClusterIP Service 'default/<name>' with port http 80/TCP; `spec` fields override. */
export function service(name: string, spec: Obj = {}, extra: { metadata?: Obj; status?: Obj } = {}): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS, ...extra.metadata },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
    ...(extra.status ? { status: extra.status } : {}),
  } as V1Service;
}

export interface EndpointOptions {
  node?: string;
  zone?: string;
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
  forZones?: string[];
  forNodes?: string[];
  addresses?: string[];
}

/** One slice endpoint at `ip`; conditions are only written when given. */
export function ep(ip: string, o: EndpointOptions = {}): Obj {
  const conditions: Obj = {};
  if (o.ready !== undefined) conditions['ready'] = o.ready;
  if (o.serving !== undefined) conditions['serving'] = o.serving;
  if (o.terminating !== undefined) conditions['terminating'] = o.terminating;
  const hints: Obj = {};
  if (o.forZones) hints['forZones'] = o.forZones.map((name) => ({ name }));
  if (o.forNodes) hints['forNodes'] = o.forNodes.map((name) => ({ name }));
  return {
    addresses: o.addresses ?? [ip],
    conditions,
    ...(o.node !== undefined ? { nodeName: o.node } : {}),
    ...(o.zone !== undefined ? { zone: o.zone } : {}),
    ...(o.forZones || o.forNodes ? { hints } : {}),
  };
}

export interface SliceOptions {
  name?: string;
  namespace?: string;
  addressType?: string;
  ports?: Obj[];
  labels?: Record<string, string>;
}

/** A slice of Service `serviceName` with port http 8080/TCP unless `ports` is given. */
export function slice(serviceName: string, endpoints: Obj[], o: SliceOptions = {}): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: o.name ?? `${serviceName}-abc`,
      namespace: o.namespace ?? NS,
      labels: o.labels ?? { 'kubernetes.io/service-name': serviceName },
    },
    addressType: o.addressType ?? 'IPv4',
    ports: o.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
  } as unknown as V1EndpointSlice;
}

/** A Node with InternalIP addresses; `zone` labels topology.kubernetes.io/zone. */
export function node(name: string, internal: string[], o: { zone?: string; external?: string[] } = {}): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: o.zone ? { 'topology.kubernetes.io/zone': o.zone } : {} },
    status: {
      addresses: [
        ...internal.map((address) => ({ type: 'InternalIP', address })),
        ...(o.external ?? []).map((address) => ({ type: 'ExternalIP', address })),
        { type: 'Hostname', address: name },
      ],
    },
  } as V1Node;
}

export const DEFAULT_NODE = node(NODE, ['192.168.0.10', 'fd00::10'], { zone: ZONE });

export interface InputOptions {
  services?: unknown[];
  slices?: unknown[];
  nodes?: unknown[];
  nodeName?: string;
  config?: Partial<ModelConfig>;
}

export function input(o: InputOptions): ModelInput {
  return {
    services: (o.services ?? []) as V1Service[],
    endpointSlices: (o.slices ?? []) as V1EndpointSlice[],
    nodes: (o.nodes ?? [DEFAULT_NODE]) as V1Node[],
    nodeName: o.nodeName ?? NODE,
    config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '', ...o.config },
  };
}

export function compute(o: InputOptions): ModelResult {
  return computeDesiredState(input(o));
}

/** The DesiredServicePort under `key` (default: the http/TCP/IPv4 port of default/web). */
export function portOf(result: ModelResult, key = 'default/web:http/TCP/IPv4'): DesiredServicePort {
  const port = result.state.services.get(key);
  if (!port) throw new Error(`no ${key}; have ${[...result.state.services.keys()].join(', ')}`);
  return port;
}

/** Backends as 'ip:port' texts (order preserved). */
export function addrs(backends: Iterable<Backend>): string[] {
  return [...backends].map((b) => (b.ip.includes(':') ? `[${b.ip}]:${b.port}` : `${b.ip}:${b.port}`));
}

/** Frontends as 'Kind ip:port' texts (order preserved). */
export function fronts(port: DesiredServicePort): string[] {
  return port.frontends.map((f) => `${f.kind} ${f.ip.includes(':') ? `[${f.ip}]` : f.ip}:${f.port}`);
}

/** Error summaries 'Kind ns/name field'. */
export function errorFields(result: ModelResult): string[] {
  return result.errors.map((e) => `${e.kind} ${e.object} ${e.field}`);
}

/** The DesiredServicePort keys, in output order. */
export function keys(result: ModelResult): string[] {
  return [...result.state.services.keys()];
}
