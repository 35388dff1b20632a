"""Limits that hold under attack (issue 12, item 6), each while a well-behaved client keeps its
round trips: connection limits (per listener and global), idle sockets cut at the CONNECT
deadline, frames that claim 256 MB, a subscriber that stops reading (disconnected past
max_unsent_bytes, and never slowing the others), thousands of malformed packets, and
memory_limit reached and recovered.
"""

import resource
import socket
import threading
import time

import pytest

from conftest import wait_until
from mqtt_raw import CONNACK, PUBACK, PUBLISH, Closed, P, RawClient, varint
from test_hardening import Prober

pytestmark = [pytest.mark.viesti_only, pytest.mark.serial]


@pytest.fixture
def nofile():
	"""Raises this process's descriptor limit (inherited by the broker) to its hard limit."""
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
	yield hard
	resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def closed_soon(s, timeout=3.0):
	"""Whether the broker closes s within timeout."""
	s.settimeout(timeout)
	try:
		return s.recv(1) == b""
	except socket.timeout:
		return False
	except OSError:
		return True


def mqtt_connects(port):
	try:
		with RawClient(port) as c:
			return c.connect("probe-%f" % time.monotonic(), expect_rc=None).rc == 0
	except (OSError, Closed, TimeoutError):
		return False


def test_max_connections_per_listener_and_global(broker, tmp_path):
	b = broker("threads 1", "max_connections 4", "global_max_connections 6",
		"listener 0 %s" % (tmp_path / "u.sock"))
	b.wait_log(r"closed before CONNECT")  # the fixture's readiness probe no longer counts
	socks = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(4)]
	extra = socket.create_connection(("127.0.0.1", b.port))
	assert closed_soon(extra), "a fifth connection on a listener of max_connections 4"
	b.wait_log(r"connection\(s\) refused: max_connections \(4\) reached")
	units = []
	for _ in range(3):
		u = socket.socket(socket.AF_UNIX)
		u.connect(str(tmp_path / "u.sock"))
		units.append(u)
	# 4 + 2 = 6 open: the third unix connection is over global_max_connections
	assert closed_soon(units[2])
	assert not closed_soon(units[0], 0.3)
	b.wait_log(r"global_max_connections \(6\) reached")
	for s in socks + units + [extra]:
		s.close()
	wait_until(lambda: mqtt_connects(b.port), 5, what="a connection once others closed")


def test_idle_sockets_are_cut_at_the_connect_deadline(broker, nofile):
	"""15,000 sockets that connect and send nothing: the broker holds them until
	connect_timeout, then closes them all, while a client keeps its round trips."""
	n = min(15000, nofile - 500)
	b = broker("connect_timeout 3")
	prober = Prober(b.port)
	socks = []
	for _ in range(n):
		socks.append(socket.create_connection(("127.0.0.1", b.port), timeout=10))
	t0 = time.monotonic()
	prober.check(max_rtt=1.0, min_trips=10)
	wait_until(lambda: b.log_text().count("closed before CONNECT") > 0, 10)
	closed = sum(1 for s in socks[:200] if closed_soon(s, 10))
	assert closed == 200
	assert time.monotonic() - t0 < 15
	for s in socks:
		s.close()


def test_frames_that_claim_256mb_after_connect(broker):
	b = broker()
	prober = Prober(b.port)
	for version in (4, 5):
		with RawClient(b.port, version=version) as c:
			c.connect("big-%d" % version)
			c.send(bytes([PUBLISH << 4]) + varint(268435455) + b"\x00\x01t")
			got = c.wait_closed(5)
			if version == 5:
				assert got and got[-1].type == 14 and got[-1].rc == 0x95, got
	prober.check()


def test_malformed_packet_flood(broker):
	"""2,000 connections each sending garbage (a reserved packet type, bad remaining lengths,
	a CONNECT with a bad protocol name): each is closed; others are not disturbed."""
	b = broker()
	prober = Prober(b.port)
	bad = [b"\x00\x00", b"\x10\xff\xff\xff\xff\x01", b"\x10\x06\x00\x04MQTX\x04",
		b"\xf0\x00", b"\x30\x02\x00\x05"]
	for i in range(2000):
		try:
			with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
				s.sendall(bad[i % len(bad)])
		except OSError:
			pass
	prober.check(max_rtt=1.0, min_trips=10)
	wait_until(lambda: mqtt_connects(b.port), 5)


def test_a_subscriber_that_stops_reading(broker):
	"""One subscriber never reads; another reads; a publisher sends 2,000 QoS 1 messages of
	4 KiB. The one that stops reading is disconnected past max_unsent_bytes with a log line;
	the reader gets every message; the publisher is never throttled for the stuck one."""
	b = broker("max_unsent_bytes 1048576", "max_queued_messages 100000")
	st = RawClient(b.port)
	st.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	st.connect("stuck")
	st.subscribe([("flood/#", 1)])
	reader = RawClient(b.port)
	reader.connect("reader")
	reader.subscribe([("flood/#", 1)])
	got = []

	def read():
		while len(got) < 2000:
			p = reader.expect(PUBLISH, timeout=30)
			reader.puback(p.pid)
			got.append(p.topic)

	t = threading.Thread(target=read)
	t.start()
	payload = b"x" * 4096
	with RawClient(b.port) as pub:
		pub.connect("pub")
		window = []
		t0 = time.monotonic()
		for i in range(2000):
			window.append(pub.publish("flood/%d" % i, payload, qos=1, wait=False))
			if len(window) >= 20:
				pub.expect(PUBACK, timeout=10)
				window.pop(0)
		for _ in window:
			pub.expect(PUBACK, timeout=10)
		took = time.monotonic() - t0
	t.join(60)
	assert len(got) == 2000
	b.wait_log(r"client stuck \(.*\) disconnected: not reading: \d+ bytes unsent for \d+ ms "
		r"\(max_unsent_bytes 1048576\)", timeout=10)
	assert took < 20, "2,000 messages took %.1f s" % took
	st.close()
	reader.close()


def test_memory_limit_reached_and_recovered(broker):
	b = broker(start=False, env={"ASAN_OPTIONS": "quarantine_size_mb=0:detect_leaks=1:"
		"abort_on_error=0"})
	b.start()
	rss = b.proc_status("VmRSS") * 1024
	b.stop()
	limit = rss + 96 * 1024 * 1024
	b.lines.append("memory_limit %d" % limit)
	b.write_conf()
	b.start()
	prober = Prober(b.port, version=5, qos=0)  # QoS 0 goes on past the limit
	payload = b"m" * (1 << 20)
	refused = None
	with RawClient(b.port, version=5) as pub:
		pub.connect("filler")
		for i in range(400):
			ack = pub.publish("fill/%d" % i, payload, qos=1, retain=True)
			if ack.rc == 0x97:
				refused = i
				break
			time.sleep(0.005)
		assert refused is not None, "memory_limit never reached"
		b.wait_log(r"memory_limit reached: \d+ bytes resident")
		with RawClient(b.port, version=5) as c:
			assert c.connect("new", expect_rc=None).rc == 0x97
		with RawClient(b.port, version=4) as c:
			assert c.connect("new3", expect_rc=None).rc == 3
		prober.c.ping()  # connected clients go on (QoS 0 too)
		for i in range(refused):
			pub.publish("fill/%d" % i, b"", qos=0, retain=True)  # QoS 0 still goes
	b.wait_log(r"memory back under memory_limit", timeout=15)
	wait_until(lambda: mqtt_connects(b.port), 5)
	prober.check(max_rtt=2.0)
