// The client "pod" process of the traffic tests, run inside the client's network namespace and
// test cgroup (so the connect-time programs see its sockets). It takes commands on stdin, one
// JSON object per line, and answers each with one JSON line on stdout carrying the same `id`.
// The backends run src/testbed/echo-server.mjs.
//
//   {"id":1,"op":"tcp","host":VIP,"port":P,"count":N,"timeoutMs":T}
//     N sequential connections; each result: ok, backend, peer (the source address the backend
//     saw), remote (getpeername() on the client), code (errno name on failure), ms.
//   {"id":2,"op":"udp","host":VIP,"port":P,"count":N,"timeoutMs":T,"connected":bool,"socket":S}
//     N datagrams, each awaiting its reply; results add `from` (recvfrom()'s source). A named
//     socket S lives on across commands (a long UDP flow); without one a socket per command.
//   {"id":3,"op":"udp-close","socket":S}
//   {"id":4,"op":"loop","loop":L,"proto":"tcp"|"udp","host":VIP,"port":P,"timeoutMs":T,"workers":W,
//    "gapMs":G}
//     starts W workers opening new flows (a fresh socket each), G ms apart, until "stop".
//   {"id":5,"op":"stop","loop":L}  -> attempts, failures, failSamples, backends (name -> count)
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';

const reply = (id, body) => process.stdout.write(JSON.stringify({ id, ...body }) + '\n');
const now = () => performance.now();

/** The echo server's answer (src/testbed/echo-server.mjs): {pod, peer: {address, port}, echo}. */
function parseAnswer(line) {
  const msg = JSON.parse(line);
  if (typeof msg.pod !== 'string' || typeof msg.peer?.address !== 'string') throw new Error(`bad answer ${line}`);
  return { backend: msg.pod, peer: `${msg.peer.address}:${msg.peer.port}`, req: msg.echo };
}

/** One TCP connection: connect, read the backend's greeting line, close. */
function tcpOnce(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const start = now();
    let data = '';
    let remote;
    let done = false;
    const sock = connect({ host, port });
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...result, remote, ms: Math.round((now() - start) * 1000) / 1000 });
    };
    const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT' }), timeoutMs);
    sock.on('connect', () => {
      remote = `${sock.remoteAddress}:${sock.remotePort}`;
    });
    sock.on('data', (d) => {
      data += d;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      try {
        const a = parseAnswer(data.slice(0, nl));
        finish({ ok: true, backend: a.backend, peer: a.peer });
      } catch (err) {
        finish({ ok: false, code: 'EBADANSWER', message: err.message });
      }
    });
    sock.on('end', () => finish({ ok: false, code: 'EEOF', message: `closed after ${JSON.stringify(data)}` }));
    sock.on('error', (err) => finish({ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message }));
  });
}

let udpSeq = 0;

/** A UDP socket that pairs each reply with its request by the payload the backend echoes. */
class UdpFlow {
  /** host: the first destination; an IPv6 one (or IPv4-mapped) makes an IPv6 socket. */
  constructor(host) {
    this.sock = createSocket(typeof host === 'string' && host.includes(':') ? 'udp6' : 'udp4');
    this.waiters = new Map();
    this.sock.on('message', (msg, rinfo) => {
      let a;
      try {
        a = parseAnswer(msg.toString().split('\n')[0] ?? '');
      } catch {
        return;
      }
      this.waiters.get(a.req)?.({ ok: true, backend: a.backend, peer: a.peer, from: `${rinfo.address}:${rinfo.port}` });
    });
    // Asynchronous socket errors (ICMP unreachable on a connected socket, a destroyed socket)
    // fail whatever is outstanding.
    this.sock.on('error', (err) => {
      for (const w of this.waiters.values()) w({ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message });
    });
  }

  connect(host, port) {
    return new Promise((resolve) => {
      this.sock.connect(port, host, (err) => resolve(err));
    });
  }

  remote() {
    try {
      const r = this.sock.remoteAddress();
      return `${r.address}:${r.port}`;
    } catch {
      return undefined;
    }
  }

