// In-memory stand-ins for NativeMap, filled with entries encoded by the real codecs, so the
// maps backend can be tested without BPF. Per-CPU maps hold one 8-byte-aligned slot per CPU,
// as the addon returns them.
import type { MapInfo, NativeMap } from '../../src/bpf/native.js';
import type { SluiceMapSet } from '../../src/admin/map-reader.js';
import { SLUICE_MAP_NAMES } from '../../src/admin/map-reader.js';
import {
  affinityKey4, affinityValue4, backendKey, backendValue4, ctKey4, ctValue4, CT_STATE, CT_TYPE, frontendKey4, IPPROTO,
  serviceValue, SVC_F, BE_F, svcCounters, svcMeta,
} from '../../src/bpf/sluice-structs.js';

export const CPUS = 4;

const TYPES = { hash: 1, array: 2, percpu_array: 6, lru_hash: 9 } as const;

export class FakeMap implements NativeMap {
  readonly entries = new Map<string, Buffer>();
  readonly info: MapInfo;
  batchSupported = true;

  constructor(name: string, type: keyof typeof TYPES, keySize: number, valueSize: number, maxEntries: number) {
    this.info = { name: name.slice(0, 15), type: TYPES[type], keySize, valueSize, maxEntries, id: 1, fd: -1 };
  }

  private get perCpu(): boolean {
    return this.info.type === TYPES.percpu_array;
  }

  lookup(key: Buffer): Buffer | null {
    const v = this.entries.get(key.toString('hex'));
    if (v) return Buffer.from(v);
    // Arrays always have every index: zeros.
    if ((this.info.type === TYPES.array || this.perCpu) && key.readUInt32LE(0) < this.info.maxEntries) {
      return Buffer.alloc(this.perCpu ? Math.ceil(this.info.valueSize / 8) * 8 * CPUS : this.info.valueSize);
    }
    return null;
  }
  update(key: Buffer, value: Buffer): void {
    this.entries.set(key.toString('hex'), Buffer.from(value));
  }
  delete(key: Buffer): boolean {
    return this.entries.delete(key.toString('hex'));
  }
  nextKey(): Buffer | null {
    throw new Error('not used');
  }
  keys(): Buffer[] {
    return [...this.entries.keys()].map((k) => Buffer.from(k, 'hex'));
  }
  lookupBatch(): { keys: Buffer; values: Buffer; count: number } {
    if (!this.batchSupported) throw Object.assign(new Error('batch not supported'), { code: 'EINVAL' });
    const keys = this.keys();
    return { keys: Buffer.concat(keys), values: Buffer.concat(keys.map((k) => this.lookup(k) ?? Buffer.alloc(0))), count: keys.length };
  }
  updateBatch(): number {
    throw new Error('not used');
  }
  deleteBatch(): number {
    throw new Error('not used');
  }
  pin(): void {}
  unpin(): void {}
  close(): void {}
}

