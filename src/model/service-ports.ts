// spec.ports of a Service: each port is checked on its own; a bad port is reported and skipped,
// the Service's other ports are still programmed.
import { exact, NO_ITEMS, type Exact } from './flat-text.js';
import type { L4Protocol } from './types.js';
import { BAD, get, optEnum, optInt, optString, optArray, type ObjectReport } from './validate.js';

export const PROTOCOLS: readonly L4Protocol[] = ['TCP', 'UDP', 'SCTP'];

export interface ParsedServicePort {
  /** Position in spec.ports, for error field paths. */
  index: number;
  /** '' when unnamed. */
  name: string;
  protocol: L4Protocol;
  port: number;
  /** 0 = no NodePort (not a NodePort/LoadBalancer Service, or allocateLoadBalancerNodePorts=false). */
  nodePort: number;
}

function parseServicePort(
  r: ObjectReport,
  raw: unknown,
  index: number,
  nodePortsAllowed: boolean,
): ParsedServicePort | null {
  const at = `spec.ports[${index}]`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    r.error(at, raw, 'must be an object');
    return null;
  }
  const name = optString(r, get(raw, 'name'), `${at}.name`);
  // The API server defaults the protocol to TCP; a manifest may leave it out.
  const protocol = optEnum(r, get(raw, 'protocol'), `${at}.protocol`, PROTOCOLS);
  const portValue = get(raw, 'port');
  const port = optInt(r, portValue, `${at}.port`, 1, 65535);
  let nodePort = optInt(r, get(raw, 'nodePort'), `${at}.nodePort`, 0, 65535);
  if (name === BAD || protocol === BAD || port === BAD || nodePort === BAD) return null;
  if (port === undefined) {
    r.error(`${at}.port`, portValue, 'is required');
    return null;
  }
  if (nodePort && !nodePortsAllowed) {
    // The API server refuses this; programming it would open a port nobody asked for.
    r.error(`${at}.nodePort`, nodePort, 'is ignored: only NodePort and LoadBalancer Services have node ports');
    nodePort = 0;
  }
  // targetPort is never read: backend port numbers come from the EndpointSlices.
  return { index, name: name ?? '', protocol: protocol ?? 'TCP', port, nodePort: nodePort ?? 0 };
}

/**
 * The valid ports of a Service. Two ports with the same name and protocol would be the same
 * DesiredServicePort: the later one is reported and skipped.
 */
export function parseServicePorts(r: ObjectReport, spec: unknown, nodePortsAllowed: boolean): Exact<ParsedServicePort> {
  const list = optArray(r, get(spec, 'ports'), 'spec.ports');
  if (list === BAD || list === undefined) return NO_ITEMS;
  const ports: ParsedServicePort[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw, index) => {
    const port = parseServicePort(r, raw, index, nodePortsAllowed);
    if (!port) return;
    const identity = `${port.name}/${port.protocol}`;
    const first = seen.get(identity);
    if (first !== undefined) {
      r.error(
        `spec.ports[${index}].name`,
        port.name,
        `duplicates spec.ports[${first}] (same name and protocol ${port.protocol}); port skipped`,
      );
      return;
    }
    seen.set(identity, index);
    ports.push(port);
  });
  return exact(ports);
}
