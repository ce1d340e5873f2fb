// The contract between tc.bpf.o and user space: every struct codec matches the object's BTF
// (a drifted header must fail here), and the conntrack tunables exist as 8-byte rodata.
import t from 'tap';
import { be16, defineStruct, ipv4, pad, u32, u64, u8, verifyCodecAgainstBtf } from '../../src/bpf/codec.js';
import { allStructCodecs } from '../../src/bpf/sluice-structs.js';
import { loadDatapath } from './harness.js';

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

t.test('the conntrack timeouts are 8-byte const volatile tunables', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const vars = dp.obj.rodataVariables();
  for (const name of ['syn_sent', 'established', 'fin', 'rst'].map((s) => `sl_ct_timeout_tcp_${s}_ns`).concat('sl_ct_timeout_udp_ns')) {
    t.match(vars.find((v) => v.name === name), { size: 8 }, `${name} is a u64 tunable`);
  }
});
