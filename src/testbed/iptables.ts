// iptables (ip6tables with family IPv6) inside a test's network namespace: load a ruleset with
// iptables-restore --noflush, read it back with its packet counters. Every call names the namespace: nothing here can reach
// the machine's own tables (`nsenter --net=/run/netns/<ns>`, and the namespace is the test's).
import type { IpFamily } from '../model/types.js';
import { loadInNetns, netOnlyArgv } from './netns.js';
import { run } from './exec.js';

/** iptables-nft (Debian's default) or the legacy backend (faster to restore at 10k services). */
export type IptablesBackend = 'nft' | 'legacy';

/** e.g. iptables-legacy-restore, ip6tables-nft-save. */
const tool = (backend: IptablesBackend, what: 'restore' | 'save', family: IpFamily = 'IPv4') =>
  `${family === 'IPv6' ? 'ip6tables' : 'iptables'}-${backend}-${what}`;

/**
 * Loads `text` (iptables-restore input; ip6tables-restore's with `family` IPv6) into `ns` without
 * flushing what is there (with `flush`: replacing the tables `text` names, their chains included).
 * Resolves with the time it took (ms).
 */
export function iptablesRestore(ns: string, text: string, backend: IptablesBackend = 'nft', opts: { flush?: boolean; family?: IpFamily } = {}): Promise<number> {
  const restore = tool(backend, 'restore', opts.family);
  return loadInNetns(ns, [restore, ...(opts.flush ? [] : ['--noflush'])], text, restore);
}

/** `iptables-save -c` (`ip6tables-save -c` with `family` IPv6) of one table in `ns`. */
export async function iptablesSave(ns: string, table: 'nat' | 'filter', backend: IptablesBackend = 'nft', family: IpFamily = 'IPv4'): Promise<string> {
  return (await run(netOnlyArgv(ns, [tool(backend, 'save', family), '-c', '-t', table]))).stdout;
}

/** The rules of `chain` in an `iptables-save -c` text, with their packet counters, in order. */
export function chainCounters(saved: string, chain: string): { rule: string; packets: number }[] {
  const out: { rule: string; packets: number }[] = [];
  for (const line of saved.split('\n')) {
    const m = /^\[(\d+):\d+\] (-A (\S+) .*)$/.exec(line);
    if (m && m[3] === chain) out.push({ rule: m[2] as string, packets: Number(m[1]) });
  }
  return out;
}

/** Total packets counted by the rules of `chain` in `ns`. */
export async function chainPackets(ns: string, table: 'nat' | 'filter', chain: string, backend: IptablesBackend = 'nft', family: IpFamily = 'IPv4'): Promise<number> {
  return chainCounters(await iptablesSave(ns, table, backend, family), chain).reduce((n, r) => n + r.packets, 0);
}
