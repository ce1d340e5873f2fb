/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SNAT of external IPv6 flows to a remote backend: lib/snat.h's port allocation (the same tries,
 * the same reuse of a finished flow's port, the same range) over sl_node_config6 and sl_ct6.
 */
#ifndef SL_LIB_SNAT6_H
#define SL_LIB_SNAT6_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "snat.h"
#include "conntrack6.h"

static __always_inline const struct sl_node_config6 *sl_node_config6_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_node_config6, &zero);
}

static __always_inline bool sl_addr6_is_zero(const __be32 *a)
{
	return !(a[0] | a[1] | a[2] | a[3]);
}

/*
 * A new external IPv6 flow beyond the client's tuple and the backend.
 */
struct sl_ext_flow6 {
	__u64 now;
	__u32 svc_id;
	__be32 snat_addr[4]; /* :: = DNAT only (a local backend) */
	__be16 snat_port;
	__u8 tcp_flags;
	__u8 pad;
};

/* An external flow's entries (sl_ct_create_flow6): EXTERNAL, and SNAT when f->snat_addr is set. */
static __always_inline int sl_ct_create_external6(const struct sl_ct_key6 *fwd,
						  const struct sl_backend_value6 *be,
						  const struct sl_ext_flow6 *f)
{
	__u32 flags = SL_CT_F_EXTERNAL | (sl_addr6_is_zero(f->snat_addr) ? 0 : SL_CT_F_SNAT);

	return sl_ct_create_flow6(fwd, be, f->svc_id, flags, f->snat_addr, f->snat_port,
				  f->tcp_flags, f->now);
}

/*
 * As sl_snat_create4: creates the SNAT flow fwd -> be; f->snat_addr and f->snat_port receive the
 * source to write. Returns 0 or a negative -SL_DROP_* reason (SL_DROP_SNAT_PORTS: no IPv6
 * address configured or no free port). The entries are those sl_ct_create_flow6 makes with
 * SL_CT_F_SNAT, built here once with only the port changing between attempts: the verifier walks
 * every attempt, and a whole IPv6 flow creation per attempt is more than it accepts.
 *
 * Port reuse differs from IPv4's in one way, for the verifier's sake: an attempt judges a taken
 * port by its REVERSE entry alone (sl_ct_snat_may_be_over6, inline), and only the first such
 * candidate gets the full check with the twin after the loop (sl_ct_snat_reclaim6, one call).
 * IPv4's full check on every attempt is a call in IPv6 (stack), which the verifier walks once
 * per attempt: sl_host6_ingr 306k instructions instead of 104k on 6.18, 310k instead of 238k
 * (30 s instead of 10 s under TCG) on 5.10. So when the range is full and the first candidate's
 * flow is only half closed, the flow is dropped even if a later port's flow is over (IPv4 would
 * take that one).
 */
static __always_inline int sl_snat_create6(const struct sl_ct_key6 *fwd,
					   const struct sl_backend_value6 *be,
					   struct sl_ext_flow6 *f)
{
	const struct sl_node_config6 *cfg = sl_node_config6_get();
	struct sl_ct_key6 rev = {.sport = be->port, .proto = fwd->proto};
	struct sl_ct_value6 val = {
		.created_ns = f->now,
		.last_seen_ns = f->now,
		.nat_port = fwd->dport,
		.type = SL_CT_REVERSE,
		.state = sl_ct_next_state(fwd->proto, SL_CT_STATE_NEW, f->tcp_flags, false),
		.svc_id = f->svc_id,
		.flags = SL_CT_F_EXTERNAL | SL_CT_F_SNAT,
		.nat_sport = fwd->sport,
	};
	struct sl_ct_value6 *held;
	__u32 min, span, start, off, reuse, i;
	int ret = -17;

	if (!cfg || sl_addr6_is_zero(cfg->snat_addr) || cfg->snat_port_max < cfg->snat_port_min)
		return -SL_DROP_SNAT_PORTS;
	min = cfg->snat_port_min;
	span = (__u32)cfg->snat_port_max - min + 1;
	sl_addr6_copy(f->snat_addr, cfg->snat_addr);
	sl_addr6_copy(rev.saddr, be->addr);
	sl_addr6_copy(rev.daddr, f->snat_addr);
	sl_addr6_copy(val.nat_addr, fwd->daddr);
	sl_addr6_copy(val.nat_saddr, fwd->saddr);
	start = bpf_get_prandom_u32() % span;
	reuse = span; /* none yet */
	for (i = 0; i < SL_SNAT_TRIES; i++) {
		off = span <= SL_SNAT_TRIES ? (start + i) % span : bpf_get_prandom_u32() % span;
		rev.dport = bpf_htons((__u16)(min + off));
		ret = bpf_map_update_elem(&sl_ct6, &rev, &val, BPF_NOEXIST);
		if (ret != -17 /* EEXIST: taken */)
			break;
		if (reuse == span) {
			held = bpf_map_lookup_elem(&sl_ct6, &rev);
			if (held && sl_ct_snat_may_be_over6(&rev, held, f->now))
				reuse = off;
		}
	}
	if (ret == -17) {
		if (reuse == span)
			return -SL_DROP_SNAT_PORTS;
		rev.dport = bpf_htons((__u16)(min + reuse));
		if (!sl_ct_snat_reclaim6(&rev, f->now))
			return -SL_DROP_SNAT_PORTS;
		ret = bpf_map_update_elem(&sl_ct6, &rev, &val, BPF_NOEXIST);
		if (ret == -17)
			return -SL_DROP_SNAT_PORTS;
	}
	if (ret < 0)
		return -SL_DROP_CT_FULL;
	f->snat_port = rev.dport;
	sl_addr6_copy(val.nat_addr, be->addr);
	val.nat_port = be->port;
	sl_addr6_copy(val.nat_saddr, f->snat_addr);
	val.nat_sport = f->snat_port;
	val.type = SL_CT_FORWARD;
	if (bpf_map_update_elem(&sl_ct6, fwd, &val, BPF_ANY) < 0) {
		bpf_map_delete_elem(&sl_ct6, &rev);
		return -SL_DROP_CT_FULL;
	}
	return 0;
}

#endif /* SL_LIB_SNAT6_H */
