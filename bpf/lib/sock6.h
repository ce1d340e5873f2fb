/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv6 side of lib/sock.h: the client identity for ClientIP affinity at connect time, the
 * socket reverse-NAT entries (sl_sock_revnat6) and per-socket UDP stickiness (sl_sock_udp6).
 * The rules are sock.h's; see the comments there.
 */
#ifndef SL_LIB_SOCK6_H
#define SL_LIB_SOCK6_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "lb6.h"

/*
 * As sl_sock_client_id4: the client's network namespace stands for it. The netns cookie goes in
 * the last 64 bits of ::/64, a prefix no packet carries as its source, so these keys never meet
 * the real client addresses the TC path stores in sl_affinity6.
 */
static __always_inline void sl_sock_client_id6(struct bpf_sock_addr *ctx, __be32 *id)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);

	id[0] = 0;
	id[1] = 0;
	id[2] = bpf_htonl((__u32)(cookie >> 32));
	id[3] = bpf_htonl((__u32)cookie);
}

static __always_inline void sl_sock_revnat_record6(__u64 cookie, const __be32 *backend_addr,
						   __be16 backend_port, const __be32 *frontend_addr,
						   __be16 frontend_port, __u32 svc_id)
{
	struct sl_sock_revnat_key6 key = {.cookie = cookie, .backend_port = backend_port};
	struct sl_sock_revnat_value6 val = {.frontend_port = frontend_port, .svc_id = svc_id};
	struct sl_sock_revnat_value6 *cur;

	sl_addr6_copy(key.backend_addr, backend_addr);
	sl_addr6_copy(val.frontend_addr, frontend_addr);
	cur = bpf_map_lookup_elem(&sl_sock_revnat6, &key);
	/* A datagram path calls this per send: write only what changed. */
	if (cur && cur->frontend_port == frontend_port && cur->svc_id == svc_id &&
	    sl_addr6_eq(cur->frontend_addr, frontend_addr))
		return;
	bpf_map_update_elem(&sl_sock_revnat6, &key, &val, BPF_ANY);
}

/* The frontend this socket's peer backend stands for, or NULL. */
static __always_inline struct sl_sock_revnat_value6 *
sl_sock_revnat_lookup6(__u64 cookie, const __be32 *backend_addr, __be16 backend_port)
{
	struct sl_sock_revnat_key6 key = {.cookie = cookie, .backend_port = backend_port};

	sl_addr6_copy(key.backend_addr, backend_addr);
	return bpf_map_lookup_elem(&sl_sock_revnat6, &key);
}

/* As sl_sock_udp_sticky4. */
static __always_inline bool sl_sock_udp_sticky6(struct sl_sock_udp6 *st,
						const struct sl_service_value *svc,
						const __be32 *frontend_addr, __be16 frontend_port,
						struct sl_backend_value6 *out)
{
	struct sl_backend_key key = {.backend_id = svc->backend_id};
	struct sl_backend_value6 *be;
	__u32 base, n, ord;

	if (st->frontend_port != frontend_port || !sl_addr6_eq(st->frontend_addr, frontend_addr) ||
	    !st->backend_port)
		return false;
	sl_backend_set(svc, false, &base, &n);
	if (st->backend_id == svc->backend_id && st->ordinal >= base && st->ordinal - base < n) {
		key.ordinal = st->ordinal;
		be = bpf_map_lookup_elem(&sl_backends6, &key);
		if (be && be->port == st->backend_port && sl_addr6_eq(be->addr, st->backend_addr)) {
			*out = *be;
			return true;
		}
	}
	if (sl_set_find6(svc->backend_id, base, n, st->backend_addr, st->backend_port, out, &ord) !=
	    SL_SET_PRESENT)
		return false;
	st->backend_id = svc->backend_id;
	st->ordinal = ord;
	return true;
}

/* As sl_sock_udp_remember4. */
static __always_inline void sl_sock_udp_remember6(struct sl_sock_udp6 *st,
						  const struct sl_service_value *svc,
						  const __be32 *frontend_addr, __be16 frontend_port,
						  const struct sl_backend_value6 *be)
{
	struct sl_backend_value6 found;
	__u32 base, n, ord;

	sl_backend_set(svc, false, &base, &n);
	if (sl_set_find6(svc->backend_id, base, n, be->addr, be->port, &found, &ord) !=
	    SL_SET_PRESENT)
		ord = (__u32)-1;
	sl_addr6_copy(st->frontend_addr, frontend_addr);
	st->frontend_port = frontend_port;
	st->backend_id = svc->backend_id;
	st->ordinal = ord;
	sl_addr6_copy(st->backend_addr, be->addr);
	st->backend_port = be->port;
}

#endif /* SL_LIB_SOCK6_H */
