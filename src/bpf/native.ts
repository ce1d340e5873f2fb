// The native addon's surface, 1:1 with libbpf 1.1, and its loader. Everything above this file
// talks to `NativeAddon` (an interface, so unit tests can substitute a fake); only `loadNative`
// touches the compiled `.node` file.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Errors thrown by the addon: `code` is the errno name ('EPERM', 'ENOENT', 'E2BIG', ...;
 * 'ENOTSUPP' for the kernel's internal 524; 'LIBBPF_FORMAT' etc. for libbpf's own codes).
 * Bad arguments from JS (wrong key size, wrong type) are code 'EINVAL' with a message naming the
 * call, the argument and the value.
 */
export interface NativeError extends Error {
  code: string;
  /** Positive errno, as C sees it. */
  errno: number;
  /** The libbpf (or syscall) function that failed, e.g. 'bpf_map_update_elem'. */
  call: string;
  /** Verifier log of the program that failed to load, when the failure was a load. */
  verifierLog?: string;
  /** Name of the program the verifier rejected (with verifierLog). */
  program?: string;
  /** Batch ops: how many elements the kernel processed before failing. */
  processed?: number;
}

export interface MapInfo {
  name: string;
  /** BPF_MAP_TYPE_* number (see MapType in ./map-types.ts). */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Kernel map id (0 until loaded). */
  id: number;
  fd: number;
  /** Where libbpf pins or finds it (maps declared LIBBPF_PIN_BY_NAME, with a pinRoot); absent otherwise. */
  pinPath?: string;
}

export interface ProgramInfo {
  name: string;
  /** ELF section, e.g. 'tc', 'cgroup/connect4'. */
  section: string;
  /** BPF_PROG_TYPE_* number. */
  type: number;
  /** Kernel program id (0 until loaded). */
  id: number;
  fd: number;
}

export interface BtfMember {
  name: string;
  /** Byte offset within the struct. */
  offset: number;
  /** Size in bytes of the member's type (arrays: whole array). */
  size: number;
  /** Non-zero for bitfields. */
  bitfieldSize: number;
}

export interface BtfStruct {
  name: string;
  size: number;
  members: BtfMember[];
}

/** An enum from BTF: every enumerator's value by name. */
export interface BtfEnum {
  name: string;
  values: Record<string, number>;
}

/**
 * A map's key and value types from BTF. A struct lists its members; any other type (a __u32
 * key, a __u64 value) has its name, its size and no members.
 */
export interface BtfMapLayout {
  key: BtfStruct | null;
  value: BtfStruct | null;
}

export interface TestRunOptions {
  /** Packet bytes (data_in). */
  data?: Buffer;
  /** Size of the output buffer for the packet (default: data length + 256). */
  dataSizeOut?: number;
  /** Context in (e.g. a struct __sk_buff for TC programs). */
  ctx?: Buffer;
  /** Size of the output context buffer (default with ctx: max(ctx length, 1024)). */
  ctxSizeOut?: number;
  /** Number of runs (duration is the average per run). */
  repeat?: number;
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  ctx: Buffer | null;
  /** Average duration per run in nanoseconds, as the kernel reports it. */
  durationNs: number;
}

export type TcDirection = 'ingress' | 'egress';

export interface TcFilterSpec {
  /** Interface index, as seen inside `netns` when that is given. */
  ifindex: number;
  direction: TcDirection;
  /** tc filter handle; 0 lets the kernel choose on attach. */
  handle?: number;
  /** tc filter priority (1..65535); 0 lets the kernel choose on attach. */
  priority?: number;
  /**
   * Network namespace file (e.g. /run/netns/x or /proc/<pid>/ns/net) to run the netlink call in;
   * default: the agent's own. The call runs on a short-lived thread that joins the namespace.
   */
  netns?: string;
}

export interface TcHookOptions {
  /** As TcFilterSpec.netns. */
  netns?: string;
}

/** A `const volatile` global of the object (from its BTF). */
export interface RodataVariable {
  name: string;
  /** '.rodata' (or a custom '.rodata.*' section). */
  section: string;
  offset: number;
  size: number;
}

/** A filter named exactly: handle and priority are required (non-zero). */
export type TcFilterId = Required<Omit<TcFilterSpec, 'netns'>> & Pick<TcFilterSpec, 'netns'>;

