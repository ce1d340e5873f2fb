/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every struct and constant shared between the BPF programs and user space. This header is the
 * single truth: the TypeScript codecs in src/bpf/sluice-structs.ts are verified against the
 * compiled object's BTF at load time and in tests, so a drift fails loudly.
 *
 * Conventions: fixed-width types; fields in network byte order are typed __be16/__be32 and
 * say so in their comment; explicit padding; a _Static_assert on every size. IPv4 structs end
 * in 4; their IPv6 twins (same layout with __u32 addr[4]) follow the same pattern.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <linux/types.h>

/* Frontend (service address) map: sl_frontends4. */
struct sl_frontend_key4 {
	__be32 addr; /* ClusterIP, node address (NodePort), external or LoadBalancer IP */
	__be16 port; /* network order */
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 scope;  /* SL_SCOPE_*: reserved for per-source-scope entries; 0 today */
};
_Static_assert(sizeof(struct sl_frontend_key4) == 8, "sl_frontend_key4 size");

/* Frontend scopes (sl_frontend_key4.scope). */
enum sl_scope {
	SL_SCOPE_ANY = 0,
};

/* Service flags (sl_service_value.flags). */
enum sl_svc_flags {
	SL_SVC_F_INTERNAL_LOCAL = 1U << 0, /* iTP=Local: pods use the local set */
	SL_SVC_F_EXTERNAL_LOCAL = 1U << 1, /* eTP=Local: external uses local set */
	SL_SVC_F_AFFINITY = 1U << 2,	   /* ClientIP session affinity */
	SL_SVC_F_EXTERNAL = 1U << 3,	   /* NodePort / ExternalIP / LoadBalancer frontend */
	SL_SVC_F_SRC_RANGES = 1U << 4,	   /* loadBalancerSourceRanges apply (sl_src_ranges4/6) */
	SL_SVC_F_DSR = 1U << 5,		   /* reply directly from the backend's node (later) */
	SL_SVC_F_MAGLEV = 1U << 6, /* reserved: a block's table in sl_maglev4 is the switch */
	/* Bits 8-9: the frontend's kind (enum sl_frontend_kind), for the per-kind counters. */
	SL_SVC_F_KIND_SHIFT = 8,
	SL_SVC_F_KIND_MASK = 3U << 8,
};

/* What a frontend is: sl_service_value.flags bits 8-9 and the index of sl_ext_counters. */
enum sl_frontend_kind {
	SL_KIND_CLUSTER_IP = 0,
	SL_KIND_NODE_PORT = 1,
	SL_KIND_EXTERNAL_IP = 2,
	SL_KIND_LOAD_BALANCER = 3,
	SL_KIND_MAX = 4,
};

/*
 * A frontend's service. Several frontends (ClusterIP, NodePort, ...) of one Service port share
 * svc_id and backend_id. User space switches a service to a new backend set by writing a
 * complete new block under a fresh backend_id and then this value in one update, so a packet
 * never sees a half-written set.
 */
struct sl_service_value {
	__u32 svc_id;		  /* stable id of the Service port: counters, affinity, conntrack */
	__u32 backend_id;	  /* backend block: sl_backends keys are (backend_id, ordinal) */
	__u32 count;		  /* Cluster set: ordinals [0, count) */
	__u32 local_count;	  /* Local set: ordinals [count, count + local_count) */
	__u32 flags;		  /* SL_SVC_F_* */
	__u32 affinity_timeout_s; /* ClientIP affinity timeout in seconds; 0 = none */
};
_Static_assert(sizeof(struct sl_service_value) == 24, "sl_service_value size");

/* Backend map: sl_backends4. */
struct sl_backend_key {
	__u32 backend_id; /* sl_service_value.backend_id */
	__u32 ordinal;	  /* slot in the block */
};
_Static_assert(sizeof(struct sl_backend_key) == 8, "sl_backend_key size");

/* Backend flags (sl_backend_value4.flags). */
enum sl_be_flags {
	SL_BE_F_LOCAL = 1U << 0,       /* endpoint on this node */
	SL_BE_F_TERMINATING = 1U << 1, /* serving but terminating (fallback set) */
};

