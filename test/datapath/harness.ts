// Loads the real TC object (dist/bpf/tc.bpf.o) into a per-run pin directory and drives its
// programs with BPF_PROG_TEST_RUN: the packet tests' only way into the datapath. Everything is
// written through the BTF-verified codecs, and everything is removed on teardown.
import { existsSync } from 'node:fs';
import type { Test } from 'tap';
import { allStructCodecs, backendKey, backendValue4, ctKey4, ctValue4, affinityKey4, affinityValue4,
  frontendKey4, serviceValue, svcCounters, u32Key, u64Value, vipKey4, vipValue, type CtKey4, type CtValue4,
  type AffinityValue4, type SvcCounters, DROP_REASONS, type DropReasonName, nodeConfig4, srcRangeKey4, srcRangeValue, tunnelNodeKey4, tunnelNodeValue } from '../../src/bpf/sluice-structs.js';
import { encodeRodataValue } from '../../src/bpf/loader.js';
import { decodePerCpu, verifyCodecAgainstBtf } from '../../src/bpf/codec.js';
import { fromPackageRoot, loadNative, type NativeAddon, type NativeObject } from '../../src/bpf/native.js';
import { parseFrame, type ParsedFrame } from '../../src/packet/index.js';
import { createRunPinDir, removePinDir } from '../../src/testbed/bpffs.js';
import { newRunPrefix } from '../../src/testbed/names.js';
import { requirePrivileges } from '../helpers/privileges.js';

/** The object under test; SLUICE_TEST_TC_OBJECT points elsewhere (e.g. a mutated build). */
export const TC_OBJECT = process.env.SLUICE_TEST_TC_OBJECT ?? fromPackageRoot('dist', 'bpf', 'tc.bpf.o');
/** The host-interface object (bpf/host.bpf.c): external traffic. */
export const HOST_OBJECT = process.env.SLUICE_TEST_HOST_OBJECT ?? fromPackageRoot('dist', 'bpf', 'host.bpf.o');
/** UNSPEC (-1) reads back as the u32 retval 0xffffffff. */
export const TC_ACT = { UNSPEC: 0xffffffff, OK: 0, SHOT: 2, REDIRECT: 7 } as const;
export const PROG = {
  FROM_POD: 'sl_tc_from_pod', TO_POD: 'sl_tc_to_pod', HOST_INGRESS: 'sl_host_ingress', HOST_EGRESS: 'sl_host_egress',
} as const;
export type ProgName = (typeof PROG)[keyof typeof PROG];

export interface BackendSpec {
  addr: string;
  port: number;
  flags?: number;
  nodeAddr?: string;
}

export interface ServiceSpec {
  vip: string;
  port: number;
  proto: number;
  svcId: number;
  backendId: number;
  /** The Cluster set: ordinals [0, n). */
  cluster: BackendSpec[];
  /** The Local set: ordinals [cluster.length, ...). */
  local?: BackendSpec[];
  flags?: number;
  affinityTimeoutS?: number;
}

export interface RunResult {
  retval: number;
  /** The frame as the program left it. */
  data: Buffer;
  parsed: ParsedFrame;
}

export type DropReason = DropReasonName;

export interface Datapath {
  addon: NativeAddon;
  obj: NativeObject;
  pinDir: string;
  /** Writes backends first, then the frontend (the order user space uses). */
  addService(s: ServiceSpec): void;
  /** Lists addr in sl_vips4 with `flags` (default: refuse unknown ports), as the writer does for ClusterIPs. */
  addVip(addr: string, flags?: number): void;
  run(prog: ProgName, frame: Buffer): RunResult;
  ct(key: CtKey4): CtValue4 | null;
  setCt(key: CtKey4, value: CtValue4): void;
  /** Deletes a conntrack entry (as an LRU eviction or a flush would). */
  deleteCt(key: CtKey4): void;
  ctCount(): number;
  affinity(svcId: number, client: string): AffinityValue4 | null;
  setAffinity(svcId: number, client: string, value: AffinityValue4): void;
  /** Per-service counters summed over CPUs. */
  svcCounters(svcId: number): SvcCounters;
  /** Per-frontend-kind counters of the host programs (sl_ext_counters), summed over CPUs. */
  extCounters(kind: number): SvcCounters;
  /** sl_node_config: the SNAT address and port range. */
  setNodeConfig(snatAddr: string, portMin: number, portMax: number): void;
  /** Lists a cluster node's address in sl_tunnel_nodes4 (tunnel traffic accepted from it). */
  addTunnelNode(addr: string): void;
  /** Allows `cidr` (a.b.c.d/len) for svcId in sl_src_ranges4. */
  addSrcRange(svcId: number, cidr: string): void;
  /** A drop counter summed over CPUs. */
  drops(reason: DropReason): bigint;
}

export interface DatapathOptions {
  /** `const volatile` tunables to set before load, as u64 values. */
  rodataU64?: Record<string, bigint>;
  /** `const volatile` tunables of any integer size (encoded by the variable's size). */
  rodata?: Record<string, number>;
  /** The object to load (default TC_OBJECT; HOST_OBJECT for the host-interface programs). */
  object?: string;
}

