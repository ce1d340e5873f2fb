#!/usr/bin/env bash
# Builds the initramfs of the kernel matrix for one kernel: a small root of the host's own tools
# (node, ip, tc (the agent reads the TC hooks back with it), bpftool, util-linux's nsenter/unshare/mount, procps' sysctl, kmod's insmod, with the
# libraries ldd names), the project as the agent needs it (dist/, build/Release, package.json,
# src/testbed's .mjs children and the production node_modules from package-lock.json), the
# kernel's modules for the datapath with their dependencies, and init.sh as /init. No compression:
# TCG unpacks a plain cpio faster than it inflates one.
#
#   build-initramfs.sh <project dir> <kernel root (fetch-kernels.sh)> <release> <out.cpio>
#
# The host-and-project part is built once per <out>'s directory (common.cpio) and shared by
# every kernel; the kernel part is appended (the kernel unpacks concatenated archives).
set -euo pipefail
project=$(cd "$1" && pwd); kroot=$2; release=$3; out=$4
here=$(cd "$(dirname "$0")" && pwd)
outdir=$(dirname "$out")
fail() { echo "build-initramfs: $*" >&2; exit 1; }

copy_with_libs() { # root, paths... : each file and every library ldd names, at the same path
  local root=$1; shift
  local f lib
  for f in "$@"; do
    [ -e "$f" ] || fail "missing $f on the host"
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' | sort -u); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}

common="$outdir/common.cpio"
if [ ! -s "$common" ]; then
  root=$(mktemp -d "$outdir/common.XXXX")
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,tmp,run,root,etc,matrix,sluice}
  ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
  tools=()
  for t in sh dash mount umount mountpoint nsenter unshare ip tc sysctl insmod node bpftool cat mkdir ls sleep uname rm; do
    p=$(command -v "$t") || fail "host has no $t (run scripts/setup.sh)"
    tools+=("$(readlink -f "$p")")
    [ "$(readlink -f "$p")" = "$p" ] || { mkdir -p "$root$(dirname "$p")"; ln -sf "$(readlink -f "$p")" "$root$p"; }
  done
  copy_with_libs "$root" "${tools[@]}"
  # sh and insmod are symlinks on Debian (dash, kmod): keep their names working.
  ln -sf dash "$root/usr/bin/sh"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  cp "$here/init.sh" "$root/init"; chmod +x "$root/init"
  # The project: what the compiled agent, sluicectl and the test bed's children load.
  for p in package.json dist build/Release/sluice_native.node; do
    [ -e "$project/$p" ] || fail "$project/$p missing: run npm run build"
    mkdir -p "$root/sluice/$(dirname "$p")"; cp -a "$project/$p" "$root/sluice/$p"
  done
  copy_with_libs "$root" "$project/build/Release/sluice_native.node"
  mkdir -p "$root/sluice/src/testbed"; cp "$project"/src/testbed/*.mjs "$root/sluice/src/testbed/"
  (cd "$project" && node -e '
    const lock = require("./package-lock.json");
    for (const [path, p] of Object.entries(lock.packages)) if (path && !p.dev) console.log(path);
  ') | while read -r dep; do
    [ -d "$project/$dep" ] || continue
    mkdir -p "$root/sluice/$(dirname "$dep")"; cp -a "$project/$dep" "$root/sluice/$dep"
  done
  # Not what the guest runs: the test fixtures' objects, the compiled tests and benchmarks.
  rm -rf "$root"/sluice/dist/bpf/test "$root"/sluice/dist/test "$root"/sluice/dist/bench "$root"/sluice/dist/scripts
  (cd "$root" && find . -mindepth 1 | cpio -o -H newc --quiet) >"$common.tmp"
  mv "$common.tmp" "$common"
  rm -rf "$root"
fi

# The kernel's part: the datapath's modules and their dependencies, in load order.
kroot_abs=$(cd "$kroot" && pwd)
moddir=$(readlink -f "$kroot_abs/modules")
[ -d "$moddir" ] || fail "$kroot has no modules/ (run fetch-kernels.sh)"
if [ ! -s "$moddir/modules.dep" ]; then
  # depmod's base dir must hold lib/modules/<release>: a scratch tree of symlinks.
  base=$(mktemp -d); mkdir -p "$base/lib/modules"; ln -s "$moddir" "$base/lib/modules/$release"
  depmod -b "$base" "$release" || fail "depmod for $release failed"
  rm -rf "$base"
fi
kpart=$(mktemp -d "$outdir/kmod.XXXX")
mkdir -p "$kpart/matrix/modules"
: >"$kpart/matrix/modules.list"
base=$(mktemp -d); mkdir -p "$base/lib/modules"; ln -s "$moddir" "$base/lib/modules/$release"
for m in veth sch_ingress cls_bpf; do
  deps=$(modprobe -d "$base" -S "$release" --show-depends "$m") || fail "$release has no module $m"
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue
    name=$(basename "$path"); name=${name%.xz}; name=${name%.zst}
    grep -qx "/matrix/modules/$name" "$kpart/matrix/modules.list" && continue
    case "$path" in
      *.xz) xz -dc "$path" >"$kpart/matrix/modules/$name" ;;
      *.zst) zstd -qdc "$path" >"$kpart/matrix/modules/$name" ;;
      *) cp "$path" "$kpart/matrix/modules/$name" ;;
    esac
    echo "/matrix/modules/$name" >>"$kpart/matrix/modules.list"
  done <<<"$deps"
done
rm -rf "$base"
(cd "$kpart" && find matrix | cpio -o -H newc --quiet) >"$kpart.cpio"
cat "$common" "$kpart.cpio" >"$out"
rm -rf "$kpart" "$kpart.cpio"