struct sl_backend_value4 {
	__be32 addr; /* endpoint address */
	__be16 port; /* endpoint port, network order */
	__u8 flags;  /* SL_BE_F_* */
	__u8 pad;
	__be32 node_addr; /* address of the endpoint's node, for forwarding and DSR (0 = unknown) */
};
_Static_assert(sizeof(struct sl_backend_value4) == 12, "sl_backend_value4 size");

/* Conntrack (TC path): sl_ct4, an LRU hash. One FORWARD and one REVERSE entry per flow. */
struct sl_ct_key4 {
	__be32 saddr; /* as the packet carries it, before translation */
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};
_Static_assert(sizeof(struct sl_ct_key4) == 16, "sl_ct_key4 size");

/* Conntrack entry types (sl_ct_value4.type). */
enum sl_ct_type {
	SL_CT_FORWARD = 1, /* key: client -> frontend; translate destination to nat_addr:nat_port */
	SL_CT_REVERSE = 2, /* key: backend -> client; translate source to nat_addr:nat_port */
};

/* Conntrack states (sl_ct_value4.state). */
enum sl_ct_state {
	SL_CT_STATE_NEW = 0, /* UDP/SCTP or a TCP flow before its SYN was seen */
	SL_CT_STATE_SYN_SENT = 1,
	SL_CT_STATE_ESTABLISHED = 2,
	SL_CT_STATE_FIN = 3,	/* a FIN seen in either direction */
	SL_CT_STATE_CLOSED = 4, /* RST seen */
};

/* Conntrack flags (sl_ct_value4.flags). */
enum sl_ct_flags {
	SL_CT_F_HAIRPIN = 1U << 0,  /* client is its own backend: source rewritten too */
	SL_CT_F_EXTERNAL = 1U << 1, /* created by the host-interface program (host.bpf.c) */
	SL_CT_F_SNAT = 1U << 2,	    /* external flow to a remote backend: source rewritten */
	SL_CT_F_TUNNEL = 1U << 3,   /* ingress node, Tunnel mode: carried to/from node nat_saddr */
	SL_CT_F_DECAP = 1U << 4,    /* backend node: arrived tunnelled from node nat_saddr */
	SL_CT_F_DSR = 1U << 5, /* with TUNNEL or DECAP: the backend's node answers the client */
	/* TCP: this entry's direction sent a FIN (both entries flagged: the flow is over) */
	SL_CT_F_FIN_SEEN = 1U << 7,
};

/*
 * nat_saddr/nat_sport, by entry:
 *  - FORWARD, hairpin: the source address written (the frontend), port unchanged;
 *  - FORWARD, SNAT: the source written, this node's address and the allocated SNAT port;
 *  - REVERSE, hairpin: the frontend (the reply's destination as the pod sees it);
 *  - REVERSE, SNAT: the client's address and port, the reply's destination restored;
 *  - TUNNEL (both entries, ingress node): nat_saddr is the backend's node, the tunnel's far
 *    end; the client's address and port are untouched (nat_sport 0);
 *  - DECAP (both entries, backend node): nat_saddr is the ingress node the flow came from, where
 *    the replies are tunnelled back; the entries translate nothing (nat_addr:nat_port is the
 *    backend itself in both).
 *  - DECAP|DSR (backend node, DSR): FORWARD as DECAP; REVERSE nat_saddr:nat_sport is the
 *    frontend the client sent to (carried in the tunnel header), the replies' new source: they
 *    go straight to the client, not back through the ingress node.
 */

