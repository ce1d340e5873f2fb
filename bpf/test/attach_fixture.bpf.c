/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test fixture for the attach tests (test/attach/): TC programs that count real packets, and a
 * cgroup connect4 program with an effect a socket can see. Not part of the product.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Slots of attach_counters: which program saw the packet. */
#define SLOT_PRIMARY   0
#define SLOT_SECONDARY 1
#define SLOT_CONNECT   2

/* connect4: connects to this port are refused (EPERM); 0 disables. Host byte order. */
const volatile __u16 reject_port = 0;
/* connect4: connects to rewrite_from are sent to rewrite_to instead; 0 disables. */
const volatile __u16 rewrite_from = 0;
const volatile __u16 rewrite_to = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} attach_counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&attach_counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * Both TC programs return TC_ACT_UNSPEC: "no verdict, ask the next filter", so filters at later
 * priorities on the same hook still see the packet (TC_ACT_OK would end classification).
 */
SEC("tc")
int attach_count_primary(struct __sk_buff *skb)
{
	count(SLOT_PRIMARY);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int attach_count_secondary(struct __sk_buff *skb)
{
	count(SLOT_SECONDARY);
	return TC_ACT_UNSPEC;
}

SEC("cgroup/connect4")
int attach_connect4(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs(ctx->user_port);

	count(SLOT_CONNECT);
	if (reject_port && port == reject_port)
		return 0;
	if (rewrite_from && port == rewrite_from)
		ctx->user_port = bpf_htons(rewrite_to);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
