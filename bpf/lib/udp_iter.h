/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel types an iter/udp program reads, declared with only the fields used and relocated
 * by CO-RE against the running kernel's BTF (preserve_access_index), so the build needs no
 * vmlinux.h. Field order and the types' full layouts do not matter: libbpf finds each field by
 * name in the kernel's own struct. Shared by sockdestroy.bpf.c and the iterator test fixture.
 */
#ifndef SL_LIB_UDP_ITER_H
#define SL_LIB_UDP_ITER_H

#include <linux/types.h>
#include <linux/in6.h>

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;	/* network order */
	unsigned short skc_num; /* local port, host order */
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr; /* AF_INET6; ::ffff:a.b.c.d (and skc_daddr) when v4-mapped */
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

/* The context of an iter/udp program: one call per UDP socket (udp_sk NULL at the end). */
struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

#endif /* SL_LIB_UDP_ITER_H */
