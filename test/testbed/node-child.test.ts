import t from 'tap';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { run } from '../../src/testbed/exec.js';
import { nodeArgv } from '../../src/testbed/node-child.js';

t.test('plain JS scripts run with bare node', async (t) => {
  t.same(nodeArgv('/x/echo.mjs', ['--a', 'b']), [process.execPath, '/x/echo.mjs', '--a', 'b']);
});

t.test('TypeScript scripts get a TS loader, and really run', async (t) => {
  const argv = nodeArgv('/x/tool.ts');
  t.ok(argv.some((a) => /^--(import|loader|experimental-loader)=.*(typescript|ts-node|tsx|tsimp)/.test(a)), argv.join(' '));
  t.equal(argv.at(-1), '/x/tool.ts');
  const script = fromPackageRoot('test', 'testbed', 'fixtures', 'print-typed.ts');
  const { stdout } = await run(nodeArgv(script, ['7']));
  t.equal(stdout.trim(), '49');
});

t.test('anything else is refused', async (t) => {
  t.throws(() => nodeArgv('/x/tool.py'), /"\/x\/tool.py" is neither/);
});

t.test('command failures name the command and carry stderr', async (t) => {
  await t.rejects(run(['sh', '-c', 'echo nope >&2; exit 3']), /`sh -c echo nope >&2; exit 3` exited with status 3: nope/);
  await t.rejects(run(['sluice-no-such-command']), /cannot run `sluice-no-such-command`: ENOENT/);
  await t.rejects(run(['sleep', '5'], { timeoutMs: 100 }), /timed out after 100 ms/);
  const r = await run(['sh', '-c', 'exit 4'], { allowFailure: true });
  t.equal(r.code, 4);
});
