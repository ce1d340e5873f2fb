// The dataplane's public surface: the service-table writer (the only map writer), the tables it
// writes through, and the dump helpers. Loading, attaching and sweeping live in src/datapath/.
export { ServiceTableWriter } from './writer.js';
export type { ApplyError, ApplyResult, WriterOptions } from './writer.js';
export type { ServiceTables, Table, TableRole, BatchOutcome } from './tables.js';
export { MAP_NAMES } from './tables.js';
export { MemoryServiceTables } from './memory-tables.js';
export { openPinnedTables, tablesFromObject } from './native-tables.js';
export * from './dump.js';
