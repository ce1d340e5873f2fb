/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connect-time load balancing: cgroup sock_addr hooks that translate a service frontend to a
 * backend once per socket (connect) or per datagram (unconnected UDP sendmsg), before any
 * packet exists. The TC programs then see plain pod-to-pod traffic. recvmsg/getpeername undo
 * the translation so applications only ever see the frontend address.
 *
 * One path serves both families: each hook reads its address into a struct sl_sock_peer
 * (lib/sock_peer.h) and the decisions below are made in the family of the maps that translate
 * it: the IPv4 maps for the IPv4 hooks and for IPv4-mapped addresses on IPv6 sockets
 * (::ffff:a.b.c.d, a dual-stack socket reaching an IPv4 Service), the IPv6 maps otherwise.
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
#include "lb6.h"
#include "sock.h"
#include "sock6.h"
#include "sock_peer.h"

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

/* Not a frontend: passes, unless fe is a ClusterIP (a port the Service does not have). */
static __always_inline int sl_ctlb_not_frontend(const struct sl_sock_peer *fe)
{
	bool vip =
		fe->v6 ? sl_vip_refuses_unknown6(fe->addr) : sl_vip_refuses_unknown4(fe->addr[0]);

	if (!vip)
		return SL_SOCK_PASS;
	sl_count_drop(SL_DROP_UNKNOWN_PORT);
	return sl_sock_refuse(ECONNREFUSED);
}

/*
 * The service ctx (a connect() or sendmsg() on a balanced protocol) is addressed to, with its
 * address in *fe; or NULL with *verdict set: pass (not a frontend), or refuse (a ClusterIP's
 * port that is no frontend).
 */
static __always_inline struct sl_service_value *
sl_ctlb_service(struct bpf_sock_addr *ctx, bool hook6, struct sl_sock_peer *fe, int *verdict)
{
	struct sl_service_value *svc;

	*verdict = SL_SOCK_PASS;
	if (!sl_ctlb_enabled(ctx->protocol))
		return NULL;
	sl_sock_peer_read(ctx, hook6, fe);
	if (fe->v6)
		svc = sl_lookup_frontend6(fe->addr, fe->port, ctx->protocol);
	else
		svc = sl_lookup_frontend4(fe->addr[0], fe->port, ctx->protocol);
	if (!svc)
		*verdict = sl_ctlb_not_frontend(fe);
	return svc;
}

/* A backend for a new flow to fe, in *be; a negative -SL_DROP_* reason when there is none. */
static __always_inline int sl_ctlb_select(struct bpf_sock_addr *ctx,
					  const struct sl_service_value *svc,
					  const struct sl_sock_peer *fe, struct sl_sock_peer *be)
{
	struct sl_backend_value6 b6;
	struct sl_backend_value4 b4;
	__be32 client[4];
	int ret;

	__builtin_memset(be, 0, sizeof(*be));
	be->v6 = fe->v6;
	if (fe->v6) {
		sl_sock_client_id6(ctx, client);
		ret = sl_select_backend6(svc, client, false, &b6);
		if (ret < 0)
			return ret;
		sl_addr6_copy(be->addr, b6.addr);
		be->port = b6.port;
		return 0;
	}
	ret = sl_select_backend4(svc, sl_sock_client_id4(ctx), false, &b4);
	if (ret < 0)
		return ret;
	be->addr[0] = b4.addr;
	be->port = b4.port;
	return 0;
}

/*
 * The backend this unconnected UDP socket last sent to for fe, when still in the service's set
 * (lib/sock.h). No storage (out of memory): balanced per datagram, without stickiness.
 */
static __always_inline bool sl_ctlb_udp_sticky(struct bpf_sock_addr *ctx,
					       const struct sl_service_value *svc,
					       const struct sl_sock_peer *fe,
					       struct sl_sock_peer *be)
{
	struct sl_backend_value6 b6;
	struct sl_backend_value4 b4;
	struct sl_sock_udp6 *st6;
	struct sl_sock_udp4 *st4;

	__builtin_memset(be, 0, sizeof(*be));
	be->v6 = fe->v6;
	if (fe->v6) {
		st6 = bpf_sk_storage_get(&sl_sock_udp6, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st6 || !sl_sock_udp_sticky6(st6, svc, fe->addr, fe->port, &b6))
			return false;
		sl_addr6_copy(be->addr, b6.addr);
		be->port = b6.port;
		return true;
	}
	st4 = bpf_sk_storage_get(&sl_sock_udp4, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st4 || !sl_sock_udp_sticky4(st4, svc, fe->addr[0], fe->port, &b4))
		return false;
	be->addr[0] = b4.addr;
	be->port = b4.port;
	return true;
}

/* Makes be the socket's sticky backend for fe (after a fresh selection). */
static __always_inline void sl_ctlb_udp_remember(struct bpf_sock_addr *ctx,
						 const struct sl_service_value *svc,
						 const struct sl_sock_peer *fe,
						 const struct sl_sock_peer *be)
{
	struct sl_backend_value6 b6 = {.port = be->port};
	struct sl_backend_value4 b4 = {.addr = be->addr[0], .port = be->port};
	struct sl_sock_udp6 *st6;
	struct sl_sock_udp4 *st4;

	if (fe->v6) {
		st6 = bpf_sk_storage_get(&sl_sock_udp6, ctx->sk, NULL, 0);
		sl_addr6_copy(b6.addr, be->addr);
		if (st6)
			sl_sock_udp_remember6(st6, svc, fe->addr, fe->port, &b6);
		return;
	}
	st4 = bpf_sk_storage_get(&sl_sock_udp4, ctx->sk, NULL, 0);
	if (st4)
		sl_sock_udp_remember4(st4, svc, fe->addr[0], fe->port, &b4);
}

