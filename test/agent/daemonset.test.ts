// The shipped DaemonSet (daemonset/sluice.yaml) runs the agent the build produces, with flags and
// environment the agent's own parser accepts, and a memory limit above the agent's working size.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/agent/config.js';
import { MALLOC_ARENAS } from '../../src/agent/process-memory.js';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { splitYamlDocuments } from '../../src/k8s/manifest-parse.js';
import { parseYamlDocument } from '../../src/k8s/yaml.js';

interface Container {
  command: string[];
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  resources: { requests: { memory: string }; limits: { memory: string } };
}

const docs = splitYamlDocuments(readFileSync(fromPackageRoot('daemonset', 'sluice.yaml'), 'utf8')).map((d) => parseYamlDocument(d.text) as { kind?: string; spec?: unknown });
const ds = docs.find((d) => d.kind === 'DaemonSet') as { spec: { template: { spec: { containers: Container[] } } } } | undefined;

const mebibytes = (q: string): number => {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`unexpected quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
};

t.test('the DaemonSet runs the built agent with flags the agent accepts', async (t) => {
  t.ok(ds, 'a DaemonSet document');
  const agent = ds?.spec.template.spec.containers[0] as Container;
  t.same(agent.command, ['node', '/app/dist/src/cli/agent.js'], 'the compiled entry (its lean-client hook sits next to it in dist/)');
  // The image holds the package at /app: the same path under this checkout must be what the build makes.
  const bin = (JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { bin: Record<string, string> }).bin['sluice-agent'];
  t.equal(agent.command[1]?.replace('/app/', ''), bin, "the package's sluice-agent bin");
  const env: NodeJS.ProcessEnv = { NODE_NAME: 'node-a' };
  for (const e of agent.env) if (e.value !== undefined) env[e.name] = e.value;
  t.ok(agent.env.some((e) => e.name === 'NODE_NAME' && e.valueFrom), 'the node name comes from the downward API');
  const cfg = parseConfig(agent.args, env);
  t.equal(cfg.command, 'run');
  t.equal(cfg.nodeName, 'node-a');
  t.equal(cfg.pinDir, '/sys/fs/bpf/sluice');
  t.equal(env['MALLOC_ARENA_MAX'], String(MALLOC_ARENAS), 'glibc arenas limited from the first allocation, as the agent would set them');
});

t.test('the memory limit is above the agent working size at 10,000 Services', async (t) => {
  const agent = ds?.spec.template.spec.containers[0] as Container;
  // docs/benchmarks.md: a ~320-400 MB peak during the first sync at 10,000 Services × 10 endpoints.
  t.ok(mebibytes(agent.resources.limits.memory) >= 400, `limit ${agent.resources.limits.memory}`);
  t.ok(mebibytes(agent.resources.requests.memory) <= mebibytes(agent.resources.limits.memory));
});