struct sl_ct_value4 {
	__u64 created_ns;   /* bpf_ktime_get_ns() at creation */
	__u64 last_seen_ns; /* refreshed on every packet; expiry is judged against the state */
	__be32 nat_addr;    /* FORWARD: backend address; REVERSE: frontend address */
	__be16 nat_port;    /* FORWARD: backend port; REVERSE: frontend port (network order) */
	__u8 type;	    /* SL_CT_FORWARD / SL_CT_REVERSE */
	__u8 state;	    /* SL_CT_STATE_* */
	__be32 nat_saddr;   /* see above; 0 = source untouched */
	__u32 svc_id;	    /* owning service port, for dumps and per-service flushes */
	__u32 flags;	    /* SL_CT_F_* */
	__be16 nat_sport;   /* see above (network order) */
	__u16 pad;
#ifdef SL_UPGRADE_TEST_LAYOUT
	/*
	 * Test builds only (bpf/Makefile's upgrade-test objects): a member the regular build lacks,
	 * so test/upgrade can run an agent over maps of another layout. Never set in a release.
	 */
	__u64 upgrade_test;
#endif
};
#ifdef SL_UPGRADE_TEST_LAYOUT
_Static_assert(sizeof(struct sl_ct_value4) == 48, "sl_ct_value4 size (upgrade test layout)");
#else
_Static_assert(sizeof(struct sl_ct_value4) == 40, "sl_ct_value4 size");
#endif

/* ClientIP session affinity: sl_affinity4, an LRU hash. */
struct sl_affinity_key4 {
	__u32 svc_id;	    /* sl_service_value.svc_id */
	__be32 client_addr; /* client source address */
};
_Static_assert(sizeof(struct sl_affinity_key4) == 8, "sl_affinity_key4 size");

struct sl_affinity_value4 {
	__u64 last_used_ns; /* bpf_ktime_get_ns() of the last selection */
	__be32 backend_addr;
	__be16 backend_port; /* network order */
	__u16 pad;
};
_Static_assert(sizeof(struct sl_affinity_value4) == 16, "sl_affinity_value4 size");

/*
 * Socket-level reverse NAT for connect-time load balancing: sl_sock_revnat4 (LRU hash).
 * recvmsg4/getpeername4 look up (socket cookie, backend) to report the frontend instead.
 */
struct sl_sock_revnat_key4 {
	__u64 cookie; /* bpf_get_socket_cookie() */
	__be32 backend_addr;
	__be16 backend_port; /* network order */
	__u16 pad;
};
_Static_assert(sizeof(struct sl_sock_revnat_key4) == 16, "sl_sock_revnat_key4 size");

struct sl_sock_revnat_value4 {
	__be32 frontend_addr;
	__be16 frontend_port; /* network order */
	__u16 pad;
	__u32 svc_id;
};
_Static_assert(sizeof(struct sl_sock_revnat_value4) == 12, "sl_sock_revnat_value4 size");

/*
 * Per-socket stickiness of unconnected UDP at connect time: sl_sock_udp4 (socket storage). The
 * last backend the socket sent a datagram to, per frontend. Private to the connect-time programs:
 * user space never reads it (no codec). One slot per socket: a socket that alternates between two
 * frontends is re-balanced on each switch, which only costs stickiness, never correctness.
 */
struct sl_sock_udp4 {
	__be32 frontend_addr;
	__be16 frontend_port; /* network order */
	__u16 pad;
	__u32 backend_id; /* block the backend was last seen in ... */
	__u32 ordinal;	  /* ... at this slot (~0 = unknown): a one-lookup "still there" check */
	__be32 backend_addr;
	__be16 backend_port; /* network order */
	__u16 pad2;
};
_Static_assert(sizeof(struct sl_sock_udp4) == 24, "sl_sock_udp4 size");

/*
 * ClusterIPs: sl_vips4, a hash of every ClusterIP the node programs. A ClusterIP exists only for
 * its Service, so a connection to one on a port that is no frontend is refused (TCP RST, ICMP
 * port unreachable, connect() ECONNREFUSED), as kube-proxy's nftables mode does, instead of
 * being routed off the node. NodePort, external and LoadBalancer addresses are not listed: they
 * may serve other things on other ports.
 */
struct sl_vip_key4 {
	__be32 addr; /* the ClusterIP */
};
_Static_assert(sizeof(struct sl_vip_key4) == 4, "sl_vip_key4 size");

