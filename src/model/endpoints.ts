// The endpoints of one Service port in one family: merged from the Service's slices, deduped,
// flagged (ready/serving/terminating/local) and sorted — kube-proxy's EndpointSliceCache view.
import type { ParsedSlice, SliceEndpoint } from './endpoint-slices.js';
import type { Backend, IpFamily, L4Protocol } from './types.js';

/** A Backend plus what the topology filter and sorting need (stripped before output). */
export interface EndpointInfo extends Backend {
  sortKey: string;
  zoneHints: ReadonlySet<string> | null;
  nodeHints: ReadonlySet<string> | null;
}

function toEndpointInfo(endpoint: SliceEndpoint, port: number, nodeName: string): EndpointInfo {
  return {
    ip: endpoint.ip.canonical,
    port,
    nodeName: endpoint.nodeName,
    zone: endpoint.zone,
    local: endpoint.nodeName !== null && endpoint.nodeName === nodeName,
    ready: endpoint.ready,
    serving: endpoint.serving,
    terminating: endpoint.terminating,
    sortKey: endpoint.ip.sortKey,
    zoneHints: endpoint.zoneHints,
    nodeHints: endpoint.nodeHints,
  };
}

/** By IP (numerically), then port. */
export function compareEndpoints(a: EndpointInfo, b: EndpointInfo): number {
  if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
  return a.port - b.port;
}

/**
 * Endpoints of the slices' ports matching the Service port by name AND protocol (numbers come
 * from the slice; targetPort is never read). Key is addresses[0]:port. An address may appear in
 * several slices (e.g. while the controller moves it): the first seen is kept unless a later
 * one is not terminating, so a live copy wins over a terminating one.
 */
export function mergeEndpoints(
  slices: readonly ParsedSlice[],
  family: IpFamily,
  portName: string,
  protocol: L4Protocol,
  nodeName: string,
): EndpointInfo[] {
  const byKey = new Map<string, EndpointInfo>();
  for (const slice of slices) {
    if (slice.family !== family) continue;
    for (const port of slice.ports) {
      if (port.name !== portName || port.protocol !== protocol) continue;
      for (const endpoint of slice.endpoints) {
        const key = `${endpoint.ip.canonical}:${port.port}`;
        if (!byKey.has(key) || !endpoint.terminating) byKey.set(key, toEndpointInfo(endpoint, port.port, nodeName));
      }
    }
  }
  return [...byKey.values()].sort(compareEndpoints);
}

/** The output shape, without the internal fields. */
export function toBackend(e: EndpointInfo): Backend {
  return {
    ip: e.ip,
    port: e.port,
    nodeName: e.nodeName,
    zone: e.zone,
    local: e.local,
    ready: e.ready,
    serving: e.serving,
    terminating: e.terminating,
  };
}
