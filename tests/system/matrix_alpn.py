# SPDX-License-Identifier: MIT
"""Protocol selection checks of the HTTP/2 matrix (docs/http2.md, Configuration): the
upstream `http2: auto|always|never` choices against upstreams offering one or both protocols,
and the TLS listener's ALPN with `http2.enabled` on and off, and h2c off by default."""
import os

from h2_upstream import Upstream
from harness import Trafficcop
from harness import run as run_client


def _proxy(binary, tmp, up_url, up_extra="", listener_extra=""):
    return Trafficcop(binary, lambda port: (
        "workers: 1\naccess_log: {path: 'off'}\nlisteners:\n"
        f"  - {{address: '127.0.0.1:{port}'{listener_extra}}}\n"
        f"upstreams:\n  - {{name: up, url: '{up_url}'{up_extra}}}\n"
        "routes:\n  - {upstream: up}\n"), tmp)


def _curl(*args):
    return run_client(["curl", "-sS", "--max-time", "20", *args], timeout=30)


def _upstream_choice(binary, certs, tmp, scheme, offered, mode, want):
    """An upstream offering `offered`, trafficcop with `http2: mode`: the request arrives over
    `want` (HTTP/1.1 or HTTP/2), or, when want is an int, the client gets that status."""
    tls = None
    if scheme == "https":
        tls = (os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
    up = Upstream(tls=tls, protocols=offered)
    try:
        extra = f", http2: {mode}"
        if tls:
            extra += f", tls: {{ca_file: '{certs}/ca.pem'}}"
        with _proxy(binary, tmp, f"{scheme}://127.0.0.1:{up.port}", extra) as tc:
            r = _curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Test-Id: sel",
                      f"http://127.0.0.1:{tc.port}/sel")
            if isinstance(want, int):
                assert r.stdout.decode() == str(want), (r.stdout, r.stderr)
                return
            assert r.returncode == 0 and r.stdout == b"200", (r.stdout, r.stderr,
                                                              tc.stderr()[-1000:])
            recs = up.find("sel")
            assert len(recs) == 1 and recs[0]["proto"] == want, (recs, up.refused)
    finally:
        up.stop()


def _listener_alpn(binary, certs, tmp, http2_yaml, want):
    up = Upstream(protocols=("h1",))
    tls = (f", tls: {{certificates: [{{cert_file: '{certs}/server.pem', "
           f"key_file: '{certs}/server.key'}}]}}")
    try:
        with _proxy(binary, tmp, f"http://127.0.0.1:{up.port}", ", http2: never",
                    tls + http2_yaml) as tc:
            r = _curl("-v", "--http2", "--cacert", f"{certs}/ca.pem", "-o", "/dev/null", "-w",
                      "%{http_code} %{http_version}", f"https://127.0.0.1:{tc.port}/alpn")
            err = r.stderr.decode()
            assert f"ALPN: server accepted {want}" in err, err
            v = "2" if want == "h2" else "1.1"
            assert r.returncode == 0 and r.stdout.decode() == f"200 {v}", (r.stdout, err)
    finally:
        up.stop()


def _no_h2c_by_default(binary, tmp):
    up = Upstream(protocols=("h1",))
    try:
        with _proxy(binary, tmp, f"http://127.0.0.1:{up.port}", ", http2: never") as tc:
            r = _curl("--http2-prior-knowledge", "-o", "/dev/null", "-w",
                      "%{http_code} %{http_version}", f"http://127.0.0.1:{tc.port}/h2c")
            assert not (r.returncode == 0 and r.stdout == b"200 2"), \
                "a plain listener without h2c: true served HTTP/2"
            r = _curl("--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                      f"http://127.0.0.1:{tc.port}/h1")
            assert r.stdout == b"200", (r.stdout, r.stderr)
    finally:
        up.stop()


def run(runner, args, certs, tmp):
    b = args.trafficcop
    cases = [
        ("upstream_auto_https_picks_h2", _upstream_choice, b, certs, tmp, "https",
         ("h1", "h2"), "auto", "HTTP/2"),
        ("upstream_never_https_is_h1", _upstream_choice, b, certs, tmp, "https",
         ("h1", "h2"), "never", "HTTP/1.1"),
        ("upstream_auto_http_is_h1", _upstream_choice, b, certs, tmp, "http",
         ("h1", "h2"), "auto", "HTTP/1.1"),
        ("upstream_always_http_is_h2c", _upstream_choice, b, certs, tmp, "http",
         ("h1", "h2"), "always", "HTTP/2"),
        ("upstream_always_h1_only_502", _upstream_choice, b, certs, tmp, "https",
         ("h1",), "always", 502),
        ("listener_tls_offers_h2", _listener_alpn, b, certs, tmp, "", "h2"),
        ("listener_tls_h2_disabled", _listener_alpn, b, certs, tmp,
         ", http2: {enabled: false}", "http/1.1"),
        ("listener_plain_no_h2c_by_default", _no_h2c_by_default, b, tmp),
    ]
    for name, fn, *a in cases:
        runner.check(f"alpn/{name}", fn, *a)