/* ClusterIP flags (sl_vip_value.flags). */
enum sl_vip_flags {
	SL_VIP_F_REJECT_UNKNOWN = 1U << 0, /* refuse ports that are no frontend of the address */
};

struct sl_vip_value {
	__u32 flags; /* SL_VIP_F_* */
};
_Static_assert(sizeof(struct sl_vip_value) == 4, "sl_vip_value size");

/*
 * IPv6 twins (docs/ipv6.md). Same members and meaning as the IPv4 structs above, with every
 * address an IPv6 one: __be32 addr[4], the 16 bytes in network order (the layout of
 * bpf_sock_addr.user_ip6 and struct in6_addr's s6_addr32). Maps: sl_frontends6, sl_backends6,
 * sl_ct6, sl_affinity6, sl_sock_revnat6, sl_vips6 and the socket storage sl_sock_udp6
 * (lib/maps6.h). Service values, backend keys, counters and names are shared by both families:
 * one svc_id space (each family's service ports have their own ids).
 */
struct sl_frontend_key6 {
	__be32 addr[4]; /* ClusterIP (or external address), network order */
	__be16 port;	/* network order */
	__u8 proto;	/* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	__u8 scope;	/* SL_SCOPE_*: 0 today */
};
_Static_assert(sizeof(struct sl_frontend_key6) == 20, "sl_frontend_key6 size");

struct sl_backend_value6 {
	__be32 addr[4]; /* endpoint address */
	__be16 port;	/* endpoint port, network order */
	__u8 flags;	/* SL_BE_F_* */
	__u8 pad;
	__be32 node_addr[4]; /* the endpoint's node (:: = unknown) */
};
_Static_assert(sizeof(struct sl_backend_value6) == 36, "sl_backend_value6 size");

struct sl_ct_key6 {
	__be32 saddr[4]; /* as the packet carries it, before translation */
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};
_Static_assert(sizeof(struct sl_ct_key6) == 40, "sl_ct_key6 size");

/* As sl_ct_value4 (the nat_* members say the same, in IPv6). */
struct sl_ct_value6 {
	__u64 created_ns;
	__u64 last_seen_ns;
	__be32 nat_addr[4];
	__be16 nat_port;     /* network order */
	__u8 type;	     /* SL_CT_FORWARD / SL_CT_REVERSE */
	__u8 state;	     /* SL_CT_STATE_* */
	__be32 nat_saddr[4]; /* :: = source untouched */
	__u32 svc_id;
	__u32 flags;	  /* SL_CT_F_* */
	__be16 nat_sport; /* network order */
	__u16 pad;
};
_Static_assert(sizeof(struct sl_ct_value6) == 64, "sl_ct_value6 size");

struct sl_affinity_key6 {
	__u32 svc_id;
	__be32 client_addr[4]; /* client source address (connect time: see sl_sock_client_id6) */
};
_Static_assert(sizeof(struct sl_affinity_key6) == 20, "sl_affinity_key6 size");

struct sl_affinity_value6 {
	__u64 last_used_ns;
	__be32 backend_addr[4];
	__be16 backend_port; /* network order */
	__u16 pad;
	__u32 pad2;
};
_Static_assert(sizeof(struct sl_affinity_value6) == 32, "sl_affinity_value6 size");

struct sl_sock_revnat_key6 {
	__u64 cookie; /* bpf_get_socket_cookie() */
	__be32 backend_addr[4];
	__be16 backend_port; /* network order */
	__u16 pad;
	__u32 pad2;
};
_Static_assert(sizeof(struct sl_sock_revnat_key6) == 32, "sl_sock_revnat_key6 size");

struct sl_sock_revnat_value6 {
	__be32 frontend_addr[4];
	__be16 frontend_port; /* network order */
	__u16 pad;
	__u32 svc_id;
};
_Static_assert(sizeof(struct sl_sock_revnat_value6) == 24, "sl_sock_revnat_value6 size");

