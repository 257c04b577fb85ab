# SPDX-License-Identifier: MIT
"""A blocking HTTP/2 client for the system tests (python3-h2), plain h2c by prior knowledge or
TLS with ALPN h2. Many streams on one connection; request bodies sent within the peer's flow
control windows, response DATA acknowledged as it arrives; request and response trailers.
Headers are sent exactly as given (no validation or normalisation), so a test can also send
what a client must not. Every wait has a deadline.

What the server did to the connection is kept for the tests: its SETTINGS (`settings`),
GOAWAYs (`goaways`; the last: `goaway`, `goaway_at`), when it closed (`closed_at`), PING acks
(`pings_acked`), and a `log` of those frames and of RST_STREAMs with their times. With
`keep_after_goaway`, a GOAWAY(NO_ERROR) does not end the connection here (python-h2 would refuse
every later frame): streams up to its last stream id may still complete, and new ones may be
opened to see what the server does.
"""
import collections
import contextlib
import hashlib
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

TIMEOUT = 20.0


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.status, self.headers, self.trailers = None, [], []
        self.data = bytearray()
        self.ended = False
        self.reset = None  # the error code of an RST_STREAM from the server
        self.out, self.out_end, self.out_trailers, self.out_done = bytearray(), False, None, False

    @property
    def finished(self):
        return self.ended or self.reset is not None

    def get(self, name):
        return [v for n, v in self.headers if n == name]

    def names(self):
        return {n for n, _ in self.headers}

    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self):
        return (f"<stream {self.sid} status={self.status} reset={self.reset} headers="
                f"{self.headers} data[{len(self.data)}]={bytes(self.data[:300])!r} "
                f"trailers={self.trailers}>")


