// The cluster's node addresses, written to sl_tunnel_nodes4 (IPv4) and sl_tunnel_nodes6 (IPv6,
// one writer per family) from the Node objects: the only
// sources host.bpf.c decapsulates tunnel traffic from (docs/external-traffic.md, "Modes"). Kept
// exactly equal to the Nodes' addresses: new ones added before gone ones are removed, so a node
// being replaced is never refused in between; a restarted agent starts from what the pinned map
// holds.
import type { NativeMap } from '../bpf/native.js';
import { tunnelNodeKey4, tunnelNodeKey6, tunnelNodeValue } from '../bpf/sluice-structs.js';
import { TUNNEL_NODES_MAPS, TUNNEL_NODES_MAX } from '../dataplane/table-specs.js';

const CODECS = { IPv4: tunnelNodeKey4, IPv6: tunnelNodeKey6 } as const;

export interface TunnelNodesReport {
  added: string[];
  removed: string[];
  errors: string[];
}

export class TunnelNodeWriter {
  private readonly written = new Set<string>();
  private readonly codec: (typeof CODECS)[keyof typeof CODECS];
  private readonly mapName: string;

  constructor(private readonly map: Pick<NativeMap, 'update' | 'delete' | 'keys'>, family: keyof typeof CODECS = 'IPv4') {
    this.codec = CODECS[family];
    this.mapName = TUNNEL_NODES_MAPS[family];
    for (const key of map.keys()) this.written.add(this.codec.decode(key).addr);
  }

  /** Makes the map hold exactly `addresses` (text of the writer's family; duplicates and blanks ignored). */
  apply(addresses: Iterable<string | undefined>): TunnelNodesReport {
    const TUNNEL_NODES_MAP = this.mapName;
    const want = new Set([...addresses].filter((a): a is string => !!a));
    const report: TunnelNodesReport = { added: [], removed: [], errors: [] };
    if (want.size > TUNNEL_NODES_MAX) {
      report.errors.push(`${TUNNEL_NODES_MAP}: ${want.size} node addresses, the map holds ${TUNNEL_NODES_MAX}; the rest are refused tunnel traffic`);
    }
    const value = tunnelNodeValue.encode({ flags: 0 });
    for (const addr of want) {
      if (this.written.has(addr)) continue;
      if (this.written.size >= TUNNEL_NODES_MAX) break;
      try {
        this.map.update(this.codec.encode({ addr }), value);
        this.written.add(addr);
        report.added.push(addr);
      } catch (err) {
        report.errors.push(`${TUNNEL_NODES_MAP} update ${addr}: ${(err as Error).message}`);
      }
    }
    for (const addr of [...this.written]) {
      if (want.has(addr)) continue;
      try {
        this.map.delete(this.codec.encode({ addr }));
        this.written.delete(addr);
        report.removed.push(addr);
      } catch (err) {
        report.errors.push(`${TUNNEL_NODES_MAP} delete ${addr}: ${(err as Error).message}`);
      }
    }
    return report;
  }
}
