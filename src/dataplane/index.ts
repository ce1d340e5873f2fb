// The dataplane's public surface: the service-table writer (the only map writer), the tables it
// writes through, the datapath loader/attacher, and the dump helpers.
export { ServiceTableWriter } from './writer.js';
export type { ApplyError, ApplyResult, WriterOptions } from './writer.js';
export type { ServiceTables, Table, TableRole, BatchOutcome } from './tables.js';
export { MAP_NAMES } from './tables.js';
export { MemoryServiceTables } from './memory-tables.js';
export { openPinnedTables, tablesFromObject } from './native-tables.js';
export { Datapath, DatapathConfigError, SIZABLE_MAPS } from './datapath.js';
export type { ConnectTimeMode, CtTimeoutsSec, DatapathOptions, SizableMap } from './datapath.js';
export { cleanupDatapath, SLUICE_TC_HANDLE, SLUICE_TC_PRIORITY } from './attach.js';
export type { CleanupOptions, CleanupReport, TcTarget } from './attach.js';
export * from './dump.js';
