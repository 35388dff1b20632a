"""viesti pub / sub / rr --auth-method SCRAM-SHA-256 against a SCRAM-SHA-256 MQTT 5 server written
here in Python (raw sockets, mqtt_raw's packet helpers; the SCRAM server role from RFC 5802
section 3 with hashlib and hmac). It needs no broker: it checks the exact packet flow of MQTT 5.0
enhanced authentication (CONNECT with Authentication Method and the client-first-message, AUTH
0x18 both ways, CONNACK with the server-final-message [MQTT-4.12.0-2], [MQTT-4.12.0-3],
[MQTT-4.12.0-5]), that the password never crosses the wire, that a server whose signature is
wrong is refused (mutual authentication), and that refusals by the server end the tools with
their exit codes (2 could not connect, 3 refused)."""

import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import threading

import pytest

from mqtt_raw import (AUTH, CONNACK, CONNECT, DISCONNECT, PUBACK, PUBLISH, SUBACK, SUBSCRIBE, P,
	Reader, decode, encode_props, packet, utf8)
from test_cli_parity import VIESTI, needs_cli

METHOD = "SCRAM-SHA-256"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")  # RFC 7677's
ITERATIONS = 4096


def scram_keys(password, salt=SALT, iterations=ITERATIONS):
	salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
	client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
	server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
	return hashlib.sha256(client_key).digest(), server_key


def read_packet(sock):
	"""Returns (type, flags, body, raw bytes) of the next packet, or None at EOF."""
	def exactly(n):
		out = b""
		while len(out) < n:
			chunk = sock.recv(n - len(out))
			if not chunk:
				return None
			out += chunk
		return out
	head = exactly(1)
	if head is None:
		return None
	raw, mult, length = head, 1, 0
	while True:
		b = exactly(1)
		if b is None:
			return None
		raw += b
		length += (b[0] & 0x7F) * mult
		mult *= 128
		if not b[0] & 0x80:
			break
	body = exactly(length) if length else b""
	if body is None:
		return None
	return head[0] >> 4, head[0] & 15, body, raw + body


def decode_connect(body):
	"""The fields of a 5.0 CONNECT that matter here."""
	r = Reader(body)
	c = {"proto": r.string(), "level": r.u8()}
	flags = r.u8()
	c["keepalive"] = r.u16()
	c["props"] = r.props()
	c["client_id"] = r.string()
	if flags & 0x04:
		r.props()
		r.string()
		r.binary()
	c["username"] = r.string() if flags & 0x80 else None
	c["password"] = r.binary() if flags & 0x40 else None
	return c


def auth_packet(rc, data):
	return packet(AUTH, 0, bytes([rc]) + encode_props([(P.AUTH_METHOD, METHOD),
		(P.AUTH_DATA, data)]))


def connack(rc, props=None):
	return packet(CONNACK, 0, bytes([0, rc]) + encode_props(props))


