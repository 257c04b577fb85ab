# SPDX-License-Identifier: MIT
"""One cell of the HTTP/2 matrix (matrix_test.py): a downstream protocol and TLS setting, an
upstream protocol and TLS setting, the h2_upstream.Upstream and the trafficcop between them,
and clients of the downstream protocol that give one normalised Response."""
import hashlib
import itertools
import os

import h1_client
import h2_client
from h2_upstream import Upstream
from harness import RefusingPort, Trafficcop, run

AUTHORITY = "app.example:8443"  # what clients send as Host / :authority
_ids = itertools.count(1)


def new_id(tag):
    return f"{tag}-{next(_ids)}"


class Combo:
    def __init__(self, down, up, down_tls, up_tls):
        self.down, self.up, self.down_tls, self.up_tls = down, up, down_tls, up_tls

    @property
    def name(self):
        if self.down_tls == self.up_tls:
            return f"{self.down}-{self.up}-{'tls' if self.down_tls else 'plain'}"
        d = "tls" if self.down_tls else "plain"
        u = "tls" if self.up_tls else "plain"
        return f"{self.down}{d}-{self.up}{u}"

    @property
    def needs_h2(self):
        return self.down == "h2" or self.up == "h2"


class Resp:
    """What a client got: status, headers (lower-case names, no pseudo-headers), body,
    trailers (lower-case names), and reset (an RST_STREAM code for HTTP/2, else None)."""

    def __init__(self, status, headers, body, trailers, reset=None, raw=None):
        self.status, self.headers, self.body = status, headers, bytes(body)
        self.trailers, self.reset, self.raw = trailers, reset, raw

    def get(self, name):
        return [v for n, v in self.headers if n == name]

    def trailer(self, name):
        return [v for n, v in self.trailers if n == name]

    def sha256(self):
        return hashlib.sha256(self.body).hexdigest()

    def __repr__(self):
        return (f"<Resp {self.status} reset={self.reset} {self.headers} "
                f"body[{len(self.body)}]={self.body[:200]!r} trailers={self.trailers}>")


def from_h1(r):
    return Resp(r.status, [(n.lower(), v) for n, v in r.headers], r.body,
                [(n.lower(), v) for n, v in r.trailers], raw=r)


def from_h2(st):
    return Resp(st.status, [(n, v) for n, v in st.headers if not n.startswith(":")], st.data,
                st.trailers, st.reset, raw=st)


class Client:
    """A downstream connection of the combo's protocol (H1Conn or H2Client underneath)."""

    def __init__(self, env):
        self.env = env
        ca = env.ca if env.combo.down_tls else None
        if env.combo.down == "h2":
            self.c = h2_client.H2Client(env.port, ca)
        else:
            self.c = h1_client.H1Conn(env.port, ca)

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def headers(self, method, target, headers, authority):
        if self.env.combo.down == "h2":
            scheme = "https" if self.env.combo.down_tls else "http"
            return h2_client.base_headers(method, target, authority, scheme,
                                          [(n.lower(), v) for n, v in headers])
        return [("Host", authority)] + list(headers)

    def start(self, method, target, headers=(), body=None, end=True, trailers=None,
              authority=AUTHORITY, length=None):
        """Sends the head (and `body`); for HTTP/1.1 a body is framed by Content-Length
        (`length`, default len(body)), or chunked when `trailers` is given or length is -1.
        Returns a handle for send_more/finish."""
        hs = self.headers(method, target, headers, authority)
        if self.env.combo.down == "h2":
            return self.c.request(hs, body or b"", end, trailers)
        chunked = trailers is not None or length == -1
        if chunked:
            hs.append(("Transfer-Encoding", "chunked"))
        elif body is not None or length is not None:
            hs.append(("Content-Length", str(length if length is not None else len(body))))
        self.c.send_head(method, target, hs)
        h = {"method": method, "chunked": chunked}
        if body:
            self.send_more(h, body, end and chunked, trailers)
        elif end and chunked:
            self.c.send_last(trailers or ())
        return h

    def send_more(self, h, data, end=False, trailers=None):
        if self.env.combo.down == "h2":
            self.c.send(h, data, end, trailers)
            return
        if h["chunked"]:
            self.c.send_chunk(data)
            if end:
                self.c.send_last(trailers or ())
        else:
            self.c.send(data)

    def finish(self, h, timeout=20.0):
        if self.env.combo.down == "h2":
            return from_h2(self.c.wait(h, timeout=timeout)[0])
        return from_h1(self.c.read_response(h["method"]))

    def exchange(self, method, target, headers=(), body=None, trailers=None,
                 authority=AUTHORITY, timeout=20.0):
        return self.finish(self.start(method, target, headers, body, True, trailers, authority),
                           timeout)

    def wait_upstream(self, pred, what):
        """Waits for the upstream while this client keeps its connection serviced."""
        if self.env.combo.down == "h2":
            box = []
            self.c.pump(lambda: box.append(pred(self.env.up.records())) or box[-1],
                        what)
            return box[-1]
        return self.env.up.wait_records(pred, what)


