#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The HTTP/2 integration matrix of docs/http2.md, end to end through the trafficcop binary.

Cells: downstream {h1, h2} x upstream {h1, h2} x {plain, TLS} (both sides toggled together),
plus, without --quick, two cells where only one side is TLS. Downstream clients are raw h1/h2
clients (exact header lines, trailers, streaming), curl (--http1.1, --http2 with ALPN,
--http2-prior-knowledge on an `http2: {h2c: true}` listener), nghttp and h2load; the upstream
is h2_upstream.Upstream accepting only the cell's protocol, reached with `http2: always|never`
(and `tls: {ca_file}`). Each check asserts on what the upstream received and on what the
client got; see the docstring of each check. Then ALPN / `http2: auto` selection checks.

usage: matrix_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]... [--no-h2-config]
  --only h1-h1        run only checks whose name contains the string (repeatable)
  --no-h2-config      write no `http2:` keys for cells that do not need them, for a build
                      that predates HTTP/2 (its config loader rejects the keys)
"""
import hashlib
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from h2_upstream import pattern, pattern_sha256  # noqa: E402
from matrix_env import AUTHORITY, Combo, Env, from_h1, from_h2, new_id  # noqa: E402

A = harness.Args(sys.argv, flags=("--no-h2-config",))
R = harness.Runner(A)
QUICK = A.quick
UPLOAD = (1 if QUICK else 5) << 20
DOWNLOAD = (2 if QUICK else 10) << 20
CONCURRENT = 20 if QUICK else 50
HOP_REQUEST = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]


def values(headers, name):
    """Every value of `name` (case-insensitive) in a list of [name, value]."""
    return [v for n, v in headers if n.lower() == name]


def one_record(env, test_id):
    recs = env.up.wait_records(lambda rs: [r for r in rs if r["id_header"] == test_id
                                           and r["complete"]], f"the request {test_id}")
    assert len(recs) == 1, f"upstream saw {test_id} {len(recs)} times: {recs}"
    return recs[0]


def assert_ok(r, status=200):
    assert r.status == status and r.reset is None, f"want {status}, got {r!r}"


def check_protocols(env):
    """Each side speaks the cell's protocol: the upstream's record (HTTP/1.1 or HTTP/2, TLS and
    ALPN) and curl's %{http_version}; the proxy never tried the other protocol upstream."""
    tid = new_id("proto")
    r = env.curl("/proto", "-H", f"X-Test-Id: {tid}", "-o", os.devnull, "-w",
                 "%{http_code} %{http_version}")
    want = "2" if env.combo.down == "h2" else "1.1"
    assert r.returncode == 0 and r.stdout.decode() == f"200 {want}", (r.returncode, r.stdout,
                                                                       r.stderr)
    rec = one_record(env, tid)
    assert rec["proto"] == ("HTTP/2" if env.combo.up == "h2" else "HTTP/1.1"), rec
    assert rec["tls"] == env.combo.up_tls, rec
    if env.combo.up_tls:
        assert rec["alpn"] == ("h2" if env.combo.up == "h2" else "http/1.1"), rec
    assert not env.up.refused, f"upstream refused connections: {env.up.refused}"


def check_methods_and_paths(env):
    """Method, path and raw query reach the upstream byte for byte."""
    target = "/m/a%20b/c.d?q=1&r=%2Fx&e=&u=%C3%A9"
    with env.client() as c:
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
            tid = new_id("m")
            body = b"0123456789" if method in ("POST", "PUT", "PATCH") else None
            r = c.exchange(method, target, [("X-Test-Id", tid)], body)
            assert_ok(r)
            rec = one_record(env, tid)
            assert rec["method"] == method and rec["path"] == target, (method, rec)
            assert json.loads(r.body)["path"] == target, r
            assert rec["body_len"] == (len(body) if body else 0), \
                f"{method}: sent {len(body or b'')} body bytes, upstream got {rec['body_len']}"