class ScramServer(threading.Thread):
	"""One connection of a SCRAM-SHA-256 MQTT 5 server. `password` is what it stores for
	`user`; `tamper` flips a bit of its ServerSignature; `refuse_at_once` answers the CONNECT
	with that reason code. After a successful CONNACK it acknowledges PUBLISH QoS 1, answers
	SUBSCRIBE with SUBACK followed by a message on the filter, answers a request carrying a
	Response Topic on that topic, and stops at DISCONNECT. Every packet and byte received is kept
	for the test to inspect."""

	def __init__(self, user="user", password="pencil", tamper=False, refuse_at_once=None):
		super().__init__(daemon=True)
		self.user, self.password = user, password
		self.tamper, self.refuse_at_once = tamper, refuse_at_once
		self.lsock = socket.socket()
		self.lsock.bind(("127.0.0.1", 0))
		self.lsock.listen(1)
		self.lsock.settimeout(20)
		self.port = self.lsock.getsockname()[1]
		self.wire = b""     # every byte the client sent
		self.packets = []   # (type, decoded) in order
		self.error = None
		self.connect = None

	def run(self):
		try:
			conn, _ = self.lsock.accept()
			conn.settimeout(20)
			with conn:
				self.serve(conn)
		except Exception as e:  # reported by the test through .error
			self.error = e
		finally:
			self.lsock.close()

	def recv(self, conn):
		p = read_packet(conn)
		if p is None:
			return None
		ptype, flags, body, raw = p
		self.wire += raw
		d = decode_connect(body) if ptype == CONNECT else decode(ptype, flags, body, 5)
		self.packets.append((ptype, d))
		return ptype, d

	def serve(self, conn):
		ptype, c = self.recv(conn)
		assert ptype == CONNECT
		self.connect = c
		if self.refuse_at_once is not None:
			conn.sendall(connack(self.refuse_at_once))
			return
		final = self.exchange(conn, c)
		if final is None:
			return
		conn.sendall(connack(0, [(P.AUTH_METHOD, METHOD), (P.AUTH_DATA, final)]))
		self.session(conn)

	def exchange(self, conn, c):
		"""The SCRAM server role; returns the server-final-message, or None after refusing."""
		first = c["props"].get(P.AUTH_DATA).decode()
		assert first.startswith("n,,"), first
		bare = first[3:]
		attrs = dict(a.split("=", 1) for a in bare.split(","))
		assert attrs["n"] == self.user.replace("=", "=3D").replace(",", "=2C"), attrs
		nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
		server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(SALT).decode(), ITERATIONS)
		conn.sendall(auth_packet(0x18, server_first.encode()))
		ptype, a = self.recv(conn)
		assert ptype == AUTH and a.rc == 0x18 and a.props.get(P.AUTH_METHOD) == METHOD
		client_final = a.props.get(P.AUTH_DATA).decode()
		without_proof, proof = client_final.rsplit(",p=", 1)
		assert without_proof == "c=biws,r=" + nonce, without_proof
		auth_message = ",".join((bare, server_first, without_proof)).encode()
		stored_key, server_key = scram_keys(self.password)
		signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
		client_key = bytes(x ^ y for x, y in zip(base64.b64decode(proof), signature))
		if hashlib.sha256(client_key).digest() != stored_key:
			conn.sendall(connack(0x87))  # Not authorized [MQTT-4.12.0-4]
			return None
		server_sig = bytearray(hmac.new(server_key, auth_message, hashlib.sha256).digest())
		if self.tamper:
			server_sig[0] ^= 1
		return b"v=" + base64.b64encode(bytes(server_sig))

	def session(self, conn):
		while True:
			p = self.recv(conn)
			if p is None or p[0] == DISCONNECT:
				return
			ptype, d = p
			if ptype == PUBLISH and d.qos == 1:
				conn.sendall(packet(PUBACK, 0, struct.pack("!H", d.pid)))
			if ptype == PUBLISH and P.RESPONSE_TOPIC in d.props:
				conn.sendall(packet(PUBLISH, 0, utf8(d.props.get(P.RESPONSE_TOPIC)) +
					encode_props(None) + b"pong"))
			if ptype == SUBSCRIBE:
				r = Reader(d.body)
				pid = r.u16()
				r.props()
				topic = r.string()
				conn.sendall(packet(SUBACK, 0, struct.pack("!H", pid) + encode_props(None) +
					b"\x00"))
				if not topic.startswith("resp"):
					conn.sendall(packet(PUBLISH, 0, utf8(topic) + encode_props(None) +
						b"hello"))


def run_tool(server, tool, *args, user="user", password="pencil"):
	server.start()
	r = subprocess.run([VIESTI, tool, "-h", "127.0.0.1", "-p", str(server.port),
		"--auth-method", METHOD, "-u", user, "-P", password] + list(args),
		capture_output=True, timeout=30)
	server.join(30)
	assert not server.is_alive()
	if server.error:
		raise server.error
	return r


