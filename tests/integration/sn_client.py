"""MQTT-SN 1.2 for the integration tests, on the socket module alone.

- A codec: every message of the spec (section 5.4) both ways, in the one-byte and the three-byte
  length form (5.2.1), and the forwarder encapsulation (5.5). `decode(datagram)` -> Packet;
  `Packet.encode()` -> bytes; one builder per type (`publish(...)`, `subscribe(...)`, ...).
- SNClient: a blocking client that waits for the replies it needs, answers what the gateway
  sends on its own (REGISTER, PUBLISH, PUBREL), queues what nobody waits for yet, and optionally
  retransmits its own requests (spec 6.13) through a lossy link.
- SharedSocket: one UDP address behind which several wireless nodes (forwarder encapsulation)
  are separate clients.
- LossyRelay: a UDP relay that drops and reorders datagrams both ways.

Every wait has a timeout. Nothing here sleeps a fixed time.

Usage:
    c = SNClient("127.0.0.1", port, "cid", predefined={1: "sensors/predef"})
    assert c.connect() == RC_ACCEPTED
    tid, rc = c.register("a/b")
    c.publish(b"x", topic="a/b", qos=1)
    granted, tid, rc = c.subscribe("a/#", qos=1)
    m = c.recv_publish(3)
"""

import collections
import heapq
import random
import selectors
import socket
import struct
import threading
import time

# ---- constants ---------------------------------------------------------------------------------

ADVERTISE, SEARCHGW, GWINFO = 0x00, 0x01, 0x02
CONNECT, CONNACK = 0x04, 0x05
WILLTOPICREQ, WILLTOPIC, WILLMSGREQ, WILLMSG = 0x06, 0x07, 0x08, 0x09
REGISTER, REGACK = 0x0A, 0x0B
PUBLISH, PUBACK, PUBCOMP, PUBREC, PUBREL = 0x0C, 0x0D, 0x0E, 0x0F, 0x10
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x12, 0x13, 0x14, 0x15
PINGREQ, PINGRESP, DISCONNECT = 0x16, 0x17, 0x18
WILLTOPICUPD, WILLTOPICRESP, WILLMSGUPD, WILLMSGRESP = 0x1A, 0x1B, 0x1C, 0x1D
ENCAPSULATED = 0xFE

NAMES = {ADVERTISE: "ADVERTISE", SEARCHGW: "SEARCHGW", GWINFO: "GWINFO", CONNECT: "CONNECT",
	CONNACK: "CONNACK", WILLTOPICREQ: "WILLTOPICREQ", WILLTOPIC: "WILLTOPIC",
	WILLMSGREQ: "WILLMSGREQ", WILLMSG: "WILLMSG", REGISTER: "REGISTER", REGACK: "REGACK",
	PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBCOMP: "PUBCOMP", PUBREC: "PUBREC", PUBREL: "PUBREL",
	SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
	PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT",
	WILLTOPICUPD: "WILLTOPICUPD", WILLTOPICRESP: "WILLTOPICRESP", WILLMSGUPD: "WILLMSGUPD",
	WILLMSGRESP: "WILLMSGRESP", ENCAPSULATED: "ENCAPSULATED"}

# Flags (5.3.4).
DUP, QOS_MASK, RETAIN, WILL, CLEAN, TID_MASK = 0x80, 0x60, 0x10, 0x08, 0x04, 0x03
# TopicIdType: in PUBLISH a registered id; in SUBSCRIBE/UNSUBSCRIBE a topic name.
TID_NORMAL, TID_PREDEFINED, TID_SHORT = 0, 1, 2
TID_NAMES = {"normal": TID_NORMAL, "name": TID_NORMAL, "predefined": TID_PREDEFINED,
	"short": TID_SHORT}
# ReturnCode (5.3.10).
RC_ACCEPTED, RC_CONGESTION, RC_INVALID_TOPIC, RC_NOT_SUPPORTED = 0x00, 0x01, 0x02, 0x03
PROTOCOL_ID = 0x01

MAX_MESSAGE = 65535


class SNError(ValueError):
	"""A datagram that is not a well-formed MQTT-SN message."""


def qos_flags(qos):
	"""Flags bits for QoS 0, 1, 2 or -1 (0b11)."""
	if qos not in (-1, 0, 1, 2):
		raise ValueError("QoS %r" % (qos,))
	return (3 if qos == -1 else qos) << 5


def flags_qos(flags):
	q = (flags & QOS_MASK) >> 5
	return -1 if q == 3 else q


def tid_type(t):
	"""'normal'/'name'/'predefined'/'short' or 0/1/2 -> 0/1/2."""
	if isinstance(t, str):
		return TID_NAMES[t]
	if t not in (0, 1, 2, 3):
		raise ValueError("topic id type %r" % (t,))
	return t


def short_id(name):
	"""A two-character short topic name as the 16-bit TopicId field carries it."""
	b = name.encode("utf-8") if isinstance(name, str) else bytes(name)
	if len(b) != 2:
		raise ValueError("a short topic name has two bytes, not %r" % (name,))
	return (b[0] << 8) | b[1]


def short_name(topic_id):
	return bytes([topic_id >> 8, topic_id & 0xFF]).decode("utf-8", "replace")


def _b(s):
	if s is None:
		return b""
	return s.encode("utf-8") if isinstance(s, str) else bytes(s)


# ---- the codec ---------------------------------------------------------------------------------