/** Opens and loads tc.bpf.o for test t, or returns null when t was skipped (no privileges). */
export async function loadDatapath(t: Test, opts: DatapathOptions = {}): Promise<Datapath | null> {
  if (!(await requirePrivileges(t))) return null;
  const object = opts.object ?? TC_OBJECT;
  if (!existsSync(object)) throw new Error(`${object} is missing: run \`npm run build:bpf\``);
  const addon = loadNative();
  const pinDir = await createRunPinDir(newRunPrefix());
  t.teardown(() => removePinDir(pinDir));
  const obj = addon.openObject(object, { pinRoot: pinDir });
  t.teardown(() => obj.close());
  for (const codec of allStructCodecs) verifyCodecAgainstBtf(codec, obj.btfStruct(codec.name));
  for (const [name, value] of Object.entries(opts.rodataU64 ?? {})) {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(value);
    obj.setRodata(name, buf);
  }
  const variables = new Map(obj.rodataVariables().map((v) => [v.name, v]));
  for (const [name, value] of Object.entries(opts.rodata ?? {})) {
    const variable = variables.get(name);
    if (!variable) throw new Error(`${object}: no const volatile ${name}`);
    obj.setRodata(name, encodeRodataValue(variable, value));
  }
  await obj.load();

  const cpus = addon.numPossibleCpus();
  const frontends = obj.map('sl_frontends4');
  const backends = obj.map('sl_backends4');
  const ct = obj.map('sl_ct4');
  const affinity = obj.map('sl_affinity4');
  const counters = obj.map('sl_svc_counters');
  const drops = obj.map('sl_drop_counters');
  const vips = obj.map('sl_vips4');
  const extCounters = obj.map('sl_ext_counters');
  const nodeConfig = obj.map('sl_node_config');
  const srcRanges = obj.map('sl_src_ranges4');
  const tunnelNodes = obj.map('sl_tunnel_nodes4');
  const sumCounters = (buf: Buffer | null, what: string): SvcCounters => {
    if (!buf) throw new Error(`${what}: no slot`);
    return decodePerCpu(svcCounters, buf, cpus).reduce((a, c) => ({
      packets: a.packets + c.packets,
      bytes: a.bytes + c.bytes,
      connections: a.connections + c.connections,
      rejected: a.rejected + c.rejected,
    }));
  };

  return {
    addon,
    obj,
    pinDir,
    addService(s) {
      const all = [...s.cluster, ...(s.local ?? [])];
      all.forEach((b, ordinal) => {
        backends.update(
          backendKey.encode({ backend_id: s.backendId, ordinal }),
          backendValue4.encode({ addr: b.addr, port: b.port, flags: b.flags ?? 0, node_addr: b.nodeAddr ?? '0.0.0.0' }),
        );
      });
      frontends.update(
        frontendKey4.encode({ addr: s.vip, port: s.port, proto: s.proto, scope: 0 }),
        serviceValue.encode({
          svc_id: s.svcId,
          backend_id: s.backendId,
          count: s.cluster.length,
          local_count: s.local?.length ?? 0,
          flags: s.flags ?? 0,
          affinity_timeout_s: s.affinityTimeoutS ?? 0,
        }),
      );
    },
    addVip(addr, flags = 1) {
      vips.update(vipKey4.encode({ addr }), vipValue.encode({ flags }));
    },
    run(prog, frame) {
      const res = obj.program(prog).testRun({ data: frame });
      return { retval: res.retval, data: res.data, parsed: parseFrame(res.data) };
    },
    ct(key) {
      const v = ct.lookup(ctKey4.encode(key));
      return v ? ctValue4.decode(v) : null;
    },
    setCt(key, value) {
      ct.update(ctKey4.encode(key), ctValue4.encode(value));
    },
    deleteCt(key) {
      ct.delete(ctKey4.encode(key));
    },
    ctCount: () => ct.keys().length,
    affinity(svcId, client) {
      const v = affinity.lookup(affinityKey4.encode({ svc_id: svcId, client_addr: client }));
      return v ? affinityValue4.decode(v) : null;
    },
    setAffinity(svcId, client, value) {
      affinity.update(affinityKey4.encode({ svc_id: svcId, client_addr: client }), affinityValue4.encode(value));
    },
    svcCounters: (svcId) => sumCounters(counters.lookup(u32Key.encode(svcId)), `sl_svc_counters[${svcId}]`),
    extCounters: (kind) => sumCounters(extCounters.lookup(u32Key.encode(kind)), `sl_ext_counters[${kind}]`),
    setNodeConfig(snatAddr, portMin, portMax) {
      nodeConfig.update(u32Key.encode(0), nodeConfig4.encode({ snat_addr: snatAddr, snat_port_min: portMin, snat_port_max: portMax }));
    },
    addTunnelNode(addr) {
      tunnelNodes.update(tunnelNodeKey4.encode({ addr }), tunnelNodeValue.encode({ flags: 0 }));
    },
    addSrcRange(svcId, cidr) {
      const [addr, len] = cidr.split('/');
      srcRanges.update(srcRangeKey4.encode({ prefixlen: 32 + Number(len), svc_id: svcId, addr: addr as string }), srcRangeValue.encode({ flags: 0 }));
    },
    drops(reason) {
      const buf = drops.lookup(u32Key.encode(DROP_REASONS.indexOf(reason)));
      if (!buf) throw new Error(`sl_drop_counters: no slot for ${reason}`);
      return decodePerCpu(u64Value, buf, cpus).reduce((a, c) => a + c, 0n);
    },
  };
}

/** The forward conntrack key of a client's packet. */
export function tupleKey(src: string, dst: string, sport: number, dport: number, proto: number): CtKey4 {
  return { saddr: src, daddr: dst, sport, dport, proto };
}
