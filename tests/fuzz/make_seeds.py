#!/usr/bin/python3
"""Writes the seed corpora of the fuzz_codec_* targets: a dozen or so valid packets each, as
binary files in tests/fuzz/corpus/codec_<name>/. Run from anywhere; rewrites the files."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def vbi(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def pkt(b0, body):
    return bytes([b0]) + vbi(len(body)) + body


def props(*items):
    body = b"".join(items)
    return vbi(len(body)) + body


def p_u8(i, v):
    return bytes([i, v])


def p_u16(i, v):
    return bytes([i]) + struct.pack(">H", v)


def p_u32(i, v):
    return bytes([i]) + struct.pack(">I", v)


def p_str(i, v):
    return bytes([i]) + s(v)


def p_user(k, v):
    return b"\x26" + s(k) + s(v)


def connect(level, flags=0x02, pr=b"", cid="client", will=None, user=None, pw=None):
    name = "MQIsdp" if level == 3 else "MQTT"
    body = s(name) + bytes([level])
    if will:
        flags |= 0x04 | (will[2] << 3)
    if user is not None:
        flags |= 0x80
    if pw is not None:
        flags |= 0x40
    body += bytes([flags]) + struct.pack(">H", 60)
    if level == 5:
        body += props(*pr) if isinstance(pr, tuple) else props(pr)
    body += s(cid)
    if will:
        if level == 5:
            body += props(p_u32(0x18, 5), p_u8(0x01, 1))
        body += s(will[0]) + s(will[1])
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body)


def seeds(level):
    v5 = level == 5
    out = []
    out.append(connect(level))
    out.append(connect(level, will=("will/topic", b"bye", 1), user="u", pw=b"p"))
    if v5:
        out.append(connect(5, pr=(p_u32(0x11, 3600), p_u16(0x21, 20), p_u32(0x27, 65536),
                                  p_u16(0x22, 10), p_u8(0x17, 1), p_user("k", "v"),
                                  p_str(0x15, "SCRAM"), p_str(0x16, b"\x01"))))
    pr0 = props() if v5 else b""
    out.append(pkt(0x20, b"\x00\x00" + pr0))
    if v5:
        out.append(pkt(0x20, b"\x01\x00" + props(p_u16(0x21, 10), p_u8(0x24, 1),
                                                p_str(0x12, "auto"), p_u16(0x13, 30))))
    out.append(pkt(0x30, s("a/b") + pr0 + b"hello"))
    out.append(pkt(0x33, s("sensors/x") + b"\x00\x07" + pr0 + b"x" * 40))
    out.append(pkt(0x3C, s("q2") + b"\x12\x34" + pr0))
    if v5:
        out.append(pkt(0x32, s("") + b"\x00\x01" + props(p_u16(0x23, 1), p_u8(0x01, 1),
                                                       p_str(0x03, "text/plain"),
                                                       p_str(0x08, "reply"),
                                                       p_str(0x09, b"c"), b"\x0b\x05",
                                                       b"\x0b\x80\x01", p_user("a", "b"),
                                                       p_u32(0x02, 60)) + b"payload"))
    for t in (0x40, 0x50, 0x62, 0x70):
        out.append(pkt(t, b"\x00\x05"))
    if v5:
        out.append(pkt(0x40, b"\x00\x05\x10"))
        out.append(pkt(0x50, b"\x00\x05\x80" + props(p_str(0x1F, "no"), p_user("x", "y"))))
    opts = (0x00, 0x01, 0x02) if not v5 else (0x00, 0x15, 0x2E)
    out.append(pkt(0x82, b"\x00\x0a" + (props(b"\x0b\x07") if v5 else b"") +
                   s("a/+/c") + bytes([opts[0]]) + s("#") + bytes([opts[1]]) +
                   s("$share/g/x") + bytes([opts[2] & 0x3B])))
    out.append(pkt(0x90, b"\x00\x0a" + pr0 + b"\x00\x01\x80"))
    out.append(pkt(0xA2, b"\x00\x0b" + pr0 + s("a/+") + s("#")))
    out.append(pkt(0xB0, b"\x00\x0b" + (props() + b"\x00\x11" if v5 else b"")))
    out.append(pkt(0xC0, b""))
    out.append(pkt(0xD0, b""))
    out.append(pkt(0xE0, b""))
    if v5:
        out.append(pkt(0xE0, b"\x04" + props(p_u32(0x11, 0), p_str(0x1F, "bye"))))
        out.append(pkt(0xF0, b"\x18" + props(p_str(0x15, "SCRAM"), p_str(0x16, b"d"))))
    return out


def write(name, packets):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for i, p in enumerate(packets):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(p)


write("codec_v31", seeds(3))
write("codec_v311", seeds(4))
write("codec_v5", seeds(5))
write("codec_connect", [connect(3), connect(4), connect(5),
                        connect(4, will=("w", b"x", 2), user="user", pw=b"pw"),
                        connect(3, will=("w/t", b"", 0), user="u"),
                        connect(5, will=("w", b"x", 1), user="u", pw=b"p",
                                pr=(p_u32(0x11, 10), p_u16(0x21, 5), p_user("k", "v"))),
                        connect(5, flags=0x00, cid=""),
                        connect(5, pw=b"only-password"),
                        connect(4, cid="\u00e9\u4e2d\U0001f600"),
                        connect(5, pr=(p_str(0x15, "M"), p_str(0x16, b"D"), p_u8(0x19, 1))),
                        connect(4, flags=0x00, cid="x" * 200),
                        connect(3, cid="a" * 23)])


def script(setup, *ops):
    """A fuzz_server_mqtt input: a set-up byte, then (client, bytes) writes and hang-ups
    (client | 0x80, None). Longer writes are split into 255-byte pieces."""
    out = bytearray([setup])
    for k, data in ops:
        if data is None:
            out.append(0x80 | k)
            continue
        for i in range(0, len(data), 255):
            piece = data[i:i + 255]
            out += bytes([k, len(piece)]) + piece
    return bytes(out)


def server_seeds():
    v = lambda setup, k: 5 if (setup >> k) & 1 else 4
    out = []
    for setup in (0x00, 0x07, 0x05, 0x0F, 0x08):
        p = lambda k: props() if v(setup, k) == 5 else b""
        sub = lambda k, pid, *filters: pkt(0x82, struct.pack(">H", pid) + p(k) +
                                           b"".join(s(f) + bytes([q]) for f, q in filters))
        pub = lambda k, b0, topic, pid, payload: pkt(
            b0, s(topic) + (struct.pack(">H", pid) if b0 & 0x06 else b"") + p(k) + payload)
        out.append(script(setup,
                          (1, sub(1, 1, ("a/+", 2), ("#", 1))),
                          (0, pub(0, 0x30, "a/b", 0, b"zero")),
                          (0, pub(0, 0x32, "a/b", 7, b"one")),
                          (0, pub(0, 0x34, "a/b", 8, b"two")),
                          (0, pkt(0x62, b"\x00\x08")),
                          (1, pkt(0x40, b"\x00\x01")),
                          (1, pkt(0x50, b"\x00\x02")),
                          (1, pkt(0x62, b"\x00\x02")),
                          (1, pkt(0x70, b"\x00\x02")),
                          (2, pkt(0xC0, b"")),
                          (2, pkt(0xE0, b""))))
        out.append(script(setup,
                          (0, pub(0, 0x31, "r/x", 0, b"kept")),
                          (0, pub(0, 0x33, "r/y", 3, b"kept2")),
                          (2, sub(2, 2, ("r/#", 1))),
                          (2, pkt(0xA2, b"\x00\x03" + p(2) + s("r/#"))),
                          (0, pub(0, 0x31, "r/x", 0, b"")),
                          (1, sub(1, 4, ("$share/g/s/+", 1))),
                          (2, sub(2, 5, ("$share/g/s/+", 0))),
                          (0, pub(0, 0x32, "s/1", 9, b"shared")),
                          (0, pub(0, 0x32, "s/2", 10, b"shared")),
                          (1, None),
                          (0, pub(0, 0x30, "s/3", 0, b"after"))))
        out.append(script(setup,
                          (1, sub(1, 1, ("big/#", 1))),
                          (0, pub(0, 0x32, "big/" + "l/" * 40 + "x", 11, b"p" * 600)),
                          (0, pub(0, 0x30, "big/1", 0, b"q" * 100)),
                          (2, connect(v(setup, 2), cid="c1")),
                          (0, None)))
    # MQTT 5.0 only: topic aliases, flow control, AUTH and DISCONNECT with properties.
    out.append(script(0x07,
                      (1, pkt(0x82, b"\x00\x01" + props(b"\x0b\x05") + s("t/#") + b"\x16")),
                      (0, pkt(0x32, s("t/a") + b"\x00\x01" + props(p_u16(0x23, 1)) + b"x")),
                      (0, pkt(0x32, s("") + b"\x00\x02" + props(p_u16(0x23, 1)) + b"y")),
                      (0, pkt(0x30, s("t/b") + props(p_u32(0x02, 1), p_str(0x08, "t/r"),
                                                      p_user("k", "v")) + b"z")),
                      (2, pkt(0xF0, b"\x19" + props(p_str(0x15, "SCRAM-SHA-256")))),
                      (0, pkt(0xE0, b"\x04" + props(p_u32(0x11, 0)))),
                      (1, pkt(0xE0, b"\x00\x00"))))
    return out


write("server_mqtt", server_seeds())


def tls_script(setup, *ops):
    """A fuzz_server_tls input: a set-up byte, then (client, kind, bytes-or-length)."""
    out = bytearray([setup])
    for k, kind, arg in ops:
        if isinstance(arg, int):
            out += bytes([k | kind << 1, arg])
            continue
        for i in range(0, len(arg), 255):
            piece = arg[i:i + 255]
            out += bytes([k | kind << 1, len(piece)]) + piece
    return bytes(out)


def client_hello():
    """A real ClientHello, as Python's ssl module writes it (what a TLS client sends first)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["mqtt"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def tls_seeds():
    TLS, RAW, CLOSE, HANGUP, KEYUPDATE, BIG = range(6)
    out = []
    for setup in (0x00, 0x03, 0x43, 0x04, 0x06, 0x48, 0x20, 0x80, 0xA2):
        v5 = setup & 0x80
        pr = props() if v5 else b""
        out.append(tls_script(setup,
                              (0, TLS, pkt(0x32, s("a/b") + b"\x00\x07" + pr + b"hello")),
                              (1, TLS, pkt(0x40, b"\x00\x01")),
                              (0, BIG, 200),
                              (0, KEYUPDATE, 0),
                              (0, TLS, pkt(0xC0, b"")),
                              (1, TLS, pkt(0x34, s("q") + b"\x00\x02" + pr + b"2")),
                              (1, TLS, pkt(0x62, b"\x00\x02")),
                              (1, RAW, b"\x17\x03\x03\x00\x10" + b"\x00" * 16),
                              (0, CLOSE, 0),
                              (0, HANGUP, 0)))
    hello = client_hello()
    out.append(tls_script(0x10, (0, RAW, hello), (1, BIG, 50), (0, HANGUP, 0)))
    out.append(tls_script(0x10, (0, RAW, connect(4)), (1, TLS, pkt(0xC0, b""))))
    out.append(tls_script(0x10, (0, RAW, b"\x16\x03\x01\xff\xff" + hello[5:]), (0, RAW, hello)))
    out.append(tls_script(0x00, (1, RAW, b"\x15\x03\x03\x00\x02\x02\x28"),
                          (0, TLS, pkt(0xE0, b""))))
    return out


