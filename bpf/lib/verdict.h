/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TC verdicts shared by the entry programs (docs/coexistence.md). Other programs share Sluice's
 * clsact hooks (a network policy agent or a node firewall at the same priority, behind Sluice):
 * Sluice ends the chain only where the verdict is its own — a drop, a reject bounced back, a
 * packet it sends out itself (redirect). A packet it let through or translated for the kernel to
 * route goes on to the next filter with TC_ACT_UNSPEC, and passes when none is left.
 */
#ifndef SL_LIB_VERDICT_H
#define SL_LIB_VERDICT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "sluice.h"
#include "lb.h"

#define SL_TC_PASS TC_ACT_UNSPEC

/* Drops a packet whose rewrite failed half-way: it must not leave with mixed addresses. */
static __always_inline int sl_rewrite_failed(void)
{
	sl_count_drop(SL_DROP_CSUM);
	return TC_ACT_SHOT;
}

#endif /* SL_LIB_VERDICT_H */
