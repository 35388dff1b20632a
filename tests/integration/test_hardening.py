"""Hostile clients (issue 11): each attack an earlier review found, with the figure it measured,
while a well-behaved client keeps its round trips going.

1. A retained message on a 32,768-level topic cost ~1 GiB (every trie node copied the topic
   prefix): now linear, and topics deeper than max_topic_levels (default 200) are refused.
2. An unauthenticated CONNECT with a victim's client id disconnected the victim and published
   its will: authentication now comes before the take-over.
3. A take-over by another user handed over the queued messages: they are checked against the
   new user's read rights.
4. At the descriptor limit the accept loop spun (1.8 million log lines in 8 s): it backs off.
5. SUBSCRIBE cost grew with the square of a session's filters (100,000 took 76 s of CPU).
6. A '#' subscriber got 32,384 of 200,000 retained messages: they are now fed as the queue
   drains.
7. Eight CONNECTs claiming 256 MB took the broker to 1.6 GB: CONNECT size and the memory of all
   connections before CONNECT are bounded.
8. max_packet_size had no default: it is 16 MiB.
"""

import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import TARGET_BIN, wait_until
from mqtt_raw import (CONNACK, CONNECT, PUBACK, PUBLISH, SUBACK, Closed, P, RawClient, packet,
	utf8, varint)

pytestmark = [pytest.mark.viesti_only, pytest.mark.serial]


class Prober:
	"""A well-behaved client in a thread: a QoS 1 publish to a topic it subscribes to, then
	waiting for the message, every 20 ms. stop() returns (round trips, longest in seconds)."""

	def __init__(self, port, version=4, qos=1):
		self.qos = qos
		self.c = RawClient(port, version=version)
		self.c.connect("prober-%d" % os.getpid())
		self.topic = "probe/%d" % id(self)
		self.c.subscribe([(self.topic, 1)])
		self.rtts = []
		self.error = None
		self.done = threading.Event()
		self.t = threading.Thread(target=self._run, daemon=True)
		self.t.start()

	def _run(self):
		try:
			while not self.done.is_set():
				t0 = time.monotonic()
				self.c.publish(self.topic, b"ping", qos=self.qos, wait=False)
				got_ack, got_msg = self.qos == 0, False
				while not (got_ack and got_msg):
					p = self.c.recv(timeout=10.0)
					if p.type == PUBACK:
						got_ack = True
					elif p.type == PUBLISH:
						if p.qos:
							self.c.puback(p.pid)
						got_msg = True
				self.rtts.append(time.monotonic() - t0)
				self.done.wait(0.02)
		except Exception as e:  # reported by check()
			self.error = e

	def check(self, max_rtt=1.0, min_trips=3):
		"""Stops the prober (after at least min_trips); asserts it kept going: no error, no
		slow round trip."""
		deadline = time.monotonic() + 5
		while len(self.rtts) < min_trips and self.error is None and time.monotonic() < deadline:
			time.sleep(0.02)
		self.done.set()
		self.t.join(15)
		self.c.close()
		assert self.error is None, "well-behaved client failed: %r" % (self.error,)
		assert len(self.rtts) >= min_trips, "only %d round trips" % len(self.rtts)
		worst = max(self.rtts)
		assert worst <= max_rtt, "a round trip took %.3fs (%d trips)" % (worst, len(self.rtts))
		return len(self.rtts), worst


def deep_topic(levels):
	return "/".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(levels))


def make_passwd(tmp_path, users):
	path = str(tmp_path / "passwd")
	open(path, "w").close()
	for user, pw in users.items():
		subprocess.run([TARGET_BIN, "passwd", "-b", path, user, pw], check=True,
			capture_output=True, timeout=30)
	return path


# --- 1. deep topics ---------------------------------------------------------------------------

