/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * loadBalancerSourceRanges (sl_src_ranges4 and sl_src_ranges6, see sluice.h): a service flagged
 * SL_SVC_F_SRC_RANGES takes new external flows only from sources inside one of its ranges; others
 * are dropped (not rejected), as kube-proxy's KUBE-FW chain does. Each family's service port looks
 * in its own trie only: an IPv6 port whose Service listed IPv4 ranges alone has no entry there,
 * so every IPv6 client is outside (dropped).
 */
#ifndef SL_LIB_SRC_RANGES_H
#define SL_LIB_SRC_RANGES_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"

/* Prefix length of a full key: svc_id (32 bits) and the address (32 bits; IPv6: 128). */
#define SL_SRC_RANGE_FULL_PREFIX  64
#define SL_SRC_RANGE_FULL_PREFIX6 160

static __always_inline bool sl_src_range_allows4(const struct sl_service_value *svc, __be32 saddr)
{
	struct sl_src_range_key4 key = {
		.prefixlen = SL_SRC_RANGE_FULL_PREFIX,
		.svc_id = svc->svc_id,
		.addr = saddr,
	};

	if (!(svc->flags & SL_SVC_F_SRC_RANGES))
		return true;
	return bpf_map_lookup_elem(&sl_src_ranges4, &key) != NULL;
}

static __always_inline bool sl_src_range_allows6(const struct sl_service_value *svc,
						 const __be32 *saddr)
{
	struct sl_src_range_key6 key = {
		.prefixlen = SL_SRC_RANGE_FULL_PREFIX6,
		.svc_id = svc->svc_id,
		.addr = {saddr[0], saddr[1], saddr[2], saddr[3]},
	};

	if (!(svc->flags & SL_SVC_F_SRC_RANGES))
		return true;
	return bpf_map_lookup_elem(&sl_src_ranges6, &key) != NULL;
}

#endif /* SL_LIB_SRC_RANGES_H */
