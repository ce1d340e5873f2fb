/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test fixture for the native addon (test/bpf/): one map of every type the dataplane uses, a
 * pinned-by-name map, rodata constants that change program behaviour, TC programs that can be
 * test-run, and cgroup connect4 programs for attach/update checks. Not part of the product.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Returned by fixture_retval_prog: proves setRodata reached the kernel. */
const volatile __u32 fixture_retval = 7;
/* Written by fixture_rewrite into the first byte after the Ethernet header. */
const volatile __u8 fixture_mark = 0xab;

typedef __u32 fixture_id_t;

/* A layout with a typedef, a bitfield and an array, for btfStruct(). */
struct fixture_layout {
	fixture_id_t id;
	__be16 port;
	__u8 proto;
	__u8 kind : 3;
	__u8 spare : 5;
	__u64 counter;
	__u32 addr[4];
};
_Static_assert(sizeof(struct fixture_layout) == 32, "fixture_layout size");

/* A plain struct (no bitfields) that a user-space codec can match exactly. */
struct fixture_pair {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
	__u64 value;
};
_Static_assert(sizeof(struct fixture_pair) == 16, "fixture_pair size");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} fixture_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} fixture_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} fixture_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct fixture_pair);
	__type(value, __u32);
} fixture_pairs SEC(".maps");

/* Values of 4 bytes: user space sees 8-byte slots per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} fixture_pcpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} fixture_pcpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct fixture_layout);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fixture_pinned SEC(".maps");

static void bump(__u32 slot)
{
	__u64 *count = bpf_map_lookup_elem(&fixture_array, &slot);

	if (count)
		__sync_fetch_and_add(count, 1);
}

SEC("tc")
int fixture_retval_prog(struct __sk_buff *skb)
{
	return fixture_retval;
}

/* Marks byte 14 of the packet and counts the run in fixture_array[0]. */
SEC("tc")
int fixture_rewrite(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;

	if (data + 15 > data_end)
		return TC_ACT_SHOT;
	data[14] = fixture_mark;
	bump(0);
	return TC_ACT_OK;
}

/* Both allow the connect; each counts in its own fixture_array slot (1 and 2). */
SEC("cgroup/connect4")
int fixture_connect4(struct bpf_sock_addr *ctx)
{
	bump(1);
	return 1;
}

SEC("cgroup/connect4")
int fixture_connect4_alt(struct bpf_sock_addr *ctx)
{
	bump(2);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
