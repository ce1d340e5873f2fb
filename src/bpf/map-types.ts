// Kernel enum values (include/uapi/linux/bpf.h) for the map and program types Sluice meets, so
// MapInfo.type / ProgramInfo.type can be compared and printed by name.

export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  CPUMAP: 16,
  XSKMAP: 17,
  SOCKHASH: 18,
  CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  DEVMAP_HASH: 25,
  STRUCT_OPS: 26,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
} as const;
export type MapType = (typeof MapType)[keyof typeof MapType];

export const ProgType = {
  SOCKET_FILTER: 1,
  KPROBE: 2,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  LWT_IN: 10,
  LWT_OUT: 11,
  LWT_XMIT: 12,
  SOCK_OPS: 13,
  SK_SKB: 14,
  CGROUP_DEVICE: 15,
  SK_MSG: 16,
  RAW_TRACEPOINT: 17,
  CGROUP_SOCK_ADDR: 18,
} as const;
export type ProgType = (typeof ProgType)[keyof typeof ProgType];

/** Update flags for NativeMap.update / updateBatch. */
export const UpdateFlags = {
  ANY: 0,
  NOEXIST: 1,
  EXIST: 2,
} as const;

const PER_CPU: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  MapType.PERCPU_CGROUP_STORAGE,
]);

/** Whether values of this map type hold one slot per possible CPU. */
export function isPerCpuMapType(type: number): boolean {
  return PER_CPU.has(type);
}

function nameOf(table: Record<string, number>, value: number): string {
  for (const [name, v] of Object.entries(table)) if (v === value) return name;
  return `UNKNOWN(${value})`;
}

/** 'LRU_HASH' for 9, 'UNKNOWN(99)' for values we do not know. */
export function mapTypeName(type: number): string {
  return nameOf(MapType, type);
}

