// The foreign TC program of the coexistence tests (bpf/test/policy_neighbour.bpf.c), shaped like
// the AWS network policy agent's: priority 1, direct action, handle 1, counts every packet,
// drops one chosen destination, ends the chain with TC_ACT_OK. Loaded and attached by the test,
// inside the test's node namespace only.
import type { NativeAddon, NativeObject, TcDirection } from '../../src/bpf/native.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { ipv4FromBuffer, ipv4ToBuffer } from '../../src/bpf/ip-bytes.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { TestbedRun } from '../../src/testbed/run.js';

export const NEIGHBOUR_OBJ = fromPackageRoot('dist', 'bpf', 'test', 'policy_neighbour.bpf.o');
/** The AWS agent's filter: handle 1 at priority 1. */
export const NEIGHBOUR_FILTER = { handle: 1, priority: 1 } as const;

export interface Neighbour {
  readonly where: string;
  /** Packets it saw. */
  packets(): bigint;
  /** Packets it dropped (to its chosen destination). */
  dropped(): bigint;
  /** The `source>destination` pairs it saw, with counts. */
  seen(): Map<string, bigint>;
  detach(): Promise<void>;
}


/** Loads one instance of the fixture (its own maps) and attaches it to a pod veth hook in `nodeNs`. */
export async function attachNeighbour(
  run: TestbedRun,
  native: NativeAddon,
  nodeNs: string,
  hook: { ifindex: number; ifname: string; direction: TcDirection },
  dropDestination?: string,
): Promise<Neighbour> {
  const obj: NativeObject = native.openObject(NEIGHBOUR_OBJ, {});
  run.cleanup.add(`policy neighbour object on ${hook.ifname} ${hook.direction}`, () => obj.close());
  obj.setRodata('fx_drop_daddr', dropDestination ? ipv4ToBuffer(dropDestination) : Buffer.alloc(4));
  await obj.load();
  const netns = netnsPath(nodeNs);
  await native.tcHookCreate(hook.ifindex, { netns });
  const filter = { ifindex: hook.ifindex, direction: hook.direction, ...NEIGHBOUR_FILTER, netns };
  await native.tcAttach({ ...filter, progFd: obj.program('fx_policy').info.fd });
  const counters = obj.map('fx_counters');
  const counter = (slot: number) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    return counters.lookup(key)?.readBigUInt64LE(0) ?? 0n;
  };
  return {
    where: `${hook.ifname} ${hook.direction}`,
    packets: () => counter(0),
    dropped: () => counter(1),
    seen() {
      const map = obj.map('fx_seen');
      const out = new Map<string, bigint>();
      for (const k of map.keys()) out.set(`${ipv4FromBuffer(k, 0)}>${ipv4FromBuffer(k, 4)}`, map.lookup(k)?.readBigUInt64LE(0) ?? 0n);
      return out;
    },
    detach: () => native.tcDetach(filter),
  };
}
