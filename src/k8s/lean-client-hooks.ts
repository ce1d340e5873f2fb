// The module resolve hook of lean-client.ts (it runs in Node's hooks thread): client-node's
// config.js gets lean-client-gen.js for its import of the generated package index.
const GEN_SHIM = new URL('./lean-client-gen.js', import.meta.url).href;
const CLIENT_CONFIG = '/node_modules/@kubernetes/client-node/dist/config.js';

interface ResolveContext {
  parentURL?: string;
}
interface ResolveResult {
  url: string;
  shortCircuit?: boolean;
}

export async function resolve(
  specifier: string,
  context: ResolveContext,
  nextResolve: (specifier: string, context: ResolveContext) => Promise<ResolveResult>,
): Promise<ResolveResult> {
  if (specifier === './gen/index.js' && context.parentURL?.endsWith(CLIENT_CONFIG)) return { url: GEN_SHIM, shortCircuit: true };
  return nextResolve(specifier, context);
}
