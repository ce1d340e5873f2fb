#!/usr/bin/env node
// Established TCP flows held open across an agent upgrade (plain JS: runs in a pod's namespace).
// Opens COUNT connections to HOST:PORT (the echo server greets with its pod name) — to each host
// of HOST when it is a comma-separated list (e.g. a dual-stack Service's two VIPs, one process,
// one pod) — prints {"ready":true,"pods":[...],"hosts":[...]} (per flow), then every INTERVAL ms
// sends a line on each and expects its echo within 2 s. On a "stop" line on stdin prints
// {"rounds":N,"answered":N,"failures":[...],"pods":[...],"open":N} and exits.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { argv, exit, stdin, stdout } from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

const [hostList, portText, countText, intervalText] = argv.slice(2);
const hosts = hostList.split(',');
const port = Number(portText);
const count = Number(countText);
const interval = Number(intervalText);
const failures = [];
let rounds = 0;
let answered = 0;

function open(i, host) {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const flow = { i, host, sock, pod: undefined, buffered: '', waiting: undefined, closed: false };
    const timer = setTimeout(() => reject(new Error(`flow ${i}: no greeting`)), 3000);
    sock.on('data', (chunk) => {
      flow.buffered += chunk.toString('utf8');
      let nl;
      while ((nl = flow.buffered.indexOf('\n')) >= 0) {
        const msg = JSON.parse(flow.buffered.slice(0, nl));
        flow.buffered = flow.buffered.slice(nl + 1);
        if (flow.pod === undefined) {
          flow.pod = msg.pod;
          clearTimeout(timer);
          resolve(flow);
        } else if (flow.waiting) {
          flow.waiting(msg);
        }
      }
    });
    sock.on('error', (e) => {
      flow.closed = true;
      failures.push({ flow: i, host, error: e.code ?? e.message, at: Date.now() });
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => { flow.closed = true; });
  });
}

function ping(flow, n) {
  return new Promise((resolve) => {
    if (flow.closed) {
      failures.push({ flow: flow.i, host: flow.host, error: 'closed', round: n });
      return resolve();
    }
    const timer = setTimeout(() => {
      flow.waiting = undefined;
      failures.push({ flow: flow.i, host: flow.host, error: 'no echo within 2 s', round: n });
      resolve();
    }, 2000);
    flow.waiting = (msg) => {
      clearTimeout(timer);
      flow.waiting = undefined;
      if (msg.echo === `ping ${n}` && msg.pod === flow.pod) answered++;
      else failures.push({ flow: flow.i, host: flow.host, error: `unexpected answer ${JSON.stringify(msg)}`, round: n });
      resolve();
    };
    flow.sock.write(`ping ${n}\n`);
  });
}

const flows = [];
for (const host of hosts) for (let i = 0; i < count; i++) flows.push(await open(flows.length, host));
stdout.write(JSON.stringify({ ready: true, pods: flows.map((f) => f.pod), hosts: flows.map((f) => f.host) }) + '\n');
let stopping = false;
const loop = (async () => {
  while (!stopping) {
    rounds++;
    await Promise.all(flows.map((f) => ping(f, rounds)));
    await new Promise((r) => setTimeout(r, interval));
  }
})();
createInterface({ input: stdin }).on('line', async (line) => {
  if (line.trim() !== 'stop') return;
  stopping = true;
  await loop;
  stdout.write(JSON.stringify({ rounds, answered, failures, pods: flows.map((f) => f.pod), open: flows.filter((f) => !f.closed).length }) + '\n');
  for (const f of flows) f.sock.end();
  exit(0);
});
