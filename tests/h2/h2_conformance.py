#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""HTTP/2 server conformance suite in the manner of h2spec (RFC 9113 and RFC 7541).

Each case opens its own connection(s), sends crafted frames and checks the server's answer
against what RFC 9113 requires; alternatives h2spec accepts are accepted (a stream error may
also be answered with a connection error of the same code, or by closing the connection).
One line per case, a summary, exit status 1 on any failure.

  /usr/bin/python3 tests/h2/h2_conformance.py --nghttpd              # reference run
  /usr/bin/python3 tests/h2/h2_conformance.py --bin build-dev/bin    # trafficcop + echo
  /usr/bin/python3 tests/h2/h2_conformance.py --target 127.0.0.1:8443 --tls
Options: --only SUBSTRING (case id or title), --list, --timeout SECONDS.
"""
import argparse
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2util  # noqa: E402
import h2servers  # noqa: E402
import cases_core  # noqa: E402,F401 - registers cases
import cases_frames  # noqa: E402,F401
import cases_http  # noqa: E402,F401
import cases_hpack  # noqa: E402,F401


def health(servers, target, timeout):
    """None if the server is alive and answers GET / with 200 on a new connection; else why
    not. A crash must not pass as 'connection closed'."""
    why = servers.dead(target)
    if why:
        return why
    c = None
    try:
        c = h2util.connect(target, timeout=timeout)
        c.request(1)
        r = h2util.expect_response(c, 1)
        return None if r.status == "200" else f"GET / on a new connection: {r.status}"
    except (h2util.Fail, OSError) as e:
        return f"GET / on a new connection: {e}"
    finally:
        if c:
            c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    h2servers.add_target_args(ap)
    ap.add_argument("--only", action="append", default=[],
                    help="run the cases whose id or title contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks of errors")
    ap.add_argument("--strict", action="store_true",
                    help="count known libnghttp2 deviations (KNOWN) as failures")
    args = ap.parse_args()

    cases = [c for c in h2util.CASES
             if not args.only or any(o in c.ident or o.lower() in c.title.lower()
                                     for o in args.only)]
    if args.list:
        for c in cases:
            print(f"{c.ident:13} {c.section:28} {c.title} -> {c.expect}")
        print(f"{len(cases)} cases")
        return 0

    failed, known = [], []
    ran = 0
    with h2servers.Servers(args) as servers:
        target = servers.target
        sick = health(servers, target, args.timeout)
        if sick:
            print(f"the server is not usable before any case: {sick}")
            return 2
        mode = "TLS" if target.tls else "h2c"
        print(f"target {target.authority} ({mode}), {len(cases)} cases", flush=True)
        start = time.monotonic()
        for c in cases:
            ctx = h2util.Ctx(target, args.timeout)
            t0 = time.monotonic()
            try:
                got = c.fn(ctx)
                verdict = "PASS"
            except h2util.Fail as e:
                got, verdict = str(e), "FAIL"
                if c.known and re.search(c.known[0], got) and not args.strict:
                    verdict = "KNOWN"
                    got += f" [known deviation: {c.known[1]}]"
            except Exception as e:  # noqa: BLE001 - a broken case is a failure, keep going
                got, verdict = f"{type(e).__name__}: {e}", "FAIL"
                if args.verbose:
                    traceback.print_exc()
            finally:
                ctx.close()
            sick = health(servers, target, args.timeout)
            if sick:
                got, verdict = f"{got}; SERVER UNHEALTHY AFTERWARDS: {sick}", "FAIL"
            ms = (time.monotonic() - t0) * 1000
            tag = f"[{verdict}]"
            print(f"{tag:8}{c.ident:13} {c.section}: {c.title} | expected {c.expect} | "
                  f"result: {got} ({ms:.0f} ms)", flush=True)
            if verdict == "FAIL":
                failed.append(c)
            elif verdict == "KNOWN":
                known.append(c)
            ran += 1
            if sick:
                print("stopping: the server is no longer usable")
                break
        took = time.monotonic() - start
    passed = ran - len(failed) - len(known)
    print(f"\n{passed} passed, {len(failed)} failed, {len(known)} known deviations, "
          f"{len(cases) - ran} not run, {len(cases)} cases, {took:.1f} s")
    for c in known:
        print(f"  known:  {c.ident} {c.title}")
    for c in failed:
        print(f"  failed: {c.ident} {c.title}")
    return 1 if failed or ran < len(cases) else 0


if __name__ == "__main__":
    sys.exit(main())
