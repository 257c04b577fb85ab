# SPDX-License-Identifier: MIT
"""Conformance cases for RFC 9113 §6 (frame definitions) and §6.9 (flow control). Modelled on
h2spec's http2/6.x groups."""
import struct

from h2util import *  # noqa: F401,F403 - the case vocabulary
from cases_core import E, S, half_closed_remote, closed_stream

MAX_WINDOW = 2**31 - 1


def open_post(ctx, settings_pairs=()):
    c = ctx.conn(settings_pairs)
    c.request(1, "/", "POST", end_stream=False)
    return c


# --- §6.1 DATA ----------------------------------------------------------------------------------

@case("6.1/1", "RFC 9113 §6.1", "DATA on stream 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = open_post(ctx)
    c.send(raw(DATA, END_STREAM, 0, b"test"))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.1/2", "RFC 9113 §6.1", "DATA after the request's trailers (END_STREAM)",
      S.format("STREAM_CLOSED"))
def _(ctx):
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 0)])
    c.request(1, ctx.t.big_path, "POST", end_stream=False)
    c.send(data(1, b"body"), headers(1, block([("x-trailer", "t")])), data(1, b"late"))
    return expect_stream_error(c, 1, STREAM_CLOSED)


@case("6.1/3", "RFC 9113 §6.1", "DATA whose pad length covers the payload",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = open_post(ctx)
    c.send(raw(DATA, PADDED | END_STREAM, 1, bytes([6]) + b"hello"))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.1/4", "RFC 9113 §6.1", "padded DATA (valid)", "response")
def _(ctx):
    c = open_post(ctx)
    c.send(data(1, b"padded body", end_stream=True, pad=32))
    return f":status {expect_response(c, 1).status}"


# --- §6.2 HEADERS -------------------------------------------------------------------------------

@case("6.2/1", "RFC 9113 §6.2", "HEADERS without END_HEADERS, then DATA",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request("/", "POST"))
    c.send(headers(1, blk, end_stream=False, end_headers=False), data(1, b"x", end_stream=True))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.2/2", "RFC 9113 §6.2", "HEADERS on stream 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(HEADERS, END_STREAM | END_HEADERS, 0, block(ctx.t.request())))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.2/3", "RFC 9113 §6.2", "HEADERS whose pad length covers the payload",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(raw(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, bytes([len(blk) + 1]) + blk))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.2/4", "RFC 9113 §6.2", "HEADERS with padding and priority fields (valid)", "response")
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, block(ctx.t.request()), pad=17, prio=(0, 200, True)))
    return f":status {expect_response(c, 1).status}"


# --- §6.3 PRIORITY ------------------------------------------------------------------------------

