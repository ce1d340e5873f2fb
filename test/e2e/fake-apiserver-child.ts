// The fake API server (test/helpers/fake-apiserver.ts) as a child process, so it can run inside
// the sandbox's node network namespace: the agent under test runs there, and 127.0.0.1 in that
// namespace is the namespace's own loopback, not the test's. Started by FakeApiServerChild
// (api-control.ts) through netnsArgv + nodeArgv (tap's TypeScript loader).
//
// Protocol, one JSON object per line:
//   stdout, once:  {"ready":true,"kubeconfig":PATH,"url":URL,"token":T,"ca":PEM|null}
// Environment: SLUICE_FAKE_API_HOST=IP listens there instead of 127.0.0.1; SLUICE_FAKE_API_TLS=1
// serves HTTPS with a throwaway CA (its certificate names that IP).
//   stdin:         {"id":N,"method":M,"args":[...]}     M one of METHODS below
//   stdout:        {"id":N,"result":R}  or  {"id":N,"error":"message"}
// End of stdin closes the server (removing its kubeconfig directory) and exits 0.
import { createInterface } from 'node:readline';
import { FakeApiServer } from '../helpers/fake-apiserver.js';
import { makeTestTls } from '../helpers/test-tls.js';

/** The controls a test may call; anything else is refused. */
const METHODS = [
  'apply', 'delete', 'get', 'keys', 'dropWatches', 'stallWatches', 'forceGoneOnNextWatch', 'compactHistory',
  'endWatchesAtOnce', 'setResponseDelay', 'failNextLists', 'setBookmarkInterval', 'listCount', 'watchCount',
  'activeWatchCount',
] as const;
type Method = (typeof METHODS)[number];

const write = (msg: unknown) => process.stdout.write(JSON.stringify(msg) + '\n');

const host = process.env.SLUICE_FAKE_API_HOST || '127.0.0.1';
const tls = process.env.SLUICE_FAKE_API_TLS === '1' ? makeTestTls(host) : undefined;
const fake = await FakeApiServer.start({ bookmarkIntervalMs: 1000, host, ...(tls ? { tls } : {}) });
write({ ready: true, kubeconfig: fake.kubeconfigPath, url: fake.url, token: fake.token, ca: tls?.ca ?? null });

let closing: Promise<void> | undefined;
const close = () => {
  closing ??= fake.close().then(() => process.exit(0));
  return closing;
};
process.once('SIGTERM', () => void close());

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let id = -1;
  try {
    const req = JSON.parse(line) as { id: number; method: string; args?: unknown[] };
    id = req.id;
    if (!(METHODS as readonly string[]).includes(req.method)) throw new Error(`unknown method ${JSON.stringify(req.method)}`);
    const fn = fake[req.method as Method] as (...a: unknown[]) => unknown;
    const result = fn.apply(fake, req.args ?? []);
    write({ id, result: result === undefined ? null : result });
  } catch (err) {
    write({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
lines.on('close', () => void close());
