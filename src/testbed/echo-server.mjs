#!/usr/bin/env node
// Test bed echo server (plain JS: runs inside a namespace without a TypeScript loader).
// Every reply is one JSON line naming this server and the peer address it saw, so tests can
// check source-IP preservation and load-balancing spread.
//   TCP: on connect, sends {pod, proto, peer, local}; then answers each received line with the
//        same plus {echo: line}; the connection stays open until the client closes it.
//   UDP: answers each datagram with {pod, proto, peer, local, echo: payload}.
//   bulk (TCP): a download. The client sends one request line {"bytes":N,"chunk":C,"intervalMs":I};
//        the server answers {pod, proto:"bulk", peer, local, bytes, sha256} (the SHA-256 of the N
//        random bytes to come), then the bytes, C at a time (default 64 KiB) every I ms (default
//        0: as fast as the socket takes them), then closes. A later line "fast" from the client
//        drops the pause (the test decides when a slow download may finish).
// --host may be given more than once (e.g. 0.0.0.0 and ::): every port listens on each address,
// an IPv6 one then IPv6-only, so an IPv4 peer is reported as itself, not as ::ffff:a.b.c.d.
// Usage: echo-server.mjs --name NAME [--tcp PORT]... [--udp PORT]... [--bulk PORT]... [--host ADDR]...
// Prints {"ready":true,...} on stdout once every socket listens; exits 0 on SIGTERM/SIGINT.
import { createSocket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { argv, exit, stderr, stdout } from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

function usage(msg) {
  stderr.write(`echo-server: ${msg}\nusage: echo-server.mjs --name NAME [--tcp PORT]... [--udp PORT]... [--bulk PORT]... [--host ADDR]...\n`);
  exit(2);
}

function parsePort(flag, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) usage(`${flag}: "${v}" is not a port (1-65535)`);
  return n;
}

const opts = { name: '', hosts: [], tcp: [], udp: [], bulk: [] };
const args = argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = args[++i];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--name') opts.name = value;
  else if (flag === '--host') opts.hosts.push(value);
  else if (flag === '--tcp') opts.tcp.push(parsePort(flag, value));
  else if (flag === '--udp') opts.udp.push(parsePort(flag, value));
  else if (flag === '--bulk') opts.bulk.push(parsePort(flag, value));
  else usage(`unknown flag ${flag}`);
}
if (!opts.name) usage('--name is required');
if (opts.tcp.length + opts.udp.length + opts.bulk.length === 0) usage('give at least one --tcp, --udp or --bulk port');
if (opts.hosts.length === 0) opts.hosts.push('0.0.0.0');
// Beside another address, an IPv6 one listens for IPv6 only (else '::' would take IPv4 too).
const ipv6Only = opts.hosts.length > 1;

const reply = (proto, peer, local, extra) =>
  JSON.stringify({ pod: opts.name, proto, peer, local, ...extra }) + '\n';

function listenTcp(port, host) {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      const peer = { address: sock.remoteAddress, port: sock.remotePort };
      const local = { address: sock.localAddress, port: sock.localPort };
      sock.on('error', () => sock.destroy());
      sock.write(reply('tcp', peer, local, {}));
      let buffered = '';
      sock.on('data', (chunk) => {
        buffered += chunk.toString('utf8');
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          sock.write(reply('tcp', peer, local, { echo: line }));
        }
      });
      sock.on('end', () => sock.end());
    });
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: ipv6Only && host.includes(':') }, () => resolve(server));
  });
}

const MAX_BULK = 256 * 1024 * 1024;

// One download on `sock`, as its request line asks.
function serveBulk(sock, request, peer, local) {
  const bytes = Number(request.bytes);
  const chunk = Number(request.chunk ?? 64 * 1024);
  let intervalMs = Number(request.intervalMs ?? 0);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_BULK || !Number.isInteger(chunk) || chunk < 1 || !(intervalMs >= 0)) {
    sock.end(JSON.stringify({ pod: opts.name, proto: 'bulk', error: `bad request ${JSON.stringify(request)}` }) + '\n');
    return { fast() {} };
  }
  const data = randomBytes(bytes);
  const sha256 = createHash('sha256').update(data).digest('hex');
  sock.write(reply('bulk', peer, local, { bytes, sha256 }));
  let off = 0;
  let timer;
  const next = () => {
    timer = undefined;
    while (off < bytes && !sock.destroyed) {
      const piece = data.subarray(off, Math.min(bytes, off + chunk));
      off += piece.length;
      const more = sock.write(piece);
      if (off >= bytes) break;
      if (intervalMs > 0) { timer = setTimeout(next, intervalMs); return; }
      if (!more) { sock.once('drain', next); return; }
    }
    if (off >= bytes) sock.end();
  };
  next();
  return {
    fast() {
      intervalMs = 0;
      if (timer) { clearTimeout(timer); next(); }
    },
  };
}

function listenBulk(port, host) {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      const peer = { address: sock.remoteAddress, port: sock.remotePort };
      const local = { address: sock.localAddress, port: sock.localPort };
      sock.on('error', () => sock.destroy());
      let buffered = '';
      let download;
      sock.on('data', (c) => {
        buffered += c.toString('utf8');
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (download) {
            if (line === 'fast') download.fast();
            continue;
          }
          let request;
          try {
            request = JSON.parse(line);
          } catch {
            request = {};
          }
          download = serveBulk(sock, request, peer, local);
        }
      });
    });
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: ipv6Only && host.includes(':') }, () => resolve(server));
  });
}

function listenUdp(port, host) {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: ipv6Only && host.includes(':') });
    sock.on('message', (msg, rinfo) => {
      const local = { address: sock.address().address, port };
      sock.send(reply('udp', { address: rinfo.address, port: rinfo.port }, local, { echo: msg.toString('utf8') }),
        rinfo.port, rinfo.address);
    });
    sock.once('error', reject);
    sock.bind(port, host, () => resolve(sock));
  });
}

try {
  await Promise.all(opts.hosts.flatMap((h) => [...opts.tcp.map((p) => listenTcp(p, h)), ...opts.udp.map((p) => listenUdp(p, h)),
    ...opts.bulk.map((p) => listenBulk(p, h))]));
} catch (err) {
  stderr.write(`echo-server ${opts.name}: ${err.code ?? ''} ${err.message}\n`);
  exit(1);
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => exit(0));
stdout.write(JSON.stringify({ ready: true, pod: opts.name, hosts: opts.hosts, tcp: opts.tcp, udp: opts.udp, bulk: opts.bulk }) + '\n');
