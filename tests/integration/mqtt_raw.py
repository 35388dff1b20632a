"""A raw-socket MQTT 3.1 / 3.1.1 / 5.0 client for protocol tests.

Packets are built by hand with struct so that tests can send exactly the bytes they want, including
malformed ones, and read whatever the broker answers with a timeout. Nothing here retries, pings
or acknowledges on its own: a test that wants an acknowledgement sends it.

Usage:
    c = RawClient(port, version=5)
    ack = c.connect("cid", props={P.SESSION_EXPIRY: 10})
    c.subscribe(1, [("a/#", 1)])
    p = c.expect(PUBLISH)
"""

import socket
import struct
import time

# Packet types (high nibble of the fixed header).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
	8, 9, 10, 11, 12, 13, 14, 15

TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
	7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
	12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


class P:
	"""MQTT 5.0 property identifiers (section 2.2.2.2)."""
	PAYLOAD_FORMAT = 0x01
	MESSAGE_EXPIRY = 0x02
	CONTENT_TYPE = 0x03
	RESPONSE_TOPIC = 0x08
	CORRELATION_DATA = 0x09
	SUBSCRIPTION_ID = 0x0B
	SESSION_EXPIRY = 0x11
	ASSIGNED_CLIENT_ID = 0x12
	SERVER_KEEP_ALIVE = 0x13
	AUTH_METHOD = 0x15
	AUTH_DATA = 0x16
	REQUEST_PROBLEM_INFO = 0x17
	WILL_DELAY = 0x18
	REQUEST_RESPONSE_INFO = 0x19
	RESPONSE_INFO = 0x1A
	SERVER_REFERENCE = 0x1C
	REASON_STRING = 0x1F
	RECEIVE_MAXIMUM = 0x21
	TOPIC_ALIAS_MAXIMUM = 0x22
	TOPIC_ALIAS = 0x23
	MAXIMUM_QOS = 0x24
	RETAIN_AVAILABLE = 0x25
	USER_PROPERTY = 0x26
	MAXIMUM_PACKET_SIZE = 0x27
	WILDCARD_SUB_AVAILABLE = 0x28
	SUB_ID_AVAILABLE = 0x29
	SHARED_SUB_AVAILABLE = 0x2A


_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_TWO = {0x13, 0x21, 0x22, 0x23}
_FOUR = {0x02, 0x11, 0x18, 0x27}
_VARINT = {0x0B}
_STRING = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY = {0x09, 0x16}
_PAIR = {0x26}


class ProtocolViolation(AssertionError):
	"""The broker sent bytes this decoder cannot parse."""


def varint(n):
	out = bytearray()
	while True:
		b = n % 128
		n //= 128
		if n:
			b |= 0x80
		out.append(b)
		if not n:
			return bytes(out)


def utf8(s):
	b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
	return struct.pack("!H", len(b)) + b


def binary(b):
	b = b.encode() if isinstance(b, str) else bytes(b)
	return struct.pack("!H", len(b)) + b


def encode_props(props):
	"""props: None, a dict {id: value} or a list of (id, value). USER_PROPERTY values in a dict are
	lists of (name, value) pairs; SUBSCRIPTION_ID may repeat in a list."""
	if props is None:
		return b"\x00"
	items = []
	if isinstance(props, dict):
		for k, v in props.items():
			if k in _PAIR:
				items.extend((k, pair) for pair in v)
			else:
				items.append((k, v))
	else:
		items = list(props)
	body = bytearray()
	for k, v in items:
		body.append(k)
		if k in _BYTE:
			body += struct.pack("!B", v)
		elif k in _TWO:
			body += struct.pack("!H", v)
		elif k in _FOUR:
			body += struct.pack("!I", v)
		elif k in _VARINT:
			body += varint(v)
		elif k in _STRING:
			body += utf8(v)
		elif k in _BINARY:
			body += binary(v)
		elif k in _PAIR:
			body += utf8(v[0]) + utf8(v[1])
		else:
			raise ValueError("unknown property 0x%02x" % k)
	return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
	return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


