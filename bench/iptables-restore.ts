// The kube-proxy baseline: how long iptables-restore takes to load a kube-proxy-shaped ruleset
// (KUBE-SERVICES → KUBE-SVC-* with statistic-mode splits → KUBE-SEP-* DNAT) for N services × M
// endpoints. iptables-legacy-restore by default (SLUICE_IPTABLES_RESTORE=iptables-nft-restore for the
// nft backend, which is far slower at this size: 1000x10 took 7.5 s here against 0.4 s for legacy).
// Runs in a network namespace made for the purpose — never the root namespace's
// iptables — and removes it afterwards.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Cleanup } from '../src/testbed/cleanup.js';
import { createNetns, deleteNetns } from '../src/testbed/netns.js';
import { netnsName, newRunPrefix } from '../src/testbed/names.js';

const chainId = (prefix: string, s: string) =>
  prefix + createHash('sha256').update(s).digest('base64url').replace(/[-_]/g, 'X').slice(0, 16).toUpperCase();

/** Builds an iptables-restore input for the nat table the way kube-proxy's iptables mode lays it out. */
export function kubeProxyRuleset(services: number, endpoints: number): { text: string; rules: number } {
  const chains: string[] = [':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-NODEPORTS - [0:0]'];
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  for (let s = 0; s < services; s++) {
    const vip = `10.96.${(s >> 8) & 255}.${s & 255}`;
    const name = `ns${s % 100}/svc${s}:http`;
    const svcChain = chainId('KUBE-SVC-', name);
    chains.push(`:${svcChain} - [0:0]`);
    rules.push(`-A KUBE-SERVICES -d ${vip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport 80 -j ${svcChain}`);
    rules.push(`-A ${svcChain} ! -s 10.244.0.0/16 -d ${vip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`);
    for (let e = 0; e < endpoints; e++) {
      const ep = `10.${128 + ((s * endpoints + e) >> 16)}.${((s * endpoints + e) >> 8) & 255}.${(s * endpoints + e) & 255}`;
      const sepChain = chainId('KUBE-SEP-', `${name}/${ep}`);
      chains.push(`:${sepChain} - [0:0]`);
      const left = endpoints - e;
      const split = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      rules.push(`-A ${svcChain} -m comment --comment "${name} -> ${ep}:8080"${split} -j ${sepChain}`);
      rules.push(`-A ${sepChain} -s ${ep}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sepChain} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${ep}:8080`);
    }
  }
  rules.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return { text: ['*nat', ...chains, ...rules, 'COMMIT', ''].join('\n'), rules: rules.length };
}

function restoreIn(ns: string, input: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('ip', ['netns', 'exec', ns, process.env.SLUICE_IPTABLES_RESTORE ?? 'iptables-legacy-restore', '--noflush'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`iptables-restore exited ${code}: ${stderr.slice(0, 500)}`))));
    child.stdin.end(input);
  });
}

export interface IptablesResult { services: number; endpoints: number; rules: number; restoreMs: number }

/** Times one full restore of the ruleset into a fresh namespace. */
export async function measureIptablesRestore(services: number, endpoints: number): Promise<IptablesResult> {
  const cleanup = new Cleanup();
  const ns = netnsName(newRunPrefix(), 'ipt');
  try {
    await createNetns(ns);
    cleanup.add(`netns ${ns}`, () => deleteNetns(ns));
    const { text, rules } = kubeProxyRuleset(services, endpoints);
    const restoreMs = await restoreIn(ns, text);
    return { services, endpoints, rules, restoreMs };
  } finally {
    await cleanup.runAll();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const services = Number(process.argv[2] ?? 10000);
  const endpoints = Number(process.argv[3] ?? 10);
  const r = await measureIptablesRestore(services, endpoints);
  console.log(JSON.stringify(r));
}
