#!/usr/bin/env bash
# Installs the Debian packages SwiftCube needs to build, test and benchmark.
# Idempotent and quiet when everything is present; `apt-get update` runs only when
# something is missing.  Every dependency comes from Debian (ARCHITECTURE.md).
set -euo pipefail

pkgs=(
  # build
  gcc clang meson ninja-build pkg-config libclang-rt-14-dev
  # libraries
  libevent-dev libssl-dev libjansson-dev libyaml-dev libcurl4-openssl-dev
  libarchive-dev libseccomp-dev
  # tests
  libcmocka-dev bats curl jq iproute2 procps busybox-static b3sum docker-registry umoci openssl
  # partitions between the multi-host test's namespaces (tests/system/cluster_lib.sh)
  nftables
  # benchmark peers and load generators
  etcd-server etcd-client wrk crun runc erofs-utils
  # load balancers the lb providers drive (src/lb, tests/lb)
  nginx libnginx-mod-stream haproxy
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
