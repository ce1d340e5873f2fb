import t from 'tap';
import { backoffDelay, sleep } from '../../src/k8s/backoff.js';
import { describeError, httpStatusOf, redactSecrets, summarizeError } from '../../src/k8s/errors.js';

t.test('backoff doubles from the initial delay up to the cap; jitter only shortens', async (t) => {
  const opts = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  const noJitter = () => 0;
  t.same([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, opts, noJitter)), [100, 200, 400, 800, 1000, 1000]);
  t.equal(backoffDelay(3, opts, () => 1), 200, 'full jitter halves it at most');
  t.equal(backoffDelay(3, opts, () => 0.5), 300);
  t.equal(backoffDelay(10_000, opts, noJitter), 1000, 'a long outage stays at the cap, never Infinity');
  t.equal(backoffDelay(0, opts, noJitter), 100);
});

t.test('sleep ends early when aborted', async (t) => {
  const abort = new AbortController();
  const t0 = performance.now();
  const done = sleep(10_000, abort.signal);
  abort.abort();
  await done;
  t.ok(performance.now() - t0 < 1000);
  await sleep(10_000, abort.signal); // already aborted: returns at once
});

t.test('errors are summarized from a Kubernetes Status without headers or secrets', async (t) => {
  const apiException = Object.assign(
    new Error('HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: "{...}"\nHeaders: {"www-authenticate":"Bearer realm=x"}'),
    { code: 403, body: JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'nodes is forbidden: User "x" cannot list' }) },
  );
  t.same(summarizeError(apiException), { status: 403, reason: 'Forbidden', message: 'nodes is forbidden: User "x" cannot list' });
  t.equal(describeError(apiException), '403 Forbidden: nodes is forbidden: User "x" cannot list');
  const unauthorized = Object.assign(new Error('HTTP-Code: 401\nMessage: Unauthorized\nBody: undefined\nHeaders: {}'), { code: 401 });
  t.equal(describeError(unauthorized), '401: Unauthorized', 'only the Message line of an ApiException');
  const network = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
  t.equal(describeError(network), 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:6443');
  t.equal(httpStatusOf(Object.assign(new Error('Gone'), { statusCode: 410 })), 410, 'Watch errors carry statusCode');
  t.equal(httpStatusOf('text'), undefined);
  t.equal(describeError('plain string'), 'plain string');
  t.equal(summarizeError(new Error('x'.repeat(1000))).message.length, 301, 'long messages are cut');
});

t.test('anything that looks like a credential is masked', async (t) => {
  t.equal(redactSecrets('Authorization: Bearer abc.def-ghi'), 'Authorization: <redacted>');
  t.equal(redactSecrets('failed: bearer abc.def-ghi'), 'failed: bearer <redacted>');
  t.equal(redactSecrets('header basic dXNlcjpwYXNz end'), 'header basic <redacted> end');
  t.equal(redactSecrets('{"token":"s3cr3t","x":1}'), '{"token":"<redacted>","x":1}');
  t.equal(redactSecrets('url?token=abc&x=1'), 'url?token=<redacted>&x=1');
  t.equal(redactSecrets('client-key-data: LS0tLS1CRUdJTg=='), 'client-key-data: <redacted>');
  t.equal(redactSecrets('nothing secret here'), 'nothing secret here');
  t.notMatch(describeError(new Error('failed with Bearer fake-token-123')), 'fake-token-123');
});
