import t from 'tap';
import { nodeIPv4 } from '../../src/agent/agent.js';

t.test('a node\'s IPv4 address for backend node_addr', async (t) => {
  t.equal(nodeIPv4(undefined), undefined);
  t.equal(nodeIPv4({ status: { addresses: [{ type: 'Hostname', address: 'n1' }, { type: 'ExternalIP', address: '203.0.113.5' }, { type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '10.0.0.7' }] } }), '10.0.0.7');
  t.equal(nodeIPv4({ status: { addresses: [{ type: 'ExternalIP', address: '203.0.113.5' }] } }), '203.0.113.5');
  t.equal(nodeIPv4({ status: {} }), undefined);
});
