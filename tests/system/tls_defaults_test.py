#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 14 item 7, through the binary on real sockets: the TLS listener's default TLS 1.2
suites (ECDHE + AEAD only, in the server's order), the `ciphers` override, and
Strict-Transport-Security on the TLS listeners that ask for it, over HTTP/1.1 and HTTP/2.

The cipher checks use `openssl s_client` and read the suite it reports ("Cipher is ..."); they
run against an RSA certificate, since static-RSA key exchange and ECDHE-RSA exist only there,
and against the EC one for the ECDSA suites.

usage: tls_defaults_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h1_client import H1Conn, request  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-tls-defaults-")
CERTS = harness.test_certs(A.src)
CA = os.path.join(CERTS, "ca.pem")
# trafficcop-echo is the upstream: it answers with what it received.
ECHO_PORT = harness.free_port()
echo = harness.subprocess.Popen([os.path.join(A.bin, "trafficcop-echo"), "--listen",
                                 f"127.0.0.1:{ECHO_PORT}"], stdout=harness.subprocess.DEVNULL,
                                stderr=harness.subprocess.DEVNULL)
harness.wait_listening(ECHO_PORT, echo)


def cert(name):
    return f"{{cert_file: '{CERTS}/{name}.pem', key_file: '{CERTS}/{name}.key'}}"


def proxy(listeners, routes="[{upstream: e}]"):
    """trafficcop in front of the echo; `listeners(port)` gives the listeners list (flow YAML)."""
    return harness.Trafficcop(A.trafficcop, lambda port: "\n".join([
        "workers: 1", "access_log: {path: 'off'}", f"listeners: {listeners(port)}",
        f"upstreams: [{{name: e, url: 'http://127.0.0.1:{ECHO_PORT}'}}]",
        f"routes: {routes}"]) + "\n", TMP)


def tls_proxy(certificate="rsa", extra=""):
    return proxy(lambda port: f"[{{address: '127.0.0.1:{port}', "
                              f"tls: {{certificates: [{cert(certificate)}]{extra}}}}}]")


def handshake(port, *args):
    """`openssl s_client` with `args`: the suite negotiated, or None if the handshake failed."""
    r = harness.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                     *args], stdin=harness.subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"Cipher is (\S+)", out)
    cipher = m.group(1) if m else None
    if r.returncode != 0 or cipher in (None, "(NONE)"):
        return None
    return cipher


def tls12(port, ciphers):
    return handshake(port, "-tls1_2", "-cipher", ciphers)


def expect_refused(port, ciphers, why):
    got = tls12(port, ciphers)
    assert got is None, f"TLS 1.2 with only {ciphers} ({why}) was accepted: {got}"


def expect_chosen(port, ciphers, want):
    got = tls12(port, ciphers)
    assert got == want, f"TLS 1.2 offering {ciphers}: got {got}, want {want}"


# --- the default TLS 1.2 suites -------------------------------------------------------------


def default_suites_rsa():
    with tls_proxy("rsa") as t:
        p = t.port
        expect_refused(p, "AES128-SHA", "static RSA key exchange, CBC")
        expect_refused(p, "AES128-GCM-SHA256", "static RSA key exchange: no forward secrecy")
        expect_refused(p, "ECDHE-RSA-AES128-SHA", "CBC: LUCKY13")
        expect_refused(p, "ECDHE-RSA-AES256-SHA384", "CBC")
        expect_refused(p, "DHE-RSA-AES128-GCM-SHA256", "DHE without configured dhparams")
        for suite in ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-RSA-CHACHA20-POLY1305"]:
            expect_chosen(p, suite, suite)
        # A client offering CBC first and an AEAD suite after it gets the AEAD one.
        expect_chosen(p, "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-RSA-AES256-GCM-SHA384")
        # TLS 1.3 is untouched: OpenSSL's suites.
        got = handshake(p, "-tls1_3")
        assert got and got.startswith("TLS_"), got


def default_suites_ecdsa():
    with tls_proxy("server") as t:
        expect_refused(t.port, "ECDHE-ECDSA-AES128-SHA", "CBC")
        expect_refused(t.port, "ECDHE-ECDSA-AES256-SHA384", "CBC")
        expect_chosen(t.port, "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256")
        expect_chosen(t.port, "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305")


def server_order():
    with tls_proxy("rsa") as t:
        # The client prefers AES-256; the server's list has AES-128 first, and its order wins.
        expect_chosen(t.port, "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
                      "ECDHE-RSA-AES128-GCM-SHA256")
        # Except for ChaCha20 put first by the client (SSL_OP_PRIORITIZE_CHACHA): a client
        # without AES instructions says so that way.
        expect_chosen(t.port, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256",
                      "ECDHE-RSA-CHACHA20-POLY1305")


