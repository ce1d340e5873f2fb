// Watches the network interfaces of the agent's namespace for workload (pod) interfaces, so the TC
// programs go on every pod veth, including ones created after start. Events come from
// `ip -o monitor link`; a periodic rescan backs it up (a lost event), so a missed interface is
// picked up within one rescan period. Scans list links through netlink (src/datapath/links.ts),
// never /sys/class/net, which shows the namespace sysfs was mounted in: the agent sees its own
// namespace's links however it was started.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { listLinks, type Link } from '../datapath/links.js';

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
  /** Lists the namespace's links (default: netlink, `ip -j link show`; tests pass their own). */
  listLinks?: () => Promise<Link[]>;
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
  /** A scan queued behind the running one and not started yet: later requests join it. */
  private queued: Promise<void> | undefined;
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

  /**
   * Serialised: two overlapping scans would attach twice. A burst of link events costs at most
   * one scan after the running one (each scan starts a process), and that scan starts after
   * every request that joined it, so it sees what they saw.
   */
  rescan(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.scanning.then(() => {
      this.queued = undefined;
      return this.scanOnce();
    }).catch((err) => {
      this.opts.logger.error({ err }, 'interface scan failed');
    });
    this.queued = next;
    this.scanning = next;
    return next;
  }

  private async scanOnce(): Promise<void> {
    if (this.stopped) return;
    const links = await (this.opts.listLinks ?? listLinks)();
    const seen = new Map<string, number>();
    for (const { ifname, ifindex } of links) if (this.matches(ifname)) seen.set(ifname, ifindex);
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
