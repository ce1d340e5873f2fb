#!/bin/sh
# PID 1 of a kernel-matrix VM (the initramfs's /init; built by build-initramfs.sh): mounts what
# the agent needs, loads the modules the datapath needs (veth, clsact, cls_bpf), runs the check
# (dist/src/testbed/kernel-matrix/guest.js prints SLUICE-MATRIX-RESULT on the console) and
# powers off. Every failure still reaches the console, then the power-off.
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "matrix: kernel $(uname -r), loading modules"
while read -r mod; do
  [ -n "$mod" ] && { insmod "$mod" 2>&1 || echo "matrix: insmod $mod failed"; }
done </matrix/modules.list
cd /sluice || echo "matrix: no /sluice"
echo "matrix: starting the check"
node dist/src/testbed/kernel-matrix/guest.js
echo "matrix: check exited with $?"
echo o >/proc/sysrq-trigger
sleep 10