export function fakeMapSet(): Record<keyof SluiceMapSet, FakeMap> {
  const n = SLUICE_MAP_NAMES;
  return {
    frontends4: new FakeMap(n.frontends4, 'hash', 8, 24, 65536),
    backends4: new FakeMap(n.backends4, 'hash', 8, 12, 262144),
    ct4: new FakeMap(n.ct4, 'lru_hash', 16, 40, 524288),
    affinity4: new FakeMap(n.affinity4, 'lru_hash', 8, 16, 65536),
    sockRevnat4: new FakeMap(n.sockRevnat4, 'lru_hash', 16, 12, 262144),
    svcCounters: new FakeMap(n.svcCounters, 'percpu_array', 4, 32, 65536),
    dropCounters: new FakeMap(n.dropCounters, 'percpu_array', 4, 8, 16),
    svcMeta: new FakeMap(n.svcMeta, 'array', 4, 192, 65536),
  };
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** Writes per-CPU slots: `perCpu[i]` encodes CPU i's value (missing CPUs are zero). */
export function putPerCpu(map: FakeMap, index: number, perCpu: Buffer[]): void {
  const stride = Math.ceil(map.info.valueSize / 8) * 8;
  const buf = Buffer.alloc(stride * CPUS);
  perCpu.forEach((slot, cpu) => slot.copy(buf, cpu * stride));
  map.update(u32(index), buf);
}

export const NOW_NS = 1_000_000n * 1_000_000_000n; // a fixed CLOCK_MONOTONIC "now"
export const secondsAgo = (s: number): bigint => NOW_NS - BigInt(s) * 1_000_000_000n;

/** The scenario the maps backend tests read: web (ClusterIP + NodePort, affinity) and dns (UDP). */
export function populate(maps: Record<keyof SluiceMapSet, FakeMap>): void {
  const fe = (addr: string, port: number, proto: number, svc: object): void =>
    maps.frontends4.update(frontendKey4.encode({ addr, port, proto, scope: 0 }), serviceValue.encode({
      svc_id: 0, backend_id: 0, count: 0, local_count: 0, flags: 0, affinity_timeout_s: 0, ...svc,
    }));
  fe('10.96.0.10', 80, IPPROTO.TCP, { svc_id: 1, backend_id: 10, count: 2, local_count: 1, flags: SVC_F.AFFINITY, affinity_timeout_s: 10800 });
  fe('192.168.1.5', 30080, IPPROTO.TCP, {
    svc_id: 1, backend_id: 10, count: 2, local_count: 1, flags: SVC_F.AFFINITY | SVC_F.EXTERNAL, affinity_timeout_s: 10800,
  });
  fe('10.96.0.53', 53, IPPROTO.UDP, { svc_id: 2, backend_id: 11, count: 1 });

  const be = (backend_id: number, ordinal: number, addr: string, port: number, flags: number, node_addr: string): void =>
    maps.backends4.update(backendKey.encode({ backend_id, ordinal }), backendValue4.encode({ addr, port, flags, node_addr }));
  be(10, 0, '10.244.1.5', 8080, BE_F.LOCAL, '192.168.1.5');
  be(10, 1, '10.244.2.7', 8080, 0, '192.168.1.6');
  be(10, 2, '10.244.1.5', 8080, BE_F.LOCAL, '192.168.1.5');
  be(10, 3, '10.244.9.9', 8080, 0, '0.0.0.0'); // beyond count: a leftover slot, not served
  be(11, 0, '10.244.2.9', 53, BE_F.TERMINATING, '0.0.0.0');

  maps.svcMeta.update(u32(1), svcMeta.encode({ name: 'default/web:http/TCP/IPv4' }));
  maps.svcMeta.update(u32(2), svcMeta.encode({ name: 'kube-system/dns:dns/UDP/IPv4' }));

  const ct = (key: Parameters<typeof ctKey4.encode>[0], value: Partial<Parameters<typeof ctValue4.encode>[0]>): void =>
    maps.ct4.update(ctKey4.encode(key), ctValue4.encode({
      created_ns: secondsAgo(30), last_seen_ns: secondsAgo(2), nat_addr: '0.0.0.0', nat_port: 0, type: CT_TYPE.FORWARD,
      state: CT_STATE.ESTABLISHED, nat_saddr: '0.0.0.0', svc_id: 1, flags: 0, ...value,
    }));
  ct({ saddr: '10.244.1.20', daddr: '10.96.0.10', sport: 40000, dport: 80, proto: IPPROTO.TCP }, { nat_addr: '10.244.2.7', nat_port: 8080 });
  ct({ saddr: '10.244.2.7', daddr: '10.244.1.20', sport: 8080, dport: 40000, proto: IPPROTO.TCP },
    { nat_addr: '10.96.0.10', nat_port: 80, type: CT_TYPE.REVERSE });
  ct({ saddr: '10.244.1.21', daddr: '10.96.0.53', sport: 5353, dport: 53, proto: IPPROTO.UDP },
    { nat_addr: '10.244.2.9', nat_port: 53, svc_id: 2, state: CT_STATE.NEW, created_ns: secondsAgo(5), last_seen_ns: secondsAgo(5) });

  maps.affinity4.update(affinityKey4.encode({ svc_id: 1, client_addr: '10.244.1.20' }),
    affinityValue4.encode({ last_used_ns: secondsAgo(20), backend_addr: '10.244.2.7', backend_port: 8080 }));
  maps.affinity4.update(affinityKey4.encode({ svc_id: 1, client_addr: '10.244.1.99' }),
    affinityValue4.encode({ last_used_ns: secondsAgo(20_000), backend_addr: '10.244.1.5', backend_port: 8080 }));

  const counters = (packets: number, bytes: number, connections: number, rejected = 0): Buffer =>
    svcCounters.encode({ packets: BigInt(packets), bytes: BigInt(bytes), connections: BigInt(connections), rejected: BigInt(rejected) });
  putPerCpu(maps.svcCounters, 1, [counters(10, 1000, 1), Buffer.alloc(32), Buffer.alloc(32), counters(5, 500, 2)]);
  putPerCpu(maps.svcCounters, 2, [Buffer.alloc(32), counters(3, 300, 3, 1)]);
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  putPerCpu(maps.dropCounters, 1, [u64(0), u64(4), u64(3), u64(0)]);
  putPerCpu(maps.dropCounters, 6, [u64(1)]);
}
