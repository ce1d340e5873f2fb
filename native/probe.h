// Kernel feature probes: thin 1:1 bindings of libbpf's libbpf_probe_bpf_prog_type and
// libbpf_probe_bpf_helper (src/datapath/kernel-features.ts decides what the answers mean).
#ifndef SLUICE_NATIVE_PROBE_H
#define SLUICE_NATIVE_PROBE_H

#include <napi.h>

namespace sluice {

// probeBpfProgType(progType: number): boolean
Napi::Value ProbeBpfProgType(const Napi::CallbackInfo& info);

// probeBpfHelper(progType: number, helperId: number): boolean
Napi::Value ProbeBpfHelper(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_PROBE_H
