#!/usr/bin/env node
// Test bed download client (plain JS: runs inside a namespace without a TypeScript loader), for
// the echo server's --bulk port. Asks for BYTES bytes, CHUNK at a time every INTERVAL ms, reads
// the server's header line ({pod, peer, bytes, sha256}) and the bytes that follow, and checks
// them: their count and their SHA-256 against what the server said it sent.
// Prints one JSON line per event:
//   {"event":"header","pod":"web-b0","seenPeer":{...},"bytes":N}          the download started
//   {"event":"progress","received":N}                                    about every 64 KiB
//   {"event":"done","ok":true,"pod":...,"seenPeer":...,"bytes":N,"received":N,"sha256":"…",
//    "receivedSha256":"…","local":{...},"peername":{...},"ms":123.4}
//   ({"ok":false,"error":{code,message}} on a reset, a short read, a bad hash or IDLE ms of silence)
// A line "fast" on stdin is passed to the server: it stops pausing between chunks.
// Usage: echo-download.mjs --host IP --port PORT --bytes N [--chunk C] [--interval MS] [--idle MS] [--local-port P]
// Exits 0 once the download ended (failed or not), 2 on bad usage.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { argv, exit, stderr, stdin, stdout } from 'node:process';
import { createInterface } from 'node:readline';
import { clearTimeout, setTimeout } from 'node:timers';

function usage(msg) {
  stderr.write(`echo-download: ${msg}\nusage: echo-download.mjs --host IP --port PORT --bytes N [--chunk C] [--interval MS] [--idle MS] [--local-port P]\n`);
  exit(2);
}

const opts = { host: '', port: 0, bytes: -1, chunk: 64 * 1024, interval: 0, idle: 10_000, localPort: 0 };
const args = argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = args[++i];
  if (value === undefined) usage(`${flag} needs a value`);
  const n = Number(value);
  if (flag === '--host') opts.host = value;
  else if (flag === '--port') opts.port = n;
  else if (flag === '--bytes') opts.bytes = n;
  else if (flag === '--chunk') opts.chunk = n;
  else if (flag === '--interval') opts.interval = n;
  else if (flag === '--idle') opts.idle = n;
  else if (flag === '--local-port') opts.localPort = n;
  else usage(`unknown flag ${flag}`);
}
if (!opts.host) usage('--host is required');
if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) usage('--port: not a port');
if (!Number.isInteger(opts.bytes) || opts.bytes < 0) usage('--bytes: not a byte count');
if (!Number.isInteger(opts.chunk) || opts.chunk < 1) usage('--chunk: not a positive integer');
if (!(opts.interval >= 0) || !(opts.idle > 0)) usage('--interval/--idle: not a number of ms');
if (!Number.isInteger(opts.localPort) || opts.localPort < 0 || opts.localPort > 65535) usage('--local-port: not a port');

const print = (o) => stdout.write(JSON.stringify(o) + '\n');
const addr = (address, port) => (address === undefined ? null : { address, port });
const start = performance.now();
const hash = createHash('sha256');
let header;
let buffered = Buffer.alloc(0);
let received = 0;
let reported = 0;
let done = false;

// A fixed source port: the flow's Maglev hash (client address, port, protocol) is then known.
const sock = connect({ host: opts.host, port: opts.port, ...(opts.localPort ? { localPort: opts.localPort } : {}) });
const finish = (result) => {
  if (done) return;
  done = true;
  clearTimeout(idleTimer);
  sock.destroy();
  print({ event: 'done', ...result, ms: Math.round((performance.now() - start) * 1000) / 1000 });
  exit(0);
};
let idleTimer;
const armIdle = () => {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => finish({ ok: false, received, error: { code: 'ETIMEDOUT', message: `nothing for ${opts.idle} ms` } }), opts.idle);
};
armIdle();

const take = (data) => {
  received += data.length;
  hash.update(data);
  if (received - reported >= 64 * 1024) {
    reported = received;
    print({ event: 'progress', received });
  }
};

sock.on('connect', () => sock.write(JSON.stringify({ bytes: opts.bytes, chunk: opts.chunk, intervalMs: opts.interval }) + '\n'));
sock.on('data', (chunk) => {
  armIdle();
  if (header) return take(chunk);
  buffered = Buffer.concat([buffered, chunk]);
  const nl = buffered.indexOf(0x0a);
  if (nl < 0) return;
  try {
    header = JSON.parse(buffered.subarray(0, nl).toString('utf8'));
  } catch {
    return finish({ ok: false, received, error: { code: 'EBADREPLY', message: 'unparsable header' } });
  }
  if (header.error) return finish({ ok: false, received, error: { code: 'EBADREQUEST', message: header.error } });
  print({ event: 'header', pod: header.pod, seenPeer: header.peer, bytes: header.bytes });
  take(buffered.subarray(nl + 1));
});
sock.on('end', () => {
  if (!header) return finish({ ok: false, received, error: { code: 'ECONNRESET', message: 'closed before the header' } });
  const receivedSha256 = hash.digest('hex');
  const ok = received === header.bytes && receivedSha256 === header.sha256;
  finish({
    ok, pod: header.pod, seenPeer: header.peer, bytes: header.bytes, received, sha256: header.sha256, receivedSha256,
    local: addr(sock.localAddress, sock.localPort), peername: addr(sock.remoteAddress, sock.remotePort),
    ...(ok ? {} : { error: { code: 'EBADDATA', message: `received ${received} of ${header.bytes} bytes, hash ${receivedSha256 === header.sha256 ? 'equal' : 'differs'}` } }),
  });
});
sock.on('error', (err) => finish({ ok: false, received, error: { code: err.code ?? 'EUNKNOWN', message: err.message } }));
sock.on('close', () => finish({ ok: false, received, error: { code: 'ECONNRESET', message: 'closed before the end' } }));
createInterface({ input: stdin }).on('line', (line) => {
  if (line === 'fast' && !sock.destroyed) sock.write('fast\n');
});
