#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The library as a user's project meets it (issue 13): `cmake --install` into a throwaway
# prefix, then examples/ is configured and built out of the tree against that prefix alone
# (find_package(trafficcop)), one example again through pkg-config, and the out-of-tree
# five_line_proxy proxies a real request to trafficcop-echo.
#   usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
tmp=$(mktemp -d /tmp/tc-install.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" --component dev >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install"; }
for f in include/trafficcop/reverse_proxy.hpp include/trafficcop/server.hpp \
         lib/libtrafficcop.a lib/libtrafficcop_asio.a lib/cmake/trafficcop/trafficcopConfig.cmake \
         lib/pkgconfig/trafficcop.pc; do
  [ -f "$prefix/$f" ] || fail "not installed: $f"
done
# The public headers stand alone: nothing from src/, no library internals.
! grep -rn 'detail::\|#include "\(core\|server\|upstream\|http1\|http2\)/' "$prefix/include" ||
  fail "public headers name internals"
[ "$(ls "$prefix/include")" = trafficcop ] || fail "headers beyond include/trafficcop"

# A user's CMake project. Only the prefix is given: nothing points back into the tree.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/examples" -B "$tmp/ex" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >"$tmp/cfg.log" 2>&1 ||
  { cat "$tmp/cfg.log"; fail "configure examples against the package"; }
cmake --build "$tmp/ex" -j2 >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; fail "build examples against the package"; }
# The compile definitions every TU must share came from the package, not from the user.
grep -q 'BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=64' "$tmp/ex/build.ninja" ||
  fail "the package did not carry BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE"
grep -q -- "-isystem $prefix/include" "$tmp/ex/build.ninja" || fail "include path not the prefix's"
! grep -q -- "$src/include\|$src/src\|$build/src" "$tmp/ex/build.ninja" ||
  fail "the examples' build points back into the source or build tree"

# pkg-config: the same, without CMake.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --cflags trafficcop | grep -q -- '-DBOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=64' ||
  fail "pkg-config --cflags: $(pkg-config --cflags trafficcop)"
# shellcheck disable=SC2046
g++ -std=c++20 -O1 "$src/examples/five_line_proxy.cpp" -o "$tmp/five_pc" \
    $(pkg-config --cflags --libs trafficcop) 2>"$tmp/pc.log" ||
  { cat "$tmp/pc.log"; fail "build with pkg-config"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  fail "nothing listens on $1"
}
echo_port=$(free_port)
"$build/bin/trafficcop-echo" --listen "127.0.0.1:$echo_port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$echo_port"
for prog in "$tmp/ex/five_line_proxy" "$tmp/five_pc"; do
  port=$(free_port)
  "$prog" "127.0.0.1:$port" "http://127.0.0.1:$echo_port" >"$tmp/prog.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
  body=$(curl -sS "http://127.0.0.1:$port/installed?x=1")
  grep -q 'GET /installed?x=1 HTTP/1.1' <<<"$body" || fail "$prog: upstream saw: $body"
  kill -TERM "$pid"
  wait "$pid" || fail "$prog: exit status $? after SIGTERM: $(cat "$tmp/prog.log")"
done
echo "PASS: installed package built examples/ (CMake and pkg-config) and proxied through them"
