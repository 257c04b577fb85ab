#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Shared pieces of the HTTP/2 test suites in tests/h2/.

A raw HTTP/2 client connection (`Conn`) that reads frames with a deadline and keeps just enough
state to follow responses (HPACK decoding, auto WINDOW_UPDATE, SETTINGS ACK); frame builders
(hyperframe for well-formed frames, `raw()` for malformed ones); a stateless HPACK literal
encoder for crafted header blocks; the checks the suites share (connection error, stream error,
still alive); the conformance case registry. Targets and servers: h2servers.py.

Runs with Debian's /usr/bin/python3 (python3-h2, python3-hyperframe, python3-hpack).
"""
import collections
import os
import socket
import ssl
import struct
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame,
                              PingFrame, PriorityFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
TYPE_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
              "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 §7).
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED,
 FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM,
 INADEQUATE_SECURITY, HTTP_1_1_REQUIRED) = range(14)

# SETTINGS identifiers.
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, \
    S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = range(1, 7)
S_ENABLE_CONNECT_PROTOCOL = 0x8
S_NO_RFC7540_PRIORITIES = 0x9

BIG_SIZE = 64 * 1024 * 1024  # the large response: /bytes/N on trafficcop-echo, a file on nghttpd


def errname(code):
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else f"0x{code:x}"


def codes_text(codes):
    return " or ".join(errname(c) for c in codes) or "any code"


class Fail(Exception):
    """A check did not hold; the message says what happened instead."""


class Timeout(Exception):
    """The deadline passed with the connection still open and the awaited event not seen."""


# ---------------------------------------------------------------------------------------------
# Frames out

def raw(ftype, flags, sid, payload=b"", length=None):
    """Any frame, well-formed or not: `length` overrides the length field, `sid` is sent as is
    (reserved bit included)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def _flags(frame, *names):
    for n in names:
        frame.flags.add(n)
    return frame


def settings(values=None, ack=False):
    """SETTINGS frame with {identifier: value}, or an empty ACK."""
    if ack:
        return _flags(SettingsFrame(0), "ACK").serialize()
    return SettingsFrame(0, settings=dict(values or {})).serialize()


def settings_list(pairs):
    """SETTINGS with the pairs in this order (repeats allowed), which hyperframe cannot do."""
    return raw(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"\0" * 8, ack=False):
    f = PingFrame(0, opaque_data=data)
    return (_flags(f, "ACK") if ack else f).serialize()


def data(sid, payload=b"", end_stream=False, pad=None):
    f = DataFrame(sid, data=payload)
    if end_stream:
        f.flags.add("END_STREAM")
    if pad is not None:
        f.flags.add("PADDED")
        f.pad_length = pad
    return f.serialize()


def headers(sid, block, end_stream=True, end_headers=True, pad=None, prio=None):
    """HEADERS; prio = (depends_on, weight, exclusive)."""
    f = HeadersFrame(sid, data=block)
    if end_stream:
        f.flags.add("END_STREAM")
    if end_headers:
        f.flags.add("END_HEADERS")
    if pad is not None:
        f.flags.add("PADDED")
        f.pad_length = pad
    if prio is not None:
        f.flags.add("PRIORITY")
        f.depends_on, f.stream_weight, f.exclusive = prio
    return f.serialize()


def continuation(sid, block, end_headers=True):
    f = ContinuationFrame(sid, data=block)
    return (_flags(f, "END_HEADERS") if end_headers else f).serialize()


def priority(sid, depends_on=0, weight=15, exclusive=False):
    return PriorityFrame(sid, depends_on=depends_on, stream_weight=weight,
                         exclusive=exclusive).serialize()


def rst(sid, code=CANCEL):
    return RstStreamFrame(sid, error_code=code).serialize()


def window_update(sid, increment):
    return WindowUpdateFrame(sid, window_increment=increment).serialize()


def goaway(last_sid=0, code=NO_ERROR):
    return GoAwayFrame(0, last_stream_id=last_sid, error_code=code).serialize()


# ---------------------------------------------------------------------------------------------
# HPACK pieces (RFC 7541) for crafted blocks; none of them touch the dynamic table unless named
# so, which keeps the server's decoder state independent of the case.