def test_deep_retained_topic_costs_linear_memory(broker, tmp_path):
	"""One retained PUBLISH on a 32,768-level (65,535-byte) topic: ~1 GiB and seconds of CPU
	before; now a few MB, and it survives a restart of the store just as cheaply."""
	store = tmp_path / "store"
	store.mkdir()
	b = broker("max_topic_levels 0", "persistence true", "persistence_location %s" % store)
	prober = Prober(b.port)
	topic = deep_topic(32768)
	assert len(topic) == 65535
	rss0, cpu0 = b.proc_status("VmRSS"), b.cpu_seconds()
	with RawClient(b.port) as pub:
		pub.connect("deep-pub")
		pub.publish(topic, b"deep", qos=1, retain=True)
	grew_mb = (b.proc_status("VmRSS") - rss0) / 1024
	cpu = b.cpu_seconds() - cpu0
	assert grew_mb < 64, "a deep retained topic cost %.0f MB" % grew_mb
	assert cpu < 2.0, "a deep retained topic cost %.1f s of CPU" % cpu
	with RawClient(b.port) as sub:
		sub.connect("deep-sub")
		sub.subscribe([("#", 0)])
		got = sub.expect(PUBLISH, timeout=10)
		assert got.topic == topic and got.payload == b"deep" and got.retain
	prober.check()
	b.restart()
	assert (b.proc_status("VmRSS")) / 1024 < 200, "restart with the deep topic stored"
	with RawClient(b.port) as sub:
		sub.connect("deep-sub2")
		sub.subscribe([("#", 0)])
		assert sub.expect(PUBLISH, timeout=10).topic == topic


def test_topics_deeper_than_max_topic_levels_are_refused(broker):
	b = broker("max_topic_levels 8")
	ok, deep = deep_topic(8), deep_topic(9)
	watcher = RawClient(b.port, version=5)
	watcher.connect("watcher")
	watcher.subscribe([("#", 1)])
	# 5.0: "Topic Name invalid" (0x90) in the acknowledgement; the connection stays
	with RawClient(b.port, version=5) as c:
		c.connect("v5")
		assert c.publish(ok, b"x", qos=1).rc == 0
		assert c.publish(deep, b"x", qos=1).rc == 0x90
		rec = c.publish(deep, b"x", qos=2)
		assert rec.type == 5 and rec.rc == 0x90  # PUBREC ends the flow
		c.ping()
		suback = c.subscribe([(deep, 0), (ok, 0), ("$share/g/" + deep, 0)])
		assert suback.codes == [0x8F, 0x00, 0x8F]
	# 3.1.1 cannot be told: the connection is closed, as Mosquitto does
	with RawClient(b.port) as c:
		c.connect("v311")
		assert c.subscribe([(deep, 0), (ok, 1)]).codes == [0x80, 0x01]
		c.publish(deep, b"x", qos=0)
		c.wait_closed()
	b.wait_log(r"client v311 .*disconnected: PUBLISH to a topic of more than 8 levels")
	# a deep will topic refuses the CONNECT
	with RawClient(b.port, version=5) as c:
		assert c.connect("w5", will={"topic": deep}, expect_rc=None).rc == 0x90
	got = [p.topic for p in watcher.drain(0.3)]
	assert got == [ok], got
	watcher.close()


# --- 2. authentication before take-over -------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
def test_unauthenticated_connect_does_not_kick_the_victim(broker, tmp_path, threads):
	"""Wrong or missing credentials with the victim's client id are refused, and the victim
	keeps its connection, its subscriptions, and its will unpublished."""
	pw = make_passwd(tmp_path, {"alice": "secret", "watch": "w"})
	b = broker("password_file %s" % pw, "allow_anonymous false", "threads %d" % threads,
		"consolidate_threads false")
	watcher = RawClient(b.port)
	watcher.connect("watcher", username="watch", password="w")
	watcher.subscribe([("will/#", 0), ("data/#", 0)])
	victim = RawClient(b.port, version=5)
	victim.connect("victim", username="alice", password="secret", clean=False,
		props={P.SESSION_EXPIRY: 300}, will={"topic": "will/victim", "payload": b"gone"})
	victim.subscribe([("data/#", 1)])
	for attempt in range(12):  # spread over both threads
		with RawClient(b.port) as evil:
			kw = [{}, {"username": "alice"}, {"username": "alice", "password": "guess"}][attempt % 3]
			ack = evil.connect("victim", expect_rc=None, clean=True, **kw)
			assert ack.rc in (4, 5), ack
			evil.wait_closed()
	assert victim.is_open(0.3), "the victim was disconnected"
	victim.ping()
	with RawClient(b.port) as pub:
		pub.connect("pub", username="watch", password="w")
		pub.publish("data/1", b"still-subscribed", qos=1)
	assert victim.expect(PUBLISH).payload == b"still-subscribed"
	assert [p.topic for p in watcher.drain(0.3) if p.topic.startswith("will/")] == []
	victim.close()
	watcher.close()


