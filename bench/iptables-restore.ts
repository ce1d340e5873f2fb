// The kube-proxy baseline: how long iptables-restore takes to load a kube-proxy-shaped ruleset
// for N services × M endpoints. The rules come from the test bed's generator
// (src/testbed/kube-proxy-rules.ts: the same nat and filter layout kube-proxy's iptables mode
// writes, chain names hashed as kube-proxy hashes them). iptables-legacy-restore by default
// (SLUICE_IPTABLES_RESTORE=iptables-nft-restore for the nft backend, which is far slower at this
// size: 1000x10 took 7.5 s here against 0.4 s for legacy). Runs in a network namespace made for
// the purpose — never the root namespace's iptables — and removes it afterwards.
import { BackendList } from '../src/model/backend-list.js';
import type { Backend, DesiredServicePort, DesiredState } from '../src/model/types.js';
import { Cleanup } from '../src/testbed/cleanup.js';
import { iptablesRestore, type IptablesBackend } from '../src/testbed/iptables.js';
import { kubeProxyRules } from '../src/testbed/kube-proxy-rules.js';
import { createNetns, deleteNetns } from '../src/testbed/netns.js';
import { netnsName, newRunPrefix } from '../src/testbed/names.js';

/** N ClusterIP services × M endpoints (10.96.x.y:80 → 10.128+.x.y:8080), as the model would compute them. */
export function syntheticState(services: number, endpoints: number): DesiredState {
  const out = new Map<string, DesiredServicePort>();
  for (let s = 0; s < services; s++) {
    const backends: Backend[] = [];
    for (let e = 0; e < endpoints; e++) {
      const n = s * endpoints + e;
      backends.push({ ip: `10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`, port: 8080, nodeName: 'node', zone: null, local: false, ready: true, serving: true, terminating: false });
    }
    const sp: DesiredServicePort = {
      key: `ns${s % 100}/svc${s}:http/TCP/IPv4`, namespace: `ns${s % 100}`, name: `svc${s}`, portName: 'http', protocol: 'TCP', family: 'IPv4',
      frontends: [{ kind: 'ClusterIP', ip: `10.96.${(s >> 8) & 255}.${s & 255}`, port: 80 }],
      clusterBackends: BackendList.of(backends), localBackends: BackendList.EMPTY,
      internalLocal: false, externalLocal: false, affinityTimeoutSec: 0, healthCheckNodePort: 0, loadBalancerSourceRanges: [],
    };
    out.set(sp.key, sp);
  }
  return { services: out };
}

/** The iptables-restore input (filter + nat) kube-proxy would write for N services × M endpoints. */
export function kubeProxyRuleset(services: number, endpoints: number): { text: string; rules: number } {
  const r = kubeProxyRules(syntheticState(services, endpoints), { clusterCidr: '10.128.0.0/9' });
  return { text: r.text, rules: r.rules.nat + r.rules.filter };
}

export interface IptablesResult { services: number; endpoints: number; rules: number; restoreMs: number }

const backendFromEnv = (): IptablesBackend => (process.env.SLUICE_IPTABLES_RESTORE === 'iptables-nft-restore' ? 'nft' : 'legacy');

/** Times one full restore of the ruleset into a fresh namespace. */
export async function measureIptablesRestore(services: number, endpoints: number): Promise<IptablesResult> {
  const cleanup = new Cleanup();
  const ns = netnsName(newRunPrefix(), 'ipt');
  try {
    await createNetns(ns);
    cleanup.add(`netns ${ns}`, () => deleteNetns(ns));
    const { text, rules } = kubeProxyRuleset(services, endpoints);
    const restoreMs = await iptablesRestore(ns, text, backendFromEnv());
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
