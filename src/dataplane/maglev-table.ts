// Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, section 3.4), built in user space for external services and hashed into
// by bpf/lib/maglev.h. A table depends only on the set of backend identities (address:port) and
// the table size: never on ids or ordinals this node assigned, so every node with the same backend
// set builds the same table and picks the same backend for a flow (docs/external-traffic.md).
import { createHash } from 'node:crypto';
import { ipv4ToBuffer, ipv6ToBuffer } from '../bpf/ip-bytes.js';
import { MAGLEV } from '../bpf/sluice-structs.js';

/** A backend as every node names it: address:port, an IPv6 address in brackets. */
export function backendIdentity(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The table's slot count when the flag is not given (see docs/external-traffic.md, "Maglev"). */
export const MAGLEV_DEFAULT_SIZE = MAGLEV.SIZE_DEFAULT;

function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/**
 * Why `size` cannot be a table size (undefined when it can): a prime, so that every skip is
 * coprime with it and each backend's preference list is a permutation of every slot; within
 * [SL_MAGLEV_SIZE_MIN, SL_MAGLEV_SIZE_MAX], the bounds the BPF side checks (slots are __u16).
 */
export function maglevSizeProblem(size: number): string | undefined {
  if (!Number.isInteger(size)) return 'is not an integer';
  if (size < MAGLEV.SIZE_MIN || size > MAGLEV.SIZE_MAX) return `is outside ${MAGLEV.SIZE_MIN}-${MAGLEV.SIZE_MAX}`;
  if (!isPrime(size)) return 'is not a prime (e.g. 251, 1021, 4093, 16381, 65521)';
  return undefined;
}

/**
 * The backend's two hashes (offset, skip): the first 8 bytes of SHA-256 of its identity, so they
 * are the same on every node and independent of each other.
 */
export function maglevPreferences(identity: string, size: number): { offset: number; skip: number } {
  const d = createHash('sha256').update(identity).digest();
  return { offset: d.readUInt32LE(0) % size, skip: (d.readUInt32LE(4) % (size - 1)) + 1 };
}

/**
 * Builds the table: slot → index into `identities` as given (callers sort them so that the order,
 * which breaks ties between backends, is node-independent too). Each backend walks its preference
 * list (offset, offset + skip, ... mod size, a permutation of the slots since size is prime) and,
 * in turn, takes its next slot not yet taken, until every slot is. Identities must be distinct;
 * at most `size` of them (more could not each get a slot).
 */
export function buildMaglevTable(identities: readonly string[], size: number): Uint16Array {
  const problem = maglevSizeProblem(size);
  if (problem) throw new RangeError(`Maglev table size ${size} ${problem}`);
  const n = identities.length;
  if (n === 0) throw new RangeError('a Maglev table needs at least one backend');
  if (n > size) throw new RangeError(`${n} backends do not fit a Maglev table of ${size} slots`);
  if (new Set(identities).size !== n) throw new RangeError('Maglev backend identities must be distinct');
  const pos = new Uint32Array(n);
  const skip = new Uint32Array(n);
  identities.forEach((id, i) => {
    const p = maglevPreferences(id, size);
    pos[i] = p.offset;
    skip[i] = p.skip;
  });
  const taken = new Uint8Array(size);
  const table = new Uint16Array(size);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      let c = pos[i] as number;
      while (taken[c]) c = (c + (skip[i] as number)) % size;
      taken[c] = 1;
      table[c] = i;
      pos[i] = (c + (skip[i] as number)) % size;
      if (++filled === size) return table;
    }
  }
}

/** Slot counts per backend index: how evenly a table shares the slots. */
export function slotCounts(table: Uint16Array, backends: number): number[] {
  const counts = new Array<number>(backends).fill(0);
  for (const b of table) counts[b] = (counts[b] as number) + 1;
  return counts;
}

/**
 * How many slots changed owner between two tables, compared by identity (the tables index
 * different lists), and the least any method could move: the slots the removed backends owned
 * plus those the added ones own now.
 */
export function maglevDisruption(before: { table: Uint16Array; identities: readonly string[] }, after: { table: Uint16Array; identities: readonly string[] }): { moved: number; minimum: number; size: number } {
  const size = before.table.length;
  if (after.table.length !== size) throw new RangeError('tables of different sizes');
  const kept = new Set(after.identities);
  const old = new Set(before.identities);
  let moved = 0;
  let minimum = 0;
  for (let s = 0; s < size; s++) {
    const a = before.identities[before.table[s] as number];
    const b = after.identities[after.table[s] as number];
    if (a !== b) moved++;
    if (!kept.has(a as string) || !old.has(b as string)) minimum++;
  }
  return { moved, minimum, size };
}

/**
 * The flow hash of bpf/lib/maglev.h (sl_maglev_hash4, or sl_maglev_hash6 for an IPv6 client), bit
 * for bit: the client's address (each of its 32-bit words in turn) and port as the packet carries
 * them read as little-endian words (BPF runs in host order, little-endian on every architecture we
 * build for), and the protocol.
 */
export function maglevFlowHash(clientAddr: string, clientPort: number, proto: number): number {
  const v6 = clientAddr.includes(':');
  const words = v6 ? 4 : 1;
  const b = Buffer.alloc(words * 4 + 2);
  if (v6) ipv6ToBuffer(clientAddr, b, 0);
  else ipv4ToBuffer(clientAddr, b, 0);
  b.writeUInt16BE(clientPort, words * 4);
  let h = SEED;
  for (let w = 0; w < words; w++) h = mix((h ^ b.readUInt32LE(w * 4)) >>> 0);
  h = mix((h ^ (b.readUInt16LE(words * 4) | (proto << 16))) >>> 0);
  return h;
}

/** SL_MAGLEV_SEED of bpf/lib/maglev.h. */
const SEED = 0x5eed5a1c;

function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