# --- 3. take-over by another user -------------------------------------------------------------

def test_takeover_by_another_user_gets_none_of_the_queued_messages(broker, tmp_path):
	pw = make_passwd(tmp_path, {"alice": "a", "bob": "b", "pub": "p"})
	acl = tmp_path / "acl"
	acl.write_text("user alice\ntopic read alice/#\n\nuser bob\ntopic read bob/#\n"
		"\nuser pub\ntopic write #\n")
	b = broker("password_file %s" % pw, "acl_file %s" % acl, "allow_anonymous false")
	alice = RawClient(b.port)
	alice.connect("shared-id", username="alice", password="a", clean=False)
	alice.subscribe([("alice/#", 1), ("bob/marker", 1)])
	alice.close()
	with RawClient(b.port) as pub:
		pub.connect("pub", username="pub", password="p")
		for i in range(10):
			pub.publish("alice/secret/%d" % i, b"for alice", qos=1)
		bob = RawClient(b.port)
		ack = bob.connect("shared-id", username="bob", password="b", clean=False)
		assert ack.session_present
		# The queue is sent in order: anything of alice's would come before this marker.
		pub.publish("bob/marker", b"marker", qos=1)
	got = []
	while True:
		p = bob.expect(PUBLISH, timeout=5)
		bob.ack(p)
		got.append(p.topic)
		if p.topic == "bob/marker":
			break
	assert got == ["bob/marker"], got
	b.wait_log(r"client shared-id: 10 message\(s\) dropped from the resumed session: user bob")
	bob.close()


def test_use_username_as_clientid_keeps_users_apart(broker, tmp_path):
	pw = make_passwd(tmp_path, {"alice": "a", "bob": "b"})
	b = broker("password_file %s" % pw, "allow_anonymous false", "use_username_as_clientid true")
	alice = RawClient(b.port)
	alice.connect("same", username="alice", password="a")
	bob = RawClient(b.port)
	bob.connect("same", username="bob", password="b")
	assert alice.is_open(0.3)  # without the option, bob took over "same"
	with RawClient(b.port) as anon:  # no username, no id to use
		assert anon.connect("x", expect_rc=None).rc == 5
	alice.close()
	bob.close()


# --- 4. the descriptor limit ------------------------------------------------------------------

def test_accept_at_the_descriptor_limit_does_not_spin(broker):
	"""With RLIMIT_NOFILE 64, connections beyond it are accepted and closed at once (a spare
	descriptor) or wait while the listener rests: the broker neither spins nor floods its log,
	its clients keep their round trips, and it accepts again once descriptors are free."""
	b = broker("threads 2", nofile=64)
	prober = Prober(b.port)
	held = []
	try:
		for _ in range(80):
			try:
				held.append(socket.create_connection(("127.0.0.1", b.port), timeout=2))
			except OSError:
				break
		b.wait_log(r"connection\(s\) refused: Too many open files", timeout=5)
		lines0 = b.log_text().count("\n")
		cpu0, t0 = b.cpu_seconds(), time.monotonic()
		deadline = t0 + 3.0
		tried = 0
		while time.monotonic() < deadline:
			try:
				s = socket.create_connection(("127.0.0.1", b.port), timeout=1)
				s.close()
			except OSError:
				pass
			tried += 1
		cpu = b.cpu_seconds() - cpu0
		wall = time.monotonic() - t0
		assert cpu < 0.5 * wall, "%.2f s of CPU in %.2f s at the descriptor limit (%d tries)" % (
			cpu, wall, tried)
		lines = b.log_text().count("connection(s) refused")
		assert lines <= 4, "%d refusal log lines" % lines
		# Connections that get in and close before CONNECT are logged 20 a second per
		# thread, then counted (3,600 lines in this test before).
		lines = b.log_text().count("\n") - lines0
		assert lines < 20 * 2 * (wall + 1) + 10, "%d log lines in %.1f s" % (lines, wall)
		prober.check(max_rtt=1.0)
	finally:
		for s in held:
			s.close()
	# Service is back once the broker has seen the held connections close (until then, a new
	# one is still refused at the limit: try again).
	def connects():
		try:
			with RawClient(b.port) as c:
				return c.connect("after").rc == 0
		except (OSError, Closed, TimeoutError):
			return False
	wait_until(connects, 10, what="a connection after the descriptors are free")