# Each type: its fixed fields in wire order, then what its variable part is.
#   none: nothing; data: bytes to the end (may be empty); subtopic: a name (TopicIdType normal)
#   or a two-byte id; willtopic: flags and a topic, or nothing at all; duration: two bytes or
#   nothing (DISCONNECT).
_LAYOUT = {
	ADVERTISE: (("gw_id", "duration"), "none"),
	SEARCHGW: (("radius",), "none"),
	GWINFO: (("gw_id",), "data"),
	CONNECT: (("flags", "protocol", "duration"), "data"),
	CONNACK: (("rc",), "none"),
	WILLTOPICREQ: ((), "none"),
	WILLTOPIC: ((), "willtopic"),
	WILLMSGREQ: ((), "none"),
	WILLMSG: ((), "data"),
	REGISTER: (("topic_id", "msg_id"), "data"),
	REGACK: (("topic_id", "msg_id", "rc"), "none"),
	PUBLISH: (("flags", "topic_id", "msg_id"), "data"),
	PUBACK: (("topic_id", "msg_id", "rc"), "none"),
	PUBCOMP: (("msg_id",), "none"),
	PUBREC: (("msg_id",), "none"),
	PUBREL: (("msg_id",), "none"),
	SUBSCRIBE: (("flags", "msg_id"), "subtopic"),
	SUBACK: (("flags", "topic_id", "msg_id", "rc"), "none"),
	UNSUBSCRIBE: (("flags", "msg_id"), "subtopic"),
	UNSUBACK: (("msg_id",), "none"),
	PINGREQ: ((), "data"),
	PINGRESP: ((), "none"),
	DISCONNECT: ((), "duration"),
	WILLTOPICUPD: ((), "willtopic"),
	WILLTOPICRESP: (("rc",), "none"),
	WILLMSGUPD: ((), "data"),
	WILLMSGRESP: (("rc",), "none"),
}
_TWO_BYTES = ("duration", "topic_id", "msg_id")


class Packet:
	"""One MQTT-SN message. Fields a type does not have stay at their defaults.

	data is the variable part: the client id (CONNECT, PINGREQ), a topic name (REGISTER,
	WILLTOPIC, WILLTOPICUPD, SUBSCRIBE/UNSUBSCRIBE with TopicIdType normal), the payload
	(PUBLISH), the will message (WILLMSG, WILLMSGUPD), the gateway address (GWINFO). SUBSCRIBE and
	UNSUBSCRIBE with a predefined id or a short name carry it in topic_id. DISCONNECT's duration
	is None when absent. A WILLTOPIC/WILLTOPICUPD with empty data is the empty (2-byte) form.
	long_form: encode with the three-byte length even when one byte would do (decode sets it).
	"""

	FIELDS = ("type", "flags", "rc", "gw_id", "radius", "protocol", "duration", "topic_id",
		"msg_id", "data", "long_form")

	def __init__(self, type, flags=0, rc=0, gw_id=0, radius=0, protocol=PROTOCOL_ID,
			duration=None, topic_id=0, msg_id=0, data=b"", long_form=False):
		if type not in _LAYOUT:
			raise ValueError("no MQTT-SN message type 0x%02x" % type)
		self.type = type
		self.flags = flags
		self.rc = rc
		self.gw_id = gw_id
		self.radius = radius
		self.protocol = protocol
		self.duration = duration
		self.topic_id = topic_id
		self.msg_id = msg_id
		self.data = _b(data)
		self.long_form = long_form

	# flags, named
	@property
	def name(self):
		return NAMES.get(self.type, "0x%02x" % self.type)

	@property
	def dup(self):
		return bool(self.flags & DUP)

	@property
	def qos(self):
		return flags_qos(self.flags)

	@property
	def retain(self):
		return bool(self.flags & RETAIN)

	@property
	def will(self):
		return bool(self.flags & WILL)

	@property
	def clean(self):
		return bool(self.flags & CLEAN)

	@property
	def tid_type(self):
		return self.flags & TID_MASK

	@property
	def empty_will(self):
		return self.type in (WILLTOPIC, WILLTOPICUPD) and not self.data

	@property
	def topic(self):
		"""The topic name in data, or the short name in topic_id, as text (or None)."""
		if self.type in (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) and self.tid_type == TID_SHORT:
			return short_name(self.topic_id)
		if self.type in (REGISTER, WILLTOPIC, WILLTOPICUPD, SUBSCRIBE, UNSUBSCRIBE):
			return self.data.decode("utf-8", "replace")
		return None

	@property
	def payload(self):
		return self.data

	def fields(self):
		return {k: getattr(self, k) for k in self.FIELDS}

	def __eq__(self, other):
		if not isinstance(other, Packet):
			return NotImplemented
		a, b = self.fields(), other.fields()
		a.pop("long_form")
		b.pop("long_form")
		return a == b

	def __repr__(self):
		parts = [self.name]
		fixed, var = _LAYOUT[self.type]
		for f in fixed:
			v = getattr(self, f)
			parts.append("%s=%s" % (f, ("0x%02x" % v) if f == "flags" else v))
		if var == "duration" and self.duration is not None:
			parts.append("duration=%d" % self.duration)
		if self.data:
			parts.append("data=%r" % (self.data[:64],))
		return "<%s>" % " ".join(parts)

	def body(self):
		fixed, var = _LAYOUT[self.type]
		out = bytearray([self.type])
		for f in fixed:
			v = getattr(self, f)
			if v is None:
				v = 0
			out += struct.pack("!H", v) if f in _TWO_BYTES else bytes([v])
		if var == "data":
			out += self.data
		elif var == "subtopic":
			if self.flags & TID_MASK == TID_NORMAL:
				out += self.data
			else:
				out += struct.pack("!H", self.topic_id)
		elif var == "willtopic":
			if self.data:
				out += bytes([self.flags]) + self.data
		elif var == "duration":
			if self.duration is not None:
				out += struct.pack("!H", self.duration)
		return bytes(out)

	def encode(self, long_form=None):
		"""The datagram: the one-byte length form up to 255 bytes, else (or when long_form) the
		three-byte form (0x01, then the total length, most significant byte first)."""
		return frame(self.body(), self.long_form if long_form is None else long_form)


