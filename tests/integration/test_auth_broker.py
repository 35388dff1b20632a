"""Authentication in the broker (issue 12, item 5): password checks off the event loops, the
password formats (Mosquitto's $7$, Mosquitto 2.1's $argon2id$, $scram-sha-256$), and MQTT 5
enhanced authentication with SCRAM-SHA-256, checked with a SCRAM client written here (RFC 5802
with hashlib and hmac) and with viesti pub --auth-method.

A password check with Mosquitto 2.1's argon2id parameters costs ~165 ms and 46 MiB. Run on an
event loop, 200 wrong passwords would stop its clients for half a minute: the tests below
measure a well-behaved client's round trips while they arrive.
"""

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import TARGET_BIN, wait_until
from mqtt_raw import AUTH, CONNACK, DISCONNECT, P, RawClient
from test_hardening import Prober

pytestmark = [pytest.mark.viesti_only, pytest.mark.serial]

METHOD = "SCRAM-SHA-256"


def passwd(path, *users, hash_type=None):
	open(path, "w").close()
	for user, pw in users:
		args = [TARGET_BIN, "passwd", "-b"] + (["-H", hash_type] if hash_type else [])
		subprocess.run(args + [path, user, pw], check=True, capture_output=True, timeout=60)


def add_user(path, user, pw, hash_type):
	subprocess.run([TARGET_BIN, "passwd", "-b", "-H", hash_type, path, user, pw], check=True,
		capture_output=True, timeout=60)


class Scram:
	"""The client side of SCRAM-SHA-256 (RFC 5802 section 3)."""

	def __init__(self, user, password):
		self.user, self.password = user, password
		self.cnonce = base64.b64encode(os.urandom(18)).decode()
		self.bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.cnonce)

	def first(self):
		return ("n,," + self.bare).encode()

	def final(self, server_first):
		attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
		assert attrs["r"].startswith(self.cnonce)
		salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
		salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
		client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
		stored = hashlib.sha256(client_key).digest()
		without_proof = "c=biws,r=%s" % attrs["r"]
		auth_msg = ",".join([self.bare, server_first.decode(), without_proof]).encode()
		sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
		proof = bytes(a ^ b for a, b in zip(client_key, sig))
		server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
		self.server_sig = hmac.new(server_key, auth_msg, hashlib.sha256).digest()
		return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()


def auth_packet(c, reason, data):
	from mqtt_raw import encode_props, packet
	return packet(AUTH, 0, bytes([reason]) + encode_props({P.AUTH_METHOD: METHOD,
		P.AUTH_DATA: data}))


def scram_connect(port, user, password, client_id="scram", method=METHOD):
	"""Runs the exchange; returns (client, CONNACK, what crossed the wire from the client)."""
	c = RawClient(port, version=5)
	s = Scram(user, password)
	sent = c.connect_packet(client_id, props={P.AUTH_METHOD: method, P.AUTH_DATA: s.first()})
	c.send(sent)
	p = c.recv(5)
	if p.type != AUTH:
		return c, p, sent
	assert p.rc == 0x18 and p.props.get(P.AUTH_METHOD) == METHOD  # [MQTT-4.12.0-2], -5
	final = auth_packet(c, 0x18, s.final(p.props.get(P.AUTH_DATA)))
	c.send(final)
	ack = c.expect(CONNACK, timeout=5)
	if ack.rc == 0:
		assert ack.props.get(P.AUTH_METHOD) == METHOD
		assert ack.props.get(P.AUTH_DATA) == b"v=" + base64.b64encode(s.server_sig)
	return c, ack, sent + final


@pytest.fixture
def scram_broker(broker, tmp_path):
	pw = str(tmp_path / "passwd")
	passwd(pw, ("sam", "pencil"), hash_type="scram-sha-256")
	add_user(pw, "alice", "secret", "sha512-pbkdf2")
	return broker("password_file %s" % pw, "allow_anonymous false")


def test_scram_sha256_logs_in_without_the_password_on_the_wire(scram_broker):
	c, ack, wire = scram_connect(scram_broker.port, "sam", "pencil")
	assert ack.rc == 0
	assert b"pencil" not in wire
	c.ping()
	c.close()
	scram_broker.wait_log(r"client scram connected .*user sam, SCRAM\)")
	# the same $scram-sha-256$ line checks a plain password, and viesti pub speaks SCRAM
	with RawClient(scram_broker.port, version=5) as p:
		p.connect("plain", username="sam", password="pencil")
	r = subprocess.run([TARGET_BIN, "pub", "-p", str(scram_broker.port), "-u", "sam", "-P",
		"pencil", "--auth-method", METHOD, "-t", "t", "-m", "x"], capture_output=True,
		timeout=10)
	assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("user,password", [("sam", "wrong"), ("nobody", "pencil"),
	("alice", "secret")])
