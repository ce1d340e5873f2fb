/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test fixture for src/dataplane: an object that holds exactly the shared maps of bpf/lib/maps.h
 * (and so the BTF of every struct in sluice.h) with a program that is never attached. Loading it
 * with a pin root creates the pinned maps the service-table writer programs, without depending
 * on the datapath programs themselves.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"

/* Touches every map so no toolchain can drop one as unused. Never attached. */
SEC("tc")
int sl_test_dataplane_maps(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct sl_frontend_key4 fk = {};
	struct sl_backend_key bk = {};
	struct sl_ct_key4 ck = {};
	struct sl_affinity_key4 ak = {};
	struct sl_sock_revnat_key4 rk = {};

	if (bpf_map_lookup_elem(&sl_frontends4, &fk) || bpf_map_lookup_elem(&sl_backends4, &bk) ||
	    bpf_map_lookup_elem(&sl_ct4, &ck) || bpf_map_lookup_elem(&sl_affinity4, &ak) ||
	    bpf_map_lookup_elem(&sl_sock_revnat4, &rk) ||
	    bpf_map_lookup_elem(&sl_svc_counters, &zero) ||
	    bpf_map_lookup_elem(&sl_drop_counters, &zero) ||
	    bpf_map_lookup_elem(&sl_svc_meta, &zero))
		return TC_ACT_UNSPEC;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