def hp_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _b(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


def hp_str(s, huffman_bytes=None):
    """A string literal, raw; or, with huffman_bytes, those bytes as a Huffman string."""
    if huffman_bytes is not None:
        return hp_int(len(huffman_bytes), 7, 0x80) + huffman_bytes
    s = _b(s)
    return hp_int(len(s), 7) + s


def hp_lit(name, value):
    """Literal header field without indexing, new name (§6.2.2)."""
    return b"\x00" + hp_str(name) + hp_str(value)


def hp_lit_indexed(name, value):
    """Literal header field with incremental indexing, new name (§6.2.1): enters the table."""
    return b"\x40" + hp_str(name) + hp_str(value)


def hp_indexed(index):
    return hp_int(index, 7, 0x80)


def hp_size_update(size):
    return hp_int(size, 5, 0x20)


def block(fields):
    return b"".join(hp_lit(n, v) for n, v in fields)


# ---------------------------------------------------------------------------------------------
# Frames in

class Rx:
    __slots__ = ("type", "flags", "sid", "payload")

    def __init__(self, ftype, flags, sid, payload):
        self.type, self.flags, self.sid, self.payload = ftype, flags, sid, payload

    @property
    def code(self):  # RST_STREAM and GOAWAY
        off = 4 if self.type == GOAWAY else 0
        return struct.unpack(">I", self.payload[off:off + 4])[0] if len(self.payload) >= off + 4 \
            else -1

    @property
    def last_sid(self):
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF

    @property
    def increment(self):
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF

    @property
    def settings(self):
        p = self.payload
        return {struct.unpack(">H", p[i:i + 2])[0]: struct.unpack(">I", p[i + 2:i + 6])[0]
                for i in range(0, len(p) - len(p) % 6, 6)}

    def __str__(self):
        name = TYPE_NAMES[self.type] if self.type < len(TYPE_NAMES) else f"type{self.type}"
        extra = ""
        if self.type in (GOAWAY, RST_STREAM):
            extra = f" {errname(self.code)}"
        if self.type == GOAWAY:
            extra += f" last={self.last_sid}"
        return f"{name}(sid={self.sid}, flags=0x{self.flags:x}, len={len(self.payload)}{extra})"


CONNECTION_SPECIFIC = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade"}


def field_problems(fields, trailer):
    """RFC 9113 §8.2, §8.3.2 rules for a response field section the server sent."""
    out = []
    names = [n for n, _ in fields]
    pseudo = [n for n in names if n.startswith(":")]
    if trailer:
        if pseudo:
            out.append(f"pseudo-header fields in trailers: {pseudo}")
    else:
        if pseudo != [":status"] or names[0] != ":status":
            out.append(f"pseudo-header fields {pseudo}, expected :status alone and first")
        status = dict(fields).get(":status", "")
        if not (len(status) == 3 and status.isdigit()):
            out.append(f":status {status!r}")
    for n, v in fields:
        if n != n.lower():
            out.append(f"uppercase field name {n!r}")
        if n in CONNECTION_SPECIFIC or (n == "te" and v != "trailers"):
            out.append(f"connection-specific field {n}: {v}")
        if any(ch in v for ch in "\r\n\0"):
            out.append(f"CR/LF/NUL in the value of {n}")
        elif v != v.strip(" \t"):
            out.append(f"leading or trailing whitespace in the value of {n}")
    return out


class Response:
    def __init__(self):
        self.headers = None   # list of (name, value) of the first HEADERS
        self.trailers = None
        self.body = bytearray()
        self.data_frames = []  # payload length of each DATA frame
        self.ended = False
        self.reset = None     # RST_STREAM code
        self.method = None    # of the request, when sent with Conn.request
        self.problems = []    # RFC 9113 §8 violations in what the server sent

    @property
    def status(self):
        for n, v in self.headers or []:
            if n == ":status":
                return v
        return None


# ---------------------------------------------------------------------------------------------
# A connection

class Target:
    def __init__(self, host, port, tls=False, pid=None, big_path=None, idle=3.0):
        self.host, self.port, self.tls, self.pid = host, port, tls, pid
        self.big_path = big_path or f"/bytes/{BIG_SIZE}"
        self.idle = idle
        self.scheme = "https" if tls else "http"
        self.authority = f"{host}:{port}"

    def request(self, path="/", method="GET", extra=()):
        return [(":method", method), (":scheme", self.scheme), (":path", path),
                (":authority", self.authority)] + list(extra)


class Conn:
    """One client connection. Frames are read only through read_frame(), which tracks responses
    and answers SETTINGS (ACK) and DATA (WINDOW_UPDATE) when auto_ack / auto_window are set."""

    def __init__(self, target, timeout=5.0, rcvbuf=None):
        self.t = target
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((target.host, target.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            self.sock = ctx.wrap_socket(self.sock, server_hostname=target.host)
            if self.sock.selected_alpn_protocol() != "h2":
                raise Fail(f"ALPN chose {self.sock.selected_alpn_protocol()!r}, not h2")
        self.inbuf = bytearray()
        self.eof = None            # why the connection ended, once it has
        self.write_error = None
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.enc = hpack.Encoder()
        self.server_settings = {}
        self.responses = collections.defaultdict(Response)
        self.goaway = None
        self.log = collections.deque(maxlen=12)
        self.auto_ack = True
        self.auto_window = True
        self._hblock = None  # (sid, block so far, is_trailer, end_stream) until END_HEADERS
        self.settings_acked = 0

    # -- output
    def send(self, *chunks):
        """Sends; returns False (and remembers why) when the peer is gone or stopped reading."""
        if self.write_error:
            return False
        try:
            self.sock.settimeout(self.timeout)  # reads leave their remaining time set
            self.sock.sendall(b"".join(chunks))
            return True
        except socket.timeout:
            self.write_error = "write timed out (peer stopped reading)"
        except (OSError, ssl.SSLError) as e:
            self.write_error = f"{type(e).__name__}: {e}"
        return False

    def handshake(self, settings_pairs=(), wait_ack=True):
        """Preface + SETTINGS, then the server's SETTINGS (ACKed) and the ACK of ours."""
        self.send(PREFACE, settings_list(settings_pairs))
        deadline = time.monotonic() + self.timeout
        got_settings = False
        while not got_settings or (wait_ack and not self.settings_acked):
            f = self.read_frame(deadline)
            if f is None:
                raise Fail(f"connection closed during the handshake ({self.eof})")
            if f.type == SETTINGS and not f.flags & ACK:
                got_settings = True
            elif f.type == GOAWAY:
                raise Fail(f"GOAWAY during the handshake: {f}")
        return self

    def request(self, sid, path="/", method="GET", extra=(), end_stream=True, body=None):
        blk = block(self.t.request(path, method, extra))
        self.responses[sid].method = method
        self.send(headers(sid, blk, end_stream=end_stream and body is None))
        if body is not None:
            self.send(data(sid, body, end_stream=end_stream))

    # -- input
    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise Timeout() from None
        except ssl.SSLWantReadError:
            return
        except (OSError, ssl.SSLError) as e:
            self.eof = f"{type(e).__name__}"
            return
        if not chunk:
            self.eof = "EOF"
            return
        self.inbuf += chunk

    def read_frame(self, deadline):
        """The next frame, or None once the connection is closed. Raises Timeout at deadline."""
        while True:
            if len(self.inbuf) >= 9:
                n = int.from_bytes(self.inbuf[:3], "big")
                if len(self.inbuf) >= 9 + n:
                    ftype, flags = self.inbuf[3], self.inbuf[4]
                    sid = int.from_bytes(self.inbuf[5:9], "big") & 0x7FFFFFFF
                    f = Rx(ftype, flags, sid, bytes(self.inbuf[9:9 + n]))
                    del self.inbuf[:9 + n]
                    self._track(f)
                    return f
            if self.eof:
                return None
            self._fill(deadline)

    def _track(self, f):
        self.log.append(str(f))
        if f.type == SETTINGS:
            if f.flags & ACK:
                self.settings_acked += 1
            else:
                self.server_settings.update(f.settings)
                if self.auto_ack:
                    self.send(settings(ack=True))
        elif f.type == GOAWAY:
            self.goaway = f
        elif f.type == RST_STREAM:
            self.responses[f.sid].reset = f.code
        elif f.type in (HEADERS, CONTINUATION):
            self._header_block(f)
        elif f.type == DATA:
            r = self.responses[f.sid]
            body = f.payload
            if f.flags & PADDED and body:
                body = body[1:len(body) - body[0]]
            r.body += body
            r.data_frames.append(len(body))
            if f.flags & END_STREAM:
                r.ended = True
            if self.auto_window and f.payload:
                self.send(window_update(0, len(f.payload)))
                if not r.ended:
                    self.send(window_update(f.sid, len(f.payload)))

    def _header_block(self, f):
        if f.type == HEADERS:
            p = f.payload
            start, end = 0, len(p)
            if f.flags & PADDED:
                start, end = 1, len(p) - p[0]
            if f.flags & PRIORITY_FLAG:
                start += 5
            r = self.responses[f.sid]
            self._hblock = (f.sid, bytearray(p[start:end]), r.headers is not None,
                            bool(f.flags & END_STREAM))
        elif self._hblock is not None:
            self._hblock[1].extend(f.payload)
        if f.flags & END_HEADERS and self._hblock is not None:
            sid, blk, trailer, end = self._hblock
            self._hblock = None
            fields = [(n, v) for n, v in self.dec.decode(bytes(blk))]
            r = self.responses[sid]
            interim = not trailer and dict(fields).get(":status", "").startswith("1")
            r.problems += field_problems(fields, trailer and not interim)
            if trailer:
                r.trailers = fields
            elif interim:
                pass  # an interim 1xx response; the final one follows
            else:
                r.headers = fields
            if end:
                r.ended = True

    def deadline(self, seconds=None):
        return time.monotonic() + (self.timeout if seconds is None else seconds)

    def wait_closed(self, deadline):
        while True:
            if self.read_frame(deadline) is None:
                return

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def history(self):
        return "; ".join(self.log) or "no frames"


def connect(target, settings_pairs=(), timeout=5.0, **kw):
    c = Conn(target, timeout=timeout, **kw)
    return c.handshake(settings_pairs)


# ---------------------------------------------------------------------------------------------
# Checks

def expect_conn_error(c, *codes, seconds=None, ignore_rst=False, need_goaway=False):
    """RFC 9113 §5.4.1: GOAWAY with one of codes (any code if codes is empty), then the TCP
    connection closed. A connection closed without GOAWAY passes too (h2spec accepts it)
    unless need_goaway."""
    deadline = c.deadline(seconds)
    try:
        while True:
            f = c.read_frame(deadline)
            if f is None:
                if need_goaway:
                    raise Fail(f"connection closed ({c.eof}) without GOAWAY")
                return f"connection closed ({c.eof})"
            if f.type == GOAWAY:
                if codes and f.code not in codes:
                    raise Fail(f"got {f}, expected GOAWAY({codes_text(codes)})")
                try:
                    c.wait_closed(c.deadline())
                except Timeout:
                    raise Fail(f"got {f} but the connection stayed open") from None
                return f"GOAWAY({errname(f.code)}), closed"
            if f.type == RST_STREAM and not ignore_rst:
                raise Fail(f"got {f}, expected a connection error {codes_text(codes)}")
    except Timeout:
        raise Fail(f"no GOAWAY({codes_text(codes)}) and still open; saw: {c.history()}") from None


def expect_stream_error(c, sid, *codes, seconds=None):
    """RFC 9113 §5.4.2: RST_STREAM on sid with one of codes; like h2spec, a connection error
    with one of codes (or the connection closed) passes too."""
    deadline = c.deadline(seconds)
    try:
        while True:
            f = c.read_frame(deadline)
            if f is None:
                return f"connection closed ({c.eof})"
            if f.type == RST_STREAM and f.sid == sid:
                if f.code in codes:
                    return f"RST_STREAM({errname(f.code)})"
                raise Fail(f"got {f}, expected RST_STREAM({codes_text(codes)})")
            if f.type == GOAWAY:
                if f.code in codes:
                    return f"GOAWAY({errname(f.code)})"
                raise Fail(f"got {f}, expected RST_STREAM({codes_text(codes)})")
            r = c.responses.get(sid)
            if r is not None and r.ended and r.headers is not None:
                # Answered normally: give a trailing RST_STREAM a moment, then fail.
                deadline = min(deadline, time.monotonic() + 1.0)
    except Timeout:
        r = c.responses.get(sid)
        got = f" (answered :status {r.status})" if r and r.headers else ""
        raise Fail(f"no RST_STREAM({codes_text(codes)}) on stream {sid}{got}; "
                   f"saw: {c.history()}") from None


def expect_alive(c, seconds=None):
    """A PING is answered with its ACK and nothing went wrong before it."""
    token = os.urandom(8)
    c.send(ping(token))
    deadline = c.deadline(seconds)
    try:
        while True:
            f = c.read_frame(deadline)
            if f is None:
                raise Fail(f"connection closed ({c.eof}); saw: {c.history()}")
            if f.type == GOAWAY:
                raise Fail(f"got {f}")
            if f.type == RST_STREAM:
                raise Fail(f"got {f}")
            if f.type == PING and f.flags & ACK and f.payload == token:
                return "PING answered"
    except Timeout:
        raise Fail(f"PING not answered; saw: {c.history()}") from None


def expect_response(c, sid, seconds=None, complete=True):
    """The response on sid (its HEADERS, or, with complete, up to END_STREAM)."""
    deadline = c.deadline(seconds)
    r = c.responses[sid]
    try:
        while not (r.ended if complete else r.headers is not None):
            f = c.read_frame(deadline)
            if f is None:
                raise Fail(f"connection closed ({c.eof}); saw: {c.history()}")
            if f.type == GOAWAY and f.code != NO_ERROR:
                raise Fail(f"got {f}")
            if f.type == RST_STREAM and f.sid == sid:
                raise Fail(f"got {f}")
    except Timeout:
        raise Fail(f"no complete response on stream {sid}; saw: {c.history()}") from None
    if r.headers is None:
        raise Fail(f"stream {sid} ended without response HEADERS")
    problems = list(r.problems)
    length = dict(r.headers).get("content-length")
    if complete and length is not None and r.method != "HEAD" and \
            r.status not in ("204", "304") and length != str(len(r.body)):
        problems.append(f"content-length {length} but {len(r.body)} octets of DATA "
                        f"(RFC 9113 §8.1.1)")
    if problems:
        raise Fail(f"response on stream {sid}: " + "; ".join(problems))
    return r


def wait_for(c, pred, what, seconds=None):
    """Reads until pred(frame) holds; fails on close or GOAWAY."""
    deadline = c.deadline(seconds)
    try:
        while True:
            f = c.read_frame(deadline)
            if f is None:
                raise Fail(f"connection closed ({c.eof}) before {what}; saw: {c.history()}")
            if pred(f):
                return f
            if f.type == GOAWAY:
                raise Fail(f"got {f} before {what}")
    except Timeout:
        raise Fail(f"no {what}; saw: {c.history()}") from None


# ---------------------------------------------------------------------------------------------
# Conformance cases: registry and per-case context

Case = collections.namedtuple("Case", "ident section title expect fn known")
CASES = []


def case(ident, section, title, expect, known=None):
    """Registers a conformance case; fn(ctx) returns what happened, raises Fail if wrong.
    known = (regex, why): a failure whose message matches regex is a known deviation of
    libnghttp2 (which both nghttpd and trafficcop use), reported as KNOWN, not as a failure
    unless --strict."""
    def deco(fn):
        CASES.append(Case(ident, section, title, expect, fn, known))
        return fn
    return deco


class Ctx:
    """What a case gets: the target, the wait bound, and connections closed after the case."""

    def __init__(self, target, timeout):
        self.t = target
        self.timeout = timeout
        self.conns = []

    def conn(self, settings_pairs=(), handshake=True, **kw):
        c = Conn(self.t, timeout=self.timeout, **kw)
        self.conns.append(c)
        return c.handshake(settings_pairs) if handshake else c

    def close(self):
        for c in self.conns:
            c.close()
        self.conns.clear()
