// Per-CPU map values as one codec: the kernel hands user space one slot per possible CPU, each
// slot the value size rounded up to 8 bytes. Wrapping an element codec this way lets TypedMap
// treat per-CPU maps like any other (its values are then arrays, one entry per CPU).
import type { Codec } from './codec.js';
import { decodePerCpu, encodePerCpu, perCpuStride } from './codec.js';

export interface PerCpuCodec<T> extends Codec<T[]> {
  readonly perCpu: true;
  readonly cpus: number;
  /** The codec of one CPU's value (its size is the map's value_size). */
  readonly element: Codec<T>;
}

/** cpus: the number of *possible* CPUs (NativeAddon.numPossibleCpus()), not online ones. */
export function perCpuCodec<T>(element: Codec<T>, cpus: number): PerCpuCodec<T> {
  if (!Number.isInteger(cpus) || cpus < 1) {
    throw new RangeError(`perCpuCodec(${element.name}): cpus must be a positive integer, got ${cpus}`);
  }
  const size = perCpuStride(element.size) * cpus;
  return {
    name: `${element.name}[percpu x${cpus}]`,
    size,
    align: 8,
    perCpu: true,
    cpus,
    element,
    encode(values, buf, offset = 0) {
      if (values.length !== cpus) {
        throw new RangeError(`${element.name}: per-CPU value needs ${cpus} entries, got ${values.length}`);
      }
      const bytes = encodePerCpu(element, values);
      if (!buf) return bytes;
      bytes.copy(buf, offset);
      return buf;
    },
    decode(buf, offset = 0) {
      return decodePerCpu(element, buf.subarray(offset, offset + size), cpus);
    },
  };
}

export function isPerCpuCodec(codec: Codec<unknown>): codec is PerCpuCodec<unknown> {
  return (codec as Partial<PerCpuCodec<unknown>>).perCpu === true;
}
