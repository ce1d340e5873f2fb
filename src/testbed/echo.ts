// Starting the echo server and running the echo client (the .mjs scripts beside this file)
// inside a namespace, optionally inside a cgroup.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  host?: string;
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
  if (opts.host) args.push('--host', opts.host);
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