@case("6.3/1", "RFC 9113 §6.3", "PRIORITY on stream 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(PRIORITY, 0, 0, struct.pack(">IB", 1, 15)))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.3/2", "RFC 9113 §6.3", "PRIORITY of length 4", S.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(raw(PRIORITY, 0, 1, struct.pack(">I", 0)))
    return expect_stream_error(c, 1, FRAME_SIZE_ERROR)


@case("6.3/3", "RFC 9113 §6.3", "PRIORITY on an idle stream, then HEADERS on it", "response")
def _(ctx):
    c = ctx.conn()
    c.send(priority(3, depends_on=0, weight=100), priority(1, depends_on=3))
    c.request(3)
    return f":status {expect_response(c, 3).status}"


@case("6.3/4", "RFC 9113 §5.1, §6.3", "PRIORITY on a closed stream", "ignored")
def _(ctx):
    c = closed_stream(ctx)
    c.send(priority(1, depends_on=0, weight=1))
    return expect_alive(c)


# --- §6.4 RST_STREAM ----------------------------------------------------------------------------

@case("6.4/1", "RFC 9113 §6.4", "RST_STREAM on stream 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(RST_STREAM, 0, 0, struct.pack(">I", CANCEL)))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.4/2", "RFC 9113 §6.4", "RST_STREAM on an idle stream above an open one",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.request(1)
    expect_response(c, 1)
    c.send(rst(5, CANCEL))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.4/3", "RFC 9113 §6.4", "RST_STREAM of length 3", E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(raw(RST_STREAM, 0, 1, b"\0\0\0"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


# --- §6.5 SETTINGS ------------------------------------------------------------------------------

@case("6.5/1", "RFC 9113 §6.5", "SETTINGS ACK with a payload", E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(SETTINGS, ACK, 0, struct.pack(">HI", S_ENABLE_PUSH, 0)))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


@case("6.5/2", "RFC 9113 §6.5", "SETTINGS on stream 1", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(SETTINGS, 0, 1, struct.pack(">HI", S_ENABLE_PUSH, 0)))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.5/3", "RFC 9113 §6.5", "SETTINGS of length 3", E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(SETTINGS, 0, 0, b"\0\2\0"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


def bad_setting(ident, value, code):
    def run(ctx):
        c = ctx.conn()
        c.send(settings_list([(ident, value)]))
        return expect_conn_error(c, code)
    return run


case("6.5.2/1", "RFC 9113 §6.5.2", "SETTINGS_ENABLE_PUSH = 2",
     E.format("PROTOCOL_ERROR"))(bad_setting(S_ENABLE_PUSH, 2, PROTOCOL_ERROR))
case("6.5.2/2", "RFC 9113 §6.5.2", "SETTINGS_INITIAL_WINDOW_SIZE = 2^31",
     E.format("FLOW_CONTROL_ERROR"))(bad_setting(S_INITIAL_WINDOW_SIZE, 2**31,
                                                 FLOW_CONTROL_ERROR))
case("6.5.2/3", "RFC 9113 §6.5.2", "SETTINGS_MAX_FRAME_SIZE = 16383",
     E.format("PROTOCOL_ERROR"))(bad_setting(S_MAX_FRAME_SIZE, 16383, PROTOCOL_ERROR))
case("6.5.2/4", "RFC 9113 §6.5.2", "SETTINGS_MAX_FRAME_SIZE = 2^24",
     E.format("PROTOCOL_ERROR"))(bad_setting(S_MAX_FRAME_SIZE, 2**24, PROTOCOL_ERROR))
case("6.5.2/5", "RFC 8441 §3", "SETTINGS_ENABLE_CONNECT_PROTOCOL = 2",
     E.format("PROTOCOL_ERROR"))(bad_setting(S_ENABLE_CONNECT_PROTOCOL, 2, PROTOCOL_ERROR))
case("6.5.2/6", "RFC 9218 §2.1", "SETTINGS_NO_RFC7540_PRIORITIES = 2",
     E.format("PROTOCOL_ERROR"))(bad_setting(S_NO_RFC7540_PRIORITIES, 2, PROTOCOL_ERROR))


@case("6.5.2/7", "RFC 9113 §6.5.2", "unknown SETTINGS identifier", "ignored, SETTINGS ACK")
def _(ctx):
    c = ctx.conn()
    c.send(settings_list([(0xFF, 1), (0x4242, 7)]))
    wait_for(c, lambda f: f.type == SETTINGS and f.flags & ACK, "SETTINGS ACK")
    return expect_alive(c)


@case("6.5.3/1", "RFC 9113 §6.5.3", "the same setting twice: the last value counts",
      "first DATA frame of 1 octet")
def _(ctx):
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 100), (S_INITIAL_WINDOW_SIZE, 1)])
    c.auto_window = False
    c.request(1, ctx.t.big_path)
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} octets with a window of 1")
    return "DATA of 1 octet"


@case("6.5.3/2", "RFC 9113 §6.5.3", "SETTINGS mid-connection", "SETTINGS ACK")
def _(ctx):
    c = ctx.conn()
    c.send(settings({S_MAX_HEADER_LIST_SIZE: 65536}))
    wait_for(c, lambda f: f.type == SETTINGS and f.flags & ACK, "SETTINGS ACK")
    return "SETTINGS ACK"


# --- §6.7 PING ----------------------------------------------------------------------------------

