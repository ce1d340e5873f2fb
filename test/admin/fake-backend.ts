// A deterministic AdminBackend for server and sluicectl tests: two Services (web with a
// ClusterIP and a NodePort, dns with UDP and TCP ports), conntrack, affinity, counters and map
// fill levels; it records the write calls it gets and can be told to stall.
import type {
  AdminBackend, AffinityView, ConntrackView, CountersView, FlushResult, LogLevelResult, MapsView, NatView, ServiceRef,
  ServicesView, StatusView,
} from '../../src/admin/types.js';
import type { LogLevel } from '../../src/log/logger.js';

export const WEB = 'default/web:http/TCP/IPv4';
export const DNS_UDP = 'kube-system/dns:dns/UDP/IPv4';
export const DNS_TCP = 'kube-system/dns:dns-tcp/TCP/IPv4';

export class FakeBackend implements AdminBackend {
  level: LogLevel = 'info';
  flushed: ServiceRef[] = [];
  /** When set, every read waits this long (a busy agent). */
  stallMs = 0;

  private async maybeStall(): Promise<void> {
    if (this.stallMs > 0) await new Promise((r) => setTimeout(r, this.stallMs));
  }

  async status(): Promise<StatusView> {
    await this.maybeStall();
    return {
      version: '0.1.0',
      agentRunning: true,
      nodeName: 'node-a',
      startedAt: '2025-01-01T00:00:00.000Z',
      pinDir: '/sys/fs/bpf/sluice',
      config: { connectTimeLb: 'tcp-udp', minSyncPeriodMs: 250, interfacePatterns: ['veth*'] },
      programs: [
        { program: 'sl_connect4', hook: 'cgroup', target: '/sys/fs/cgroup', progId: 41, attached: true },
        { program: 'sl_tc_ingress', hook: 'tc', target: 'veth1', direction: 'ingress', progId: 42, attached: true },
      ],
      sync: {
        state: 'synced',
        sourcesSynced: true,
        lastSyncAt: '2025-01-01T00:00:05.000Z',
        lastSyncDurationMs: 12.5,
        syncCount: 3,
        servicePortsProgrammed: 3,
      },
      errors: [{ at: '2025-01-01T00:00:04.000Z', component: 'model', object: 'default/bad', message: 'spec.ports[0].port: 0 is not a port' }],
    };
  }

  services(): ServicesView {
    return {
      services: [
        {
          key: WEB, namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP', family: 'IPv4',
          svcId: 1, backendId: 10, flags: ['affinity'], affinityTimeoutSec: 10800,
          frontends: [{ ip: '10.96.0.10', port: 80, kind: 'ClusterIP' }, { ip: '192.168.1.5', port: 30080, kind: 'NodePort' }],
          clusterCount: 2, localCount: 1,
          backends: [
            { ip: '10.244.1.5', port: 8080, ordinal: 0, set: 'cluster', nodeIp: '192.168.1.5', local: true, terminating: false },
            { ip: '10.244.2.7', port: 8080, ordinal: 1, set: 'cluster', nodeIp: '192.168.1.6', local: false, terminating: false },
            { ip: '10.244.1.5', port: 8080, ordinal: 2, set: 'local', nodeIp: '192.168.1.5', local: true, terminating: false },
          ],
        },
        {
          key: DNS_TCP, namespace: 'kube-system', name: 'dns', portName: 'dns-tcp', protocol: 'TCP', family: 'IPv4',
          svcId: 3, backendId: 12, flags: [], affinityTimeoutSec: 0,
          frontends: [{ ip: '10.96.0.53', port: 53, kind: 'ClusterIP' }],
          clusterCount: 0, localCount: 0, backends: [],
        },
        {
          key: DNS_UDP, namespace: 'kube-system', name: 'dns', portName: 'dns', protocol: 'UDP', family: 'IPv4',
          svcId: 2, backendId: 11, flags: [], affinityTimeoutSec: 0,
          frontends: [{ ip: '10.96.0.53', port: 53, kind: 'ClusterIP' }],
          clusterCount: 1, localCount: 0,
          backends: [{ ip: '10.244.2.9', port: 53, ordinal: 0, set: 'cluster', nodeIp: '', local: false, terminating: true }],
        },
      ],
    };
  }

