// The agent's external-traffic phase (docs/external-traffic.md): the node's host-facing
// interfaces (eth*, ens*, ...) get host.bpf.o's programs as they come and go; NodePort addresses
// come from the host's interface addresses; the SNAT source and port range are written to
// sl_node_config; loadBalancerSourceRanges to their family's map after each apply.
import type { Logger } from 'pino';
import type { DesiredState } from '../model/types.js';
import type { ObjectStore } from '../k8s/store.js';
import type { ServiceTableWriter } from '../dataplane/writer.js';
import { SourceRangeWriter } from '../dataplane/source-ranges.js';
import { MaglevWriter } from '../dataplane/maglev-writer.js';
import { NativeTable } from '../dataplane/native-tables.js';
import { maglevTableSpec } from '../dataplane/table-specs.js';
import { loadNative } from '../bpf/native.js';
import type { AgentConfig } from './config.js';
import type { AgentDatapath } from './datapath.js';
import { InterfaceWatcher } from './interfaces.js';
import { localPortRange, nodePortCandidates, readExternalCounters, readHostAddresses, snatAddress, snatAddress6, snatRangeProblem, writeNodeConfig, writeNodeConfig6 } from './host-addresses.js';
import { nodeIPv4, nodeIPv6 } from './node-address.js';
import { TunnelNodeWriter } from './tunnel-nodes.js';
import { DSR_OPTOUT_MAPS, SRC_RANGES_MAPS, TUNNEL_NODES_MAP, TUNNEL_NODES_MAPS } from '../dataplane/table-specs.js';
import { DsrOptoutWriter } from './dsr-optout.js';

export interface ExternalTrafficOptions {
  cfg: AgentConfig;
  datapath: AgentDatapath;
  store: ObjectStore;
  writer: ServiceTableWriter;
  logger: Logger;
  interfaceLogger: Logger;
  recordError(component: string, message: string, object?: string): void;
}

export class ExternalTraffic {
  /** The host's addresses NodePorts listen on (undefined until first read). */
  hostAddresses: string[] | undefined;
  private snatAddr: string | undefined;
  /** The IPv6 SNAT source last written (null: not written yet, so '::' is written once too). */
  private snatAddr6: string | undefined | null = null;
  private readonly sourceRanges: SourceRangeWriter;
  /** The external services' Maglev tables (sl_maglev4, both families), written after each apply. */
  readonly maglev: MaglevWriter;
  private hostWatcher: InterfaceWatcher | undefined;
  private readonly tunnelNodes: TunnelNodeWriter;
  private readonly tunnelNodes6: TunnelNodeWriter;

  private constructor(private readonly o: ExternalTrafficOptions) {
    const { tables6 } = o.datapath;
    this.sourceRanges = new SourceRangeWriter({
      IPv4: o.datapath.map(SRC_RANGES_MAPS.IPv4),
      ...(tables6 ? { IPv6: o.datapath.map(SRC_RANGES_MAPS.IPv6) } : {}),
    }, (key) => o.writer.serviceId(key));
    // One map for both families' tables: backend_ids are one space (maglev-writer.ts).
    this.maglev = new MaglevWriter(o.datapath.tables, new NativeTable(o.datapath.map('sl_maglev4'), maglevTableSpec()), o.cfg.maglevTableSize, tables6);
    this.tunnelNodes = new TunnelNodeWriter(o.datapath.map(TUNNEL_NODES_MAP));
    this.tunnelNodes6 = new TunnelNodeWriter(o.datapath.map(TUNNEL_NODES_MAPS.IPv6), 'IPv6');
  }

  /** Null when no host interface patterns are configured (`--host-interfaces none`). */
  static async open(o: ExternalTrafficOptions): Promise<ExternalTraffic | null> {
    if (o.cfg.hostInterfacePatterns.length === 0) return null;
    const ext = new ExternalTraffic(o);
    o.logger.info({ mode: o.cfg.externalMode, tunnelPort: o.cfg.tunnelPort, tunnelMtu: o.cfg.tunnelMtu }, 'external traffic to remote backends');
    ext.writeDsrOptout();
    await ext.refreshHost();
    const problem = snatRangeProblem(o.cfg.snatPortRange, await localPortRange());
    if (problem) o.recordError('external', problem);
    return ext;
  }

  /**
   * --dsr-optout-cidrs into sl_dsr_optout4 and sl_dsr_optout6 (in every mode, so the map always says what the
   * configuration says; only DSR mode reads it).
   */
  private writeDsrOptout(): void {
    const { cfg, logger, datapath } = this.o;
    const [v4, v6] = (['IPv4', 'IPv6'] as const).map((f) => new DsrOptoutWriter(datapath.map(DSR_OPTOUT_MAPS[f]), f).apply(cfg.dsrOptoutCidrs));
    const report = { added: [...v4!.added, ...v6!.added], removed: [...v4!.removed, ...v6!.removed], errors: [...v4!.errors, ...v6!.errors] };
    for (const e of report.errors) this.o.recordError('external', e);
    if (cfg.dsrOptoutCidrs.length > 0) {
      logger.info({ cidrs: cfg.dsrOptoutCidrs, added: report.added, removed: report.removed }, 'DSR opt-out CIDRs (these clients get Tunnel)');
      if (cfg.externalMode !== 'DSR') logger.warn({ mode: cfg.externalMode }, '--dsr-optout-cidrs has no effect outside DSR mode');
    } else if (report.removed.length > 0) {
      logger.info({ removed: report.removed }, 'DSR opt-out CIDRs removed');
    }
  }

