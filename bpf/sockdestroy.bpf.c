/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Closes connected UDP sockets that connect-time load balancing pointed at a backend which is no
 * longer in its service. A connected UDP socket keeps its kernel destination, so without this
 * a client (a DNS stub resolver, say) would keep sending to a dead backend for as long as the
 * socket lives. Destroying it makes the next send()/recv() fail (ECONNABORTED): the application
 * opens a new socket, which connect4 balances to a live backend.
 *
 * A BPF iterator over UDP sockets (kernel >= 6.5 for the bpf_sock_destroy kfunc). Reading the
 * iterator once is one sweep of the network namespace of the process that opens it, so the
 * agent opens it once per pod network namespace after removing UDP backends. A sweep touches
 * only sockets that have a sl_sock_revnat4 entry (i.e. that connect4 balanced) whose backend is
 * gone from the service (or whose service is gone), and deletes that entry too: user space
 * must run the sweep before it deletes the socket reverse-NAT entries of removed UDP backends.
 *
 * The kernel types it reads are declared in lib/udp_iter.h (CO-RE, no vmlinux.h).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "udp_iter.h"

#define SL_AF_INET	   2
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

SEC("iter/udp")
int sl_sock_destroy_udp4(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sl_sock_revnat_key4 key = {};
	struct sl_sock_revnat_value4 *rev;
	struct sl_service_value *svc;
	struct sock_common *skc;

	if (!udp)
		return 0;
	skc = &udp->inet.sk.__sk_common;
	if (skc->skc_family != SL_AF_INET || skc->skc_state != SL_TCP_ESTABLISHED)
		return 0;

	key.cookie = bpf_get_socket_cookie(skc);
	key.backend_addr = skc->skc_daddr;
	key.backend_port = skc->skc_dport;
	rev = bpf_map_lookup_elem(&sl_sock_revnat4, &key);
	if (!rev)
		return 0; /* not balanced by connect4: not ours to close */

	svc = sl_lookup_frontend4(rev->frontend_addr, rev->frontend_port, IPPROTO_UDP);
	if (svc && svc->svc_id == rev->svc_id &&
	    sl_backend_in_service4(svc, key.backend_addr, key.backend_port))
		return 0;

	bpf_sock_destroy(skc);
	bpf_map_delete_elem(&sl_sock_revnat4, &key);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
