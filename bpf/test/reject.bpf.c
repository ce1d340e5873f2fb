/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test fixture: compiles, but the verifier must reject it (packet read without a bounds check),
 * so test/bpf/ can check that a load failure carries the verifier log.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int reject_unchecked(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[20];
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
