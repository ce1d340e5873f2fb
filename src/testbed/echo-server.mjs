#!/usr/bin/env node
// Test bed echo server (plain JS: runs inside a namespace without a TypeScript loader).
// Every reply is one JSON line naming this server and the peer address it saw, so tests can
// check source-IP preservation and load-balancing spread.
//   TCP: on connect, sends {pod, proto, peer, local}; then answers each received line with the
//        same plus {echo: line}; the connection stays open until the client closes it.
//   UDP: answers each datagram with {pod, proto, peer, local, echo: payload}.
// Usage: echo-server.mjs --name NAME [--tcp PORT]... [--udp PORT]... [--host ADDR]
// Prints {"ready":true,...} on stdout once every socket listens; exits 0 on SIGTERM/SIGINT.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { argv, exit, stderr, stdout } from 'node:process';

function usage(msg) {
  stderr.write(`echo-server: ${msg}\nusage: echo-server.mjs --name NAME [--tcp PORT]... [--udp PORT]... [--host ADDR]\n`);
  exit(2);
}

function parsePort(flag, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) usage(`${flag}: "${v}" is not a port (1-65535)`);
  return n;
}

const opts = { name: '', host: '0.0.0.0', tcp: [], udp: [] };
const args = argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = args[++i];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--name') opts.name = value;
  else if (flag === '--host') opts.host = value;
  else if (flag === '--tcp') opts.tcp.push(parsePort(flag, value));
  else if (flag === '--udp') opts.udp.push(parsePort(flag, value));
  else usage(`unknown flag ${flag}`);
}
if (!opts.name) usage('--name is required');
if (opts.tcp.length + opts.udp.length === 0) usage('give at least one --tcp or --udp port');

const reply = (proto, peer, local, extra) =>
  JSON.stringify({ pod: opts.name, proto, peer, local, ...extra }) + '\n';

function listenTcp(port) {
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
    server.listen({ port, host: opts.host }, () => resolve(server));
  });
}

function listenUdp(port) {
  return new Promise((resolve, reject) => {
    const sock = createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (msg, rinfo) => {
      const local = { address: sock.address().address, port };
      sock.send(reply('udp', { address: rinfo.address, port: rinfo.port }, local, { echo: msg.toString('utf8') }),
        rinfo.port, rinfo.address);
    });
    sock.once('error', reject);
    sock.bind(port, opts.host, () => resolve(sock));
  });
}

try {
  await Promise.all([...opts.tcp.map(listenTcp), ...opts.udp.map(listenUdp)]);
} catch (err) {
  stderr.write(`echo-server ${opts.name}: ${err.code ?? ''} ${err.message}\n`);
  exit(1);
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => exit(0));
stdout.write(JSON.stringify({ ready: true, pod: opts.name, host: opts.host, tcp: opts.tcp, udp: opts.udp }) + '\n');
