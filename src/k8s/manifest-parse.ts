// Reading one manifest file into objects, document by document. Each YAML document is parsed on
// its own, so a syntax error spoils only that document; `List` documents (and JSON lists)
// contribute their items. Every problem names the file, the document (1-based) and its line,
// the item of a List, and kind/namespace/name and field when known.
import { isObjectKind, OBJECT_KINDS, objectKey } from './kinds.js';
import type { KubeObject, ObjectKind } from './kinds.js';
import { validateManifestObject } from './manifest-validate.js';
import { asKubeObject } from './serialization.js';
import { isYamlError, parseYamlDocument } from './yaml.js';

export interface ManifestError {
  file: string;
  /** 1-based position of the document in the file. */
  document?: number;
  /** 1-based line of the document start (or of the syntax error). */
  line?: number;
  /** 0-based index in a List's items. */
  item?: number;
  kind?: string;
  /** 'namespace/name', or the name for cluster-scoped kinds. */
  object?: string;
  field?: string;
  /** The whole problem in one line, naming all of the above. */
  message: string;
}

export interface ManifestObject {
  kind: ObjectKind;
  key: string;
  object: KubeObject;
  file: string;
  document: number;
}

export interface ParsedFile {
  objects: ManifestObject[];
  /** Objects whose document is broken but whose identity is known: their last good state is kept. */
  brokenObjects: { kind: ObjectKind; key: string }[];
  /** A document too broken to tell what it held: everything this file held before is kept. */
  unidentifiedBroken: boolean;
  errors: ManifestError[];
}

interface Locator {
  file: string;
  document: number;
  line: number;
  item?: number;
}

/** Splits YAML text at `---` document markers, remembering where each document starts. */
export function splitYamlDocuments(text: string): { text: string; line: number }[] {
  const docs: { text: string; line: number }[] = [];
  let current: string[] = [];
  let start = 1;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const marker = /^---(?:\s+(.*))?$/.exec(line);
    if (marker) {
      docs.push({ text: current.join('\n'), line: start });
      current = marker[1] ? [marker[1]] : [];
      start = i + 1;
    } else if (/^\.\.\.\s*$/.test(line)) {
      current.push(''); // document end marker: nothing more belongs to this document
    } else {
      current.push(line);
    }
  });
  docs.push({ text: current.join('\n'), line: start });
  // Documents holding only blank lines and comments are not documents.
  return docs.filter((d) => d.text.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#')));
}

export function parseManifestFile(file: string, text: string): ParsedFile {
  const result: ParsedFile = { objects: [], brokenObjects: [], unidentifiedBroken: false, errors: [] };
  if (/\.json$/i.test(file)) {
    try {
      addDocument(result, JSON.parse(text), { file, document: 1, line: 1 });
    } catch (err) {
      const position = /position (\d+)/.exec((err as Error).message)?.[1];
      const line = position === undefined ? 1 : text.slice(0, Number(position)).split('\n').length;
      fail(result, { file, document: 1, line }, `invalid JSON: ${(err as Error).message}`);
      result.unidentifiedBroken = true;
    }
    return result;
  }
  splitYamlDocuments(text).forEach((doc, i) => {
    const at = { file, document: i + 1, line: doc.line };
    let value: unknown;
    try {
      value = parseYamlDocument(doc.text);
    } catch (err) {
      const reason = isYamlError(err) ? (err.reason ?? err.message) : String(err);
      const line = isYamlError(err) && err.mark ? doc.line + err.mark.line : doc.line;
      fail(result, { ...at, line }, `invalid YAML at line ${line}: ${reason}`);
      result.unidentifiedBroken = true;
      return;
    }
    addDocument(result, value, at);
  });
  return result;
}

function addDocument(result: ParsedFile, value: unknown, at: Locator): void {
  if (value === null || value === undefined) return;
  const doc = value as Record<string, unknown>;
  if (isRecord(value) && typeof doc.kind === 'string' && doc.kind.endsWith('List') && 'items' in doc) {
    if (!Array.isArray(doc.items)) {
      fail(result, at, `items: a ${doc.kind} needs an array of objects`, { field: 'items' });
      result.unidentifiedBroken = true;
      return;
    }
    doc.items.forEach((item: unknown, index) => addObject(result, item, { ...at, item: index }));
    return;
  }
  addObject(result, value, at);
}

function addObject(result: ParsedFile, value: unknown, at: Locator): void {
  if (!isRecord(value)) {
    fail(result, at, `not an object (got ${typeof value === 'object' ? 'an array' : typeof value})`);
    result.unidentifiedBroken = true;
    return;
  }
  const kind = value.kind;
  // 'service' for 'Service': a typo, not another kind. Reported, and the object it meant keeps its
  // last good state instead of vanishing.
  const meant = typeof kind === 'string' && !isObjectKind(kind) ? OBJECT_KINDS.find((k) => k.toLowerCase() === kind.toLowerCase()) : undefined;
  if (meant) {
    const key = objectKey(meant, value as KubeObject);
    fail(result, at, `kind: ${JSON.stringify(kind)} is not ${JSON.stringify(meant)} (kinds are case-sensitive)`, { kind: meant, ...(key ? { object: key } : {}), field: 'kind' });
    if (key === undefined) result.unidentifiedBroken = true;
    else result.brokenObjects.push({ kind: meant, key });
    return;
  }
  if (!isObjectKind(kind)) {
    const problem = kind === undefined ? 'kind: missing' : `kind: ${JSON.stringify(kind)} is not one of Service, EndpointSlice, Node; ignored`;
    fail(result, at, problem, { field: 'kind' });
    // A document without a kind may be a broken Service; one of another kind is simply not ours.
    if (typeof kind !== 'string') result.unidentifiedBroken = true;
    return;
  }
  const key = objectKey(kind, value as KubeObject);
  const problems = validateManifestObject(kind, value);
  if (key === undefined) result.unidentifiedBroken = true;
  else if (problems.length > 0) result.brokenObjects.push({ kind, key });
  for (const p of problems) fail(result, at, `${p.field}: ${p.message}`, { kind, object: key, field: p.field });
  if (problems.length > 0 || key === undefined) return;
  result.objects.push({ kind, key, object: asKubeObject(kind, value), file: at.file, document: at.document });
}

function fail(result: ParsedFile, at: Locator, problem: string, about: { kind?: string; object?: string; field?: string } = {}): void {
  const where = [`document ${at.document}`, `line ${at.line}`, at.item === undefined ? undefined : `item ${at.item}`].filter(Boolean).join(', ');
  const what = about.kind ? ` ${about.kind}${about.object ? ` ${about.object}` : ''}` : '';
  const error: ManifestError = { file: at.file, document: at.document, line: at.line, message: `${at.file} (${where})${what}: ${problem}` };
  if (at.item !== undefined) error.item = at.item;
  if (about.kind !== undefined) error.kind = about.kind;
  if (about.object !== undefined) error.object = about.object;
  if (about.field !== undefined) error.field = about.field;
  result.errors.push(error);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