def check_host_authority(env):
    """The upstream sees exactly one Host (HTTP/1.1) or :authority (HTTP/2), never both, with
    the client's value (host_header: keep) or the upstream's (rewrite); X-Forwarded-Host is the
    client's value either way."""
    up_port = env.up.port
    with env.client() as c:
        for path, want in [("/keep", AUTHORITY), ("/rewrite/x", f"127.0.0.1:{up_port}")]:
            tid = new_id("host")
            assert_ok(c.exchange("GET", path, [("X-Test-Id", tid)]))
            rec = one_record(env, tid)
            hosts, auths = values(rec["headers"], "host"), values(rec["headers"], ":authority")
            if env.combo.up == "h2":
                assert auths == [want] and hosts == [], (path, hosts, auths, rec["headers"])
            else:
                assert hosts == [want] and auths == [], (path, hosts, auths, rec["headers"])
            assert values(rec["headers"], "x-forwarded-host") == [AUTHORITY], rec["headers"]


def check_hop_by_hop_request(env):
    """Hop-by-hop request fields stop at the proxy: for an h1 client Connection (and what it
    lists), Keep-Alive, Proxy-Connection, Upgrade without Connection: upgrade, TE other than
    trailers, and Transfer-Encoding (the body still arrives whole); TE: trailers is forwarded
    as exactly `trailers`. An h2 client may only send te: trailers, which must arrive."""
    tid = new_id("hop")
    body = b"x" * 3000
    with env.client() as c:
        if env.combo.down == "h1":
            hs = [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"),
                  ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                  ("TE", "gzip, trailers"), ("Upgrade", "foo/1"), ("X-Test-Id", tid)]
            h = c.start("POST", "/hop-req", hs, body, True, length=-1)
        else:
            h = c.start("POST", "/hop-req", [("te", "trailers"), ("x-test-id", tid)], body)
        assert_ok(c.finish(h))
    rec = one_record(env, tid)
    hs = rec["headers"]
    names = {n.lower() for n, _ in hs}
    for bad in ["keep-alive", "proxy-connection", "upgrade", "x-hop"]:
        assert bad not in names, f"{bad} reached the upstream: {hs}"
    assert values(hs, "te") == ["trailers"], hs
    if env.combo.up == "h2":
        assert "connection" not in names and "transfer-encoding" not in names, hs
    else:
        for v in values(hs, "connection"):
            assert {t.strip().lower() for t in v.split(",")} <= {"keep-alive", "close"}, hs
        assert all(v.lower() == "chunked" for v in values(hs, "transfer-encoding")), hs
    assert rec["body_len"] == len(body), f"sent {len(body)} bytes, upstream got {rec}"


