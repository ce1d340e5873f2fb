#!/usr/bin/env bash
# Downloads Debian's cloud kernels for the kernel matrix (docs/kernels.md) WITHOUT installing them
# and without touching the host's apt configuration: each suite gets its own sources list, state
# and cache under $SLUICE_KERNEL_CACHE (default /var/cache/sluice-kernels), `apt-get download`
# fetches the kernel package, and dpkg-deb extracts it next to it. Reruns reuse what is there.
#
#   fetch-kernels.sh [suite ...]     (default: bullseye bookworm trixie)
#
# For each suite it leaves $CACHE/<suite>/root (the extracted package: boot/vmlinuz-<release>, and
# modules -> its lib/modules/<release>) and prints `<suite> <release> <root>`. Any failure names the suite and
# the step that failed and exits non-zero.
set -euo pipefail

CACHE=${SLUICE_KERNEL_CACHE:-/var/cache/sluice-kernels}
MIRROR=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bullseye bookworm trixie)

fail() { echo "fetch-kernels: $1: $2" >&2; exit 1; }

fetch_suite() {
  local suite=$1 dir="$CACHE/$1"
  if [ -f "$dir/release" ] && [ -d "$dir/root/modules" ]; then
    echo "$suite $(cat "$dir/release") $dir/root"
    return 0
  fi
  mkdir -p "$dir/apt/etc/apt.conf.d" "$dir/apt/etc/preferences.d" "$dir/apt/etc/sources.list.d" \
    "$dir/apt/state/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs"
  : >"$dir/apt/state/status"
  echo "deb [signed-by=$KEYRING] $MIRROR $suite main" >"$dir/apt/etc/sources.list"
  # Everything apt reads or writes is under $dir/apt: the host's /etc/apt and /var/lib/apt stay as they are.
  cat >"$dir/apt/apt.conf" <<CONF
Dir::Etc "$dir/apt/etc";
Dir::Etc::SourceList "$dir/apt/etc/sources.list";
Dir::Etc::SourceParts "$dir/apt/etc/sources.list.d";
Dir::Etc::Parts "$dir/apt/etc/apt.conf.d";
Dir::Etc::Preferences "$dir/apt/etc/preferences";
Dir::Etc::PreferencesParts "$dir/apt/etc/preferences.d";
Dir::State "$dir/apt/state";
Dir::State::status "$dir/apt/state/status";
Dir::Cache "$dir/apt/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Debug::NoLocking "true";
CONF
  export APT_CONFIG="$dir/apt/apt.conf"
  apt-get -qq update >"$dir/apt/update.log" 2>&1 || fail "$suite" "apt-get update of $MIRROR $suite failed: $(tail -3 "$dir/apt/update.log")"
  # The metapackage names the current kernel package of the suite.
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || fail "$suite" "linux-image-cloud-amd64 names no kernel package in $MIRROR $suite"
  (cd "$dir/debs" && rm -f ./*.deb && apt-get -qq download "$pkg" >"$dir/apt/download.log" 2>&1) ||
    fail "$suite" "apt-get download $pkg failed: $(tail -3 "$dir/apt/download.log")"
  rm -rf "$dir/root.new"
  dpkg-deb -x "$dir"/debs/"$pkg"_*.deb "$dir/root.new" || fail "$suite" "dpkg-deb -x of $pkg failed"
  local release=${pkg#linux-image-}
  # bullseye and bookworm ship /lib/modules, trixie /usr/lib/modules: root/modules points at it.
  local mods
  for mods in "lib/modules/$release" "usr/lib/modules/$release" ""; do [ -z "$mods" ] || [ -d "$dir/root.new/$mods" ] && break; done
  [ -n "$mods" ] || fail "$suite" "$pkg has no lib/modules/$release"
  ln -s "$mods" "$dir/root.new/modules"
  ls "$dir/root.new/boot/vmlinuz-$release" >/dev/null || fail "$suite" "$pkg has no boot/vmlinuz-$release"
  rm -rf "$dir/root"
  mv "$dir/root.new" "$dir/root"
  echo "$release" >"$dir/release"
  unset APT_CONFIG
  # The package lists (~100 MB a suite) are only needed to download: the extracted tree is the cache.
  rm -rf "$dir/apt/state/lists" "$dir/apt/cache"
  echo "$suite $release $dir/root"
}

for s in "${suites[@]}"; do fetch_suite "$s"; done
