#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The binary against the routing of issue 9.6 (docs/config.md, routes): wildcard hosts, exact
path before regex before prefix, methods/headers/query matchers, strip_prefix, prefix_rewrite
and host_rewrite, redirect and respond routes, routes limited to listeners. Both sides are
asserted: what the client got, and what the recording upstream (h2_upstream.py) received. Each
route tags what it forwards with X-Route (request_headers), so the upstream's record says which
route took the request; routes that answer themselves must leave the upstream untouched, which
is checked after the last proxied request came back (it was recorded before it was answered).

usage: routing_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import contextlib
import http.client
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-routing-")


def route(tag, **keys):
    """One route line, tagging what it forwards with X-Route: tag."""
    body = ", ".join(f"{k}: {v}" for k, v in keys.items())
    return f"  - {{{body}, upstream: up, request_headers: {{set: {{X-Route: {tag}}}}}}}"


def config(up_port, routes, listeners=None, base="", log="off"):
    def make(port):
        ls = listeners(port) if listeners else [
            f"  - {{address: '127.0.0.1:{port}', http2: {{h2c: true}}}}"]
        return "\n".join(["workers: 1", f"access_log: {{path: '{log}'}}", "listeners:", *ls,
                          "upstreams:",
                          f"  - {{name: up, url: 'http://127.0.0.1:{up_port}{base}',"
                          " http2: never}",
                          "routes:", *routes]) + "\n"
    return make


@contextlib.contextmanager
def proxy(config_for):
    """trafficcop on `config_for`; on leaving, it must stop cleanly (exit 0: a sanitizer's
    report after the checks passed fails the check too)."""
    tc = harness.Trafficcop(A.trafficcop, config_for, TMP)
    try:
        yield tc
    finally:
        rc = tc.stop()
    assert rc == 0, f"trafficcop exited with {rc}:\n{tc.stderr()[-3000:]}"


