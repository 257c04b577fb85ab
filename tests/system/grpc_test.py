#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gRPC end to end through trafficcop, with python3-grpcio on both ends (generic handlers,
bytes in and out: no protoc).

Four ways to reach the server, each running every call below:
  direct, direct-tls  client -> gRPC server, no proxy: checks the harness itself
  h2c     client -> trafficcop (listener `http2: {h2c: true}`) -> server (`http2: always`, h2c)
  tls     client -> trafficcop (TLS listener, ALPN h2) -> server over TLS (`http2: always`,
          `tls: {ca_file}`)

Calls: unary (metadata both ways, initial and trailing), a 1 MiB unary, a bidirectional stream
of 100 messages each way strictly interleaved (the client sends message i+1 only after reply i:
a proxy that buffers either direction stalls it), a non-OK status with custom trailing metadata
(text and -bin) both trailers-only and after response messages, a client cancellation the
server must observe, and a deadline the server must observe.

usage: grpc_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import queue
import sys
import threading
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

import harness  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
SVC = "/trafficcop.test.Echo/"
BIG = (256 if A.quick else 1024) << 10
MESSAGES = 100
CALL_TIMEOUT = 20.0
OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", 8 << 20),
           ("grpc.max_send_message_length", 8 << 20)]


class Service:
    """The server side. Per call id (metadata x-call-id): the metadata it saw and an Event set
    when the RPC terminated while the handler was still waiting (cancel or deadline)."""

    def __init__(self):
        self.seen, self.ended = {}, {}
        self.lock = threading.Lock()

    def _call_id(self, ctx):
        md = dict(ctx.invocation_metadata())
        cid = md.get("x-call-id", "?")
        with self.lock:
            self.seen[cid] = md
            self.ended.setdefault(cid, threading.Event())
        return cid

    def unary(self, req, ctx):
        self._call_id(ctx)
        ctx.send_initial_metadata((("x-server-initial", "hello"),))
        ctx.set_trailing_metadata((("x-server-trailer", "bye"),))
        return b"echo:" + req

    def bidi(self, requests, ctx):
        self._call_id(ctx)
        for m in requests:
            yield b"re:" + m

    def fail(self, req, ctx):
        self._call_id(ctx)
        ctx.set_trailing_metadata((("x-error-detail", "custom"), ("x-error-bin", b"\x00\x01\xff")))
        ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "precondition failed: " + req.decode())

    def fail_after(self, req, ctx):
        self._call_id(ctx)
        for i in range(3):
            yield b"part%d" % i
        ctx.set_trailing_metadata((("x-error-detail", "after-data"),))
        ctx.abort(grpc.StatusCode.ABORTED, "aborted after 3 messages")

    def hang(self, requests, ctx):
        """Answers the first message with b"started", then waits until the RPC ends."""
        cid = self._call_id(ctx)
        ended = self.ended[cid]
        ctx.add_callback(ended.set)
        next(requests)
        yield b"started"
        ended.wait(30)

    def sleep(self, req, ctx):
        cid = self._call_id(ctx)
        ended = self.ended[cid]
        ctx.add_callback(ended.set)
        ended.wait(30)
        return b"woke"

    def handler(self):
        u, s = grpc.unary_unary_rpc_method_handler, grpc.stream_stream_rpc_method_handler
        return grpc.method_handlers_generic_handler("trafficcop.test.Echo", {
            "Unary": u(self.unary), "Bidi": s(self.bidi), "Fail": u(self.fail),
            "FailAfter": grpc.unary_stream_rpc_method_handler(self.fail_after),
            "Hang": s(self.hang), "Sleep": u(self.sleep)})


class Server:
    def __init__(self, tls=None):
        self.svc = Service()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((self.svc.handler(),))
        if tls:
            creds = grpc.ssl_server_credentials([tls])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        assert self.port, "the gRPC server could not bind"
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait(harness.DEADLINE)


_ids = iter(range(1, 1 << 30))


def call_id(tag):
    return f"{tag}-{next(_ids)}"


