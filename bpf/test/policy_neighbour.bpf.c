/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A foreign TC program shaped like the AWS network policy agent's (test fixture for
 * test/coexistence/tc-neighbours.test.ts): attached by the test at priority 1 in direct-action
 * mode on the same pod veth hooks as Sluice, it counts every packet, remembers which
 * source -> destination pairs it saw (what a policy program behind Sluice is shown), drops IPv4
 * packets to one chosen destination, and ends the chain with TC_ACT_OK for everything else.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The destination to drop (network order); 0 drops nothing. */
const volatile __be32 fx_drop_daddr = 0;

#define FX_PACKETS 0
#define FX_DROPPED 1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} fx_counters SEC(".maps");

struct fx_pair {
	__be32 saddr;
	__be32 daddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct fx_pair);
	__type(value, __u64);
} fx_seen SEC(".maps");

static __always_inline void fx_count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&fx_counters, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tc")
int fx_policy(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct fx_pair pair = {};
	struct iphdr *ip;
	__u64 one = 1, *n;

	fx_count(FX_PACKETS);
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	pair.saddr = ip->saddr;
	pair.daddr = ip->daddr;
	n = bpf_map_lookup_elem(&fx_seen, &pair);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&fx_seen, &pair, &one, BPF_NOEXIST);
	if (fx_drop_daddr && ip->daddr == fx_drop_daddr) {
		fx_count(FX_DROPPED);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