def check_h2_client_connection_headers_refused(env):
    """RFC 9113 §8.2.2: an h2 request carrying a connection-specific field (or TE other than
    trailers) is malformed: the client gets RST_STREAM or a 4xx, the upstream nothing, and the
    connection still serves the next stream."""
    for name, value in [("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                        ("proxy-connection", "keep-alive"), ("transfer-encoding", "chunked"),
                        ("upgrade", "websocket"), ("te", "gzip")]:
        tid = new_id("h2bad")
        with env.client() as c:
            r = c.exchange("GET", "/bad", [(name, value), ("x-test-id", tid)])
            assert r.reset is not None or 400 <= r.status < 500, (name, r)
            ok = c.exchange("GET", "/after", [("x-test-id", tid + "-after")])
            assert_ok(ok)
        one_record(env, tid + "-after")
        assert env.up.find(tid) == [], f"{name} request reached the upstream"


def check_h2_body_without_content_length(env):
    """An h2 request body without content-length (as gRPC and most h2 clients send) arrives
    whole, whether its DATA comes in the same write as HEADERS or later, small or large."""
    bad = []
    with env.client() as c:
        for size in (10, 3000, 100000):
            for split in (False, True):
                tid = new_id("nocl")
                hs = c.headers("POST", "/nocl", [("x-test-id", tid)], AUTHORITY)
                sid = c.c.request(hs, pattern(size), split=split)
                assert_ok(from_h2(c.c.wait(sid)[0]))
                rec = one_record(env, tid)
                if rec["body_len"] != size or rec["body_sha256"] != pattern_sha256(size):
                    cl = values(rec["headers"], "content-length")
                    bad.append(f"{size} bytes in {'two writes' if split else 'one write'}: "
                               f"upstream got {rec['body_len']} (content-length {cl})")
    assert not bad, "; ".join(bad)


def check_hop_by_hop_response(env):
    """Hop-by-hop response fields an HTTP/1.1 upstream sends (Connection and what it lists,
    Keep-Alive, Proxy-Connection) never reach the client; an h2 client gets no
    connection-specific field at all."""
    path = "/hop" if env.combo.up == "h1" else "/plain"
    with env.client() as c:
        r = c.exchange("GET", path)
    assert_ok(r)
    names = {n for n, _ in r.headers}
    for bad in ["x-hop-resp", "keep-alive", "proxy-connection"]:
        assert bad not in names, f"{bad} reached the client: {r.headers}"
    if env.combo.down == "h2":
        for bad in HOP_REQUEST:
            assert bad not in names, f"{bad} reached the h2 client: {r.headers}"
    else:
        for v in r.get("connection"):
            assert {t.strip().lower() for t in v.split(",")} <= {"keep-alive", "close"}, r


def check_forwarded(env):
    """X-Forwarded-For gets the client address appended (one line), X-Forwarded-Proto is the
    downstream scheme and X-Forwarded-Host the client's Host/:authority (spoofs replaced)."""
    tid = new_id("fwd")
    with env.client() as c:
        assert_ok(c.exchange("GET", "/fwd", [("X-Forwarded-For", "203.0.113.7"),
                                             ("X-Forwarded-Proto", "spoof"),
                                             ("X-Forwarded-Host", "spoof.example"),
                                             ("X-Test-Id", tid)]))
    hs = one_record(env, tid)["headers"]
    assert values(hs, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"], hs
    assert values(hs, "x-forwarded-proto") == ["https" if env.combo.down_tls else "http"], hs
    assert values(hs, "x-forwarded-host") == [AUTHORITY], hs


def check_upload(env):
    """A large upload with curl: the upstream's sha256 and length equal the file's, and the
    echoed body equals it too."""
    tmp = tempfile.mkdtemp(prefix="tc-up-")
    src = os.path.join(tmp, "up.bin")
    data = os.urandom(UPLOAD)
    with open(src, "wb") as f:
        f.write(data)
    sha = hashlib.sha256(data).hexdigest()
    tid = new_id("up")
    r = env.curl("/upload", "-H", f"X-Test-Id: {tid}", "--data-binary", f"@{src}")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["body_len"] == UPLOAD and got["body_sha256"] == sha, got
    rec = one_record(env, tid)
    assert rec["body_sha256"] == sha and rec["method"] == "POST", rec
    out = os.path.join(tmp, "echo.bin")
    r = env.curl("/echo", "-T", src, "-o", out, "-w", "%{http_code}")
    assert r.returncode == 0 and r.stdout == b"200", (r.stdout, r.stderr)
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == sha, "echoed body differs"


def check_upload_streamed(env):
    """The request body is streamed: the upstream receives the first bytes while the client
    still holds the rest back (a buffering proxy would wait here until the deadline)."""
    tid = new_id("stream-up")
    total, first = 1 << 20, 64 << 10
    body = pattern(total)
    with env.client() as c:
        h = c.start("PUT", "/streamed", [("X-Test-Id", tid)], body[:first], end=False,
                    length=total)
        c.wait_upstream(lambda rs: any(r["id_header"] == tid and r["body_len"] > 0 for r in rs),
                        "the first body bytes at the upstream")
        c.send_more(h, body[first:], end=True)
        r = c.finish(h)
    assert_ok(r)
    rec = one_record(env, tid)
    assert rec["body_len"] == total and rec["body_sha256"] == pattern_sha256(total), rec


def check_download(env):
    """A large response body with curl: length and sha256 equal the upstream's."""
    out = os.path.join(tempfile.mkdtemp(prefix="tc-down-"), "down.bin")
    r = env.curl(f"/bytes/{DOWNLOAD}", "-o", out, "-w", "%{http_code} %{size_download}")
    assert r.returncode == 0 and r.stdout.decode() == f"200 {DOWNLOAD}", (r.stdout, r.stderr)
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == pattern_sha256(DOWNLOAD), "body differs"


def check_download_streamed(env):
    """The response body is streamed: the client gets the first chunk while the upstream holds
    the rest back until the test opens the gate."""
    gate = new_id("gate")
    n = 1 << 20
    with env.client() as c:
        h = c.start("GET", f"/bytes/{n}?pause={gate}")
        if env.combo.down == "h2":
            st = c.c.streams[h]
            c.c.pump(lambda: len(st.data) > 0, "the first response bytes")
            env.up.open_gate(gate)
            r = c.finish(h)
        else:
            raw = c.c.read_head()
            c.c.read_body(raw, at_least=1)
            env.up.open_gate(gate)
            r = from_h1(c.c.read_body(raw))
    assert_ok(r)
    assert len(r.body) == n and r.sha256() == pattern_sha256(n), r


def check_request_trailers(env):
    """Request trailers (TE: trailers, body, trailer section) reach the upstream."""
    tid = new_id("rtr")
    with env.client() as c:
        r = c.exchange("POST", "/req-trailers", [("TE", "trailers"), ("X-Test-Id", tid)],
                       b"body-before-trailers", trailers=[("x-req-trailer", "yes")])
    assert_ok(r)
    rec = one_record(env, tid)
    assert values(rec["trailers"], "x-req-trailer") == ["yes"], f"upstream got {rec}"
    assert rec["body_len"] == len(b"body-before-trailers"), f"body: upstream got {rec}"


def check_response_trailers(env):
    """Response trailers of the upstream reach a client that sent TE: trailers, after the whole
    body (their x-body-sha256 matches what the client got)."""
    with env.client() as c:
        r = c.exchange("GET", "/trailers", [("TE", "trailers")])
    assert_ok(r)
    assert r.trailer("x-trailer-one") == ["1"], r
    assert r.trailer("x-body-sha256") == [r.sha256()], r


def check_no_body(env):
    """HEAD, 204 and 304 answers carry no body; the same connection then serves a normal
    request (no stray body bytes in between)."""
    with env.client() as c:
        r = c.exchange("HEAD", "/bytes/1000")
        assert_ok(r)
        assert r.body == b"" and r.get("content-length") in ([], ["1000"]), r
        for status in (204, 304):
            r = c.exchange("GET", f"/status/{status}")
            assert r.status == status and r.body == b"" and r.reset is None, r
        tid = new_id("after")
        r = c.exchange("GET", "/after-no-body", [("X-Test-Id", tid)])
        assert_ok(r)
        assert json.loads(r.body)["id_header"] == tid, r


def check_upstream_down(env):
    """An upstream that refuses connections: 502."""
    with env.client() as c:
        r = c.exchange("GET", "/dead/x")
    assert r.status == 502, r


def check_response_timeout(env):
    """An upstream slower than response_timeout (500ms): 504, well before it would answer."""
    t0 = time.time()
    with env.client() as c:
        r = c.exchange("GET", "/slow/delay/5000")
    took = time.time() - t0
    assert r.status == 504, r
    assert took < 4.0, f"504 after {took:.1f}s"


def check_concurrent(env):
    """Many requests at once: all reach the upstream before any is answered (the upstream
    holds them at a gate until all have arrived), then each client gets its own answer. For an
    h2 client: CONCURRENT streams on one connection; for h1: parallel connections."""
    gate = new_id("cgate")
    n = CONCURRENT if env.combo.down == "h2" else 16
    ids = [new_id(gate) for _ in range(n)]
    arrived = lambda rs: sum(1 for r in rs if r["id_header"] in ids) == n  # noqa: E731
    if env.combo.down == "h2":
        with env.client() as c:
            hs = [c.start("GET", f"/gate/{gate}?i={i}", [("x-test-id", t)])
                  for i, t in enumerate(ids)]
            c.wait_upstream(arrived, f"{n} concurrent streams at the upstream")
            env.up.open_gate(gate)
            for h, t in zip(hs, ids):
                r = c.finish(h)
                assert_ok(r)
                assert json.loads(r.body)["id_header"] == t, r
        return
    errors = []

    def one(t):
        try:
            with env.client() as c:
                r = c.exchange("GET", f"/gate/{gate}", [("X-Test-Id", t)])
                assert_ok(r)
                assert json.loads(r.body)["id_header"] == t, r
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(t,)) for t in ids]
    for t in threads:
        t.start()
    try:
        env.up.wait_records(arrived, f"{n} concurrent requests at the upstream")
    finally:
        env.up.open_gate(gate)
        for t in threads:
            t.join(harness.DEADLINE)
    assert not errors, errors[:3]