class Reader:
	def __init__(self, data):
		self.d = bytes(data)
		self.i = 0

	def left(self):
		return len(self.d) - self.i

	def take(self, n):
		if self.i + n > len(self.d):
			raise ProtocolViolation("truncated field")
		b = self.d[self.i:self.i + n]
		self.i += n
		return b

	def u8(self):
		return self.take(1)[0]

	def u16(self):
		return struct.unpack("!H", self.take(2))[0]

	def u32(self):
		return struct.unpack("!I", self.take(4))[0]

	def varint(self):
		mult, val = 1, 0
		for _ in range(4):
			b = self.u8()
			val += (b & 0x7F) * mult
			if not b & 0x80:
				return val
			mult *= 128
		raise ProtocolViolation("varint longer than 4 bytes")

	def string(self):
		return self.take(self.u16()).decode("utf-8")

	def binary(self):
		return self.take(self.u16())

	def props(self):
		n = self.varint()
		end = self.i + n
		out = []
		while self.i < end:
			k = self.u8()
			if k in _BYTE:
				v = self.u8()
			elif k in _TWO:
				v = self.u16()
			elif k in _FOUR:
				v = self.u32()
			elif k in _VARINT:
				v = self.varint()
			elif k in _STRING:
				v = self.string()
			elif k in _BINARY:
				v = self.binary()
			elif k in _PAIR:
				v = (self.string(), self.string())
			else:
				raise ProtocolViolation("unknown property id 0x%02x" % k)
			out.append((k, v))
		if self.i != end:
			raise ProtocolViolation("property length mismatch")
		return Props(out)


class Props(list):
	"""Ordered list of (id, value) with dict-like helpers."""

	def get(self, k, default=None):
		for kk, v in self:
			if kk == k:
				return v
		return default

	def all(self, k):
		return [v for kk, v in self if kk == k]

	def __contains__(self, k):
		return any(kk == k for kk, _ in self)

	def user(self):
		return self.all(P.USER_PROPERTY)


class Packet:
	"""A decoded packet. Fields depend on the type: see decode()."""

	def __init__(self, ptype, flags, body):
		self.type = ptype
		self.flags = flags
		self.body = body
		self.props = Props()
		self.rc = None
		self.pid = None

	def __repr__(self):
		extra = ""
		if self.type == PUBLISH:
			extra = " topic=%r qos=%d retain=%d dup=%d pid=%s payload=%r props=%r" % (
				self.topic, self.qos, self.retain, self.dup, self.pid, self.payload[:40],
				list(self.props))
		elif self.rc is not None:
			extra = " rc=0x%02x" % self.rc
		if self.type in (SUBACK, UNSUBACK):
			extra += " codes=%r" % (self.codes,)
		return "<%s%s>" % (TYPE_NAMES.get(self.type, self.type), extra)


def decode(ptype, flags, body, version):
	p = Packet(ptype, flags, body)
	r = Reader(body)
	v5 = version == 5
	if ptype == CONNACK:
		p.session_present = bool(r.u8() & 1)
		p.rc = r.u8()
		if v5 and r.left():
			p.props = r.props()
	elif ptype == PUBLISH:
		p.dup = bool(flags & 8)
		p.qos = (flags >> 1) & 3
		p.retain = bool(flags & 1)
		p.topic = r.string()
		if p.qos:
			p.pid = r.u16()
		if v5:
			p.props = r.props()
		p.payload = r.take(r.left())
	elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
		p.pid = r.u16()
		p.rc = 0
		if v5 and r.left():
			p.rc = r.u8()
			if r.left():
				p.props = r.props()
	elif ptype in (SUBACK, UNSUBACK):
		p.pid = r.u16()
		if v5:
			p.props = r.props()
		p.codes = list(r.take(r.left()))
	elif ptype in (DISCONNECT, AUTH):
		p.rc = 0
		if r.left():
			p.rc = r.u8()
			if r.left():
				p.props = r.props()
	return p


class Closed(Exception):
	pass


