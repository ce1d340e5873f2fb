/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket-level helpers for connect-time load balancing (cgroup sock_addr programs): who the
 * client is, the socket reverse-NAT entries that make getpeername()/recvmsg() report the
 * frontend, per-socket stickiness of unconnected UDP (sl_sock_udp4, lib/maps.h), and refusing a
 * connect fast.
 */
#ifndef SL_LIB_SOCK_H
#define SL_LIB_SOCK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"

/*
 * The client identity used for ClientIP affinity at connect time. The source address is not
 * chosen yet when connect()/sendmsg() run (the route decides it later), so the client is
 * identified by its network namespace instead: one pod = one netns = one identity, which is
 * what ClientIP affinity means for a pod. The netns cookie (a small counter) is folded into
 * 0.0.0.0/8 ("this network", never a packet source), so these keys cannot collide with the
 * real client addresses the TC path stores in the same affinity map. Limits: processes of the
 * host network namespace share one identity (as they share the node IP for kube-proxy); past
 * 2^24 namespaces created since boot, two pods may share an identity (affinity only).
 */
static __always_inline __be32 sl_sock_client_id4(struct bpf_sock_addr *ctx)
{
	__u32 id = (__u32)bpf_get_netns_cookie(ctx) & 0x00ffffff;

	return bpf_htonl(id);
}

/* Remembers that this socket's peer backend_addr:backend_port is really the frontend. */
static __always_inline void sl_sock_revnat_record4(__u64 cookie, const struct sl_backend_value4 *be,
						   __be32 frontend_addr, __be16 frontend_port,
						   __u32 svc_id)
{
	struct sl_sock_revnat_key4 key = {
		.cookie = cookie,
		.backend_addr = be->addr,
		.backend_port = be->port,
	};
	struct sl_sock_revnat_value4 val = {
		.frontend_addr = frontend_addr,
		.frontend_port = frontend_port,
		.svc_id = svc_id,
	};
	struct sl_sock_revnat_value4 *cur = bpf_map_lookup_elem(&sl_sock_revnat4, &key);

	/* A datagram path calls this per send: write only what changed. */
	if (cur && cur->frontend_addr == frontend_addr && cur->frontend_port == frontend_port &&
	    cur->svc_id == svc_id)
		return;
	bpf_map_update_elem(&sl_sock_revnat4, &key, &val, BPF_ANY);
}

/*
 * The frontend this socket's peer backend_addr:backend_port stands for (the peer for
 * getpeername, the source of a datagram for recvmsg), or NULL when it was not balanced to it.
 */
static __always_inline struct sl_sock_revnat_value4 *
sl_sock_revnat_lookup4(__u64 cookie, __be32 backend_addr, __be16 backend_port)
{
	struct sl_sock_revnat_key4 key = {
		.cookie = cookie,
		.backend_addr = backend_addr,
		.backend_port = backend_port,
	};

	return bpf_map_lookup_elem(&sl_sock_revnat4, &key);
}

/*
 * The backend this UDP socket last used for the frontend, when it is still a member of the set
 * the service would choose from now. Returns true and fills *out on a hit; refreshes the slot
 * hint in *st when the service moved to a new block.
 */
static __always_inline bool sl_sock_udp_sticky4(struct sl_sock_udp4 *st,
						const struct sl_service_value *svc,
						__be32 frontend_addr, __be16 frontend_port,
						struct sl_backend_value4 *out)
{
	struct sl_backend_key key = {.backend_id = svc->backend_id};
	struct sl_backend_value4 *be;
	__u32 base, n, ord;

	if (st->frontend_addr != frontend_addr || st->frontend_port != frontend_port ||
	    !st->backend_addr)
		return false;
	sl_backend_set(svc, false, &base, &n);
	/* Fast path: same block, and the slot still holds the backend. */
	if (st->backend_id == svc->backend_id && st->ordinal >= base && st->ordinal - base < n) {
		key.ordinal = st->ordinal;
		be = bpf_map_lookup_elem(&sl_backends4, &key);
		if (be && be->addr == st->backend_addr && be->port == st->backend_port) {
			*out = *be;
			return true;
		}
	}
	/*
	 * The service moved to a new block (or the slot changed): is the backend still in it? Past
	 * the scan bound it is not known: re-balanced, which costs only stickiness.
	 */
	if (sl_set_find4(svc->backend_id, base, n, st->backend_addr, st->backend_port, out, &ord) !=
	    SL_SET_PRESENT)
		return false;
	st->backend_id = svc->backend_id;
	st->ordinal = ord;
	return true;
}

/* Makes be the socket's sticky backend for the frontend (after a fresh selection). */
static __always_inline void sl_sock_udp_remember4(struct sl_sock_udp4 *st,
						  const struct sl_service_value *svc,
						  __be32 frontend_addr, __be16 frontend_port,
						  const struct sl_backend_value4 *be)
{
	struct sl_backend_value4 found;
	__u32 base, n, ord;

	sl_backend_set(svc, false, &base, &n);
	/* Not found (past the scan bound): an impossible slot forces the slow path. */
	if (sl_set_find4(svc->backend_id, base, n, be->addr, be->port, &found, &ord) !=
	    SL_SET_PRESENT)
		ord = (__u32)-1;
	st->frontend_addr = frontend_addr;
	st->frontend_port = frontend_port;
	st->backend_id = svc->backend_id;
	st->ordinal = ord;
	st->backend_addr = be->addr;
	st->backend_port = be->port;
}

/*
 * Set before load to act as a kernel without bpf_set_retval (the tests' way to run the fallback
 * on a kernel that has it). Never set by the agent.
 */
const volatile bool sl_sock_refuse_no_retval = false;

/*
 * Makes the connect()/sendmsg() fail right away: with -err where the kernel lets a cgroup
 * sock_addr program choose the error (bpf_set_retval, kernel >= 5.18), else with EPERM, which is
 * what returning 0 means there. Whether the helper exists is a CO-RE question libbpf answers at
 * load from the running kernel's BTF: on an older kernel the branch is a constant false, the
 * verifier never walks the call, and the object loads. Returns the program's return value.
 */
static __always_inline int sl_sock_refuse(int err)
{
	if (!sl_sock_refuse_no_retval &&
	    bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_set_retval))
		bpf_set_retval(-err);
	return 0;
}

#endif /* SL_LIB_SOCK_H */
