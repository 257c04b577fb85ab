#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fault soak of issue 14.9: 100k requests of the fault mix through trafficcop, asserting 0
# wrong bodies and no descriptor or RSS growth after idle (tests/soak/soak.py says what runs
# and what is asserted). 127.0.0.1 only; bounded (15 minutes at most) and stops by itself.
#
#   bench/soak.sh [--bin-dir DIR] [soak.py options: --requests N --concurrency C --seed S
#                  --workers W --sanitized --json FILE ...]
#
# --bin-dir: the build whose trafficcop runs (default build/bin; build-asan/bin with
# --sanitized). ctest runs a 5000-request version as `soak_short` (label soak).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/../build/bin"
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -x "$bin/trafficcop" ] || { echo "no $bin/trafficcop: build first (ninja -C build)"; exit 2; }
exec /usr/bin/python3 "$here/../tests/soak/soak.py" --bin "$bin" --requests 100000 "${args[@]}"