/* Private to the connect-time programs, as sl_sock_udp4 (no codec). */
struct sl_sock_udp6 {
	__be32 frontend_addr[4];
	__be16 frontend_port; /* network order */
	__u16 pad;
	__u32 backend_id;
	__u32 ordinal; /* ~0 = unknown */
	__be32 backend_addr[4];
	__be16 backend_port; /* network order */
	__u16 pad2;
};
_Static_assert(sizeof(struct sl_sock_udp6) == 48, "sl_sock_udp6 size");

struct sl_vip_key6 {
	__be32 addr[4]; /* the ClusterIP */
};
_Static_assert(sizeof(struct sl_vip_key6) == 16, "sl_vip_key6 size");

/*
 * Default capacities of the IPv6 LRU maps, which the kernel preallocates: smaller than their IPv4
 * twins' so a node that proxies IPv4 only does not pay the full size twice. Sizable like them
 * (src/dataplane/table-specs.ts). The IPv6 hash maps use the IPv4 capacities (not preallocated).
 */
enum sl_map_capacity6 {
	SL_MAX_CT6 = 131072,
	SL_MAX_AFFINITY6 = 16384,
	SL_MAX_SOCK_REVNAT6 = 65536,
};

/* Per-service counters: sl_svc_counters, a per-CPU array indexed by svc_id. */
struct sl_svc_counters {
	__u64 packets;	   /* packets translated towards the service (TC path) */
	__u64 bytes;	   /* bytes of those packets */
	__u64 connections; /* new flows / connects balanced (both paths) */
	__u64 rejected;	   /* flows refused because no backend was usable */
};
_Static_assert(sizeof(struct sl_svc_counters) == 32, "sl_svc_counters size");

/* Drop reasons: sl_drop_counters, a per-CPU array of __u64 indexed by reason. */
enum sl_drop_reason {
	SL_DROP_NONE = 0,
	SL_DROP_NO_BACKEND = 1,	      /* service has no usable backend: RST / ICMP sent */
	SL_DROP_NO_LOCAL_BACKEND = 2, /* traffic policy Local with no local backend */
	SL_DROP_BACKEND_MISSING = 3,  /* a slot within count had no entry (should not happen) */
	SL_DROP_CT_FULL = 4,	      /* conntrack insert failed */
	SL_DROP_CSUM = 5,	      /* checksum rewrite failed */
	SL_DROP_MALFORMED = 6,	      /* truncated or unparsable headers */
	SL_DROP_SRC_RANGE = 7,	      /* source not in loadBalancerSourceRanges */
	SL_DROP_UNKNOWN_PORT = 8,     /* to a ClusterIP on a port it does not serve: refused */
	SL_DROP_SNAT_PORTS = 9,	      /* no free SNAT port for a remote backend (or no address) */
	SL_DROP_NO_ROUTE = 10,	      /* a translated packet has no route out (fib lookup) */
	SL_DROP_TTL = 11,	      /* a forwarded packet's TTL ran out */
	SL_DROP_TUNNEL_SOURCE = 12,   /* tunnel traffic from an address that is no cluster node */
	SL_DROP_TUNNEL_MTU = 13,      /* too large to tunnel (with DF: ICMP frag-needed sent) */
	SL_DROP_REASON_MAX = 16,
};

/* Service port metadata for dumps when the agent is down: sl_svc_meta, array by svc_id. */
enum sl_svc_meta_sizes {
	SL_SVC_NAME_LEN = 192, /* bytes of sl_svc_meta.name, the NUL included */
};
struct sl_svc_meta {
	char name[SL_SVC_NAME_LEN]; /* "namespace/name:port/PROTO/IPv4", NUL-terminated; "" = free
				     */
};
_Static_assert(sizeof(struct sl_svc_meta) == 192, "sl_svc_meta size");

/*
 * loadBalancerSourceRanges: sl_src_ranges4 (IPv6: sl_src_ranges6), one LPM trie for every service.
 * The key is the service port's svc_id (always matched in full) then the client address; prefixlen
 * counts both, so a /24 range is prefixlen 32 + 24. A service flagged SL_SVC_F_SRC_RANGES accepts a
 * new external flow only from a source found here.
 */
