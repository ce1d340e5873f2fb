// The shipped manifests (daemonset/): every overlay and the uninstall DaemonSet rendered by
// `kubectl kustomize`, every object validated against the Kubernetes schemas (kubernetes-models),
// and the policies an operator relies on: read-only RBAC, the hostPath list, probes, pinned image
// tags, loopback-only metrics, the platform's interface patterns, and agent flags and settings
// that the agent's own parser accepts.
import t from 'tap';
import type { Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as models from 'kubernetes-models';
import { parseConfig } from '../../src/agent/config.js';
import { interfaceMatcher } from '../../src/agent/interfaces.js';
import { MALLOC_ARENAS } from '../../src/agent/process-memory.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { splitYamlDocuments } from '../../src/k8s/manifest-parse.js';
import { parseYamlDocument } from '../../src/k8s/yaml.js';

interface EnvVar { name: string; value?: string; valueFrom?: { configMapKeyRef?: { name: string; key: string }; fieldRef?: unknown } }
interface Probe { httpGet?: { path: string; port: number; host?: string }; periodSeconds?: number; failureThreshold?: number }
interface Container {
  name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[];
  startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe;
  resources?: { requests?: { memory?: string }; limits?: { memory?: string } };
  volumeMounts?: Array<{ name: string; mountPath: string; mountPropagation?: string }>;
  securityContext?: { privileged?: boolean };
}
interface PodSpec {
  containers: Container[]; initContainers?: Container[]; hostNetwork?: boolean;
  volumes?: Array<{ name: string; hostPath?: { path: string } }>;
}
interface KubeObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string>; spec?: { template: { spec: PodSpec } }; rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>; roleRef?: { name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> }

const VERSION = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version: string; bin: Record<string, string> }).version;
const BINS = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { bin: Record<string, string> }).bin;

/** The pod interfaces each platform's CNI makes, and host interfaces a pattern must not catch. */
const PLATFORMS = {
  'eks-bottlerocket': { pods: ['eni3c4f5b8a2d1', 'vlan8e2bd0a1f3c'], patterns: ['eni*', 'vlan*'] },
  aks: { pods: ['azv1a2b3c4d5e6'], patterns: ['azv*'] },
} as const;
const HOST_INTERFACES = ['lo', 'eth0', 'eth1', 'ens5', 'enp0s3', 'docker0', 'cni0', 'kube-ipvs0', 'azure0', 'vethb8c9d0e1', 'flannel.1', 'vxlan.calico', 'tunl0', 'nodelocaldns'];
const ALLOWED_HOST_PATHS = ['/sys/fs/bpf', '/run/sluice'];

function render(dir: string): KubeObject[] {
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', fromPackageRoot('daemonset', dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    throw new Error(e.code === 'ENOENT' ? 'kubectl is missing: run scripts/setup.sh (Debian kubernetes-client)' : `kubectl kustomize daemonset/${dir}: ${e.stderr ?? String(err)}`);
  }
  return splitYamlDocuments(text).map((d) => parseYamlDocument(d.text) as KubeObject).filter(Boolean);
}

