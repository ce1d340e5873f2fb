/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test fixture for NativeProgram.runIterator (test/bpf/iterator.test.ts): an iter/udp program
 * that only reports, one 8-byte record per IPv4/IPv6 UDP socket it is shown:
 * { u16 family, u16 local port (host order), u32 socket state }. Which sockets appear tells
 * which network namespace the iterator walked.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "udp_iter.h"

struct sl_iter_record {
	__u16 family;
	__u16 lport;
	__u32 state;
};

SEC("iter/udp")
int sl_iter_udp_ports(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sl_iter_record rec = {};
	struct sock_common *skc;

	if (!udp)
		return 0;
	skc = &udp->inet.sk.__sk_common;
	rec.family = skc->skc_family;
	rec.lport = skc->skc_num;
	rec.state = skc->skc_state;
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/* Not an iterator: runIterator must refuse it. */
SEC("tc")
int sl_iter_not_an_iterator(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
