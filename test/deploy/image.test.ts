// Issue 13 §1 + §2: the container image (scripts/build-image.sh, `npm run image`) run as the
// DaemonSet runs it — privileged, in the node's network namespace (here the sandbox's node
// namespace, never the machine's), bpffs and a cgroup2 hierarchy mounted in, in-cluster
// credentials (a service account token and CA at the standard path, KUBERNETES_SERVICE_HOST a
// ClusterIP nothing serves) and SLUICE_K8S_API_SERVER the API server's real address. The agent in
// the container syncs from empty maps and programs them, traffic between the sandbox's pods is
// balanced, and sluicectl inside the container reads the maps. The container is removed at the end.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { cgroup2Mount } from '../../src/testbed/cgroup.js';
import { run } from '../../src/testbed/exec.js';
import type { ServicesView } from '../../src/admin/types.js';
import { createAgentBed, expectServed, NODE_NAME, nodeObject, portKey, service, slice } from '../e2e/agent-bed.js';

const VERSION = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `localhost/sluice:${VERSION}`;
const API_ADDRESS = '172.20.0.10';
const VIP = '10.96.0.40';
const HTTP = [{ name: 'http', port: 80 }];
/** podman as this machine allows it: runc (crun refuses the hybrid cgroup layout), no raised rlimits. */
const PODMAN = ['podman', '--runtime', 'runc'];
const LIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000'];

t.test('the image runs the agent against the API server at its real address', async (t) => {
  const bed = await createAgentBed(t, { source: 'api', apiAddress: API_ADDRESS });
  if (!bed) return;
  // Builds, or finds up to date (its inputs hash), the image `npm run image` makes.
  const build = await run(['bash', fromPackageRoot('scripts', 'build-image.sh'), IMAGE], { allowFailure: true, timeoutMs: 30 * 60_000 });
  t.equal(build.code, 0, `scripts/build-image.sh built ${IMAGE}`, { stderr: build.stderr.slice(-3000) });
  if (build.code !== 0) return;

  await t.test('the runtime has the agent, sluicectl and the tools it execs', async (t) => {
    const version = await run([...PODMAN, 'run', '--rm', ...LIMITS, '--network', 'none', IMAGE, '--version']);
    t.equal(version.stdout.trim(), VERSION, 'sluice-agent is the entrypoint');
    const tools = await run([...PODMAN, 'run', '--rm', ...LIMITS, '--network', 'none', '--entrypoint', 'sh', IMAGE, '-c',
      'for c in sluice-agent sluicectl node nsenter mount ip; do command -v $c || echo "missing $c"; done; node --version; ls /app/dist/bpf']);
    t.match(tools.stdout, /\/usr\/local\/bin\/sluice-agent\n\/usr\/local\/bin\/sluicectl\n.*node\n.*nsenter\n.*mount\n.*ip\nv20\./);
    t.match(tools.stdout, /connect\.bpf\.o/);
    t.match(tools.stdout, /tc\.bpf\.o/);
  });

  const api = bed.api!;
  await api.apply(nodeObject());
  // The pod's service account, where client-node's in-cluster loader reads it.
  const sa = join(bed.work, 'serviceaccount');
  await mkdir(sa);
  await writeFile(join(sa, 'token'), api.token, { mode: 0o600 });
  await writeFile(join(sa, 'ca.crt'), api.ca ?? '');
  await writeFile(join(sa, 'namespace'), 'kube-system');
  // The host's cgroup2 hierarchy at the DaemonSet's /run/sluice/cgroupv2; the agent socket in
  // bed.work (mounted at /run/sluice), so the test's sluicectl reaches it too.
  const cgMount = cgroup2Mount();
  const clientCgroup = join('/run/sluice/cgroupv2', relative(cgMount, bed.clientCgroup));
  const name = `slt-${bed.run.prefix}-agent`;
  bed.run.cleanup.add(`podman container ${name}`, async () => {
    await run([...PODMAN, 'rm', '--force', '--time', '5', name], { allowFailure: true, timeoutMs: 60_000 });
  });
  const started = await run([...PODMAN, 'run', '--detach', '--name', name, '--privileged', ...LIMITS,
    '--network', `ns:/run/netns/${bed.topo.nodeNs}`,
    '-v', '/sys/fs/bpf:/sys/fs/bpf', '-v', `${cgMount}:/run/sluice/cgroupv2`, '-v', `${bed.work}:/run/sluice`,
    '-v', `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
    '-e', 'KUBERNETES_SERVICE_HOST=10.96.0.1', '-e', 'KUBERNETES_SERVICE_PORT=443',
    '-e', `SLUICE_K8S_API_SERVER=${api.url}`, '-e', `NODE_NAME=${NODE_NAME}`,
    IMAGE,
    '--pin-dir', bed.pinDir, '--cgroup', clientCgroup, '--interfaces', bed.ifacePattern,
    '--admin-socket', '/run/sluice/admin.sock', '--metrics-address', 'off', '--min-sync-period', '20ms',
  ], { allowFailure: true, timeoutMs: 120_000 });
  t.equal(started.code, 0, 'the container started', { stderr: started.stderr });
  const logs = async () => (await run([...PODMAN, 'logs', name], { allowFailure: true })).stdout.split('\n').slice(-20).join('\n');
  t.teardown(async () => {
    if (t.passing()) return;
    t.comment(`agent container log:\n${await logs()}`);
  });

  await t.test('in-cluster credentials, the real address: the agent syncs from empty maps', async (t) => {
    const status = await bed.waitForSynced(60_000);
    t.equal(status.sync.state, 'synced');
    t.ok((await api.call<number>('listCount')) >= 3, 'listed at the real address');
    t.notMatch(await logs(), /reaching the API server through its ClusterIP/, 'no ClusterIP warning: the override is in use');
  });

  await t.test('the maps it programs carry traffic; sluicectl in the container reads them', async (t) => {
    await api.apply(service('web', VIP, HTTP));
    await api.apply(slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    await bed.waitForBackends(portKey('web', 'http'), ['web-a', 'web-b'], 80, 30_000);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 10), ['web-a', 'web-b'], 'connect-time, programmed by the container');
    const inside = await run([...PODMAN, 'exec', name, 'sluicectl', '--socket', '/run/sluice/admin.sock', '--pin-dir', bed.pinDir, 'services', '-o', 'json']);
    const svc = (JSON.parse(inside.stdout) as ServicesView).services.find((s) => s.key === portKey('web', 'http'));
    t.same(svc?.backends.filter((b) => b.set === 'cluster').map((b) => b.ip).sort(), ['10.244.0.11', '10.244.0.12'], 'sluicectl in the container: web → web-a, web-b');
    t.ok(svc?.frontends.some((f) => f.ip === VIP && f.port === 80), 'and its ClusterIP frontend');
  });
});