def md(cid, *extra):
    return (("x-call-id", cid),) + extra


def check_unary(ch, svc):
    """Request and response bytes, client metadata at the server, the server's initial and
    trailing metadata at the client, status OK."""
    cid = call_id("unary")
    stub = ch.unary_unary(SVC + "Unary")
    resp, call = stub.with_call(b"ping", metadata=md(cid, ("x-client-meta", "abc")),
                                timeout=CALL_TIMEOUT)
    assert resp == b"echo:ping", resp
    assert call.code() == grpc.StatusCode.OK, call.code()
    assert ("x-server-initial", "hello") in call.initial_metadata(), call.initial_metadata()
    assert ("x-server-trailer", "bye") in call.trailing_metadata(), call.trailing_metadata()
    assert svc.seen[cid].get("x-client-meta") == "abc", svc.seen[cid]


def check_unary_big(ch, svc):
    """A large message each way (several DATA frames and window updates)."""
    payload = os.urandom(BIG)
    resp = ch.unary_unary(SVC + "Unary")(payload, metadata=md(call_id("big")),
                                         timeout=CALL_TIMEOUT)
    assert resp == b"echo:" + payload, len(resp)


def check_bidi_interleaved(ch, svc):
    """100 messages each way, strictly alternating: message i+1 is sent only once reply i has
    arrived, so any buffering of a direction by the proxy stalls the call (deadline)."""
    q = queue.Queue()

    def requests():
        while True:
            m = q.get(timeout=CALL_TIMEOUT)
            if m is None:
                return
            yield m
    call = ch.stream_stream(SVC + "Bidi")(requests(), metadata=md(call_id("bidi")),
                                          timeout=CALL_TIMEOUT)
    try:
        for i in range(MESSAGES):
            m = b"msg-%d-" % i + b"x" * (i * 37)
            q.put(m)
            got = next(call)
            assert got == b"re:" + m, (i, got[:50])
        q.put(None)
        rest = list(call)
        assert rest == [], rest
        assert call.code() == grpc.StatusCode.OK, call.code()
    finally:
        q.put(None)
        call.cancel()


def _trailers(e):
    return dict(e.trailing_metadata() or ())


