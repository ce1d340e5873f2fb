import t from 'tap';
import { Cleanup, CleanupError } from '../../src/testbed/cleanup.js';

t.test('actions run newest first, each once, on success', async (t) => {
  const c = new Cleanup();
  const order: string[] = [];
  c.add('first', () => void order.push('first'));
  c.add('second', async () => { await new Promise((r) => setTimeout(r, 5)); order.push('second'); });
  c.add('third', () => void order.push('third'));
  t.same(c.pending(), ['third', 'second', 'first']);
  await c.runAll();
  t.same(order, ['third', 'second', 'first']);
  await c.runAll();
  t.same(order, ['third', 'second', 'first'], 'running again does nothing');
  t.same(c.pending(), []);
});

t.test('a failing action does not stop the others; all failures are reported', async (t) => {
  const c = new Cleanup();
  const ran: string[] = [];
  c.add('ok-1', () => void ran.push('ok-1'));
  c.add('bad-a', () => { throw new Error('boom a'); });
  c.add('ok-2', () => void ran.push('ok-2'));
  c.add('bad-b', async () => { throw new Error('boom b'); });
  const err = await c.runAll().then(() => null, (e: unknown) => e);
  t.type(err, CleanupError);
  t.match((err as Error).message, /2 cleanup action\(s\) failed: bad-b: boom b; bad-a: boom a/);
  t.same(ran, ['ok-2', 'ok-1']);
  t.same(c.pending(), [], 'failed actions are not retried forever');
});

t.test('an action released early runs once and leaves the registry', async (t) => {
  const c = new Cleanup();
  let count = 0;
  const release = c.add('early', () => void count++);
  c.add('late', () => undefined);
  await Promise.all([release(), release()]);
  t.equal(count, 1);
  t.same(c.pending(), ['late']);
  await c.runAll();
  t.equal(count, 1);
});

t.test('concurrent runAll calls share one run', async (t) => {
  const c = new Cleanup();
  let count = 0;
  c.add('slow', async () => { await new Promise((r) => setTimeout(r, 20)); count++; });
  await Promise.all([c.runAll(), c.runAll()]);
  t.equal(count, 1);
});

t.test('actions added while cleaning up still run', async (t) => {
  const c = new Cleanup();
  const ran: string[] = [];
  c.add('adds-more', () => { c.add('added', () => void ran.push('added')); ran.push('adds-more'); });
  await c.runAll();
  t.same(ran, ['adds-more', 'added']);
});

t.test('process event handlers: one set of listeners for many registries, removed with the last', async (t) => {
  const before = process.listenerCount('SIGTERM');
  const a = new Cleanup();
  const b = new Cleanup();
  const offA = a.handleProcessEvents();
  const offB = b.handleProcessEvents();
  t.equal(process.listenerCount('SIGTERM'), before + 1);
  t.equal(process.listenerCount('uncaughtException') > 0, true);
  offA();
  t.equal(process.listenerCount('SIGTERM'), before + 1, 'still installed for b');
  offB();
  t.equal(process.listenerCount('SIGTERM'), before, 'gone with the last registry');
});
