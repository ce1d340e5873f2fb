// YAML parsing for the manifest source, with js-yaml: a dependency of @kubernetes/client-node,
// not of Sluice. It is resolved from client-node's own location so it is found however npm lays
// out node_modules (hoisted or nested), without adding a dependency of our own.
import { createRequire } from 'node:module';

export interface YamlMark {
  /** 0-based. */
  line: number;
  column: number;
}

export interface YamlError extends Error {
  reason?: string;
  mark?: YamlMark;
}

interface JsYaml {
  load(text: string, options?: { filename?: string; schema?: unknown; json?: boolean }): unknown;
  CORE_SCHEMA: unknown;
}

const requireFromClient = createRequire(import.meta.resolve('@kubernetes/client-node'));
const jsYaml = requireFromClient('js-yaml') as JsYaml;

/**
 * Parses one YAML document. The core schema keeps YAML 1.1 surprises out (no Date objects for
 * timestamps, no binary): scalars become strings, numbers, booleans or null, as in JSON.
 */
export function parseYamlDocument(text: string): unknown {
  return jsYaml.load(text, { schema: jsYaml.CORE_SCHEMA });
}

export function isYamlError(err: unknown): err is YamlError {
  return err instanceof Error && err.name === 'YAMLException';
}
