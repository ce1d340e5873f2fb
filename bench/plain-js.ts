// Runs a bench entry point as plain JavaScript in a child process, so the child's memory is the
// code under test and nothing else. Under `node --import scripts/ts-loader.mjs` the TypeScript
// compiler lives in Node's loader thread of the same process: it alone adds ~110 MB of RSS, which
// would swamp an "agent RSS" figure. So the entry and every relative module it imports are
// transpiled (type-only, no checking: `npm run typecheck` does that) into a scratch directory
// inside the package — bare imports (pino, @kubernetes/client-node) still resolve from
// node_modules, and fromPackageRoot() still finds package.json — and removed afterwards.
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type TypeScript from 'typescript';
import { fromPackageRoot } from '../src/bpf/native.js';

type TsModule = typeof TypeScript;

export interface PlainJsBuild {
  /** Absolute path of the transpiled entry. */
  entry: string;
  /** Source files transpiled (or copied). */
  files: number;
  remove(): Promise<void>;
}

/** Relative module specifiers a file imports (static, dynamic, re-exports). */
function relativeImports(ts: TsModule, text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName).filter((f) => f.startsWith('.'));
}

/** `./x.js` written in a .ts file means `./x.ts` on disk (or a real .js/.mjs next to it). */
function resolveSource(from: string, spec: string): string {
  const target = resolve(dirname(from), spec);
  if (existsSync(target)) return target;
  const ts = target.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts');
  if (existsSync(ts)) return ts;
  throw new Error(`plain-js: cannot resolve ${spec} from ${from}`);
}

/** Transpiles `entry` (a .ts file under the package root) and its relative imports into `outDir`. */
export async function buildPlainJs(entry: string, outDir: string): Promise<PlainJsBuild> {
  const ts = (await import('typescript')).default;
  const root = fromPackageRoot();
  const absOut = resolve(outDir);
  if (!absOut.startsWith(root + '/') || existsSync(join(absOut, 'package.json'))) {
    throw new Error(`plain-js: the output directory must be inside the package (${root}) so node_modules resolve: ${absOut}`);
  }
  const seen = new Set<string>();
  const queue = [resolve(entry)];
  const writes: Promise<void>[] = [];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = relative(root, file);
    if (rel.startsWith('..')) throw new Error(`plain-js: ${file} is outside the package`);
    const isTs = /\.(ts|mts)$/.test(file);
    const out = join(absOut, isTs ? rel.replace(/\.ts$/, '.js').replace(/\.mts$/, '.mjs') : rel);
    await mkdir(dirname(out), { recursive: true });
    if (!isTs) {
      writes.push(copyFile(file, out));
      continue;
    }
    const text = readFileSync(file, 'utf8');
    const js = ts.transpileModule(text, {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true, inlineSources: false,
        verbatimModuleSyntax: false, isolatedModules: true,
      },
    });
    writes.push(writeFile(out, js.outputText));
    for (const spec of relativeImports(ts, text)) queue.push(resolveSource(file, spec));
  }
  await Promise.all(writes);
  const entryOut = join(absOut, relative(root, resolve(entry)).replace(/\.ts$/, '.js'));
  return { entry: entryOut, files: seen.size, remove: () => rm(absOut, { recursive: true, force: true }) };
}
