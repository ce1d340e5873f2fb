// The contract between the objects and user space: every struct codec and every mirrored
// constant matches the object's BTF (a drifted header must fail here), every table spec matches
// the object's maps, and the conntrack tunables exist as 8-byte rodata.
import t from 'tap';
import { be16, defineStruct, ipv4, pad, u32, u64, u8, verifyCodecAgainstBtf } from '../../src/bpf/codec.js';
import { mirrorEnum, verifyMirrorAgainstBtf } from '../../src/bpf/constants.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { allConstantMirrors, allStructCodecs, DROP_CONSTANTS, SVC_F_CONSTANTS } from '../../src/bpf/sluice-structs.js';
import { checkTableSpecs } from '../../src/dataplane/table-specs.js';
import { loadDatapath } from './harness.js';

/** Every object the agent loads: each carries the constants (lib/maps.h anchors them). */
const OBJECTS = ['tc.bpf.o', 'connect.bpf.o', 'sockdestroy.bpf.o'];

t.test('every codec matches the BTF of tc.bpf.o, and a drifted one is caught', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  for (const codec of allStructCodecs) {
    t.doesNotThrow(() => verifyCodecAgainstBtf(codec, dp.obj.btfStruct(codec.name)), `${codec.name} matches`);
  }
  // The conntrack value as it would be if someone swapped two members in one place only.
  const drifted = defineStruct('sl_ct_value4', {
    created_ns: u64, last_seen_ns: u64, nat_addr: ipv4, nat_port: be16, state: u8, type: u8,
    nat_saddr: ipv4, svc_id: u32, flags: u32, nat_sport: be16, pad: pad(2, 2),
  });
  t.throws(() => verifyCodecAgainstBtf(drifted, dp.obj.btfStruct('sl_ct_value4')),
    /codec sl_ct_value4 disagrees.*member #4 is type in C but state in the codec/);
  // A member lost from the codec (as if it had been added to the C struct only).
  const missing = defineStruct('sl_ct_key4', { saddr: ipv4, daddr: ipv4, sport: be16, dport: be16, pad: pad(4, 2) });
  t.throws(() => verifyCodecAgainstBtf(missing, dp.obj.btfStruct('sl_ct_key4')),
    /member #4 is proto in C but pad in the codec/);
});

t.test('every mirrored constant matches the enums in the BTF of every object, and a drifted one is caught', async (t) => {
  for (const file of OBJECTS) {
    // Opened, not loaded: BTF and map definitions are read from the file.
    const obj = loadNative().openObject(fromPackageRoot('dist', 'bpf', file));
    t.teardown(() => obj.close());
    for (const mirror of allConstantMirrors) {
      t.doesNotThrow(() => verifyMirrorAgainstBtf(mirror, obj.btfEnum(mirror.enumName)), `${file}: ${mirror.enumName} matches`);
    }
    t.doesNotThrow(() => checkTableSpecs(obj), `${file}: every table's map has the spec's name and default capacity`);
  }
  const obj = loadNative().openObject(fromPackageRoot('dist', 'bpf', 'tc.bpf.o'));
  t.teardown(() => obj.close());
  const svcFlags = obj.btfEnum('sl_svc_flags');
  t.match(svcFlags, { name: 'sl_svc_flags', values: { SL_SVC_F_AFFINITY: 4 } }, 'the enum is read from BTF');
  // A flag renumbered on one side only.
  const drifted = mirrorEnum('sl_svc_flags', 'SL_SVC_F_', { ...SVC_F_CONSTANTS.values, AFFINITY: 1 << 7 });
  t.throws(() => verifyMirrorAgainstBtf(drifted, svcFlags),
    /constants sl_svc_flags disagree.*SL_SVC_F_AFFINITY: C has 4, the mirror has 128/);
  // A reason added in C and not mirrored, and one mirrored that C does not have.
  const fewer = Object.fromEntries(Object.entries(DROP_CONSTANTS.values).filter(([name]) => name !== 'UNKNOWN_PORT'));
  t.throws(() => verifyMirrorAgainstBtf(mirrorEnum('sl_drop_reason', 'SL_DROP_', { ...fewer, NOT_IN_C: 15 }), obj.btfEnum('sl_drop_reason')),
    /SL_DROP_NOT_IN_C is mirrored but not in C; SL_DROP_UNKNOWN_PORT \(8\) is in C but not mirrored/);
  t.throws(() => verifyMirrorAgainstBtf(mirrorEnum('sl_no_such_enum', 'SL_', {}), obj.btfEnum('sl_no_such_enum')), /enum not found/);
  // A map capacity that is not the object's.
  t.throws(() => checkTableSpecs(obj, { sl_vips4: 7 }), /sl_vips4 has max_entries 65536, the table spec 7/);
});

t.test('the conntrack timeouts are 8-byte const volatile tunables', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const vars = dp.obj.rodataVariables();
  for (const name of ['syn_sent', 'established', 'fin', 'rst'].map((s) => `sl_ct_timeout_tcp_${s}_ns`).concat('sl_ct_timeout_udp_ns')) {
    t.match(vars.find((v) => v.name === name), { size: 8 }, `${name} is a u64 tunable`);
  }
});
