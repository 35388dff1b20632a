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
