// The Cluster and Local endpoint sets of a Service port, with topology hints, as kube-proxy's
// CategorizeEndpoints computes them.
import type { EndpointInfo } from './endpoints.js';
import { BackendList } from './backend-list.js';
import type { Backend } from './types.js';

export type TopologyMode = 'PreferSameNode' | 'PreferSameZone' | '';

/**
 * Hints are all-or-nothing: they are used only if EVERY ready endpoint carries them and at
 * least one names this node (forNodes) or this node's zone (forZones); otherwise a partial
 * rollout of hints would concentrate traffic on the hinted few. Node hints win over zone hints.
 * A node without a zone label never uses zone hints.
 */
export function topologyMode(endpoints: readonly EndpointInfo[], nodeName: string, zone: string | null): TopologyMode {
  let allHaveNodeHints = true;
  let oneForThisNode = false;
  let allHaveZoneHints = true;
  let oneForThisZone = false;
  for (const e of endpoints) {
    if (!e.ready) continue;
    if (!e.nodeHints) allHaveNodeHints = false;
    else if (e.nodeHints.has(nodeName)) oneForThisNode = true;
    if (!e.zoneHints) allHaveZoneHints = false;
    else if (zone !== null && e.zoneHints.has(zone)) oneForThisZone = true;
  }
  if (allHaveNodeHints && oneForThisNode) return 'PreferSameNode';
  if (allHaveZoneHints && oneForThisZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(e: EndpointInfo, mode: TopologyMode, nodeName: string, zone: string | null): boolean {
  if (mode === 'PreferSameNode') return e.nodeHints?.has(nodeName) ?? false;
  if (mode === 'PreferSameZone') return zone !== null && (e.zoneHints?.has(zone) ?? false);
  return true;
}

export interface EndpointSets {
  /** Ready endpoints passing the topology filter; if none at all, serving-and-terminating ones. */
  cluster: BackendList;
  /** Local ready endpoints; if none, local serving-and-terminating ones. */
  local: BackendList;
}

/**
 * Both sets are always computed (the flags on DesiredServicePort say which one serves which
 * traffic). A non-empty Cluster set also tells the dataplane that the Service has usable
 * endpoints somewhere, which decides between reject (none anywhere) and drop (none local).
 * Terminating endpoints are only used when no ready one exists: new connections never go to a
 * terminating endpoint while a ready one is there.
 */
export function categorizeEndpoints(
  endpoints: readonly EndpointInfo[],
  nodeName: string,
  zone: string | null,
): EndpointSets {
  const mode = topologyMode(endpoints, nodeName, zone);
  let cluster: Backend[] = [];
  for (const e of endpoints) if (e.ready && availableForTopology(e, mode, nodeName, zone)) cluster.push(e);
  const backends: readonly Backend[] = endpoints;
  // Topology never empties the set (a mode is chosen only when one ready endpoint matches), so
  // an empty set here means no ready endpoint anywhere.
  if (cluster.length === 0) cluster = backends.filter((b) => b.serving && b.terminating);
  let local = backends.filter((b) => b.local && b.ready);
  if (local.length === 0) local = backends.filter((b) => b.local && b.serving && b.terminating);
  return { cluster: BackendList.of(cluster), local: BackendList.of(local) };
}
