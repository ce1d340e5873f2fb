/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service lookup and backend selection over the IPv6 maps (lib/maps6.h): the IPv6 side of
 * lib/lb.h, whose family-free parts (the set a flow chooses from, counters, the scan bound and
 * its meaning) it uses as they are. The rules are those of lb.h; see the comments there.
 */
#ifndef SL_LIB_LB6_H
#define SL_LIB_LB6_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "clock.h"
#include "maps.h"
#include "lb.h"

static __always_inline bool sl_addr6_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline void sl_addr6_copy(__be32 *dst, const __be32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

static __always_inline struct sl_service_value *sl_lookup_frontend6(const __be32 *addr, __be16 port,
								    __u8 proto)
{
	struct sl_frontend_key6 key = {.port = port, .proto = proto, .scope = SL_SCOPE_ANY};

	sl_addr6_copy(key.addr, addr);
	return bpf_map_lookup_elem(&sl_frontends6, &key);
}

/* As sl_vip_refuses_unknown4, for an IPv6 ClusterIP (sl_vips6). */
static __always_inline bool sl_vip_refuses_unknown6(const __be32 *addr)
{
	struct sl_vip_key6 key;
	struct sl_vip_value *vip;

	sl_addr6_copy(key.addr, addr);
	vip = bpf_map_lookup_elem(&sl_vips6, &key);
	return vip && (vip->flags & SL_VIP_F_REJECT_UNKNOWN);
}

static __always_inline int sl_backend_at6(__u32 backend_id, __u32 ordinal,
					  struct sl_backend_value6 *out)
{
	struct sl_backend_key key = {.backend_id = backend_id, .ordinal = ordinal};
	struct sl_backend_value6 *be = bpf_map_lookup_elem(&sl_backends6, &key);

	if (!be)
		return -SL_DROP_BACKEND_MISSING;
	*out = *be;
	return 0;
}

/* sl_set_find4 over sl_backends6: the same bound, the same answers. */
static __always_inline enum sl_set_membership sl_set_find6(__u32 backend_id, __u32 base, __u32 n,
							   const __be32 *addr, __be16 port,
							   struct sl_backend_value6 *out,
							   __u32 *ordinal)
{
	struct sl_backend_key key = {.backend_id = backend_id};
	struct sl_backend_value6 *be;
	__u32 i;

#pragma clang loop unroll(disable)
	for (i = 0; i < SL_SET_SCAN_MAX; i++) {
		if (i >= n)
			return SL_SET_ABSENT;
		key.ordinal = base + i;
		be = bpf_map_lookup_elem(&sl_backends6, &key);
		if (be && be->port == port && sl_addr6_eq(be->addr, addr)) {
			*out = *be;
			*ordinal = key.ordinal;
			return SL_SET_PRESENT;
		}
	}
	return n > SL_SET_SCAN_MAX ? SL_SET_UNKNOWN : SL_SET_ABSENT;
}

static __always_inline bool sl_affinity_lookup6(const struct sl_service_value *svc,
						const __be32 *client_addr, __u32 base, __u32 n,
						__u64 now, struct sl_backend_value6 *out)
{
	struct sl_affinity_key6 key = {.svc_id = svc->svc_id};
	struct sl_affinity_value6 *aff;
	__u64 timeout_ns = (__u64)svc->affinity_timeout_s * SL_NS_PER_SEC;
	__u32 ordinal;

	sl_addr6_copy(key.client_addr, client_addr);
	aff = bpf_map_lookup_elem(&sl_affinity6, &key);
	if (!aff || sl_idle_longer_than(now, aff->last_used_ns, timeout_ns))
		return false;
	switch (sl_set_find6(svc->backend_id, base, n, aff->backend_addr, aff->backend_port, out,
			     &ordinal)) {
	case SL_SET_PRESENT:
		break;
	case SL_SET_UNKNOWN: /* trusted, as in sl_set_trusts4 */
		__builtin_memset(out, 0, sizeof(*out));
		sl_addr6_copy(out->addr, aff->backend_addr);
		out->port = aff->backend_port;
		break;
	default:
		return false;
	}
	aff->last_used_ns = now;
	return true;
}

static __always_inline void sl_affinity_store6(const struct sl_service_value *svc,
					       const __be32 *client_addr, __u64 now,
					       const struct sl_backend_value6 *be)
{
	struct sl_affinity_key6 key = {.svc_id = svc->svc_id};
	struct sl_affinity_value6 val = {.last_used_ns = now, .backend_port = be->port};

	sl_addr6_copy(key.client_addr, client_addr);
	sl_addr6_copy(val.backend_addr, be->addr);
	bpf_map_update_elem(&sl_affinity6, &key, &val, BPF_ANY);
}

/* sl_select_backend4 over the IPv6 maps: the same sets, affinity and reasons. */
static __always_inline int sl_select_backend6(const struct sl_service_value *svc,
					      const __be32 *client_addr, bool external,
					      struct sl_backend_value6 *out)
{
	bool affinity = (svc->flags & SL_SVC_F_AFFINITY) && svc->affinity_timeout_s;
	__u64 now = 0;
	__u32 base, n;
	bool local;
	int ret;

	local = sl_backend_set(svc, external, &base, &n);
	if (!n)
		return local && svc->count ? -SL_DROP_NO_LOCAL_BACKEND : -SL_DROP_NO_BACKEND;
	if (affinity) {
		now = bpf_ktime_get_ns();
		if (sl_affinity_lookup6(svc, client_addr, base, n, now, out))
			return 0;
	}
	ret = sl_backend_at6(svc->backend_id, base + bpf_get_prandom_u32() % n, out);
	if (ret < 0)
		return ret;
	if (affinity)
		sl_affinity_store6(svc, client_addr, now, out);
	return 0;
}

#endif /* SL_LIB_LB6_H */
