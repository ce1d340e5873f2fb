// sl_dsr_optout4 holds exactly --dsr-optout-cidrs (src/agent/dsr-optout.ts); the program's use of
// it is proven in test/datapath/external-dsr.test.ts.
import t from 'tap';
import { dsrOptoutKey4 } from '../../src/bpf/sluice-structs.js';
import { DsrOptoutWriter } from '../../src/agent/dsr-optout.js';

function memoryMap(initial: string[] = []) {
  const m = new Map<string, Buffer>();
  const key = (cidr: string) => {
    const [addr = '', len = ''] = cidr.split('/');
    return dsrOptoutKey4.encode({ prefixlen: Number(len), addr }).toString('hex');
  };
  for (const cidr of initial) m.set(key(cidr), Buffer.alloc(4));
  return {
    cidrs: () => [...m.keys()].map((k) => dsrOptoutKey4.decode(Buffer.from(k, 'hex'))).map((k) => `${k.addr}/${k.prefixlen}`).sort(),
    update: (k: Buffer, v: Buffer) => void m.set(k.toString('hex'), v),
    delete: (k: Buffer) => m.delete(k.toString('hex')),
    keys: () => [...m.keys()].map((k) => Buffer.from(k, 'hex')),
  };
}

t.test('the map ends up holding exactly the configured CIDRs; what a previous agent pinned is taken into account', async (t) => {
  const map = memoryMap(['10.0.0.0/8', '192.0.2.0/24']);
  const r = new DsrOptoutWriter(map).apply(['192.0.2.0/24', '203.0.113.7/32']);
  t.same([r.added, r.removed, r.errors], [['203.0.113.7/32'], ['10.0.0.0/8'], []]);
  t.same(map.cidrs(), ['192.0.2.0/24', '203.0.113.7/32']);
  t.same(new DsrOptoutWriter(map).apply(['192.0.2.0/24', '203.0.113.7/32']), { added: [], removed: [], errors: [] }, 'nothing to do');
  t.same(new DsrOptoutWriter(map).apply([]).removed.sort(), ['192.0.2.0/24', '203.0.113.7/32']);
  t.same(map.cidrs(), []);
});

t.test('a failing update is reported, not thrown; the stale entries still go', async (t) => {
  const map = memoryMap(['10.0.0.0/8']);
  const r = new DsrOptoutWriter({ ...map, update: () => { throw new Error('E2BIG'); } }).apply(['0.0.0.0/0']);
  t.match(r.errors, [/sl_dsr_optout4 update 0.0.0.0\/0: E2BIG/]);
  t.same(r.removed, ['10.0.0.0/8']);
});
