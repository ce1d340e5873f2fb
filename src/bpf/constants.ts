// Constants mirrored from bpf/include/sluice.h, checked against the compiled object's BTF the way
// struct codecs are (codec.ts). Every such constant is an enumerator of a C enum there, and the
// header anchors each enum in every object's BTF (struct sl_btf_constants), so a drift between
// the header and a mirror here fails at load and in test/datapath/btf-contract.test.ts.
import type { BtfEnum } from './native.js';

/** A TS mirror of one C enum: its enumerators' names without `prefix`, and their values. */
export interface ConstantMirror<V extends Record<string, number> = Record<string, number>> {
  /** The C enum's name, as in BTF. */
  readonly enumName: string;
  /** What every enumerator's name starts with in C (e.g. 'SL_SVC_F_'). */
  readonly prefix: string;
  readonly values: V;
}

/** Declares a mirror; the returned values are what the rest of the code uses. */
export function mirrorEnum<const V extends Record<string, number>>(enumName: string, prefix: string, values: V): ConstantMirror<V> {
  return { enumName, prefix, values };
}

/**
 * Checks a mirror against the C enum from the object's BTF: the same enumerators, each with the
 * same value. Throws an Error naming the enum and every enumerator that disagrees.
 */
export function verifyMirrorAgainstBtf(mirror: ConstantMirror, btf: BtfEnum | null): void {
  if (!btf) throw new Error(`constants ${mirror.enumName}: enum not found in the object's BTF`);
  const problems: string[] = [];
  const cNames = new Set(Object.keys(btf.values));
  for (const [key, value] of Object.entries(mirror.values)) {
    const cName = mirror.prefix + key;
    const cValue = btf.values[cName];
    cNames.delete(cName);
    if (cValue === undefined) problems.push(`${cName} is mirrored but not in C`);
    else if (cValue !== value) problems.push(`${cName}: C has ${cValue}, the mirror has ${value}`);
  }
  for (const cName of cNames) problems.push(`${cName} (${btf.values[cName]}) is in C but not mirrored`);
  if (problems.length > 0) {
    throw new Error(`constants ${mirror.enumName} disagree with the BTF of the enum: ${problems.join('; ')}`);
  }
}
