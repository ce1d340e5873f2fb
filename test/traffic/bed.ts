// The real-traffic test bed: a node namespace routing between pod namespaces (src/testbed), the
// Sluice programs attached only inside it — connect-time programs on a dedicated cgroup that
// holds the client pod's processes, TC programs on the host veths in the node namespace — maps
// pinned under the run's own bpffs directory, and a long-lived client process.
import { existsSync } from 'node:fs';
import type { Test } from 'tap';
import type { NativeLink, NativeObject, NativeProgram } from '../../src/bpf/native.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { CTLB } from '../../src/bpf/sluice-structs.js';
import type { Backend, DesiredServicePort, DesiredState, L4Protocol } from '../../src/model/types.js';
import { openPinnedTables } from '../../src/dataplane/native-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import type { EchoServer } from '../../src/testbed/echo.js';
import { startEchoServer } from '../../src/testbed/echo.js';
import { netnsPath } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import type { Attachment, Topology } from '../../src/testbed/topology.js';
import { createTopology } from '../../src/testbed/topology.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { TrafficClient } from './traffic-client.js';
import { BackendList } from '../../src/model/backend-list.js';

/** Connect-time load balancing: off (TC path only), TCP only (UDP via TC), or TCP and UDP. */
export type CtlbMode = 'off' | 'tcp' | 'tcp+udp';

export interface BedOptions {
  /** Pod names; the first one runs the client. */
  pods: string[];
  ctlb: CtlbMode;
  /** Attach the TC programs on every pod's host veth. */
  tc: boolean;
  /**
   * Load bpf/sockdestroy.bpf.o and let the writer run it in the client's namespace before it
   * drops the socket reverse-NAT entries of removed UDP backends (when the addon can).
   */
  udpSocketSweep?: boolean;
  /**
   * Load connect.bpf.o as on a kernel without bpf_set_retval (< 5.18): a refused connect() fails
   * with EPERM (the sl_sock_refuse_no_retval tunable, bpf/lib/sock.h).
   */
  refuseWithoutRetval?: boolean;
  /** Pods get IPv6 addresses too (dual stack: Attachment.ip6). */
  ipv6?: boolean;
}

/** The dataplane's service-table writer; apply throws when it reports any error. */
export interface ServiceWriter {
  apply(desired: DesiredState): void;
}

export interface Bed {
  run: TestbedRun;
  topo: Topology;
  client: TrafficClient;
  clientPod: Attachment;
  pod(name: string): Attachment;
  writer: ServiceWriter;
  pinDir: string;
  /** Whether the writer closes connected UDP sockets of removed backends (udpSocketSweep). */
  sweepsUdpSockets: boolean;
  /**
   * Starts echo servers (TCP and UDP on `port`) in the named pods, named after the pods; on
   * `host` (default 0.0.0.0; '::' serves both families).
   */
  startBackends(pods: string[], port: number, host?: string): Promise<Map<string, EchoServer>>;
}

export const CONNECT_OBJ = fromPackageRoot('dist', 'bpf', 'connect.bpf.o');
export const TC_OBJ = fromPackageRoot('dist', 'bpf', 'tc.bpf.o');
export const SOCKDESTROY_OBJ = fromPackageRoot('dist', 'bpf', 'sockdestroy.bpf.o');
const ADDON = fromPackageRoot('build', 'Release', 'sluice_native.node');

export const CONNECT_PROGRAMS = [
  'sl_connect4', 'sl_sendmsg4', 'sl_recvmsg4', 'sl_getpeername4', 'sl_connect6', 'sl_sendmsg6', 'sl_recvmsg6', 'sl_getpeername6',
] as const;

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

/** Loads connect.bpf.o and links its programs to `cgroup` (detached again at cleanup). */
async function attachConnectTime(run: TestbedRun, pinDir: string, cgroup: string, mode: CtlbMode, withoutRetval: boolean): Promise<void> {
  const obj: NativeObject = loadNative().openObject(CONNECT_OBJ, { pinRoot: pinDir });
  run.cleanup.add('connect.bpf.o', () => obj.close());
  obj.setRodata('sl_ctlb_protocols', u32(mode === 'tcp' ? CTLB.TCP : CTLB.TCP | CTLB.UDP));
  if (withoutRetval) obj.setRodata('sl_sock_refuse_no_retval', Buffer.from([1]));
  await obj.load();
  for (const name of CONNECT_PROGRAMS) {
    const link: NativeLink = obj.program(name).attachCgroup(cgroup);
    run.cleanup.add(`${name} link on ${cgroup}`, () => {
      link.detach();
      link.close();
    });
  }
}

/** Loads tc.bpf.o and attaches it to every pod's host veth, inside the node namespace. */
async function attachTc(run: TestbedRun, pinDir: string, topo: Topology): Promise<void> {
  const native = loadNative();
  const obj = native.openObject(TC_OBJ, { pinRoot: pinDir });
  run.cleanup.add('tc.bpf.o', () => obj.close());
  await obj.load();
  const netns = netnsPath(topo.nodeNs);
  const fromPod = obj.program('sl_tc_from_pod').info.fd;
  const toPod = obj.program('sl_tc_to_pod').info.fd;
  // Filters go with the veths when the node namespace is deleted.
  for (const pod of topo.pods) {
    await native.tcHookCreate(pod.hostIfindex, { netns });
    await native.tcAttach({ ifindex: pod.hostIfindex, direction: 'ingress', progFd: fromPod, netns });
    await native.tcAttach({ ifindex: pod.hostIfindex, direction: 'egress', progFd: toPod, netns });
  }
}

