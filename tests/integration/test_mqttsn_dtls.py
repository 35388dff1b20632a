"""MQTT-SN over DTLS: an `mqttsn` listener with a certificate, or a PSK, driven by OpenSSL's own
DTLS client (`openssl s_client -dtls1_2`), a client whose DTLS we did not write.

s_client sends what it reads from stdin as one record (one MQTT-SN message per write, as long as
each write is answered before the next), and prints what it decrypts. Messages we send end in a
newline, which s_client keeps: the client id or payload ends with it and the length byte counts
it.
"""

import os
import select
import socket
import struct
import subprocess
import time

import pytest

import pki as pki_mod
from conftest import wait_until
from test_mqttsn import free_udp_port, paho_drain, udp_bound

pytestmark = pytest.mark.viesti_only

OPENSSL = pki_mod.OPENSSL


def sn_msg(t, body):
	n = len(body) + 2
	assert n < 256 and n != 0x0A  # a newline inside would split the record
	return bytes([n, t]) + body


def connect_msg(client_id):
	"""CONNECT, clean session, keep-alive 30 s; the client id ends with the newline."""
	return sn_msg(0x04, bytes([0x04, 0x01]) + struct.pack(">H", 30) + client_id + b"\n")


def publish_short(topic2, payload):
	"""PUBLISH QoS 0 to a two-character short name; the payload ends with the newline."""
	return sn_msg(0x0C, bytes([0x02]) + topic2 + b"\x00\x00" + payload + b"\n")