/** kubernetes-models' class for apiVersion/kind (e.g. apps/v1 DaemonSet → models.apps.v1.DaemonSet). */
function modelClass(apiVersion: string, kind: string): (new (o: unknown) => { validate(): void }) | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  // rbac.authorization.k8s.io → rbacAuthorizationK8sIo; the core group is the module v1.
  const groupKey = group === '' ? 'v1' : group.replace(/\.([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  const mod = (models as unknown as Record<string, Record<string, Record<string, unknown>>>)[groupKey];
  const ns = group === '' ? mod : mod?.[version];
  return ns?.[kind] as (new (o: unknown) => { validate(): void }) | undefined;
}

function validateAll(t: Test, objects: KubeObject[]): void {
  for (const o of objects) {
    const Cls = modelClass(o.apiVersion, o.kind);
    if (!Cls) {
      t.fail(`${o.kind} ${o.metadata?.name}: no schema for ${o.apiVersion}`);
      continue;
    }
    t.doesNotThrow(() => new Cls(o).validate(), `${o.kind} ${o.metadata.name} is valid against the ${o.apiVersion} schema`);
  }
}

function imageChecks(t: Test, containers: Container[]): void {
  for (const c of containers) {
    const m = /^(.+):([^:/]+)$/.exec(c.image);
    t.ok(m, `${c.name}: the image has a tag (${c.image})`);
    t.not(m?.[2], 'latest', `${c.name}: not :latest`);
    t.equal(m?.[2], VERSION, `${c.name}: tagged with the package version`);
  }
}

/** The agent's environment: literal values plus the ConfigMap keys the env refers to. */
function resolveEnv(t: Test, c: Container, configMaps: Map<string, Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.configMapKeyRef;
    if (ref) {
      const data = configMaps.get(ref.name);
      t.ok(data && ref.key in data, `${c.name}: ${e.name} comes from ConfigMap ${ref.name} key ${ref.key}, which exists`);
      env[e.name] = data?.[ref.key] ?? '';
    }
  }
  return env;
}

t.test('the base alone is not for a platform: overlays set what it leaves generic', async (t) => {
  const base = render('base');
  validateAll(t, base);
  t.equal(base.find((o) => o.kind === 'ConfigMap')?.data?.['interfaces'], 'veth*', 'the base keeps the bridge-CNI pattern; overlays replace it');
});

for (const [overlay, platform] of Object.entries(PLATFORMS)) {
  t.test(`overlay ${overlay}`, async (t) => {
    const objects = render(`overlays/${overlay}`);
    t.same(objects.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'ServiceAccount'], 'exactly the expected objects');
    validateAll(t, objects);
    for (const o of objects) if (!o.kind.startsWith('Cluster')) t.equal(o.metadata.namespace, 'kube-system', `${o.kind} in kube-system`);

    await t.test('RBAC: list and watch of Services, EndpointSlices and Nodes, nothing more', async (t) => {
      const role = objects.find((o) => o.kind === 'ClusterRole')!;
      const granted = (role.rules ?? []).flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))).sort();
      t.same(granted, ['/nodes:list', '/nodes:watch', '/services:list', '/services:watch', 'discovery.k8s.io/endpointslices:list', 'discovery.k8s.io/endpointslices:watch'].sort());
      const binding = objects.find((o) => o.kind === 'ClusterRoleBinding')!;
      const ds = objects.find((o) => o.kind === 'DaemonSet')!;
      t.equal(binding.roleRef?.name, role.metadata.name);
      t.same(binding.subjects, [{ kind: 'ServiceAccount', name: (ds.spec!.template.spec as PodSpec & { serviceAccountName?: string }).serviceAccountName, namespace: 'kube-system' }], 'bound to the DaemonSet service account');
    });

    const ds = objects.find((o) => o.kind === 'DaemonSet')!;
    const pod = ds.spec!.template.spec;
    const agent = pod.containers.find((c) => c.name === 'agent')!;
    const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o.data ?? {}]));

    await t.test('host access: only bpffs and /run/sluice, pinned image tags', async (t) => {
      t.same((pod.volumes ?? []).filter((v) => v.hostPath).map((v) => v.hostPath!.path).sort(), [...ALLOWED_HOST_PATHS].sort());
      imageChecks(t, [...pod.containers, ...(pod.initContainers ?? [])]);
      t.equal(pod.hostNetwork, true, 'host network: the agent reaches the API server without Service translation');
      t.equal((pod as PodSpec & { dnsPolicy?: string }).dnsPolicy, 'Default', "the node's resolver: the API server's name resolves without the kube-dns ClusterIP");
    });

    await t.test('the agent: flags and settings the agent accepts, the platform interfaces', async (t) => {
      t.equal(agent.command?.[0], 'sluice-agent', 'runs the sluice-agent command');
      t.ok(BINS['sluice-agent'], 'which the package provides');
      const env = resolveEnv(t, agent, configMaps);
      t.ok(agent.env?.some((e) => e.name === 'NODE_NAME' && e.valueFrom?.fieldRef), 'the node name comes from the downward API');
      t.ok('SLUICE_K8S_API_SERVER' in env, 'the API server address comes from the ConfigMap');
      const cfg = parseConfig(agent.args ?? [], { ...env, NODE_NAME: 'node-a' });
      t.equal(cfg.command, 'run');
      t.equal(cfg.nodeName, 'node-a');
      t.equal(cfg.pinDir, '/sys/fs/bpf/sluice');
      t.equal(cfg.externalMode, 'Tunnel', 'external traffic to remote backends: Tunnel, the client\'s address kept');
      t.same(cfg.dsrOptoutCidrs, [], 'no DSR opt-out CIDRs');
      t.equal(env['MALLOC_ARENA_MAX'], String(MALLOC_ARENAS), 'glibc arenas limited from the first allocation');
      t.same(cfg.interfacePatterns, platform.patterns, 'the CNI pod interface patterns');
      const matches = interfaceMatcher(cfg.interfacePatterns);
      for (const name of platform.pods) t.ok(matches(name), `matches the pod interface ${name}`);
      t.same(HOST_INTERFACES.filter(matches), [], 'matches none of the host interfaces (no catch-all veth*)');
      // With the operator's value the agent takes it (the shipped value is empty: it is per cluster).
      const withEndpoint = parseConfig(agent.args ?? [], { ...env, SLUICE_K8S_API_SERVER: 'https://ABC.gr7.eu-west-1.eks.amazonaws.com' });
      t.equal(withEndpoint.k8sApiServer, 'https://abc.gr7.eu-west-1.eks.amazonaws.com');
      t.ok(/^127\.0\.0\.1:\d+$/.test(cfg.metricsAddress), `metrics on the node loopback only (${cfg.metricsAddress})`);
      const port = Number(cfg.metricsAddress.split(':')[1]);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
        const p = agent[probe];
        t.ok(p?.httpGet, `${probe} present`);
        t.equal(p?.httpGet?.port, port, `${probe} on the metrics port`);
        t.equal(p?.httpGet?.host, '127.0.0.1', `${probe} on loopback`);
      }
      t.equal(agent.startupProbe?.httpGet?.path, '/readyz', 'startup ends with the first sync');
      t.ok((agent.startupProbe!.periodSeconds ?? 10) * (agent.startupProbe!.failureThreshold ?? 3) >= 120, 'at least 2 minutes for the first sync');
      t.equal(agent.livenessProbe?.httpGet?.path, '/healthz');
      t.equal(agent.readinessProbe?.httpGet?.path, '/readyz');
    });

    await t.test('memory: the limit is above the measured first-sync peak at 65,536 Services', async (t) => {
      const mib = (q = ''): number => {
        const m = /^(\d+)(Mi|Gi)$/.exec(q);
        if (!m) throw new Error(`unexpected quantity ${q}`);
        return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
      };
      // docs/benchmarks.md: the agent's peak RSS during the first sync is ~400 MB at 10,000
      // Services × 10 endpoints and 801 MB at 65,536 (the default map capacity).
      t.ok(mib(agent.resources?.limits?.memory) * 2 ** 20 >= 801e6, `limit ${agent.resources?.limits?.memory}`);
      t.ok(mib(agent.resources?.requests?.memory) <= mib(agent.resources?.limits?.memory));
    });

    await t.test('cgroup v2: the init container mounts it where the agent looks, shared with the host', async (t) => {
      const init = pod.initContainers?.find((c) => c.name === 'mount-cgroup2');
      t.ok(init, 'a mount-cgroup2 init container');
      const cfg = parseConfig(agent.args ?? [], {});
      t.match(init?.args?.join('\n') ?? '', `target=${cfg.cgroupPath}\n`, `it mounts at the agent's --cgroup (${cfg.cgroupPath})`);
      t.equal(init?.volumeMounts?.find((m) => cfg.cgroupPath.startsWith(m.mountPath))?.mountPropagation, 'Bidirectional', 'its mount reaches the host');
      t.match(agent.volumeMounts?.find((m) => cfg.cgroupPath.startsWith(m.mountPath))?.mountPropagation ?? '', /HostToContainer|Bidirectional/, 'and the agent sees it');
    });
  });
}