  /** One datagram and its reply. host/port undefined on a connected socket. */
  exchange(host, port, timeoutMs) {
    const req = `q${process.pid}-${++udpSeq}`;
    const start = now();
    return new Promise((resolve) => {
      const finish = (result) => {
        if (!this.waiters.has(req)) return;
        this.waiters.delete(req);
        clearTimeout(timer);
        resolve({ ...result, remote: this.remote(), ms: Math.round((now() - start) * 1000) / 1000 });
      };
      this.waiters.set(req, finish);
      const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT' }), timeoutMs);
      const sent = (err) => {
        if (err) finish({ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message });
      };
      try {
        if (host === undefined) this.sock.send(req, sent);
        else this.sock.send(req, port, host, sent);
      } catch (err) {
        finish({ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message });
      }
    });
  }

  close() {
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }
}

/** A fresh UDP flow: (connect,) one exchange, close. */
async function udpOnce(host, port, timeoutMs, connected) {
  const flow = new UdpFlow(host);
  try {
    if (connected) {
      const start = now();
      const err = await flow.connect(host, port);
      if (err) return { ok: false, code: err.code ?? 'EUNKNOWN', message: err.message, ms: now() - start };
      return await flow.exchange(undefined, undefined, timeoutMs);
    }
    return await flow.exchange(host, port, timeoutMs);
  } finally {
    flow.close();
  }
}

const namedFlows = new Map();
const loops = new Map();

async function udpCommand(cmd) {
  let flow = cmd.socket === undefined ? undefined : namedFlows.get(cmd.socket);
  const ephemeral = cmd.socket === undefined;
  const results = [];
  if (!flow) {
    flow = new UdpFlow(cmd.host);
    if (!ephemeral) namedFlows.set(cmd.socket, flow);
    if (cmd.connected) {
      const start = now();
      const err = await flow.connect(cmd.host, cmd.port);
      if (err) {
        flow.close();
        namedFlows.delete(cmd.socket);
        return [{ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message, ms: now() - start }];
      }
    }
  }
  const connected = flow.remote() !== undefined;
  for (let i = 0; i < cmd.count; i++) {
    results.push(await flow.exchange(connected ? undefined : cmd.host, connected ? undefined : cmd.port, cmd.timeoutMs));
  }
  if (ephemeral) flow.close();
  return results;
}

function startLoop(cmd) {
  const stats = { attempts: 0, failures: 0, failSamples: [], backends: {} };
  const state = { stopped: false, stats, workers: [] };
  const once = cmd.proto === 'udp'
    ? () => udpOnce(cmd.host, cmd.port, cmd.timeoutMs, Boolean(cmd.connected))
    : () => tcpOnce(cmd.host, cmd.port, cmd.timeoutMs);
  for (let w = 0; w < (cmd.workers ?? 1); w++) {
    state.workers.push((async () => {
      while (!state.stopped) {
        const r = await once();
        if (cmd.gapMs) await new Promise((resolve) => setTimeout(resolve, cmd.gapMs));
        stats.attempts++;
        if (r.ok) {
          stats.backends[r.backend] = (stats.backends[r.backend] ?? 0) + 1;
        } else {
          stats.failures++;
          if (stats.failSamples.length < 10) stats.failSamples.push(r);
        }
      }
    })());
  }
  loops.set(cmd.loop, state);
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'tcp': {
      const results = [];
      for (let i = 0; i < cmd.count; i++) results.push(await tcpOnce(cmd.host, cmd.port, cmd.timeoutMs));
      return { results };
    }
    case 'udp':
      return { results: await udpCommand(cmd) };
    case 'udp-close':
      namedFlows.get(cmd.socket)?.close();
      namedFlows.delete(cmd.socket);
      return {};
    case 'loop':
      if (loops.has(cmd.loop)) throw new Error(`loop ${cmd.loop} already running`);
      startLoop(cmd);
      return {};
    case 'stop': {
      const state = loops.get(cmd.loop);
      if (!state) throw new Error(`no loop ${cmd.loop}`);
      state.stopped = true;
      await Promise.all(state.workers);
      loops.delete(cmd.loop);
      return state.stats;
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    reply(null, { error: `not JSON: ${line}` });
    return;
  }
  handle(cmd).then(
    (body) => reply(cmd.id, body),
    (err) => reply(cmd.id, { error: err.message }),
  );
});
rl.on('close', () => process.exit(0));
console.log(JSON.stringify({ id: 0, ready: true }));