# --- 5. many filters --------------------------------------------------------------------------

def _subscribe_many(c, filters, per_packet=1000):
	for i in range(0, len(filters), per_packet):
		chunk = filters[i:i + per_packet]
		ack = c.subscribe([(f, 0) for f in chunk])
		assert ack.codes == [0] * len(chunk)


def test_100k_filters_cost_linear_time(broker):
	"""100,000 filters from one client (76 s of CPU before, Mosquitto 2.7 s), and 20,000 shared
	groups of one filter from another, while a third client keeps its round trips."""
	b = broker()
	prober = Prober(b.port)
	cpu0 = b.cpu_seconds()
	with RawClient(b.port, timeout=30) as c, RawClient(b.port, timeout=30) as g:
		c.connect("many-filters")
		g.connect("many-groups")
		_subscribe_many(c, ["f/%d/+/x" % i for i in range(100000)])
		_subscribe_many(g, ["$share/g%d/shared/topic" % i for i in range(20000)])
		cpu = b.cpu_seconds() - cpu0
		assert cpu < 15, "120,000 subscriptions took %.1f s of CPU" % cpu
		with RawClient(b.port) as pub:
			pub.connect("p")
			pub.publish("f/99999/y/x", b"hit", qos=0)
			assert c.expect(PUBLISH, timeout=10).topic == "f/99999/y/x"
		# re-subscribing one of them is a replacement, found at once
		assert c.subscribe([("f/500/+/x", 1)]).codes == [1]
		cpu0 = b.cpu_seconds()
	# both sessions end: 120,000 subscriptions leave the trie
	b.wait_log(r"client many-groups .*disconnected")
	b.wait_log(r"client many-filters .*disconnected")
	prober.check(max_rtt=1.5)
	with RawClient(b.port) as c:
		c.connect("later")
		c.ping()


# --- 6. retained messages on subscribe --------------------------------------------------------

def _publish_retained(port, n):
	with RawClient(port, timeout=30) as pub:
		pub.connect("retainer")
		blob = bytearray()
		for i in range(n):
			blob += pub.publish_packet("ret/%d" % i, b"v%d" % i, qos=0, retain=True)
			if len(blob) > 1 << 20:
				pub.send(bytes(blob))
				blob.clear()
		pub.send(bytes(blob))
		pub.publish("ret/last", b"last", qos=1, retain=True)  # in order: all are stored


def _receive_all(c, want, timeout):
	"""Reads PUBLISHes fast (QoS 1 acknowledged in batches); returns {topic: retain flag}."""
	seen = {}
	acks = bytearray()
	deadline = time.monotonic() + timeout
	buf = bytearray(c.buf)
	c.sock.settimeout(1.0)
	while len(seen) < want and time.monotonic() < deadline:
		try:
			data = c.sock.recv(1 << 20)
		except socket.timeout:
			continue
		if not data:
			break
		buf += data
		pos = 0
		while True:
			if len(buf) - pos < 2:
				break
			mult, length, i = 1, 0, pos + 1
			while i < len(buf):
				byte = buf[i]
				length += (byte & 0x7F) * mult
				i += 1
				if not byte & 0x80:
					break
				mult *= 128
			else:
				break
			if len(buf) < i + length:
				break
			first = buf[pos]
			if first >> 4 == PUBLISH:
				tlen = struct.unpack_from("!H", buf, i)[0]
				topic = bytes(buf[i + 2:i + 2 + tlen]).decode()
				seen[topic] = first & 1
				if (first >> 1) & 3:
					pid = struct.unpack_from("!H", buf, i + 2 + tlen)[0]
					acks += packet(PUBACK, 0, struct.pack("!H", pid))
			pos = i + length
		del buf[:pos]
		if acks:
			c.sock.sendall(bytes(acks))
			acks.clear()
	return seen


