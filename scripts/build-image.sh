#!/usr/bin/env bash
# Builds the Sluice container image on a machine with no Docker engine and no registry (`npm run
# image`): the two stages of the Containerfile, made from Debian packages with mmdebstrap and
# turned into an OCI image with `podman import`.
#
#   build stage    a Debian trixie root filesystem with the toolchain (nodejs + libnode-dev for
#                  the addon's headers, g++, clang, libbpf-dev, ...). The sources and this
#                  checkout's node_modules (npm ci needs a registry the chroot cannot reach) are
#                  copied in; tsc, `make -C bpf` and `node-gyp rebuild --nodedir=/usr` run in it,
#                  for this machine's architecture.
#   runtime        a minbase trixie root filesystem (Node 20, libbpf1, libelf, zlib, iproute2,
#                  util-linux, mount) + /app (dist/, the addon, production node_modules) +
#                  sluice-agent and sluicectl in /usr/local/bin.
#
# Cached for CI: each root filesystem is a tarball in $SLUICE_IMAGE_CACHE (default
# /var/cache/sluice-image) named by a hash of its package list, made once (~20 s for the
# runtime, a few minutes for the toolchain on a fresh machine). The image carries a hash of every
# input in a label; when it matches, nothing is rebuilt.
#
# Usage: bash scripts/build-image.sh [IMAGE]   (default localhost/sluice:<package version>)
# Environment: SLUICE_IMAGE_CACHE, SLUICE_DEBIAN_MIRROR (default: mmdebstrap's).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(node -p "require('$root/package.json').version")
image=${1:-localhost/sluice:$version}
cache=${SLUICE_IMAGE_CACHE:-/var/cache/sluice-image}
suite=trixie
mirror=${SLUICE_DEBIAN_MIRROR:-}
# Keep these lists in step with the Containerfile's apt-get lines.
runtime_pkgs=(nodejs libbpf1 libelf1t64 zlib1g iproute2 util-linux mount ca-certificates)
builder_pkgs=(nodejs libnode-dev g++ make python3 clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config linux-libc-dev)
# What the image is made from; a change to any of these rebuilds it.
inputs=(package.json package-lock.json binding.gyp tsconfig.json tsconfig.build.json native bpf src scripts/build-image.sh)

log() { echo "build-image: $*" >&2; }
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run scripts/setup.sh"; exit 1; }
done
[ -d "$root/node_modules/node-gyp" ] || { log "node_modules is missing: run npm ci"; exit 1; }
mkdir -p "$cache"

# rootfs NAME PKG... → prints the path of the cached tarball, making it when missing.
rootfs() {
  local name=$1; shift
  local key; key=$(printf '%s ' "$suite" "$@" | sha256sum | cut -c1-16)
  local tar="$cache/$name-$suite-$key.tar"
  if [ ! -s "$tar" ]; then
    log "making the $name root filesystem (debian $suite: $*)"
    local include; include=$(IFS=,; echo "$*")
    # shellcheck disable=SC2086
    mmdebstrap --quiet --variant=minbase --format=tar --include="$include" "$suite" "$tar.part" $mirror >&2
    mv "$tar.part" "$tar"
  fi
  echo "$tar"
}

runtime_tar=$(rootfs runtime "${runtime_pkgs[@]}")
builder_tar=$(rootfs builder "${builder_pkgs[@]}")

# By content (tracked and untracked files alike), so a commit of the same files changes nothing.
inputs_hash=$( (cd "$root" && echo "$runtime_tar $builder_tar" && git ls-files -co --exclude-standard -- "${inputs[@]}" | LC_ALL=C sort | xargs -r sha256sum) | sha256sum | cut -c1-16)
if [ "$(podman image inspect "$image" --format '{{index .Labels "io.sluice.inputs"}}' 2>/dev/null || true)" = "$inputs_hash" ]; then
  log "$image is up to date (inputs $inputs_hash)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-image-XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- build stage: a throwaway copy of the toolchain root filesystem -----------------------------
bdir="$work/builder"
mkdir -p "$bdir"
tar -xf "$builder_tar" -C "$bdir"
mkdir -p "$bdir/src"
(cd "$root" && tar -cf - "${inputs[@]}") | tar -xf - -C "$bdir/src"
cp -a "$root/node_modules" "$bdir/src/node_modules"
log "building the agent, the addon and the BPF objects in debian $suite"
# A private mount namespace: /proc for the chroot vanishes with it.
# The chroot has none of the host's CA bundles.
env -u NODE_EXTRA_CA_CERTS unshare --mount --propagation private --fork -- sh -ec '
  mount -t proc proc "$1/proc"
  chroot "$1" sh -ec "
    cd /src
    rm -rf dist build
    node node_modules/typescript/bin/tsc -p tsconfig.build.json
    make -s -C bpf
    node node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir=/usr >/dev/null
  "
' sh "$bdir" >&2

# ---- runtime: the application tree appended to the runtime root filesystem ----------------------
app="$work/app"
mkdir -p "$app/app/dist" "$app/app/build/Release" "$app/usr/local/bin"
cp "$root/package.json" "$root/package-lock.json" "$app/app/"
cp -a "$bdir/src/dist/src" "$app/app/dist/src"
mkdir -p "$app/app/dist/bpf"
cp "$bdir/src/dist/bpf/"*.bpf.o "$app/app/dist/bpf/"
cp "$bdir/src/build/Release/sluice_native.node" "$bdir/src/build/Release/sluice_memory.node" "$app/app/build/Release/"
cp -a "$root/node_modules" "$app/app/node_modules"
(cd "$app/app" && npm prune --omit=dev --offline --no-audit --no-fund --ignore-scripts >/dev/null 2>&1)
for cmd in sluice-agent:agent sluicectl:sluicectl; do
  printf '#!/bin/sh\nexec node /app/dist/src/cli/%s.js "$@"\n' "${cmd#*:}" > "$app/usr/local/bin/${cmd%%:*}"
  chmod 0755 "$app/usr/local/bin/${cmd%%:*}"
done
cp "$runtime_tar" "$work/image.tar"
tar -rf "$work/image.tar" -C "$app" --owner=0 --group=0 ./app ./usr/local/bin/sluice-agent ./usr/local/bin/sluicectl
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV MALLOC_ARENA_MAX=1' \
  --change 'WORKDIR /app' \
  --change 'ENTRYPOINT ["sluice-agent"]' \
  --change "LABEL io.sluice.inputs=$inputs_hash" \
  --change "LABEL org.opencontainers.image.version=$version" \
  "$work/image.tar" "$image" >/dev/null
log "built $image ($(uname -m), inputs $inputs_hash)"