def h1(port, target, host="a.example.com", method="GET", headers=()):
    """One HTTP/1.1 request: (status, {lower-case name: value}, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    try:
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host)
        for n, v in headers:
            c.putheader(n, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, {n.lower(): v for n, v in r.getheaders()}, r.read()
    finally:
        c.close()


def tag_of(body):
    """The X-Route the upstream received, from its JSON record echoed back."""
    rec = json.loads(body)
    return next((v for n, v in rec["headers"] if n.lower() == "x-route"), None)


def forwarded(up):
    return [(r["path"], next((v for n, v in r["headers"] if n.lower() == "x-route"), None))
            for r in up.records()]


def expect_route(port, want, target, **kw):
    status, _, body = h1(port, target, **kw)
    assert status == 200, (target, kw, status, body[:300])
    got = tag_of(body)
    assert got == want, f"{target} {kw}: route {got}, expected {want}"


def wildcard_hosts():
    up = Upstream(protocols=("h1",))
    routes = [route("any", path_prefix="/"),
              route("wild", host="'*.example.com'"),
              route("wild-long", host="'*.b.example.com'"),
              route("exact", host="a.b.example.com"),
              route("exact-api", host="a.b.example.com", path_prefix="/api")]
    try:
        with proxy(config(up.port, routes)) as tc:
            expect_route(tc.port, "exact", "/x", host="a.b.example.com")
            expect_route(tc.port, "exact", "/x", host="A.B.Example.COM:8080")
            expect_route(tc.port, "exact-api", "/api/v1", host="a.b.example.com")
            expect_route(tc.port, "wild-long", "/x", host="z.b.example.com")
            expect_route(tc.port, "wild-long", "/x", host="y.z.b.example.com")
            expect_route(tc.port, "wild", "/x", host="b.example.com")
            expect_route(tc.port, "wild", "/x", host="c.example.com:81")
            expect_route(tc.port, "any", "/x", host="example.com")
            expect_route(tc.port, "any", "/x", host="example.org")
            # h2c: the :authority is the host.
            with H2Client(tc.port) as c:
                st = c.exchange(base_headers("GET", "/h2", "q.b.example.com"))
            assert int(st.status) == 200 and tag_of(bytes(st.data)) == "wild-long", st
            assert len(up.records()) == 10, forwarded(up)
    finally:
        up.stop()


def path_precedence():
    up = Upstream(protocols=("h1",))
    routes = [route("prefix-root", path_prefix="/"),
              route("prefix", path_prefix="/p"),
              route("prefix-long", path_prefix="/p/users"),
              route("regex-1", path_regex="'/p/users/[0-9]+'"),
              route("regex-2", path_regex="'/p/users/.*'"),
              route("exact", path="/p/users/42")]
    try:
        with proxy(config(up.port, routes)) as tc:
            expect_route(tc.port, "exact", "/p/users/42")
            expect_route(tc.port, "exact", "/p/users/42?x=1")
            expect_route(tc.port, "regex-1", "/p/users/43")
            expect_route(tc.port, "regex-2", "/p/users/bob")  # the first regex did not match
            expect_route(tc.port, "prefix-long", "/p/users")
            expect_route(tc.port, "prefix", "/p/usersx")  # prefixes are whole segments
            expect_route(tc.port, "prefix", "/p")
            expect_route(tc.port, "prefix-root", "/px")
            # Routes match the normalised path: dot segments cannot reach the exact route
            # from elsewhere, nor leave it.
            expect_route(tc.port, "exact", "/p/x/../users/42")
            assert [p for p, _ in forwarded(up)][-1] == "/p/users/42", forwarded(up)
    finally:
        up.stop()


def other_matchers():
    up = Upstream(protocols=("h1",))
    routes = [route("post", path_prefix="/m", methods="[POST, PUT]"),
              route("canary", path_prefix="/m", headers="{X-Canary: '1'}"),
              route("tier", path_prefix="/m", headers="{X-Tier: {regex: 'gold|silver'}}"),
              route("v2", path_prefix="/m", query="{v: '2'}"),
              route("default", path_prefix="/m"),
              route("get-only", path="/g", methods="[GET, HEAD]")]
    try:
        with proxy(config(up.port, routes)) as tc:
            expect_route(tc.port, "post", "/m/x", method="POST", headers=[("X-Canary", "1")])
            expect_route(tc.port, "canary", "/m/x", headers=[("x-canary", "1")])
            expect_route(tc.port, "default", "/m/x", headers=[("X-Canary", "2")])
            expect_route(tc.port, "tier", "/m/x", headers=[("X-Tier", "silver")])
            expect_route(tc.port, "default", "/m/x", headers=[("X-Tier", "silverish")])
            expect_route(tc.port, "v2", "/m/x?a=1&v=2")
            expect_route(tc.port, "v2", "/m/x?v=%32")
            expect_route(tc.port, "default", "/m/x?v=3")
            expect_route(tc.port, "get-only", "/g")
            n = len(up.records())
            status, _, _ = h1(tc.port, "/g", method="DELETE")
            assert status == 404, status
            assert len(up.records()) == n, forwarded(up)
    finally:
        up.stop()


def rewrites():
    up = Upstream(protocols=("h1",))
    routes = [route("strip", path_prefix="/api", strip_prefix="true"),
              route("rewrite", path_prefix="/old/", prefix_rewrite="/v2/"),
              route("host", path_prefix="/h", host_rewrite="internal.example:8443"),
              route("plain", path_prefix="/")]
    log = os.path.join(TMP, "rewrites.log")
    try:
        with proxy(config(up.port, routes, base="/base", log=log)) as tc:
            for target, want in [("/api/users?id=7", "/base/users?id=7"),
                                 ("/api", "/base/"),
                                 ("/old/a/b?x=1", "/base/v2/a/b?x=1"),
                                 ("/h/x", "/base/h/x"),
                                 ("/apix", "/base/apix")]:
                status, _, body = h1(tc.port, target, host="client.example:8080")
                assert status == 200, (target, status, body[:300])
                assert json.loads(body)["path"] == want, (target, json.loads(body)["path"])
            recs = up.records()
            hosts = [[v for n, v in r["headers"] if n.lower() == "host"] for r in recs]
            xfh = [[v for n, v in r["headers"] if n.lower() == "x-forwarded-host"] for r in recs]
            authority = f"127.0.0.1:{up.port}"
            assert hosts == [[authority], [authority], [authority], ["internal.example:8443"],
                             [authority]], hosts
            assert all(x == ["client.example:8080"] for x in xfh), xfh
        # The access log shows what the client asked for, not the rewritten path (written
        # out by the graceful stop above at the latest).
        with open(log) as f:
            targets = [json.loads(line)["target"] for line in f]
        assert targets == ["/api/users?id=7", "/api", "/old/a/b?x=1", "/h/x", "/apix"], targets
    finally:
        up.stop()


def local_answers():
    """Redirect and respond routes: HTTP -> HTTPS with {host}{path}, a fixed health answer,
    over HTTP/1.1 and h2c; the upstream sees none of them."""
    up = Upstream(protocols=("h1",))
    routes = [route("api", path_prefix="/api"),
              "  - {path: /healthz,"
              "     respond: {body: \"ok\\n\", headers: {Cache-Control: no-store}}}",
              "  - {path: /teapot, respond: {status: 418}, response_headers: {set: {X-Why: tea}}}",
              "  - {path_prefix: /moved, redirect: {to: '/new', status: 308}}",
              "  - {path_prefix: /, redirect: {to: 'https://{host}{path}'}}"]
    try:
        with proxy(config(up.port, routes)) as tc:
            status, h, body = h1(tc.port, "/some/./path?x=1&y=%2F", host="Shop.example:8080")
            assert status == 301 and body == b"", (status, h, body)
            assert h["location"] == "https://Shop.example/some/./path?x=1&y=%2F", h
            assert h["content-length"] == "0", h
            status, h, body = h1(tc.port, "/moved/x", method="POST")
            assert status == 308 and h["location"] == "/new", (status, h)
            status, h, body = h1(tc.port, "/healthz")
            assert (status, body) == (200, b"ok\n"), (status, body)
            assert h["cache-control"] == "no-store" and h["content-length"] == "3", h
            status, h, body = h1(tc.port, "/healthz", method="HEAD")
            assert status == 200 and body == b"" and h["content-length"] == "3", (status, h)
            status, h, body = h1(tc.port, "/teapot")
            assert (status, body, h["x-why"]) == (418, b"", "tea"), (status, h, body)
            with H2Client(tc.port) as c:
                st = c.exchange(base_headers("GET", "/a?b=c", "h2.example:8080"))
                assert int(st.status) == 301, st
                assert st.get("location") == ["https://h2.example/a?b=c"], st
                st = c.exchange(base_headers("GET", "/healthz", "h2.example"))
                assert int(st.status) == 200 and bytes(st.data) == b"ok\n", st
            # The one proxied request, last: every answer above came back before it was sent.
            expect_route(tc.port, "api", "/api/x")
            assert forwarded(up) == [("/api/x", "api")], forwarded(up)
    finally:
        up.stop()


def listener_limited():
    up = Upstream(protocols=("h1",))
    admin_port = harness.free_port()
    routes = [route("admin-api", path_prefix="/admin", listeners="[admin]"),
              "  - {path_prefix: /admin, listeners: [public], respond: {status: 403}}",
              route("public-all", path_prefix="/", listeners="[public]"),
              route("admin-all", path_prefix="/", listeners="[admin]"),
              route("both", path="/both", listeners="[public, admin]")]

    def listeners(port):
        return [f"  - {{name: public, address: '127.0.0.1:{port}', http2: {{h2c: true}}}}",
                f"  - {{name: admin, address: '127.0.0.1:{admin_port}'}}"]
    try:
        with proxy(config(up.port, routes, listeners)) as tc:
            harness.wait_listening(admin_port, tc.p)
            expect_route(admin_port, "admin-api", "/admin/users")
            status, _, _ = h1(tc.port, "/admin/users")
            assert status == 403, status
            with H2Client(tc.port) as c:
                st = c.exchange(base_headers("GET", "/admin/users", "a.example.com"))
            assert int(st.status) == 403, st
            expect_route(tc.port, "public-all", "/x")
            expect_route(admin_port, "admin-all", "/x")
            expect_route(tc.port, "both", "/both")
            expect_route(admin_port, "both", "/both")
            assert [t for _, t in forwarded(up)] == ["admin-api", "public-all", "admin-all",
                                                     "both", "both"], forwarded(up)
    finally:
        up.stop()


def check_errors():
    """`trafficcop check` names the route and the key of each mistake."""
    path = os.path.join(TMP, "bad.yaml")
    with open(path, "w") as f:
        f.write("\n".join([
            "listeners: [{name: public, address: '127.0.0.1:8080'}]",
            "upstreams: [{name: up, url: 'http://127.0.0.1:9000'}]",
            "routes:",
            "  - {path_regex: '/a(', upstream: up}",
            "  - {path: /r, upstream: up, redirect: {to: 'https://{host}{path}'}}",
            "  - {path: /n}",
            "  - {host: '*example.com', upstream: up}",
            "  - {path_prefix: /d, upstream: up}",
            "  - {path_prefix: /d, upstream: up}",
            "  - {path: /l, listeners: [private], upstream: up}"]) + "\n")
    r = harness.run([A.trafficcop, "check", "-c", path])
    err = r.stderr.decode()
    assert r.returncode != 0, (r.returncode, err)
    for want in ["routes[0].path_regex: \"/a(\" is not a valid regular expression",
                 "routes[1].redirect: upstream is given too",
                 "routes[2]: needs one of upstream, redirect, respond",
                 "routes[3].host: \"*example.com\" is not a host name or a wildcard",
                 "routes[5]: same host and path_prefix as routes[4], so it can never match",
                 "routes[6].listeners[0]: no listener named \"private\""]:
        assert want in err, f"{want!r} not in:\n{err}"


R.check("wildcard hosts: exact, longest wildcard, any", wildcard_hosts)
R.check("exact path, then regex in file order, then longest prefix", path_precedence)
R.check("methods, headers and query matchers", other_matchers)
R.check("strip_prefix, prefix_rewrite and host_rewrite as the upstream sees them", rewrites)
R.check("redirect and respond routes leave the upstream untouched", local_answers)
R.check("routes limited to listeners", listener_limited)
R.check("trafficcop check reports routing mistakes with their paths", check_errors)
sys.exit(R.finish())
