// The test bed's public surface, for tests, the demo and the benchmarks.
export * from './bpffs.js';
export * from './cgroup.js';
export * from './cleanup.js';
export * from './echo.js';
export * from './exec.js';
export * from './names.js';
export * from './netns.js';
export * from './node-child.js';
export * from './run.js';
export * from './sweeper.js';
export * from './topology.js';
