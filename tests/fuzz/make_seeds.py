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
