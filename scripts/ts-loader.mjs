// Lets plain `node` run the TypeScript sources (benchmarks, one-off scripts):
//   node --import ./scripts/ts-loader.mjs bench/run.ts
// It registers the same ts-node ESM loader tap uses for the tests (a dependency of tap's
// @tapjs/typescript plugin), in transpile-only mode: type checking is `npm run typecheck`'s job,
// and skipping it keeps start-up fast.
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

process.env.TS_NODE_TRANSPILE_ONLY ??= 'true';
process.env.TS_NODE_PROJECT ??= fileURLToPath(new URL('../tsconfig.json', import.meta.url));

register('@isaacs/ts-node-temp-fork-for-pr-2009/esm/transpile-only', import.meta.url);
