#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The .deb (issue 10.4): cpack builds it from this build directory; it is unpacked into a
# throwaway root, where the shipped binary checks the shipped config, the man page and the
# systemd unit are where Debian wants them, the config is a conffile, and apt resolves its
# dependencies (`apt-get -s install ./trafficcop_*.deb`: a simulation, nothing is installed).
#   usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/tc-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/out/trafficcop_*.deb)
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"

out=$("$tmp/root/usr/bin/trafficcop" check -c "$tmp/root/etc/trafficcop/trafficcop.yaml")
[[ $out == ok:* ]] || fail "trafficcop check on the shipped config: $out"
"$tmp/root/usr/bin/trafficcop" --version | grep -q '^trafficcop ' || fail "--version"
zcat "$tmp/root/usr/share/man/man1/trafficcop.1.gz" | grep -q '^\.TH TRAFFICCOP 1' ||
  fail "man page"
zcat "$tmp/root/usr/share/man/man1/trafficcop.1.gz" | grep -q 'SIGHUP' ||
  fail "the man page carries --help (signals)"
[ ! -e "$tmp/root/usr/include" ] && [ -z "$(find "$tmp/root" -name '*.a')" ] ||
  fail "the library's dev files (headers, archives) are in the .deb"
grep -q '^Type=notify' "$tmp/root/lib/systemd/system/trafficcop.service" || fail "unit"
grep -qx '/etc/trafficcop/trafficcop.yaml' "$tmp/control/conffiles" || fail "conffiles"
grep -q '^Depends: .*libnghttp2' "$tmp/control/control" || fail "shlibdeps: $(cat "$tmp/control/control")"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get -s install "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get -s install"; }
  grep -q '^Inst trafficcop' "$tmp/apt.log" || { cat "$tmp/apt.log"; fail "apt would not install it"; }
fi
echo "PASS: $(basename "$deb"): $(grep '^Depends' "$tmp/control/control")"
