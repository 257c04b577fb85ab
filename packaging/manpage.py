#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes trafficcop(1) in roff from the binary's own --help and --version, so the man page
never drifts from the flags.   usage: manpage.py BINARY OUT.1"""
import subprocess
import sys


def roff(text):
    lines = []
    for line in text.splitlines():
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


binary, out = sys.argv[1], sys.argv[2]
help_text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                           check=True).stdout
version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=True).stdout.strip()
page = f""".TH TRAFFICCOP 1 "" "{version}" "User Commands"
.SH NAME
trafficcop \\- a reverse proxy: HTTP/1.1 and HTTP/2, TLS, load balancing, live reload
.SH SYNOPSIS
.B trafficcop
\\-\\-listen ADDR \\-\\-upstream URL
.br
.B trafficcop
\\-c FILE
.br
.B trafficcop check
\\-c FILE
.SH DESCRIPTION
.nf
{roff(help_text)}
.fi
.SH FILES
.TP
.I /etc/trafficcop/trafficcop.yaml
The configuration the packaged service runs (docs/config.md documents every key).
.TP
.I /lib/systemd/system/trafficcop.service
The systemd unit (Type=notify; systemctl reload sends SIGHUP).
.SH SEE ALSO
docs/config.md and docs/operations.md in the source tree.
"""
with open(out, "w") as f:
    f.write(page)
