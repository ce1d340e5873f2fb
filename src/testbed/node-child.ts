// How our own JavaScript/TypeScript runs inside a namespace: as a child `node` process (a
// namespace is per thread, and Node cannot setns). Plain .mjs/.js scripts need nothing extra,
// so the test bed's own children (echo server/client, TC helper) are .mjs and work under tap,
// from compiled dist/ and from the demo alike. A .ts script needs a TypeScript loader: we reuse
// the one the current process runs under (tap's), or tap's ts-node import when installed.

const TS_LOADER_HINT = /typescript|ts-node|tsx|tsimp/;

function currentTsLoaderFlags(): string[] {
  const flags: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const m = /^--(import|loader|experimental-loader)(=(.*))?$/.exec(a);
    if (!m) continue;
    const value = m[3] ?? argv[i + 1];
    if (m[3] === undefined) i++;
    if (value !== undefined && TS_LOADER_HINT.test(value)) flags.push(`--${m[1]}=${value}`);
  }
  return flags;
}

function installedTsLoaderFlags(): string[] {
  try {
    return [`--import=${import.meta.resolve('@tapjs/typescript/import')}`];
  } catch {
    return [];
  }
}

/** argv that runs `script` (a .mjs/.js/.cjs, or a .ts when a TS loader is available) with node. */
export function nodeArgv(script: string, args: readonly string[] = []): string[] {
  if (/\.(mjs|cjs|js)$/.test(script)) return [process.execPath, script, ...args];
  if (!/\.(ts|mts)$/.test(script)) {
    throw new Error(`testbed: nodeArgv: "${script}" is neither a .js/.mjs/.cjs nor a .ts/.mts script`);
  }
  const flags = currentTsLoaderFlags();
  const loader = flags.length > 0 ? flags : installedTsLoaderFlags();
  if (loader.length === 0) {
    throw new Error(
      `testbed: cannot run ${script} in a child: no TypeScript loader (run compiled dist/ JS or a .mjs script instead)`,
    );
  }
  return [process.execPath, '--enable-source-maps', ...loader, script, ...args];
}
