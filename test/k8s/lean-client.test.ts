// The agent loads client-node without its generated API (src/k8s/lean-client.ts), and KubeConfig
// and Watch still work. Runs the compiled modules (dist/) in a fresh Node, as sluice-agent does.
import t from 'tap';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fromPackageRoot } from '../../src/bpf/native.js';

const run = promisify(execFile);
const dist = (...parts: string[]) => fromPackageRoot('dist', 'src', ...parts);

// Lists the scripts V8 parsed (the inspector reports them all when the debugger is enabled).
const probe = (lean: boolean) => `
import { Session } from 'node:inspector/promises';
const lean = ${lean};
if (lean) {
  const { registerLeanClient } = await import(${JSON.stringify(dist('k8s', 'lean-client.js'))});
  registerLeanClient();
}
const { loadKubeConfig, KubernetesSource } = await import(${JSON.stringify(dist('k8s', 'informers.js'))});
const { Watch } = await import(${JSON.stringify(dist('k8s', 'client.js'))});
const session = new Session();
session.connect();
const urls = [];
session.on('Debugger.scriptParsed', (m) => urls.push(m.params.url));
await session.post('Debugger.enable');
const fs = await import('node:fs');
const dir = fs.mkdtempSync('/tmp/sluice-kc-');
fs.writeFileSync(dir + '/config', 'apiVersion: v1\\nkind: Config\\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\\nusers: [{name: u, user: {token: t0k}}]\\ncontexts: [{name: x, context: {cluster: c, user: u}}]\\ncurrent-context: x\\n');
const kc = loadKubeConfig(dir + '/config');
fs.rmSync(dir, { recursive: true });
const opts = await kc.applyToFetchOptions({});
new Watch(kc);
console.log(JSON.stringify({
  generated: urls.filter((u) => u.includes('/@kubernetes/client-node/dist/gen/')).length,
  server: kc.getCurrentCluster().server,
  auth: opts.headers.get ? opts.headers.get('Authorization') : opts.headers.Authorization,
  source: typeof KubernetesSource,
}));
`;

async function probeRun(lean: boolean): Promise<{ generated: number; server: string; auth: string; source: string }> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe(lean)], { env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { generated: number; server: string; auth: string; source: string };
}

t.test('with the hook, client-node loads a handful of its generated modules, not ~900', async (t) => {
  if (!existsSync(dist('k8s', 'lean-client-hooks.js'))) {
    t.fail('dist/ is not built (npm run build:ts)');
    return;
  }
  const lean = await probeRun(true);
  const full = await probeRun(false);
  t.ok(full.generated > 500, `without the hook the generated API loads (${full.generated} modules): the probe can tell`);
  t.ok(lean.generated > 0 && lean.generated < 20, `with the hook ${lean.generated} generated modules load (configuration and its helpers)`);
  for (const r of [lean, full]) {
    t.equal(r.server, 'https://127.0.0.1:6443', 'KubeConfig read the file');
    t.equal(r.auth, 'Bearer t0k', 'and applies its credentials to requests');
    t.equal(r.source, 'function');
  }
});

t.test('package.json pins the exact client-node version the hook is tested against, and it is installed', async (t) => {
  const { LEAN_CLIENT_VERSION } = await import('../../src/k8s/lean-client.js');
  const pkg = JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { dependencies: Record<string, string> };
  t.equal(pkg.dependencies['@kubernetes/client-node'], LEAN_CLIENT_VERSION, 'pinned, no range');
  const installed = JSON.parse(readFileSync(fromPackageRoot('node_modules', '@kubernetes', 'client-node', 'package.json'), 'utf8')) as { version: string };
  t.equal(installed.version, LEAN_CLIENT_VERSION);
});

t.test('a client-node the hook does not apply to is refused by name, not ignored', async (t) => {
  const { checkLeanClientApplies, registerLeanClient, LeanClientError } = await import('../../src/k8s/lean-client.js');
  const real = fromPackageRoot('node_modules', '@kubernetes', 'client-node');
  t.doesNotThrow(() => checkLeanClientApplies(real), 'the installed one passes');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-lean-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fake = (version: string, config: string): string => {
    const root = join(dir, `${version}-${config.length}`);
    cpSync(join(real, 'package.json'), join(root, 'package.json'));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(root, 'package.json'), JSON.stringify({ ...pkg, version }));
    cpSync(join(real, 'dist', 'config.js'), join(root, 'dist', 'config.js'));
    writeFileSync(join(root, 'dist', 'config.js'), config);
    return root;
  };
  const realConfig = readFileSync(join(real, 'dist', 'config.js'), 'utf8');
  t.throws(() => registerLeanClient(fake('1.5.0', realConfig)), { name: 'LeanClientError', message: /client-node is "1\.5\.0", the lean-client hook is tested against 1\.4\.0 only/ }, 'another version');
  const moved = realConfig.replaceAll("from './gen/index.js'", "from './gen/apis.js'");
  t.throws(() => registerLeanClient(fake('1.4.0', moved)), { name: 'LeanClientError', message: /dist\/config\.js does not import from '\.\/gen\/index\.js'/ }, 'the import it redirects is gone');
  t.throws(() => checkLeanClientApplies(join(dir, 'absent')), LeanClientError, 'no client-node at all');
});