@pytest.mark.parametrize("qos", [0, 1])
def test_every_retained_message_reaches_a_new_subscriber(broker, qos):
	"""200,000 retained messages, a '#' subscriber with the default queue limit (1,000): every
	one arrives, retained, none dropped (32,384 arrived before)."""
	n = 200000
	b = broker()
	_publish_retained(b.port, n)
	prober = Prober(b.port)
	with RawClient(b.port, timeout=30) as c:
		c.connect("all-retained")
		c.send(c.subscribe_packet(1, [("ret/#", qos)]))
		seen = _receive_all(c, n + 1, timeout=120)
	assert len(seen) == n + 1, "%d of %d retained messages" % (len(seen), n + 1)
	assert all(seen.values()), "a retained message without RETAIN 1"
	assert "dropped" not in b.log_text()
	prober.check(max_rtt=2.0)


def test_max_retained_feed_bounds_what_waits(broker):
	b = broker("max_retained_feed 50")
	_publish_retained(b.port, 200)
	with RawClient(b.port) as c:
		c.connect("feed")
		c.send(c.subscribe_packet(1, [("ret/#", 0)]))
		seen = _receive_all(c, 201, timeout=3)
	assert len(seen) == 50
	b.wait_log(r"151 retained message\(s\) for 'ret/#' not sent: more than max_retained_feed")


# --- 7. memory before authentication ----------------------------------------------------------

def test_connects_claiming_256mb_cost_nothing(broker):
	"""Eight connections streaming a CONNECT that claims 256 MB: 1.6 GB before. The claim is
	over max_connect_packet_size (256 KiB), so each is closed on its fixed header."""
	b = broker()
	prober = Prober(b.port)
	hwm0 = b.proc_status("VmHWM")
	header = bytes([CONNECT << 4]) + varint(268435455)
	chunk = b"\0" * (1 << 20)

	def stream():
		try:
			with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
				s.sendall(header)
				for _ in range(64):
					s.sendall(chunk)
		except OSError:
			pass  # closed by the broker: the point

	threads = [threading.Thread(target=stream) for _ in range(8)]
	for t in threads:
		t.start()
	for t in threads:
		t.join(60)
	grew = (b.proc_status("VmHWM") - hwm0) / 1024
	assert grew < 100, "peak memory grew by %.0f MB" % grew
	b.wait_log(r"connection from 127\.0\.0\.1:\d+ closed before CONNECT: Packet too large")
	prober.check()


def test_connections_before_connect_share_a_memory_budget(broker):
	"""Many connections each sending most of a 200 KB CONNECT: past max_connecting_bytes the
	one that would add more is closed, with its address in the log; others stay."""
	b = broker("max_connecting_bytes 4000000")
	prober = Prober(b.port)
	body_len = 200000
	socks = []
	closed = 0
	for _ in range(40):
		s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
		s.sendall(bytes([CONNECT << 4]) + varint(body_len) + b"\0" * (body_len - 10))
		socks.append(s)
	b.wait_log(r"connection from 127\.0\.0\.1:\d+ closed before CONNECT: connections before "
		r"CONNECT hold \d+ bytes \(max_connecting_bytes 4000000\)", timeout=10)
	for s in socks:
		s.settimeout(2)
		try:
			if s.recv(1) == b"":
				closed += 1
		except socket.timeout:
			pass
		except OSError:
			closed += 1
		s.close()
	assert 10 <= closed < 40, "%d of 40 closed" % closed
	prober.check()


# --- 8. max_packet_size by default ------------------------------------------------------------

def test_max_packet_size_defaults_to_16_mib(broker):
	b = broker()
	with RawClient(b.port, version=5) as c:
		ack = c.connect("big")
		assert ack.props.get(P.MAXIMUM_PACKET_SIZE) == 16 * 1024 * 1024
		# The fixed header says 16 MiB + 8 bytes: refused on it, before the payload is read
		# (sending the payload too would make the close a reset that loses the DISCONNECT).
		c.send(c.publish_packet("big", b"\0" * (16 * 1024 * 1024), qos=0)[:100])
		got = c.wait_closed(10)
		assert got and got[-1].type == 14 and got[-1].rc == 0x95, got
	b.wait_log(r"client big .*disconnected: Packet too large")
	b2 = broker("max_packet_size 0")  # no limit, as Mosquitto's default
	with RawClient(b2.port, version=5) as c:
		ack = c.connect("big2")
		assert P.MAXIMUM_PACKET_SIZE not in ack.props
		c.publish("big", b"\0" * (17 * 1024 * 1024), qos=1)
