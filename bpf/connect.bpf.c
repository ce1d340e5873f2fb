/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connect-time load balancing: cgroup sock_addr hooks that translate a service frontend to a
 * backend once per socket (connect) or per datagram (unconnected UDP sendmsg), before any
 * packet exists. The TC programs then see plain pod-to-pod traffic. recvmsg/getpeername undo
 * the translation so applications only ever see the frontend address.
 *
 * Attached by the agent to the cgroup that holds the workloads (the root cgroup on a node).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "sock.h"

/*
 * Which protocols are balanced here (SL_CTLB_*), set by the agent before load: TCP+UDP, or
 * TCP only (UDP then goes through the TC programs). "Disabled" means not attaching at all.
 */
const volatile __u32 sl_ctlb_protocols = SL_CTLB_TCP | SL_CTLB_UDP;

/* Return values of cgroup sock_addr programs. */
#define SL_SOCK_PASS 1

static __always_inline bool sl_ctlb_enabled(__u32 proto)
{
	if (proto == IPPROTO_TCP)
		return sl_ctlb_protocols & SL_CTLB_TCP;
	if (proto == IPPROTO_UDP)
		return sl_ctlb_protocols & SL_CTLB_UDP;
	return false;
}

/*
 * A frontend with no usable backend. No backend at all: connect()/sendmsg() fail with
 * ECONNREFUSED at once (kube-proxy rejects). A Local traffic policy without a local backend is a
 * drop for kube-proxy; a socket call cannot hang, so it fails with EHOSTUNREACH instead, which
 * keeps the two cases apart for the application and in the drop counters.
 */
static __always_inline int sl_ctlb_refuse(__u32 svc_id, int reason)
{
	sl_count_drop(reason);
	sl_count_service(svc_id, 0, false, true);
	if (reason == SL_DROP_NO_LOCAL_BACKEND)
		return sl_sock_refuse(EHOSTUNREACH);
	return sl_sock_refuse(ECONNREFUSED);
}

/* Not a frontend: passes, unless addr is a ClusterIP (a port the Service does not have). */
static __always_inline int sl_ctlb_not_frontend(__be32 addr)
{
	if (!sl_vip_refuses_unknown4(addr))
		return SL_SOCK_PASS;
	sl_count_drop(SL_DROP_UNKNOWN_PORT);
	return sl_sock_refuse(ECONNREFUSED);
}

/*
 * The service ctx (a connect() or sendmsg() on a balanced protocol) is addressed to, or NULL
 * with *verdict set: pass (not a frontend), or refuse (a ClusterIP's port that is no frontend).
 */
static __always_inline struct sl_service_value *sl_ctlb_service(struct bpf_sock_addr *ctx,
								int *verdict)
{
	struct sl_service_value *svc;

	*verdict = SL_SOCK_PASS;
	if (!sl_ctlb_enabled(ctx->protocol))
		return NULL;
	svc = sl_lookup_frontend4(ctx->user_ip4, (__be16)ctx->user_port, ctx->protocol);
	if (!svc)
		*verdict = sl_ctlb_not_frontend(ctx->user_ip4);
	return svc;
}

/*
 * The end of a balanced connect()/sendmsg(): remembers that the backend stands for the frontend
 * ctx still holds (for getpeername/recvmsg), counts a new flow, and points the socket call at
 * the backend.
 */
static __always_inline int sl_ctlb_translate(struct bpf_sock_addr *ctx,
					     const struct sl_service_value *svc,
					     const struct sl_backend_value4 *be, bool new_flow)
{
	sl_sock_revnat_record4(bpf_get_socket_cookie(ctx), be, ctx->user_ip4,
			       (__be16)ctx->user_port, svc->svc_id);
	if (new_flow)
		sl_count_service(svc->svc_id, 0, true, false);
	ctx->user_ip4 = be->addr;
	ctx->user_port = (__u32)be->port;
	return SL_SOCK_PASS;
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	struct sl_backend_value4 be;
	struct sl_service_value *svc;
	int ret;

	svc = sl_ctlb_service(ctx, &ret);
	if (!svc)
		return ret;
	ret = sl_select_backend4(svc, sl_sock_client_id4(ctx), false, &be);
	if (ret < 0)
		return sl_ctlb_refuse(svc->svc_id, -ret);
	return sl_ctlb_translate(ctx, svc, &be, true);
}

/*
 * Unconnected UDP (sendto with an address): every datagram to a frontend is balanced. A socket
 * keeps its backend while that backend is still in the service's set, so a flow does not spray
 * over backends, and moves to a live one on the next datagram once its backend is removed.
 */
SEC("cgroup/sendmsg4")
int sl_sendmsg4(struct bpf_sock_addr *ctx)
{
	__be32 frontend_addr = ctx->user_ip4;
	__be16 frontend_port = (__be16)ctx->user_port;
	struct sl_backend_value4 be;
	struct sl_service_value *svc;
	struct sl_sock_udp4 *st;
	int ret;

	svc = sl_ctlb_service(ctx, &ret);
	if (!svc)
		return ret;
	/* No storage (out of memory): balanced per datagram, without stickiness. */
	st = bpf_sk_storage_get(&sl_sock_udp4, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (st && sl_sock_udp_sticky4(st, svc, frontend_addr, frontend_port, &be))
		return sl_ctlb_translate(ctx, svc, &be, false);
	ret = sl_select_backend4(svc, sl_sock_client_id4(ctx), false, &be);
	if (ret < 0)
		return sl_ctlb_refuse(svc->svc_id, -ret);
	if (st)
		sl_sock_udp_remember4(st, svc, frontend_addr, frontend_port, &be);
	return sl_ctlb_translate(ctx, svc, &be, true);
}

/* recvmsg/recvfrom on UDP: the datagram's source becomes the frontend it was sent to. */
SEC("cgroup/recvmsg4")
int sl_recvmsg4(struct bpf_sock_addr *ctx)
{
	sl_sock_revnat_restore4(ctx);
	return SL_SOCK_PASS; /* recvmsg hooks must return 1 */
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx)
{
	sl_sock_revnat_restore4(ctx);
	return SL_SOCK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