t.test('the uninstall DaemonSet cleans with the agent settings and nothing else', async (t) => {
  const objects = render('uninstall');
  validateAll(t, objects);
  t.same(objects.map((o) => o.kind), ['DaemonSet']);
  const pod = objects[0]!.spec!.template.spec;
  const cleanup = pod.initContainers?.find((c) => c.name === 'cleanup');
  t.same(cleanup?.command, ['sluice-agent', 'cleanup']);
  const agentArgs = (render('overlays/aks').find((o) => o.kind === 'DaemonSet')!.spec!.template.spec.containers[0]!.args ?? []);
  const cfg = parseConfig(['cleanup', ...(cleanup?.args ?? [])], { SLUICE_INTERFACES: 'azv*' });
  t.equal(cfg.command, 'cleanup');
  t.equal(cfg.pinDir, parseConfig(agentArgs, {}).pinDir, 'the agent pin directory');
  t.same(cleanup?.env?.map((e) => e.valueFrom?.configMapKeyRef), [{ name: 'sluice-config', key: 'interfaces' }], 'the interfaces the install ConfigMap names');
  t.same((pod.volumes ?? []).filter((v) => v.hostPath).map((v) => v.hostPath!.path), ['/sys/fs/bpf']);
  imageChecks(t, [...pod.containers, ...(pod.initContainers ?? [])]);
});
