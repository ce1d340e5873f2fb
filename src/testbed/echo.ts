// Starting the echo server and running the echo client (the .mjs scripts beside this file)
// inside a namespace, optionally inside a cgroup.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupArgv, spawnInCgroup } from './cgroup.js';
import { run } from './exec.js';
import { netnsArgv, spawnInNetns } from './netns.js';
import { nodeArgv } from './node-child.js';
import { killAndWait } from './run.js';
import type { TestbedRun } from './run.js';

/** Path of a plain-JS script shipped in src/testbed (also found when running from dist/src/testbed). */
export function testbedScript(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [here, join(here, '..', '..', '..', 'src', 'testbed')]) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new Error(`testbed: script ${name} not found next to ${here} or in src/testbed`);
}

export interface Placement {
  /** Network namespace to run in. */
  ns: string;
  /** Cgroup (one of the run's) to run in; default: stay in the caller's cgroup. */
  cgroup?: string;
}

export interface EchoServerOptions extends Placement {
  name: string;
  tcp?: number[];
  udp?: number[];
  /** Download ports (echo-server.mjs --bulk; startDownload is their client). */
  bulk?: number[];
  /** Address(es) to listen on (default 0.0.0.0); several: each port on each, IPv6 ones IPv6-only. */
  host?: string | string[];
  /** How long to wait for it to listen (default 10 s; an emulated VM needs longer). */
  readyTimeoutMs?: number;
}

export interface EchoServer {
  child: ChildProcess;
  stop(): Promise<void>;
}