struct sl_src_range_key4 {
	__u32 prefixlen; /* 32 + the CIDR's prefix length */
	__u32 svc_id;	 /* always matched in full, so its byte order does not matter */
	__be32 addr;
};
_Static_assert(sizeof(struct sl_src_range_key4) == 12, "sl_src_range_key4 size");

/*
 * The IPv6 twin, sl_src_ranges6 (the same value): prefixlen 32 + the CIDR's length (up to 160).
 * A service port has one family, so its svc_id has entries in one of the two tries only.
 */
struct sl_src_range_key6 {
	__u32 prefixlen; /* 32 + the CIDR's prefix length */
	__u32 svc_id;	 /* always matched in full */
	__be32 addr[4];
};
_Static_assert(sizeof(struct sl_src_range_key6) == 24, "sl_src_range_key6 size");

struct sl_src_range_value {
	__u32 flags; /* reserved, 0 */
};
_Static_assert(sizeof(struct sl_src_range_value) == 4, "sl_src_range_value size");

/*
 * This node, for the host-interface program: sl_node_config, an array of one. External flows to a
 * remote backend leave with snat_addr as source and a port from [snat_port_min, snat_port_max],
 * a range outside the node's ip_local_port_range so no connection of the node's own can hold the
 * same tuple (docs/external-traffic.md). snat_addr 0: no SNAT, such flows are dropped. In Tunnel
 * mode snat_addr is also this node's end of the tunnel (the outer source).
 */
struct sl_node_config4 {
	__be32 snat_addr;
	__u16 snat_port_min; /* host order */
	__u16 snat_port_max; /* host order, inclusive */
};
_Static_assert(sizeof(struct sl_node_config4) == 8, "sl_node_config4 size");

/*
 * This node in IPv6, for the host-interface program: sl_node_config6, an array of one. External
 * IPv6 flows to a remote backend leave with snat_addr as source and a port of the same range as
 * IPv4's (the agent writes both; an IPv6 tuple never meets an IPv4 one). snat_addr :: = none:
 * such flows are dropped (snat_ports). In Tunnel and DSR modes snat_addr is also this node's end
 * of the IPv6 tunnel (the outer source).
 */
struct sl_node_config6 {
	__be32 snat_addr[4];
	__u16 snat_port_min; /* host order */
	__u16 snat_port_max; /* host order, inclusive */
};
_Static_assert(sizeof(struct sl_node_config6) == 20, "sl_node_config6 size");

/*
 * Maglev consistent hashing for external flows: sl_maglev4, a hash keyed by the backend block
 * (sl_service_value.backend_id) and a chunk number. User space (src/dataplane/maglev*.ts) builds a
 * block's table of `size` slots (a prime) over the backends' identities (address:port, the same on
 * every node), written as ceil(size / SL_MAGLEV_CHUNK) chunks; each slot holds an ordinal of the
 * block's Cluster set. A block is immutable under its id, so its table is too. A block without a
 * table (eTP=Local, in-cluster only, not written yet) selects at random. IPv6 blocks have their
 * tables here too: backend_id is one space for both families (src/dataplane/writer.ts hands out
 * no id the other family's writer holds), so a key names one block of one family.
 */
enum sl_maglev_sizes {
	SL_MAGLEV_CHUNK = 256,	    /* slots per map value */
	SL_MAGLEV_SIZE_MIN = 251,   /* smallest table size user space accepts (a prime) */
	SL_MAGLEV_SIZE_MAX = 65521, /* largest: the biggest prime below 2^16 */
	SL_MAGLEV_SIZE_DEFAULT = 16381,
};

struct sl_maglev_key {
	__u32 backend_id; /* sl_service_value.backend_id */
	__u32 chunk;	  /* slots [chunk * SL_MAGLEV_CHUNK, (chunk + 1) * SL_MAGLEV_CHUNK) */
};
_Static_assert(sizeof(struct sl_maglev_key) == 8, "sl_maglev_key size");

