// The admin socket's place on disk. Only root may talk to the agent: the socket lives in a
// directory of its own (0700) and is itself 0600. A socket file left by a crashed agent is
// removed, but only after checking that nobody answers on it, and never anything that is not
// a socket.
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

export class SocketFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketFileError';
  }
}

/** Creates the socket's directory 0700 (or tightens our own existing one). */
export function prepareSocketDirectory(socketPath: string, logger?: Logger): void {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new SocketFileError(
      `admin socket path ${socketPath} is ${Buffer.byteLength(socketPath)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`,
    );
  }
  const dir = dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw new SocketFileError(`admin socket directory ${dir} is not a directory`);
  const uid = process.getuid?.() ?? 0;
  if ((st.mode & 0o077) === 0 && st.uid === uid) return;
  // A shared directory (/tmp, /run) must never be chmod'ed: ask for a dedicated one instead.
  if (st.mode & 0o1000 || st.uid !== uid) {
    throw new SocketFileError(
      `admin socket directory ${dir} is shared (mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}); ` +
        'give the socket a directory of its own, e.g. /run/sluice/admin.sock',
    );
  }
  chmodSync(dir, 0o700);
  logger?.warn({ dir, previousMode: (st.mode & 0o777).toString(8) }, 'tightened the admin socket directory to 0700');
}

/** Resolves true when something accepts a connection on the socket. */
export function socketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(answer);
    };
    // A listener that accepts but never finishes the handshake still counts as alive.
    const timer = setTimeout(() => done(true), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Removes a stale socket file; refuses when an agent still answers or the path is not a socket. */
export async function removeStaleSocket(socketPath: string, logger?: Logger): Promise<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new SocketFileError(`${socketPath} exists and is not a socket; refusing to replace it`);
  }
  if (await socketAnswers(socketPath)) {
    throw new SocketFileError(`another process is serving ${socketPath} (is another sluice-agent running?)`);
  }
  unlinkSync(socketPath);
  logger?.info({ socketPath }, 'removed a stale admin socket');
}