class RawClient:
	"""One TCP connection speaking hand-built MQTT. version: 3 (3.1), 4 (3.1.1) or 5."""

	def __init__(self, port, version=4, host="127.0.0.1", timeout=5.0):
		self.version = version
		self.sock = socket.create_connection((host, port), timeout=timeout)
		self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		self.buf = bytearray()
		self.closed = False
		self.next_pid = 1
		self.pending = []

	# --- sending --------------------------------------------------------------------------
	def send(self, data):
		self.sock.sendall(data)

	def pid(self):
		p = self.next_pid
		self.next_pid = self.next_pid % 65535 + 1
		return p

	def connect_packet(self, client_id="", clean=True, keepalive=60, will=None, username=None,
			password=None, props=None, flags_extra=0, proto_name=None, proto_level=None):
		"""will: dict(topic=, payload=, qos=0, retain=False, props=None)."""
		v = self.version
		name = proto_name if proto_name is not None else ("MQIsdp" if v == 3 else "MQTT")
		level = proto_level if proto_level is not None else v
		flags = flags_extra
		if clean:
			flags |= 0x02
		if will:
			flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
		if username is not None:
			flags |= 0x80
		if password is not None:
			flags |= 0x40
		body = utf8(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
		if v == 5:
			body += encode_props(props)
		body += utf8(client_id)
		if will:
			if v == 5:
				body += encode_props(will.get("props"))
			body += utf8(will["topic"]) + binary(will.get("payload", b""))
		if username is not None:
			body += utf8(username)
		if password is not None:
			body += binary(password)
		return packet(CONNECT, 0, body)

	def connect(self, client_id="", expect_rc=0, **kw):
		"""Sends CONNECT, returns the CONNACK; asserts its return/reason code if expect_rc is
		not None."""
		self.send(self.connect_packet(client_id, **kw))
		ack = self.expect(CONNACK)
		if expect_rc is not None:
			assert ack.rc == expect_rc, "CONNACK rc 0x%02x, wanted 0x%02x" % (ack.rc, expect_rc)
		return ack

	def publish_packet(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None,
			props=None):
		if isinstance(payload, str):
			payload = payload.encode()
		flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
		body = utf8(topic)
		if qos:
			body += struct.pack("!H", pid)
		if self.version == 5:
			body += encode_props(props)
		return packet(PUBLISH, flags, body + payload)

	def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None,
			wait=True):
		"""Sends PUBLISH. For QoS 1/2 with wait, completes the handshake and returns the final
		ack (PUBACK or PUBCOMP); other packets that arrive meanwhile are kept for later."""
		if qos and pid is None:
			pid = self.pid()
		self.send(self.publish_packet(topic, payload, qos, retain, dup, pid, props))
		if not qos or not wait:
			return pid
		if qos == 1:
			return self.expect(PUBACK, pid=pid)
		rec = self.expect(PUBREC, pid=pid)
		if rec.rc >= 0x80:
			return rec
		self.pubrel(pid)
		return self.expect(PUBCOMP, pid=pid)

	def ack_packet(self, ptype, pid, rc=None, props=None):
		body = struct.pack("!H", pid)
		if self.version == 5 and (rc or props):
			body += bytes([rc or 0])
			if props:
				body += encode_props(props)
		return packet(ptype, 2 if ptype == PUBREL else 0, body)

	def puback(self, pid, rc=None):
		self.send(self.ack_packet(PUBACK, pid, rc))

	def pubrec(self, pid, rc=None):
		self.send(self.ack_packet(PUBREC, pid, rc))

	def pubrel(self, pid, rc=None):
		self.send(self.ack_packet(PUBREL, pid, rc))

	def pubcomp(self, pid, rc=None):
		self.send(self.ack_packet(PUBCOMP, pid, rc))

	def ack(self, pub):
		"""Completes the receiver side for a received PUBLISH (PUBACK, or PUBREC..PUBCOMP)."""
		if pub.qos == 1:
			self.puback(pub.pid)
		elif pub.qos == 2:
			self.pubrec(pub.pid)
			self.expect(PUBREL, pid=pub.pid)
			self.pubcomp(pub.pid)

	def subscribe_packet(self, pid, filters, props=None):
		body = struct.pack("!H", pid)
		if self.version == 5:
			body += encode_props(props)
		for f in filters:
			if isinstance(f, str):
				f = (f, 0)
			body += utf8(f[0]) + bytes([f[1]])
		return packet(SUBSCRIBE, 2, body)

	def subscribe(self, filters, props=None, pid=None):
		"""filters: list of topic strings or (filter, options byte). Returns the SUBACK."""
		if isinstance(filters, (str, tuple)):
			filters = [filters]
		pid = pid or self.pid()
		self.send(self.subscribe_packet(pid, filters, props))
		return self.expect(SUBACK, pid=pid)

	def unsubscribe(self, filters, props=None, pid=None):
		if isinstance(filters, str):
			filters = [filters]
		pid = pid or self.pid()
		body = struct.pack("!H", pid)
		if self.version == 5:
			body += encode_props(props)
		for f in filters:
			body += utf8(f)
		self.send(packet(UNSUBSCRIBE, 2, body))
		return self.expect(UNSUBACK, pid=pid)

	def ping(self, timeout=3.0):
		self.send(packet(PINGREQ, 0, b""))
		return self.expect(PINGRESP, timeout=timeout)

	def disconnect(self, rc=None, props=None):
		body = b""
		if self.version == 5 and (rc is not None or props):
			body = bytes([rc or 0]) + (encode_props(props) if props else b"")
		try:
			self.send(packet(DISCONNECT, 0, body))
		except OSError:
			pass
		self.close()

	def close(self):
		if not self.closed:
			self.closed = True
			try:
				self.sock.close()
			except OSError:
				pass

	# --- receiving ------------------------------------------------------------------------
	def _fill(self, deadline):
		remaining = deadline - time.monotonic()
		if remaining <= 0:
			raise TimeoutError
		self.sock.settimeout(remaining)
		try:
			data = self.sock.recv(65536)
		except socket.timeout:
			raise TimeoutError
		except ConnectionResetError:
			data = b""
		if not data:
			raise Closed()
		self.buf += data

	def _split(self):
		"""Returns (ptype, flags, body) if buf holds a whole packet, else None."""
		if len(self.buf) < 2:
			return None
		mult, length, i = 1, 0, 1
		while True:
			if i >= len(self.buf):
				return None
			b = self.buf[i]
			length += (b & 0x7F) * mult
			i += 1
			if not b & 0x80:
				break
			mult *= 128
			if i > 4:
				raise ProtocolViolation("bad remaining length from broker")
		if len(self.buf) < i + length:
			return None
		first = self.buf[0]
		body = bytes(self.buf[i:i + length])
		del self.buf[:i + length]
		return first >> 4, first & 0x0F, body

	def recv(self, timeout=3.0):
		"""Returns the next packet; raises TimeoutError or Closed."""
		deadline = time.monotonic() + timeout
		if self.pending:
			return self.pending.pop(0)
		while True:
			s = self._split()
			if s:
				return decode(s[0], s[1], s[2], self.version)
			self._fill(deadline)

	def expect(self, ptype, timeout=3.0, pid=None):
		"""Returns the next packet of ptype (and pid, if given); packets of other kinds that
		arrive first are kept in order for later recv() calls."""
		deadline = time.monotonic() + timeout
		for i, p in enumerate(self.pending):
			if p.type == ptype and (pid is None or p.pid == pid):
				return self.pending.pop(i)
		skipped = []
		try:
			while True:
				s = self._split()
				if s:
					p = decode(s[0], s[1], s[2], self.version)
					if p.type == ptype and (pid is None or p.pid == pid):
						return p
					skipped.append(p)
					continue
				try:
					self._fill(deadline)
				except TimeoutError:
					raise TimeoutError("no %s within %.1fs (got %r)" % (
						TYPE_NAMES[ptype], timeout, skipped))
				except Closed:
					raise Closed("closed while waiting for %s (got %r)" % (
						TYPE_NAMES[ptype], skipped))
		finally:
			self.pending.extend(skipped)

	def publishes(self, n, timeout=3.0, ack=True):
		"""Collects n PUBLISH packets (acknowledging them if ack)."""
		out = []
		deadline = time.monotonic() + timeout
		while len(out) < n:
			p = self.expect(PUBLISH, timeout=max(0.01, deadline - time.monotonic()))
			if ack:
				self.ack(p)
			out.append(p)
		return out

	def drain(self, timeout=0.5, ack=True):
		"""Returns every packet that arrives within timeout (acking PUBLISHes if ack)."""
		out = []
		deadline = time.monotonic() + timeout
		while True:
			try:
				p = self.recv(timeout=max(0.0, deadline - time.monotonic()) or 0.001)
			except (TimeoutError, Closed):
				return out
			if ack and p.type == PUBLISH and p.qos:
				if p.qos == 1:
					self.puback(p.pid)
				else:
					self.pubrec(p.pid)
			elif ack and p.type == PUBREL:
				self.pubcomp(p.pid)
				continue
			out.append(p)

	def no_publish(self, timeout=0.5):
		"""Asserts no PUBLISH arrives within timeout."""
		got = [p for p in self.drain(timeout) if p.type == PUBLISH]
		assert not got, "unexpected PUBLISH: %r" % got

	def wait_closed(self, timeout=3.0):
		"""Reads until the broker closes the connection; returns the packets received before.
		Raises AssertionError if still open after timeout."""
		deadline = time.monotonic() + timeout
		got = list(self.pending)
		self.pending = []
		while True:
			try:
				s = self._split()
				if s:
					got.append(decode(s[0], s[1], s[2], self.version))
					continue
				self._fill(deadline)
			except Closed:
				self.close()
				return got
			except TimeoutError:
				raise AssertionError("connection still open after %.1fs (got %r)" % (
					timeout, got))
			except OSError:
				self.close()
				return got

	def is_open(self, timeout=0.2):
		"""True if the connection is still open after timeout (data received is kept)."""
		try:
			while True:
				s = self._split()
				if s:
					self.pending.append(decode(s[0], s[1], s[2], self.version))
					continue
				self._fill(time.monotonic() + timeout)
		except TimeoutError:
			return True
		except (Closed, OSError):
			return False

	def __enter__(self):
		return self

	def __exit__(self, *a):
		self.close()
