// Watches the network interfaces of the agent's namespace for workload (pod) interfaces, so the TC
// programs go on every pod veth, including ones created after start. Events come from
// `ip -o monitor link`; a periodic rescan of /sys/class/net backs it up (a lost event, or no
// iproute2), so a missed interface is picked up within one rescan period.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface WorkloadInterface {
  name: string;
  ifindex: number;
}

export interface InterfaceWatcherOptions {
  patterns: string[];
  logger: Logger;
  onAdded: (iface: WorkloadInterface) => Promise<void> | void;
  onRemoved?: (iface: WorkloadInterface) => Promise<void> | void;
  rescanPeriodMs?: number;
  /** Directory listing the interfaces (tests point it elsewhere). */
  sysClassNet?: string;
  /** Set false to rely on rescans only. */
  useMonitor?: boolean;
}

/** Compiles interface-name globs (`*`, `?`) into one matcher. */
export function interfaceMatcher(patterns: string[]): (name: string) => boolean {
  const regexes = patterns.map((p) => new RegExp('^' + p.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$'));
  return (name) => regexes.some((r) => r.test(name));
}

export class InterfaceWatcher {
  private readonly known = new Map<string, number>();
  private readonly matches: (name: string) => boolean;
  private monitor: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: InterfaceWatcherOptions) {
    this.matches = interfaceMatcher(opts.patterns);
  }

  /** Scans once (attaching to what exists), then keeps watching. */
  async start(): Promise<void> {
    await this.rescan();
    if (this.opts.useMonitor !== false) this.startMonitor();
    this.timer = setInterval(() => void this.rescan(), this.opts.rescanPeriodMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.monitor?.kill();
  }

  /** Interfaces currently handled, by name. */
  current(): WorkloadInterface[] {
    return [...this.known].map(([name, ifindex]) => ({ name, ifindex }));
  }

  /** Serialised: two overlapping scans would attach twice. */
  rescan(): Promise<void> {
    this.scanning = this.scanning.then(() => this.scanOnce()).catch((err) => {
      this.opts.logger.error({ err }, 'interface scan failed');
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    if (this.stopped) return;
    const dir = this.opts.sysClassNet ?? '/sys/class/net';
    const seen = new Map<string, number>();
    for (const name of await readdir(dir)) {
      if (!this.matches(name)) continue;
      try {
        seen.set(name, Number((await readFile(`${dir}/${name}/ifindex`, 'utf8')).trim()));
      } catch {
        // Vanished between readdir and read: it is gone, treat as not seen.
      }
    }
    for (const [name, ifindex] of seen) {
      if (this.known.get(name) === ifindex) continue;
      try {
        await this.opts.onAdded({ name, ifindex });
        this.known.set(name, ifindex);
        this.opts.logger.info({ iface: name, ifindex }, 'workload interface attached');
      } catch (err) {
        // Left out of `known`, so the next scan retries it.
        this.opts.logger.error({ err, iface: name, ifindex }, 'attaching to workload interface failed');
      }
    }
    for (const [name, ifindex] of this.known) {
      if (seen.has(name)) continue;
      this.known.delete(name);
      this.opts.logger.info({ iface: name, ifindex }, 'workload interface gone');
      await this.opts.onRemoved?.({ name, ifindex });
    }
  }

  private startMonitor(): void {
    const child = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.monitor = child;
    child.on('error', (err) => this.opts.logger.warn({ err }, 'ip monitor unavailable; relying on rescans'));
    // Any link event triggers a rescan; the scan works out what changed.
    child.stdout?.on('data', () => void this.rescan());
    child.on('exit', () => {
      if (!this.stopped) setTimeout(() => !this.stopped && this.startMonitor(), 1000).unref();
    });
    child.unref();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  }
}
