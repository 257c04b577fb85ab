#!/usr/bin/env python3
"""A tiny HTTP/1.1 client for bench/callgrind.sh: N GET requests, one after the other, on one
keep-alive connection. Exits non-zero unless every response is a 200.

  ka_client.py PORT PATH N
"""
import socket
import sys


def main():
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: ka_client\r\n\r\n".encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    for i in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"ka_client: connection closed after {i} responses")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            sys.exit(f"ka_client: response {i}: {lines[0]}")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                sys.exit("ka_client: chunked responses are not supported")
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"ka_client: connection closed in body {i}")
            buf += chunk
        buf = buf[length:]
    s.close()
    print(n)


if __name__ == "__main__":
    main()
