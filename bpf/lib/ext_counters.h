/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-kind counters of external traffic (sl_ext_counters: NodePort, LoadBalancer, ExternalIP),
 * by the frontend's kind bits (sl_service_value.flags, enum sl_frontend_kind). Both families'
 * host-interface paths count here (host.bpf.c, lib/host6.h).
 */
#ifndef SL_LIB_EXT_COUNTERS_H
#define SL_LIB_EXT_COUNTERS_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"

static __always_inline void sl_count_kind(__u32 svc_flags, __u64 bytes, bool new_flow, bool refused)
{
	__u32 kind = (svc_flags & SL_SVC_F_KIND_MASK) >> SL_SVC_F_KIND_SHIFT;
	struct sl_svc_counters *c = bpf_map_lookup_elem(&sl_ext_counters, &kind);

	if (!c)
		return;
	if (refused) {
		c->rejected += 1;
		return;
	}
	c->packets += 1;
	c->bytes += bytes;
	if (new_flow)
		c->connections += 1;
}

#endif /* SL_LIB_EXT_COUNTERS_H */
