# SPDX-License-Identifier: MIT
"""Conformance cases for RFC 9113 §8 (HTTP semantics: request exchange, field validity,
connection-specific fields, pseudo-header fields, content-length, CONNECT, push). Modelled on
h2spec's http2/8.x groups, extended with the RFC 9113 field-validity rules of §8.2.1."""
from h2util import *  # noqa: F401,F403 - the case vocabulary
from cases_core import E

MALFORMED = "RST_STREAM(PROTOCOL_ERROR) (malformed; or GOAWAY / close)"


def send_malformed(ctx, fields, trailers=None, body=None):
    """Sends a request made of exactly these fields (in order), then checks the stream error."""
    c = ctx.conn()
    more = trailers is not None or body is not None
    c.send(headers(1, block(fields), end_stream=not more))
    if body is not None:
        c.send(data(1, body, end_stream=trailers is None))
    if trailers is not None:
        c.send(headers(1, block(trailers)))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


def malformed(ident, section, title, make):
    """A case whose request is make(target) -> (fields, trailers, body)."""
    def run(ctx):
        fields, trailers, body = make(ctx.t)
        return send_malformed(ctx, fields, trailers, body)
    case(ident, section, title, MALFORMED)(run)


def with_field(name, value):
    return lambda t: (t.request(extra=[(name, value)]), None, None)


def without(pseudo):
    return lambda t: ([f for f in t.request() if f[0] != pseudo], None, None)


def twice(pseudo):
    def make(t):
        fields = t.request()
        return fields + [f for f in fields if f[0] == pseudo], None, None
    return make


def replace(pseudo, value):
    return lambda t: ([(n, value if n == pseudo else v) for n, v in t.request()], None, None)


# --- §8.1 request/response exchange -------------------------------------------------------------

@case("8.1/1", "RFC 9113 §8.1", "GET /", "200")
def _(ctx):
    c = ctx.conn()
    c.request(1)
    r = expect_response(c, 1)
    if r.status != "200":
        raise Fail(f":status {r.status}")
    return "200"


@case("8.3.2/1", "RFC 9113 §8.1.1, §8.2, §8.3.2", "the response's own fields (GET / and a "
      "large response's head)", ":status alone and first, lowercase names, no "
      "connection-specific fields, content-length = DATA")
def _(ctx):
    c = ctx.conn()
    c.request(1)
    r = expect_response(c, 1)   # checks the fields and the content-length
    c.request(3, ctx.t.big_path, "HEAD")
    r3 = expect_response(c, 3)
    return f":status {r.status} with {len(r.headers)} fields, HEAD {ctx.t.big_path} " \
           f":status {r3.status}; all valid"


@case("8.1/2", "RFC 9113 §8.1, RFC 9110 §9.3.2", "HEAD /", "response without content")
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "HEAD")
    r = expect_response(c, 1)
    if r.body:
        raise Fail(f"{len(r.body)} octets of content in a HEAD response")
    return f":status {r.status}, no content"