def frame(body, long_form=False):
	"""Puts the length field before a type byte and the rest (5.2.1: the length counts itself)."""
	if len(body) + 1 <= 255 and not long_form:
		return bytes([len(body) + 1]) + body
	n = len(body) + 3
	if n > MAX_MESSAGE:
		raise ValueError("message of %d bytes is over %d" % (n, MAX_MESSAGE))
	return b"\x01" + struct.pack("!H", n) + body


def decode(buf):
	"""The one message that fills the datagram buf -> Packet. Raises SNError when it is
	malformed (the length field disagrees with the datagram, a fixed field is missing, bytes follow
	a message that has no variable part, an unknown type). An encapsulated datagram is not
	decoded here: see unwrap()."""
	buf = bytes(buf)
	if len(buf) < 2:
		raise SNError("datagram of %d bytes is shorter than a header" % len(buf))
	if buf[0] == 0x01:
		if len(buf) < 4:
			raise SNError("three-byte length form cut short")
		total, hdr, long_form = struct.unpack("!H", buf[1:3])[0], 3, True
	else:
		total, hdr, long_form = buf[0], 1, False
	if total != len(buf):
		raise SNError("length field %d, datagram %d bytes" % (total, len(buf)))
	if total < hdr + 1:
		raise SNError("length %d leaves no type" % total)
	t = buf[hdr]
	if t == ENCAPSULATED:
		raise SNError("an encapsulated message: unwrap() it first")
	if t not in _LAYOUT:
		raise SNError("unknown message type 0x%02x" % t)
	fixed, var = _LAYOUT[t]
	p = Packet(t, long_form=long_form)
	i = hdr + 1
	for f in fixed:
		n = 2 if f in _TWO_BYTES else 1
		if i + n > len(buf):
			raise SNError("%s cut short at %s" % (NAMES[t], f))
		setattr(p, f, struct.unpack("!H", buf[i:i + 2])[0] if n == 2 else buf[i])
		i += n
	rest = buf[i:]
	if var == "none":
		if rest:
			raise SNError("%d bytes after %s" % (len(rest), NAMES[t]))
	elif var == "data":
		p.data = rest
	elif var == "subtopic":
		if p.flags & TID_MASK == TID_NORMAL:
			p.data = rest
		elif len(rest) == 2:
			p.topic_id = struct.unpack("!H", rest)[0]
		else:
			raise SNError("%s topic id of %d bytes" % (NAMES[t], len(rest)))
	elif var == "willtopic":
		if rest:
			p.flags, p.data = rest[0], rest[1:]
	elif var == "duration":
		if len(rest) == 2:
			p.duration = struct.unpack("!H", rest)[0]
		elif rest:
			raise SNError("DISCONNECT duration of %d bytes" % len(rest))
	if t in (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) and p.flags & TID_MASK == 3:
		raise SNError("reserved topic id type 0b11")
	if t == CONNECT and p.protocol != PROTOCOL_ID:
		raise SNError("CONNECT protocol id 0x%02x" % p.protocol)
	return p


# ---- the forwarder encapsulation (5.5) ---------------------------------------------------------

def wrap(node_id, inner, ctrl=0):
	"""Length (of this header, itself included), 0xFE, Ctrl, Wireless Node Id, then the message."""
	node_id = bytes(node_id)
	n = 3 + len(node_id)
	if n > 255:
		raise ValueError("wireless node id of %d bytes" % len(node_id))
	if isinstance(inner, Packet):
		inner = inner.encode()
	return bytes([n, ENCAPSULATED, ctrl]) + node_id + bytes(inner)


def is_encapsulated(buf):
	return len(buf) >= 2 and buf[0] != 0x01 and buf[1] == ENCAPSULATED


def unwrap(buf):
	"""An encapsulated datagram -> (ctrl, node_id, inner message bytes). Raises SNError."""
	buf = bytes(buf)
	if not is_encapsulated(buf):
		raise SNError("not an encapsulated message")
	n = buf[0]
	if n < 3 or n > len(buf):
		raise SNError("encapsulation header of %d bytes in a %d-byte datagram" % (n, len(buf)))
	return buf[2], buf[3:n], buf[n:]


# ---- builders, one per type (they return a Packet; .encode() gives the bytes) --------------

def advertise(gw_id, duration):
	return Packet(ADVERTISE, gw_id=gw_id, duration=duration)


def searchgw(radius=0):
	return Packet(SEARCHGW, radius=radius)


def gwinfo(gw_id, address=b""):
	return Packet(GWINFO, gw_id=gw_id, data=address)


def connect(client_id, duration=60, clean=True, will=False, protocol=PROTOCOL_ID):
	flags = (CLEAN if clean else 0) | (WILL if will else 0)
	return Packet(CONNECT, flags=flags, protocol=protocol, duration=duration, data=client_id)


def connack(rc=RC_ACCEPTED):
	return Packet(CONNACK, rc=rc)


def willtopicreq():
	return Packet(WILLTOPICREQ)


def willtopic(topic=None, qos=0, retain=False):
	"""topic None (or empty): the empty WILLTOPIC, no flags and no topic."""
	if not topic:
		return Packet(WILLTOPIC)
	return Packet(WILLTOPIC, flags=qos_flags(qos) | (RETAIN if retain else 0), data=topic)


def willmsgreq():
	return Packet(WILLMSGREQ)


def willmsg(payload):
	return Packet(WILLMSG, data=payload)


def register(topic_id, msg_id, topic):
	return Packet(REGISTER, topic_id=topic_id, msg_id=msg_id, data=topic)


def regack(topic_id, msg_id, rc=RC_ACCEPTED):
	return Packet(REGACK, topic_id=topic_id, msg_id=msg_id, rc=rc)


