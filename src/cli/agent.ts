#!/usr/bin/env node
// sluice-agent entry point: parse flags, then run the agent (or the cleanup command) until a
// signal. Bad flags exit 2 before anything touches the kernel — and before the agent's modules
// (Kubernetes client, BPF loader, ...) are even loaded, so --help and a typo answer at once.
import { readFileSync } from 'node:fs';
import { checkConfigPaths, ConfigError, parseConfig, usage } from '../agent/config.js';
import type { AgentConfig } from '../agent/config.js';
import { createLogging } from '../log/logger.js';
import { fromPackageRoot } from '../bpf/native.js';
import { registerLeanClient } from '../k8s/lean-client.js';
import { limitMallocArenas, MALLOC_ARENAS } from '../agent/process-memory.js';

export async function main(argv: string[]): Promise<number> {
  let cfg: AgentConfig;
  try {
    cfg = parseConfig(argv);
    if (cfg.command === 'run') checkConfigPaths(cfg);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice-agent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (cfg.command === 'help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  if (cfg.command === 'version') {
    process.stdout.write(`${(JSON.parse(readFileSync(fromPackageRoot('package.json'), 'utf8')) as { version: string }).version}\n`);
    return 0;
  }
  const logging = createLogging({ level: cfg.logLevel });
  const log = logging.component('main');
  // First, before threads allocate: at most MALLOC_ARENAS C-heap arenas (~10 MB less RSS). A
  // missing addon is reported by the agent's start, with what to do about it.
  try {
    if (!limitMallocArenas()) log.warn(`glibc refused to limit malloc arenas to ${MALLOC_ARENAS}; memory use will be higher`);
  } catch (err) {
    log.debug({ err }, 'malloc arenas not limited');
  }
  // Before the agent's modules: client-node then loads without its generated API (~40 MB less).
  // A client-node the hook does not apply to stops the start here, naming what differs.
  try {
    registerLeanClient();
  } catch (err) {
    log.fatal({ err }, (err as Error).message);
    return 1;
  }
  const { fatal, startAgent } = await import('../agent/agent.js');
  if (cfg.command === 'cleanup') {
    try {
      const { cleanupAgentDatapath } = await import('../agent/datapath.js');
      await cleanupAgentDatapath(cfg, logging.component('cleanup'));
      return 0;
    } catch (err) {
      fatal(log, err);
      return 1;
    }
  }
  try {
    const agent = await startAgent(cfg, logging);
    await new Promise<void>((resolve) => {
      const onSignal = (sig: string) => {
        log.info({ signal: sig }, 'signal received');
        agent.stop().then(resolve, (err: unknown) => {
          fatal(log, err);
          resolve();
        });
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
    return 0;
  } catch (err) {
    fatal(log, err);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sluice-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
