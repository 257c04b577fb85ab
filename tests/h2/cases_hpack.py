# SPDX-License-Identifier: MIT
"""Conformance cases for HPACK (RFC 7541) as RFC 9113 §4.3 applies it: every decoding error is a
connection error COMPRESSION_ERROR. Modelled on h2spec's hpack/ group, plus positive cases
that exercise the dynamic table, Huffman strings and table size updates."""
from h2util import *  # noqa: F401,F403 - the case vocabulary
from cases_core import E

COMP = E.format("COMPRESSION_ERROR")


def bad_block(ident, section, title, make):
    """A case whose header block is make(target) and must fail to decode."""
    def run(ctx):
        c = ctx.conn()
        c.send(headers(1, make(ctx.t, c)))
        return expect_conn_error(c, COMPRESSION_ERROR)
    case(ident, section, title, COMP)(run)


def req(t):
    return block(t.request())


bad_block("hpack/2.3.3/1", "RFC 7541 §2.3.3", "indexed field beyond static + dynamic table",
          lambda t, c: hp_indexed(100) + req(t))
bad_block("hpack/2.3.3/2", "RFC 7541 §2.3.3", "literal name index beyond the tables",
          lambda t, c: hp_int(100, 6, 0x40) + hp_str("v") + req(t))
bad_block("hpack/4.2/1", "RFC 7541 §4.2", "dynamic table size update after a field",
          lambda t, c: req(t) + hp_size_update(0))
bad_block("hpack/5.1/1", "RFC 7541 §5.1", "integer that overflows 32 bits",
          lambda t, c: b"\xff" + b"\xff" * 10 + b"\x7f" + req(t))
bad_block("hpack/5.2/1", "RFC 7541 §5.2", "Huffman string containing EOS",
          lambda t, c: b"\x00" + hp_str(None, b"\xff\xff\xff\xff") + hp_str("v") + req(t))
bad_block("hpack/5.2/2", "RFC 7541 §5.2", "Huffman padding longer than 7 bits",
          # 'a' is 00011 (5 bits), then 11 bits of 1s
          lambda t, c: b"\x00" + hp_str(None, b"\x1f\xff") + hp_str("v") + req(t))
bad_block("hpack/5.2/3", "RFC 7541 §5.2", "Huffman padding that is not the EOS prefix",
          # 'a' then 000 instead of 111
          lambda t, c: b"\x00" + hp_str(None, b"\x18") + hp_str("v") + req(t))
bad_block("hpack/6.1/1", "RFC 7541 §6.1", "indexed field with index 0",
          lambda t, c: hp_indexed(0) + req(t))
bad_block("hpack/6.3/1", "RFC 7541 §6.3", "size update above SETTINGS_HEADER_TABLE_SIZE",
          lambda t, c: hp_size_update(c.server_settings.get(S_HEADER_TABLE_SIZE, 4096) + 1)
          + req(t))
bad_block("hpack/5.2/5", "RFC 7541 §5.2", "string length past the end of the block",
          lambda t, c: req(t) + b"\x00" + hp_int(200, 7) + b"short")


@case("hpack/4.4/1", "RFC 7541 §4.4, §2.3.3",
      "entry larger than the table empties it; then index 62",
      "first request answered, then " + COMP)
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, req(ctx.t) + hp_lit_indexed("x-big", "b" * 5000)))
    expect_response(c, 1)
    c.send(headers(3, req(ctx.t) + hp_indexed(62)))
    return expect_conn_error(c, COMPRESSION_ERROR)


@case("hpack/6.3/2", "RFC 7541 §4.3, §6.3",
      "size update to 0 evicts entries; then index 62",
      "first request answered, then " + COMP)
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, req(ctx.t) + hp_lit_indexed("x-entry", "one")))
    expect_response(c, 1)
    c.send(headers(3, hp_size_update(0) + hp_size_update(4096) + req(ctx.t) + hp_indexed(62)))
    return expect_conn_error(c, COMPRESSION_ERROR)


@case("hpack/6.2.1/1", "RFC 7541 §6.2.1",
      "field indexed in one block, referenced in the next",
      "both answered")
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, req(ctx.t) + hp_lit_indexed("x-h2test", "indexed")))
    expect_response(c, 1)
    c.send(headers(3, req(ctx.t) + hp_indexed(62)))
    return f":status {expect_response(c, 3).status}"


@case("hpack/6.2.3/1", "RFC 7541 §6.2.3", "never-indexed literal fields", "response")
def _(ctx):
    c = ctx.conn()
    blk = b"".join(b"\x10" + hp_str(n) + hp_str(v)
                   for n, v in ctx.t.request(extra=[("authorization", "secret")]))
    c.send(headers(1, blk))
    return f":status {expect_response(c, 1).status}"


@case("hpack/5.2/4", "RFC 7541 §5.2, §6.2.1",
      "Huffman-coded request from a real encoder, twice",
      "both answered")
def _(ctx):
    c = ctx.conn()
    fields = ctx.t.request(extra=[("user-agent", "h2-conformance"), ("accept", "*/*")])
    c.send(headers(1, c.enc.encode(fields, huffman=True)))
    expect_response(c, 1)
    c.send(headers(3, c.enc.encode(fields, huffman=True)))  # now mostly table references
    return f":status {expect_response(c, 3).status}"


@case("hpack/6.3/3", "RFC 7541 §4.2", "two table size updates at the start of a block",
      "response")
def _(ctx):
    c = ctx.conn()
    c.send(headers(1, hp_size_update(0) + hp_size_update(4096) + req(ctx.t)))
    return f":status {expect_response(c, 1).status}"


@case("hpack/4.2/2", "RFC 7541 §4.2, RFC 9113 §6.5.2", "client SETTINGS_HEADER_TABLE_SIZE = 0",
      "responses start with a table size update to 0 and use no dynamic entry")
def _(ctx):
    c = ctx.conn([(S_HEADER_TABLE_SIZE, 0)])
    c.dec.max_allowed_table_size = 0  # a larger size update or a dynamic entry fails to decode
    for sid in (1, 3):
        c.request(sid, extra=[("x-repeat", "same value twice")])
        expect_response(c, sid)
    if c.dec.header_table.maxsize != 0:
        raise Fail(f"no table size update: the decoder table is {c.dec.header_table.maxsize}")
    return "both responses decoded with a 0-octet table"
