// The kernel side of the dataplane: loading the BPF objects over the pinned maps, attaching them
// (cgroup links, TC filters) and the UDP socket sweep. src/dataplane/ writes the maps.
export { Datapath, DatapathConfigError, SIZABLE_MAPS } from './datapath.js';
export type { ConnectTimeMode, CtTimeoutsSec, DatapathOptions, SizableMap } from './datapath.js';
export { cleanupDatapath, SLUICE_TC_HANDLE, SLUICE_TC_PRIORITY } from './attach.js';
export type { CleanupOptions, CleanupReport, TcTarget } from './attach.js';
export { FEATURE_NAMES, FEATURES, kernelFeatures, probeKernel } from './kernel-features.js';
export type { FeatureName, FeatureState, KernelFeature, KernelFeatures } from './kernel-features.js';
