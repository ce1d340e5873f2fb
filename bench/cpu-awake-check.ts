// Does keeping the CPUs out of idle remove the connect bench's bimodal p50s? (issue 17)
//
//   node --import ./scripts/ts-loader.mjs bench/cpu-awake-check.ts [measurements per condition, default 12]
//
// The connect bed at 1 service, IPv4; the direct path (client pod → node → backend pod, no
// dataplane) measured as the connect bench does (200 sequential connections, p50 of them), under
// three conditions in turn, interleaved: nothing; `/dev/cpu_dma_latency` held open with 0 written
// (PM QoS); one SCHED_IDLE busy-loop per CPU (bench/cpu-awake.ts). Prints each condition's
// per-measurement p50s and how many fell above 0.8 ms (the slow mode: a vCPU woken from halt).
// Needs root and a built tree; the bed is removed on exit.
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createConnectBed } from './connect-bed.js';
import { createCpuAwake, cpuidleDriver } from './cpu-awake.js';
import { benchIptablesBackend } from './service-objects.js';
import { distribution } from './stats.js';

const N = Number(process.argv[2] ?? 12);
const CONDITIONS = ['none', 'cpu_dma_latency=0', 'idle spinners'] as const;

const bed = await createConnectBed(benchIptablesBackend(), ['IPv4']);
try {
  const awake = await createCpuAwake(bed.run, true);
  const p = bed.path('direct');
  await p.client.tcp(p.target, 50);
  const p50s = new Map<string, number[]>(CONDITIONS.map((c) => [c, []]));
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; cpuidle driver ${cpuidleDriver()}; /dev/cpu_dma_latency ${existsSync('/dev/cpu_dma_latency') ? 'present' : 'absent'}`);
  for (let i = 0; i < N; i++) {
    for (const c of i % 2 === 0 ? CONDITIONS : [...CONDITIONS].reverse()) {
      let fd: number | undefined;
      if (c === 'cpu_dma_latency=0') {
        fd = openSync('/dev/cpu_dma_latency', 'w');
        writeSync(fd, Buffer.alloc(4)); // s32 0: no idle state with an exit latency above 0 µs
      }
      if (c === 'idle spinners') await awake.hold();
      try {
        const attempts = await p.client.tcp(p.target, 200);
        p50s.get(c)?.push(distribution(attempts.filter((a) => a.ok).map((a) => a.ms)).p50);
      } finally {
        if (fd !== undefined) closeSync(fd);
        await awake.release();
      }
    }
  }
  for (const [c, xs] of p50s) {
    const d = distribution(xs);
    console.log(`${c.padEnd(18)} p50s ${xs.map((x) => x.toFixed(2)).join(' ')} | median ${d.p50.toFixed(3)} ms, ${xs.filter((x) => x > 0.8).length}/${xs.length} above 0.8 ms`);
  }
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  await bed.destroy();
}
