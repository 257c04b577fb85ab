#!/usr/bin/env bash
# Installs what trafficcop needs on Debian 12 (only what is missing) and builds it.
#   scripts/setup.sh [--build-dir DIR] [--sanitize | --tsan] [--no-tests]
# Packages: see shared/reference/deps.md. Never install libboost-dev (1.74): it removes 1.81.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
sanitize=OFF
tsan=OFF
tests=ON
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --sanitize) sanitize=ON; shift ;;
    --tsan) tsan=ON; shift ;;
    --no-tests) tests=OFF; shift ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

packages=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  libboost1.81-dev libssl-dev libnghttp2-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev curl python3 openssl ccache
  nghttp2-client python3-h2 python3-hyperframe python3-grpcio libre2-dev libsystemd-dev
  libhiredis-dev redis-server liburing-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cxx=g++
[ "$sanitize" = ON ] && cxx=clang++  # clang builds the ASan+UBSan tree faster
[ "$tsan" = ON ] && cxx=clang++      # g++ 12 warns on Asio's fences under TSan
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAFFICCOP_SANITIZE="$sanitize" -DTRAFFICCOP_TSAN="$tsan" \
    -DTRAFFICCOP_TESTS="$tests"
fi
cmake --build "$build_dir" -j "$(nproc)"
