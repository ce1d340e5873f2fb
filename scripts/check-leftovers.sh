#!/usr/bin/env bash
# After the suite: nothing a test made may be left on the machine — no test network namespace,
# no test cgroup or pin directory, no test lease, and nothing attached to the root cgroup.
# Prints what it finds; exits non-zero if anything is there.
set -uo pipefail
found=0
report() { echo "leftover: $*"; found=1; }

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^slt-'); do report "network namespace $ns"; done
# sl_*: Sluice's maps; fixture_*: the test objects' maps (bpf/test), pinned by name when a test
# forgets its pin root; progs: program pins (src/datapath/program-reuse.ts) of a pin dir at the bpffs root.
for d in /sys/fs/bpf/sluice-test-* /sys/fs/bpf/sl_* /sys/fs/bpf/fixture_* /sys/fs/bpf/progs; do [ -e "$d" ] && report "bpffs pin $d"; done
cg2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
if [ -n "$cg2" ]; then
  for d in "$cg2"/sluice-test-*; do [ -e "$d" ] && report "cgroup $d"; done
  if command -v bpftool >/dev/null; then
    root=$(bpftool cgroup show "$cg2" 2>/dev/null | awk 'NR>1 && NF')
    [ -n "$root" ] && report "programs on the root cgroup $cg2: $root"
  fi
fi
# The connect bench's CPU-awake spinners run in a cgroup v1 cpu group of the run (bench/cpu-awake.ts).
for d in /sys/fs/cgroup/cpu/sluice-test-*; do [ -e "$d" ] && report "cpu cgroup $d"; done
# Podman containers the image test runs are named slt-<prefix>-*.
if command -v podman >/dev/null; then
  for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep '^slt-'); do report "podman container $c"; done
fi
for f in /run/sluice-testbed/runs/*; do [ -e "$f" ] && report "test bed lease $f"; done
[ "$found" -eq 0 ] && echo "no leftovers"
exit "$found"
