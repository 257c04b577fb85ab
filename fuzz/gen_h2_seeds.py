# SPDX-License-Identifier: MIT
# Writes the HTTP/2 seed corpora (fuzz/corpus/h2_server, fuzz/corpus/h2_client) with
# python3-hyperframe and python3-hpack. Run from fuzz/: /usr/bin/python3 gen_h2_seeds.py
# h2_server seeds are what a client sends after the preface; h2_client seeds are a flag byte
# (bit 0: POST) and what a server sends after its (harness-made) empty SETTINGS.
import os, sys
from hyperframe.frame import *
from hpack import Encoder
def enc(h):
    return Encoder().encode(h)
def fr(*frames): return b''.join(f.serialize() for f in frames)
def hdr(sid, h, flags=('END_HEADERS',)):
    f = HeadersFrame(sid); f.data = enc(h); f.flags = set(flags); return f
def data(sid, b, end=True):
    f = DataFrame(sid); f.data = b
    if end: f.flags.add('END_STREAM')
    return f
def settings(ack=False, kw=None):
    f = SettingsFrame(0); 
    if ack: f.flags.add('ACK')
    else: f.settings = kw or {}
    return f
srv = {}
get = [(':method','GET'),(':scheme','http'),(':path','/a/../b?x=1'),(':authority','fuzz.example')]
srv['get'] = fr(settings(), hdr(1, get, ('END_HEADERS','END_STREAM')), settings(ack=True))
srv['post_trailers'] = fr(settings({SettingsFrame.INITIAL_WINDOW_SIZE: 65535}),
    hdr(1, [(':method','POST'),(':scheme','http'),(':path','/100'),(':authority','a'),('content-length','5'),('te','trailers')]),
    data(1, b'hello', end=False), hdr(1, [('x-trailer','1')], ('END_HEADERS','END_STREAM')))
cont = ContinuationFrame(1); h = enc(get + [('x-big','y'*100)]); 
h1 = HeadersFrame(1); h1.data = h[:20]; h1.flags=set(['END_STREAM'])
cont.data = h[20:]; cont.flags = set(['END_HEADERS'])
srv['continuation'] = fr(settings(), h1, cont)
p = PingFrame(0); p.opaque_data=b'12345678'
w = WindowUpdateFrame(0); w.window_increment = 1000
r = RstStreamFrame(3); r.error_code = 8
pr = PriorityFrame(5); pr.depends_on = 1; pr.stream_weight = 16
g = GoAwayFrame(0); g.last_stream_id = 0; g.error_code = 0
srv['control'] = fr(settings(), p, w, hdr(3, get, ('END_HEADERS',)), r, pr, hdr(5, [(':method','CONNECT'),(':authority','h:443')]), g)
srv['many_streams'] = fr(settings(), *[hdr(2*i+1, [(':method','GET'),(':scheme','http'),(':path','/%d' % i),('host','h'),('cookie','a=1'),('cookie','b=2')], ('END_HEADERS','END_STREAM')) for i in range(5)])
srv['bad_host'] = fr(settings(), hdr(1, [(':method','GET'),(':scheme','http'),(':path','/x'),(':authority','a b'),('x_under','1')], ('END_HEADERS','END_STREAM')))
srv['padded'] = fr(settings(), hdr(1, [(':method','PUT'),(':scheme','https'),(':path','*'),(':authority','[::1]:80')]), data(1, b'x'*300, end=True))

cli = {}
# server side frames after the harness's SETTINGS; first byte: bit 0 = POST
ok = [(':status','200'),('content-type','text/plain'),('content-length','5')]
cli['ok'] = b'\0' + fr(settings(ack=True), hdr(1, ok), data(1, b'hello'))
cli['post_ok'] = b'\1' + fr(settings(ack=True), hdr(1, ok), data(1, b'hello'))
cli['interim_trailers'] = b'\0' + fr(settings(ack=True), hdr(1, [(':status','103'),('link','</s>')]), hdr(1, [(':status','200'),('grpc-encoding','x')]), data(1, b'abc', end=False), hdr(1, [('grpc-status','0')], ('END_HEADERS','END_STREAM')))
r1 = RstStreamFrame(1); r1.error_code = 7
cli['refused'] = b'\0' + fr(settings(ack=True), r1)
g1 = GoAwayFrame(0); g1.last_stream_id=0; g1.error_code=0
cli['goaway'] = b'\1' + fr(settings(ack=True), g1)
cli['no_content'] = b'\0' + fr(settings({SettingsFrame.MAX_CONCURRENT_STREAMS: 1, SettingsFrame.INITIAL_WINDOW_SIZE: 1}), settings(ack=True), hdr(1, [(':status','204')], ('END_HEADERS','END_STREAM')))
cli['bad_status'] = b'\0' + fr(settings(ack=True), hdr(1, [(':status','2000'),('connection','x')], ('END_HEADERS','END_STREAM')))
cli['cl_mismatch'] = b'\0' + fr(settings(ack=True), hdr(1, ok), data(1, b'hello world'))
pu = PushPromiseFrame(1); pu.promised_stream_id = 2; pu.data = enc([(':method','GET'),(':path','/p'),(':scheme','http'),(':authority','a')]); pu.flags=set(['END_HEADERS'])
w1 = WindowUpdateFrame(1); w1.window_increment = 100
cli['push_window'] = b'\1' + fr(settings(ack=True), w1, pu, hdr(1, ok), data(1, b'hel', end=False), data(1, b'lo'))
for d, m in (('corpus/h2_server', srv), ('corpus/h2_client', cli)):
    for k, v in m.items():
        open(os.path.join(d, k), 'wb').write(v)
