// The endpoints of one Service port in one family: merged from the Service's slices, deduped,
// flagged (ready/serving/terminating/local) and sorted — kube-proxy's EndpointSliceCache view.
import type { ParsedSlice, SliceEndpoint } from './endpoint-slices.js';
import type { Backend, IpFamily, L4Protocol } from './types.js';

/**
 * A Backend plus what the topology filter and sorting need: one short-lived object per endpoint
 * and port (the output packs the fields, BackendList).
 */
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
 * one is not terminating, so a live copy wins over a terminating one. Slices come sorted by
 * name, so "first" does not depend on input order.
 */
export function mergeEndpoints(
  slices: readonly ParsedSlice[],
  family: IpFamily,
  portName: string,
  protocol: L4Protocol,
  nodeName: string,
): EndpointInfo[] {
  const candidates: EndpointInfo[] = [];
  for (const slice of slices) {
    if (slice.family !== family) continue;
    for (const port of slice.ports) {
      if (port.name !== portName || port.protocol !== protocol) continue;
      for (const endpoint of slice.endpoints) candidates.push(toEndpointInfo(endpoint, port.port, nodeName));
    }
  }
  // A stable sort keeps copies of one ip:port adjacent and in slice order: dedupe without a map.
  candidates.sort(compareEndpoints);
  const merged: EndpointInfo[] = [];
  for (const candidate of candidates) {
    const last = merged[merged.length - 1];
    if (last === undefined || compareEndpoints(last, candidate) !== 0) merged.push(candidate);
    else if (!candidate.terminating) merged[merged.length - 1] = candidate;
  }
  return merged;
}
