/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maglev backend selection for NEW external flows (host.bpf.c). User space builds each external
 * service's lookup table over its backends' identities (src/dataplane/maglev-table.ts) and writes
 * it to sl_maglev4 under the backend block's id (IPv6 blocks too: backend_id is one space for
 * both families); here the client's address, port and protocol are hashed into it. Nothing
 * node-local enters the hash (not the frontend address, which differs between the nodes of a
 * NodePort), so every ingress node with the same backend set picks the same backend for a flow,
 * and a flow whose conntrack entry is lost picks the same one again.
 *
 * Everything else keeps lb.h's rules: ClientIP affinity first, the Local set (eTP=Local) and
 * blocks without a table at random. In-cluster traffic (tc.bpf.c, connect.bpf.c) never comes here.
 */
#ifndef SL_LIB_MAGLEV_H
#define SL_LIB_MAGLEV_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"
#include "maps.h"
#include "lb.h"
#include "lb6.h"

/* The seed of the flow hash; mirrored by maglevFlowHash (src/dataplane/maglev-table.ts). */
#define SL_MAGLEV_SEED 0x5eed5a1cU

/* A 32-bit finaliser (murmur3's fmix32): every input bit moves every output bit. */
static __always_inline __u32 sl_maglev_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/*
 * The flow's hash: the client's address and port (as the packet carries them, read as host-order
 * words) and the protocol. Mirrored bit for bit by maglevFlowHash in TS.
 */
static __always_inline __u32 sl_maglev_hash4(__be32 saddr, __be16 sport, __u8 proto)
{
	__u32 h = SL_MAGLEV_SEED;

	h = sl_maglev_mix(h ^ (__u32)saddr);
	h = sl_maglev_mix(h ^ ((__u32)sport | ((__u32)proto << 16)));
	return h;
}

/*
 * The IPv6 flow's hash: sl_maglev_hash4's steps with the address's four words mixed in one after
 * the other (as the packet carries them, read as host-order words). Mirrored by maglevFlowHash.
 */
static __always_inline __u32 sl_maglev_hash6(const __be32 *saddr, __be16 sport, __u8 proto)
{
	__u32 h = SL_MAGLEV_SEED;

	h = sl_maglev_mix(h ^ (__u32)saddr[0]);
	h = sl_maglev_mix(h ^ (__u32)saddr[1]);
	h = sl_maglev_mix(h ^ (__u32)saddr[2]);
	h = sl_maglev_mix(h ^ (__u32)saddr[3]);
	h = sl_maglev_mix(h ^ ((__u32)sport | ((__u32)proto << 16)));
	return h;
}

/*
 * The Cluster-set ordinal the table of block backend_id gives hash, or -1 without a usable table
 * (none, a chunk missing or of another size, an ordinal outside the set of n).
 */
static __always_inline int sl_maglev_ordinal(__u32 backend_id, __u32 hash, __u32 n)
{
	struct sl_maglev_key key = {.backend_id = backend_id, .chunk = 0};
	struct sl_maglev_chunk *c;
	__u32 size, slot, ord;

	c = bpf_map_lookup_elem(&sl_maglev4, &key);
	if (!c)
		return -1;
	size = c->size;
	if (size < SL_MAGLEV_SIZE_MIN || size > SL_MAGLEV_SIZE_MAX)
		return -1;
	slot = hash % size;
	key.chunk = slot / SL_MAGLEV_CHUNK;
	if (key.chunk) {
		c = bpf_map_lookup_elem(&sl_maglev4, &key);
		if (!c || c->size != size)
			return -1;
	}
	ord = c->slot[slot & (SL_MAGLEV_CHUNK - 1)];
	return ord < n ? (int)ord : -1;
}

/*
 * sl_select_backend4 for an external client: the same sets, refusals and ClientIP affinity, with
 * the Cluster set's pick made by the service block's Maglev table when it has one. Returns 0 and
 * fills *out, or a negative -SL_DROP_* reason (as sl_select_backend4).
 */
static __always_inline int sl_maglev_select_backend4(const struct sl_service_value *svc,
						     __be32 saddr, __be16 sport, __u8 proto,
						     struct sl_backend_value4 *out)
{
	bool affinity = (svc->flags & SL_SVC_F_AFFINITY) && svc->affinity_timeout_s;
	__u64 now = 0;
	__u32 base, n;
	int ord = -1, ret;
	bool local;

	local = sl_backend_set(svc, true, &base, &n);
	if (local || !n)
		return sl_select_backend4(svc, saddr, true, out);
	if (affinity) {
		now = bpf_ktime_get_ns();
		if (sl_affinity_lookup4(svc, saddr, base, n, now, out))
			return 0;
	}
	ord = sl_maglev_ordinal(svc->backend_id, sl_maglev_hash4(saddr, sport, proto), n);
	if (ord < 0)
		ord = bpf_get_prandom_u32() % n;
	ret = sl_backend_at4(svc->backend_id, base + ord, out);
	if (ret < 0)
		return ret;
	if (affinity)
		sl_affinity_store4(svc, saddr, now, out);
	return 0;
}

/* sl_maglev_select_backend4 over the IPv6 maps (sl_select_backend6's sets, reasons, affinity). */
static __always_inline int sl_maglev_select_backend6(const struct sl_service_value *svc,
						     const __be32 *saddr, __be16 sport, __u8 proto,
						     struct sl_backend_value6 *out)
{
	bool affinity = (svc->flags & SL_SVC_F_AFFINITY) && svc->affinity_timeout_s;
	__u64 now = 0;
	__u32 base, n;
	int ord = -1, ret;
	bool local;

	local = sl_backend_set(svc, true, &base, &n);
	if (local || !n)
		return sl_select_backend6(svc, saddr, true, out);
	if (affinity) {
		now = bpf_ktime_get_ns();
		if (sl_affinity_lookup6(svc, saddr, base, n, now, out))
			return 0;
	}
	ord = sl_maglev_ordinal(svc->backend_id, sl_maglev_hash6(saddr, sport, proto), n);
	if (ord < 0)
		ord = bpf_get_prandom_u32() % n;
	ret = sl_backend_at6(svc->backend_id, base + ord, out);
	if (ret < 0)
		return ret;
	if (affinity)
		sl_affinity_store6(svc, saddr, now, out);
	return 0;
}

#endif /* SL_LIB_MAGLEV_H */
