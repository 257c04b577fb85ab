# SPDX-License-Identifier: MIT
"""A raw HTTP/1.1 client for the system tests: exact header lines on the wire, chunked bodies
with trailers, incremental response bodies, plain or TLS. Every socket operation has a timeout.
"""
import hashlib
import socket
import ssl

TIMEOUT = 20.0


class Response:
    def __init__(self):
        self.status, self.reason, self.headers = 0, "", []
        self.body, self.trailers, self.done = bytearray(), [], False
        self._pieces = None

    def get(self, name):
        """Every value of field `name` (case-insensitive)."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def names(self):
        return {n.lower() for n, _ in self.headers}

    def sha256(self):
        return hashlib.sha256(self.body).hexdigest()

    def __repr__(self):
        return (f"<{self.status} {self.reason} headers={self.headers} body[{len(self.body)}]="
                f"{bytes(self.body[:300])!r} trailers={self.trailers}>")


class H1Conn:
    def __init__(self, port, ca=None, server_name="127.0.0.1", timeout=TIMEOUT):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["http/1.1"])
            s = ctx.wrap_socket(s, server_hostname=server_name)
        self.s, self.buf = s, bytearray()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- sending ------------------------------------------------------------------------

    def send(self, data):
        self.s.sendall(data)

    def send_head(self, method, target, headers):
        lines = [f"{method} {target} HTTP/1.1"] + [f"{n}: {v}" for n, v in headers]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_chunk(self, data):
        if data:
            self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def send_last(self, trailers=()):
        self.send(b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n")

    # --- receiving ----------------------------------------------------------------------

    def _fill(self):
        more = self.s.recv(1 << 16)
        if not more:
            raise ConnectionError(f"connection closed (buffered: {bytes(self.buf[:200])!r})")
        self.buf += more

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line.decode("latin-1")
            self._fill()

    def _take(self, n):
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self, method="GET"):
        """The next final (or 101) response head; its body is read with read_body()."""
        while True:
            r = Response()
            status = self._line()
            parts = status.split(" ", 2)
            assert parts[0] == "HTTP/1.1", status
            r.status, r.reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
            while True:
                line = self._line()
                if not line:
                    break
                n, _, v = line.partition(":")
                r.headers.append((n, v.strip(" \t")))
            if r.status == 101 or r.status >= 200:
                break
        r._pieces = self._body(r, method)
        return r

    def _body(self, r, method):
        if method == "HEAD" or r.status in (204, 304) or r.status == 101:
            return
        if any("chunked" in v.lower() for v in r.get("transfer-encoding")):
            while True:
                size = int(self._line().split(";")[0], 16)
                if size == 0:
                    break
                left = size
                while left:
                    piece = self._take(left)
                    left -= len(piece)
                    yield piece
                assert self._line() == "", "bad chunk end"
            while True:
                line = self._line()
                if not line:
                    break
                n, _, v = line.partition(":")
                r.trailers.append((n, v.strip(" \t")))
        elif r.get("content-length"):
            left = int(r.get("content-length")[0])
            while left:
                piece = self._take(min(left, 1 << 16))
                left -= len(piece)
                yield piece
        else:
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    return
                piece = bytes(self.buf)
                self.buf.clear()
                yield piece

    def read_body(self, r, at_least=None):
        """Reads r's body to its end, or until it holds `at_least` bytes."""
        for piece in r._pieces:
            r.body += piece
            if at_least is not None and len(r.body) >= at_least:
                return r
        r.done = True
        return r

    def read_response(self, method="GET"):
        return self.read_body(self.read_head(method))


def request(port, method, target, headers, body=None, ca=None, chunked=False, trailers=None,
            server_name="127.0.0.1"):
    """One exchange on a new connection. `headers` is a list of (name, value) sent as given;
    Content-Length is added for a body unless `chunked` (Transfer-Encoding: chunked is then
    added, with `trailers` after the last chunk)."""
    headers = list(headers)
    with H1Conn(port, ca, server_name) as c:
        if body is not None and not chunked:
            headers.append(("Content-Length", str(len(body))))
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        c.send_head(method, target, headers)
        if chunked:
            c.send_chunk(body or b"")
            c.send_last(trailers or ())
        elif body:
            c.send(body)
        return c.read_response(method)
