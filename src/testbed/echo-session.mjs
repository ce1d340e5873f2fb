#!/usr/bin/env node
// Test bed echo session (plain JS: runs inside a namespace without a TypeScript loader): ONE
// connected UDP socket kept for the whole session, so a test can check what happens to a flow
// that lives across a change (a backend replaced: the next datagrams must reach the new one).
// Prints {"ready":true,"local":{...}} once connected; then, for each line read on stdin, sends
// the line as one datagram and prints one attempt record, like echo-client.mjs:
//   {"i":0,"proto":"udp","ok":true,"pod":"web-a1","seenPeer":{...},"echo":"…","local":{...},
//    "peername":{...},"recvfrom":{...},"ms":0.8}
//   {"i":1,"proto":"udp","ok":false,"error":{"code":"ETIMEDOUT",...},"ms":2000.1}
// A reply arriving after its attempt timed out is dropped, not given to the next attempt.
// Usage: echo-session.mjs --host IP --port PORT [--timeout MS]
// Exits 0 when stdin ends, 2 on bad usage.
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { argv, exit, stderr, stdin, stdout } from 'node:process';
import { createInterface } from 'node:readline';
import { clearTimeout, setTimeout } from 'node:timers';

function usage(msg) {
  stderr.write(`echo-session: ${msg}\nusage: echo-session.mjs --host IP --port PORT [--timeout MS]\n`);
  exit(2);
}

const opts = { host: '', port: 0, timeout: 2000 };
const args = argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = args[++i];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--host') opts.host = value;
  else if (flag === '--port') opts.port = Number(value);
  else if (flag === '--timeout') opts.timeout = Number(value);
  else usage(`unknown flag ${flag}`);
}
if (!opts.host) usage('--host is required');
if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) usage('--port: not a port');
if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage('--timeout: not a positive number');

const print = (o) => stdout.write(JSON.stringify(o) + '\n');
const addr = (a) => ({ address: a.address, port: a.port });
const sock = createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
let pending; // { i, start, timer, token }
let count = 0;

const settle = (result) => {
  const p = pending;
  if (!p) return;
  pending = undefined;
  clearTimeout(p.timer);
  print({ i: p.i, proto: 'udp', ...result, ms: Math.round((performance.now() - p.start) * 1000) / 1000 });
  next();
};

sock.on('message', (msg, rinfo) => {
  if (!pending) return; // late reply to an attempt that timed out
  let r;
  try {
    r = JSON.parse(msg.toString('utf8').split('\n')[0]);
  } catch {
    return settle({ ok: false, error: { code: 'EBADREPLY', message: 'unparsable reply' } });
  }
  if (r.echo !== pending.token) return; // a late reply to an earlier attempt
  settle({ ok: true, pod: r.pod, seenPeer: r.peer, echo: r.echo, local: addr(sock.address()), peername: addr(sock.remoteAddress()), recvfrom: { address: rinfo.address, port: rinfo.port } });
});
sock.on('error', (err) => settle({ ok: false, error: { code: err.code ?? 'EUNKNOWN', message: err.message } }));

const queue = [];
let ended = false;
function next() {
  if (pending) return;
  const line = queue.shift();
  if (line === undefined) {
    if (ended) {
      sock.close();
      exit(0);
    }
    return;
  }
  const i = count++;
  // Each datagram carries its attempt number, so a late reply is never mistaken for this one's.
  const token = `${i} ${line}`;
  pending = { i, start: performance.now(), token, timer: setTimeout(() => settle({ ok: false, error: { code: 'ETIMEDOUT', message: `no reply in ${opts.timeout} ms` } }), opts.timeout) };
  sock.send(token, (err) => {
    if (err) settle({ ok: false, error: { code: err.code ?? 'EUNKNOWN', message: err.message } });
  });
}

sock.connect(opts.port, opts.host, () => {
  print({ ready: true, local: addr(sock.address()), peername: addr(sock.remoteAddress()) });
  const lines = createInterface({ input: stdin });
  lines.on('line', (line) => {
    queue.push(line);
    next();
  });
  lines.on('close', () => {
    ended = true;
    next();
  });
});