  /** After each apply: the services' source ranges; errors go to the error list. */
  applySourceRanges(state: DesiredState): void {
    for (const e of this.sourceRanges.apply(state).errors) this.o.recordError('dataplane', e);
  }

  /**
   * After each apply: the Maglev tables of new external blocks, those of replaced ones deleted
   * (skipped when the apply changed no service port and nothing waits for a retry).
   */
  applyMaglev(result?: { services: { added: number; updated: number; removed: number } }): void {
    const changed = result === undefined || result.services.added + result.services.updated + result.services.removed > 0;
    const r = this.maglev.apply({ changed });
    for (const e of r.errors) this.o.recordError('dataplane', e);
    for (const n of r.notes) this.o.logger.warn(n);
    if (r.built > 0 || r.deleted > 0) this.o.logger.debug({ built: r.built, deleted: r.deleted, tables: r.tables }, 'Maglev tables written');
  }

  /**
   * Attaches to the host interfaces (and ones that appear later) and watches the node's
   * addresses; `onAddressesChanged` runs when the NodePort addresses moved.
   */
  async start(onAddressesChanged: () => void): Promise<void> {
    const { datapath, cfg, store } = this.o;
    const onHostChange = async () => {
      if (await this.refreshHost()) onAddressesChanged();
    };
    this.onHostChange = onHostChange;
    this.hostWatcher = new InterfaceWatcher({
      patterns: cfg.hostInterfacePatterns,
      logger: this.o.interfaceLogger,
      onAdded: async (iface) => {
        await datapath.attachHostInterface(iface).catch((err: unknown) => {
          this.o.recordError('tc-attach', `attaching the external-traffic programs to ${iface.name} failed: ${(err as Error).message}`, iface.name);
          throw err;
        });
        await onHostChange();
      },
      onRemoved: async (iface) => {
        datapath.forgetInterface(iface);
        await onHostChange();
      },
    });
    await this.hostWatcher.start();
    // Addresses can change without a link event: looked at again on Node changes and periodically.
    store.onChange((change) => {
      if (change.kind !== 'Node') return;
      void onHostChange();
      this.refreshTunnelNodes();
    });
    this.refreshTunnelNodes();
  }

  /**
   * Every Node's IPv4 and IPv6 address into sl_tunnel_nodes4 and sl_tunnel_nodes6 (written in every mode: a node switched to
   * Tunnel finds the set ready).
   */
  private refreshTunnelNodes(): void {
    const { store } = this.o;
    const nodes = store.keys('Node').map((name) => store.get('Node', name));
    const report = this.tunnelNodes.apply(nodes.map(nodeIPv4));
    const report6 = this.tunnelNodes6.apply(nodes.map(nodeIPv6));
    for (const e of [...report.errors, ...report6.errors]) this.o.recordError('external', e);
    const added = [...report.added, ...report6.added];
    const removed = [...report.removed, ...report6.removed];
    if (added.length || removed.length) this.o.logger.info({ added, removed }, 'tunnel peers (cluster node addresses)');
  }

  /** Looks at the host's addresses again (the agent's periodic check calls it). */
  onHostChange: () => Promise<void> = async () => {};

  externalCounters() {
    return readExternalCounters(this.o.datapath.map('sl_ext_counters'), loadNative().numPossibleCpus());
  }

  stop(): void {
    this.hostWatcher?.stop();
  }

  /** Re-reads the host's addresses; true when the NodePort addresses changed. */
  private async refreshHost(): Promise<boolean> {
    const { cfg, store, datapath, logger } = this.o;
    let addrs;
    try {
      addrs = await readHostAddresses();
    } catch (err) {
      this.o.recordError('external', `reading the host's addresses failed: ${(err as Error).message}`);
      return false;
    }
    const snat = snatAddress(addrs, cfg.hostInterfacePatterns, nodeIPv4(store.get('Node', cfg.nodeName)));
    if (snat !== this.snatAddr) {
      this.snatAddr = snat;
      writeNodeConfig(datapath.map('sl_node_config'), snat, cfg.snatPortRange);
      logger.info({ snatAddress: snat ?? null, snatPorts: `${cfg.snatPortRange.min}-${cfg.snatPortRange.max}` }, 'SNAT source for external flows to remote backends');
    }
    const snat6 = snatAddress6(addrs, cfg.hostInterfacePatterns, nodeIPv6(store.get('Node', cfg.nodeName)));
    if (snat6 !== this.snatAddr6) {
      this.snatAddr6 = snat6;
      writeNodeConfig6(datapath.map('sl_node_config6'), snat6, cfg.snatPortRange);
      logger.info({ snatAddress6: snat6 ?? null }, 'IPv6 SNAT source for external flows to remote backends');
    }
    const candidates = nodePortCandidates(addrs);
    if (this.hostAddresses && candidates.join(',') === this.hostAddresses.join(',')) return false;
    this.hostAddresses = candidates;
    logger.info({ addresses: candidates }, 'host addresses for NodePorts');
    return true;
  }
}