class H2Client:
    def __init__(self, port, ca=None, server_name="127.0.0.1", timeout=TIMEOUT,
                 keep_after_goaway=False):
        self.keep_after_goaway = keep_after_goaway
        self.settings, self.log, self.pings_acked = {}, [], 0
        self.goaway_at = self.closed_at = None
        self.goaways = []  # every GOAWAY: (error code, last stream id)
        self.corked = False
        self.opened_at = time.time()
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname=server_name)
            if s.selected_alpn_protocol() != "h2":
                s.close()
                raise AssertionError(f"ALPN: server chose {s.selected_alpn_protocol()!r}, not h2")
        self.s = s
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False,
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(cfg)
        if keep_after_goaway:
            self._keep_open_on_goaway()
        self.h2.initiate_connection()
        self.streams = {}
        self.goaway = None  # (error code, last stream id) of a GOAWAY from the server
        self.closed = False
        self._flush()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _keep_open_on_goaway(self):
        # python-h2 closes its state machine on any GOAWAY, refusing the frames that follow
        # (DATA of streams up to the last id: RFC 9113 §6.8), and drops what it had queued to
        # send (the ack of a PING that came just before: a two-step drain waits for it).
        table = self.h2._frame_dispatch_table
        receive = table[hyperframe.frame.GoAwayFrame]

        def on_goaway(frame):
            state, queued = self.h2.state_machine.state, bytes(self.h2._data_to_send)
            out = receive(frame)
            if frame.error_code == 0:
                self.h2.state_machine.state = state
                self.h2._data_to_send = bytearray(queued) + self.h2._data_to_send
            return out
        table[hyperframe.frame.GoAwayFrame] = on_goaway

    def _flush(self):
        if self.corked:
            return
        data = self.h2.data_to_send()
        if data:
            self.s.sendall(data)

    @contextlib.contextmanager
    def cork(self):
        """What is queued inside goes out in one write at the end (e.g. many requests the
        server then reads at once)."""
        self.corked = True
        try:
            yield self
        finally:
            self.corked = False
            self._flush()

    def request(self, headers, body=b"", end=True, trailers=None, split=False, force=False):
        """Opens a stream with `headers` (a list of (name, value), pseudo-headers first as
        given); queues `body`; ends the stream when `end` (with `trailers` if any). HEADERS and
        the first DATA go out in one write unless `split`; `force` opens it even beyond the
        server's SETTINGS_MAX_CONCURRENT_STREAMS. Returns the stream id; call pump()/wait() to
        move bytes."""
        sid = self.h2.get_next_available_stream_id()
        st = self.streams[sid] = Stream(sid)
        only_headers = end and not body and not trailers
        limits = self.h2.remote_settings._settings  # python-h2 checks the peer's limit here
        code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
        saved = limits.get(code)
        if force:
            limits[code] = collections.deque([2 ** 31 - 1])
        try:
            self.h2.send_headers(sid, [(n.encode(), v.encode()) for n, v in headers],
                                 end_stream=only_headers)
        finally:
            if force and saved is not None:
                limits[code] = saved
            elif force:
                del limits[code]
        st.out_done = only_headers
        if split or only_headers:
            self._flush()
        if not only_headers:
            self.send(sid, body, end, trailers)
        return sid

    def send(self, sid, data, end=False, trailers=None):
        st = self.streams[sid]
        st.out += data
        st.out_end, st.out_trailers = end, trailers
        self._send_pending()

    def reset_stream(self, sid, code=8):
        self.h2.reset_stream(sid, code)
        self._flush()

    def ping(self):
        """Sends a PING; its ack (`pings_acked` grows) says the server read all sent before."""
        self.h2.ping(b"%08d" % (self.pings_acked % 10 ** 8))
        self._flush()

    def _note(self, what):
        self.log.append((round(time.time() - self.opened_at, 3), what))

    def _send_pending(self):
        for st in self.streams.values():
            if st.out_done or st.reset is not None:
                continue
            try:
                while st.out:
                    window = min(self.h2.local_flow_control_window(st.sid),
                                 self.h2.max_outbound_frame_size)
                    if window <= 0:
                        break
                    piece = bytes(st.out[:window])
                    del st.out[:window]
                    self.h2.send_data(st.sid, piece)
                if not st.out and st.out_end:
                    if st.out_trailers:
                        self.h2.send_headers(st.sid, [(n.encode(), v.encode())
                                                      for n, v in st.out_trailers],
                                             end_stream=True)
                    else:
                        self.h2.end_stream(st.sid)
                    st.out_done = True
            except h2.exceptions.StreamClosedError:
                st.out_done = True
        self._flush()

    def _on_event(self, ev):
        E = h2.events
        st = self.streams.get(getattr(ev, "stream_id", None))
        dec = lambda hs: [(n.decode("latin-1"), v.decode("latin-1")) for n, v in hs]  # noqa: E731
        if isinstance(ev, E.ResponseReceived) and st:
            st.headers = dec(ev.headers)
            st.status = int(dict(st.headers).get(":status", "0"))
        elif isinstance(ev, E.InformationalResponseReceived):
            pass
        elif isinstance(ev, E.DataReceived):
            if st:
                st.data += ev.data
            try:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            except h2.exceptions.StreamClosedError:
                pass
        elif isinstance(ev, E.TrailersReceived) and st:
            st.trailers = dec(ev.headers)
        elif isinstance(ev, E.StreamEnded) and st:
            st.ended = True
        elif isinstance(ev, E.StreamReset):
            self._note(f"RST_STREAM({ev.stream_id}, {int(ev.error_code)})")
            if st:
                st.reset = int(ev.error_code)
        elif isinstance(ev, E.RemoteSettingsChanged):
            self.settings.update({int(k): v.new_value for k, v in ev.changed_settings.items()})
            self._note(f"SETTINGS {self.settings}")
        elif isinstance(ev, E.PingAckReceived):
            self.pings_acked += 1
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = (int(ev.error_code), ev.last_stream_id)
            self.goaways.append(self.goaway)
            self.goaway_at = time.time()
            self._note(f"GOAWAY({int(ev.error_code)}, last {ev.last_stream_id})")
            if not (self.keep_after_goaway and int(ev.error_code) == 0):
                self.closed = True

    def pump(self, until, what, timeout=TIMEOUT):
        """Moves bytes both ways until `until()` is true; raises TimeoutError (or
        ConnectionError if the server closed first)."""
        end = time.time() + timeout
        while True:
            self._send_pending()
            if until():
                return
            if self.closed:
                raise ConnectionError(f"server closed the connection (GOAWAY {self.goaway}) "
                                      f"before {what}; streams {list(self.streams.values())}")
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"h2 client: waited {timeout}s for {what}; streams "
                                   f"{list(self.streams.values())[:5]}")
            pending = isinstance(self.s, ssl.SSLSocket) and self.s.pending()
            if not pending and not select.select([self.s], [], [], min(left, 0.5))[0]:
                continue
            try:
                data = self.s.recv(1 << 16)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                if not self.closed:
                    self.closed_at = time.time()
                    self._note("EOF")
                self.closed = True
                continue
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                self.closed = True
                self.goaway = ("protocol error in client", str(e))
                continue
            for ev in events:
                self._on_event(ev)
            self._flush()

    def wait(self, *sids, timeout=TIMEOUT):
        """Waits until every given stream ended or was reset; returns their Stream objects."""
        self.pump(lambda: all(self.streams[s].finished for s in sids),
                  f"streams {sids} to finish", timeout)
        return [self.streams[s] for s in sids]

    def exchange(self, headers, body=b"", trailers=None, timeout=TIMEOUT):
        return self.wait(self.request(headers, body, True, trailers), timeout=timeout)[0]


def base_headers(method, path, authority, scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":authority", authority),
            (":path", path)] + list(extra)
