# SPDX-License-Identifier: MIT
"""What a request to the test upstream (h2_upstream.py) asks for, and the bodies it gets.

By default the answer is the request's record as JSON. The path (anywhere in it, so a proxy's
base path does not matter) or the query selects other behaviour; query keys override path ones:

  /bytes/N      ?bytes=N     N bytes of pattern(N) (deterministic; see pattern())
  /status/N     ?status=N    that status (204, 304 and HEAD answers carry no body)
  /delay/MS     ?delay=MS    wait MS ms before the response head
  /trailers     ?trailers=1  response trailers x-trailer-one: 1, x-body-sha256: <sha of body>
  /echo         ?echo=1      the request body back
  /hop          ?hop=1       (HTTP/1.1) hop-by-hop response fields: Connection: X-Hop-Resp,
                             X-Hop-Resp, Keep-Alive, Proxy-Connection
  /gate/NAME    ?gate=NAME   before the head, wait until the test calls open_gate(NAME)
                ?pause=NAME  send the head and the first chunk, then wait for the gate
                ?chunk=N     body write size (default 16384); ?drip=MS sleep between chunks
                ?cl=0        no Content-Length (HTTP/1.1: chunked)
  /ws + Upgrade              (HTTP/1.1) 101 Switching Protocols, then echoes raw bytes
  /refuse/NAME  ?refuse=NAME (HTTP/2) the first request naming NAME gets RST_STREAM
                             (REFUSED_STREAM), record "refused"; later ones are answered
  /goaway-after ?goaway=1    (HTTP/2) GOAWAY(NO_ERROR, last = this stream) and a PING first,
                             then the answer; newer streams are refused

Also here: the deterministic body pattern, and the request-body digest both protocols use.
"""
import hashlib
import json
import random
import re
import urllib.parse

_BLOCK = random.Random(20240229).randbytes(65521)  # prime length: no alignment with chunks


def pattern(n):
    """The body of /bytes/N: _BLOCK repeated, cut to n bytes."""
    reps = n // len(_BLOCK) + 1
    return (_BLOCK * reps)[:n]


def pattern_sha256(n):
    return hashlib.sha256(pattern(n)).hexdigest()


def behaviour(path):
    """The behaviour dict of a request target (see the module doc)."""
    b = {}
    p, _, q = path.partition("?")
    for key, rx in (("bytes", r"/bytes/(\d+)"), ("status", r"/status/(\d+)"),
                    ("delay", r"/delay/(\d+)"), ("gate", r"/gate/([\w.-]+)")):
        m = re.search(rx, p)
        if m:
            b[key] = m.group(1)
    for key in ("trailers", "echo", "hop", "ws"):
        if re.search(rf"/{key}(/|$)", p):
            b[key] = "1"
    m = re.search(r"/refuse/([\w.-]+)", p)
    if m:
        b["refuse"] = m.group(1)
    if re.search(r"/goaway-after(/|$)", p):
        b["goaway"] = "1"
    for k, v in urllib.parse.parse_qsl(q, keep_blank_values=True):
        b[k] = v
    return b


class Stop(Exception):
    """The peer went away (connection closed or stream reset) while we were answering."""


class Body:
    """Running length + sha256 of a request body (and the bytes, for /echo)."""

    def __init__(self, keep):
        self.len, self.h, self.keep, self.data = 0, hashlib.sha256(), keep, bytearray()

    def add(self, data):
        self.len += len(data)
        self.h.update(data)
        if self.keep:
            self.data += data


def response_body(up, rec, b, body):
    """The answer's body and content type: the bytes asked for, the echo, or the record as
    JSON (under the upstream's lock: other threads update records)."""
    if b.get("bytes"):
        return pattern(int(b["bytes"])), "application/octet-stream"
    if b.get("echo"):
        return bytes(body.data), "application/octet-stream"
    with up._lock:
        text = json.dumps(rec, indent=1)
    return (text + "\n").encode(), "application/json"
