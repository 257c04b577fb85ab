#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The binary against the request-level attacks of issue 14, items 1-4, over HTTP/1.1 and h2c:
routes match the normalised path (no escape from a route with dot segments, encoded or not),
invalid Host values are 400, header names with '_' are dropped (or kept, or rejected, as
configured), and `upstream_target: raw` forwards the bytes as received. Both sides are
asserted: what the client got, and what the recording upstream (h2_upstream.py) received, or
that it received nothing.

usage: hardening_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-hardening-")


def config(up_port, extra=""):
    def make(port):
        return "\n".join([
            "workers: 1", "access_log: {path: 'off'}", extra,
            "listeners:", f"  - {{address: '127.0.0.1:{port}', http2: {{h2c: true}}}}",
            "upstreams:", f"  - {{name: e, url: 'http://127.0.0.1:{up_port}', http2: never}}",
            "routes:",
            "  - {path_prefix: /public, upstream: e}",
            "  - {path_prefix: /raw, upstream: e, upstream_target: raw}"]) + "\n"
    return make


def h1(port, target, headers=(("Host", "a.example"),)):
    """One raw HTTP/1.1 request, the bytes exactly as given: the status."""
    head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
        s.sendall((head + "Connection: close\r\n\r\n").encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def h2(port, path, authority="a.example", extra=()):
    """One h2c request: the status, or "reset" when the stream was reset instead (libnghttp2
    itself refuses some malformed pseudo-headers with RST_STREAM)."""
    with H2Client(port) as c:
        st = c.exchange(base_headers("GET", path, authority, extra=list(extra)))
    return "reset" if st.reset is not None else int(st.status)


def paths(up):
    return [r["path"] for r in up.records()]


ESCAPES = ["/public/../internal/x", "/public/%2e%2e/internal/x", "/public/%2E%2E/internal/x",
           "/public/.%2e/internal/x", "/public/./../internal/x"]
AMBIGUOUS = ["/public/..%2finternal/x", "/public/..%2Finternal/x", "/public/%2e%2e%2finternal",
             "/public/..%5cinternal/x", "/public/%zz"]


def routes_match_the_normalised_path(send):
    up = Upstream(protocols=("h1",))
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port), TMP) as tc:
            for target in ESCAPES:  # normalised to /internal/x: no route takes it
                assert send(tc.port, target) == 404, target
            for target in AMBIGUOUS:
                assert send(tc.port, target) == 400, target
            assert send(tc.port, "/public/a/../b/%7Ec?x=/../y") == 200
            assert send(tc.port, "/raw/a/../b/%7Ec") == 200
            up.wait_records(lambda rs: len(rs) >= 2, "two requests upstream")
            # Only the two requests that a route took reached the upstream, the first one
            # normalised, the second one as it was sent.
            assert paths(up) == ["/public/b/~c?x=/../y", "/raw/a/../b/%7Ec"], paths(up)
    finally:
        up.stop()


BAD_HOSTS = ["a b", "evil.example/x?y#z", "a@b:c:d", "x:99999", "[::1", ""]


def invalid_hosts_are_400():
    up = Upstream(protocols=("h1",))
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port), TMP) as tc:
            for host in BAD_HOSTS:
                assert h1(tc.port, "/public/x", [("Host", host)]) == 400, host
                assert h2(tc.port, "/public/x", authority=host) in (400, "reset"), host
                assert h2(tc.port, "/public/x", extra=[("host", host)]) in (400, "reset"), host
            assert h1(tc.port, "/public/v6", [("Host", "[::1]:8080")]) == 200
            assert h2(tc.port, "/public/port", authority="ok.example:81") == 200
            up.wait_records(lambda rs: len(rs) >= 2, "two requests upstream")
            recs = up.records()
            assert [r["path"] for r in recs] == ["/public/v6", "/public/port"], recs
            xfh = [[v for n, v in r["headers"] if n.lower() == "x-forwarded-host"] for r in recs]
            assert xfh == [["[::1]:8080"], ["ok.example:81"]], xfh
    finally:
        up.stop()


def underscores(policy):
    up = Upstream(protocols=("h1",))
    extra = "" if policy is None else f"headers_with_underscores: {policy}"
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, extra), TMP) as tc:
            hs = [("Host", "a.example"), ("X_Forwarded_For", "6.6.6.6"), ("X-Ok", "1")]
            got = [h1(tc.port, "/public/u1", hs),
                   h2(tc.port, "/public/u2", extra=[("x_forwarded_for", "6.6.6.6"),
                                                    ("x-ok", "1")])]
            if policy == "reject":
                assert got == [400, 400], got
                assert up.records() == [], up.records()
                return
            assert got == [200, 200], got
            up.wait_records(lambda rs: len(rs) >= 2, "two requests upstream")
            for r in up.records():
                names = [n.lower() for n, _ in r["headers"]]
                assert "x-ok" in names, r
                assert ("x_forwarded_for" in names) == (policy == "keep"), r
    finally:
        up.stop()


R.check("routes match the normalised path, HTTP/1.1", routes_match_the_normalised_path, h1)
R.check("routes match the normalised path, h2c", routes_match_the_normalised_path, h2)
R.check("invalid Host and :authority are 400", invalid_hosts_are_400)
R.check("underscore fields dropped by default", underscores, None)
R.check("underscore fields kept when configured", underscores, "keep")
R.check("underscore fields rejected when configured", underscores, "reject")
sys.exit(R.finish())
