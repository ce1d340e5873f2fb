/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which tracked flow an ICMP error is about (icmp.h parses it, conntrack.h holds the flows). The
 * error quotes a packet of the flow as it travelled; the entry keyed by the quote's mirror image
 * (its destination as source) is the one whose translation the quote needs: the REVERSE entry for
 * a quote of what the client side sent towards a backend, the FORWARD entry for a quote of a
 * reply the client side got.
 */
#ifndef SL_LIB_ICMP_FLOW_H
#define SL_LIB_ICMP_FLOW_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "icmp.h"

/* Parses an ICMP error into *e; its flow's entry (mirror key of the quote), or NULL. */
static __always_inline struct sl_ct_value4 *sl_icmp_err_flow4(struct __sk_buff *skb,
							      struct sl_icmp_err4 *e)
{
	struct sl_ct_key4 key = {};

	if (sl_parse_icmp_err4(skb, e) != SL_PARSE_OK)
		return NULL;
	key.saddr = e->in_daddr;
	key.daddr = e->in_saddr;
	key.sport = e->in_dport;
	key.dport = e->in_sport;
	key.proto = e->in_proto;
	return bpf_map_lookup_elem(&sl_ct4, &key);
}

#endif /* SL_LIB_ICMP_FLOW_H */