@case("8.1/3", "RFC 9113 §8.1", "POST with content-length and DATA in 3 frames", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", [("content-length", "30")], end_stream=False)
    c.send(data(1, b"x" * 10), data(1, b"y" * 10), data(1, b"z" * 10, end_stream=True))
    return f":status {expect_response(c, 1).status}"


@case("8.1/4", "RFC 9113 §8.1", "POST with trailers", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", [("te", "trailers")], end_stream=False)
    c.send(data(1, b"body"), headers(1, block([("x-checksum", "abc")])))
    return f":status {expect_response(c, 1).status}"


@case("8.1/5", "RFC 9113 §8.1", "trailers HEADERS without END_STREAM", MALFORMED)
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", end_stream=False)
    c.send(data(1, b"body"), headers(1, block([("x-trailer", "t")]), end_stream=False))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


malformed("8.1/6", "RFC 9113 §8.1", "pseudo-header field in trailers",
          lambda t: (t.request("/", "POST"), [(":method", "GET")], b"body"))

# --- §8.1.1 content-length ----------------------------------------------------------------------

malformed("8.1.1/1", "RFC 9113 §8.1.1", "content-length above the DATA received",
          lambda t: (t.request("/", "POST", [("content-length", "10")]), None, b"short"))


@case("8.1.1/2", "RFC 9113 §8.1.1", "content-length below the DATA of several frames",
      MALFORMED)
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", [("content-length", "4")], end_stream=False)
    c.send(data(1, b"abc"), data(1, b"def", end_stream=True))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


malformed("8.1.1/3", "RFC 9113 §8.1.1, RFC 9110 §8.6", "content-length that is not a number",
          lambda t: (t.request("/", "POST", [("content-length", "1x")]), None, b"x"))

# --- §8.2 / §8.2.1 field names and values -------------------------------------------------------

malformed("8.2/1", "RFC 9113 §8.2", "uppercase field name", with_field("X-Upper", "1"))
malformed("8.2/2", "RFC 9113 §8.2", "uppercase field name in trailers",
          lambda t: (t.request("/", "POST"), [("X-Trailer", "1")], b"body"))
malformed("8.2.1/1", "RFC 9113 §8.2.1", "field name with a space", with_field("x y", "1"))
malformed("8.2.1/2", "RFC 9113 §8.2.1", "field name with a colon inside",
          with_field("x:y", "1"))
malformed("8.2.1/3", "RFC 9113 §8.2.1", "empty field name", with_field("", "1"))
malformed("8.2.1/4", "RFC 9113 §8.2.1", "field value with CR LF",
          with_field("x-a", "1\r\nx-injected: 2"))
malformed("8.2.1/5", "RFC 9113 §8.2.1", "field value with NUL", with_field("x-a", "a\0b"))
malformed("8.2.1/6", "RFC 9113 §8.2.1", "field value with leading space",
          with_field("x-a", " lead"))
malformed("8.2.1/7", "RFC 9113 §8.2.1", "field value with trailing tab",
          with_field("x-a", "trail\t"))

# --- §8.2.2 connection-specific fields ----------------------------------------------------------

malformed("8.2.2/1", "RFC 9113 §8.2.2", "connection: keep-alive",
          with_field("connection", "keep-alive"))
malformed("8.2.2/2", "RFC 9113 §8.2.2", "keep-alive: timeout=5",
          with_field("keep-alive", "timeout=5"))
malformed("8.2.2/3", "RFC 9113 §8.2.2", "proxy-connection: keep-alive",
          with_field("proxy-connection", "keep-alive"))
malformed("8.2.2/4", "RFC 9113 §8.2.2", "transfer-encoding: chunked",
          with_field("transfer-encoding", "chunked"))
malformed("8.2.2/5", "RFC 9113 §8.2.2", "upgrade: websocket",
          with_field("upgrade", "websocket"))
malformed("8.2.2/6", "RFC 9113 §8.2.2", "te: gzip (anything but trailers)",
          with_field("te", "gzip"))


@case("8.2.2/7", "RFC 9113 §8.2.2", "te: trailers", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, extra=[("te", "trailers")])
    return f":status {expect_response(c, 1).status}"


@case("8.2.3/1", "RFC 9113 §8.2.3", "cookie split over several fields", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, extra=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])
    return f":status {expect_response(c, 1).status}"


# --- §8.3 pseudo-header fields ------------------------------------------------------------------

malformed("8.3/1", "RFC 9113 §8.3", "unknown pseudo-header :foo", with_field(":foo", "bar"))
malformed("8.3/2", "RFC 9113 §8.3", "response pseudo-header :status in a request",
          with_field(":status", "200"))
malformed("8.3/3", "RFC 9113 §8.3", "pseudo-header after a regular field",
          lambda t: (t.request()[:3] + [("x-a", "1")] + t.request()[3:], None, None))
malformed("8.3.1/1", "RFC 9113 §8.3.1", "empty :path", replace(":path", ""))
malformed("8.3.1/2", "RFC 9113 §8.3.1", ":path not starting with /",
          replace(":path", "index.html"))
malformed("8.3.1/3", "RFC 9113 §8.3.1", "no :method", without(":method"))
malformed("8.3.1/4", "RFC 9113 §8.3.1", "no :scheme", without(":scheme"))
malformed("8.3.1/5", "RFC 9113 §8.3.1", "no :path", without(":path"))
malformed("8.3.1/6", "RFC 9113 §8.3", "two :method", twice(":method"))
malformed("8.3.1/7", "RFC 9113 §8.3", "two :scheme", twice(":scheme"))
malformed("8.3.1/8", "RFC 9113 §8.3", "two :path", twice(":path"))
malformed("8.3.1/9", "RFC 9113 §8.3", "two :authority", twice(":authority"))

@case("8.3.1/10", "RFC 9113 §8.3.1", "host field naming another authority than :authority",
      "malformed (SHOULD): RST_STREAM(PROTOCOL_ERROR) or a 400 response (docs/http2.md: 400)")
def _(ctx):
    c = ctx.conn()
    c.request(1, extra=[("host", "other.example:1")])
    try:
        return expect_stream_error(c, 1, PROTOCOL_ERROR)
    except Fail as e:
        r = c.responses[1]
        if r.headers is not None and r.status == "400":
            return ":status 400"
        raise Fail(f"{e}") from None


@case("8.3.1/11", "RFC 9113 §8.3.1", "host field equal to :authority", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, extra=[("host", ctx.t.authority)])
    return f":status {expect_response(c, 1).status}"


# --- §8.5 CONNECT, §8.4 server push -------------------------------------------------------------

malformed("8.5/1", "RFC 9113 §8.5", "CONNECT with :scheme and :path",
          lambda t: ([(":method", "CONNECT"), (":scheme", t.scheme), (":path", "/"),
                      (":authority", "example.com:443")], None, None))
malformed("8.5/2", "RFC 9113 §8.5", "CONNECT without :authority",
          lambda t: ([(":method", "CONNECT")], None, None))


@case("8.4/1", "RFC 9113 §8.4", "PUSH_PROMISE from the client", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", end_stream=False)
    promise = (2).to_bytes(4, "big") + block(ctx.t.request("/pushed"))
    c.send(raw(PUSH_PROMISE, END_HEADERS, 1, promise))
    return expect_conn_error(c, PROTOCOL_ERROR)
