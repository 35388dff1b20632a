"""MQTT over WebSocket listeners (`protocol websockets`, Mosquitto's syntax): MQTT.js over ws://
and wss://, hand-built upgrades and frames on a raw socket, http_dir, X-Forwarded-For, limits.

Every broker here has the fixture's plain MQTT listener (b.port) plus one websockets listener on
a second free port (b.ws). The raw tests speak RFC 6455 themselves (masked client frames, our
own header forms) so that each malformed request or frame is exactly the one named.
"""

import base64
import hashlib
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import TARGET, TARGET_BIN, free_port, wait_until
from helpers import NODE_MODULES, uid
from mqtt_raw import CONNACK, PINGRESP, PUBLISH, SUBACK, decode, packet, utf8


HERE = os.path.dirname(os.path.abspath(__file__))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PINGREQ_BYTES = b"\xc0\x00"
viesti_only = pytest.mark.viesti_only


def ws_broker(broker, *listener_lines, glob=(), pki=None):
	"""A broker with a websockets listener on b.ws (TLS: wss, when pki is given)."""
	wp = free_port()
	lines = list(glob) + ["listener %d 127.0.0.1" % wp, "protocol websockets"]
	if pki:
		lines += ["certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1]]
	b = broker(*(lines + list(listener_lines)))
	b.ws = wp
	# The fixture waits for the first listener; every listener of every worker is open once
	# the broker says it runs (a connect in between can find the second port closed).
	if TARGET == "viesti":
		wait_until(lambda: "running with" in b.log_text(), 10.0,
			what="the broker's workers")
	return b


# ---- a raw WebSocket client -------------------------------------------------------------------

def mask_bytes(data, key):
	if not data:
		return b""
	k = (key * (len(data) // 4 + 1))[:len(data)]
	return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def frame(op, payload=b"", fin=True, mask=True, rsv=0, len_form=None):
	"""One client frame; len_form 7/16/64 forces a length encoding (16 or 64: non-minimal)."""
	n = len(payload)
	form = len_form or (7 if n < 126 else 16 if n <= 0xffff else 64)
	m = 0x80 if mask else 0
	hdr = bytes([(0x80 if fin else 0) | rsv | op])
	if form == 7:
		hdr += bytes([m | n])
	elif form == 16:
		hdr += bytes([m | 126]) + struct.pack("!H", n)
	else:
		hdr += bytes([m | 127]) + struct.pack("!Q", n)
	if mask:
		key = os.urandom(4)
		return hdr + key + mask_bytes(payload, key)
	return hdr + payload


def accept_for(key):
	return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(path="/mqtt", method="GET", version="1.1", headers=None, omit=()):
	key = base64.b64encode(os.urandom(16)).decode()
	h = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Protocol": "mqtt", "Origin": "https://a.example"}
	h.update(headers or {})
	for o in omit:
		h.pop(o)
	head = "%s %s HTTP/%s\r\n" % (method, path, version)
	head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
	return head.encode(), key


def connect_packet(cid, keepalive=60):
	return packet(1, 0, utf8("MQTT") + bytes([4, 2]) + struct.pack("!H", keepalive) + utf8(cid))


def subscribe_packet(pid, topic, qos=0):
	return packet(8, 2, struct.pack("!H", pid) + utf8(topic) + bytes([qos]))


def publish_packet(topic, payload):
	return packet(3, 0, utf8(topic) + payload)


class Response:
	def __init__(self, status, headers, body, raw):
		self.status, self.headers, self.body, self.raw = status, headers, body, raw

	def h(self, name):
		return self.headers.get(name.lower())

	def __repr__(self):
		return "<HTTP %d %r %r>" % (self.status, self.headers, self.body[:200])


class WS:
	"""A TCP (or TLS, with ca) connection that speaks HTTP and RFC 6455 frames by hand."""

	def __init__(self, port, ca=None, timeout=5.0):
		s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
		s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		if ca:
			s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
		self.s = s
		self.buf = b""
		self.stream = b""  # MQTT bytes unframed so far
		self.local_port = s.getsockname()[1]

	def close(self):
		self.s.close()

	def send(self, data):
		self.s.sendall(data)

	def _fill(self):
		d = self.s.recv(65536)
		if not d:
			raise EOFError("connection closed; had %r" % self.buf[:200])
		self.buf += d

	def read(self, n):
		while len(self.buf) < n:
			self._fill()
		out, self.buf = self.buf[:n], self.buf[n:]
		return out

	def response(self, head_only=False):
		"""Reads one HTTP response (its body by Content-Length unless head_only or 101)."""
		while b"\r\n\r\n" not in self.buf:
			self._fill()
		raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
		lines = raw.decode("latin-1").split("\r\n")
		status = int(lines[0].split(" ")[1])
		headers = {}
		for line in lines[1:]:
			k, v = line.split(":", 1)
			k = k.strip().lower()
			headers[k] = headers[k] + ", " + v.strip() if k in headers else v.strip()
		n = 0 if head_only or status == 101 else int(headers.get("content-length", 0))
		return Response(status, headers, self.read(n), raw + b"\r\n\r\n")

	def upgrade(self, **kw):
		req, key = upgrade_request(**kw)
		self.send(req)
		r = self.response()
		r.key = key
		return r

	def send_frame(self, op, payload=b"", **kw):
		self.send(frame(op, payload, **kw))

	def recv_frame(self):
		h = self.read(2)
		assert not h[1] & 0x80, "a server frame is masked: %r" % h
		assert not h[0] & 0x70, "a server frame has RSV bits: %r" % h
		n = h[1] & 0x7F
		if n == 126:
			n = struct.unpack("!H", self.read(2))[0]
		elif n == 127:
			n = struct.unpack("!Q", self.read(8))[0]
		return bool(h[0] & 0x80), h[0] & 0x0F, self.read(n)

	def recv_packet(self):
		"""The next MQTT packet from binary frames (decoded by mqtt_raw, as MQTT 3.1.1)."""
		while True:
			if len(self.stream) >= 2:
				mult, n, i = 1, 0, 1
				while i < len(self.stream):
					n += (self.stream[i] & 0x7F) * mult
					mult *= 128
					i += 1
					if not self.stream[i - 1] & 0x80:
						break
				else:
					i = None
				if i and len(self.stream) >= i + n:
					b0, body = self.stream[0], self.stream[i:i + n]
					self.stream = self.stream[i + n:]
					return decode(b0 >> 4, b0 & 15, body, 4)
			fin, op, data = self.recv_frame()
			assert op in (BINARY, CONT), "frame %d (%r) instead of MQTT bytes" % (op, data)
			self.stream += data

	def mqtt_connect(self, cid):
		self.send_frame(BINARY, connect_packet(cid))
		p = self.recv_packet()
		assert p.type == CONNACK and p.rc == 0, p

	def expect_close(self, code):
		"""The next frame is a Close with this code, and then the connection ends."""
		fin, op, data = self.recv_frame()
		assert op == CLOSE, "frame %d %r, wanted a Close" % (op, data)
		assert struct.unpack("!H", data[:2])[0] == code, "close %r, wanted %d" % (data, code)
		assert self.eof(), "still open after the Close"
		return data

	def eof(self, timeout=3.0):
		self.s.settimeout(timeout)
		try:
			while True:
				d = self.s.recv(65536)
				if not d:
					return True
				self.buf += d
		except socket.timeout:
			return False
		except OSError:
			return True


@pytest.fixture
def ws_conns():
	made = []

	def make(port, **kw):
		c = WS(port, **kw)
		made.append(c)
		return c

	yield make
	for c in made:
		c.close()


# ---- MQTT.js over ws:// and wss:// -----------------------------------------------------------

SCHEMES = [("ws", 4), ("ws", 5), ("wss", 4), ("wss", 5)]
SCHEME_IDS = ["ws-3.1.1", "ws-5.0", "wss-3.1.1", "wss-5.0"]


def run_node(spec, on_ready=None, timeout=60.0):
	"""Runs mqttjs_ws.js; calls on_ready() when it has subscribed; returns its JSON result."""
	env = dict(os.environ, NODE_PATH=NODE_MODULES)
	p = subprocess.Popen(["node", os.path.join(HERE, "mqttjs_ws.js"), json.dumps(spec)],
		stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
	try:
		deadline = time.monotonic() + timeout
		out = b""
		while b"READY\n" not in out and p.poll() is None:
			r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
			assert r, "node did not get ready; stderr %r" % p.stderr.read1()
			d = p.stdout.read1(65536)
			if not d:
				break
			out += d
		if b"READY\n" in out and on_ready:
			on_ready()
		rest, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
	finally:
		if p.poll() is None:
			p.kill()
			p.wait()
	out += rest
	assert p.returncode == 0, "node failed (%d): %r %r" % (p.returncode, out[-2000:], err[-2000:])
	res = json.loads(out.decode().strip().splitlines()[-1])
	assert not res["errors"], res["errors"]
	return res


def js_spec(b, scheme, version, pki, **kw):
	spec = {"url": "%s://127.0.0.1:%d/mqtt" % (scheme, b.ws), "version": version,
		"clientId": uid("js"), "timeoutMs": 40000}
	if scheme == "wss":
		spec["ca"] = pki["ca"]
	spec.update(kw)
	return spec


@pytest.mark.parametrize("scheme,version", SCHEMES, ids=SCHEME_IDS)
def test_mqttjs_qos_0_1_2_round_trip(broker, pki, scheme, version):
	b = ws_broker(broker, pki=pki if scheme == "wss" else None)
	t = uid("ws/rt")
	res = run_node(js_spec(b, scheme, version, pki, subscribe=[{"topic": t + "/#", "qos": 2}],
		publish=[{"topic": "%s/q%d" % (t, q), "qos": q, "payload": "p%d" % q} for q in (0, 1, 2)],
		expect=3))
	assert res["granted"] == [2]
	got = sorted((m["topic"], m["payload"], m["qos"]) for m in res["received"])
	assert got == [("%s/q%d" % (t, q), "p%d" % q, q) for q in (0, 1, 2)]
	assert not res["pubErrors"]


@pytest.mark.parametrize("scheme,version", SCHEMES, ids=SCHEME_IDS)
def test_mqttjs_one_256_kib_message(broker, pki, scheme, version):
	b = ws_broker(broker, pki=pki if scheme == "wss" else None)
	t, size = uid("ws/big"), 256 * 1024
	res = run_node(js_spec(b, scheme, version, pki, subscribe=[{"topic": t, "qos": 1}],
		publish=[{"topic": t, "qos": 1, "size": size}], expect=1))
	want = hashlib.sha256(bytes(i % 251 for i in range(size))).hexdigest()
	[m] = res["received"]
	assert (m["len"], m["sha256"], m["qos"]) == (size, want, 1)


@pytest.mark.parametrize("scheme,version", SCHEMES, ids=SCHEME_IDS)
def test_mqttjs_10000_message_burst_all_received_in_order(broker, pki, scheme, version):
	b = ws_broker(broker, glob=["max_queued_messages 20000"],
		pki=pki if scheme == "wss" else None)
	t, n = uid("ws/burst"), 10000
	res = run_node(js_spec(b, scheme, version, pki, subscribe=[{"topic": t, "qos": 1}],
		publish=[{"topic": t, "qos": 1, "count": n, "prefix": "m"}], burst=True, expect=n,
		timeoutMs=90000), timeout=120)
	got = [m["payload"] for m in res["received"]]
	assert len(got) == n, "received %d of %d" % (len(got), n)
	first_bad = next((i for i, p in enumerate(got) if p != "m-%d" % i), None)
	assert first_bad is None, "out of order at %d: %r" % (first_bad, got[first_bad:first_bad + 3])
	assert not res["pubErrors"]


@pytest.mark.parametrize("scheme,version", SCHEMES, ids=SCHEME_IDS)
def test_ws_client_and_tcp_paho_client_exchange_both_ways(broker, clients, pki, scheme, version):
	b = ws_broker(broker, pki=pki if scheme == "wss" else None)
	t = uid("ws/x")
	tcp = clients.paho(b.port, version=version)
	tcp.subscribe(t + "/to-tcp", 1)
	res = run_node(js_spec(b, scheme, version, pki, subscribe=[{"topic": t + "/to-ws", "qos": 1}],
		publish=[{"topic": t + "/to-tcp", "qos": 1, "payload": "from ws"}], expect=1),
		on_ready=lambda: tcp.publish(t + "/to-ws", b"from tcp", qos=1))
	assert [(m["topic"], m["payload"]) for m in res["received"]] == [(t + "/to-ws", "from tcp")]
	m = tcp.get(5)
	assert (m.topic, m.payload) == (t + "/to-tcp", b"from ws")


@pytest.mark.parametrize("scheme,version", SCHEMES, ids=SCHEME_IDS)
def test_retained_message_to_ws_subscriber(broker, clients, pki, scheme, version):
	b = ws_broker(broker, pki=pki if scheme == "wss" else None)
	t = uid("ws/ret")
	clients.paho(b.port).publish(t, b"kept", qos=1, retain=True)
	res = run_node(js_spec(b, scheme, version, pki, subscribe=[{"topic": t, "qos": 1}], expect=1))
	[m] = res["received"]
	assert (m["topic"], m["payload"], m["retain"]) == (t, "kept", True)


@pytest.mark.parametrize("version", [4, 5])
def test_password_file_and_acl_apply_to_ws_clients(broker, clients, tmp_path, pki, version):
	pw, acl = tmp_path / "pw", tmp_path / "acl"
	tool = ["mosquitto_passwd"] if TARGET == "mosquitto" else [TARGET_BIN, "passwd"]
	subprocess.run(tool + ["-c", "-b", str(pw), "alice", "secret"], check=True,
		capture_output=True, timeout=60)
	acl.write_text("user alice\ntopic readwrite ok/#\ntopic read ro/#\ntopic write wo/#\n")
	b = ws_broker(broker, glob=["allow_anonymous false", "password_file %s" % pw,
		"acl_file %s" % acl])
	for user, password in (("alice", "wrong"), (None, None)):
		kw = {"username": user, "password": password} if user else {}
		res = run_node(js_spec(b, "ws", version, pki, **kw))
		assert res["connectError"] and res["connack"] is None, res
	if b.target == "viesti":
		b.wait_log(r"client 'js-\S+' \(127\.0\.0\.1:\d+\) refused: bad username or password")
		b.wait_log(r"client 'js-\S+' \(127\.0\.0\.1:\d+\) refused: anonymous clients not allowed")
	tcp = clients.paho(b.port, version=version, username="alice", password="secret")
	tcp.subscribe("ok/out/#", 1)
	tcp.subscribe("ro/#", 1)

	def tcp_publishes():  # wo/ may be written but not read: not for the ws subscriber
		tcp.publish("wo/y", b"not readable", qos=1)
		tcp.publish("ok/in/y", b"to ws", qos=1)

	res = run_node(js_spec(b, "ws", version, pki, username="alice", password="secret",
		subscribe=[{"topic": "ok/in/#", "qos": 1}, {"topic": "wo/#", "qos": 1}],
		publish=[{"topic": "ro/x", "qos": 1, "payload": "read only"},
			{"topic": "ok/out/x", "qos": 1, "payload": "to tcp"}], expect=1),
		on_ready=tcp_publishes)
	# Each side's denied message was sent first: had it passed, it would have come first.
	assert [(m["topic"], m["payload"]) for m in res["received"]] == [("ok/in/y", "to ws")]
	m = tcp.get(5)
	assert (m.topic, m.payload) == ("ok/out/x", b"to tcp")
	tcp.no_message(0.3)


# ---- the upgrade, by hand -----------------------------------------------------------------------

@viesti_only
def test_good_upgrade_101_with_accept_key_and_subprotocol_mqtt(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	r = c.upgrade(headers={"Sec-WebSocket-Protocol": "mqttv3.1, mqtt"})
	assert r.status == 101, r
	assert r.h("upgrade").lower() == "websocket" and "upgrade" in r.h("connection").lower()
	assert r.h("sec-websocket-accept") == accept_for(r.key)
	assert r.h("sec-websocket-protocol") == "mqtt"
	c.mqtt_connect(uid("raw"))


@viesti_only
@pytest.mark.parametrize("offered,chosen", [("mqttv3.1", "mqttv3.1"), (None, None),
	("chat, mqtt", "mqtt")], ids=["mqttv3.1-only", "none-offered", "chat-and-mqtt"])
def test_subprotocol_choice(broker, ws_conns, offered, chosen):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	kw = {"headers": {"Sec-WebSocket-Protocol": offered}} if offered else {
		"omit": ["Sec-WebSocket-Protocol"]}
	r = c.upgrade(**kw)
	assert r.status == 101 and r.h("sec-websocket-protocol") == chosen, r
	c.mqtt_connect(uid("raw"))


@viesti_only
def test_wss_raw_upgrade_and_connect(broker, ws_conns, pki):
	b = ws_broker(broker, pki=pki)
	c = ws_conns(b.ws, ca=pki["ca"])
	r = c.upgrade()
	assert r.status == 101 and r.h("sec-websocket-accept") == accept_for(r.key), r
	c.mqtt_connect(uid("wss"))
	c.send_frame(BINARY, PINGREQ_BYTES)
	assert c.recv_packet().type == PINGRESP


@viesti_only
def test_connect_split_across_two_frames(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	p = connect_packet(uid("split"))
	c.send(frame(BINARY, p[:5]) + frame(BINARY, p[5:]))
	ack = c.recv_packet()
	assert ack.type == CONNACK and ack.rc == 0


@viesti_only
def test_frames_split_byte_by_byte_and_upgrade_with_connect_in_one_write(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	req, key = upgrade_request()
	c.send(req + frame(BINARY, connect_packet(uid("one"))))  # CONNECT right behind the head
	r = c.response()
	assert r.status == 101 and r.h("sec-websocket-accept") == accept_for(key)
	assert c.recv_packet().type == CONNACK
	for byte in frame(BINARY, PINGREQ_BYTES, len_form=7):
		c.send(bytes([byte]))
	assert c.recv_packet().type == PINGRESP


@viesti_only
def test_two_mqtt_packets_in_one_frame(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	t = uid("two")
	c.send_frame(BINARY, connect_packet(uid("two")) + subscribe_packet(1, t))
	assert c.recv_packet().type == CONNACK
	assert c.recv_packet().type == SUBACK
	c.send_frame(BINARY, publish_packet(t, b"hello") + PINGREQ_BYTES)
	got = [c.recv_packet() for _ in range(2)]  # the PINGRESP may overtake the routed PUBLISH
	assert sorted(p.type for p in got) == [PUBLISH, PINGRESP], got
	assert [p.payload for p in got if p.type == PUBLISH] == [b"hello"]


@viesti_only
def test_fragmented_message_with_a_ping_between_fragments(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	t = uid("frag")
	c.mqtt_connect(uid("frag"))
	c.send_frame(BINARY, subscribe_packet(1, t))
	assert c.recv_packet().type == SUBACK
	pub = publish_packet(t, b"in three pieces")
	c.send(frame(BINARY, pub[:4], fin=False) + frame(PING, b"mid") +
		frame(CONT, pub[4:9], fin=False) + frame(CONT, pub[9:]))
	assert c.recv_frame() == (True, PONG, b"mid")  # RFC 6455 5.4: control frames may interleave
	p = c.recv_packet()
	assert p.type == PUBLISH and p.payload == b"in three pieces", p


@viesti_only
def test_large_publish_in_a_64_bit_length_frame_comes_back(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	t, payload = uid("big"), os.urandom(200000)
	c.mqtt_connect(uid("big"))
	c.send_frame(BINARY, subscribe_packet(1, t))
	assert c.recv_packet().type == SUBACK
	c.send_frame(BINARY, publish_packet(t, payload))
	p = c.recv_packet()
	assert p.type == PUBLISH and p.payload == payload


@viesti_only
def test_ping_answered_by_pong_with_same_payload(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	c.mqtt_connect(uid("ping"))
	for payload in (b"", b"x" * 125, bytes(range(40))):
		c.send_frame(PING, payload)
		assert c.recv_frame() == (True, PONG, payload)
	c.send_frame(PONG, b"unsolicited")  # ignored
	c.send_frame(BINARY, PINGREQ_BYTES)
	assert c.recv_packet().type == PINGRESP


@viesti_only
@pytest.mark.parametrize("sent,echo,logged", [
	(struct.pack("!H", 4001) + b"bye", 4001, r"WebSocket closed by peer \(4001\)"),
	(struct.pack("!H", 1000), 1000, r"WebSocket closed by peer \(1000\)"),
	(b"", 1000, r"WebSocket closed by peer$")], ids=["4001-with-reason", "1000", "no-code"])
def test_close_answered_by_close_echoing_the_code(broker, ws_conns, sent, echo, logged):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	cid = uid("close")
	c.mqtt_connect(cid)
	c.send_frame(CLOSE, sent)
	c.expect_close(echo)
	# The log keeps the close code the client gave.
	b.wait_log(r"(?m)client %s \(127\.0\.0\.1:%d\) disconnected: %s" % (cid,
		c.local_port, logged))


BAD_UPGRADES = [
	("405-non-GET", {"method": "POST"}, 405, "must be a GET", {"allow": "GET"}),
	("400-HTTP-1.0", {"version": "1.0"}, 400, "needs HTTP/1.1", {}),
	("400-no-Host", {"omit": ["Host"]}, 400, "no Host header", {}),
	("400-no-Connection-Upgrade", {"headers": {"Connection": "keep-alive"}}, 400,
		"Connection does not list Upgrade", {}),
	("426-version-12", {"headers": {"Sec-WebSocket-Version": "12"}}, 426, "version 13",
		{"sec-websocket-version": "13"}),
	("400-bad-key", {"headers": {"Sec-WebSocket-Key": "c2hvcnQ="}}, 400, "Sec-WebSocket-Key", {}),
	("404-wrong-path", {"path": "/other"}, 404, "no WebSocket endpoint", {}),
	("403-Origin-not-listed", {"headers": {"Origin": "https://evil.example"}}, 403,
		"Origin not allowed", {}),
	("403-no-Origin", {"omit": ["Origin"]}, 403, "Origin not allowed", {}),
	("400-only-other-subprotocols", {"headers": {"Sec-WebSocket-Protocol": "chat, superchat"}},
		400, "no MQTT subprotocol", {}),
	("431-head-too-large", {"headers": {"X-Filler": "f" * 1500}}, 431,
		"websockets_headers_size", {}),
	("400-malformed-request-line", b"GET /mqtt HTTX/1.1\r\nHost: a\r\n\r\n", 400,
		"malformed HTTP request", {}),
	("426-plain-GET-without-http_dir", b"GET /mqtt HTTP/1.1\r\nHost: a\r\n\r\n", 426,
		"speaks MQTT over WebSocket", {"upgrade": "websocket"}),
]


@viesti_only
@pytest.mark.parametrize("req,status,why,headers", [c[1:] for c in BAD_UPGRADES],
	ids=[c[0] for c in BAD_UPGRADES])
def test_bad_upgrade_gets_its_status(broker, ws_conns, req, status, why, headers):
	b = ws_broker(broker, "websockets_path /mqtt", "websockets_origin https://a.example",
		glob=["websockets_headers_size 1024"])
	c = ws_conns(b.ws)
	c.send(req if isinstance(req, bytes) else upgrade_request(**req)[0])
	r = c.response()
	assert r.status == status, r
	assert "close" in r.h("connection").lower() and r.h("content-type").startswith("text/plain")
	assert str(status).encode() in r.body and why.encode() in r.body, r.body
	for k, v in headers.items():
		assert r.h(k) == v, r
	assert "sec-websocket-accept" not in r.headers
	assert c.eof(), "open after an HTTP %d" % status
	b.wait_log(r"connection from 127\.0\.0\.1:%d .*HTTP %d \(.*%s" % (c.local_port, status,
		why.replace(".", r"\.")))


@viesti_only
def test_head_of_exactly_websockets_headers_size_is_upgraded(broker, ws_conns):
	b = ws_broker(broker, glob=["websockets_headers_size 1024"])
	base = len(upgrade_request(headers={"X-Filler": ""})[0])
	for size, status in ((1024, 101), (1025, 431)):
		c = ws_conns(b.ws)
		req, _ = upgrade_request(headers={"X-Filler": "f" * (size - base)})
		assert len(req) == size
		c.send(req)
		assert c.response().status == status, size


@viesti_only
def test_upgrade_tokens_in_lists_and_any_case(broker, ws_conns):
	"""Firefox sends "Connection: keep-alive, Upgrade"; tokens are case-insensitive."""
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	r = c.upgrade(headers={"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket",
		"sec-websocket-protocol": "mqtt"}, omit=["Sec-WebSocket-Protocol"])
	assert r.status == 101 and r.h("sec-websocket-protocol") == "mqtt", r
	c.mqtt_connect(uid("ff"))


@viesti_only
@pytest.mark.parametrize("upgraded", [False, True], ids=["half-a-head", "upgraded-no-CONNECT"])
def test_connect_timeout_bounds_the_upgrade(broker, ws_conns, upgraded):
	b = ws_broker(broker, glob=["connect_timeout 1"])
	c = ws_conns(b.ws)
	if upgraded:
		assert c.upgrade().status == 101
	else:
		c.send(b"GET /mqtt HTTP/1.1\r\nHost: a\r\n")
	assert c.eof(10), "a silent ws connection outlived connect_timeout"
	b.wait_log(r"connection from 127\.0\.0\.1:%d closed before CONNECT: no CONNECT within 1 s" %
		c.local_port)


@viesti_only
def test_max_packet_size_applies_to_ws_clients(broker, ws_conns):
	b = ws_broker(broker, glob=["max_packet_size 1000"])
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	cid = uid("big")
	c.mqtt_connect(cid)
	c.send_frame(BINARY, publish_packet("a", b"x" * 2000))
	c.expect_close(1000)
	b.wait_log(r"client %s .*disconnected: Packet too large" % cid)


@viesti_only
def test_origin_listed_is_upgraded(broker, ws_conns):
	b = ws_broker(broker, "websockets_path /mqtt", "websockets_origin https://b.example",
		"websockets_origin https://a.example")
	c = ws_conns(b.ws)
	r = c.upgrade(path="/mqtt?x=1", headers={"Origin": "https://a.example"})
	assert r.status == 101, r
	c.mqtt_connect(uid("origin"))


BAD_FRAMES = [
	("unmasked-client-frame", frame(BINARY, PINGREQ_BYTES, mask=False), 1002,
		"unmasked frame from a client"),
	("RSV1-bit", frame(BINARY, PINGREQ_BYTES, rsv=0x40), 1002, "reserved bits set"),
	("reserved-data-opcode", frame(0x3, b"x"), 1002, "reserved data opcode"),
	("reserved-control-opcode", frame(0xB, b""), 1002, "reserved control opcode"),
	("text-frame", frame(TEXT, PINGREQ_BYTES), 1003, "text frame"),
	("continuation-without-start", frame(CONT, PINGREQ_BYTES), 1002,
		"continuation frame without a message"),
	("new-message-inside-fragmented", frame(BINARY, b"\xc0", fin=False) + frame(BINARY, b"\x00"),
		1002, "new message inside a fragmented one"),
	("fragmented-ping", frame(PING, b"p", fin=False), 1002, "fragmented control frame"),
	("ping-over-125", frame(PING, b"p" * 126), 1002, "control frame longer than 125 bytes"),
	("non-minimal-16-bit-length", frame(BINARY, PINGREQ_BYTES, len_form=16), 1002,
		"length not in its shortest form"),
	("non-minimal-64-bit-length", frame(BINARY, b"\xc0\x00" * 100, len_form=64), 1002,
		"length not in its shortest form"),
	("close-with-1-byte-body", frame(CLOSE, b"\x03"), 1002, "close frame with a 1-byte body"),
	("close-with-code-1005", frame(CLOSE, struct.pack("!H", 1005)), 1002,
		"close frame with an invalid code"),
	("close-reason-not-UTF-8", frame(CLOSE, struct.pack("!H", 1000) + b"\xc3\x28"), 1007,
		"close reason is not UTF-8"),
]


@viesti_only
@pytest.mark.parametrize("data,code,why", [c[1:] for c in BAD_FRAMES],
	ids=[c[0] for c in BAD_FRAMES])
def test_bad_frame_gets_close_with_code_then_eof(broker, ws_conns, data, code, why):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	cid = uid("badframe")
	c.mqtt_connect(cid)
	c.send(data)
	c.expect_close(code)
	b.wait_log(r"client %s \(127\.0\.0\.1:%d\) disconnected: .*WebSocket: %s.*\(close %d\)" % (
		cid, c.local_port, why, code))


@viesti_only
def test_bad_frame_before_connect_is_logged_with_the_connection(broker, ws_conns):
	b = ws_broker(broker)
	c = ws_conns(b.ws)
	assert c.upgrade().status == 101
	c.send(frame(TEXT, b"hello"))
	c.expect_close(1003)
	b.wait_log(r"connection from 127\.0\.0\.1:%d .*WebSocket: text frame" % c.local_port)


# ---- http_dir ----------------------------------------------------------------------------------

SECRET = b"TOP-SECRET-9f3c1a"


@pytest.fixture
def www(tmp_path):
	d = tmp_path / "www"
	(d / "sub").mkdir(parents=True)
	(d / "index.html").write_bytes(b"<html><body>viesti ws page</body></html>\n")
	(d / "app.js").write_bytes(b"console.log('app');\n" * 20)
	(d / "sub" / "index.html").write_bytes(b"<p>sub index</p>\n")
	(tmp_path / "x").write_bytes(SECRET)
	(tmp_path / "secret.txt").write_bytes(SECRET)
	os.symlink(str(tmp_path / "secret.txt"), str(d / "link.txt"))
	return d


def http_get(c, path, method="GET", extra=""):
	c.send(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (method, path, extra)).encode())
	return c.response(head_only=(method == "HEAD"))


@viesti_only
def test_http_dir_serves_index_html_and_js_types(broker, ws_conns, www):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	r = http_get(c, "/")
	assert r.status == 200 and r.h("content-type").startswith("text/html"), r
	assert r.body == (www / "index.html").read_bytes()
	r = http_get(c, "/app.js")
	assert r.status == 200 and r.h("content-type").startswith("text/javascript"), r
	assert r.body == (www / "app.js").read_bytes()


@viesti_only
def test_http_dir_head_has_content_length_and_no_body(broker, ws_conns, www):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	r = http_get(c, "/app.js", method="HEAD")
	assert r.status == 200 and int(r.h("content-length")) == len((www / "app.js").read_bytes())
	# No body followed: the next bytes on this connection are the next response's.
	r2 = http_get(c, "/")
	assert r2.raw.startswith(b"HTTP/1.1 200 ") and r2.body == (www / "index.html").read_bytes()


@viesti_only
def test_http_dir_keep_alive_two_requests_on_one_connection(broker, ws_conns, www):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	r1 = http_get(c, "/")
	assert r1.status == 200 and "keep-alive" in r1.h("connection").lower()
	r2 = http_get(c, "/app.js")
	assert r2.status == 200 and r2.body == (www / "app.js").read_bytes()
	# Pipelined: both requests in one write, both answered in order.
	c.send(b"GET /sub/ HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	assert c.response().body == (www / "sub" / "index.html").read_bytes()
	assert c.response().body == (www / "index.html").read_bytes()
	# Connection: close is honoured.
	r = http_get(c, "/", extra="Connection: close\r\n")
	assert r.status == 200 and c.eof()


@viesti_only
def test_http_dir_page_then_upgrade_on_the_same_connection(broker, ws_conns, www):
	b = ws_broker(broker, "http_dir %s" % www, "websockets_path /mqtt")
	c = ws_conns(b.ws)
	assert http_get(c, "/").status == 200
	r = c.upgrade()
	assert r.status == 101 and r.h("sec-websocket-accept") == accept_for(r.key)
	c.mqtt_connect(uid("page"))


@viesti_only
@pytest.mark.parametrize("method,path,status", [("GET", "/missing.html", 404),
	("POST", "/index.html", 405)], ids=["404-missing", "405-POST"])
def test_http_dir_errors(broker, ws_conns, www, method, path, status):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	extra = "Content-Length: 0\r\n" if method == "POST" else ""
	r = http_get(c, path, method=method, extra=extra)
	assert r.status == status, r
	if status == 405:
		assert r.h("allow") == "GET, HEAD"
	assert c.eof()


@viesti_only
@pytest.mark.parametrize("path", ["/../x", "/%2e%2e/x", "/%2E%2E/secret.txt", "/sub/../../x",
	"/..%2fsecret.txt", "/link.txt", "/sub/%2e%2e/%2e%2e/secret.txt"])
def test_http_dir_path_escape_refused(broker, ws_conns, www, path):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	r = http_get(c, path)
	assert r.status in (400, 403, 404), r
	assert c.eof()
	assert SECRET not in r.raw + r.body + c.buf


@viesti_only
def test_http_dir_directory_without_slash_redirects(broker, ws_conns, www):
	b = ws_broker(broker, "http_dir %s" % www)
	c = ws_conns(b.ws)
	r = http_get(c, "/sub")
	assert r.status == 301 and r.h("location") == "/sub/", r
	r = http_get(c, "/sub/")
	assert r.status == 200 and r.body == (www / "sub" / "index.html").read_bytes()


@viesti_only
def test_http_dir_listener_still_takes_mqttjs(broker, www, pki):
	b = ws_broker(broker, "http_dir %s" % www)
	t = uid("ws/page")
	res = run_node(js_spec(b, "ws", 4, pki, subscribe=[{"topic": t, "qos": 1}],
		publish=[{"topic": t, "qos": 1, "payload": "via http_dir port"}], expect=1))
	assert [m["payload"] for m in res["received"]] == ["via http_dir port"]


# ---- X-Forwarded-For -----------------------------------------------------------------------------

@viesti_only
def test_x_forwarded_for_from_trusted_proxy_is_logged_as_the_client(broker, ws_conns):
	b = ws_broker(broker, "websockets_trusted_proxy 10.9.8.7",
		"websockets_trusted_proxy 127.0.0.1")
	c = ws_conns(b.ws)
	assert c.upgrade(headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}).status == 101
	cid = uid("fwd")
	c.mqtt_connect(cid)
	b.wait_log(r"client %s connected from 203\.0\.113\.7\b" % cid)
	assert "198.51.100.1" not in b.log_text()


@viesti_only
@pytest.mark.parametrize("proxy", [None, "10.9.8.7"], ids=["no-proxy-listed", "other-proxy"])
def test_x_forwarded_for_ignored_without_trusted_proxy(broker, ws_conns, proxy):
	b = ws_broker(broker, *(["websockets_trusted_proxy %s" % proxy] if proxy else []))
	c = ws_conns(b.ws)
	assert c.upgrade(headers={"X-Forwarded-For": "203.0.113.7"}).status == 101
	cid = uid("nofwd")
	c.mqtt_connect(cid)
	b.wait_log(r"client %s connected from 127\.0\.0\.1:%d\b" % (cid, c.local_port))
	assert "203.0.113.7" not in b.log_text()


# ---- limits and counters -------------------------------------------------------------------------

@viesti_only
def test_max_connections_on_ws_listener_refuses_the_extra_client(broker, clients, ws_conns):
	b = ws_broker(broker, "max_connections 1")
	first = ws_conns(b.ws)
	assert first.upgrade().status == 101
	first.mqtt_connect(uid("first"))
	extra = ws_conns(b.ws)
	try:
		extra.send(upgrade_request()[0])
	except OSError:
		pass
	assert extra.eof(), "a second connection on a websockets listener of max_connections 1"
	assert b"101" not in extra.buf
	b.wait_log(r"refused: max_connections \(1\) reached")
	clients.paho(b.port).publish("still/works", b"x", qos=1)  # the TCP listener is not limited
	first.close()

	def upgrades():
		try:
			c = ws_conns(b.ws)
			return c.upgrade().status == 101
		except (OSError, EOFError):
			return False

	wait_until(upgrades, 5, interval=0.1, what="a ws connection once the first closed")


def test_sys_clients_connected_counts_ws_clients(broker, clients, ws_conns):
	b = ws_broker(broker, glob=["sys_interval 1"])
	mon = clients.raw(b.port, 4)
	mon.connect(uid("mon"))
	mon.subscribe(("$SYS/broker/clients/connected", 0))
	latest = {}

	def connected_is(n):
		while True:
			try:
				p = mon.expect(PUBLISH, timeout=0.2)
			except TimeoutError:
				break
			latest["v"] = p.payload.decode()
		return latest.get("v") == str(n)

	wait_until(lambda: connected_is(1), 10, what="clients/connected 1; last %r" % latest)
	ws = []
	for _ in range(2):
		c = ws_conns(b.ws)
		assert c.upgrade().status == 101
		c.mqtt_connect(uid("sys"))
		ws.append(c)
	wait_until(lambda: connected_is(3), 10, what="clients/connected 3 with two ws clients")
	for c in ws:
		c.send_frame(BINARY, b"\xe0\x00")  # DISCONNECT
		assert c.eof()
	wait_until(lambda: connected_is(1), 10, what="clients/connected back to 1")


@viesti_only
def test_unfinished_upgrades_hold_little_memory(broker, ws_conns):
	"""2,000 connections that send half a request head and wait: each holds what it sent
	(a 1 KiB buffer), not a whole head plus a TLS record's room (70 MB here before, under ASan;
	the budget for connections before CONNECT assumes they cost little)."""
	b = ws_broker(broker, glob=["connect_timeout 120"])
	rss0 = b.proc_status("VmRSS")
	socks = []
	try:
		for _ in range(2000):
			s = socket.create_connection(("127.0.0.1", b.ws))
			s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
			socks.append(s)
		# A complete upgrade after them: the loops have read what came before it.
		c = ws_conns(b.ws)
		assert c.upgrade().status == 101
		c.mqtt_connect(uid("after"))
		grew = (b.proc_status("VmRSS") - rss0) / 1024
		assert grew < 24, "2,000 unfinished upgrades cost %.0f MB" % grew
	finally:
		for s in socks:
			s.close()
