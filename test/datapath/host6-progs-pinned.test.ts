// The IPv6 half of host.bpf.o is reached by tail call through sl_host6_progs (bpf/host.bpf.c).
// The kernel empties a program array when its last user-space reference goes: unpinned, the array
// was emptied the moment the agent that loaded it died, and until the next agent attached its own
// programs every IPv6 frame passed the host programs untranslated (found by an IPv6 download
// across node A's agent restart in test/external/transfer-scenarios.ts, which stalled: node A's
// own stack answered the backend's untranslated replies with RST). Pinned, the array and its two
// slots outlive the loader, and the next load over the same pin directory fills them again.
import t from 'tap';
import { join } from 'node:path';
import { loadNative } from '../../src/bpf/native.js';
import { createRunPinDir, removePinDir } from '../../src/testbed/bpffs.js';
import { newRunPrefix } from '../../src/testbed/names.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { HOST_OBJECT } from './harness.js';

const SLOTS = [0, 1, 2, 3]; // SL_HOST6_INGRESS, SL_HOST6_EGRESS, SL_HOST6_TUNNEL, SL_HOST6_DECAP

const key = (slot: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(slot);
  return b;
};

t.test('sl_host6_progs keeps the IPv6 programs after the loader closes the object (an agent that died)', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const addon = loadNative();
  const pinDir = await createRunPinDir(newRunPrefix());
  t.teardown(() => removePinDir(pinDir));
  const load = async () => {
    const obj = addon.openObject(HOST_OBJECT, { pinRoot: pinDir });
    await obj.load();
    return obj;
  };
  const slotIds = () => {
    const map = addon.openPinnedMap(join(pinDir, 'sl_host6_progs'));
    try {
      // A program array's syscall lookup answers the id of the program in the slot (ENOENT: empty).
      return SLOTS.map((s) => map.lookup(key(s))?.readUInt32LE(0) ?? 0);
    } finally {
      map.close();
    }
  };

  const first = await load();
  const whileLoaded = slotIds();
  t.ok(whileLoaded.every((id) => id > 0), `every slot filled while loaded (${whileLoaded.join(', ')})`);
  first.close();
  t.same(slotIds(), whileLoaded, 'after the loader closed the object, every slot still holds its programs');

  // The next agent: loads over the same pins; its programs take the slots.
  const second = await load();
  const reloaded = slotIds();
  t.ok(reloaded.every((id) => id > 0), `every slot filled after a second load (${reloaded.join(', ')})`);
  second.close();
  t.same(slotIds(), reloaded, 'and still after the second loader closed it');
});