def publish(topic_id, payload, qos=0, msg_id=0, retain=False, dup=False, tid=TID_NORMAL):
	"""topic_id: an int, or for tid 'short' the two-character name."""
	tid = tid_type(tid)
	if isinstance(topic_id, (str, bytes)):
		topic_id = short_id(topic_id)
	flags = (DUP if dup else 0) | qos_flags(qos) | (RETAIN if retain else 0) | tid
	return Packet(PUBLISH, flags=flags, topic_id=topic_id, msg_id=msg_id, data=payload)


def puback(topic_id, msg_id, rc=RC_ACCEPTED):
	return Packet(PUBACK, topic_id=topic_id, msg_id=msg_id, rc=rc)


def pubrec(msg_id):
	return Packet(PUBREC, msg_id=msg_id)


def pubrel(msg_id):
	return Packet(PUBREL, msg_id=msg_id)


def pubcomp(msg_id):
	return Packet(PUBCOMP, msg_id=msg_id)


def _subtopic(ptype, msg_id, topic, qos_bits, tid, dup):
	tid = tid_type(tid)
	flags = (DUP if dup else 0) | qos_bits | tid
	if tid == TID_NORMAL:
		return Packet(ptype, flags=flags, msg_id=msg_id, data=topic)
	if isinstance(topic, (str, bytes)):
		topic = short_id(topic)
	return Packet(ptype, flags=flags, msg_id=msg_id, topic_id=topic)


def subscribe(msg_id, topic, qos=0, tid=TID_NORMAL, dup=False):
	"""topic: a name (tid normal), a predefined id, or a two-character short name."""
	return _subtopic(SUBSCRIBE, msg_id, topic, qos_flags(qos), tid, dup)


def suback(topic_id, msg_id, rc=RC_ACCEPTED, qos=0):
	return Packet(SUBACK, flags=qos_flags(qos), topic_id=topic_id, msg_id=msg_id, rc=rc)


def unsubscribe(msg_id, topic, tid=TID_NORMAL):
	return _subtopic(UNSUBSCRIBE, msg_id, topic, 0, tid, False)


def unsuback(msg_id):
	return Packet(UNSUBACK, msg_id=msg_id)


def pingreq(client_id=None):
	return Packet(PINGREQ, data=client_id)


def pingresp():
	return Packet(PINGRESP)


def disconnect(duration=None):
	return Packet(DISCONNECT, duration=duration)


def willtopicupd(topic=None, qos=0, retain=False):
	"""topic None (or empty): the empty WILLTOPICUPD, which deletes the will."""
	p = willtopic(topic, qos, retain)
	p.type = WILLTOPICUPD
	return p


def willtopicresp(rc=RC_ACCEPTED):
	return Packet(WILLTOPICRESP, rc=rc)


def willmsgupd(payload):
	return Packet(WILLMSGUPD, data=payload)


def willmsgresp(rc=RC_ACCEPTED):
	return Packet(WILLMSGRESP, rc=rc)


# ---- the client --------------------------------------------------------------------------------

class Message:
	"""A PUBLISH the gateway delivered. topic: the name, resolved from a REGISTER (the gateway's
	or our own), a SUBACK, the client's predefined table, or the short name; None if unknown."""

	__slots__ = ("topic_id", "tid_type", "topic", "payload", "qos", "retain", "dup", "msg_id",
		"seq")

	def __init__(self, topic_id, tid_type, topic, payload, qos, retain, dup, msg_id, seq):
		self.topic_id = topic_id
		self.tid_type = tid_type
		self.topic = topic
		self.payload = payload
		self.qos = qos
		self.retain = retain
		self.dup = dup
		self.msg_id = msg_id
		self.seq = seq

	def __repr__(self):
		return "<Message %r id=%d type=%d qos=%d%s%s %r>" % (self.topic, self.topic_id,
			self.tid_type, self.qos, " retain" if self.retain else "", " dup" if self.dup else "",
			self.payload[:64])


class SharedSocket:
	"""One UDP socket (one source address) for several SNClients, each a wireless node with its
	own node id behind a forwarder: received datagrams go to the client whose node id they
	carry."""

	def __init__(self, host, port, family=socket.AF_INET):
		self.sock = socket.socket(family, socket.SOCK_DGRAM)
		self.sock.connect((host, port))
		self.queues = {}
		self.other = collections.deque(maxlen=10000)  # datagrams for no attached node

	def attach(self, node_id):
		self.queues.setdefault(bytes(node_id), collections.deque())

	def send(self, data):
		self.sock.send(data)

	def recv_for(self, node_id, timeout):
		"""The next datagram (still encapsulated) for node_id, or None after timeout."""
		q = self.queues[bytes(node_id)]
		if q:
			return q.popleft()
		deadline = time.monotonic() + timeout
		while True:
			rem = deadline - time.monotonic()
			if rem <= 0:
				return None
			self.sock.settimeout(max(rem, 0.0005))
			try:
				d = self.sock.recv(65536)
			except socket.timeout:
				return None
			except ConnectionRefusedError:
				continue
			try:
				_, node, _ = unwrap(d)
			except SNError:
				self.other.append(d)
				continue
			if node == bytes(node_id):
				return d
			self.queues.get(node, self.other).append(d)

	def close(self):
		self.sock.close()


