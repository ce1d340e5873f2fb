/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The cheapest TC program: the baseline the TC datapath benchmark is measured against. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int sl_tc_noop(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
