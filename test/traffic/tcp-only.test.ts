// Connect-time load balancing in TCP-only mode beside the TC programs (Calico's "TCP" setting):
// TCP is balanced at connect(), UDP by TC, and both look identical to the application.
import t from 'tap';
import { serviceBasics } from './service-basics.js';

await serviceBasics(t, { ctlb: 'tcp', tc: true });
