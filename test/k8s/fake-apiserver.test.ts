// The fake API server is itself test equipment: these checks pin down the protocol details the
// informer tests rely on, using plain HTTP rather than the client under test.
import t from 'tap';
import { matchesLabels, parseLabelSelector } from '../helpers/fake-label-selector.js';
import { startFakeApiServer } from '../helpers/fake-apiserver.js';
import type { FakeApiServer } from '../helpers/fake-apiserver.js';
import { service } from './fixtures.js';

t.test('label selectors: exists, not exists, equals, not equals, AND', async (t) => {
  const sel = parseLabelSelector('!service.kubernetes.io/service-proxy-name, app=web,tier!=db,env');
  t.ok(matchesLabels(sel, { app: 'web', env: 'prod' }));
  t.ok(matchesLabels(sel, { app: 'web', env: '', tier: 'fe' }));
  t.notOk(matchesLabels(sel, { app: 'web', env: 'prod', tier: 'db' }));
  t.notOk(matchesLabels(sel, { app: 'web' }), 'env must exist');
  t.notOk(matchesLabels(sel, { app: 'web', env: 'x', 'service.kubernetes.io/service-proxy-name': 'x' }));
  t.notOk(matchesLabels(sel, undefined));
  t.ok(matchesLabels(parseLabelSelector('a==b'), { a: 'b' }));
  t.ok(matchesLabels(parseLabelSelector(''), undefined), 'empty selects everything');
  t.throws(() => parseLabelSelector('a,,b'), /empty term/);
  t.throws(() => parseLabelSelector('env in (a,b)'), /not supported|invalid/);
  t.throws(() => parseLabelSelector('bad key!=x'), /invalid label key/);
});

async function get(fake: FakeApiServer, path: string, auth = true): Promise<{ status: number; body: string }> {
  const res = await fetch(`${fake.url}${path}`, { headers: auth ? { authorization: `Bearer ${fake.token}` } : {} });
  return { status: res.status, body: await res.text() };
}

/** Reads watch lines until `count` arrived or the stream ended. */
async function watchLines(fake: FakeApiServer, path: string, count: number, during?: () => void): Promise<{ type: string; object: { metadata?: { name?: string; resourceVersion?: string }; code?: number } }[]> {
  const abort = new AbortController();
  const res = await fetch(`${fake.url}${path}`, { headers: { authorization: `Bearer ${fake.token}` }, signal: abort.signal });
  during?.();
  const lines: string[] = [];
  let buffered = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk);
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts.filter(Boolean));
      if (lines.length >= count) break;
    }
  } finally {
    abort.abort();
  }
  return lines.map((l) => JSON.parse(l));
}

t.test('list, selector, auth, paging', async (t) => {
  const fake = await startFakeApiServer();
  t.teardown(() => fake.close());
  fake.apply(service('a'));
  fake.apply(service('b', { labels: { 'service.kubernetes.io/headless': '' } }));
  fake.apply(service('c'));
  t.equal((await get(fake, '/api/v1/services', false)).status, 401);
  const all = JSON.parse((await get(fake, '/api/v1/services')).body);
  t.equal(all.kind, 'ServiceList');
  t.equal(all.metadata.resourceVersion, fake.resourceVersion);
  t.same(all.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['a', 'b', 'c']);
  t.equal(all.items[0].kind, undefined, 'list items carry no kind, like the real server');
  const filtered = JSON.parse((await get(fake, `/api/v1/services?labelSelector=${encodeURIComponent('!service.kubernetes.io/headless')}`)).body);
  t.same(filtered.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['a', 'c']);
  t.equal((await get(fake, '/api/v1/services?labelSelector=a%20in%20(b)')).status, 400);
  const page1 = JSON.parse((await get(fake, '/api/v1/services?limit=2')).body);
  t.equal(page1.items.length, 2);
  fake.apply(service('d')); // not in the snapshot the pages come from
  const page2 = JSON.parse((await get(fake, `/api/v1/services?limit=2&continue=${page1.metadata.continue}`)).body);
  t.same(page2.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['c']);
  t.equal(page2.metadata.continue, undefined);
  t.equal((await get(fake, '/api/v1/services?limit=2&continue=zzz:2')).status, 410);
  fake.failNextLists(1, 503);
  t.equal((await get(fake, '/api/v1/nodes')).status, 503);
  t.equal((await get(fake, '/api/v1/nodes')).status, 200);
  t.equal((await get(fake, '/api/v1/pods')).status, 404);
  t.equal(fake.listCount('Service'), 7);
});

t.test('watch: replay from a resourceVersion, selector transitions, 410 when too old', async (t) => {
  const fake = await startFakeApiServer({ historyLimit: 3 });
  t.teardown(() => fake.close());
  const a = fake.apply(service('a'));
  const rv = a.metadata.resourceVersion ?? '';
  const events = await watchLines(fake, `/api/v1/services?watch=true&resourceVersion=${rv}`, 4, () => {
    fake.apply(service('b'));
    fake.apply(service('a', { labels: { 'service.kubernetes.io/headless': '' } })); // leaves the selection
    fake.apply(service('a')); // comes back
    fake.delete('Service', 'default/b');
  });
  // Without a selector every change is visible as is.
  t.same(events.map((e) => `${e.type}:${e.object.metadata?.name}`), ['ADDED:b', 'MODIFIED:a', 'MODIFIED:a', 'DELETED:b']);
  const sel = encodeURIComponent('!service.kubernetes.io/headless');
  const filtered = await watchLines(fake, `/api/v1/services?watch=1&labelSelector=${sel}&resourceVersion=${Number(rv) + 1}`, 3);
  t.same(filtered.map((e) => `${e.type}:${e.object.metadata?.name}`), ['DELETED:a', 'ADDED:a', 'DELETED:b']);
  const gone = await watchLines(fake, `/api/v1/services?watch=true&resourceVersion=${rv}`, 1);
  t.equal(gone[0]?.type, 'ERROR');
  t.equal(gone[0]?.object.code, 410, 'history of 3 events no longer reaches back that far');
  const initial = await watchLines(fake, '/api/v1/services?watch=true', 1);
  t.same(initial.map((e) => `${e.type}:${e.object.metadata?.name}`), ['ADDED:a'], 'no resourceVersion: current objects first');
});

t.test('watch: bookmarks, timeoutSeconds, forced 410', async (t) => {
  const fake = await startFakeApiServer({ bookmarkIntervalMs: 50 });
  t.teardown(() => fake.close());
  fake.apply(service('a'));
  const rv = fake.resourceVersion;
  const bookmarks = await watchLines(fake, `/api/v1/services?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}`, 2);
  t.same(bookmarks.map((e) => e.type), ['BOOKMARK', 'BOOKMARK']);
  t.equal(bookmarks[0]?.object.metadata?.resourceVersion, rv);
  const t0 = performance.now();
  const ended = await watchLines(fake, `/api/v1/services?watch=true&timeoutSeconds=1&resourceVersion=${rv}`, 100);
  t.same(ended, [], 'no bookmarks unless allowed');
  t.ok(performance.now() - t0 >= 900, 'closed by the server after timeoutSeconds');
  fake.forceGoneOnNextWatch(1);
  const forced = await watchLines(fake, `/api/v1/services?watch=true&resourceVersion=${rv}`, 1);
  t.equal(forced[0]?.object.code, 410);
  fake.forceGoneOnNextWatch(1, 'status');
  t.equal((await get(fake, `/api/v1/services?watch=true&resourceVersion=${rv}`)).status, 410);
});