write("server_tls", tls_seeds())


def http_seeds():
    """fuzz_net_http inputs: upgrade requests as browsers and MQTT clients send them, file
    requests, answers to an upgrade, and near misses the parser must refuse."""
    crlf = lambda *lines: ("\r\n".join(lines) + "\r\n\r\n").encode()
    return [
        crlf("GET /mqtt HTTP/1.1", "Host: localhost:8080", "Connection: Upgrade",
             "Pragma: no-cache", "Cache-Control: no-cache",
             "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
             "Upgrade: websocket", "Origin: http://localhost:8080",
             "Sec-WebSocket-Version: 13", "Accept-Encoding: gzip, deflate, br",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
             "Sec-WebSocket-Protocol: mqtt"),
        crlf("GET / HTTP/1.1", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==", "Connection: keep-alive, Upgrade",
             "Upgrade: websocket", "Sec-WebSocket-Protocol: mqttv3.1, mqtt", "Host: h:9001",
             "X-Forwarded-For: 203.0.113.7, 10.0.0.1"),
        crlf("GET /index.html HTTP/1.1", "Host: h", "Connection: keep-alive",
             "Accept: text/html,*/*;q=0.8") + crlf("HEAD /app.js?v=3 HTTP/1.1", "Host: h"),
        crlf("GET /static/a%20b.js?x=%2e%2e HTTP/1.1", "Host: h", "Content-Length: 0"),
        b"GET /dir/ HTTP/1.1\nHost: h\nConnection: close\n\n",
        b"\r\n\nGET / HTTP/1.0\r\n\r\n",
        crlf("GET /mqtt HTTP/1.1", "Host: h", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==", "Sec-WebSocket-Version: 13")
        + b"\x82\x82\x01\x02\x03\x04\xc1\x02",
        crlf("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
             "Sec-WebSocket-Protocol: mqtt"),
        crlf("HTTP/1.1 400 Bad Request", "Content-Type: text/plain; charset=utf-8",
             "Content-Length: 12", "Connection: close") + b"bad request\n",
        b"HTTP/1.0 404\n\n",
        crlf("GET / HTTP/1.1", "Host : h"),
        crlf("GET / HTTP/1.1", "X: a", " folded"),
        crlf("GET /%2e%2e/etc/passwd HTTP/1.1", "Host: h"),
        crlf("GET /a/./b\\c%00 HTTP/1.1", "Host: h"),
        crlf("GET / HTTP/2.0", "Host: h"),
        crlf("GET / HTTP/1.1", "X: a\rb", "Y: \x01"),
        crlf("GET / HTTP/1.1", *["H%d: v" % i for i in range(66)]),
    ]


write("net_http", http_seeds())


WS_KEY = b"\x37\xfa\x21\x3d"


def ws_frame(op, payload=b"", fin=True, key=None, b0=None):
    """A WebSocket frame (RFC 6455 5.2), masked with key when one is given."""
    n = len(payload)
    out = bytearray([b0 if b0 is not None else (0x80 if fin else 0) | op])
    m = 0x80 if key else 0
    if n < 126:
        out.append(m | n)
    elif n <= 0xFFFF:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if key:
        out += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload


def ws_seeds():
    """fuzz_net_ws inputs: a set-up byte (bit 0 server, bit 1 a script of frames to build,
    bits 2-7 how reads are cut), then the stream or the script."""
    BIN, CONT, TEXT, CLOSE, PING, PONG = 2, 0, 1, 8, 9, 10
    out = []
    for setup in (0x01, 0x05, 0x09, 0x0D, 0x1D, 0x41, 0xFD):
        k = WS_KEY
        out.append(bytes([setup]) + ws_frame(BIN, connect(4), key=k)
                   + ws_frame(BIN, pkt(0x82, b"\x00\x01" + s("a/#") + b"\x01"), key=k)
                   + ws_frame(PING, b"hi", key=k)
                   + ws_frame(BIN, pkt(0x30, s("a/b") + b"x" * 300)[:100], fin=False, key=k)
                   + ws_frame(PONG, b"", key=k)
                   + ws_frame(CONT, pkt(0x30, s("a/b") + b"x" * 300)[100:], key=k)
                   + ws_frame(CLOSE, struct.pack(">H", 1000) + b"bye", key=k))
    for setup in (0x00, 0x04, 0x10, 0x3C):
        out.append(bytes([setup]) + ws_frame(BIN, b"\x20\x02\x00\x00")
                   + ws_frame(BIN, pkt(0x30, s("t") + b"p" * 700))
                   + ws_frame(PING) + ws_frame(CLOSE, struct.pack(">H", 1001)))
    # Headers cut short, and errors: each stream's last frame fails.
    out.append(b"\x01" + ws_frame(BIN, b"x" * 200, key=WS_KEY)[:5])
    out.append(b"\x00" + bytes([0x82, 0x7F]) + struct.pack(">Q", 1 << 40) + b"abc")
    out.append(b"\x01" + ws_frame(TEXT, b"{}", key=WS_KEY))
    out.append(b"\x01" + ws_frame(BIN, b"x", b0=0xC2, key=WS_KEY))
    out.append(b"\x01" + ws_frame(BIN, b"unmasked"))
    out.append(b"\x00" + ws_frame(BIN, b"masked", key=WS_KEY))
    out.append(b"\x00" + ws_frame(CONT, b"x"))
    out.append(b"\x00" + ws_frame(BIN, b"a", fin=False) + ws_frame(BIN, b"b"))
    out.append(b"\x00" + ws_frame(PING, b"p", fin=False))
    out.append(b"\x00" + bytes([0x89, 0x7E, 0x00, 0x7E]) + b"p" * 126)
    out.append(b"\x00" + bytes([0x82, 0x7E, 0x00, 0x10]) + b"p" * 16)
    out.append(b"\x00" + ws_frame(CLOSE, b"\x03"))
    out.append(b"\x00" + ws_frame(CLOSE, struct.pack(">H", 1005)))
    out.append(b"\x00" + ws_frame(CLOSE, struct.pack(">H", 1000) + b"\xc0\x80"))
    # Scripts (see build() in fuzz_net_ws.c): data 0..3 (FIN 8, 16-bit 0x10, 64-bit 0x20),
    # Ping 4, Pong 5, Close 6 (code index in the high bits), empty data 7.
    out.append(b"\x03" + b"\x08\x05hello" + b"\x00\x02ab\x04\x01p\x05\x00\x08\x02cd"
               + b"\x16\x03bye")
    out.append(b"\x02" + b"\x18\x01\x00" + b"q" * 256 + b"\x28\x07tail" + b"\x0e")
    out.append(b"\x07" + b"\x00\x03abc\x07\x04\x7dping\x0f\x08\x01z\x26\x00")
    out.append(b"\x0b" + b"\x01\x10" + bytes(range(16)) + b"\x09\x00" * 5 + b"\x00\x01x")
    return out


write("net_ws", ws_seeds())


def sn(t, body=b"", long_form=False):
    """An MQTT-SN 1.2 message (section 5.2): Length (one byte, or 0x01 and two bytes from 256
    on, or always when long_form), MsgType, then the body."""
    n = len(body) + 2
    if n > 255 or long_form:
        return b"\x01" + struct.pack(">H", n + 2) + bytes([t]) + body
    return bytes([n, t]) + body


def sn_encap(ctrl, node, msg):
    """A forwarder encapsulation (section 5.5): Length of the header, 0xFE, Ctrl, node id."""
    return bytes([3 + len(node), 0xFE, ctrl]) + node + msg


def sn_seeds():
    """fuzz_codec_sn inputs: every message type, both length forms, encapsulations, and
    near misses the decoder must refuse."""
    H = lambda v: struct.pack(">H", v)
    msgs = [
        sn(0x00, b"\x05" + H(900)),                          # ADVERTISE
        sn(0x01, b"\x01"),                                   # SEARCHGW
        sn(0x02, b"\x05"),                                   # GWINFO from a gateway
        sn(0x02, b"\x05\x0a\x00\x00\x01\x07\x5b"),           # GWINFO with an address
        sn(0x04, b"\x04\x01" + H(60) + b"sn-client"),        # CONNECT clean
        sn(0x04, b"\x0c\x01" + H(0) + b"c" * 23),            # CONNECT will
        sn(0x05, b"\x00"),                                   # CONNACK
        sn(0x06), sn(0x07, b"\x30will/topic"), sn(0x07),     # WILLTOPICREQ, WILLTOPIC (empty)
        sn(0x08), sn(0x09, b"gone"), sn(0x09),               # WILLMSGREQ, WILLMSG
        sn(0x0A, H(0) + H(1) + b"sensors/temp"),             # REGISTER
        sn(0x0B, H(1) + H(1) + b"\x00"),                     # REGACK
        sn(0x0C, b"\x00" + H(1) + H(0) + b"21.5"),           # PUBLISH QoS 0
        sn(0x0C, b"\x20" + H(1) + H(2) + b"x" * 40),         # PUBLISH QoS 1
        sn(0x0C, b"\xd1" + H(5) + H(3) + b"dup retain"),     # PUBLISH QoS 2 predefined
        sn(0x0C, b"\x62ab" + H(0) + b"qos -1 short"),        # PUBLISH QoS -1 short name
        sn(0x0C, b"\x20" + H(1) + H(4) + b"p" * 300),        # PUBLISH, three-byte length
        sn(0x0D, H(1) + H(2) + b"\x00"),                     # PUBACK
        sn(0x0E, H(3)), sn(0x0F, H(3)), sn(0x10, H(3)),      # PUBCOMP, PUBREC, PUBREL
        sn(0x12, b"\x40" + H(5) + b"sensors/+/temp"),        # SUBSCRIBE by name
        sn(0x12, b"\x21" + H(6) + H(7)),                     # SUBSCRIBE predefined
        sn(0x12, b"\x02" + H(8) + b"ab"),                    # SUBSCRIBE short name
        sn(0x13, b"\x20" + H(1) + H(5) + b"\x00"),           # SUBACK
        sn(0x14, b"\x00" + H(9) + b"sensors/#"),             # UNSUBSCRIBE by name
        sn(0x14, b"\x01" + H(9) + H(7)),                     # UNSUBSCRIBE predefined
        sn(0x15, H(9)),                                      # UNSUBACK
        sn(0x16), sn(0x16, b"sn-client"), sn(0x17),          # PINGREQ (+ client id), PINGRESP
        sn(0x18), sn(0x18, H(300)),                          # DISCONNECT (+ duration)
        sn(0x1A, b"\x10new/will"), sn(0x1A),                 # WILLTOPICUPD
        sn(0x1B, b"\x00"), sn(0x1C, b"new"), sn(0x1D, b"\x00"),
        sn(0x0E, H(3), long_form=True),                      # a short message, long form
    ]
    out = list(msgs)
    out.append(sn_encap(0x01, b"\xaa\xbb", sn(0x04, b"\x04\x01" + H(30) + b"node")))
    out.append(sn_encap(0x00, b"", sn(0x16)))
    out.append(sn_encap(0x03, bytes(range(8)), sn(0x0C, b"\x20" + H(1) + H(2) + b"data")))
    # refused: reserved topic-id type, QoS -1 in SUBSCRIBE, protocol 2, unknown type, a
    # length past the datagram, bytes after it, a lone will flags byte
    out.append(sn(0x0C, b"\x03" + H(1) + H(2)))
    out.append(sn(0x12, b"\x60" + H(1) + b"a"))
    out.append(sn(0x04, b"\x04\x02" + H(60) + b"c"))
    out.append(sn(0x11))
    out.append(sn(0x0E, H(3))[:-1])
    out.append(sn(0x0E, H(3)) + b"\x00")
    out.append(sn(0x07, b"\x20"))
    return out


write("codec_sn", sn_seeds())
