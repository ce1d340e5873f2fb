// nft inside a test's network namespace: load a ruleset (`nft -f -`, one transaction), list what
// is there. Every call names the namespace (`nsenter --net=/run/netns/<ns>`, the namespace is the
// test's): nothing here can reach the machine's own tables.
import { spawn } from 'node:child_process';
import { run } from './exec.js';
import { netnsPath } from './netns.js';

function inNetns(ns: string, argv: string[]): string[] {
  if (!ns) throw new Error('testbed: nft needs a test network namespace');
  return ['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv];
}

/** Loads `text` (nft -f input) into `ns` as one transaction. Resolves with the time it took (ms). */
export function nftLoad(ns: string, text: string): Promise<number> {
  const [file, ...args] = inNetns(ns, ['nft', '-f', '-']);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file as string, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0
      ? resolve(performance.now() - t0)
      : reject(new Error(`nft -f in ${ns} exited ${code}: ${stderr.slice(0, 800)}`))));
    child.stdin.end(text);
  });
}

/** `nft list <what...>` in `ns` (e.g. ['map', 'ip', 'kube-proxy', 'service-ips']). */
export async function nftList(ns: string, what: string[]): Promise<string> {
  return (await run(inNetns(ns, ['nft', 'list', ...what]))).stdout;
}
