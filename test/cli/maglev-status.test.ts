// sluicectl status shows the external services' Maglev tables (count, size, bytes) when the agent
// runs external traffic; nothing when it does not.
import t from 'tap';
import { formatStatus } from '../../src/cli/format-views.js';
import type { StatusView } from '../../src/admin/types.js';

t.test('status: the Maglev summary among the head lines', async (t) => {
  const status: StatusView = {
    version: '0.1.0', agentRunning: true, nodeName: 'n', startedAt: '', pinDir: '/sys/fs/bpf/sluice', config: {}, programs: [], errors: [],
    sync: { state: 'synced', sourcesSynced: true, lastSyncAt: null, lastSyncDurationMs: null, syncCount: 1, servicePortsProgrammed: 3 },
    maglev: { tables: 2, size: 16381, chunksPerTable: 64, valueBytes: 2 * 64 * 516 },
  };
  const text = formatStatus(status);
  t.match(text, /\nmaglev\.tables: +2\n/);
  t.match(text, /\nmaglev\.size: +16381\n/);
  t.match(text, /\nmaglev\.valueBytes: +66048\n/);
  t.notMatch(formatStatus({ ...status, maglev: undefined }), /maglev/, 'absent without external traffic');
});