struct sl_maglev_chunk {
	__u32 size; /* the whole table's slot count (a prime); the same in every chunk */
	__u16 slot[SL_MAGLEV_CHUNK]; /* Cluster-set ordinal per slot (slots past size: 0) */
};
_Static_assert(sizeof(struct sl_maglev_chunk) == 516, "sl_maglev_chunk size");

/*
 * How external flows reach a backend on another node (the sl_external_mode tunable of
 * host.bpf.c, --external-mode; docs/external-traffic.md).
 */
enum sl_external_mode {
	SL_EXT_MODE_SNAT = 0,	/* kube-proxy's: source rewritten to this node, replies come back */
	SL_EXT_MODE_TUNNEL = 1, /* the client's packet tunnelled to the backend's node, and back */
	SL_EXT_MODE_DSR = 2,	/* tunnelled there; the backend's node replies directly */
};

/*
 * The tunnel between nodes: the inner IPv4 packet right after an outer IPv4 + UDP header (GUE
 * variant 1 / FOU, no GUE header), to UDP port sl_tunnel_port. A DSR flow's packets carry a GUE
 * variant 0 header between the UDP header and the inner packet instead: 4 bytes, then 8 bytes of
 * GUE private data holding the frontend the backend's node answers from (lib/tunnel.h).
 * sl_tunnel_nodes4 lists the cluster's node addresses: the only sources a node decapsulates from.
 */
enum sl_tunnel_consts {
	SL_TUNNEL_PORT_DEFAULT = 6080, /* IANA's GUE port */
	SL_TUNNEL_OVERHEAD = 28,       /* outer IPv4 (20) + UDP (8) */
	SL_TUNNEL_DSR_OVERHEAD = 40,   /* the same + GUE header (4) + private data (8) */
	SL_TUNNEL_TTL = 64,	       /* the outer header's */
	SL_TUNNEL_GUE_DSR = 1,	       /* the private data's kind byte: a DSR frontend */
	/*
	 * IPv6 (lib/tunnel6.h): the inner IPv6 packet after an outer IPv6 + UDP header; a DSR
	 * flow's GUE header carries 20 bytes of private data (an IPv6 frontend, struct
	 * sl_gue_dsr6). An IPv6 flow always travels in IPv6, between the nodes' IPv6 addresses.
	 */
	SL_TUNNEL_V6_OVERHEAD = 48,	/* outer IPv6 (40) + UDP (8) */
	SL_TUNNEL_V6_DSR_OVERHEAD = 72, /* the same + GUE header (4) + private data (20) */
};

/* sl_tunnel_nodes4: a hash of the cluster's node addresses (user space, from Node objects). */
struct sl_tunnel_node_key4 {
	__be32 addr;
};
_Static_assert(sizeof(struct sl_tunnel_node_key4) == 4, "sl_tunnel_node_key4 size");

struct sl_tunnel_node_value {
	__u32 flags; /* reserved, 0 */
};
_Static_assert(sizeof(struct sl_tunnel_node_value) == 4, "sl_tunnel_node_value size");

/* sl_tunnel_nodes6: the cluster's node IPv6 addresses (the same value). */
struct sl_tunnel_node_key6 {
	__be32 addr[4];
};
_Static_assert(sizeof(struct sl_tunnel_node_key6) == 16, "sl_tunnel_node_key6 size");

/*
 * sl_dsr_optout4: an LPM trie of the client CIDRs that get Tunnel instead of DSR
 * (--dsr-optout-cidrs): clients whose network cannot take a reply from another address than
 * the one they sent to (stateful firewalls on their path, NAT gateways).
 */
struct sl_dsr_optout_key4 {
	__u32 prefixlen; /* the CIDR's prefix length */
	__be32 addr;
};
_Static_assert(sizeof(struct sl_dsr_optout_key4) == 8, "sl_dsr_optout_key4 size");

struct sl_dsr_optout_value {
	__u32 flags; /* reserved, 0 */
};
_Static_assert(sizeof(struct sl_dsr_optout_value) == 4, "sl_dsr_optout_value size");

