// nft inside a test's network namespace: load a ruleset (`nft -f -`, one transaction), list what
// is there. Every call names the namespace (`nsenter --net=/run/netns/<ns>`, the namespace is the
// test's): nothing here can reach the machine's own tables.
import { run } from './exec.js';
import { loadInNetns, netOnlyArgv } from './netns.js';

/** Loads `text` (nft -f input) into `ns` as one transaction. Resolves with the time it took (ms). */
export function nftLoad(ns: string, text: string): Promise<number> {
  return loadInNetns(ns, ['nft', '-f', '-'], text, 'nft -f');
}

/** `nft list <what...>` in `ns` (e.g. ['map', 'ip', 'kube-proxy', 'service-ips']). */
export async function nftList(ns: string, what: string[]): Promise<string> {
  return (await run(netOnlyArgv(ns, ['nft', 'list', ...what]))).stdout;
}
