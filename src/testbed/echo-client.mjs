#!/usr/bin/env node
// Test bed echo client (plain JS: runs inside a namespace without a TypeScript loader).
// Makes COUNT sequential attempts (a fresh socket each, so a fresh source port) against
// HOST:PORT and prints one JSON line per attempt:
//   {"i":0,"proto":"tcp","ok":true,"pod":"pod1","seenPeer":{...},"local":{...},
//    "peername":{...},"recvfrom":{...},"ms":1.3}
//   {"i":1,"proto":"udp","ok":false,"error":{"code":"ETIMEDOUT","message":"..."},"ms":2000.1}
// pod/seenPeer are what the server reported (its name, the client address it saw); peername is
// getpeername() on our socket (null for unconnected UDP); recvfrom is where the reply came from.
// TCP waits for the server's greeting and its echo of MESSAGE (data went both ways).
// Usage: echo-client.mjs --proto tcp|udp --host IP --port PORT [--count N] [--connected]
//        [--timeout MS] [--message TEXT]
// Exits 0 once all attempts ran (failed attempts included), 2 on bad usage.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { argv, exit, stderr, stdout } from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

function usage(msg) {
  stderr.write(`echo-client: ${msg}\nusage: echo-client.mjs --proto tcp|udp --host IP --port PORT ` +
    '[--count N] [--connected] [--timeout MS] [--message TEXT]\n');
  exit(2);
}

const opts = { proto: '', host: '', port: 0, count: 1, connected: false, timeout: 2000, message: 'hello' };
const args = argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  if (flag === '--connected') { opts.connected = true; continue; }
  const value = args[++i];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--proto') opts.proto = value;
  else if (flag === '--host') opts.host = value;
  else if (flag === '--port') opts.port = Number(value);
  else if (flag === '--count') opts.count = Number(value);
  else if (flag === '--timeout') opts.timeout = Number(value);
  else if (flag === '--message') opts.message = value;
  else usage(`unknown flag ${flag}`);
}
if (opts.proto !== 'tcp' && opts.proto !== 'udp') usage(`--proto: "${opts.proto}" is not tcp or udp`);
if (!opts.host) usage('--host is required');
if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) usage(`--port: not a port`);
if (!Number.isInteger(opts.count) || opts.count < 1) usage('--count: not a positive integer');
if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('--timeout: not a positive number');
if (opts.message.includes('\n')) usage('--message must be a single line');

const addr = (address, port) => (address === undefined ? null : { address, port });
const errorOf = (err) => ({ code: err.code ?? 'EUNKNOWN', message: err.message });

function parseReply(text) {
  const line = text.split('\n')[0];
  try {
    const r = JSON.parse(line);
    return { pod: r.pod, seenPeer: r.peer, echo: r.echo };
  } catch {
    throw Object.assign(new Error(`unparsable reply ${JSON.stringify(line)}`), { code: 'EBADREPLY' });
  }
}

function tcpAttempt() {
  return new Promise((resolve) => {
    const sock = connect({ host: opts.host, port: opts.port });
    let buffered = '';
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: { code: 'ETIMEDOUT', message: `no reply in ${opts.timeout} ms` } }),
      opts.timeout);
    sock.on('connect', () => sock.write(opts.message + '\n'));
    sock.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      // The server greets first, then echoes our line: wait for the echo (data went both ways).
      const lines = buffered.split('\n').slice(0, -1);
      if (lines.length < 2) return;
      try {
        const reply = parseReply(lines[1]);
        const peername = addr(sock.remoteAddress, sock.remotePort);
        finish({ ok: true, ...reply, local: addr(sock.localAddress, sock.localPort), peername, recvfrom: peername });
      } catch (err) {
        finish({ ok: false, error: errorOf(err) });
      }
    });
    sock.on('error', (err) => finish({ ok: false, error: errorOf(err) }));
    sock.on('close', () => finish({ ok: false, error: { code: 'ECONNRESET', message: 'closed before a reply' } }));
  });
}

function udpAttempt() {
  return new Promise((resolve) => {
    const sock = createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    let peername = null;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: { code: 'ETIMEDOUT', message: `no reply in ${opts.timeout} ms` } }),
      opts.timeout);
    sock.on('error', (err) => finish({ ok: false, error: errorOf(err) }));
    sock.on('message', (msg, rinfo) => {
      try {
        const reply = parseReply(msg.toString('utf8'));
        const a = sock.address();
        finish({ ok: true, ...reply, local: addr(a.address, a.port), peername, recvfrom: addr(rinfo.address, rinfo.port) });
      } catch (err) {
        finish({ ok: false, error: errorOf(err) });
      }
    });
    const send = (...target) => sock.send(opts.message, ...target, (err) => {
      if (err) finish({ ok: false, error: errorOf(err) });
    });
    if (opts.connected) {
      sock.connect(opts.port, opts.host, () => {
        try {
          const r = sock.remoteAddress();
          peername = addr(r.address, r.port);
        } catch (err) {
          return finish({ ok: false, error: errorOf(err) });
        }
        send();
      });
    } else {
      sock.bind(0, () => send(opts.port, opts.host));
    }
  });
}

for (let i = 0; i < opts.count; i++) {
  const start = performance.now();
  const result = await (opts.proto === 'tcp' ? tcpAttempt() : udpAttempt());
  const ms = Math.round((performance.now() - start) * 1000) / 1000;
  stdout.write(JSON.stringify({ i, proto: opts.proto, ...result, ms }) + '\n');
}