@case("6.7/1", "RFC 9113 §6.7", "PING", "PING ACK with the same data")
def _(ctx):
    c = ctx.conn()
    c.send(ping(b"h2specxx"))
    f = wait_for(c, lambda f: f.type == PING and f.flags & ACK, "PING ACK")
    if f.payload != b"h2specxx":
        raise Fail(f"PING ACK carries {f.payload!r}")
    return "PING ACK"


@case("6.7/2", "RFC 9113 §6.7", "PING with ACK set", "not answered")
def _(ctx):
    c = ctx.conn()
    c.send(ping(b"unsolici", ack=True), ping(b"solicitd"))
    f = wait_for(c, lambda f: f.type == PING and f.flags & ACK, "PING ACK")
    if f.payload != b"solicitd":
        raise Fail(f"answered the ACK: {f.payload!r}")
    return "only the real PING answered"


@case("6.7/3", "RFC 9113 §6.7", "PING on stream 1", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(PING, 0, 1, b"\0" * 8))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.7/4", "RFC 9113 §6.7", "PING of length 6", E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(PING, 0, 0, b"\0" * 6))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


# --- §6.8 GOAWAY --------------------------------------------------------------------------------

@case("6.8/1", "RFC 9113 §6.8", "GOAWAY on stream 1", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(GOAWAY, 0, 1, struct.pack(">II", 0, NO_ERROR)))
    return expect_conn_error(c, PROTOCOL_ERROR)


# --- §6.9 WINDOW_UPDATE, flow control -----------------------------------------------------------

@case("6.9/1", "RFC 9113 §6.9", "connection WINDOW_UPDATE of 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.9/2", "RFC 9113 §6.9", "stream WINDOW_UPDATE of 0", S.format("PROTOCOL_ERROR"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(raw(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
    return expect_stream_error(c, 1, PROTOCOL_ERROR)


@case("6.9/3", "RFC 9113 §6.9", "WINDOW_UPDATE of length 3", E.format("FRAME_SIZE_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(raw(WINDOW_UPDATE, 0, 0, b"\0\0\1"))
    return expect_conn_error(c, FRAME_SIZE_ERROR)


@case("6.9/4", "RFC 9113 §5.1, §6.9", "WINDOW_UPDATE on a half-closed (remote) stream",
      "allowed: DATA follows")
def _(ctx):
    c = half_closed_remote(ctx)
    c.auto_window = False
    c.send(window_update(1, 10))
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if not 0 < len(f.payload) <= 10:
        raise Fail(f"DATA of {len(f.payload)} octets for a window of 10")
    return f"DATA of {len(f.payload)} octets"


@case("6.9.1/1", "RFC 9113 §6.9.1", "SETTINGS_INITIAL_WINDOW_SIZE = 1",
      "DATA frames of 1 octet")
def _(ctx):
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 1)])
    c.auto_window = False
    c.request(1, ctx.t.big_path)
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} octets with a window of 1")
    return "DATA of 1 octet"


@case("6.9.1/2", "RFC 9113 §6.9.1", "connection window beyond 2^31-1",
      E.format("FLOW_CONTROL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(window_update(0, MAX_WINDOW), window_update(0, MAX_WINDOW))
    return expect_conn_error(c, FLOW_CONTROL_ERROR)


@case("6.9.1/3", "RFC 9113 §6.9.1", "stream window beyond 2^31-1",
      S.format("FLOW_CONTROL_ERROR"))
def _(ctx):
    c = half_closed_remote(ctx)
    c.send(window_update(1, MAX_WINDOW), window_update(1, MAX_WINDOW))
    return expect_stream_error(c, 1, FLOW_CONTROL_ERROR)


@case("6.9.2/1", "RFC 9113 §6.9.2", "SETTINGS_INITIAL_WINDOW_SIZE raised after HEADERS",
      "DATA of the new window")
def _(ctx):
    c = half_closed_remote(ctx)
    c.auto_window = False
    c.send(settings({S_INITIAL_WINDOW_SIZE: 1}))
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} octets with a window of 1")
    return "DATA of 1 octet"


@case("6.9.2/2", "RFC 9113 §6.9.2", "a SETTINGS change makes the stream window negative",
      "DATA only once the window is positive again")
def _(ctx):
    c = ctx.conn([(S_INITIAL_WINDOW_SIZE, 3)])
    c.auto_window = False
    c.request(1, ctx.t.big_path)
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if len(f.payload) != 3:
        raise Fail(f"first DATA of {len(f.payload)} octets with a window of 3")
    c.send(settings({S_INITIAL_WINDOW_SIZE: 2}))   # window 0 - 1 = -1
    wait_for(c, lambda f: f.type == SETTINGS and f.flags & ACK, "SETTINGS ACK")
    c.send(window_update(1, 2))                     # -1 + 2 = 1
    f = wait_for(c, lambda f: f.type == DATA and f.sid == 1, "DATA")
    if len(f.payload) != 1:
        raise Fail(f"DATA of {len(f.payload)} octets with a window of 1")
    return "DATA of 1 octet"


@case("6.9.2/3", "RFC 9113 §6.9.2", "SETTINGS change pushes a stream window past 2^31-1",
      E.format("FLOW_CONTROL_ERROR"),
      known=(r"^got RST_STREAM\(sid=1, .*FLOW_CONTROL_ERROR\)",
             "libnghttp2 resets the overflowing stream instead of the connection"))
def _(ctx):
    c = half_closed_remote(ctx)                     # stream 1 window: 0
    c.auto_window = False
    # Stream 3 takes the whole connection window, so stream 1 cannot spend any of its own
    # before the SETTINGS change lands.
    c.request(3, ctx.t.big_path)
    c.send(window_update(3, 65535))
    wait_for(c, lambda f: len(c.responses[3].body) >= 65535, "65535 octets on stream 3")
    c.send(window_update(1, MAX_WINDOW),            # stream 1: 2^31-1
           settings({S_INITIAL_WINDOW_SIZE: 1}))    # +1 past the limit
    return expect_conn_error(c, FLOW_CONTROL_ERROR)


# --- §6.10 CONTINUATION -------------------------------------------------------------------------

@case("6.10/1", "RFC 9113 §6.10", "HEADERS followed by several CONTINUATION frames", "response")
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:5], end_headers=False), continuation(1, blk[5:10], False),
           continuation(1, blk[10:20], False), continuation(1, blk[20:]))
    return f":status {expect_response(c, 1).status}"