function waitForReady(child: ChildProcess, what: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(`not ready after ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`testbed: ${what} ${why}${err.trim() ? ': ' + err.trim() : ''}`));
    };
    child.stderr?.on('data', (c: Buffer) => { err += c.toString(); });
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('"ready":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, sig) => fail(`exited (${code ?? sig}) before it was ready`));
  });
}

/** Starts an echo server and waits until it listens. The run kills it at cleanup. */
export async function startEchoServer(run: TestbedRun, opts: EchoServerOptions): Promise<EchoServer> {
  const args = ['--name', opts.name];
  for (const p of opts.tcp ?? []) args.push('--tcp', String(p));
  for (const p of opts.udp ?? []) args.push('--udp', String(p));
  for (const p of opts.bulk ?? []) args.push('--bulk', String(p));
  for (const h of [opts.host ?? []].flat()) args.push('--host', h);
  const argv = nodeArgv(testbedScript('echo-server.mjs'), args);
  const child = opts.cgroup ? spawnInCgroup(opts.cgroup, argv, opts.ns) : spawnInNetns(opts.ns, argv);
  const release = run.cleanup.add(`echo server ${opts.name}`, () => killAndWait(child));
  await waitForReady(child, `echo server ${opts.name} in ${opts.ns}`, opts.readyTimeoutMs ?? 10_000);
  return { child, stop: release };
}

export interface EchoClientOptions extends Placement {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  count?: number;
  connected?: boolean;
  timeoutMs?: number;
  message?: string;
  /** Extra time for the client process itself to start (default 10 s; an emulated VM needs longer). */
  startupMs?: number;
}

export interface Endpoint {
  address: string;
  port: number;
}

export interface EchoAttempt {
  i: number;
  proto: 'tcp' | 'udp';
  ok: boolean;
  pod?: string;
  seenPeer?: Endpoint;
  echo?: string;
  local?: Endpoint | null;
  peername?: Endpoint | null;
  recvfrom?: Endpoint | null;
  error?: { code: string; message: string };
  ms: number;
}

/** Runs the echo client to completion and returns one record per attempt. */
export async function runEchoClient(opts: EchoClientOptions): Promise<EchoAttempt[]> {
  const args = ['--proto', opts.proto, '--host', opts.host, '--port', String(opts.port)];
  const count = opts.count ?? 1;
  const timeoutMs = opts.timeoutMs ?? 2000;
  args.push('--count', String(count), '--timeout', String(timeoutMs));
  if (opts.connected) args.push('--connected');
  if (opts.message !== undefined) args.push('--message', opts.message);
  const inner = nodeArgv(testbedScript('echo-client.mjs'), args);
  const argv = opts.cgroup ? cgroupArgv(opts.cgroup, inner, opts.ns) : netnsArgv(opts.ns, inner);
  const { stdout } = await run(argv, { timeoutMs: (opts.startupMs ?? 10_000) + count * (timeoutMs + 1000) });
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as EchoAttempt);
}

/** A line-oriented child (echo-download.mjs, echo-session.mjs): JSON lines out, commands in. */
function spawnLineChild(run: TestbedRun, placement: Placement, script: string, args: string[], what: string) {
  const argv = nodeArgv(testbedScript(script), args);
  const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe'];
  const child = placement.cgroup ? spawnInCgroup(placement.cgroup, argv, placement.ns, { stdio }) : spawnInNetns(placement.ns, argv, { stdio });
  const release = run.cleanup.add(what, () => killAndWait(child));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const waiters: { pred: (o: Record<string, unknown>) => boolean; resolve: (o: Record<string, unknown>) => void }[] = [];
  const lines: Record<string, unknown>[] = [];
  let exited = false;
  const failAll = () => {
    exited = true;
    for (const w of waiters.splice(0)) w.resolve({ exited: true, stderr: stderr.trim() });
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(o);
    const i = waiters.findIndex((w) => w.pred(o));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(o);
  });
  child.once('exit', failAll);
  /** The first line (from `from` on) matching pred; {exited: true, stderr} if the child ended without one. */
  const next = (pred: (o: Record<string, unknown>) => boolean, from = 0): Promise<Record<string, unknown>> => {
    const seen = lines.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    if (exited) return Promise.resolve({ exited: true, stderr: stderr.trim() });
    return new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  const send = (line: string) => { if (!exited) child.stdin?.write(line + '\n'); };
  return { child, release, lines, next, send };
}

export interface DownloadOptions extends Placement {
  host: string;
  port: number;
  bytes: number;
  /** Bytes per write on the server (default 64 KiB). */
  chunk?: number;
  /** Pause between the server's writes (default 0). */
  intervalMs?: number;
  /** The client gives up after this long without data (default 10 s). */
  idleMs?: number;
  /** The client's source port (default: the kernel's pick). */
  localPort?: number;
}

export interface DownloadResult {
  ok: boolean;
  pod?: string;
  seenPeer?: Endpoint;
  /** What the server said it sent, and what arrived (count and SHA-256). */
  bytes?: number;
  received: number;
  sha256?: string;
  receivedSha256?: string;
  local?: Endpoint | null;
  peername?: Endpoint | null;
  error?: { code: string; message: string };
  ms: number;
}

export interface Download {
  /** Resolves once the server's header arrived (the download runs); `pod` names the server. */
  started: Promise<{ pod?: string; seenPeer?: Endpoint; bytes?: number }>;
  /** Bytes received so far, as last reported (about every 64 KiB). */
  received(): number;
  /** Tells the server to stop pausing between writes. */
  fast(): void;
  result: Promise<DownloadResult>;
}

/**
 * Starts a download from an echo server's --bulk port (echo-download.mjs): the client checks
 * the byte count and the SHA-256 of what arrived against what the server sent.
 */
export function startDownload(run: TestbedRun, opts: DownloadOptions): Download {
  const args = ['--host', opts.host, '--port', String(opts.port), '--bytes', String(opts.bytes), '--chunk', String(opts.chunk ?? 64 * 1024),
    '--interval', String(opts.intervalMs ?? 0), '--idle', String(opts.idleMs ?? 10_000)];
  if (opts.localPort !== undefined) args.push('--local-port', String(opts.localPort));
  const c = spawnLineChild(run, opts, 'echo-download.mjs', args, `download from ${opts.host}:${opts.port}`);
  const failed = (o: Record<string, unknown>): DownloadResult => ({
    ok: false, received: 0, ms: 0, error: { code: 'EEXITED', message: `echo-download ended without a result: ${String(o.stderr ?? '')}` },
  });
  const result = c.next((o) => o.event === 'done').then((o) => (o.exited ? failed(o) : (o as unknown as DownloadResult)));
  void result.finally(() => c.release());
  return {
    started: c.next((o) => o.event === 'header' || o.event === 'done').then((o) => o as { pod?: string; seenPeer?: Endpoint; bytes?: number }),
    received: () => {
      const last = c.lines.filter((o) => typeof o.received === 'number').at(-1);
      return (last?.received as number | undefined) ?? 0;
    },
    fast: () => c.send('fast'),
    result,
  };
}

/** Runs a download to the end. */
export function runDownload(run: TestbedRun, opts: DownloadOptions): Promise<DownloadResult> {
  return startDownload(run, opts).result;
}

export interface UdpSessionOptions extends Placement {
  host: string;
  port: number;
  /** Per datagram (default 2 s). */
  timeoutMs?: number;
}

export interface UdpSession {
  /** The socket's own address (one socket for the whole session). */
  local: Endpoint;
  /** Sends one datagram on the session's socket and waits for its answer (or the timeout). */
  send(message?: string): Promise<EchoAttempt>;
  close(): Promise<void>;
}

/** Opens one connected UDP socket (echo-session.mjs) that every `send` reuses. */
export async function openUdpSession(run: TestbedRun, opts: UdpSessionOptions): Promise<UdpSession> {
  const c = spawnLineChild(run, opts, 'echo-session.mjs', ['--host', opts.host, '--port', String(opts.port), '--timeout', String(opts.timeoutMs ?? 2000)],
    `udp session to ${opts.host}:${opts.port}`);
  const ready = await c.next((o) => o.ready === true);
  if (ready.exited) throw new Error(`testbed: echo-session to ${opts.host}:${opts.port} ended: ${String(ready.stderr ?? '')}`);
  let sent = 0;
  return {
    local: ready.local as Endpoint,
    async send(message = 'hello') {
      if (message.includes('\n')) throw new Error('testbed: a session datagram is one line');
      const i = sent++;
      c.send(message);
      const o = await c.next((l) => l.i === i);
      if (o.exited) throw new Error(`testbed: echo-session to ${opts.host}:${opts.port} ended: ${String(o.stderr ?? '')}`);
      return o as unknown as EchoAttempt;
    },
    close: () => c.release(),
  };
}
