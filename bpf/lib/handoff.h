/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The upgrade hand-off (docs/upgrades.md). An upgrade over a conntrack map of another layout
 * builds the new map beside the old one, copies the entries, and switches the TC programs. A flow
 * the old program opened in the instant before its interface switched is in the old map only
 * until the next copy, and its next packet — the reply, or the client's next segment — may
 * already reach the new program: a miss there would reset the connection (the reply arrives
 * untranslated). So the agent puts the previous build's programs of each hook in sl_handoff
 * during the switch, and a packet the new program cannot place is handed to them: they find the
 * flow in the old map. Once every entry has been copied the agent empties the slots.
 *
 * Only packets that cannot open a flow are handed over (a reply, a TCP segment without SYN), so
 * the old programs never create an entry after the switch: the last copy misses nothing.
 * The array is the object's own (not pinned): each build has its own previous programs.
 */
#ifndef SL_LIB_HANDOFF_H
#define SL_LIB_HANDOFF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sluice.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_HANDOFF_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sl_handoff SEC(".maps");

/*
 * Runs the previous build's program of this hook on the packet, when an upgrade put one there:
 * then it does not return. Returns at once when the slot is empty (no upgrade under way). The
 * packet must still be untouched.
 */
static __always_inline void sl_handoff_to_previous(struct __sk_buff *skb, __u32 slot)
{
	bpf_tail_call(skb, &sl_handoff, slot);
}

#endif /* SL_LIB_HANDOFF_H */
