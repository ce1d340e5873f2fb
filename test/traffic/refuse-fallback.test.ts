// How a connect() the connect-time programs refuse fails, with real sockets: ECONNREFUSED where
// the kernel has bpf_set_retval (>= 5.18), EPERM on an older kernel, where connect.bpf.o loads
// without the helper (a CO-RE check in bpf/lib/sock.h). This kernel has the helper, so the older
// kernel is played by the sl_sock_refuse_no_retval tunable, which takes the same branch.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { createRunPinDir, removePinDir } from '../../src/testbed/bpffs.js';
import { newRunPrefix } from '../../src/testbed/names.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { backendOf, clusterIpService, CONNECT_OBJ, createBed, desiredState } from './bed.js';

const [VIP, EMPTY_VIP] = ['10.96.0.20', '10.96.0.21'];
const [TCP_PORT, UDP_PORT, UNSERVED_PORT, BACKEND_PORT] = [80, 53, 8443, 8080];

t.test('the fallback leaves no bpf_set_retval call for the verifier to walk', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const pinDir = await createRunPinDir(newRunPrefix());
  t.teardown(() => removePinDir(pinDir));
  for (const withoutRetval of [false, true]) {
    const obj = loadNative().openObject(CONNECT_OBJ, { pinRoot: pinDir });
    t.teardown(() => obj.close());
    if (withoutRetval) obj.setRodata('sl_sock_refuse_no_retval', Buffer.from([1]));
    await obj.load();
    // The verifier removes code it proved dead: what it kept is what it walked.
    const { stdout } = await promisify(execFile)('bpftool', ['prog', 'dump', 'xlated', 'id', String(obj.program('sl_connect4').info.id)]);
    const calls = stdout.split('\n').filter((line) => /\bcall bpf_set_retval/.test(line)).length;
    if (withoutRetval) t.equal(calls, 0, 'without the helper: no call left');
    else t.ok(calls > 0, `with the helper: ${calls} calls`);
  }
});

for (const [withoutRetval, code] of [[false, 'ECONNREFUSED'], [true, 'EPERM']] as const) {
  await t.test(`${withoutRetval ? 'without' : 'with'} bpf_set_retval: a refused connect() fails with ${code}`, async (t) => {
    const bed = await createBed(t, { pods: ['client', 'be0'], ctlb: 'tcp+udp', tc: false, refuseWithoutRetval: withoutRetval });
    if (!bed) return;
    await bed.startBackends(['be0'], BACKEND_PORT);
    bed.writer.apply(desiredState(
      clusterIpService({ name: 'web', vip: VIP, port: TCP_PORT, protocol: 'TCP', backends: [backendOf(bed.pod('be0'), BACKEND_PORT)] }),
      clusterIpService({ name: 'empty', vip: EMPTY_VIP, port: TCP_PORT, protocol: 'TCP', backends: [] }),
      clusterIpService({ name: 'empty-udp', vip: EMPTY_VIP, port: UDP_PORT, protocol: 'UDP', backends: [] }),
    ));
    const [served] = await bed.client.tcp({ host: VIP, port: TCP_PORT });
    t.equal(served?.backend, 'be0', `a service with an endpoint is still balanced: ${JSON.stringify(served)}`);
    const [tcp] = await bed.client.tcp({ host: EMPTY_VIP, port: TCP_PORT, timeoutMs: 3000 });
    t.equal(tcp?.code, code, `TCP connect() to a service without endpoints: ${JSON.stringify(tcp)}`);
    const [udp] = await bed.client.udp({ host: EMPTY_VIP, port: UDP_PORT, timeoutMs: 3000 }, 1, { connected: true });
    t.equal(udp?.code, code, `UDP connect() to it: ${JSON.stringify(udp)}`);
    const [unserved] = await bed.client.tcp({ host: EMPTY_VIP, port: UNSERVED_PORT, timeoutMs: 3000 });
    t.equal(unserved?.code, code, `TCP connect() to a port the ClusterIP does not serve: ${JSON.stringify(unserved)}`);
  });
}