export interface TcAttachResult {
  handle: number;
  priority: number;
  progId: number;
}

export interface NativeMap {
  readonly info: MapInfo;
  lookup(key: Buffer): Buffer | null;
  /** flags: 0 = BPF_ANY, 1 = BPF_NOEXIST, 2 = BPF_EXIST. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** Returns false when the key did not exist. */
  delete(key: Buffer): boolean;
  /** The key that follows `key` (or the first key when `key` is null); null at the end. */
  nextKey(key: Buffer | null): Buffer | null;
  /** All keys, by repeated get_next_key. */
  keys(): Buffer[];
  /**
   * Batched lookup over the whole map. Returns concatenated keys and values and the count.
   * Maps whose type lacks batch ops throw with code 'EINVAL' or 'ENOTSUPP'.
   */
  lookupBatch(): { keys: Buffer; values: Buffer; count: number };
  /**
   * keys and values are `count` entries concatenated. Returns the number written. flags: 0 or
   * 4 (BPF_F_LOCK) only: the kernel has no NOEXIST/EXIST semantics for batches.
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): number;
  /** Returns the number deleted. */
  deleteBatch(keys: Buffer, count: number): number;
  pin(path: string): void;
  unpin(path: string): void;
  close(): void;
  /**
   * The key and value types the map was created with, from the kernel's copy of its BTF
   * (bpf_map_info.btf_id): a pinned map's own layout, whichever agent made it. Null without BTF.
   */
  btfLayout(): BtfMapLayout | null;
}

export interface NativeProgram {
  readonly info: ProgramInfo;
  testRun(opts: TestRunOptions): TestRunResult;
  /** Attaches a cgroup program (sock_addr hooks etc.) as a bpf_link. */
  attachCgroup(cgroupPath: string): NativeLink;
  /**
   * One pass of an iterator program (SEC("iter/...")): attaches it (bpf_link_create with
   * BPF_TRACE_ITER, as bpf_program__attach_iter), bpf_iter_create, reads to EOF, closes both,
   * and returns what the program wrote. Synchronous. A socket iterator (iter/udp, iter/tcp)
   * walks the sockets of the network namespace of the thread that creates it: with `netns`
   * (a namespace file such as /run/netns/x or /proc/<pid>/ns/net), creation and reads run on a
   * short-lived thread that joined that namespace; without it, the agent's own namespace.
   * Errors: EINVAL (not an iterator), 'open' (ENOENT: the namespace file vanished), 'setns'
   * (EINVAL: not a network namespace), 'bpf_link_create', 'bpf_iter_create', 'read' (EFBIG past
   * 64 MiB of output).
   */
  runIterator(opts?: RunIteratorOptions): Buffer;
  /** bpf_obj_pin on bpffs: the pin holds the program in the kernel until it is unlinked. */
  pin(path: string): void;
  /** The ids of the maps the program uses (bpf_prog_info.map_ids): the instances it was loaded with. */
  mapIds(): number[];
  /** Idempotent; never detaches an attachment (links hold their own reference). Later calls: EBADF. */
  close(): void;
}

export interface RunIteratorOptions {
  /** Network namespace file to iterate in (default: the agent's own). */
  netns?: string;
}

export interface NativeLink {
  readonly fd: number;
  pin(path: string): void;
  unpin(path: string): void;
  /** Atomically replaces the program behind the link (bpf_link_update). */
  update(prog: NativeProgram): void;
  /** Forcibly detaches the hook, pinned or not (BPF_LINK_DETACH). */
  detach(): void;
  /** Closes our handle only: a pinned link stays attached. Idempotent. */
  close(): void;
  /** The kernel's view: link id, type, program id; cgroupId 0 once a cgroup link is detached. */
  info(): LinkInfo;
}

export interface LinkInfo {
  id: number;
  type: number;
  progId: number;
  /** The cgroup a cgroup link is attached to (its inode number); 0 for other types or after detach. */
  cgroupId: number;
}

