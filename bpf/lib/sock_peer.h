/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The address a cgroup sock_addr program works on, in either family: where connect()/sendmsg()
 * aim, or the peer getpeername()/recvmsg() report. One connect-time path serves the IPv4 and
 * the IPv6 hooks: each reads the address into a struct sl_sock_peer, decides in the family of
 * the maps that translate it, and writes it back.
 *
 * An IPv6 socket may aim at an IPv4-mapped address (::ffff:a.b.c.d, a dual-stack socket
 * reaching an IPv4 Service): that is an IPv4 peer, translated by the IPv4 maps and written back
 * mapped, so the socket still sees ::ffff:backend (and ::ffff:frontend from getpeername).
 */
#ifndef SL_LIB_SOCK_PEER_H
#define SL_LIB_SOCK_PEER_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"

struct sl_sock_peer {
	__be32 addr[4]; /* IPv4: addr[0] only */
	__be16 port;	/* network order */
	bool v6; /* the IPv6 maps; false: the IPv4 maps (an IPv4 hook or an IPv4-mapped address) */
};

static __always_inline bool sl_addr6_is_v4mapped(const __be32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/*
 * Reads the address of ctx. hook6: the program is an IPv6 hook (connect6, sendmsg6, ...), a
 * constant at every call site, so each program only touches the ctx fields its hook allows.
 */
static __always_inline void sl_sock_peer_read(struct bpf_sock_addr *ctx, bool hook6,
					      struct sl_sock_peer *p)
{
	p->port = (__be16)ctx->user_port;
	p->addr[1] = 0;
	p->addr[2] = 0;
	p->addr[3] = 0;
	if (!hook6) {
		p->addr[0] = ctx->user_ip4;
		p->v6 = false;
		return;
	}
	p->addr[0] = ctx->user_ip6[0];
	p->addr[1] = ctx->user_ip6[1];
	p->addr[2] = ctx->user_ip6[2];
	p->addr[3] = ctx->user_ip6[3];
	p->v6 = !sl_addr6_is_v4mapped(p->addr);
	if (!p->v6) {
		p->addr[0] = p->addr[3];
		p->addr[1] = 0;
		p->addr[2] = 0;
		p->addr[3] = 0;
	}
}

/* Writes p into ctx (an IPv4 peer on an IPv6 hook stays IPv4-mapped). */
static __always_inline void sl_sock_peer_write(struct bpf_sock_addr *ctx, bool hook6,
					       const struct sl_sock_peer *p)
{
	ctx->user_port = (__u32)p->port;
	if (!hook6) {
		ctx->user_ip4 = p->addr[0];
		return;
	}
	if (!p->v6) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = p->addr[0];
		return;
	}
	ctx->user_ip6[0] = p->addr[0];
	ctx->user_ip6[1] = p->addr[1];
	ctx->user_ip6[2] = p->addr[2];
	ctx->user_ip6[3] = p->addr[3];
}

#endif /* SL_LIB_SOCK_PEER_H */
