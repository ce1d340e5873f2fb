// sl_tunnel_nodes4 follows the Node objects' addresses exactly (src/agent/tunnel-nodes.ts).
import t from 'tap';
import { tunnelNodeKey4 } from '../../src/bpf/sluice-structs.js';
import { TunnelNodeWriter } from '../../src/agent/tunnel-nodes.js';

function memoryMap(initial: string[] = []) {
  const m = new Map<string, Buffer>();
  for (const addr of initial) m.set(tunnelNodeKey4.encode({ addr }).toString('hex'), Buffer.alloc(4));
  return {
    m,
    addrs: () => [...m.keys()].map((k) => tunnelNodeKey4.decode(Buffer.from(k, 'hex')).addr).sort(),
    update: (k: Buffer, v: Buffer) => void m.set(k.toString('hex'), v),
    delete: (k: Buffer) => m.delete(k.toString('hex')),
    keys: () => [...m.keys()].map((k) => Buffer.from(k, 'hex')),
  };
}

t.test('adds new node addresses, removes gone ones, ignores unknown ones; starts from the pinned map', async (t) => {
  const map = memoryMap(['192.168.50.9']);
  const w = new TunnelNodeWriter(map);
  const r = w.apply(['192.168.50.2', '192.168.50.3', undefined, '192.168.50.2']);
  t.same([r.added, r.removed, r.errors], [['192.168.50.2', '192.168.50.3'], ['192.168.50.9'], []]);
  t.same(map.addrs(), ['192.168.50.2', '192.168.50.3']);
  t.same(w.apply(['192.168.50.3']).removed, ['192.168.50.2']);
  t.same(map.addrs(), ['192.168.50.3']);
  t.same(w.apply(['192.168.50.3']), { added: [], removed: [], errors: [] }, 'nothing to do');
});

t.test('a failing update is reported, not thrown, and retried next time', async (t) => {
  const map = memoryMap();
  let fail = true;
  const w = new TunnelNodeWriter({ ...map, update: (k, v) => { if (fail) throw new Error('E2BIG'); map.update(k, v); } });
  t.match(w.apply(['10.0.0.1']).errors, [/sl_tunnel_nodes4 update 10.0.0.1: E2BIG/]);
  fail = false;
  t.same(w.apply(['10.0.0.1']).added, ['10.0.0.1']);
});