def test_scram_refusals_look_the_same(scram_broker, user, password):
	"""A wrong password, an unknown user and a user without SCRAM credentials all get a
	server-first-message and then 0x87: the exchange does not tell which."""
	c, ack, _ = scram_connect(scram_broker.port, user, password)
	assert ack.type == CONNACK and ack.rc == 0x87, ack
	c.wait_closed()


def test_scram_protocol_rules(scram_broker, broker):
	port = scram_broker.port
	# another method: 0x8C Bad authentication method [MQTT-4.12.0-1]
	c, ack, _ = scram_connect(port, "sam", "pencil", method="SCRAM-SHA-1")
	assert ack.type == CONNACK and ack.rc == 0x8C
	c.close()
	# before its CONNACK a client may send only AUTH or DISCONNECT [MQTT-3.1.2-30]
	with RawClient(port, version=5) as c:
		s = Scram("sam", "pencil")
		c.send(c.connect_packet("x", props={P.AUTH_METHOD: METHOD, P.AUTH_DATA: s.first()}))
		assert c.recv().type == AUTH
		c.send(b"\xc0\x00")  # PINGREQ
		got = c.wait_closed()  # refused before its CONNACK: with a CONNACK [MQTT-3.2.2-6]
		assert got and got[-1].type == CONNACK and got[-1].rc == 0x82, got
	# AUTH after CONNACK: re-authentication is not offered [MQTT-4.12.1-2]
	c, ack, _ = scram_connect(port, "sam", "pencil")
	assert ack.rc == 0
	c.send(auth_packet(c, 0x19, Scram("sam", "pencil").first()))
	got = c.wait_closed()
	assert got and got[-1].type == DISCONNECT, got
	# no password file: SCRAM cannot work, 0x8C
	b = broker()
	c, ack, _ = scram_connect(b.port, "sam", "pencil")
	assert ack.type == CONNACK and ack.rc == 0x8C
	c.close()


def test_argon2id_and_mosquitto_passwd_files(broker, tmp_path):
	pw = str(tmp_path / "passwd")
	passwd(pw, ("argo", "pw2"), hash_type="argon2id")
	subprocess.run(["mosquitto_passwd", "-b", pw, "mosq", "pw3"], check=True,
		capture_output=True, timeout=30)
	b = broker("password_file %s" % pw, "allow_anonymous false")
	for user, good in (("argo", "pw2"), ("mosq", "pw3")):
		with RawClient(b.port) as c:
			c.connect(user, username=user, password=good)
		with RawClient(b.port) as c:
			assert c.connect(user, username=user, password="bad", expect_rc=None).rc == 4


def test_wrong_password_flood_does_not_stall_the_loop(broker, tmp_path):
	"""200 concurrent CONNECTs with wrong passwords for an argon2id user (~165 ms of hashing
	each: half a minute if they ran on an event loop) while a client keeps its round trips."""
	pw = str(tmp_path / "passwd")
	passwd(pw, ("argo", "right"), hash_type="argon2id")
	b = broker("password_file %s" % pw, "allow_anonymous true", "threads 1")
	prober = Prober(b.port)
	socks = []
	for i in range(200):
		s = RawClient(b.port)
		s.send(s.connect_packet("evil%d" % i, username="argo", password="wrong"))
		socks.append(s)
	# The checks are answered in turn (one authentication thread): the first few, while the
	# prober keeps going; the rest are cut at the CONNECT deadline when their sockets close.
	for s in socks[:3]:
		assert s.expect(CONNACK, timeout=10).rc == 4
	prober.check(max_rtt=0.5, min_trips=20)
	for s in socks:
		s.close()


def test_a_check_nobody_waits_for_is_skipped(broker, tmp_path):
	"""Clients that send a CONNECT and leave cost no hashing: after 100 of them (16 s of
	argon2id on one thread if each were checked), a real login is answered at once."""
	pw = str(tmp_path / "passwd")
	passwd(pw, ("argo", "right"), hash_type="argon2id")
	b = broker("password_file %s" % pw, "allow_anonymous false")
	for i in range(100):
		with RawClient(b.port) as s:
			s.send(s.connect_packet("gone%d" % i, username="argo", password="wrong"))
	t0 = time.monotonic()
	with RawClient(b.port, timeout=30) as c:
		c.connect("real", username="argo", password="right")
	assert time.monotonic() - t0 < 5, "a login waited %.1f s behind abandoned checks" % (
		time.monotonic() - t0)
