// Command-line and environment options of the benches (bench/run.ts and bench/control-plane.ts).
// Flags win over environment variables, which win over the defaults (--quick picks smaller ones).
import { parseArgs } from 'node:util';

export const BENCH_NAMES = ['control-plane', 'agent', 'tc-datapath', 'iptables', 'flows', 'nodeport', 'maglev', 'connect', 'external-throughput'] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

export interface BenchOptions {
  services: number;
  endpoints: number;
  changes: number;
  quick: boolean;
  only: BenchName[];
  /** BPF_PROG_TEST_RUN repeat count of the TC bench. */
  tcRepeat: number;
  /** Service counts of the TC bench. */
  tcServices: number[];
  /** Service counts of the iptables-restore scaling series (the full size comes from control-plane). */
  iptablesServices: number[];
  /** Service counts of the NodePort bench. */
  nodeportServices: number[];
  /** Interleaved rounds of the NodePort bench (figures are medians over them). */
  nodeportRounds: number;
  /** Service counts of the connect bench. */
  connectServices: number[];
  /** Interleaved rounds of the connect bench. */
  connectRounds: number;
  /** IP families of the connect bench: IPv4, and IPv6 in a dual-stack bed. */
  connectFamilies: ('IPv4' | 'IPv6')[];
  /** The largest scale at which the connect bench loads and measures kube-proxy's nftables baseline (undefined: every scale). */
  connectNftMaxServices: number | undefined;
  /** Keep the CPUs out of idle while the connect bench measures (bench/cpu-awake.ts); --no-cpu-awake turns it off. */
  cpuAwake: boolean;
  /** Service counts at which the connect bench also times agent starts (a subset of connectServices). */
  startServices: number[];
  /** Scales at which the connect bench also measures iperf3 throughput (a subset of connectServices). */
  throughputServices: number[];
  /** Interleaved rounds and seconds per iperf3 measurement of the external-throughput bench. */
  externalRounds: number;
  externalSeconds: number;
  /** Measure the control plane in this process instead of a fresh child (RSS then includes the harness). */
  inProcess: boolean;
  /** Skip the iptables-restore comparison inside the control-plane bench. */
  noIptables: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]
       node --import ./scripts/ts-loader.mjs bench/run.ts [options]

  --services N        Services of the control-plane bench (env SLUICE_BENCH_SERVICES; default 10000, quick 1000)
  --endpoints M       endpoints per Service, 1..100 (env SLUICE_BENCH_ENDPOINTS; default 10)
  --changes K         endpoint changes timed one by one (env SLUICE_BENCH_CHANGES; default 200, quick 50)
  --quick             small scale, for a fast look (env SLUICE_BENCH_QUICK=1)
  --only LIST         comma-separated subset of: ${BENCH_NAMES.join(', ')} (env SLUICE_BENCH_ONLY)
  --tc-repeat N       test-run repeat of the TC bench (default 100000, quick 10000)
  --tc-services LIST  service counts of the TC bench (default 1,1000,10000,100000; quick 1,1000,10000)
  --iptables-services LIST  extra sizes of the iptables-restore series (default 1000,2500,5000; quick 100,500)
  --nodeport-services LIST  service counts of the NodePort bench (default 1,1000,10000; quick 1,1000)
  --nodeport-rounds N interleaved rounds of the NodePort bench (default 5, quick 3)
  --connect-services LIST  service counts of the connect bench (default 1,1000,10000,30000,65000; quick 1,1000)
  --connect-rounds N  interleaved rounds of the connect bench (default 5, quick 2)
  --connect-families LIST  IPv4 or IPv4,IPv6 (a dual-stack bed: every path measured in both; default IPv4,IPv6)
  --connect-nft-max-services N  largest scale at which the connect bench loads and measures kube-proxy's
                      nftables baseline (default every scale; loading it takes ~6 min per family at 30k, far longer at 65k)
  --no-cpu-awake      connect bench: let the CPUs idle (default: one SCHED_IDLE busy-loop per CPU while measuring)
  --start-services LIST  scales at which the connect bench times agent starts (default 10000,30000,65000; quick none)
  --throughput-services LIST  scales at which the connect bench measures iperf3 throughput (default 10000; quick 1)
  --external-rounds N  interleaved rounds of the external-throughput bench (default 5, quick 1)
  --external-seconds N seconds per iperf3 measurement of the external-throughput bench (default 4, quick 1)
  --in-process        measure the control plane in this process (RSS then includes the harness)
  --no-iptables       control-plane bench without the iptables-restore comparison
  -h, --help          this text

