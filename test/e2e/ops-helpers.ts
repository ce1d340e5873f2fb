// Helpers for the operability e2e tests (ops-*.test.ts), on top of agent-bed.ts:
//  - sluicectl run raw (table or JSON, exit code and stderr kept), for the "agent down" and
//    table-versus-JSON checks;
//  - an independent reading of the pinned maps with bpftool (raw bytes decoded here from the
//    layouts in bpf/include/sluice.h), the oracle the admin views are compared with;
//  - scraping /metrics, /healthz and /readyz from inside the node namespace (the agent's
//    metrics address is 127.0.0.1 there, not in the test's namespace);
//  - a long-lived TCP connection from a pod, outside the connect-time cgroup (TC path).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { run as runCommand } from '../../src/testbed/exec.js';
import { netnsArgv, spawnInNetns } from '../../src/testbed/netns.js';
import type { AgentBed } from './agent-bed.js';
import { SLUICECTL_JS } from './agent-bed.js';

// ---- sluicectl ---------------------------------------------------------------------------------

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `sluicectl --socket S --pin-dir P ARGS` as the operator types it; never throws on exit codes. */
export async function ctlRaw(bed: AgentBed, args: string[]): Promise<CtlResult> {
  const r = await runCommand([process.execPath, SLUICECTL_JS, '--socket', bed.socket, '--pin-dir', bed.pinDir, ...args], {
    allowFailure: true, timeoutMs: 20_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Table and JSON output of one command (run side by side), both required to succeed. */
export async function ctlBoth<T>(bed: AgentBed, args: string[]): Promise<{ table: string; json: T; tableStderr: string; jsonStderr: string }> {
  const [t, j] = await Promise.all([ctlRaw(bed, args), ctlRaw(bed, [...args, '-o', 'json'])]);
  if (t.code !== 0) throw new Error(`sluicectl ${args.join(' ')} exited ${t.code}: ${t.stderr.trim()}`);
  if (j.code !== 0) throw new Error(`sluicectl ${args.join(' ')} -o json exited ${j.code}: ${j.stderr.trim()}`);
  return { table: t.stdout, json: JSON.parse(j.stdout) as T, tableStderr: t.stderr, jsonStderr: j.stderr };
}

/** `key: value` lines (sluicectl status, log-level, ct flush) as a record. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_.]+):(?: +(.*))?$/.exec(line);
    if (m?.[1]) out[m[1]] = m[2] ?? '';
  }
  return out;
}

/** How a table prints a JSON scalar (format-table.ts cellText). */
export function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

export const hostPort = (hp: { ip: string; port: number }): string => (hp.ip.includes(':') ? `[${hp.ip}]:${hp.port}` : `${hp.ip}:${hp.port}`);
export const flagList = (flags: readonly string[]): string => (flags.length ? flags.join(',') : '-');

/** sluicectl ARGS as user nobody (setpriv), for the permission checks. */
export async function ctlAsNobody(bed: AgentBed, args: string[]): Promise<CtlResult> {
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, SLUICECTL_JS,
    '--socket', bed.socket, '--pin-dir', bed.pinDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

// ---- the admin API over its Unix socket, spoken directly ----------------------------------------

/** One HTTP request on the admin socket; `body` is sent as is (so it can be malformed). */
export function adminHttp(socketPath: string, method: string, path: string, body?: string, contentType = 'application/json'):
  Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, method, path, timeout: 10_000,
      headers: body === undefined ? {} : { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`admin ${method} ${path}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes `bytes` (not HTTP) to the admin socket and returns everything it answers before closing. */
export function adminRaw(socketPath: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let text = '';
    const timer = setTimeout(() => sock.destroy(new Error('admin socket kept a malformed request open for 10 s')), 10_000);
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    sock.write(bytes);
  });
}

// ---- the pinned maps, read with bpftool -------------------------------------------------------

// Bit and code names from bpf/include/sluice.h (the oracle does not borrow the agent's tables).
export const SVC_FLAG_BITS: readonly [number, string][] = [
  [1, 'internal-local'], [2, 'external-local'], [4, 'affinity'], [8, 'external'], [16, 'source-ranges'], [32, 'dsr'], [64, 'maglev'],
];
export const BE_FLAG_BITS: readonly [number, string][] = [[1, 'local'], [2, 'terminating']];
export const CT_STATE_NAMES = ['NEW', 'SYN_SENT', 'ESTABLISHED', 'FIN', 'CLOSED'] as const;
export const CT_FORWARD = 1;
export const CT_REVERSE = 2;
export const DROP_REASON_NAMES = ['none', 'no_backend', 'no_local_backend', 'backend_missing', 'ct_full', 'csum', 'malformed', 'src_range', 'unknown_port', 'snat_ports', 'no_route', 'ttl', 'tunnel_source', 'tunnel_mtu'] as const;
export const PROTO_NAMES: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };
export const bitNames = (bits: number, names: readonly [number, string][]): string[] => names.filter(([b]) => bits & b).map(([, n]) => n);

interface BpftoolEntry {
  key: string[];
  value?: string[];
  values?: { cpu: number; value: string[] }[];
}

const bytes = (hex: string[]): Buffer => Buffer.from(hex.map((h) => parseInt(h, 16)));
const ipv4 = (b: Buffer, at: number): string => [0, 1, 2, 3].map((i) => b[at + i]).join('.');

/** Raw entries of a pinned map: key bytes and value bytes (per CPU for per-CPU maps). */
export async function bpftoolDump(path: string): Promise<{ key: Buffer; values: Buffer[] }[]> {
  const r = await runCommand(['bpftool', '-j', 'map', 'dump', 'pinned', path], { timeoutMs: 20_000 });
  const entries = JSON.parse(r.stdout) as BpftoolEntry[];
  return entries.map((e) => ({
    key: bytes(e.key),
    values: e.values ? e.values.sort((a, b) => a.cpu - b.cpu).map((v) => bytes(v.value)) : [bytes(e.value ?? [])],
  }));
}

/** `bpftool map show pinned`: the kernel's type and capacity of a pinned map. */
export async function bpftoolShow(path: string): Promise<{ id: number; type: string; name: string; max_entries: number }> {
  const r = await runCommand(['bpftool', '-j', 'map', 'show', 'pinned', path], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as { id: number; type: string; name: string; max_entries: number };
}

export interface RawFrontend {
  ip: string; port: number; proto: number; scope: number;
  svcId: number; backendId: number; count: number; localCount: number; flags: number; affinityTimeoutSec: number;
}
export interface RawBackend { backendId: number; ordinal: number; ip: string; port: number; flags: number; nodeIp: string }
export interface RawCt {
  saddr: string; daddr: string; sport: number; dport: number; proto: number;
  natAddr: string; natPort: number; type: number; state: number; natSaddr: string; svcId: number; flags: number;
  createdNs: bigint; lastSeenNs: bigint;
}
export interface RawAffinity { svcId: number; client: string; backendIp: string; backendPort: number; lastUsedNs: bigint }
export interface RawCounters { packets: number; bytes: number; connections: number; rejected: number }

/** Everything in the pinned maps, decoded independently of the agent's codecs. */
export interface RawMaps {
  /** sl_vips4: listed ClusterIP → flags. */
  vips: Map<string, number>;
  frontends: RawFrontend[];
  backends: RawBackend[];
  ct: RawCt[];
  affinity: RawAffinity[];
  /** svc_id → name (non-empty slots of sl_svc_meta). */
  names: Map<number, string>;
  /** svc_id → counters summed over CPUs (non-zero slots only). */
  counters: Map<number, RawCounters>;
  /** reason code → packets summed over CPUs. */
  drops: Map<number, number>;
  /** Entries per map, counted the way the admin view counts (arrays: non-zero slots among those read). */
  entryCounts: Record<string, number>;
}

/** The IPv6 twins sluicectl lists too (docs/ipv6.md): counted here, not decoded. */
const MAPS6 = ['sl_frontends6', 'sl_backends6', 'sl_ct6', 'sl_affinity6', 'sl_sock_revnat6', 'sl_vips6'] as const;
export const MAPS = [
  'sl_frontends4', 'sl_backends4', 'sl_ct4', 'sl_affinity4', 'sl_sock_revnat4', 'sl_svc_meta', 'sl_svc_counters', 'sl_drop_counters', 'sl_vips4', ...MAPS6,
] as const;
/** Hash maps are dumped whole; the 65536-slot arrays are looked up slot by slot (a dump is ~100 MB of JSON). */
const DUMPED = ['sl_frontends4', 'sl_backends4', 'sl_ct4', 'sl_affinity4', 'sl_sock_revnat4', 'sl_drop_counters', 'sl_vips4', ...MAPS6] as const;

const nonZero = (bs: Buffer[]): boolean => bs.some((b) => b.some((x) => x !== 0));

/** One slot of a pinned array map (u32 key), per CPU for per-CPU arrays. */
export async function bpftoolLookup(path: string, index: number): Promise<Buffer[]> {
  const key = [0, 8, 16, 24].map((shift) => String((index >>> shift) & 0xff));
  const r = await runCommand(['bpftool', '-j', 'map', 'lookup', 'pinned', path, 'key', ...key], { timeoutMs: 20_000 });
  const e = JSON.parse(r.stdout) as BpftoolEntry;
  return e.values ? e.values.sort((a, b) => a.cpu - b.cpu).map((v) => bytes(v.value)) : [bytes(e.value ?? [])];
}

/**
 * Everything in the pinned maps that these tests look at, decoded independently of the agent's
 * codecs. The array maps (names, counters) are read for svc ids 0 .. (highest id in use + 2),
 * so a stray slot just past the ids in use would show up too.
 */
export async function readRawMaps(pinDir: string): Promise<RawMaps> {
  const dumps = Object.fromEntries(await Promise.all(DUMPED.map(async (m) => [m, await bpftoolDump(join(pinDir, m))] as const))) as
    Record<(typeof DUMPED)[number], { key: Buffer; values: Buffer[] }[]>;
  const one = (e: { values: Buffer[] }): Buffer => e.values[0] ?? Buffer.alloc(0);
  const frontends = dumps.sl_frontends4.map((e) => {
    const v = one(e);
    return {
      ip: ipv4(e.key, 0), port: e.key.readUInt16BE(4), proto: e.key.readUInt8(6), scope: e.key.readUInt8(7),
      svcId: v.readUInt32LE(0), backendId: v.readUInt32LE(4), count: v.readUInt32LE(8), localCount: v.readUInt32LE(12),
      flags: v.readUInt32LE(16), affinityTimeoutSec: v.readUInt32LE(20),
    };
  });
  const backends = dumps.sl_backends4.map((e) => {
    const v = one(e);
    return {
      backendId: e.key.readUInt32LE(0), ordinal: e.key.readUInt32LE(4),
      ip: ipv4(v, 0), port: v.readUInt16BE(4), flags: v.readUInt8(6), nodeIp: ipv4(v, 8) === '0.0.0.0' ? '' : ipv4(v, 8),
    };
  });
  const ct = dumps.sl_ct4.map((e) => {
    const v = one(e);
    return {
      saddr: ipv4(e.key, 0), daddr: ipv4(e.key, 4), sport: e.key.readUInt16BE(8), dport: e.key.readUInt16BE(10), proto: e.key.readUInt8(12),
      createdNs: v.readBigUInt64LE(0), lastSeenNs: v.readBigUInt64LE(8), natAddr: ipv4(v, 16), natPort: v.readUInt16BE(20),
      type: v.readUInt8(22), state: v.readUInt8(23), natSaddr: ipv4(v, 24), svcId: v.readUInt32LE(28), flags: v.readUInt32LE(32),
    };
  });
  const affinity = dumps.sl_affinity4.map((e) => {
    const v = one(e);
    return { svcId: e.key.readUInt32LE(0), client: ipv4(e.key, 4), lastUsedNs: v.readBigUInt64LE(0), backendIp: ipv4(v, 8), backendPort: v.readUInt16BE(12) };
  });
  const maxId = Math.max(0, ...frontends.map((f) => f.svcId), ...ct.map((c) => c.svcId), ...affinity.map((a) => a.svcId));
  const ids = Array.from({ length: maxId + 3 }, (_, i) => i);
  const metaSlots = await Promise.all(ids.map((id) => bpftoolLookup(join(pinDir, 'sl_svc_meta'), id)));
  const counterSlots = await Promise.all(ids.map((id) => bpftoolLookup(join(pinDir, 'sl_svc_counters'), id)));
  const names = new Map<number, string>();
  metaSlots.forEach((slot, id) => {
    const v = slot[0] ?? Buffer.alloc(0);
    const end = v.indexOf(0);
    const name = v.subarray(0, end < 0 ? v.length : end).toString('utf8');
    if (name) names.set(id, name);
  });
  const counters = new Map<number, RawCounters>();
  counterSlots.forEach((slot, id) => {
    if (!nonZero(slot)) return;
    const sum = (at: number) => slot.reduce((a, b) => a + Number(b.readBigUInt64LE(at)), 0);
    counters.set(id, { packets: sum(0), bytes: sum(8), connections: sum(16), rejected: sum(24) });
  });
  const drops = new Map<number, number>();
  for (const e of dumps.sl_drop_counters) drops.set(e.key.readUInt32LE(0), e.values.reduce((a, b) => a + Number(b.readBigUInt64LE(0)), 0));
  const entryCounts: Record<string, number> = {
    sl_frontends4: frontends.length,
    sl_backends4: backends.length,
    sl_ct4: ct.length,
    sl_affinity4: affinity.length,
    sl_sock_revnat4: dumps.sl_sock_revnat4.length,
    sl_svc_meta: names.size,
    sl_svc_counters: counters.size,
    sl_drop_counters: dumps.sl_drop_counters.filter((e) => nonZero(e.values)).length,
    sl_vips4: dumps.sl_vips4.length,
    ...Object.fromEntries(MAPS6.map((m) => [m, dumps[m].length])),
  };
  const vips = new Map(dumps.sl_vips4.map((e) => [ipv4(e.key, 0), one(e).readUInt32LE(0)] as const));
  return { vips, frontends, backends, ct, affinity, names, counters, drops, entryCounts };
}

/** TC programs the kernel has on the interfaces of network namespace `ns` (bpftool net show). */
export async function kernelTcAttachments(ns: string): Promise<{ devname: string; direction: string; id: number; name: string }[]> {
  const r = await runCommand(netnsArgv(ns, ['bpftool', '-j', 'net', 'show']), { timeoutMs: 20_000 });
  const out = JSON.parse(r.stdout) as { tc?: { devname: string; kind: string; id: number; name: string }[] }[];
  return out.flatMap((o) => o.tc ?? []).map((a) => ({ devname: a.devname, direction: a.kind.replace(/^clsact\//, ''), id: a.id, name: a.name }));
}

/** Programs the kernel has attached to cgroup `path` (bpftool cgroup show). */
export async function kernelCgroupAttachments(path: string): Promise<{ id: number; attach_type: string; name: string }[]> {
  const r = await runCommand(['bpftool', '-j', 'cgroup', 'show', path], { timeoutMs: 20_000 });
  return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { id: number; attach_type: string; name: string }[]);
}

/** svc_id of a service-port key, from sl_svc_meta. */
export function svcIdOf(raw: RawMaps, key: string): number {
  for (const [id, name] of raw.names) if (name === key) return id;
  throw new Error(`no sl_svc_meta slot names ${key} (names: ${[...raw.names.values()].join(', ')})`);
}

// ---- metrics and health, scraped inside the node namespace ------------------------------------

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

const FETCH_SCRIPT = `
const urls = process.argv.slice(1);
Promise.all(urls.map(async (u) => {
  try {
    const r = await fetch(u, { signal: AbortSignal.timeout(8000) });
    return { status: r.status, contentType: r.headers.get('content-type') ?? '', body: await r.text() };
  } catch (e) {
    return { status: 0, contentType: '', body: String(e && e.cause && e.cause.code || e) };
  }
})).then((a) => process.stdout.write(JSON.stringify(a)));
`;

/**
 * GETs `paths` from http://ADDRESS in one child process inside network namespace `ns`; a
 * connection error is status 0 with the error code as body.
 */
export async function scrape(ns: string, address: string, paths: string[]): Promise<HttpAnswer[]> {
  const r = await runCommand(netnsArgv(ns, [process.execPath, '-e', FETCH_SCRIPT, ...paths.map((p) => `http://${address}${p}`)]), { timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as HttpAnswer[];
}

// ---- a held TCP connection (TC path) -----------------------------------------------------------

const HOLD_SCRIPT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let buf = '';
s.setEncoding('utf8');
s.on('connect', () => process.stdout.write(JSON.stringify({ connected: true, local: { address: s.localAddress, port: s.localPort } }) + '\\n'));
s.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) { process.stdout.write(buf.slice(0, nl) + '\\n'); buf = buf.slice(nl + 1); }
});
s.on('error', (e) => { process.stdout.write(JSON.stringify({ error: e.code || String(e) }) + '\\n'); process.exit(1); });
s.on('close', () => process.exit(0));
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => s.write(d));
process.stdin.on('end', () => s.end());
`;

export interface HeldConnection {
  child: ChildProcess;
  /** The client's own address and port. */
  local: { address: string; port: number };
  /** The echo server's greeting: which pod answered and the peer it saw. */
  greeting: { pod: string; peer: { address: string; port: number } };
  /** Sends one line and resolves with the server's echo of it. */
  echo(line: string): Promise<{ pod: string; echo: string }>;
  close(): Promise<void>;
}

/**
 * Opens a TCP connection from pod namespace `ns` to host:port and keeps it open. The process
 * stays in the test's cgroup (not the connect-time cgroup), so the connection goes through the
 * TC programs and gets conntrack entries. Killed at the run's cleanup if still open.
 */
export async function holdTcpConnection(bed: AgentBed, ns: string, host: string, port: number): Promise<HeldConnection> {
  const child = spawnInNetns(ns, [process.execPath, '-e', HOLD_SCRIPT, host, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  bed.run.own(child, `held TCP connection ${child.pid}`);
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ garbage: line });
    }
    for (const w of [...waiters]) w();
  });
  child.once('exit', () => { for (const w of [...waiters]) w(); });
  const next = (pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 5000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hit = lines.find(pred);
        const err = lines.find((l) => 'error' in l);
        if (hit) finish(() => resolve(hit));
        else if (err) finish(() => reject(new Error(`held connection to ${host}:${port}: ${String(err.error)}`)));
        else if (child.exitCode !== null || child.signalCode !== null) finish(() => reject(new Error(`held connection to ${host}:${port} exited before ${what}: ${stderr.trim()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`held connection to ${host}:${port}: no ${what} within ${timeoutMs} ms (${JSON.stringify(lines)})`))), timeoutMs);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        f();
      };
      waiters.add(check);
      check();
    });
  const connected = await next((l) => l.connected === true, 'connect');
  const greeting = await next((l) => typeof l.pod === 'string' && !('echo' in l), 'greeting');
  return {
    child,
    local: connected.local as HeldConnection['local'],
    greeting: greeting as unknown as HeldConnection['greeting'],
    async echo(line: string) {
      child.stdin!.write(line + '\n');
      return (await next((l) => l.echo === line, `echo of ${line}`)) as unknown as { pod: string; echo: string };
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/**
 * Polls `check` until it returns a value (not undefined/false), or throws after `timeoutMs`;
 * gives up at once when `fatal` names a reason (e.g. the agent exited).
 */
export async function poll<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 15_000, fatal?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const reason = fatal?.();
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}`);
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
