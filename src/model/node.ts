// What the model needs from this node's Node object: its zone and its addresses.
import { parseIp, type ParsedIp } from './ip.js';
import type { ModelError } from './types.js';
import { BAD, get, isRecord, ObjectReport, optArray, optLabels } from './validate.js';

export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

export interface OwnNode {
  /** topology.kubernetes.io/zone, null when unlabelled. */
  zone: string | null;
  /** InternalIP and ExternalIP addresses, deduped, in status order. */
  addresses: ParsedIp[];
}

const NODE_PORT_ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

function readAddresses(r: ObjectReport, status: unknown): ParsedIp[] {
  const list = optArray(r, get(status, 'addresses'), 'status.addresses');
  if (list === BAD || list === undefined) return [];
  const out: ParsedIp[] = [];
  const seen = new Set<string>();
  list.forEach((entry, i) => {
    const type = get(entry, 'type');
    // Hostname and InternalDNS entries are names, not addresses.
    if (typeof type !== 'string' || !NODE_PORT_ADDRESS_TYPES.has(type)) return;
    const text = get(entry, 'address');
    const ip = parseIp(text);
    if (!ip) {
      r.error(`status.addresses[${i}].address`, text, `is not a valid IP address (type ${type})`);
      return;
    }
    if (seen.has(ip.canonical)) return;
    seen.add(ip.canonical);
    out.push(ip);
  });
  return out;
}

/**
 * Finds this node among `nodes`. Missing → reported (no NodePort frontends and no zone can be
 * computed without it) and an empty node is returned so Services are still programmed.
 */
export function readOwnNode(nodes: readonly unknown[], nodeName: string, sink: ModelError[]): OwnNode {
  // No node name (reported by the caller): nothing to look up.
  if (nodeName === '') return { zone: null, addresses: [] };
  const raw = nodes.find((n) => isRecord(n) && get(get(n, 'metadata'), 'name') === nodeName);
  const r = new ObjectReport('Node', nodeName, sink);
  if (raw === undefined) {
    r.error('metadata.name', nodeName, 'this node is not among the Nodes: no NodePort frontends, no zone');
    return { zone: null, addresses: [] };
  }
  // A bad label map is reported and read as "no zone": topology hints are then ignored.
  const labels = optLabels(r, get(raw, 'metadata'));
  const zone = labels === BAD ? undefined : labels[LABEL_TOPOLOGY_ZONE];
  return {
    zone: zone ? zone : null,
    addresses: readAddresses(r, get(raw, 'status')),
  };
}
