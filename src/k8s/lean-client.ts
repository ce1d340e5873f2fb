// Loads client-node without its generated API. KubeConfig's module (dist/config.js) imports two
// names from the generated package index (dist/gen/index.js), which imports all 900-odd API and
// model modules: ~60 MB of RSS that Sluice never uses, since it lists and watches raw JSON
// (src/k8s/client.ts). A module resolve hook (lean-client-hooks.ts) points that one import at
// lean-client-gen.ts, which exports just those two names from their own modules.
//
// The hook reaches into a private path of client-node, so package.json pins the exact version
// it is tested against (LEAN_CLIENT_VERSION), and registerLeanClient() refuses, with a
// LeanClientError naming what differs, when the installed client-node is another version or
// its config.js no longer imports the generated index the way the hook expects: an upgrade then
// fails the agent's start at once instead of silently costing ~40 MB. If an upgrade imports more
// names, linking fails at once too, with "does not provide an export named …".
//
// Node 20 runs module hooks in a thread of their own (~13 MB of RSS); the net saving is ~40 MB.
// Call this before anything imports client-node: hooks apply to modules loaded after it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire, register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fromPackageRoot } from '../bpf/native.js';

/** The client-node version the hook is tested against (package.json pins exactly this). */
export const LEAN_CLIENT_VERSION = '1.4.0';
/** The import of config.js the hook redirects (lean-client-hooks.ts). */
const GEN_IMPORT = "from './gen/index.js'";

export class LeanClientError extends Error {
  override name = 'LeanClientError';
}

let registered = false;

/**
 * Checks that the hook applies to the client-node installed under `clientRoot` (its package
 * directory), then registers it once. Throws LeanClientError when it would not apply.
 */
export function registerLeanClient(clientRoot = installedClientRoot()): void {
  checkLeanClientApplies(clientRoot);
  if (registered) return;
  // Next to this module when it runs compiled (the agent); else the build's copy (TS tests, benches).
  const candidates = [new URL('./lean-client-hooks.js', import.meta.url), pathToFileURL(fromPackageRoot('dist', 'src', 'k8s', 'lean-client-hooks.js'))];
  const hooks = candidates.find((url) => existsSync(fileURLToPath(url)));
  if (!hooks) throw new LeanClientError('the lean client-node hook dist/src/k8s/lean-client-hooks.js is missing (npm run build:ts)');
  register(hooks.href);
  registered = true;
}

/** The directory of the client-node this process would import. */
function installedClientRoot(): string {
  return dirname(createRequire(import.meta.url).resolve('@kubernetes/client-node/package.json'));
}

/** Throws LeanClientError unless client-node under `clientRoot` is the version, and the layout, the hook is written for. */
export function checkLeanClientApplies(clientRoot: string): void {
  const read = (file: string): string => {
    try {
      return readFileSync(join(clientRoot, file), 'utf8');
    } catch (err) {
      throw new LeanClientError(`@kubernetes/client-node: cannot read ${join(clientRoot, file)}: ${(err as Error).message}`);
    }
  };
  const version = (JSON.parse(read('package.json')) as { version?: unknown }).version;
  if (version !== LEAN_CLIENT_VERSION) {
    throw new LeanClientError(
      `@kubernetes/client-node is ${JSON.stringify(version)}, the lean-client hook is tested against ${LEAN_CLIENT_VERSION} only ` +
        '(src/k8s/lean-client.ts): install that version, or test the hook against the new one and update LEAN_CLIENT_VERSION and package.json',
    );
  }
  if (!read(join('dist', 'config.js')).includes(GEN_IMPORT)) {
    throw new LeanClientError(`@kubernetes/client-node ${version}: dist/config.js does not import ${GEN_IMPORT}: the lean-client hook would not apply`);
  }
}