class SNClient:
	"""A blocking MQTT-SN 1.2 client for tests.

	node_id: wrap every message in a forwarder encapsulation with this Wireless Node Id and
	unwrap replies (a datagram that is not encapsulated for this node goes to `stray`).
	sock: a SharedSocket to share with other nodes (needs node_id).
	retry: seconds; when set, the client's own CONNECT, REGISTER, PUBLISH QoS 1/2, PUBREL,
	SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, WILLTOPICUPD, WILLMSGUPD and SEARCHGW are sent
	again (PUBLISH and SUBSCRIBE with DUP, 6.13) when no reply came in that time, up to
	`retries` times. Without it, each wait lasts `timeout` seconds.
	predefined: {topic id: topic name} the client knows beforehand.

	While it waits for anything, the client answers the gateway: REGISTER with REGACK (accepted;
	the mapping is recorded), PUBLISH QoS 1 with PUBACK, QoS 2 with PUBREC (a retransmitted QoS 2
	PUBLISH is not delivered twice) and PUBREL with PUBCOMP; a PUBLISH with a normal topic id the
	client does not know is answered with PUBACK 0x02 and kept in `rejected`. Delivered messages
	wait in `inbox` for recv_publish(); other messages nobody waits for yet wait in `pending`.
	Set `auto = False` to drive the protocol by hand with send()/expect().
	"""

	def __init__(self, host, port, client_id, family=socket.AF_INET, timeout=5.0, node_id=None,
			retry=None, retries=5, predefined=None, sock=None, ctrl=0):
		self.addr = (host, port)
		self.client_id = _b(client_id)
		self.timeout = timeout
		self.node_id = bytes(node_id) if node_id is not None else None
		self.ctrl = ctrl
		self.retry = retry
		self.retries = retries
		self.predefined = dict(predefined or {})
		self._shared = None
		if sock is not None:
			if self.node_id is None:
				raise ValueError("a shared socket needs a node id")
			self._shared = sock
			sock.attach(self.node_id)
			self.sock = sock.sock
		else:
			self.sock = socket.socket(family, socket.SOCK_DGRAM)
			self.sock.connect(self.addr)
		self.auto = True
		self.topics = {}         # normal topic id -> name
		self.names = {}          # name -> normal topic id
		self.registers = []      # (topic id, name) of every REGISTER the gateway sent
		self.inbox = collections.deque()
		self.pending = collections.deque(maxlen=10000)
		self.rejected = []       # PUBLISH packets with an unknown normal topic id
		self.stray = []          # datagrams not encapsulated for node_id
		self.malformed = []      # (datagram, why) that did not decode
		self.retransmissions = 0
		self.stale_dups = 0      # QoS 2 DUP PUBLISHes that came after their PUBREL
		self.refused = False     # an ICMP port unreachable came back
		self.connected = False
		self.closed = False
		self._msg_id = 0
		self._seq = 0
		self._qos2_in = {}       # msg id -> (topic id, payload) until PUBREL
		self._qos2_done = {}     # (msg id, topic id, payload) -> when its PUBREL came
		self._last_rx = 0.0

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.close()

	def __repr__(self):
		return "<SNClient %r node=%r>" % (self.client_id, self.node_id)

	@property
	def local_address(self):
		return self.sock.getsockname()

	def next_msg_id(self):
		self._msg_id = self._msg_id % 0xFFFF + 1
		return self._msg_id

	# -- transport

	def send_raw(self, data):
		"""Sends bytes as they are (no encapsulation). An ICMP error from an earlier datagram
		(nobody listening) is noted in `refused`, and this datagram is then lost, as on a link."""
		try:
			if self._shared:
				self._shared.send(bytes(data))
			else:
				self.sock.send(bytes(data))
		except ConnectionRefusedError:
			self.refused = True

	def send(self, p):
		"""Sends a Packet (or message bytes), encapsulated when the client has a node id."""
		data = p.encode() if isinstance(p, Packet) else bytes(p)
		if self.node_id is not None:
			data = wrap(self.node_id, data, self.ctrl)
		self.send_raw(data)

	def recv_raw(self, timeout=None):
		"""The next datagram as received (encapsulated if it was), or None after timeout.
		Bypasses pending, inbox and the automatic answers."""
		timeout = self.timeout if timeout is None else timeout
		if self._shared:
			d = self._shared.recv_for(self.node_id, timeout)
		else:
			d = None
			deadline = time.monotonic() + timeout
			while d is None:
				rem = deadline - time.monotonic()
				if rem <= 0:
					break
				self.sock.settimeout(max(rem, 0.0005))
				try:
					d = self.sock.recv(65536)
				except socket.timeout:
					break
				except ConnectionRefusedError:
					self.refused = True
		if d is not None:
			self._last_rx = time.monotonic()
		return d

	def _recv_packet(self, timeout):
		"""One decoded message, or None (timeout, or a datagram skipped as stray/malformed)."""
		d = self.recv_raw(timeout)
		if d is None:
			return None
		inner = d
		if self.node_id is not None:
			try:
				_, node, inner = unwrap(d)
			except SNError:
				self.stray.append(d)
				return None
			if node != self.node_id:
				self.stray.append(d)
				return None
		try:
			return decode(inner)
		except SNError as e:
			self.malformed.append((d, str(e)))
			return None

	# -- automatic answers

	def _resolve(self, tid, topic_id):
		if tid == TID_SHORT:
			return short_name(topic_id)
		if tid == TID_PREDEFINED:
			return self.predefined.get(topic_id)
		return self.topics.get(topic_id)

	def _learn(self, topic_id, name):
		self.topics[topic_id] = name
		self.names.setdefault(name, topic_id)

	def _on_publish(self, p):
		tid, qos = p.tid_type, p.qos
		topic = self._resolve(tid, p.topic_id)
		if topic is None and tid == TID_NORMAL:
			self.rejected.append(p)
			if qos in (1, 2):
				self.send(puback(p.topic_id, p.msg_id, RC_INVALID_TOPIC))
			return
		if qos == 2:
			key = (p.msg_id, p.topic_id, p.data)
			if p.msg_id in self._qos2_in:
				self.send(pubrec(p.msg_id))  # a retransmission before PUBREL: not again
				return
			now = time.monotonic()
			for k in [k for k, t in self._qos2_done.items() if now - t > 5.0]:
				del self._qos2_done[k]
			if p.dup and key in self._qos2_done:
				# A retransmission that a reordering link delivered after its PUBREL: the
				# gateway is past it, and the message was delivered already.
				self.stale_dups += 1
				return
			self._qos2_in[p.msg_id] = key
		self._seq += 1
		self.inbox.append(Message(p.topic_id, tid, topic, p.data, qos, p.retain, p.dup,
			p.msg_id, self._seq))
		if qos == 1:
			self.send(puback(p.topic_id, p.msg_id, RC_ACCEPTED))
		elif qos == 2:
			self.send(pubrec(p.msg_id))

	def _handle(self, p):
		"""Answers what the gateway sends on its own; True when p was consumed."""
		if not self.auto:
			return False
		if p.type == REGISTER:
			name = p.data.decode("utf-8", "replace")
			self._learn(p.topic_id, name)
			self.registers.append((p.topic_id, name))
			self.send(regack(p.topic_id, p.msg_id, RC_ACCEPTED))
			return True
		if p.type == PUBLISH:
			self._on_publish(p)
			return True
		if p.type == PUBREL:
			key = self._qos2_in.pop(p.msg_id, None)
			if key is not None:
				self._qos2_done[key] = time.monotonic()
			self.send(pubcomp(p.msg_id))
			return True
		if p.type == PINGREQ:
			self.send(pingresp())
			return True
		return False

	def _pump(self, timeout):
		"""Reads and dispatches one message (or waits up to timeout for one)."""
		p = self._recv_packet(timeout)
		if p is not None and not self._handle(p):
			self.pending.append(p)
		return p

	def _describe(self):
		extra = []
		if self.pending:
			extra.append("pending %r" % (list(self.pending)[-5:],))
		if self.rejected:
			extra.append("rejected (unknown topic id) %r" % (self.rejected[-5:],))
		if self.malformed:
			extra.append("%d malformed, last %r" % (len(self.malformed), self.malformed[-1]))
		if self.stray:
			extra.append("%d stray datagrams, last %r" % (len(self.stray), self.stray[-1][:40]))
		if self.refused:
			extra.append("ICMP port unreachable seen")
		return "; ".join(extra) or "nothing else received"

	# -- waiting for a reply

	def purge(self, *types):
		"""Drops pending messages of these types (stale replies from an earlier exchange)."""
		keep = [p for p in self.pending if p.type not in types]
		self.pending.clear()
		self.pending.extend(keep)

	def expect(self, types, timeout=None, match=None):
		"""The next message of one of these types (and matching match(p), if given): first
		from pending, then from the socket; everything else read meanwhile is answered or queued.
		Raises TimeoutError."""
		if isinstance(types, int):
			types = (types,)

		def ok(p):
			return p.type in types and (match is None or match(p))

		for p in list(self.pending):
			if ok(p):
				self.pending.remove(p)
				return p
		timeout = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + timeout
		while True:
			rem = deadline - time.monotonic()
			if rem <= 0:
				raise TimeoutError("%s: no %s within %.1fs (%s)" % (self.client_id.decode(
					"utf-8", "replace"), "/".join(NAMES.get(t, str(t)) for t in types), timeout,
					self._describe()))
			p = self._recv_packet(rem)
			if p is None or self._handle(p):
				continue
			if ok(p):
				return p
			self.pending.append(p)

	def request(self, p, types, match=None, dup=False, timeout=None):
		"""Sends p and waits for a reply; with retry set, sends it again (with DUP when dup)
		each time none came within retry seconds, up to retries times."""
		attempts = 0
		while True:
			self.send(p)
			wait = self.retry if self.retry else (self.timeout if timeout is None else timeout)
			try:
				return self.expect(types, timeout=wait, match=match)
			except TimeoutError:
				if not self.retry or attempts >= self.retries:
					raise
			attempts += 1
			self.retransmissions += 1
			if dup:
				p.flags |= DUP

	# -- the operations

	def connect(self, clean=True, duration=60, will=None, timeout=None):
		"""CONNECT; will = (topic, payload, qos, retain) answers WILLTOPICREQ and WILLMSGREQ.
		Returns the CONNACK return code."""
		self.purge(CONNACK, WILLTOPICREQ, WILLMSGREQ)
		p = connect(self.client_id, duration, clean=clean, will=will is not None)
		timeout = self.timeout if timeout is None else timeout
		replied = False
		attempts = 0
		self.send(p)
		while True:
			wait = self.retry if (self.retry and not replied) else timeout
			try:
				r = self.expect((CONNACK, WILLTOPICREQ, WILLMSGREQ), timeout=wait)
			except TimeoutError:
				# Only CONNECT is ours to retransmit; WILLTOPIC and WILLMSG answer the
				# gateway, which asks again itself.
				if not self.retry or replied or attempts >= self.retries:
					raise
				attempts += 1
				self.retransmissions += 1
				self.send(p)
				continue
			replied = True
			if r.type == WILLTOPICREQ:
				if will is None:
					self.send(willtopic())
				else:
					self.send(willtopic(will[0], will[2] if len(will) > 2 else 0,
						will[3] if len(will) > 3 else False))
			elif r.type == WILLMSGREQ:
				self.send(willmsg(will[1] if will is not None else b""))
			else:
				self.connected = r.rc == RC_ACCEPTED
				return r.rc

	def register(self, topic, timeout=None):
		"""REGISTER -> (topic id, return code); an accepted id is remembered for publish()."""
		mid = self.next_msg_id()
		r = self.request(register(0, mid, topic), REGACK, match=lambda x: x.msg_id == mid,
			timeout=timeout)
		if r.rc == RC_ACCEPTED:
			self._learn(r.topic_id, topic if isinstance(topic, str) else topic.decode())
		return r.topic_id, r.rc

	def _topic_for_publish(self, topic_id, topic, tid):
		if topic_id is not None:
			tid = TID_NORMAL if tid is None else tid_type(tid)
			if isinstance(topic_id, (str, bytes)):
				topic_id = short_id(topic_id)
			return topic_id, tid
		if topic is None:
			raise ValueError("publish needs topic_id or topic")
		if tid is None:
			if topic in self.names:
				tid = TID_NORMAL
			elif len(_b(topic)) == 2:
				tid = TID_SHORT
			elif topic in self.predefined.values():
				tid = TID_PREDEFINED
			else:
				raise ValueError("topic %r is neither registered, short nor predefined" % topic)
		tid = tid_type(tid)
		if tid == TID_SHORT:
			return short_id(topic), tid
		if tid == TID_PREDEFINED:
			for k, v in self.predefined.items():
				if v == topic:
					return k, tid
			raise ValueError("topic %r is not in the predefined table" % topic)
		if topic not in self.names:
			raise ValueError("topic %r is not registered" % topic)
		return self.names[topic], tid

	def publish(self, payload, topic_id=None, topic=None, qos=0, tid_type=None, retain=False,
			msg_id=None, timeout=None):
		"""PUBLISH to topic_id (with tid_type, default normal) or to topic (a registered name,
		a two-character short name, or a predefined name: tid_type picks when ambiguous).
		QoS 1 waits for PUBACK, QoS 2 for PUBREC (or PUBACK), sends PUBREL, waits for PUBCOMP;
		returns the return code (RC_ACCEPTED after PUBCOMP). QoS 0 and -1 return None."""
		tid_, tid = self._topic_for_publish(topic_id, topic, tid_type)
		payload = _b(payload)
		if qos <= 0:
			self.send(publish(tid_, payload, qos=qos, msg_id=0, retain=retain, tid=tid))
			return None
		mid = msg_id if msg_id is not None else self.next_msg_id()
		p = publish(tid_, payload, qos=qos, msg_id=mid, retain=retain, tid=tid)
		if qos == 1:
			return self.request(p, PUBACK, match=lambda x: x.msg_id == mid, dup=True,
				timeout=timeout).rc
		r = self.request(p, (PUBREC, PUBACK), match=lambda x: x.msg_id == mid, dup=True,
			timeout=timeout)
		if r.type == PUBACK:
			return r.rc
		self.request(pubrel(mid), PUBCOMP, match=lambda x: x.msg_id == mid, timeout=timeout)
		return RC_ACCEPTED

	def _sub_args(self, topic_or_id, tid):
		tid = tid_type(tid)
		if tid == TID_PREDEFINED and isinstance(topic_or_id, str):
			for k, v in self.predefined.items():
				if v == topic_or_id:
					return k, tid
			raise ValueError("topic %r is not in the predefined table" % topic_or_id)
		return topic_or_id, tid

	def subscribe(self, topic_or_id, qos=0, tid_type="name", timeout=None):
		"""SUBSCRIBE to a name, a predefined id (or its name) or a short name ->
		(granted QoS, topic id, return code). A topic id returned for a name is remembered."""
		topic, tid = self._sub_args(topic_or_id, tid_type)
		mid = self.next_msg_id()
		r = self.request(subscribe(mid, topic, qos, tid), SUBACK, match=lambda x: x.msg_id == mid,
			dup=True, timeout=timeout)
		if tid == TID_NORMAL and r.rc == RC_ACCEPTED and r.topic_id not in (0, 0xFFFF):
			self._learn(r.topic_id, topic if isinstance(topic, str) else topic.decode())
		return r.qos, r.topic_id, r.rc

	def unsubscribe(self, topic_or_id, tid_type="name", timeout=None):
		"""UNSUBSCRIBE; waits for UNSUBACK (which has no return code). Returns True."""
		topic, tid = self._sub_args(topic_or_id, tid_type)
		mid = self.next_msg_id()
		self.request(unsubscribe(mid, topic, tid), UNSUBACK, match=lambda x: x.msg_id == mid,
			timeout=timeout)
		return True

	def recv_publish(self, timeout=None):
		"""The next delivered message (Message). Raises TimeoutError."""
		timeout = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + timeout
		while not self.inbox:
			rem = deadline - time.monotonic()
			if rem <= 0:
				raise TimeoutError("%s: no PUBLISH within %.1fs (%s)" % (
					self.client_id.decode("utf-8", "replace"), timeout, self._describe()))
			self._pump(rem)
		return self.inbox.popleft()

	def recv_publishes(self, n, timeout=None):
		"""n messages, each within timeout."""
		return [self.recv_publish(timeout) for _ in range(n)]

	def no_publish(self, timeout=0.5):
		"""Asserts that no PUBLISH is delivered within timeout (answering what comes)."""
		deadline = time.monotonic() + timeout
		while not self.inbox:
			rem = deadline - time.monotonic()
			if rem <= 0:
				return
			self._pump(rem)
		raise AssertionError("%s: unexpected %r" % (self.client_id.decode(), self.inbox[0]))

	def ping(self, timeout=None):
		"""PINGREQ (no client id) -> waits for PINGRESP. Returns True."""
		self.purge(PINGRESP)
		self.request(pingreq(), PINGRESP, timeout=timeout)
		return True

	def sleep(self, duration, timeout=None):
		"""DISCONNECT with a sleep duration; waits for the gateway's DISCONNECT. Returns it."""
		self.purge(DISCONNECT)
		return self.request(disconnect(duration), DISCONNECT, timeout=timeout)

	def wake(self, timeout=None):
		"""PINGREQ with the client id (an awake sleeping client): collects every PUBLISH the
		gateway delivers until its PINGRESP; returns them (Messages, in order), taking them out
		of the inbox. With retry, PINGREQ is sent again only when nothing at all came back."""
		self.purge(PINGRESP)
		start = self._seq
		timeout = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + timeout
		p = pingreq(self.client_id)
		attempts = 0
		self.send(p)
		sent_at = time.monotonic()
		while True:
			rem = deadline - time.monotonic()
			if rem <= 0:
				raise TimeoutError("%s: no PINGRESP within %.1fs of waking (%d messages so far; %s)"
					% (self.client_id.decode(), timeout, self._seq - start, self._describe()))
			wait = min(rem, self.retry) if self.retry else rem
			try:
				self.expect(PINGRESP, timeout=wait)
				break
			except TimeoutError:
				if self.retry and attempts < self.retries and self._last_rx < sent_at:
					attempts += 1
					self.retransmissions += 1
					self.send(p)
					sent_at = time.monotonic()
		got = [m for m in self.inbox if m.seq > start]
		keep = [m for m in self.inbox if m.seq <= start]
		self.inbox.clear()
		self.inbox.extend(keep)
		return got

	def disconnect(self, timeout=None):
		"""DISCONNECT (no duration); waits for the gateway's DISCONNECT. Returns it."""
		self.purge(DISCONNECT)
		r = self.request(disconnect(), DISCONNECT, timeout=timeout)
		self.connected = False
		return r

	def will_topic_update(self, topic, qos=0, retain=False, timeout=None):
		"""WILLTOPICUPD (topic None: the empty one, deleting the will) -> WILLTOPICRESP rc."""
		self.purge(WILLTOPICRESP)
		return self.request(willtopicupd(topic, qos, retain), WILLTOPICRESP, timeout=timeout).rc

	def will_msg_update(self, payload, timeout=None):
		"""WILLMSGUPD -> WILLMSGRESP rc."""
		self.purge(WILLMSGRESP)
		return self.request(willmsgupd(payload), WILLMSGRESP, timeout=timeout).rc

	def search_gw(self, radius=0, timeout=None):
		"""SEARCHGW (sent to the gateway's address) -> the GWINFO Packet (gw_id, data)."""
		self.purge(GWINFO)
		return self.request(searchgw(radius), GWINFO, timeout=timeout)

	def close(self):
		"""Closes the socket (a shared one stays open), without DISCONNECT."""
		if not self.closed:
			self.closed = True
			if self._shared is None:
				self.sock.close()


