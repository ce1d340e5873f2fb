// `node dist/src/testbed/sweep-main.js [--dry-run]`: removes what crashed test bed runs left
// behind (namespaces, cgroups, pin dirs of runs whose owner is dead) and prints the report as
// JSON. Exit status 1 when some removal failed.
import { sweepLeftovers } from './sweeper.js';

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--dry-run');
if (unknown.length > 0) {
  process.stderr.write(`sweep: unknown argument ${unknown[0]}\nusage: sweep-main [--dry-run]\n`);
  process.exit(2);
}
const report = await sweepLeftovers({ dryRun: args.includes('--dry-run') });
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exit(report.errors.length > 0 ? 1 : 0);