Results: a table on stdout and JSON under .bench-results/. Needs root, bpffs and a built tree
(npm run build); everything runs in per-run namespaces and pin directories it removes.`;

export class UsageError extends Error {
  override name = 'UsageError';
}

function positiveInt(name: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new UsageError(`${name}: expected an integer from 1 to ${max}, got "${text}"`);
  }
  return n;
}

function intList(name: string, text: string): number[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new UsageError(`${name}: expected a comma-separated list of integers, got "${text}"`);
  return list.map((s) => positiveInt(name, s));
}

export function parseBenchOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        services: { type: 'string' },
        endpoints: { type: 'string' },
        changes: { type: 'string' },
        quick: { type: 'boolean' },
        only: { type: 'string' },
        'tc-repeat': { type: 'string' },
        'tc-services': { type: 'string' },
        'iptables-services': { type: 'string' },
        'nodeport-services': { type: 'string' },
        'nodeport-rounds': { type: 'string' },
        'connect-services': { type: 'string' },
        'connect-rounds': { type: 'string' },
        'connect-families': { type: 'string' },
        'connect-nft-max-services': { type: 'string' },
        'no-cpu-awake': { type: 'boolean' },
        'start-services': { type: 'string' },
        'throughput-services': { type: 'string' },
        'external-rounds': { type: 'string' },
        'external-seconds': { type: 'string' },
        'in-process': { type: 'boolean' },
        'no-iptables': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const pick = (flag: string | undefined, envName: string): string | undefined => flag ?? (env[envName] || undefined);
  const quick = parsed.quick ?? ['1', 'true', 'yes'].includes((env['SLUICE_BENCH_QUICK'] ?? '').toLowerCase());
  const services = pick(parsed.services, 'SLUICE_BENCH_SERVICES');
  const endpoints = pick(parsed.endpoints, 'SLUICE_BENCH_ENDPOINTS');
  const changes = pick(parsed.changes, 'SLUICE_BENCH_CHANGES');
  const onlyText = pick(parsed.only, 'SLUICE_BENCH_ONLY');
  const only = onlyText === undefined ? [...BENCH_NAMES] : onlyText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of only) {
    if (!(BENCH_NAMES as readonly string[]).includes(name)) throw new UsageError(`--only: unknown bench "${name}" (have: ${BENCH_NAMES.join(', ')})`);
  }
  if (only.length === 0) throw new UsageError('--only: no bench named');
  const families = parsed['connect-families'] === undefined ? ['IPv4', 'IPv6'] : [...new Set(parsed['connect-families'].split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  if (!families.includes('IPv4') || families.some((f) => f !== 'IPv4' && f !== 'IPv6')) {
    throw new UsageError(`--connect-families: "${parsed['connect-families'] ?? ''}" is not IPv4 or IPv4,IPv6 (the bed always measures IPv4)`);
  }
  return {
    services: services === undefined ? (quick ? 1_000 : 10_000) : positiveInt('--services', services, 500_000),
    endpoints: endpoints === undefined ? 10 : positiveInt('--endpoints', endpoints, 100),
    changes: changes === undefined ? (quick ? 50 : 200) : positiveInt('--changes', changes, 100_000),
    quick,
    only: only as BenchName[],
    tcRepeat: parsed['tc-repeat'] === undefined ? (quick ? 10_000 : 100_000) : positiveInt('--tc-repeat', parsed['tc-repeat']),
    tcServices: parsed['tc-services'] === undefined ? (quick ? [1, 1_000, 10_000] : [1, 1_000, 10_000, 100_000]) : intList('--tc-services', parsed['tc-services']),
    iptablesServices: parsed['iptables-services'] === undefined ? (quick ? [100, 500] : [1_000, 2_500, 5_000])
      : intList('--iptables-services', parsed['iptables-services']),
    nodeportServices: parsed['nodeport-services'] === undefined ? (quick ? [1, 1_000] : [1, 1_000, 10_000]) : intList('--nodeport-services', parsed['nodeport-services']),
    nodeportRounds: parsed['nodeport-rounds'] === undefined ? (quick ? 3 : 5) : positiveInt('--nodeport-rounds', parsed['nodeport-rounds'], 100),
    connectServices: parsed['connect-services'] === undefined ? (quick ? [1, 1_000] : [1, 1_000, 10_000, 30_000, 65_000])
      : intList('--connect-services', parsed['connect-services']).map((n) => positiveInt('--connect-services', String(n), 65_536)),
    connectRounds: parsed['connect-rounds'] === undefined ? (quick ? 2 : 5) : positiveInt('--connect-rounds', parsed['connect-rounds'], 100),
    connectFamilies: families as ('IPv4' | 'IPv6')[],
    connectNftMaxServices: parsed['connect-nft-max-services'] === undefined ? undefined : positiveInt('--connect-nft-max-services', parsed['connect-nft-max-services']),
    cpuAwake: !(parsed['no-cpu-awake'] ?? false),
    startServices: parsed['start-services'] === undefined ? (quick ? [] : [10_000, 30_000, 65_000]) : intList('--start-services', parsed['start-services']),
    throughputServices: parsed['throughput-services'] === undefined ? (quick ? [1] : [10_000]) : intList('--throughput-services', parsed['throughput-services']),
    externalRounds: parsed['external-rounds'] === undefined ? (quick ? 1 : 5) : positiveInt('--external-rounds', parsed['external-rounds'], 100),
    externalSeconds: parsed['external-seconds'] === undefined ? (quick ? 1 : 4) : positiveInt('--external-seconds', parsed['external-seconds'], 60),
    inProcess: parsed['in-process'] ?? false,
    noIptables: parsed['no-iptables'] ?? false,
    help: parsed.help ?? false,
  };
}
