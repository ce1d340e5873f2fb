// A synthetic cluster for the control-plane bench: N Services × M endpoints, one EndpointSlice per
// Service, one Node (this node), as raw JSON the way the API server sends it (the bench pushes it
// through the same deserializer the informers use). Everything is a pure function of the service
// index, so a harness needs no copy of the cluster to generate changes: it keeps only the
// endpoints it changed (ClusterState.overrides).
//
// Shapes (ClusterIP only, the size kube-proxy's iptables ruleset of the same scale is compared with):
//  - 70% one named port  http 80 → 8080/TCP;
//  - 10% one unnamed port       8080 → 8080/TCP;
//  - 19% multi-port      http 80 → 8080, https 443 → 8443 (and every other one metrics 9090 → 9090);
//  -  1% DNS-like        dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP;
//  - every 25th Service has ClientIP session affinity;
//  - endpoints spread over 50 node names (only node-0, this node, exists as a Node object) and
//    three zones, with pod targetRefs, all ready unless a change made one unready.

export const NODE_NAME = 'node-0';
export const NODE_IP = '192.168.0.10';
const NODES = 50;
const NAMESPACES = 100;

export type Protocol = 'TCP' | 'UDP';

export interface PortShape {
  /** '' for the single unnamed port. */
  name: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
}

export interface EndpointShape {
  ip: string;
  ready: boolean;
  /** Pod name suffix: changes when the pod is replaced. */
  pod: string;
  node: string;
  zone: string;
}

export interface ServiceShape {
  index: number;
  namespace: string;
  name: string;
  clusterIP: string;
  ports: PortShape[];
  affinity: boolean;
}

const HTTP: PortShape = { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' };

/** The ClusterIP of service i, in 10.96.0.0/12 (never the network address). */
export function clusterIPOf(i: number): string {
  const n = i + 1;
  return `10.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** The original address of endpoint e of service i, in 10.128.0.0/9. */
function endpointIP(i: number, e: number, endpoints: number): string {
  const n = i * endpoints + e + 1;
  return `10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** A replacement pod address (the c-th change), in 10.64.0.0/10: never collides with the originals. */
export function replacementIP(c: number): string {
  const n = c + 1;
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/**
 * SLUICE_BENCH_PORTS=single: every Service one named port (http 80 → 8080), so N Services make N
 * service ports — the shape for filling the maps to their size (65,536 frontends, 262,144 backend
 * slots: the scale run in docs/benchmarks.md).
 */
const singlePort = (): boolean => process.env['SLUICE_BENCH_PORTS'] === 'single';

export function portsOf(i: number): PortShape[] {
  if (singlePort()) return [HTTP];
  if (i % 100 === 1) {
    return [
      { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
      { name: 'metrics', port: 9153, targetPort: 9153, protocol: 'TCP' },
    ];
  }
  if (i % 10 === 3) return [{ name: '', port: 8080, targetPort: 8080, protocol: 'TCP' }];
  if (i % 10 === 0 || i % 10 === 5) {
    const ports = [HTTP, { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' as const }];
    if (i % 20 === 0) ports.push({ name: 'metrics', port: 9090, targetPort: 9090, protocol: 'TCP' });
    return ports;
  }
  return [HTTP];
}

export function serviceShape(i: number): ServiceShape {
  return {
    index: i,
    namespace: `ns-${i % NAMESPACES}`,
    name: `app-${i}`,
    clusterIP: clusterIPOf(i),
    ports: portsOf(i),
    affinity: i % 25 === 7,
  };
}

function originalEndpoint(i: number, e: number, endpoints: number): EndpointShape {
  const n = i * endpoints + e;
  return { ip: endpointIP(i, e, endpoints), ready: true, pod: hash(n).slice(0, 5), node: `node-${n % NODES}`, zone: `zone-${n % 3}` };
}

/** Deterministic pseudo-hex of n (uids, pod suffixes); not cryptographic. */
function hash(n: number): string {
  let x = (n + 0x9e3779b9) >>> 0;
  let out = '';
  for (let k = 0; k < 4; k++) {
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    out += x.toString(16).padStart(8, '0');
  }
  return out;
}

function uid(kind: number, n: number): string {
  const h = hash(kind * 1_000_003 + n);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const CREATED = '2026-01-05T10:00:00Z';

/** The Service as the API server serves it (no managedFields: see docs/benchmarks.md). */
export function serviceJson(s: ServiceShape, resourceVersion: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: s.name,
      namespace: s.namespace,
      uid: uid(1, s.index),
      resourceVersion: String(resourceVersion),
      creationTimestamp: CREATED,
      labels: { app: s.name, 'app.kubernetes.io/part-of': `suite-${s.index % 37}` },
      ...(s.index % 4 === 0 ? { annotations: { 'prometheus.io/scrape': 'true' } } : {}),
    },
    spec: {
      type: 'ClusterIP',
      clusterIP: s.clusterIP,
      clusterIPs: [s.clusterIP],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster',
      selector: { app: s.name },
      ports: s.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol, targetPort: p.targetPort,
      })),
      sessionAffinity: s.affinity ? 'ClientIP' : 'None',
      ...(s.affinity ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } } : {}),
    },
    status: { loadBalancer: {} },
  };
}

