// Loads client-node without its generated API. KubeConfig's module (dist/config.js) imports two
// names from the generated package index (dist/gen/index.js), which imports all 900-odd API and
// model modules: ~60 MB of RSS that Sluice never uses, since it lists and watches raw JSON
// (src/k8s/client.ts). A module resolve hook (lean-client-hooks.ts) points that one import at
// lean-client-gen.ts, which exports just those two names from their own modules. If a client-node
// upgrade imports more names, linking fails at once with "does not provide an export named …":
// the agent then fails to start, loudly, in every e2e test — never quietly.
//
// Node 20 runs module hooks in a thread of their own (~13 MB of RSS); the net saving is ~40 MB.
// Call this before anything imports client-node: hooks apply to modules loaded after it.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fromPackageRoot } from '../bpf/native.js';

let registered = false;

/** Registers the hook once; false when the compiled hook module is missing (not built). */
export function registerLeanClient(): boolean {
  if (registered) return true;
  // Next to this module when it runs compiled (the agent); else the build's copy (TS tests, benches).
  const candidates = [new URL('./lean-client-hooks.js', import.meta.url), pathToFileURL(fromPackageRoot('dist', 'src', 'k8s', 'lean-client-hooks.js'))];
  const hooks = candidates.find((url) => existsSync(fileURLToPath(url)));
  if (!hooks) return false;
  register(hooks.href);
  registered = true;
  return true;
}
