// Connect-time load balancing alone (cgroup programs for TCP and UDP, no TC programs): a VIP
// that the socket hooks failed to translate would die in the node namespace, so every success
// here is the connect-time path's.
import t from 'tap';
import { serviceBasics } from './service-basics.js';

await serviceBasics(t, { ctlb: 'tcp+udp', tc: false });
