#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 14 item 7, through the binary on real sockets: the TLS listener's default TLS 1.2
suites (ECDHE + AEAD only, in the server's order) and the `ciphers` override.

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


R.check("default TLS 1.2 suites: ECDHE + AEAD only (RSA certificate)", default_suites_rsa)
R.check("default TLS 1.2 suites: ECDHE + AEAD only (EC certificate)", default_suites_ecdsa)
R.check("the server's suite order wins", server_order)
R.check("listeners[].tls.ciphers overrides the default", ciphers_override)
try:
    code = R.finish()
finally:
    echo.terminate()
    echo.wait(harness.DEADLINE)
sys.exit(code)