/* sl_dsr_optout6: the IPv6 CIDRs of --dsr-optout-cidrs (the same value). */
struct sl_dsr_optout_key6 {
	__u32 prefixlen; /* the CIDR's prefix length */
	__be32 addr[4];
};
_Static_assert(sizeof(struct sl_dsr_optout_key6) == 20, "sl_dsr_optout_key6 size");

/*
 * The upgrade hand-off (lib/handoff.h, docs/upgrades.md): the slots of a TC object's sl_handoff
 * program array, one per hook. While an upgrade over a conntrack map of another layout switches
 * programs, each holds the previous build's program of that hook; empty otherwise.
 */
enum sl_handoff_slot {
	SL_HANDOFF_INGRESS = 0,
	SL_HANDOFF_EGRESS = 1,
	SL_HANDOFF_SLOTS = 2,
};

/*
 * host.bpf.c's IPv6 programs: the slots of sl_host6_progs (the object's own tail-call array).
 * SL_HOST6_TUNNEL wraps a tunnelled flow's packet (both directions), SL_HOST6_DECAP unwraps
 * what arrives through the IPv6 tunnel: programs of their own, so the verifier walks each apart.
 */
enum sl_host6_slot {
	SL_HOST6_INGRESS = 0,
	SL_HOST6_EGRESS = 1,
	SL_HOST6_TUNNEL = 2,
	SL_HOST6_DECAP = 3,
#ifdef SL_UPGRADE_TEST_LAYOUT
	/*
	 * Test builds only: one slot more, so test/upgrade hands over a pinned program array of
	 * another size (moved aside, not carried: the new object fills its own array at load).
	 */
	SL_HOST6_PROGS = 5,
#else
	SL_HOST6_PROGS = 4,
#endif
};

/* Connect-time load balancing protocols (the sl_ctlb_protocols tunable). */
enum sl_ctlb_protocols {
	SL_CTLB_TCP = 1U << 0,
	SL_CTLB_UDP = 1U << 1,
};

/*
 * Default map capacities (lib/maps.h). Which maps user space may resize before load, and why, is
 * said in one place: src/dataplane/tables.ts (TABLES), checked against the objects.
 */
enum sl_map_capacity {
	SL_MAX_FRONTENDS = 65536,
	SL_MAX_BACKENDS = 262144,
	SL_MAX_CT = 524288,
	SL_MAX_AFFINITY = 65536,
	SL_MAX_SOCK_REVNAT = 262144,
	SL_MAX_SVC_IDS = 65536,
	SL_MAX_VIPS = 65536,
	SL_MAX_SRC_RANGES = 16384,
	SL_MAX_MAGLEV_CHUNKS = 65536, /* 1,024 tables of 16,381 slots (64 chunks each) */
	SL_MAX_TUNNEL_NODES = 16384,
	SL_MAX_DSR_OPTOUT = 1024,
};

/*
 * Every enum above, one member each, so that each object's BTF carries them: clang emits an enum
 * into BTF only when a type it emits refers to it, and constants used in expressions refer to
 * nothing. lib/maps.h (which every object includes) defines one variable of this type; user
 * space checks its mirror of every constant against these enums (src/bpf/sluice-structs.ts).
 */
struct sl_btf_constants {
	enum sl_scope scope;
	enum sl_svc_flags svc_flags;
	enum sl_frontend_kind frontend_kind;
	enum sl_be_flags be_flags;
	enum sl_ct_type ct_type;
	enum sl_ct_state ct_state;
	enum sl_ct_flags ct_flags;
	enum sl_vip_flags vip_flags;
	enum sl_drop_reason drop_reason;
	enum sl_svc_meta_sizes svc_meta_sizes;
	enum sl_ctlb_protocols ctlb_protocols;
	enum sl_external_mode external_mode;
	enum sl_tunnel_consts tunnel_consts;
	enum sl_map_capacity map_capacity;
	enum sl_maglev_sizes maglev_sizes;
	enum sl_map_capacity6 map_capacity6;
	enum sl_handoff_slot handoff_slot;
};

#endif /* SLUICE_H */
