// iproute2's tc is how Sluice reads its TC filters back (src/datapath/tc-filters.ts). Without it
// the start-up check fails, and so does every later listing (the periodic check then marks the
// TC attachments not in place, which /healthz reports), with an error naming the binary, the
// cause and what it is needed for — never a bare "spawn tc ENOENT". No kernel is touched: tc
// cannot even be spawned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkTcBinary, listTcFilters, TcUnavailableError } from '../../src/datapath/tc-filters.js';

t.test('a missing tc is named, with its cause and what it is needed for', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'sluice-no-tc-'));
  const path = process.env.PATH;
  process.env.PATH = empty;
  t.teardown(() => {
    process.env.PATH = path;
    rmSync(empty, { recursive: true, force: true });
  });
  const expectNamed = (err: unknown, what: string) => {
    t.ok(err instanceof TcUnavailableError, `${what}: a TcUnavailableError`, { err });
    const msg = (err as Error).message;
    t.match(msg, /^the tc binary \(iproute2\) is not usable: tc cannot be run \(ENOENT/, `${what}: names the binary and the cause`);
    t.ok(msg.includes(`PATH=${empty}`), `${what}: says which PATH was searched`);
    t.match(msg, /Sluice reads its TC filters back with it/, `${what}: says what it is needed for`);
  };
  expectNamed(await checkTcBinary().then(() => undefined, (e: unknown) => e), 'start-up check');
  expectNamed(await listTcFilters([{ ifname: 'lo', direction: 'ingress' }]).then(() => undefined, (e: unknown) => e), 'a listing (periodic check, attach)');
});
