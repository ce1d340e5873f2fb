// Shared by the admin and CLI tests: a temp directory per test, a started admin server over a
// fake backend, and a raw HTTP-over-Unix-socket request helper.
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAdminServer } from '../../src/admin/server.js';
import type { AdminServer, AdminServerOptions } from '../../src/admin/server.js';
import { FakeBackend } from './fake-backend.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: Teardown, prefix = 'sluice-admin-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startFakeAdmin(
  t: Teardown,
  opts: Partial<AdminServerOptions> = {},
): Promise<{ server: AdminServer; backend: FakeBackend; socketPath: string; dir: string }> {
  const dir = tempDir(t);
  const backend = (opts.backend as FakeBackend | undefined) ?? new FakeBackend();
  const server = await startAdminServer({
    socketPath: join(dir, 'run', 'admin.sock'),
    logger: pino({ level: 'silent' }),
    ...opts,
    backend,
  });
  t.teardown(() => server.close());
  return { server, backend, socketPath: server.socketPath, dir };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}

export function call(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = body !== undefined ? { 'Content-Type': 'application/json' } : {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
