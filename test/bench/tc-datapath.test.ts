// The TC ns/packet bench (bench/tc-datapath.ts) at tiny scale, both IP families, as CI's smoke
// test: every family x service count x scenario has a row with a finite positive time, and the
// bench's own checks held (it throws when the measured runs were not translated service packets,
// new flows or reverse NATs). Never the timings: the machine is shared. Also the generated docs
// block (bench/tc-report.ts).
import t from 'tap';
import { runTcDatapathBench, formatTable, TC_FAMILIES, TC_SCENARIOS } from '../../bench/tc-datapath.js';
import { spliceTcBlock, tcMarkdown, TC_BEGIN, TC_END } from '../../bench/tc-report.js';
import { benchEnvironment } from '../../bench/stats.js';
import { requirePrivileges } from '../helpers/privileges.js';

// One scale: loading and verifying tc.bpf.o twice per family is most of the time.
const COUNTS = [10];

t.test('tc-datapath bench at 10 services, IPv4 and IPv6: sane rows and the docs block', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const rows = await runTcDatapathBench(1000, COUNTS);
  for (const family of TC_FAMILIES) {
    for (const services of COUNTS) {
      for (const scenario of TC_SCENARIOS) {
        const r = rows.filter((x) => x.family === family && x.services === services && x.scenario === scenario);
        t.equal(r.length, 1, `${family} ${services} ${scenario}: one row`);
        const ns = r[0]?.nsPerPacket ?? NaN;
        t.ok(Number.isFinite(ns) && ns > 0, `${family} ${services} ${scenario}: ${ns} ns/packet is a positive number`);
      }
    }
  }
  t.equal(rows.length, TC_FAMILIES.length * COUNTS.length * TC_SCENARIOS.length, 'nothing else');

  const table = formatTable(rows);
  t.match(table, /^IPv4 services +noop +miss +ct-hit +new-flow +reply$/m, 'a table for IPv4');
  t.match(table, /^IPv6 services +noop +miss +ct-hit +new-flow +reply$/m, 'and one for IPv6');
  t.match(table, /^ +10( +\d+){5}$/m, 'rows of numbers');

  const md = tcMarkdown({ environment: benchEnvironment(), repeat: 1000, rounds: 5, rows });
  t.match(md, /\*\*IPv6\*\*\n\n\| services \| noop \| miss \| ct-hit \| new-flow \| reply \|/, 'the docs block has the IPv6 table');
  t.match(md, /\n\| 10( \| \d+){5} \|\n/, 'with its rows');
  const doc = `intro\n${TC_BEGIN}\nold\n${TC_END}\nafter\n`;
  t.equal(spliceTcBlock(doc, md), `intro\n${md}\nafter\n`, 'the block replaces the old one in place');
});
