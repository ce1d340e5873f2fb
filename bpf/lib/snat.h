/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SNAT of external flows to a remote backend (externalTrafficPolicy Cluster, kube-proxy's
 * behaviour): the request leaves this node with the node's address and a port of a reserved
 * range as its source, so the backend's reply comes back here to be reverse-translated.
 *
 * Ports are chosen at random within [snat_port_min, snat_port_max] of sl_node_config; the flow's
 * REVERSE entry (backend:bport -> node:port) is inserted only if no flow holds that tuple, so two
 * flows never share one. The range lies outside the node's ip_local_port_range (the agent checks),
 * so no socket of the node's own can hold the tuple either.
 */
#ifndef SL_LIB_SNAT_H
#define SL_LIB_SNAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sluice.h"
#include "maps.h"
#include "conntrack.h"

/* Random ports tried before giving up: a range a quarter full fails all 8 once in 65536. */
#define SL_SNAT_TRIES 8

static __always_inline const struct sl_node_config4 *sl_node_config4(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_node_config, &zero);
}

/*
 * Creates the SNAT flow fwd -> be: addr and port receive the source to write. Returns 0 or a
 * negative -SL_DROP_* reason (no address configured or no free port: SL_DROP_SNAT_PORTS).
 */
static __always_inline int sl_snat_create4(const struct sl_ct_key4 *fwd,
					   const struct sl_backend_value4 *be, __u32 svc_id,
					   __u8 tcp_flags, __u64 now, __be32 *addr, __be16 *port)
{
	const struct sl_node_config4 *cfg = sl_node_config4();
	__u32 min, span, i;
	int ret;

	if (!cfg || !cfg->snat_addr || cfg->snat_port_max < cfg->snat_port_min)
		return -SL_DROP_SNAT_PORTS;
	min = cfg->snat_port_min;
	span = (__u32)cfg->snat_port_max - min + 1;
	*addr = cfg->snat_addr;
	for (i = 0; i < SL_SNAT_TRIES; i++) {
		*port = bpf_htons((__u16)(min + bpf_get_prandom_u32() % span));
		ret = sl_ct_create_external4(fwd, be, svc_id, *addr, *port, tcp_flags, now);
		if (ret == 0)
			return 0;
		if (ret != -17 /* EEXIST: taken, try another */)
			return ret;
	}
	return -SL_DROP_SNAT_PORTS;
}

#endif /* SL_LIB_SNAT_H */
