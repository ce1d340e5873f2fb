// The TC path alone (connect-time load balancing disabled): DNAT on the pod's host veth,
// reverse NAT on replies, conntrack, RST / ICMP unreachable for a service without backends.
import t from 'tap';
import { serviceBasics } from './service-basics.js';

await serviceBasics(t, { ctlb: 'off', tc: true });
