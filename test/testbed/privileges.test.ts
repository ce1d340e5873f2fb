import t from 'tap';
import { applyPrivilegeProblem, privilegeProblem, requirePrivileges } from '../helpers/privileges.js';

function fakeTap() {
  const calls: string[] = [];
  return {
    calls,
    plan: (n: number, comment?: string) => void calls.push(`plan ${n} ${comment ?? ''}`),
    fail: (message: string) => void calls.push(`fail ${message}`),
    comment: (...msg: unknown[]) => void calls.push(`comment ${msg.join(' ')}`),
  };
}

t.test('a missing privilege skips with the reason outside CI', async (t) => {
  const fake = fakeTap();
  t.equal(applyPrivilegeProblem(fake, 'not running as root', false), false);
  t.same(fake.calls, [
    'comment skipping privileged test: not running as root',
    'plan 0 needs BPF privileges: not running as root',
  ]);
});

t.test('under CI a missing privilege fails instead of skipping', async (t) => {
  const fake = fakeTap();
  t.equal(applyPrivilegeProblem(fake, 'bpffs is not mounted', true), false);
  t.same(fake.calls, ['fail privileged test cannot run under CI: bpffs is not mounted']);
});

t.test('no problem: the test runs', async (t) => {
  const fake = fakeTap();
  t.equal(applyPrivilegeProblem(fake, null, true), true);
  t.same(fake.calls, []);
});

t.test('the probe agrees with requirePrivileges and is cached', async (t) => {
  const first = privilegeProblem();
  t.equal(privilegeProblem(), first, 'one probe per process');
  const problem = await first;
  t.comment(`privilege probe: ${problem ?? 'all present'}`);
  const fake = fakeTap();
  t.equal(await requirePrivileges(fake), problem === null);
  if (process.getuid?.() !== 0) t.match(problem, /not running as root/);
});