# ---- a lossy, reordering relay -----------------------------------------------------------------

class LossyRelay:
	"""A UDP relay on an ephemeral port of host, in a thread: each client address gets its own
	upstream socket to target (so the gateway sees distinct clients); every datagram, both ways,
	is dropped with probability loss, else held back by a few ms with probability reorder (so
	that a later one overtakes it), from a seeded random generator.

	    with LossyRelay((host, port), loss=0.1) as relay:
	        c = SNClient("127.0.0.1", relay.port, "cid", retry=0.3)
	"""

	def __init__(self, target, loss=0.1, reorder=0.1, hold=(0.002, 0.02), seed=1,
			host="127.0.0.1", family=None):
		self.target = tuple(target)
		self.loss = loss
		self.reorder = reorder
		self.hold = hold
		self.rng = random.Random(seed)
		self.family = family or (socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
		lfam = socket.AF_INET6 if ":" in host else socket.AF_INET
		self.listen = socket.socket(lfam, socket.SOCK_DGRAM)
		self.listen.bind((host, 0))
		self.listen.setblocking(False)
		self.host = host
		self.port = self.listen.getsockname()[1]
		self.address = (host, self.port)
		self.stats = collections.Counter()
		self._up = {}       # client address -> upstream socket
		self._down = {}     # upstream socket -> client address
		self._held = []     # heap of (due, seq, socket, data, destination or None)
		self._seq = 0
		self._sel = selectors.DefaultSelector()
		self._sel.register(self.listen, selectors.EVENT_READ)
		self._stop = threading.Event()
		self._thread = threading.Thread(target=self._run, name="LossyRelay", daemon=True)
		self._thread.start()

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.stop()

	@property
	def dropped(self):
		return self.stats["dropped_up"] + self.stats["dropped_down"]

	@property
	def reordered(self):
		return self.stats["held_up"] + self.stats["held_down"]

	def _send(self, sock, data, dest):
		try:
			if dest is None:
				sock.send(data)
			else:
				sock.sendto(data, dest)
		except OSError:
			self.stats["send_errors"] += 1

	def _forward(self, sock, data, dest, way):
		self.stats[way] += 1
		r = self.rng.random()
		if r < self.loss:
			self.stats["dropped_" + way] += 1
			return
		if r < self.loss + self.reorder:
			self.stats["held_" + way] += 1
			self._seq += 1
			heapq.heappush(self._held, (time.monotonic() + self.rng.uniform(*self.hold),
				self._seq, sock, data, dest))
			return
		self._send(sock, data, dest)

	def _upstream(self, client):
		s = self._up.get(client)
		if s is None:
			s = socket.socket(self.family, socket.SOCK_DGRAM)
			s.connect(self.target)
			s.setblocking(False)
			self._up[client] = s
			self._down[s] = client
			self._sel.register(s, selectors.EVENT_READ)
		return s

	def _run(self):
		while not self._stop.is_set():
			timeout = 0.05
			if self._held:
				timeout = max(0.0, min(timeout, self._held[0][0] - time.monotonic()))
			for key, _ in self._sel.select(timeout):
				s = key.fileobj
				while True:
					try:
						if s is self.listen:
							data, client = s.recvfrom(65536)
						else:
							data, client = s.recv(65536), None
					except (BlockingIOError, InterruptedError):
						break
					except OSError:  # ICMP port unreachable on an upstream socket
						self.stats["recv_errors"] += 1
						break
					if s is self.listen:
						self._forward(self._upstream(client), data, None, "up")
					else:
						self._forward(self.listen, data, self._down[s], "down")
			now = time.monotonic()
			while self._held and self._held[0][0] <= now:
				_, _, sock, data, dest = heapq.heappop(self._held)
				self._send(sock, data, dest)

	def stop(self):
		if self._stop.is_set():
			return
		self._stop.set()
		self._thread.join(5)
		self._sel.close()
		for s in list(self._up.values()) + [self.listen]:
			s.close()
