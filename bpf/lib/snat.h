/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SNAT of external flows to a remote backend (externalTrafficPolicy Cluster, kube-proxy's
 * behaviour): the request leaves this node with the node's address and a port of a reserved
 * range as its source, so the backend's reply comes back here to be reverse-translated.
 *
 * Ports are tried within [snat_port_min, snat_port_max] of sl_node_config: at random, or, for a
 * range no larger than the tries, every port from a random start. The flow's REVERSE entry
 * (backend:bport -> node:port) is inserted only if no flow holds that tuple, so two live flows
 * never share one. A port whose holder is over (an RST, a FIN each way, or expired: see
 * sl_ct_snat_over4) is taken back, as Linux NAT reuses a TIME_WAIT/CLOSE conntrack's tuple: its
 * two entries are deleted and the new flow takes the port. Free ports are preferred (the backend
 * may still hold a finished tuple in TIME_WAIT); the first reclaimable one met is the fallback.
 * The range lies outside the node's ip_local_port_range (the agent checks), so no socket of the
 * node's own can hold the tuple either.
 */
#ifndef SL_LIB_SNAT_H
#define SL_LIB_SNAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "conntrack.h"

/* Ports tried before giving up: a range 80% held by live flows fails all 16 once in 35. */
#define SL_SNAT_TRIES 16

static __always_inline const struct sl_node_config4 *sl_node_config4(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_node_config, &zero);
}

/*
 * Creates the SNAT flow fwd -> be: addr and port receive the source to write. Returns 0 or a
 * negative -SL_DROP_* reason (no address configured or no free port: SL_DROP_SNAT_PORTS). The
 * entries are those sl_ct_create_external4 makes with an SNAT source, built here once with only
 * the port changing between attempts: the verifier walks every attempt, and a whole flow
 * creation (two inserts and a rollback) per attempt costs it several times more.
 */
static __always_inline int sl_snat_create4(const struct sl_ct_key4 *fwd,
					   const struct sl_backend_value4 *be, __u32 svc_id,
					   __u8 tcp_flags, __u64 now, __be32 *addr, __be16 *port)
{
	const struct sl_node_config4 *cfg = sl_node_config4();
	struct sl_ct_key4 rev = {.saddr = be->addr, .sport = be->port, .proto = fwd->proto};
	struct sl_ct_value4 val, *held;
	__u32 min, span, start, off, reuse, i;
	int ret = -17;

	if (!cfg || !cfg->snat_addr || cfg->snat_port_max < cfg->snat_port_min)
		return -SL_DROP_SNAT_PORTS;
	sl_ct_reverse_value4(&val, fwd, svc_id, SL_CT_F_EXTERNAL | SL_CT_F_SNAT, fwd->saddr,
			     fwd->sport, tcp_flags, now);
	min = cfg->snat_port_min;
	span = (__u32)cfg->snat_port_max - min + 1;
	*addr = cfg->snat_addr;
	rev.daddr = *addr;
	start = bpf_get_prandom_u32() % span;
	reuse = span; /* none yet */
	for (i = 0; i < SL_SNAT_TRIES; i++) {
		off = span <= SL_SNAT_TRIES ? (start + i) % span : bpf_get_prandom_u32() % span;
		rev.dport = bpf_htons((__u16)(min + off));
		ret = bpf_map_update_elem(&sl_ct4, &rev, &val, BPF_NOEXIST);
		if (ret != -17 /* EEXIST: taken */)
			break;
		if (reuse == span) {
			held = bpf_map_lookup_elem(&sl_ct4, &rev);
			if (held && sl_ct_snat_over4(&rev, held, now))
				reuse = off;
		}
	}
	if (ret == -17) {
		if (reuse == span)
			return -SL_DROP_SNAT_PORTS;
		rev.dport = bpf_htons((__u16)(min + reuse));
		if (!sl_ct_snat_reclaim4(&rev, now))
			return -SL_DROP_SNAT_PORTS;
		ret = bpf_map_update_elem(&sl_ct4, &rev, &val, BPF_NOEXIST);
		if (ret == -17)
			return -SL_DROP_SNAT_PORTS;
	}
	if (ret < 0)
		return -SL_DROP_CT_FULL;
	*port = rev.dport;
	val.nat_addr = be->addr;
	val.nat_port = be->port;
	val.nat_saddr = *addr;
	val.nat_sport = *port;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct4, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct4, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SL_LIB_SNAT_H */