class DTLSClient:
	"""openssl s_client as an MQTT-SN over DTLS client."""

	def __init__(self, port, *args):
		if OPENSSL is None:
			pytest.skip("no openssl command")
		self.proc = subprocess.Popen(
			[OPENSSL, "s_client", "-dtls1_2", "-connect", "127.0.0.1:%d" % port, "-quiet",
			 "-ign_eof"] + list(args),
			stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
		self.buf = b""

	def send(self, data):
		self.proc.stdin.write(data)
		self.proc.stdin.flush()

	def recv(self, timeout=5.0):
		"""The next whole MQTT-SN message the gateway sent, or None."""
		deadline = time.monotonic() + timeout
		while True:
			if self.buf and len(self.buf) >= self.buf[0] > 0:
				n = self.buf[0]
				m, self.buf = self.buf[:n], self.buf[n:]
				return m
			rem = deadline - time.monotonic()
			if rem <= 0 or self.proc.poll() is not None and not self._readable(0):
				return None
			if self._readable(rem):
				chunk = os.read(self.proc.stdout.fileno(), 65536)
				if not chunk:
					return None
				self.buf += chunk

	def _readable(self, t):
		return bool(select.select([self.proc.stdout], [], [], t)[0])

	def close(self):
		if self.proc.poll() is None:
			self.proc.kill()
		self.proc.wait(5)
		for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
			try:
				f.close()
			except OSError:
				pass

	def stderr(self):
		self.close()
		return self.proc.stderr.read().decode("utf-8", "replace") if not self.proc.stderr.closed \
			else ""


@pytest.fixture
def dtls_clients():
	made = []

	def make(port, *args):
		c = DTLSClient(port, *args)
		made.append(c)
		return c

	yield make
	for c in made:
		c.close()


def dtls_broker(broker, *lines):
	"""A broker with an anonymous TCP listener (for paho) and a DTLS mqttsn listener."""
	udp = free_udp_port()
	b = broker(start=False)
	b.sn_port = udp
	# Security per listener: the TCP one stays anonymous for paho, the DTLS one has its own.
	with open(b.conf_path, "w") as f:
		f.write("per_listener_settings true\nlistener %d 127.0.0.1\nallow_anonymous true\n"
			"listener %d 127.0.0.1\nprotocol mqttsn\n" % (b.port, udp))
		f.write("".join(line + "\n" for line in lines))
	b.start()
	wait_until(lambda: udp_bound("127.0.0.1", udp, socket.AF_INET), 5.0, what="UDP bound")
	wait_until(lambda: "running with" in b.log_text(), 10.0, what="workers started")
	return b


def watch(clients, b, topic):
	w = clients.paho(b.port)
	w.subscribe(topic, 0)
	return w


def test_dtls_psk_client_connects_with_its_identity_and_publishes(broker, pki, clients,
								  dtls_clients):
	"""PSK, the small devices' choice: the PSK identity admits the client (allow_anonymous
	false on the listener) and becomes its username in the log and for the ACL."""
	b = dtls_broker(broker, "psk_hint viesti-sn", "psk_file %s" % pki["psk_file"],
		"allow_anonymous false")
	w = watch(clients, b, "ab")
	c = dtls_clients(b.sn_port, "-psk_identity", pki_mod.PSK_IDENTITY, "-psk", pki_mod.PSK_KEY)
	c.send(connect_msg(b"dtls-psk"))
	assert c.recv() == b"\x03\x05\x00"  # CONNACK accepted
	c.send(publish_short(b"ab", b"over dtls"))
	got = []
	assert paho_drain(w, got.append, lambda: got, 5), "no message over DTLS"
	assert got[0].payload == b"over dtls\n"
	wait_until(lambda: "user %s" % pki_mod.PSK_IDENTITY in b.log_text(), 5,
		what="the PSK identity as the client's username in the connect line")


def test_dtls_wrong_psk_fails_the_handshake(broker, pki, dtls_clients):
	b = dtls_broker(broker, "psk_hint viesti-sn", "psk_file %s" % pki["psk_file"],
		"allow_anonymous false")
	c = dtls_clients(b.sn_port, "-psk_identity", pki_mod.PSK_IDENTITY, "-psk", "ff" * 16)
	c.send(connect_msg(b"dtls-bad"))
	# DTLS drops records it cannot authenticate (RFC 6347 4.1.2.7) rather than failing: the
	# handshake never completes, and nothing the client sends reaches the gateway.
	assert c.recv(3) is None
	assert "client dtls-bad" not in b.log_text()


def test_dtls_client_certificate_required(broker, pki, clients, dtls_clients):
	"""require_certificate: a certificate from the CA connects, as its CN (alice); none, no
	handshake."""
	b = dtls_broker(broker, "certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1],
		"cafile %s" % pki["ca"], "require_certificate true", "allow_anonymous false")
	w = watch(clients, b, "ab")
	c = dtls_clients(b.sn_port, "-CAfile", pki["ca"], "-cert", pki["client"][0], "-key",
		pki["client"][1])
	c.send(connect_msg(b"dtls-cert"))
	assert c.recv() == b"\x03\x05\x00"
	c.send(publish_short(b"ab", b"signed"))
	got = []
	assert paho_drain(w, got.append, lambda: got, 5)
	assert got[0].payload == b"signed\n"
	wait_until(lambda: "user alice" in b.log_text(), 5, what="the CN as the username")

	anon = dtls_clients(b.sn_port, "-CAfile", pki["ca"])
	anon.send(connect_msg(b"dtls-nocert"))
	assert anon.recv(3) is None
	assert "client dtls-nocert" not in b.log_text()


def test_dtls_without_identity_follows_allow_anonymous(broker, pki, dtls_clients):
	"""A server certificate only: the client has no identity, so allow_anonymous false refuses
	its CONNECT (CONNACK 0x03) after a good handshake."""
	b = dtls_broker(broker, "certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1],
		"allow_anonymous false")
	c = dtls_clients(b.sn_port, "-CAfile", pki["ca"])
	c.send(connect_msg(b"dtls-anon"))
	assert c.recv() == b"\x03\x05\x03"


def test_plain_mqttsn_to_a_dtls_listener_gets_nothing(broker, pki):
	"""A DTLS listener never answers cleartext MQTT-SN."""
	b = dtls_broker(broker, "certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1])
	with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
		s.settimeout(0.7)
		s.sendto(connect_msg(b"plain")[:-1] + b"x", ("127.0.0.1", b.sn_port))
		with pytest.raises(socket.timeout):
			s.recvfrom(2048)
	assert "client plain" not in b.log_text()