export function sliceName(s: ServiceShape): string {
  return `${s.name}-${hash(s.index).slice(0, 5)}`;
}

export function sliceJson(s: ServiceShape, endpoints: readonly EndpointShape[], resourceVersion: number): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName(s),
      namespace: s.namespace,
      uid: uid(2, s.index),
      resourceVersion: String(resourceVersion),
      creationTimestamp: CREATED,
      generateName: `${s.name}-`,
      labels: {
        'kubernetes.io/service-name': s.name,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        app: s.name,
      },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: s.name, uid: uid(1, s.index), controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    ports: s.ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready, serving: e.ready, terminating: false },
      nodeName: e.node,
      zone: e.zone,
      targetRef: { kind: 'Pod', namespace: s.namespace, name: `${s.name}-${e.pod}`, uid: uid(3, parseInt(e.pod, 16)) },
    })),
  };
}

export function nodeJson(): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: NODE_NAME,
      uid: uid(4, 0),
      resourceVersion: '1',
      creationTimestamp: CREATED,
      labels: {
        'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': 'zone-0',
      },
    },
    spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] },
    status: {
      addresses: [{ type: 'InternalIP', address: NODE_IP }, { type: 'Hostname', address: NODE_NAME }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
    },
  };
}

/**
 * The cluster: services × endpoints, plus the endpoints changed since (by service index). The
 * resourceVersion counter grows with every object produced, like an API server's.
 */
export class ClusterState {
  private readonly overrides = new Map<number, EndpointShape[]>();
  private rv = 1;
  private changes = 0;

  constructor(
    readonly services: number,
    readonly endpointsPerService: number,
  ) {
    if (!Number.isInteger(services) || services < 1) throw new RangeError(`services must be a positive integer, got ${services}`);
    if (!Number.isInteger(endpointsPerService) || endpointsPerService < 1 || endpointsPerService > 100) {
      throw new RangeError(`endpoints per service must be 1..100 (one EndpointSlice per Service), got ${endpointsPerService}`);
    }
    if (services > 500_000) throw new RangeError(`at most 500000 services (address ranges), got ${services}`);
  }

  endpointsOf(i: number): EndpointShape[] {
    return this.overrides.get(i) ?? Array.from({ length: this.endpointsPerService }, (_, e) => originalEndpoint(i, e, this.endpointsPerService));
  }

  serviceJson(i: number): Record<string, unknown> {
    return serviceJson(serviceShape(i), ++this.rv);
  }

  sliceJson(i: number): Record<string, unknown> {
    return sliceJson(serviceShape(i), this.endpointsOf(i), ++this.rv);
  }

  /**
   * The k-th change, on service `i`: even k replaces a pod (new address and name, same node),
   * odd k flips one endpoint's readiness. Returns a description.
   */
  change(i: number, k: number): string {
    const eps = this.endpointsOf(i).map((e) => ({ ...e }));
    const e = k % eps.length;
    const ep = eps[e] as EndpointShape;
    let what: string;
    if (k % 2 === 0) {
      const c = this.changes++;
      what = `pod replaced: ${ep.ip} → ${replacementIP(c)}`;
      eps[e] = { ...ep, ip: replacementIP(c), ready: true, pod: hash(1_000_000 + c).slice(0, 5) };
    } else {
      what = `${ep.ip} ${ep.ready ? 'not ready' : 'ready again'}`;
      eps[e] = { ...ep, ready: !ep.ready };
    }
    this.overrides.set(i, eps);
    return what;
  }

  /**
   * Service ports the model must program (one ClusterIP frontend each), their backends (the
   * Cluster sets) and the backend map entries: a block holds the Cluster set, then the Local set
   * (endpoints on this node), whatever the traffic policy.
   */
  expected(): { servicePorts: number; backends: number; backendEntries: number } {
    let servicePorts = 0;
    let backends = 0;
    let backendEntries = 0;
    for (let i = 0; i < this.services; i++) {
      const ports = portsOf(i).length;
      const ready = this.endpointsOf(i).filter((e) => e.ready);
      servicePorts += ports;
      backends += ports * ready.length;
      backendEntries += ports * (ready.length + ready.filter((e) => e.node === NODE_NAME).length);
    }
    return { servicePorts, backends, backendEntries };
  }
}