  natDump(): NatView {
    return {
      frontends: [
        { ip: '10.96.0.10', port: 80, protocol: 'TCP', kind: 'ClusterIP', scope: 0, svcId: 1, backendId: 10, count: 2, localCount: 1, flags: ['affinity'], affinityTimeoutSec: 10800, service: WEB },
        { ip: '192.168.1.5', port: 30080, protocol: 'TCP', kind: 'NodePort', scope: 0, svcId: 1, backendId: 10, count: 2, localCount: 1, flags: ['affinity', 'external'], affinityTimeoutSec: 10800, service: WEB },
        { ip: '10.96.0.53', port: 53, protocol: 'TCP', kind: 'ClusterIP', scope: 0, svcId: 3, backendId: 12, count: 0, localCount: 0, flags: [], affinityTimeoutSec: 0, service: DNS_TCP },
        { ip: '10.96.0.53', port: 53, protocol: 'UDP', kind: 'ClusterIP', scope: 0, svcId: 2, backendId: 11, count: 1, localCount: 0, flags: [], affinityTimeoutSec: 0, service: DNS_UDP },
      ],
      backends: [
        { backendId: 10, ordinal: 0, ip: '10.244.1.5', port: 8080, nodeIp: '192.168.1.5', flags: ['local'] },
        { backendId: 10, ordinal: 1, ip: '10.244.2.7', port: 8080, nodeIp: '192.168.1.6', flags: [] },
        { backendId: 10, ordinal: 2, ip: '10.244.1.5', port: 8080, nodeIp: '192.168.1.5', flags: ['local'] },
        { backendId: 11, ordinal: 0, ip: '10.244.2.9', port: 53, nodeIp: '', flags: ['terminating'] },
      ],
    };
  }

  conntrack(): ConntrackView {
    const fwd = {
      protocol: 'TCP', direction: 'forward' as const, state: 'ESTABLISHED',
      client: { ip: '10.244.1.20', port: 40000 }, frontend: { ip: '10.96.0.10', port: 80 }, backend: { ip: '10.244.2.7', port: 8080 },
      natSource: '', svcId: 1, service: WEB, ageSec: 30, idleSec: 2, flags: [],
    };
    return {
      total: 3,
      entries: [
        fwd,
        { ...fwd, direction: 'reverse' },
        {
          protocol: 'UDP', direction: 'forward', state: 'NEW',
          client: { ip: '10.244.1.21', port: 5353 }, frontend: { ip: '10.96.0.53', port: 53 }, backend: { ip: '10.244.2.9', port: 53 },
          natSource: '', svcId: 2, service: DNS_UDP, ageSec: 5, idleSec: 5, flags: [],
        },
      ],
    };
  }

  affinity(): AffinityView {
    return {
      entries: [
        { svcId: 1, service: WEB, client: '10.244.1.20', backend: { ip: '10.244.2.7', port: 8080 }, idleSec: 2, timeoutSec: 10800, expired: false },
      ],
    };
  }

  counters(): CountersView {
    return {
      services: [
        { svcId: 1, service: WEB, namespace: 'default', name: 'web', portName: 'http', protocol: 'TCP', family: 'IPv4', packets: 1200, bytes: 345678, connections: 40, rejected: 0 },
        { svcId: 3, service: DNS_TCP, namespace: 'kube-system', name: 'dns', portName: 'dns-tcp', protocol: 'TCP', family: 'IPv4', packets: 0, bytes: 0, connections: 0, rejected: 7 },
      ],
      drops: [
        { reason: 'no_backend', code: 1, packets: 7 },
        { reason: 'no_local_backend', code: 2, packets: 0 },
      ],
    };
  }

  maps(): MapsView {
    return {
      maps: [
        { name: 'sl_backends4', type: 'hash', entries: 4, maxEntries: 262144, fill: 0 },
        { name: 'sl_ct4', type: 'lru_hash', entries: 3, maxEntries: 524288, fill: 0 },
        { name: 'sl_frontends4', type: 'hash', entries: 4, maxEntries: 65536, fill: 0.0001 },
      ],
    };
  }

  setLogLevel(level: LogLevel): LogLevelResult {
    const previous = this.level;
    this.level = level;
    return { level, previous };
  }

  flushConntrack(service: ServiceRef): FlushResult {
    this.flushed.push(service);
    return { service: `${service.namespace}/${service.name}`, deleted: 2 };
  }
}
