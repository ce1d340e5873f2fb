// A registry of cleanup actions, run last-in first-out on success, on failure, and (when asked)
// on SIGINT, SIGTERM and uncaught exceptions, after which the process exits non-zero. Running
// it twice is harmless: every action runs at most once.

export type CleanupAction = () => void | Promise<void>;

interface Entry {
  name: string;
  fn: CleanupAction;
  promise?: Promise<void>;
}

export class CleanupError extends Error {
  constructor(readonly failures: { name: string; error: unknown }[]) {
    super(`testbed: ${failures.length} cleanup action(s) failed: ` +
      failures.map((f) => `${f.name}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; '));
    this.name = 'CleanupError';
  }
}

export class Cleanup {
  private readonly entries: Entry[] = [];
  private running: Promise<void> | undefined;

  /**
   * Registers `fn` under a descriptive `name`. Returns a function that runs this one action
   * now (and unregisters it) — for resources a test tears down itself before the end.
   */
  add(name: string, fn: CleanupAction): () => Promise<void> {
    const entry: Entry = { name, fn };
    this.entries.push(entry);
    return () => this.runEntry(entry);
  }

  /** Names of the actions still to run, in the order they would run. */
  pending(): string[] {
    return this.entries.filter((e) => !e.promise).map((e) => e.name).reverse();
  }

  private runEntry(entry: Entry): Promise<void> {
    entry.promise ??= (async () => entry.fn())().finally(() => {
      const i = this.entries.indexOf(entry);
      if (i >= 0) this.entries.splice(i, 1);
    });
    return entry.promise;
  }

  /** Runs every pending action, newest first; keeps going past failures, then reports them all. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      const failures: { name: string; error: unknown }[] = [];
      while (this.entries.length > 0) {
        const entry = this.entries[this.entries.length - 1] as Entry;
        try {
          await this.runEntry(entry);
        } catch (error) {
          failures.push({ name: entry.name, error });
        }
      }
      if (failures.length > 0) throw new CleanupError(failures);
    })().finally(() => { this.running = undefined; });
    return this.running;
  }

  /**
   * Runs the cleanup when the process is interrupted (SIGINT, SIGTERM) or crashes (uncaught
   * exception), then exits non-zero (128 + signal number, or 1). Several registries may do this
   * at once: one set of process listeners runs them all before exiting. Returns an uninstaller.
   */
  handleProcessEvents(log: (msg: string) => void = (m) => process.stderr.write(m + '\n')): () => void {
    return watchProcess(this, log);
  }
}

const watched = new Map<Cleanup, (msg: string) => void>();
let exiting = false;

function finish(why: string, exitCode: number): void {
  if (exiting) return;
  exiting = true;
  const all = [...watched];
  for (const [, log] of all) log(`testbed: ${why}; cleaning up`);
  void Promise.allSettled(all.map(([cleanup, log]) =>
    cleanup.runAll().catch((err: unknown) => log(err instanceof Error ? err.message : String(err)))))
    .finally(() => process.exit(exitCode));
}

const onSigint = () => finish('SIGINT', 130);
const onSigterm = () => finish('SIGTERM', 143);
const onException = (err: unknown) => {
  process.stderr.write(`testbed: uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  finish('uncaught exception', 1);
};

function watchProcess(cleanup: Cleanup, log: (msg: string) => void): () => void {
  if (watched.size === 0) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.on('uncaughtException', onException);
  }
  watched.set(cleanup, log);
  return () => {
    watched.delete(cleanup);
    if (watched.size === 0 && !exiting) {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      process.off('uncaughtException', onException);
    }
  };
}
