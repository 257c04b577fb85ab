#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A test upstream that records every request and serves HTTP/1.1 and HTTP/2.

Plain TCP: HTTP/1.1, or HTTP/2 by prior knowledge (h2c; told apart by the connection preface).
TLS: ALPN picks h2 or http/1.1 (`protocols` limits what is offered and accepted).

Every request is recorded: protocol, method, path, every header line in received order (for
HTTP/2 the pseudo-headers too), body length and sha256, trailers, whether the peer reset it.
By default the answer is that record as JSON; the path or the query asks for other behaviour
(upstream_behaviour.py: sizes, statuses, delays, gates, trailers, echo, refusals, GOAWAY).

A gate or delay ends early if the peer leaves (h1: connection closed; h2: stream reset, record
"reset_code"). An h2 stream beyond max_concurrent_streams is refused (REFUSED_STREAM; after the
peer acked our SETTINGS python-h2 makes it a connection error: the connection's "error").
Connections are recorded too (.conns()): opened/closed times, protocol, most h2 streams open at
once ("max_streams"), refused streams, the peer's GOAWAY [code, last id, time], ours
("goaway_sent") and the ack of the PING after it ("goaway_acked"), our SETTINGS' ack time.

HTTP/2 flow control is honoured both ways: body bytes are sent only within the peer's stream
and connection windows (waiting for WINDOW_UPDATE), and received DATA is acknowledged as
consumed.

As a program: `h2_upstream.py [--port N] [--tls CERT KEY] [--protocols h1,h2] [--log]` (port 0:
any) prints its port on the first line of stdout and serves until SIGTERM/SIGINT; `--log` prints
each record as a JSON line. As a module: `Upstream(...)` runs it on a thread of this process
(see the class).
"""
import asyncio
import hashlib
import json
import signal
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.errors
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from upstream_behaviour import Body as _Body, Stop as _Stop, behaviour as _behaviour
from upstream_behaviour import response_body as _response_body
from upstream_behaviour import pattern, pattern_sha256  # noqa: F401 - the tests import them here

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WAIT_LIMIT = 30.0  # no wait inside the server (gate, window, body) lasts longer than this
class Upstream:
    """The server on its own thread and event loop.

    Upstream(tls=(cert, key) or None, protocols={"h1", "h2"}, initial_window=65535,
             max_concurrent_streams=1000, port=0, host="127.0.0.1")
    .port, .records() (copies), .wait_records(pred, what), .find(test_id),
    .open_gate(name), .refused (connections refused for a protocol not in `protocols`),
    .connections (count accepted), .conns() and .wait_conns(pred, what) (connection records by
    id), .stop().  A record's "id_header" is the value of the request's x-test-id field, which
    tests use to find it; its "conn" the id of the connection it came on.
    """

    def __init__(self, tls=None, protocols=("h1", "h2"), initial_window=65535,
                 max_concurrent_streams=1000, on_record=None, port=0, host="127.0.0.1"):
        self.protocols = set(protocols)
        self.port = port
        self.host = host
        self.tls = tls
        self.initial_window = initial_window
        self.max_concurrent_streams = max_concurrent_streams
        self.on_record = on_record
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._records = []
        self._gates = {}
        self._conns = {}
        self._refuse_seen = set()
        self.refused = []
        # Behaviour every request gets unless its path or query says otherwise (the keys of
        # upstream_behaviour.py, e.g. {"status": "503"} or {"delay": "300"}); a test may
        # change it while the server runs, to make this one upstream fail or slow down.
        self.defaults = {}
        self.connections = 0
        self._conn_seq = 0
        self._ready = threading.Event()
        self._error = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="h2_upstream", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream did not start")
        if self._error:
            raise self._error

    # --- the thread ---------------------------------------------------------------------

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            ctx = None
            if self.tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self.tls)
                alpn = [p for p, k in (("h2", "h2"), ("http/1.1", "h1")) if k in self.protocols]
                ctx.set_alpn_protocols(alpn)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, ssl=ctx,
                                     limit=1 << 20))
            self.port = self.server.sockets[0].getsockname()[1]
        except Exception as e:  # noqa: BLE001 - reported by the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in tasks:
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self):
        if self.loop.is_closed():
            return

        def shut():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(shut)
        self.thread.join(10)

    # --- the test's view ----------------------------------------------------------------

    def _new_record(self, conn, proto, method, path, headers, stream=None, version=None):
        with self._lock:
            rec = {"id": len(self._records) + 1, "conn": conn["id"], "stream": stream,
                   "proto": proto, "tls": conn["tls"], "alpn": conn["alpn"],
                   "peer": conn["peer"], "method": method, "path": path, "version": version,
                   "headers": headers, "body_len": 0, "body_sha256": hashlib.sha256().hexdigest(),
                   "trailers": [], "complete": False, "reset": False, "reset_code": None,
                   "refused": False, "responded": None,
                   "id_header": next((v for n, v in headers if n.lower() == "x-test-id"), None)}
            self._records.append(rec)
            self._cond.notify_all()
        return rec

    def _update(self, rec, **kw):
        with self._lock:
            rec.update(kw)
            self._cond.notify_all()
        if kw.get("complete") and self.on_record:
            self.on_record(dict(rec))

    def records(self):
        with self._lock:
            return [dict(r) for r in self._records]

    def find(self, test_id):
        """Records whose x-test-id is `test_id` (copies)."""
        return [r for r in self.records() if r["id_header"] == test_id]

    def conns(self):
        """Connection records by id (copies)."""
        with self._lock:
            return {k: dict(c) for k, c in self._conns.items()}

    def _conn_update(self, conn, **kw):
        with self._lock:
            conn.update(kw)
            self._cond.notify_all()

    def wait_records(self, pred, what, timeout=20.0):
        """Waits until pred(records) is true; returns its value. Raises TimeoutError."""
        return self._wait(lambda: pred([dict(r) for r in self._records]), what, timeout)

    def wait_conns(self, pred, what, timeout=20.0):
        """Waits until pred(conns()) is true; returns its value. Raises TimeoutError."""
        return self._wait(lambda: pred({k: dict(c) for k, c in self._conns.items()}), what,
                          timeout)

    def _wait(self, test, what, timeout):
        end = time.time() + timeout
        with self._lock:
            while True:
                v = test()
                if v:
                    return v
                left = end - time.time()
                if left <= 0:
                    raise TimeoutError(f"upstream: waited {timeout}s for {what}")
                self._cond.wait(left)

    def open_gate(self, name):
        self.loop.call_soon_threadsafe(lambda: self._gate(name).set())

    def _gate(self, name):
        if name not in self._gates:
            self._gates[name] = asyncio.Event()
        return self._gates[name]

    async def _wait_gate(self, name):
        await asyncio.wait_for(self._gate(name).wait(), WAIT_LIMIT)

    async def _hold(self, b, gone):
        """The gate, then the delay, of behaviour `b`; raises _Stop if the asyncio.Event `gone`
        (the peer left) is set first."""
        waits = []
        if b.get("gate"):
            waits.append(lambda: self._wait_gate(b["gate"]))
        if b.get("delay"):
            waits.append(lambda: asyncio.sleep(int(b["delay"]) / 1000))
        for w in waits:
            task, stop = asyncio.ensure_future(w()), asyncio.ensure_future(gone.wait())
            try:
                await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if not task.done():
                task.cancel()
                raise _Stop("the peer left")
            task.result()

    def _refuse_first(self, name):
        with self._lock:
            first = name not in self._refuse_seen
            self._refuse_seen.add(name)
            return first

    # --- connections --------------------------------------------------------------------

    async def _serve(self, reader, writer):
        self._conn_seq += 1
        sslobj = writer.get_extra_info("ssl_object")
        peer = writer.get_extra_info("peername")
        conn = {"id": self._conn_seq, "tls": sslobj is not None,
                "alpn": sslobj.selected_alpn_protocol() if sslobj else None,
                "peer": f"{peer[0]}:{peer[1]}", "proto": None, "opened": time.time(),
                "closed": None, "max_streams": 0, "refused": 0, "goaway": None,
                "goaway_sent": None, "goaway_acked": None, "settings_acked": None,
                "error": None}
        with self._lock:
            self._conns[conn["id"]] = conn
        self.connections += 1
        try:
            if sslobj is not None:
                h2c = conn["alpn"] == "h2"
                first = b""
            else:
                first = b""
                while len(first) < len(PREFACE) and PREFACE.startswith(first):
                    more = await reader.read(len(PREFACE) - len(first))
                    if not more:
                        return
                    first += more
                h2c = first == PREFACE
            want = "h2" if h2c else "h1"
            if want not in self.protocols:
                self.refused.append({"conn": conn["id"], "wanted": want, "alpn": conn["alpn"]})
                return
            self._conn_update(conn, proto=want)
            if h2c:
                await _H2Conn(self, conn, reader, writer, first).run()
            else:
                await _H1Conn(self, conn, reader, writer, first).run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, _Stop):
            pass
        finally:
            writer.close()
            self._conn_update(conn, closed=time.time())


class _H1Conn:
    def __init__(self, up, conn, reader, writer, first):
        self.up, self.conn, self.r, self.w, self.buf = up, conn, reader, writer, bytearray(first)

    async def _fill(self):
        more = await self.r.read(1 << 16)
        if not more:
            raise asyncio.IncompleteReadError(bytes(self.buf), None)
        self.buf += more

    async def readline(self, limit=1 << 16):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise _Stop("line too long")
            await self._fill()

    async def read_some(self, n):
        if not self.buf:
            await self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def run(self):
        while True:
            try:
                line = await self.readline()
            except asyncio.IncompleteReadError:
                return
            if not line:
                continue
            method, target, version = line.decode("latin-1").split(" ", 2)
            headers = []
            while True:
                h = (await self.readline()).decode("latin-1")
                if not h:
                    break
                name, _, value = h.partition(":")
                headers.append([name, value.strip(" \t")])
            if not await self.exchange(method, target, version, headers):
                return

    def _get(self, headers, name):
        return [v for n, v in headers if n.lower() == name]

    async def exchange(self, method, target, version, headers):
        rec = self.up._new_record(self.conn, "HTTP/1.1", method, target, headers, version=version)
        b = {**self.up.defaults, **_behaviour(target)}
        conn_tokens = ",".join(self._get(headers, "connection")).lower()
        if b.get("ws") and self._get(headers, "upgrade") and "upgrade" in conn_tokens:
            self.up._update(rec, complete=True, responded=101)
            self.w.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: " + self._get(headers, "upgrade")[0].encode() + b"\r\n\r\n")
            await self.w.drain()
            if self.buf:
                self.w.write(bytes(self.buf))
            while True:
                data = await self.r.read(1 << 16)
                if not data:
                    return False
                self.w.write(data)
                await self.w.drain()
        if any(v.lower() == "100-continue" for v in self._get(headers, "expect")):
            self.w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _Body(keep=bool(b.get("echo")))
        te = ",".join(self._get(headers, "transfer-encoding")).lower()
        try:
            if "chunked" in te:
                trailers = []
                while True:
                    size = int((await self.readline()).split(b";")[0], 16)
                    if size == 0:
                        break
                    left = size
                    while left:
                        data = await self.read_some(left)
                        left -= len(data)
                        body.add(data)
                        self.up._update(rec, body_len=body.len)
                    if await self.readline() != b"":
                        raise _Stop("bad chunk end")
                while True:
                    t = (await self.readline()).decode("latin-1")
                    if not t:
                        break
                    n, _, v = t.partition(":")
                    trailers.append([n, v.strip(" \t")])
                self.up._update(rec, trailers=trailers)
            elif self._get(headers, "content-length"):
                left = int(self._get(headers, "content-length")[0])
                while left:
                    data = await self.read_some(min(left, 1 << 16))
                    left -= len(data)
                    body.add(data)
                    self.up._update(rec, body_len=body.len)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.up._update(rec, reset=True, body_len=body.len)
            return False
        self.up._update(rec, body_len=body.len, body_sha256=body.h.hexdigest(), complete=True)
        keep = "close" not in conn_tokens
        await self.respond(rec, b, method, body, keep)
        return keep

    async def _watch_eof(self, gone):
        try:
            while True:
                data = await self.r.read(1 << 16)
                if not data:
                    break
                self.buf += data
        except (ConnectionError, OSError):
            pass
        gone.set()

    async def respond(self, rec, b, method, body, keep):
        if b.get("gate") or b.get("delay"):
            gone = asyncio.Event()
            watch = asyncio.ensure_future(self._watch_eof(gone))
            try:
                await self.up._hold(b, gone)
            except _Stop:
                self.up._update(rec, reset=True)
                raise
            finally:
                watch.cancel()  # and wait for it: the next read must not race its read
                await asyncio.gather(watch, return_exceptions=True)
        status = int(b.get("status", 200))
        data, ctype = self.up_body(rec, b, body)
        no_body = method == "HEAD" or status in (204, 304) or status < 200
        trailers = bool(b.get("trailers"))
        chunked = (trailers or b.get("cl") == "0") and not no_body
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", "X-Upstream-Proto: HTTP/1.1",
                f"X-Record-Id: {rec['id']}"]
        if chunked:
            head.append("Transfer-Encoding: chunked")
            if trailers:
                head.append("Trailer: X-Trailer-One, X-Body-Sha256")
        elif status not in (204, 304):
            head.append(f"Content-Length: {len(data)}")
        if b.get("hop"):
            head += ["Connection: X-Hop-Resp", "X-Hop-Resp: 1", "Keep-Alive: timeout=5",
                     "Proxy-Connection: keep-alive"]
        if not keep:
            head.append("Connection: close")
        self.up._update(rec, responded=status)
        self.w.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if not no_body:
            await self.send_body(b, data, chunked)
            if chunked:
                tr = ""
                if trailers:
                    tr = (f"X-Trailer-One: 1\r\nX-Body-Sha256: "
                          f"{hashlib.sha256(data).hexdigest()}\r\n")
                self.w.write(f"0\r\n{tr}\r\n".encode())
        await self.w.drain()

    def up_body(self, rec, b, body):
        return _response_body(self.up, rec, b, body)

    async def send_body(self, b, data, chunked):
        step = int(b.get("chunk", 16384)) or 16384
        for i, off in enumerate(range(0, len(data), step)):
            piece = data[off:off + step]
            self.w.write((b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece)
            await self.w.drain()
            if i == 0 and b.get("pause"):
                await self.up._wait_gate(b["pause"])
            if b.get("drip"):
                await asyncio.sleep(int(b["drip"]) / 1000)


class _Stream:
    def __init__(self, rec, behaviour):
        self.rec, self.b = rec, behaviour
        self.body = _Body(keep=bool(behaviour.get("echo")))
        self.ended = asyncio.Event()
        self.gone_ev = asyncio.Event()
        self.gone = False
        self.task = None


class _H2Conn:
    def __init__(self, up, conn, reader, writer, first):
        self.up, self.conn, self.r, self.w, self.first = up, conn, reader, writer, first
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False)
        self.h2 = h2.connection.H2Connection(cfg)
        self.streams = {}
        self.window = asyncio.Event()
        self.closed = False
        self.goaway_last = None  # the last stream id of the GOAWAY we sent

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.w.write(data)

    def window_changed(self):
        self.window.set()
        self.window = asyncio.Event()

    async def run(self):
        self.h2.initiate_connection()
        s = h2.settings.SettingCodes
        self.h2.update_settings({s.MAX_CONCURRENT_STREAMS: self.up.max_concurrent_streams,
                                 s.INITIAL_WINDOW_SIZE: self.up.initial_window})
        self.flush()
        data = self.first
        try:
            while True:
                if data:
                    try:
                        events = self.h2.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        self.up._conn_update(self.conn, error=f"{type(e).__name__}: {e}")
                        self.flush()
                        return
                    for ev in events:
                        self.on_event(ev)
                    self.flush()
                data = await self.r.read(1 << 16)
                if not data:
                    return
        finally:
            self.closed = True
            for st in self.streams.values():
                st.gone = True
                st.ended.set()
                st.gone_ev.set()
                if st.task and not st.task.done():
                    st.task.cancel()
            self.window_changed()

    def on_event(self, ev):
        E = h2.events
        if isinstance(ev, E.RequestReceived):
            headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in ev.headers]
            get = dict((n, v) for n, v in headers)
            rec = self.up._new_record(self.conn, "HTTP/2", get.get(":method"), get.get(":path"),
                                      headers, stream=ev.stream_id)
            st = _Stream(rec, {**self.up.defaults, **_behaviour(get.get(":path") or "/")})
            self.streams[ev.stream_id] = st
            n = self.h2.open_inbound_streams  # this one included
            if (n > self.up.max_concurrent_streams
                    or (st.b.get("refuse") and self.up._refuse_first(st.b["refuse"]))
                    or (self.goaway_last is not None and ev.stream_id > self.goaway_last)):
                self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                st.gone = True
                self.up._update(rec, refused=True)
                self.up._conn_update(self.conn, refused=self.conn["refused"] + 1)
                return
            if n > self.conn["max_streams"]:
                self.up._conn_update(self.conn, max_streams=n)
            st.task = asyncio.ensure_future(self.answer(ev.stream_id, st))
        elif isinstance(ev, E.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st:
                st.body.add(ev.data)
                self.up._update(st.rec, body_len=st.body.len)
            try:  # consumed at once: open the windows again by what we got
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            except h2.exceptions.StreamClosedError:
                pass
        elif isinstance(ev, E.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st:
                self.up._update(st.rec, trailers=[[n.decode("latin-1"), v.decode("latin-1")]
                                                  for n, v in ev.headers])
        elif isinstance(ev, E.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st:
                self.up._update(st.rec, body_sha256=st.body.h.hexdigest(), complete=True)
                st.ended.set()
        elif isinstance(ev, E.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st and not st.rec["refused"]:
                st.gone = True
                self.up._update(st.rec, reset=True, reset_code=int(ev.error_code))
                st.ended.set()
                st.gone_ev.set()
                self.window_changed()
        elif isinstance(ev, (E.WindowUpdated, E.RemoteSettingsChanged)):
            self.window_changed()
        elif isinstance(ev, E.SettingsAcknowledged):
            if self.conn["settings_acked"] is None:
                self.up._conn_update(self.conn, settings_acked=time.time())
        elif isinstance(ev, E.PingAckReceived):
            if ev.ping_data == b"goaway\0\0":
                self.up._conn_update(self.conn, goaway_acked=time.time())
        elif isinstance(ev, E.ConnectionTerminated):
            self.up._conn_update(self.conn, goaway=[int(ev.error_code), ev.last_stream_id,
                                                    time.time()])
            self.closed = True
            self.window_changed()

    def send_goaway(self, last):
        """GOAWAY(NO_ERROR, `last`) written past python-h2 (which would stop sending on this
        connection), then a PING whose ack says the peer has read the GOAWAY."""
        self.flush()
        self.goaway_last = last
        self.w.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
        self.up._conn_update(self.conn, goaway_sent=[last, time.time()])
        self.h2.ping(b"goaway\0\0")
        self.flush()

    async def answer(self, sid, st):
        try:
            await asyncio.wait_for(st.ended.wait(), WAIT_LIMIT)
            if st.gone:
                return
            b = st.b
            if b.get("goaway"):
                self.send_goaway(self.h2.highest_inbound_stream_id)
            await self.up._hold(b, st.gone_ev)
            if st.gone:
                return
            status = int(b.get("status", 200))
            data, ctype = _response_body(self.up, st.rec, b, st.body)
            method = dict(st.rec["headers"]).get(":method")
            no_body = method == "HEAD" or status in (204, 304)
            trailers = bool(b.get("trailers"))
            head = [(":status", str(status)), ("content-type", ctype),
                    ("x-upstream-proto", "HTTP/2"), ("x-record-id", str(st.rec["id"]))]
            if not trailers and b.get("cl") != "0" and status not in (204, 304):
                head.append(("content-length", str(len(data))))
            if trailers:
                head.append(("trailer", "x-trailer-one, x-body-sha256"))
            self.up._update(st.rec, responded=status)
            self.h2.send_headers(sid, head, end_stream=no_body or (not data and not trailers))
            self.flush()
            if not no_body and data:
                await self.send_data(sid, st, data, b)
            if not no_body and trailers:
                self.h2.send_headers(sid, [("x-trailer-one", "1"),
                                           ("x-body-sha256", hashlib.sha256(data).hexdigest())],
                                     end_stream=True)
            elif not no_body and data:
                self.h2.end_stream(sid)
            self.flush()
            await self.w.drain()
            self.up._update(st.rec, sent_all=True)  # the whole response is on the wire
        except (_Stop, h2.exceptions.StreamClosedError, ConnectionError, asyncio.TimeoutError):
            pass
        except h2.exceptions.ProtocolError:
            pass

    async def send_data(self, sid, st, data, b):
        step = int(b.get("chunk", 16384)) or 16384
        off, first = 0, True
        while off < len(data):
            n = min(step, len(data) - off)
            while True:
                if st.gone or self.closed:
                    raise _Stop()
                window = min(self.h2.local_flow_control_window(sid),
                             self.h2.max_outbound_frame_size)
                if window > 0:
                    break
                await asyncio.wait_for(self.window.wait(), WAIT_LIMIT)
            piece = min(n, window)
            self.h2.send_data(sid, data[off:off + piece])
            off += piece
            self.flush()
            await self.w.drain()
            if first and b.get("pause"):
                first = False
                await self.up._wait_gate(b["pause"])
            if b.get("drip") and piece == n:
                await asyncio.sleep(int(b["drip"]) / 1000)


def main(argv):
    tls, protocols, log = None, ("h1", "h2"), "--log" in argv
    if "--tls" in argv:
        i = argv.index("--tls")
        tls = (argv[i + 1], argv[i + 2])
    if "--protocols" in argv:
        protocols = argv[argv.index("--protocols") + 1].split(",")
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0

    def show(rec):
        print(json.dumps(rec), flush=True)
    up = Upstream(tls=tls, protocols=protocols, on_record=show if log else None, port=port)
    print(up.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        while not done.wait(1):
            pass
    finally:
        up.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