@case("6.10/2", "RFC 9113 §6.10", "CONTINUATION followed by DATA", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request("/", "POST"))
    c.send(headers(1, blk[:5], end_stream=False, end_headers=False),
           continuation(1, blk[5:], False), data(1, b"x", end_stream=True))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.10/3", "RFC 9113 §6.10", "CONTINUATION on stream 0", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:5], end_headers=False), raw(CONTINUATION, END_HEADERS, 0, blk[5:]))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.10/4", "RFC 9113 §6.10", "CONTINUATION after HEADERS with END_HEADERS",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, block(ctx.t.request()), end_stream=False),
           continuation(1, block([("x-a", "b")])))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.10/5", "RFC 9113 §6.10", "CONTINUATION after a CONTINUATION with END_HEADERS",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:5], end_stream=False, end_headers=False), continuation(1, blk[5:]),
           continuation(1, block([("x-a", "b")])))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.10/6", "RFC 9113 §6.10", "CONTINUATION after DATA", E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = open_post(ctx)
    c.send(data(1, b"x"), continuation(1, block([("x-a", "b")])))
    return expect_conn_error(c, PROTOCOL_ERROR)


@case("6.10/7", "RFC 9113 §6.10", "CONTINUATION on another stream than its HEADERS",
      E.format("PROTOCOL_ERROR"))
def _(ctx):
    c = ctx.conn()
    blk = block(ctx.t.request())
    c.send(headers(1, blk[:5], end_headers=False), continuation(3, blk[5:]))
    return expect_conn_error(c, PROTOCOL_ERROR)