/*
 * The end of a balanced connect()/sendmsg(): remembers that the backend stands for the frontend
 * (for getpeername/recvmsg), counts a new flow, and points the socket call at the backend.
 */
static __always_inline int sl_ctlb_translate(struct bpf_sock_addr *ctx, bool hook6,
					     const struct sl_service_value *svc,
					     const struct sl_sock_peer *fe,
					     const struct sl_sock_peer *be, bool new_flow)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sl_backend_value4 b4 = {.addr = be->addr[0], .port = be->port};

	if (be->v6)
		sl_sock_revnat_record6(cookie, be->addr, be->port, fe->addr, fe->port, svc->svc_id);
	else
		sl_sock_revnat_record4(cookie, &b4, fe->addr[0], fe->port, svc->svc_id);
	if (new_flow)
		sl_count_service(svc->svc_id, 0, true, false);
	sl_sock_peer_write(ctx, hook6, be);
	return SL_SOCK_PASS;
}

static __always_inline int sl_ctlb_connect(struct bpf_sock_addr *ctx, bool hook6)
{
	struct sl_sock_peer fe, be;
	struct sl_service_value *svc;
	int ret;

	svc = sl_ctlb_service(ctx, hook6, &fe, &ret);
	if (!svc)
		return ret;
	ret = sl_ctlb_select(ctx, svc, &fe, &be);
	if (ret < 0)
		return sl_ctlb_refuse(svc->svc_id, -ret);
	return sl_ctlb_translate(ctx, hook6, svc, &fe, &be, true);
}

/*
 * Unconnected UDP (sendto with an address): every datagram to a frontend is balanced. A socket
 * keeps its backend while that backend is still in the service's set, so a flow does not spray
 * over backends, and moves to a live one on the next datagram once its backend is removed.
 */
static __always_inline int sl_ctlb_sendmsg(struct bpf_sock_addr *ctx, bool hook6)
{
	struct sl_sock_peer fe, be;
	struct sl_service_value *svc;
	int ret;

	svc = sl_ctlb_service(ctx, hook6, &fe, &ret);
	if (!svc)
		return ret;
	if (sl_ctlb_udp_sticky(ctx, svc, &fe, &be))
		return sl_ctlb_translate(ctx, hook6, svc, &fe, &be, false);
	ret = sl_ctlb_select(ctx, svc, &fe, &be);
	if (ret < 0)
		return sl_ctlb_refuse(svc->svc_id, -ret);
	sl_ctlb_udp_remember(ctx, svc, &fe, &be);
	return sl_ctlb_translate(ctx, hook6, svc, &fe, &be, true);
}

/* Rewrites the peer in ctx back to the frontend when this socket was balanced to it. */
static __always_inline void sl_ctlb_restore(struct bpf_sock_addr *ctx, bool hook6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sl_sock_revnat_value6 *v6;
	struct sl_sock_revnat_value4 *v4;
	struct sl_sock_peer p;

	sl_sock_peer_read(ctx, hook6, &p);
	if (p.v6) {
		v6 = sl_sock_revnat_lookup6(cookie, p.addr, p.port);
		if (!v6)
			return;
		sl_addr6_copy(p.addr, v6->frontend_addr);
		p.port = v6->frontend_port;
	} else {
		v4 = sl_sock_revnat_lookup4(cookie, p.addr[0], p.port);
		if (!v4)
			return;
		p.addr[0] = v4->frontend_addr;
		p.port = v4->frontend_port;
	}
	sl_sock_peer_write(ctx, hook6, &p);
}

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx)
{
	return sl_ctlb_connect(ctx, false);
}

SEC("cgroup/connect6")
int sl_connect6(struct bpf_sock_addr *ctx)
{
	return sl_ctlb_connect(ctx, true);
}

SEC("cgroup/sendmsg4")
int sl_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sl_ctlb_sendmsg(ctx, false);
}

SEC("cgroup/sendmsg6")
int sl_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sl_ctlb_sendmsg(ctx, true);
}

/* recvmsg/recvfrom on UDP: the datagram's source becomes the frontend it was sent to. */
SEC("cgroup/recvmsg4")
int sl_recvmsg4(struct bpf_sock_addr *ctx)
{
	sl_ctlb_restore(ctx, false);
	return SL_SOCK_PASS; /* recvmsg hooks must return 1 */
}

SEC("cgroup/recvmsg6")
int sl_recvmsg6(struct bpf_sock_addr *ctx)
{
	sl_ctlb_restore(ctx, true);
	return SL_SOCK_PASS;
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx)
{
	sl_ctlb_restore(ctx, false);
	return SL_SOCK_PASS;
}

SEC("cgroup/getpeername6")
int sl_getpeername6(struct bpf_sock_addr *ctx)
{
	sl_ctlb_restore(ctx, true);
	return SL_SOCK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
