/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Idle time of entries that every CPU refreshes (conntrack, session affinity).
 *
 * A program reads the clock once (bpf_ktime_get_ns) and then compares an entry's last-use time
 * with it. Meanwhile another CPU may refresh that entry with its own, later reading: the reader
 * was interrupted or, on a virtual machine, its vCPU descheduled between the two steps. The
 * entry's time is then ahead of the reader's "now", and the unsigned now - last wraps around to
 * "idle for centuries": a busy flow's conntrack entries looked expired, so a reply left
 * untranslated and the connection was reset (seen on 2-vCPU nested VMs, a few times a minute
 * under a bulk transfer). An entry used after our clock read is simply not idle.
 */
#ifndef SL_LIB_CLOCK_H
#define SL_LIB_CLOCK_H

#include <stdbool.h>
#include <linux/types.h>

/* Whether something last used at last_ns has been idle for more than timeout_ns at now. */
static __always_inline bool sl_idle_longer_than(__u64 now, __u64 last_ns, __u64 timeout_ns)
{
	return now > last_ns && now - last_ns > timeout_ns;
}

#endif /* SL_LIB_CLOCK_H */