def ciphers_override():
    # The operator's list replaces the default (even to allow a CBC suite), in its own order.
    with tls_proxy("rsa", ", ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA'") as t:
        expect_refused(t.port, "ECDHE-RSA-AES128-GCM-SHA256", "not in the configured list")
        expect_chosen(t.port, "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
        expect_chosen(t.port, "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-RSA-AES256-GCM-SHA384")
        rc = harness.run(["curl", "-s", "--cacert", CA, f"https://127.0.0.1:{t.port}/o"])
        assert rc.returncode == 0 and b"GET /o HTTP/1.1" in rc.stdout, rc


# --- Strict-Transport-Security --------------------------------------------------------------

STS = "strict-transport-security"


def sts_h1(port, path, ca=CA):
    r = request(port, "GET", path, [("Host", "127.0.0.1")], ca=ca)
    assert r.status == 200 and f"GET {path} HTTP/1.1".encode() in r.body, r
    return r.get(STS)


def sts_h2(port, path, ca=CA):
    with H2Client(port, ca=ca) as c:
        st = c.exchange(base_headers("GET", path, "127.0.0.1", "https" if ca else "http"))
    assert st.status == 200 and f"GET {path} HTTP/1.1".encode() in st.data, st
    return st.get(STS)


# Requests under /own get a Strict-Transport-Security of the route's own (as an upstream's).
OWN = ("[{path_prefix: /own, upstream: e, response_headers: "
       "{set: {Strict-Transport-Security: max-age=0}}}, {upstream: e}]")


def hsts_on_every_response():
    full = "max-age=31536000; includeSubDomains; preload"
    with proxy(lambda port: f"[{{address: '127.0.0.1:{port}', tls: {{certificates: "
                            f"[{cert('server')}], hsts: {{max_age: 365d, "
                            "include_subdomains: true, preload: true}}}]", OWN) as t:
        assert sts_h1(t.port, "/a") == [full], sts_h1(t.port, "/a")
        assert sts_h2(t.port, "/b") == [full], sts_h2(t.port, "/b")
        # The server's own answer to a request it refuses carries it too.
        with H1Conn(t.port, CA) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")
            r = c.read_response()
        assert r.status == 400 and r.get(STS) == [full], r
        # A response that has its own is sent with that one alone.
        assert sts_h1(t.port, "/own") == ["max-age=0"], sts_h1(t.port, "/own")
        assert sts_h2(t.port, "/own") == ["max-age=0"], sts_h2(t.port, "/own")
    with tls_proxy("server", ", hsts: {max_age: 1h}") as t:
        assert sts_h1(t.port, "/c") == ["max-age=3600"], sts_h1(t.port, "/c")
        assert sts_h2(t.port, "/d") == ["max-age=3600"], sts_h2(t.port, "/d")


def no_hsts_unless_configured():
    with tls_proxy("server") as t:
        assert sts_h1(t.port, "/a") == [], sts_h1(t.port, "/a")
        assert sts_h2(t.port, "/b") == [], sts_h2(t.port, "/b")
    # A plain listener beside a TLS one with hsts: never over plain HTTP (RFC 6797 §7.2).
    tls_port = harness.free_port()
    with proxy(lambda port: f"[{{address: '127.0.0.1:{port}', http2: {{h2c: true}}}}, "
                            f"{{address: '127.0.0.1:{tls_port}', tls: {{certificates: "
                            f"[{cert('server')}], hsts: {{}}}}}}]") as t:
        harness.wait_listening(tls_port)
        assert sts_h1(tls_port, "/t") == ["max-age=31536000"], sts_h1(tls_port, "/t")
        assert sts_h1(t.port, "/p", ca=None) == [], sts_h1(t.port, "/p", ca=None)
        assert sts_h2(t.port, "/q", ca=None) == [], sts_h2(t.port, "/q", ca=None)


R.check("default TLS 1.2 suites: ECDHE + AEAD only (RSA certificate)", default_suites_rsa)
R.check("default TLS 1.2 suites: ECDHE + AEAD only (EC certificate)", default_suites_ecdsa)
R.check("the server's suite order wins", server_order)
R.check("listeners[].tls.ciphers overrides the default", ciphers_override)
R.check("hsts: Strict-Transport-Security on every response, HTTP/1.1 and HTTP/2",
        hsts_on_every_response)
R.check("no Strict-Transport-Security without hsts, nor on plain listeners",
        no_hsts_unless_configured)
try:
    code = R.finish()
finally:
    echo.terminate()
    echo.wait(harness.DEADLINE)
sys.exit(code)
