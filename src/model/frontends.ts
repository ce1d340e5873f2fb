// The addresses a Service port is reached on, in one family: ClusterIP, NodePort on this node's
// addresses, ExternalIPs and LoadBalancer ingress VIPs.
import { cidrContains, isLoopback, type ParsedCidr, type ParsedIp } from './ip.js';
import type { OwnNode } from './node.js';
import type { ParsedService } from './service-parse.js';
import type { ParsedServicePort } from './service-ports.js';
import { exact, flatText, type Exact } from './flat-text.js';
import type { Frontend, FrontendKind, IpFamily } from './types.js';

/** A Frontend plus where it came from (for conflict reports) and its sort key. */
export interface SourcedFrontend extends Frontend {
  field: string;
  sortKey: string;
}

/** Output order, and precedence when two kinds claim the same ip:port of one Service port. */
const KIND_ORDER: Record<FrontendKind, number> = { ClusterIP: 0, LoadBalancer: 1, ExternalIP: 2, NodePort: 3 };

export function compareFrontends(a: SourcedFrontend, b: SourcedFrontend): number {
  if (a.kind !== b.kind) return KIND_ORDER[a.kind] - KIND_ORDER[b.kind];
  if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
  return a.port - b.port;
}

function frontend(kind: FrontendKind, ip: ParsedIp, port: number, field: string): SourcedFrontend {
  return { kind, ip: ip.canonical, port, field, sortKey: ip.sortKey };
}

/**
 * Node addresses that get NodePort frontends: those inside config.nodePortAddresses when it is
 * set, else all of them except loopback (a NodePort on 127.0.0.1 must be asked for explicitly).
 * The candidates are the host's own interface addresses when the agent supplies them (as
 * kube-proxy does), else the Node object's InternalIP/ExternalIP addresses.
 */
export function nodePortAddresses(
  node: OwnNode, family: IpFamily, cidrs: readonly ParsedCidr[] | null, hostAddresses: readonly ParsedIp[] | null = null,
): ParsedIp[] {
  return (hostAddresses ?? node.addresses).filter(
    (ip) => ip.family === family && (cidrs === null ? !isLoopback(ip) : cidrs.some((c) => cidrContains(c, ip))),
  );
}

export interface FrontendInputs {
  service: ParsedService;
  port: ParsedServicePort;
  family: IpFamily;
  /** From nodePortAddresses(). */
  nodeAddresses: readonly ParsedIp[];
  /** False when the LoadBalancer VIPs of this family must not be programmed (source ranges). */
  loadBalancerAllowed: boolean;
}

/**
 * Sorted by kind (ClusterIP, LoadBalancer, ExternalIP, NodePort), then IP, then port. One
 * ip:port claimed twice (e.g. an address both in externalIPs and in the load balancer status)
 * is kept once, under the earlier kind: LoadBalancer before ExternalIP keeps the source ranges.
 */
export function frontendsFor(inputs: FrontendInputs): Exact<SourcedFrontend> {
  const { service, port, family } = inputs;
  const out: SourcedFrontend[] = [];
  const clusterIp = service.clusterIps[family];
  if (clusterIp) out.push(frontend('ClusterIP', clusterIp.ip, port.port, clusterIp.field));
  // nodePort 0 (e.g. allocateLoadBalancerNodePorts=false) means no NodePort.
  if (port.nodePort > 0) {
    const field = flatText('spec.ports[', port.index, '].nodePort');
    for (const ip of inputs.nodeAddresses) out.push(frontend('NodePort', ip, port.nodePort, field));
  }
  for (const e of service.externalIps) {
    if (e.ip.family === family) out.push(frontend('ExternalIP', e.ip, port.port, e.field));
  }
  if (inputs.loadBalancerAllowed) {
    for (const e of service.loadBalancerIngress) {
      if (e.ip.family === family) out.push(frontend('LoadBalancer', e.ip, port.port, e.field));
    }
  }
  out.sort(compareFrontends);
  const seen = new Set<string>();
  return exact(out.filter((f) => {
    const key = `${f.ip}|${f.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }));
}

export function toFrontend(f: SourcedFrontend): Frontend {
  return { kind: f.kind, ip: f.ip, port: f.port };
}
