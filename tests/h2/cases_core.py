# SPDX-License-Identifier: MIT
"""Conformance cases for RFC 9113 §3 (preface), §4 (frames, HPACK blocks), §5 (streams, error
handling, extensions) and §7 (error codes). Modelled on h2spec's http2/3.5-5.5 and 7 groups."""
from h2util import *  # noqa: F401,F403 - the case vocabulary

E = "GOAWAY({}) or connection closed"        # a connection error
S = "RST_STREAM({}) (or GOAWAY / close)"      # a stream error


def half_closed_remote(ctx):
    """A connection with stream 1 half-closed (remote) for as long as the case needs: the
    request ended, the response's HEADERS arrived, its DATA is held by a zero window."""
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 0)])
    c.request(1, ctx.t.big_path)
    expect_response(c, 1, complete=False)
    return c


def closed_stream(ctx):
    """A connection whose stream 1 is closed: request and response both complete."""
    c = ctx.conn()
    c.request(1)
    expect_response(c, 1)
    return c


def reset_stream(ctx):
    """A connection whose stream 1 was reset by the client while the server was answering."""
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 0)])
    c.request(1, ctx.t.big_path)
    expect_response(c, 1, complete=False)
    c.send(rst(1, CANCEL))
    return c


# --- §3.4 HTTP/2 connection preface -----------------------------------------------------------

@case("3.4/1", "RFC 9113 §3.4", "client preface: the server's first frame", "SETTINGS")
def _(ctx):
    c = ctx.conn(handshake=False)
    c.send(PREFACE, settings_list([]))
    f = c.read_frame(c.deadline())
    if f is None or f.type != SETTINGS or f.flags & ACK:
        raise Fail(f"first frame was {f or 'none (closed)'}")
    return "SETTINGS"