export interface NativeObject {
  readonly path: string;
  /** Writes a `const volatile` global in .rodata (by BTF name) before load; size must match. */
  setRodata(name: string, value: Buffer): void;
  /** The object's `const volatile` globals (names, sizes), from BTF. */
  rodataVariables(): RodataVariable[];
  /** Resizes a map before load (bpf_map__set_max_entries). */
  setMaxEntries(mapName: string, maxEntries: number): void;
  /** Loads into the kernel off the main thread. Rejects with a NativeError carrying verifierLog. */
  load(): Promise<void>;
  maps(): MapInfo[];
  programs(): ProgramInfo[];
  map(name: string): NativeMap;
  program(name: string): NativeProgram;
  /**
   * The object's program `name` as an earlier load of this file left it in the kernel: from its
   * pin (bpf_obj_get) or its id (bpf_prog_get_fd_by_id), with the section and expected attach
   * type of the object's definition. Usable before load. EINVAL when the kernel's program has
   * another type or name; ENOENT when there is none.
   */
  loadedProgram(name: string, pinPathOrId: string | number): NativeProgram;
  /** The bytes an internal map (.rodata, .data, .bss) will be created with, as configured; null for other maps. */
  mapInitialValue(name: string): Buffer | null;
  /** A struct from the object's BTF, or null when absent. */
  btfStruct(name: string): BtfStruct | null;
  /** An enum from the object's BTF, or null when absent. */
  btfEnum(name: string): BtfEnum | null;
  /** A map's key and value types in the object's BTF (before or after load). */
  mapBtfLayout(mapName: string): BtfMapLayout | null;
  close(): void;
}

export interface OpenObjectOptions {
  /** bpffs directory for maps declared with LIBBPF_PIN_BY_NAME (reused when already pinned). */
  pinRoot?: string;
}

export interface LogLine {
  /** libbpf level: 'warn' | 'info' | 'debug'. */
  level: 'warn' | 'info' | 'debug';
  message: string;
}

export interface NativeAddon {
  libbpfVersion(): string;
  numPossibleCpus(): number;
  openObject(path: string, opts?: OpenObjectOptions): NativeObject;
  /** `readOnly`: a read-only fd (BPF_F_RDONLY): the kernel refuses writes through it (EPERM). */
  openPinnedMap(path: string, opts?: { readOnly?: boolean }): NativeMap;
  /** bpf_map_get_fd_by_id: a map by its kernel id (its name is the kernel's, cut at 15 characters). */
  openMapById(id: number): NativeMap;
  openPinnedLink(path: string): NativeLink;
  /**
   * bpf_prog_get_fd_by_id: a handle on a loaded program by its id (e.g. the program behind a tc
   * filter). Its info.section is ''. Errors: ENOENT (no such program), EPERM.
   */
  openProgramById(id: number): NativeProgram;
  /** Creates the clsact qdisc if missing (EEXIST is fine). Runs off the main thread. */
  tcHookCreate(ifindex: number, opts?: TcHookOptions): Promise<void>;
  /** Attaches prog as a direct-action filter; `replace` swaps a filter with the same handle/prio. */
  tcAttach(spec: TcFilterSpec & { progFd: number; replace?: boolean }): Promise<TcAttachResult>;
  /** Removes exactly our filter; other filters on the hook stay. */
  tcDetach(spec: TcFilterId): Promise<void>;
  /** The program id behind a filter, or null when there is none. */
  tcQuery(spec: TcFilterId): Promise<number | null>;
  /**
   * libbpf_probe_bpf_prog_type: whether the kernel loads a program of this type (enum
   * bpf_prog_type value). Throws when libbpf cannot tell (e.g. EPERM).
   */
  probeBpfProgType(progType: number): boolean;
  /**
   * libbpf_probe_bpf_helper: whether a program of `progType` may call helper `helperId` (enum
   * bpf_func_id value) on this kernel. Throws when libbpf cannot tell.
   */
  probeBpfHelper(progType: number, helperId: number): boolean;
  /** Takes the libbpf messages collected since the last call. */
  drainLog(): LogLine[];
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('sluice: cannot find the package root above ' + import.meta.url);
    dir = parent;
  }
  return dir;
}

/** Absolute path of a file relative to the package root (works from src/ and from dist/src/). */
export function fromPackageRoot(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}

let cached: NativeAddon | undefined;

/** Loads build/Release/sluice_native.node once. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = fromPackageRoot('build', 'Release', 'sluice_native.node');
  if (!existsSync(path)) {
    throw new Error(`sluice: native addon not built (${path} missing); run \`npm run build\``);
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}
