// --maglev-table-size / SLUICE_MAGLEV_TABLE_SIZE: a prime within the bounds the BPF side checks,
// else a ConfigError naming the flag (and variable) and the value.
import t from 'tap';
import { ConfigError, defaultConfig, parseConfig } from '../../src/agent/config.js';

t.test('default and accepted sizes', async (t) => {
  t.equal(defaultConfig().maglevTableSize, 16381);
  t.equal(parseConfig(['--maglev-table-size', '1021'], {}).maglevTableSize, 1021);
  t.equal(parseConfig([], { SLUICE_MAGLEV_TABLE_SIZE: '65521' }).maglevTableSize, 65521);
  t.equal(parseConfig(['--maglev-table-size', '251'], { SLUICE_MAGLEV_TABLE_SIZE: '65521' }).maglevTableSize, 251, 'the flag wins');
});

const bad: [string[], Record<string, string>, RegExp][] = [
  [['--maglev-table-size', '16383'], {}, /^--maglev-table-size: "16383" is not a prime/],
  [['--maglev-table-size', '101'], {}, /^--maglev-table-size: "101" is outside 251-65521/],
  [['--maglev-table-size', '65537'], {}, /"65537" is outside 251-65521/],
  [['--maglev-table-size', '16k'], {}, /^--maglev-table-size: "16k" is not a whole number/],
  [['--maglev-table-size', '-7'], {}, /"-7" is not a whole number/],
  [[], { SLUICE_MAGLEV_TABLE_SIZE: '1000' }, /environment SLUICE_MAGLEV_TABLE_SIZE: --maglev-table-size: "1000" is not a prime/],
];
for (const [argv, env, message] of bad) {
  t.test(`rejects ${JSON.stringify(argv)} ${JSON.stringify(env)}`, async (t) => {
    t.throws(() => parseConfig(argv, env), { name: 'ConfigError', message });
    t.throws(() => parseConfig(argv, env), ConfigError);
  });
}