@case("3.4/2", "RFC 9113 §3.4", "invalid connection preface", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn(handshake=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", settings_list([]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("3.4/3", "RFC 9113 §3.4", "preface and SETTINGS one byte per write", "SETTINGS + ACK")
def _(ctx):
    c = ctx.conn(handshake=False)
    for b in PREFACE + settings_list([(S_ENABLE_PUSH, 0)]):
        c.send(bytes([b]))
    wait_for(c, lambda f: f.type == SETTINGS and f.flags & ACK, "SETTINGS ACK")
    return expect_alive(c)


# --- §4.1 frame format --------------------------------------------------------------------------

@case("4.1/1", "RFC 9113 §4.1", "frame of an unknown type", "ignored")
def _(ctx):
    c = ctx.conn()
    c.send(raw(0x20, 0, 0, b"unknown payload"))
    return expect_alive(c)


@case("4.1/2", "RFC 9113 §4.1", "PING with undefined flags", "PING ACK, flags ignored")
def _(ctx):
    c = ctx.conn()
    c.send(raw(PING, 0xFE, 0, b"h2flags!"))
    wait_for(c, lambda f: f.type == PING and f.flags & ACK and f.payload == b"h2flags!",
             "PING ACK")
    return "PING ACK"


@case("4.1/3", "RFC 9113 §4.1", "HEADERS with the reserved stream-id bit set", "response")
def _(ctx):
    c = ctx.conn()
    c.send(raw(HEADERS, END_STREAM | END_HEADERS, 0x80000001, block(ctx.t.request())))
    return f":status {expect_response(c, 1).status}"


# --- §4.2 frame size ----------------------------------------------------------------------------

@case("4.2/1", "RFC 9113 §4.2", "DATA of 16384 octets (the minimum max size)", "response")
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", [("content-length", "16384")], body=b"x" * 16384)
    return f":status {expect_response(c, 1).status}"


@case("4.2/2", "RFC 9113 §4.2", "DATA beyond SETTINGS_MAX_FRAME_SIZE",
      S.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    n = c.server_settings.get(S_MAX_FRAME_SIZE, 16384) + 1
    c.request(1, "/", "POST", end_stream=False)
    c.send(raw(DATA, END_STREAM, 1, b"x" * n))
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)


@case("4.2/3", "RFC 9113 §4.2", "HEADERS beyond SETTINGS_MAX_FRAME_SIZE",
      E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    n = c.server_settings.get(S_MAX_FRAME_SIZE, 16384)
    blk = block(ctx.t.request(extra=[("x-big", "a" * n)]))
    c.send(raw(HEADERS, END_STREAM | END_HEADERS, 1, blk))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


# --- §4.3 field section compression -------------------------------------------------------------

@case("4.3/1", "RFC 9113 §4.3", "undecodable header block (string past its end)",
      E.format("COMPRESSION_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request()) + b"\x00\x0aabc"
    c.send(headers(1, blk))
    return expect_conn_error(c, COMPRESSION_ERROR)


@case("4.3/2", "RFC 9113 §4.3", "PRIORITY inside a header block", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:10], end_headers=False), priority(1),
           continuation(1, blk[10:]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("4.3/3", "RFC 9113 §4.3", "HEADERS of another stream inside a header block",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:10], end_headers=False), headers(3, blk),
           continuation(1, blk[10:]))
    return expect_conn_error(c, PROTOCOL_ERROR)


# --- §5.1 stream states -------------------------------------------------------------------------

@case("5.1/1", "RFC 9113 §5.1", "idle stream: DATA", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(data(1, b"test", end_stream=True))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1/2", "RFC 9113 §5.1", "idle stream: RST_STREAM", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(rst(1, CANCEL))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1/3", "RFC 9113 §5.1", "idle stream: WINDOW_UPDATE", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(window_update(1, 100))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1/4", "RFC 9113 §5.1", "idle stream: CONTINUATION", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(continuation(1, block(ctx.t.request())))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1/5", "RFC 9113 §5.1", "half-closed (remote): DATA", S.format("STREAM_CLOSED"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(data(1, b"test", end_stream=True))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("5.1/6", "RFC 9113 §5.1", "half-closed (remote): HEADERS", S.format("STREAM_CLOSED"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(headers(1, block([("x-trailer", "1")])))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("5.1/7", "RFC 9113 §5.1", "half-closed (remote): CONTINUATION",
      "STREAM_CLOSED or PROTOCOL_ERROR error")
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(continuation(1, block([("x-trailer", "1")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/8", "RFC 9113 §5.1", "closed by our RST_STREAM: DATA", S.format("STREAM_CLOSED"))
def _(ctx):
    c = reset_stream(ctx)
    c.send(data(1, b"test", end_stream=True))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("5.1/9", "RFC 9113 §5.1", "closed by our RST_STREAM: HEADERS",
      "STREAM_CLOSED or PROTOCOL_ERROR error")
def _(ctx):
    c = reset_stream(ctx)
    c.send(headers(1, block(ctx.t.request())))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/10", "RFC 9113 §5.1", "closed by our RST_STREAM: CONTINUATION",
      "STREAM_CLOSED or PROTOCOL_ERROR error")
def _(ctx):
    c = reset_stream(ctx)
    c.send(continuation(1, block([("x-a", "1")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/11", "RFC 9113 §5.1, §6.1", "closed (both END_STREAM): DATA",
      S.format("STREAM_CLOSED"))
def _(ctx):
    c = closed_stream(ctx)
    c.send(data(1, b"test", end_stream=True))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("5.1/12", "RFC 9113 §5.1, §5.1.1", "closed (both END_STREAM): HEADERS",
      "STREAM_CLOSED or PROTOCOL_ERROR error")
def _(ctx):
    c = closed_stream(ctx)
    c.send(headers(1, block(ctx.t.request())))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/13", "RFC 9113 §5.1, §6.10", "closed (both END_STREAM): CONTINUATION",
      "STREAM_CLOSED or PROTOCOL_ERROR error")
def _(ctx):
    c = closed_stream(ctx)
    c.send(continuation(1, block([("x-a", "1")])))
    return expect_stream_error(c, 1, STREAM_CLOSED, PROTOCOL_ERROR)


# --- §5.1.1 stream identifiers, §5.1.2 concurrency ----------------------------------------------

@case("5.1.1/1", "RFC 9113 §5.1.1", "even-numbered stream identifier",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(headers(2, block(ctx.t.request())))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1.1/2", "RFC 9113 §5.1.1", "stream identifier below a previous one",
      E.format("PROTOCOL_ERROR"),
      known=(r"^(no GOAWAY\(PROTOCOL_ERROR\) and still open|got GOAWAY\(.* NO_ERROR last=5\))",
             "libnghttp2 ignores HEADERS on a lower stream id it no longer remembers "
             "(nghttp2_session.c: 'we are very conservative here'); a GOAWAY(NO_ERROR) "
             "seen instead is the idle timeout closing the connection"))
def _(ctx):
    c = ctx.conn()
    c.request(5)
    expect_response(c, 5)
    c.send(headers(3, block(ctx.t.request())))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("5.1.2/1", "RFC 9113 §5.1.2", "one stream more than SETTINGS_MAX_CONCURRENT_STREAMS",
      "RST_STREAM(REFUSED_STREAM or PROTOCOL_ERROR)")
def _(ctx):
    c = ctx.conn()
    limit = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        return f"skipped: the server advertises {limit} (no useful limit to exceed)"
    frames = [headers(2 * i + 1, block(ctx.t.request("/", "POST")), end_stream=False)
              for i in range(limit + 1)]
    c.send(*frames)
    return expect_stream_error(c, 2 * limit + 1, REFUSED_STREAM, PROTOCOL_ERROR)


# --- §5.3.1 stream dependencies -----------------------------------------------------------------

@case("5.3.1/1", "RFC 9113 §5.3.1", "HEADERS that depends on its own stream",
      S.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, block(ctx.t.request()), prio=(1, 15, False)))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("5.3.1/2", "RFC 9113 §5.3.1", "PRIORITY that depends on its own stream",
      S.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(priority(1, depends_on=1))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


# --- §5.4 error handling ------------------------------------------------------------------------

@case("5.4.1/1", "RFC 9113 §5.4.1", "connection error: GOAWAY, then the TCP connection closed",
      "GOAWAY(FRAME_SIZE_ERROR), close")
def _(ctx):
    c = ctx.conn()
    c.send(raw(PING, 0, 0, b"\0" * 6))
    f = wait_for(c, lambda f: f.type == GOAWAY, "GOAWAY")
    if f.code != FRAME_SIZE_ERROR:
        raise Fail(f"got {f}")
    try:
        c.wait_closed(c.deadline())
    except Timeout:
        raise Fail("GOAWAY sent but the connection stayed open") from None
    return "GOAWAY(FRAME_SIZE_ERROR), closed"


@case("5.4.1/2", "RFC 9113 §5.4.1, §6.8", "GOAWAY names the last stream processed",
      "GOAWAY last-stream-id 3")
def _(ctx):
    c = ctx.conn()
    c.request(1)
    c.request(3)
    expect_response(c, 1)
    expect_response(c, 3)
    c.send(raw(PING, 0, 1, b"\0" * 8))
    f = wait_for(c, lambda f: f.type == GOAWAY, "GOAWAY")
    if f.last_sid != 3:
        raise Fail(f"got {f}, the last stream processed was 3")
    return f"GOAWAY({errname(f.code)}) last=3"


# --- §5.5 extending HTTP/2 ----------------------------------------------------------------------

@case("5.5/1", "RFC 9113 §5.5", "unknown extension frame on an open stream",
      "ignored, request answered")
def _(ctx):
    c = ctx.conn()
    c.request(1, "/", "POST", end_stream=False)
    c.send(raw(0x42, 0xFF, 1, b"extension"), data(1, b"body", end_stream=True))
    return f":status {expect_response(c, 1).status}"


@case("5.5/2", "RFC 9113 §5.5, §6.10", "unknown extension frame inside a header block",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:10], end_headers=False), raw(0x42, 0, 1, b"extension"),
           continuation(1, blk[10:]))
    return expect_conn_error(c, PROTOCOL_ERROR)


# --- §7 error codes -----------------------------------------------------------------------------

@case("7/1", "RFC 9113 §7", "GOAWAY with an unknown error code",
      "no connection error (PING answered or a clean close)")
def _(ctx):
    c = ctx.conn()
    c.send(goaway(0, 0xFF), ping(b"after-ga"))
    try:
        while True:
            f = c.read_frame(c.deadline())
            if f is None:
                return f"closed ({c.eof})"
            if f.type == GOAWAY and f.code != NO_ERROR:
                raise Fail(f"got {f}")
            if f.type == PING and f.flags & ACK:
                return "PING answered"
    except Timeout:
        raise Fail(f"neither PING ACK nor close; saw: {c.history()}") from None


@case("7/2", "RFC 9113 §7", "RST_STREAM with an unknown error code", "no connection error")
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(rst(1, 0xFF))
    return expect_alive(c)
