/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Closes connected UDP sockets that connect-time load balancing pointed at a backend which is no
 * longer in its service. A connected UDP socket keeps its kernel destination, so without this
 * a client (a DNS stub resolver, say) would keep sending to a dead backend for as long as the
 * socket lives. Destroying it makes the next send()/recv() fail (ECONNABORTED): the application
 * opens a new socket, which connect4 balances to a live backend.
 *
 * Both families: the iterator walks one table holding IPv4 and IPv6 UDP sockets. An IPv6 socket
 * connected by connect6 has its entry in sl_sock_revnat6; a dual-stack IPv6 socket connected to an
 * IPv4-mapped address (::ffff:a.b.c.d, translated by the IPv4 rules) has it in sl_sock_revnat4,
 * keyed by the IPv4 backend, and is judged as an IPv4 socket.
 *
 * A BPF iterator over UDP sockets (kernel >= 6.5 for the bpf_sock_destroy kfunc). Reading the
 * iterator once is one sweep of the network namespace of the process that opens it, so the
 * agent opens it once per pod network namespace after removing UDP backends. A sweep touches
 * only sockets that have a socket reverse-NAT entry (i.e. that connect4/connect6 balanced) whose
 * backend is gone from the service (or whose service is gone), and deletes that entry too: user
 * space must run the sweep before it deletes the socket reverse-NAT entries of removed UDP
 * backends.
 *
 * The kernel types it reads are declared in lib/udp_iter.h (CO-RE, no vmlinux.h).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "lb6.h"
#include "udp_iter.h"

#define SL_AF_INET	   2
#define SL_AF_INET6	   10
#define SL_TCP_ESTABLISHED 1 /* sk_state of a connected UDP socket */

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/*
 * Is addr:port still a member of the set a pod's connection to svc chooses from? Past the scan
 * bound the backend is trusted (sl_set_find4): a socket of a large set is never closed.
 */
static __always_inline bool sl_backend_in_service4(const struct sl_service_value *svc, __be32 addr,
						   __be16 port)
{
	struct sl_backend_value4 be;
	__u32 base, n;

	sl_backend_set(svc, false, &base, &n);
	return sl_set_trusts4(svc->backend_id, base, n, addr, port, &be);
}

/* sl_backend_in_service4 over the IPv6 maps. */
static __always_inline bool sl_backend_in_service6(const struct sl_service_value *svc,
						   const __be32 *addr, __be16 port)
{
	struct sl_backend_value6 be;
	__u32 base, n, ordinal;

	sl_backend_set(svc, false, &base, &n);
	return sl_set_find6(svc->backend_id, base, n, addr, port, &be, &ordinal) != SL_SET_ABSENT;
}

/* An IPv4 (or v4-mapped) socket connected to backend addr:port: closed if it is stale. */
static __always_inline void sl_sweep4(struct sock_common *skc, __be32 addr, __be16 port)
{
	struct sl_sock_revnat_key4 key = {};
	struct sl_sock_revnat_value4 *rev;
	struct sl_service_value *svc;

	key.cookie = bpf_get_socket_cookie(skc);
	key.backend_addr = addr;
	key.backend_port = port;
	rev = bpf_map_lookup_elem(&sl_sock_revnat4, &key);
	if (!rev)
		return; /* not balanced by connect4: not ours to close */
	svc = sl_lookup_frontend4(rev->frontend_addr, rev->frontend_port, IPPROTO_UDP);
	if (svc && svc->svc_id == rev->svc_id && sl_backend_in_service4(svc, addr, port))
		return;
	bpf_sock_destroy(skc);
	bpf_map_delete_elem(&sl_sock_revnat4, &key);
}

/* An IPv6 socket connected to backend addr:port: closed if it is stale. */
static __always_inline void sl_sweep6(struct sock_common *skc, const __be32 *addr, __be16 port)
{
	struct sl_sock_revnat_key6 key = {};
	struct sl_sock_revnat_value6 *rev;
	struct sl_service_value *svc;

	key.cookie = bpf_get_socket_cookie(skc);
	sl_addr6_copy(key.backend_addr, addr);
	key.backend_port = port;
	rev = bpf_map_lookup_elem(&sl_sock_revnat6, &key);
	if (!rev)
		return; /* not balanced by connect6: not ours to close */
	svc = sl_lookup_frontend6(rev->frontend_addr, rev->frontend_port, IPPROTO_UDP);
	if (svc && svc->svc_id == rev->svc_id && sl_backend_in_service6(svc, addr, port))
		return;
	bpf_sock_destroy(skc);
	bpf_map_delete_elem(&sl_sock_revnat6, &key);
}

SEC("iter/udp")
int sl_sock_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sock_common *skc;
	__be32 addr[4];
	__u16 family;

	if (!udp)
		return 0;
	skc = &udp->inet.sk.__sk_common;
	if (skc->skc_state != SL_TCP_ESTABLISHED)
		return 0;
	family = skc->skc_family;
	if (family == SL_AF_INET) {
		sl_sweep4(skc, skc->skc_daddr, skc->skc_dport);
		return 0;
	}
	/* A kernel built without IPv6 has no skc_v6_daddr: the branch is then dead code. */
	if (family != SL_AF_INET6 || !bpf_core_field_exists(skc->skc_v6_daddr))
		return 0;
	addr[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
	addr[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
	addr[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
	addr[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	if (!addr[0] && !addr[1] && addr[2] == bpf_htonl(0xffff))
		sl_sweep4(skc, addr[3], skc->skc_dport);
	else
		sl_sweep6(skc, addr, skc->skc_dport);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
