// The admin API's routes: which methods and paths exist, which query parameters and body fields
// each accepts, and how they map onto the AdminBackend. Everything a client can get wrong is an
// AdminError naming the parameter or field; the HTTP plumbing lives in server.ts.
import { parseLogLevel } from '../log/logger.js';
import {
  applyConntrackFilter, applyNatFilter, formatHostPort, formatServiceRef, parseConntrackFilter, parseNatFilter,
  parseServiceRef, serviceKeyMatches,
} from './filters.js';
import { AdminError } from './types.js';
import type { AdminBackend, ServiceRef } from './types.js';

export interface RouteContext {
  backend: AdminBackend;
  query: Record<string, string>;
  body: Record<string, unknown>;
}

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  /** Query parameters accepted (GET). */
  query?: readonly string[];
  /** Body fields: name → required. POST bodies are JSON objects. */
  body?: Readonly<Record<string, boolean>>;
  handle(ctx: RouteContext): Promise<unknown>;
}

async function requireKnownService(backend: AdminBackend, ref: ServiceRef): Promise<void> {
  const { services } = await backend.services();
  if (!services.some((s) => serviceKeyMatches(ref, s.key))) {
    throw new AdminError(404, `unknown service ${formatServiceRef(ref)}: it is not programmed on this node`);
  }
}

function bodyString(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (typeof value !== 'string') {
    throw new AdminError(400, `body field "${field}" must be a string, got ${JSON.stringify(value) ?? 'undefined'}`);
  }
  return value;
}

export const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/v1/status', handle: async ({ backend }) => backend.status() },
  { method: 'GET', path: '/v1/services', handle: async ({ backend }) => backend.services() },
  {
    method: 'GET',
    path: '/v1/nat',
    query: ['service', 'frontend'],
    async handle({ backend, query }) {
      const filter = parseNatFilter(query);
      if ('service' in filter) await requireKnownService(backend, filter.service);
      const view = applyNatFilter(await backend.natDump(filter), filter);
      if ('frontend' in filter && view.frontends.length === 0) {
        throw new AdminError(404, `no frontend ${formatHostPort(filter.frontend)} is programmed on this node`);
      }
      return view;
    },
  },
  {
    method: 'GET',
    path: '/v1/ct',
    query: ['service', 'client', 'backend'],
    async handle({ backend, query }) {
      const filter = parseConntrackFilter(query);
      if (filter.service) await requireKnownService(backend, filter.service);
      return applyConntrackFilter(await backend.conntrack(filter), filter);
    },
  },
  { method: 'GET', path: '/v1/affinity', handle: async ({ backend }) => backend.affinity() },
  { method: 'GET', path: '/v1/counters', handle: async ({ backend }) => backend.counters() },
  { method: 'GET', path: '/v1/maps', handle: async ({ backend }) => backend.maps() },
  {
    method: 'POST',
    path: '/v1/log-level',
    body: { level: true },
    async handle({ backend, body }) {
      const text = bodyString(body, 'level');
      let level;
      try {
        level = parseLogLevel(text, 'body field "level"');
      } catch (err) {
        throw new AdminError(400, (err as Error).message);
      }
      return backend.setLogLevel(level);
    },
  },
  {
    method: 'POST',
    path: '/v1/ct/flush',
    body: { service: true },
    async handle({ backend, body }) {
      const ref = parseServiceRef(bodyString(body, 'service'), 'body field "service"');
      await requireKnownService(backend, ref);
      return backend.flushConntrack(ref);
    },
  },
];

/** Query parameters as a plain record: unknown, repeated or empty parameters are errors. */
export function readQuery(route: Route, params: URLSearchParams): Record<string, string> {
  const allowed = route.query ?? [];
  const out: Record<string, string> = {};
  for (const [name, value] of params) {
    if (!allowed.includes(name)) {
      const accepted = allowed.length ? `accepted: ${allowed.join(', ')}` : 'it takes none';
      throw new AdminError(400, `unknown query parameter "${name}" for ${route.path} (${accepted})`);
    }
    if (name in out) throw new AdminError(400, `query parameter "${name}" given more than once`);
    if (value === '') throw new AdminError(400, `query parameter "${name}" is empty`);
    out[name] = value;
  }
  return out;
}

/** A POST body: a JSON object with exactly the route's fields (required ones present). */
export function readBody(route: Route, raw: string): Record<string, unknown> {
  const fields = route.body ?? {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new AdminError(400, `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AdminError(400, `request body must be a JSON object like {${Object.keys(fields).map((f) => `"${f}": ...`).join(', ')}}`);
  }
  const body = parsed as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!(key in fields)) {
      throw new AdminError(400, `unknown body field "${key}" for ${route.path} (accepted: ${Object.keys(fields).join(', ')})`);
    }
  }
  for (const [key, required] of Object.entries(fields)) {
    if (required && !(key in body)) throw new AdminError(400, `body field "${key}" is required for ${route.path}`);
  }
  return body;
}
