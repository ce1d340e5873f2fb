#!/usr/bin/env bash
# Idempotent machine setup for a fresh Debian 12 host, run as root: installs the toolchain and
# tools Sluice builds and tests with, and mounts bpffs. Safe to run again and again.
set -euo pipefail

pkgs=(clang llvm clang-format libbpf-dev libelf-dev zlib1g-dev pkg-config make g++ python3
      iproute2 bpftool iptables nftables iperf3 procps util-linux openssl ethtool
      # the container image (npm run image, test/deploy): root filesystems from Debian packages,
      # podman to import and run them (runc: crun refuses hybrid cgroup layouts)
      mmdebstrap podman runc

      # the kernel matrix (test/boot/kernel-matrix.test.ts, docs/kernels.md): boots Debian's kernels under TCG
      qemu-system-x86 kmod cpio xz-utils zstd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# kubectl renders the kustomize manifests (test/agent/daemonset.test.ts). Debian's
# kubernetes-client unless a kubectl (e.g. a cloud SDK's) is already there.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bpffs: pinned maps and links live here. A fresh machine may boot without it.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
  echo "setup: mounted bpffs at /sys/fs/bpf"
fi

# cgroup v2: tests and the demo need a cgroup2 hierarchy for their own subtree.
if ! grep -qs ' cgroup2 ' /proc/mounts; then
  mkdir -p /sys/fs/cgroup/unified
  mount -t cgroup2 none /sys/fs/cgroup/unified
  echo "setup: mounted cgroup2 at /sys/fs/cgroup/unified"
fi