def types(server):
	return [t for t, _ in server.packets]


@needs_cli
def test_pub_authenticates_and_never_sends_the_password():
	s = ScramServer()
	r = run_tool(s, "pub", "-t", "a/b", "-m", "hello", "-q", "1")
	assert r.returncode == 0, r.stderr
	assert types(s) == [CONNECT, AUTH, PUBLISH, DISCONNECT]
	c = s.connect
	assert c["level"] == 5  # --auth-method implies -V 5
	assert c["props"].get(P.AUTH_METHOD) == METHOD
	assert c["props"].get(P.AUTH_DATA).startswith(b"n,,n=user,r=")
	assert c["username"] is None and c["password"] is None  # in SCRAM's messages only
	assert b"pencil" not in s.wire
	assert s.packets[2][1].payload == b"hello"


@needs_cli
def test_user_names_are_escaped():
	s = ScramServer(user="a,b=c")
	r = run_tool(s, "pub", "-t", "t", "-m", "x", user="a,b=c")
	assert r.returncode == 0, r.stderr
	assert s.connect["props"].get(P.AUTH_DATA).startswith(b"n,,n=a=2Cb=3Dc,r=")


@needs_cli
def test_wrong_server_signature_fails_the_connection():
	s = ScramServer(tamper=True)
	r = run_tool(s, "pub", "-t", "a/b", "-m", "secret payload", "-q", "1")
	assert r.returncode == 1, r.stderr
	assert b"ServerSignature" in r.stderr
	# the client stopped at the CONNACK: no PUBLISH reached the impostor
	assert types(s) == [CONNECT, AUTH]
	assert b"secret payload" not in s.wire


@needs_cli
def test_wrong_password_is_refused_by_the_server():
	s = ScramServer()
	r = run_tool(s, "pub", "-t", "a/b", "-m", "x", password="pencil!")
	assert r.returncode == 0x87, r.stderr  # the CONNACK's reason, as mosquitto_pub
	assert b"Not authorized" in r.stderr
	assert b"pencil" not in s.wire


@needs_cli
def test_server_without_scram_refuses_at_once():
	s = ScramServer(refuse_at_once=0x8C)  # Bad authentication method [MQTT-4.12.0-1]
	r = run_tool(s, "pub", "-t", "a/b", "-m", "x")
	assert r.returncode == 0x8C, r.stderr
	assert b"Bad authentication method" in r.stderr
	assert types(s) == [CONNECT]


@needs_cli
def test_sub_authenticates():
	s = ScramServer()
	r = run_tool(s, "sub", "-t", "news", "-C", "1")
	assert r.returncode == 0, r.stderr
	assert r.stdout == b"hello\n"
	assert types(s)[:3] == [CONNECT, AUTH, SUBSCRIBE]
	assert b"pencil" not in s.wire


@needs_cli
def test_rr_authenticates():
	s = ScramServer()
	r = run_tool(s, "rr", "-t", "req", "-e", "resp/1", "-m", "ping", "-W", "10")
	assert r.returncode == 0, r.stderr
	assert r.stdout == b"pong\n"
	assert types(s)[:2] == [CONNECT, AUTH]
	assert b"pencil" not in s.wire


@needs_cli
@pytest.mark.parametrize("args, message", [
	(["--auth-method", "SCRAM-SHA-1", "-u", "u", "-P", "p"], b"Unknown authentication method"),
	(["--auth-method", METHOD, "-u", "u"], b"needs a username (-u) and a password (-P)"),
	(["--auth-method", METHOD, "-u", "u", "-P", "p", "-V", "311"], b"needs MQTT v5"),
])
def test_bad_auth_method_arguments(args, message):
	r = subprocess.run([VIESTI, "pub", "-t", "a", "-m", "x"] + args, capture_output=True,
		timeout=10)
	assert r.returncode == 1
	assert message in r.stderr
