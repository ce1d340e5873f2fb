// The DaemonSet's mount-cgroup2 init container script, run for real (in a private mount namespace,
// its target moved to a temporary directory): it mounts the host's cgroup2 hierarchy — the root,
// not a cgroup namespace's — where the agent's --cgroup looks, and a second run leaves it alone
// (a restarted pod must not stack mounts).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { splitYamlDocuments } from '../../src/k8s/manifest-parse.js';
import { parseYamlDocument } from '../../src/k8s/yaml.js';
import { cgroup2Mount } from '../../src/testbed/cgroup.js';
import { run } from '../../src/testbed/exec.js';
import { requirePrivileges } from '../helpers/privileges.js';

interface Ds { kind: string; spec: { template: { spec: { initContainers: Array<{ name: string; command: string[]; args: string[] }> } } } }

t.test('mount-cgroup2 mounts the host cgroup2 root once', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const docs = splitYamlDocuments(readFileSync(fromPackageRoot('daemonset', 'base', 'daemonset.yaml'), 'utf8')).map((d) => parseYamlDocument(d.text) as Ds);
  const init = docs.find((d) => d.kind === 'DaemonSet')?.spec.template.spec.initContainers.find((c) => c.name === 'mount-cgroup2');
  t.ok(init, 'the init container');
  t.same(init?.command, ['sh', '-ec']);
  const script = init!.args[0]!;
  t.match(script, /target=\/run\/sluice\/cgroupv2\n/);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cgroup-init-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'cgroupv2');
  const ours = script.replace('target=/run/sluice/cgroupv2', `target=${target}`);
  // Twice, then report, all inside one private mount namespace that vanishes afterwards.
  const check = `
    sh -ec "$1" && sh -ec "$1" || exit 1
    echo "mounts=$(grep -c " ${target} cgroup2 " /proc/self/mounts)"
    echo "fstype=$(stat -f -c %T ${target})"
    echo "children=$(cd ${target} && ls -d */ | sort | tr '\\n' ' ')"
  `;
  // The host's cgroup namespace is pid 1's in a pod (hostPID); a test process may not open pid 1's
  // namespaces (a sandboxed CI runner), so it names its own, the machine's root one here.
  const env = { ...process.env, HOST_CGROUP_NS: '/proc/self/ns/cgroup' };
  const r = await run(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', check, 'sh', ours], { allowFailure: true, timeoutMs: 30_000, env });
  t.equal(r.code, 0, 'the script succeeds twice', { stderr: r.stderr });
  t.match(r.stdout, /mounted cgroup2 at .*\ncgroup2 already mounted at /, 'mounted once, then found');
  t.match(r.stdout, /\nmounts=1\n/, 'a single mount at the target');
  t.match(r.stdout, /\nfstype=cgroup2fs\n/, 'a cgroup2 file system');
  const host = await run(['sh', '-c', `cd ${cgroup2Mount()} && ls -d */ | sort | tr '\\n' ' '`]);
  t.equal(/children=(.*)\n/.exec(r.stdout)?.[1], host.stdout, "the same child cgroups as the host's cgroup2 root: its root, not a cgroup namespace's");
  t.equal(readFileSync('/proc/self/mounts', 'utf8').includes(target), false, 'nothing left mounted outside the private namespace');
});
