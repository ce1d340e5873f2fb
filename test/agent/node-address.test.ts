import t from 'tap';
import { nodeAddressLookup, nodeIPv4 } from '../../src/agent/node-address.js';
import { ObjectStore } from '../../src/k8s/store.js';

t.test('a node\'s IPv4 address for backend node_addr', async (t) => {
  t.equal(nodeIPv4(undefined), undefined);
  t.equal(nodeIPv4({ status: { addresses: [{ type: 'Hostname', address: 'n1' }, { type: 'ExternalIP', address: '203.0.113.5' }, { type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '10.0.0.7' }] } }), '10.0.0.7');
  t.equal(nodeIPv4({ status: { addresses: [{ type: 'ExternalIP', address: '203.0.113.5' }] } }), '203.0.113.5');
  t.equal(nodeIPv4({ status: {} }), undefined);
});

t.test('the writer\'s node address lookup: cached per name, cleared by any Node change', async (t) => {
  const store = new ObjectStore();
  const node = (name: string, ip: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
  store.upsert('Node', node('n1', '10.0.0.1'));
  let reads = 0;
  const get = store.get.bind(store);
  store.get = ((kind: 'Node', key: string) => {
    reads++;
    return get(kind, key);
  }) as typeof store.get;
  const lookup = nodeAddressLookup(store);
  t.equal(lookup('n1'), '10.0.0.1');
  t.equal(lookup('n1'), '10.0.0.1');
  t.equal(lookup('gone'), undefined, 'an unknown node has no address');
  t.equal(lookup('gone'), undefined);
  t.equal(reads, 2, 'one store read per name');
  store.upsert('Node', node('n1', '10.0.0.9'));
  t.equal(lookup('n1'), '10.0.0.9', 'a Node change is seen at once');
  store.upsert('Node', node('gone', '10.0.0.5'));
  t.equal(lookup('gone'), '10.0.0.5', 'a node that appears later is found');
  store.remove('Node', 'n1');
  t.equal(lookup('n1'), undefined, 'a removed node has no address');
});

t.test('an IPv6 backend\'s node address is its Node\'s IPv6 address (the IPv6 tunnel\'s far end)', async (t) => {
  const store = new ObjectStore();
  store.upsert('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'InternalIP', address: 'fd00:50::1' }] } });
  store.upsert('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'v4only' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.2' }] } });
  const lookup = nodeAddressLookup(store);
  t.same([lookup('n1', 'IPv4'), lookup('n1', 'IPv6'), lookup('n1')], ['10.0.0.1', 'fd00:50::1', '10.0.0.1'], 'each family its own; IPv4 when not said');
  t.equal(lookup('v4only', 'IPv6'), undefined, 'no IPv6 address: unknown (the SNAT fallback)');
});