/**
 * What the socket sweep needs from the addon and it does not offer yet: run an iterator program
 * once, inside a network namespace (the iterator walks the sockets of the namespace that opens
 * it), returning what it wrote.
 */
interface IteratorRunner {
  runIterator?(opts?: { netns?: string }): Buffer;
}

/** Loads the socket sweep; returns the call that sweeps `ns`, or undefined without addon support. */
async function loadUdpSocketSweep(run: TestbedRun, pinDir: string, ns: string): Promise<(() => void) | undefined> {
  const obj = loadNative().openObject(SOCKDESTROY_OBJ, { pinRoot: pinDir });
  run.cleanup.add('sockdestroy.bpf.o', () => obj.close());
  await obj.load();
  const prog = obj.program('sl_sock_destroy_udp') as NativeProgram & IteratorRunner;
  if (typeof prog.runIterator !== 'function') return undefined;
  const netns = netnsPath(ns);
  return () => {
    prog.runIterator?.({ netns });
  };
}

/**
 * Builds the bed, or returns null when the test was skipped for lack of privileges (which
 * fails instead under CI=true). Everything is torn down by t.teardown, also on failure.
 */
export async function createBed(t: Test, opts: BedOptions): Promise<Bed | null> {
  if (!(await requirePrivileges(t))) return null;
  for (const path of [CONNECT_OBJ, TC_OBJ, ADDON]) {
    if (!existsSync(path)) throw new Error(`traffic bed: ${path} is missing; run \`npm run build\` first`);
  }
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const topo = await createTopology(run, { pods: opts.pods, ipv6: opts.ipv6 ?? false });
  const clientPod = topo.pods[0];
  if (!clientPod) throw new Error('traffic bed: needs at least one pod (the client)');
  const pinDir = await run.pinDir();
  const clientCgroup = await createCgroup(await run.cgroup(), 'client');

  if (opts.ctlb !== 'off') await attachConnectTime(run, pinDir, clientCgroup, opts.ctlb, opts.refuseWithoutRetval ?? false);
  if (opts.tc) await attachTc(run, pinDir, topo);
  if (opts.ctlb === 'off' && !opts.tc) throw new Error('traffic bed: neither connect-time nor TC programs attached');

  // The real writer (src/dataplane) over the run's pinned maps: churn and flow-cleanup tests
  // exercise its update order and its UDP flow removal, not a test double.
  const pinned = openPinnedTables(loadNative(), pinDir);
  run.cleanup.add('pinned service tables', () => pinned.close());
  const pinned6 = openPinnedTables(loadNative(), pinDir, { family: 'IPv6' });
  run.cleanup.add('pinned IPv6 service tables', () => pinned6.close());
  const udpSocketSweep = opts.udpSocketSweep ? await loadUdpSocketSweep(run, pinDir, clientPod.ns) : undefined;
  const tableWriter = new ServiceTableWriter({ tables: pinned.tables, tables6: pinned6.tables, udpSocketSweep });
  const writer: ServiceWriter = {
    apply(desired) {
      const res = tableWriter.apply(desired);
      if (res.errors.length > 0) throw new Error(`service-table writer: ${res.errors.map((e) => e.message).join('; ')}`);
    },
  };
  const client = await TrafficClient.start(run, clientPod.ns, clientCgroup);

  const pod = (name: string): Attachment => {
    const p = topo.pods.find((x) => x.name === name);
    if (!p) throw new Error(`traffic bed: no pod named ${name} (have ${topo.pods.map((x) => x.name).join(', ')})`);
    return p;
  };
  const startBackends = async (pods: string[], port: number, host?: string) => {
    const servers = new Map<string, EchoServer>();
    for (const name of pods) {
      servers.set(name, await startEchoServer(run, { name, ns: pod(name).ns, tcp: [port], udp: [port], ...(host ? { host } : {}) }));
    }
    return servers;
  };
  return { run, topo, client, clientPod, pod, writer, pinDir, sweepsUdpSockets: udpSocketSweep !== undefined, startBackends };
}

/** A ready, serving, local endpoint of pod `p` on `port` (its IPv6 address with `family` IPv6). */
export function backendOf(p: Attachment, port: number, family: 'IPv4' | 'IPv6' = 'IPv4'): Backend {
  const ip = family === 'IPv6' ? p.ip6 : p.ip;
  if (!ip) throw new Error(`traffic bed: pod ${p.name} has no ${family} address (BedOptions.ipv6)`);
  return { ip, port, nodeName: 'node', zone: null, local: true, ready: true, serving: true, terminating: false };
}

export interface ServiceSpec {
  name: string;
  /** Default IPv4 (the family of vip and the backends). */
  family?: 'IPv4' | 'IPv6';
  vip: string;
  port: number;
  protocol: L4Protocol;
  backends: Backend[];
  affinityTimeoutSec?: number;
}

/** A ClusterIP service port as the model would compute it. */
export function clusterIpService(spec: ServiceSpec): DesiredServicePort {
  return {
    key: `default/${spec.name}:/${spec.protocol}/${spec.family ?? 'IPv4'}`,
    namespace: 'default',
    name: spec.name,
    portName: '',
    protocol: spec.protocol,
    family: spec.family ?? 'IPv4',
    frontends: [{ kind: 'ClusterIP', ip: spec.vip, port: spec.port }],
    clusterBackends: BackendList.of([...spec.backends].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port))),
    localBackends: BackendList.EMPTY,
    internalLocal: false,
    externalLocal: false,
    affinityTimeoutSec: spec.affinityTimeoutSec ?? 0,
    healthCheckNodePort: 0,
    loadBalancerSourceRanges: [],
  };
}

export function desiredState(...services: DesiredServicePort[]): DesiredState {
  return { services: new Map(services.map((s) => [s.key, s])) };
}