def check_error_trailers_only(ch, svc):
    """A call that fails before any message (a trailers-only response): the status code, the
    message and the custom trailing metadata (text and binary) reach the client."""
    try:
        ch.unary_unary(SVC + "Fail")(b"why", metadata=md(call_id("fail")), timeout=CALL_TIMEOUT)
        raise AssertionError("the call succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (e.code(), e.details())
        assert e.details() == "precondition failed: why", e.details()
        t = _trailers(e)
        assert t.get("x-error-detail") == "custom", t
        assert t.get("x-error-bin") == b"\x00\x01\xff", t


def check_error_after_messages(ch, svc):
    """Messages, then a non-OK status in the trailers: all three messages arrive first."""
    call = ch.unary_stream(SVC + "FailAfter")(b"", metadata=md(call_id("after")),
                                              timeout=CALL_TIMEOUT)
    got = []
    try:
        for m in call:
            got.append(m)
        raise AssertionError(f"the call succeeded after {got}")
    except grpc.RpcError as e:
        assert got == [b"part0", b"part1", b"part2"], (got, e.code(), e.details())
        assert e.code() == grpc.StatusCode.ABORTED, (e.code(), e.details())
        assert e.details() == "aborted after 3 messages", e.details()
        assert _trailers(e).get("x-error-detail") == "after-data", _trailers(e)


def check_client_cancel(ch, svc):
    """The client cancels a running stream: the client sees CANCELLED, and the server's
    handler learns of it (its RPC terminates) well before the server would have given up."""
    cid = call_id("cancel")
    q = queue.Queue()

    def requests():
        yield b"go"
        q.get(timeout=CALL_TIMEOUT)  # keep the request side open until the test ends
    call = ch.stream_stream(SVC + "Hang")(requests(), metadata=md(cid), timeout=CALL_TIMEOUT)
    try:
        assert next(call) == b"started"
        assert not svc.ended[cid].is_set(), "the server's RPC ended before the cancel"
        call.cancel()
        assert svc.ended[cid].wait(harness.DEADLINE), "the server never saw the cancellation"
        assert call.code() == grpc.StatusCode.CANCELLED, call.code()
    finally:
        q.put(None)


def check_deadline(ch, svc):
    """A call past its deadline: DEADLINE_EXCEEDED at the client, and the server's RPC ends
    (grpc-timeout travelled, or the proxy reset the stream)."""
    cid = call_id("deadline")
    try:
        ch.unary_unary(SVC + "Sleep")(b"", metadata=md(cid), timeout=0.5)
        raise AssertionError("the call succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (e.code(), e.details())
    assert svc.ended[cid].wait(harness.DEADLINE), "the server never saw the call end"


def check_many_concurrent(ch, svc):
    """50 unary calls in flight at once on the channel's one connection."""
    stub = ch.unary_unary(SVC + "Unary")
    fs = [stub.future(b"n%d" % i, metadata=md(call_id("conc")), timeout=CALL_TIMEOUT)
          for i in range(50)]
    got = [f.result() for f in fs]
    assert got == [b"echo:n%d" % i for i in range(50)], got[:3]


CHECKS = [check_unary, check_unary_big, check_bidi_interleaved, check_error_trailers_only,
          check_error_after_messages, check_client_cancel, check_deadline, check_many_concurrent]


def proxy_config(port, upstream_port, tls, certs):
    listener = f"  - address: '127.0.0.1:{port}'\n"
    upstream = f"  - {{name: grpc, url: 'http://127.0.0.1:{upstream_port}', http2: always}}\n"
    if tls:
        listener += (f"    tls: {{certificates: [{{cert_file: '{certs}/server.pem', "
                     f"key_file: '{certs}/server.key'}}]}}\n")
        upstream = (f"  - {{name: grpc, url: 'https://127.0.0.1:{upstream_port}', "
                    f"http2: always, tls: {{ca_file: '{certs}/ca.pem'}}}}\n")
    else:
        listener += "    http2: {h2c: true}\n"
    return ("workers: 1\naccess_log: {path: 'off'}\nlisteners:\n" + listener +
            "upstreams:\n" + upstream + "routes:\n  - {upstream: grpc}\n")


def run_mode(mode, certs):
    names = [f"{mode}/{fn.__name__[len('check_'):]}" for fn in CHECKS]
    if not any(A.wanted(n) for n in names):
        return
    tls = mode.endswith("tls")
    with open(f"{certs}/server.key", "rb") as k, open(f"{certs}/server.pem", "rb") as c:
        pair = (k.read(), c.read())
    server = tc = ch = None
    try:
        server = Server(pair if tls else None)
        port = server.port
        if not mode.startswith("direct"):
            tc = harness.Trafficcop(A.trafficcop,
                                    lambda p: proxy_config(p, server.port, tls, certs))
            port = tc.port
        if tls:
            with open(f"{certs}/ca.pem", "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            ch = grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                     OPTIONS + [("grpc.ssl_target_name_override", "localhost")])
        else:
            ch = grpc.insecure_channel(f"127.0.0.1:{port}", OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=harness.DEADLINE)
    except Exception as e:  # noqa: BLE001 - every check of the mode fails with the reason
        for n in names:
            R.check(n, lambda: (_ for _ in ()).throw(RuntimeError(f"setup failed: {e!r}")))
        for x in (ch, tc, server):
            if x is not None:
                x.close() if x is ch else x.stop()
        return
    try:
        for name, fn in zip(names, CHECKS):
            R.check(name, fn, ch, server.svc)
            if tc is not None and tc.p.poll() is not None:
                print(f"         trafficcop exited: {tc.stderr()[-1500:]}", flush=True)
                break
    finally:
        ch.close()
        if tc is not None:
            tc.stop()
        server.stop()


def main():
    certs = harness.test_certs(A.src)
    for mode in ["direct", "direct-tls", "h2c", "tls"]:
        run_mode(mode, certs)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