class Env:
    """The upstream, a refusing port for the 502 route, and trafficcop, for one combo."""

    def __init__(self, combo, trafficcop, certs, tmp, h2_config=True):
        self.combo, self.binary, self.certs, self.tmp = combo, trafficcop, certs, tmp
        self.ca = os.path.join(certs, "ca.pem")
        self.h2_config = h2_config
        tls = None
        if combo.up_tls:
            tls = (os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        self.up = Upstream(tls=tls, protocols=(combo.up,))
        self.dead = RefusingPort()
        self.tc = None
        try:
            self.start_proxy()
        except Exception:
            self.close()
            raise

    def config(self, port):
        c = self.combo
        lines = ["workers: 1", "access_log: {path: 'off'}", "host_header: keep", "listeners:",
                 f"  - address: '127.0.0.1:{port}'"]
        if c.down_tls:
            lines.append(f"    tls: {{certificates: [{{cert_file: '{self.certs}/server.pem', "
                         f"key_file: '{self.certs}/server.key'}}]}}")
        if c.down == "h2" and not c.down_tls and self.h2_config:
            lines.append("    http2: {h2c: true}")
        scheme = "https" if c.up_tls else "http"
        extra = ""
        if self.h2_config:
            extra += f", http2: {'always' if c.up == 'h2' else 'never'}"
        if c.up_tls:
            extra += f", tls: {{ca_file: '{self.ca}'}}"
        url = f"{scheme}://127.0.0.1:{self.up.port}"
        lines += ["upstreams:",
                  f"  - {{name: up, url: '{url}'{extra}}}",
                  f"  - {{name: slow, url: '{url}', response_timeout: 500ms{extra}}}",
                  f"  - {{name: dead, url: 'http://127.0.0.1:{self.dead.port}', "
                  f"connect_timeout: 2s{extra.split(', tls')[0]}}}",
                  "routes:",
                  "  - {path_prefix: /, upstream: up}",
                  "  - {path_prefix: /rewrite, upstream: up, host_header: rewrite}",
                  "  - {path_prefix: /slow, upstream: slow}",
                  "  - {path_prefix: /dead, upstream: dead}"]
        return "\n".join(lines) + "\n"

    def start_proxy(self):
        self.tc = Trafficcop(self.binary, self.config, self.tmp)
        self.port = self.tc.port

    def ensure_proxy(self):
        """After a check: if trafficcop died, say so (the check that killed it failed) and
        start a fresh one for the next check."""
        if self.tc.p.poll() is None:
            return None
        note = f"trafficcop exited ({self.tc.p.returncode}): {self.tc.stderr()[-1500:]}"
        self.tc.stop()
        self.start_proxy()
        return note

    def close(self):
        if self.tc:
            self.tc.stop()
        self.up.stop()
        self.dead.close()

    def client(self):
        return Client(self)

    def url(self, path):
        return f"{'https' if self.combo.down_tls else 'http'}://127.0.0.1:{self.port}{path}"

    def curl(self, path, *args, timeout=60):
        """curl with the combo's downstream protocol; returns the CompletedProcess."""
        c = self.combo
        proto = ["--http1.1"]
        if c.down == "h2":
            proto = ["--http2"] if c.down_tls else ["--http2-prior-knowledge"]
        tls = ["--cacert", self.ca] if c.down_tls else []
        return run(["curl", "-sS", "--max-time", str(timeout - 10), *proto, *tls, *args,
                    self.url(path)], timeout=timeout)