def check_nghttp_h2load(env):
    """nghttp -m CONCURRENT and h2load -n 200 -c 1 -m 20 on one connection: all 200."""
    tls = ["--cert=", "--key="] if env.combo.down_tls else []
    r = harness.run(["nghttp", "-n", "-s", "-t", "20", "-m", str(CONCURRENT), *tls,
                     env.url("/nghttp")], timeout=60)
    lines = [x for x in r.stdout.decode().splitlines() if x.strip().endswith("/nghttp")]
    assert r.returncode == 0 and len(lines) == CONCURRENT, (r.returncode, r.stdout[-2000:],
                                                            r.stderr[-2000:])
    assert all(" 200 " in x for x in lines), lines
    if QUICK:
        return
    r = harness.run(["h2load", "-n", "200", "-c", "1", "-m", "20", env.url("/h2load")],
                    timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0 and "200 succeeded" in out and "status codes: 200 2xx" in out, out


def check_upgrade(env):
    """An h1 client's Upgrade: websocket goes over HTTP/1.1 (101, bytes echoed both ways); to an
    `http2: always` upstream it is refused with 501 and the upstream sees nothing."""
    tid = new_id("ws")
    with env.client() as c:
        c.c.send_head("GET", "/ws", [("Host", AUTHORITY), ("Connection", "Upgrade"),
                                     ("Upgrade", "websocket"), ("X-Test-Id", tid)])
        r = c.c.read_head()
        if env.combo.up == "h2":
            assert r.status == 501, r
            assert env.up.find(tid) == [], "the upgrade request reached the h2 upstream"
            return
        assert r.status == 101, r
        c.c.send(b"ping through the tunnel")
        got = b""
        while len(got) < 23:
            got += c.c._take(23 - len(got))
        assert got == b"ping through the tunnel", got


CHECKS = [check_protocols, check_methods_and_paths, check_host_authority,
          check_hop_by_hop_request, check_hop_by_hop_response, check_forwarded, check_upload,
          check_upload_streamed, check_download, check_download_streamed,
          check_request_trailers, check_response_trailers, check_no_body, check_upstream_down,
          check_response_timeout, check_concurrent]
H2_DOWN_ONLY = [check_h2_body_without_content_length,
                check_h2_client_connection_headers_refused, check_nghttp_h2load]
H1_DOWN_ONLY = [check_upgrade]


def run_combo(combo, certs, tmp):
    checks = CHECKS + (H2_DOWN_ONLY if combo.down == "h2" else H1_DOWN_ONLY)
    names = [f"{combo.name}/{fn.__name__[len('check_'):]}" for fn in checks]
    if not any(A.wanted(n) for n in names):
        return
    try:
        env = Env(combo, A.trafficcop, certs, tmp,
                  h2_config=combo.needs_h2 or not A.flags["--no-h2-config"])
    except Exception as e:  # noqa: BLE001 - every check of the cell fails with the reason
        for n in names:
            R.check(n, lambda: (_ for _ in ()).throw(RuntimeError(f"cell did not start: {e}")))
        return
    try:
        for i, (name, fn) in enumerate(zip(names, checks)):
            R.check(name, fn, env)
            try:
                note = env.ensure_proxy()
            except Exception as e:  # noqa: BLE001 - the rest of the cell cannot run
                for n in names[i + 1:]:
                    R.check(n, lambda: (_ for _ in ()).throw(
                        RuntimeError(f"trafficcop could not be restarted: {e}")))
                return
            if note:
                print(f"         {note}", flush=True)
    finally:
        env.close()


def main():
    import matrix_alpn
    certs = harness.test_certs(A.src)
    tmp = tempfile.mkdtemp(prefix="tc-matrix-")
    combos = [Combo(d, u, t, t) for t in (False, True) for d in ("h1", "h2") for u in ("h1", "h2")]
    if not QUICK:
        combos += [Combo("h2", "h2", True, False), Combo("h2", "h2", False, True)]
    for combo in combos:
        run_combo(combo, certs, tmp)
    matrix_alpn.run(R, A, certs, tmp)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
