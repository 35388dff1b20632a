"""GET /metrics (issue 17 item 2): the Prometheus text format 0.0.4, parsed with the Prometheus
client library's own parser, and values that follow what each test does: clients, sessions,
subscriptions, messages received, retained and queued, auth failures, connections per
listener, the persistence commit histogram, per-thread load, the process metrics. Scrapes do
not disturb the broker: many at once while messages flow."""

import threading
import time

import pytest

from conftest import free_port, wait_until
from helpers import uid
from http_util import wait_listening, basic, get, http_lines, scrape, value

pytestmark = pytest.mark.viesti_only

GAUGES = ["viesti_clients_connected", "viesti_sessions", "viesti_subscriptions",
	"viesti_retained_messages", "viesti_queued_messages", "viesti_inflight_messages",
	"viesti_thread_load", "process_resident_memory_bytes", "process_open_fds",
	"process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"]
COUNTERS = ["viesti_messages_received", "viesti_messages_sent", "viesti_messages_dropped",
	"viesti_bytes_received", "viesti_bytes_sent", "viesti_connections",
	"viesti_auth_failures", "viesti_publishers_slowed", "viesti_publishers_resumed",
	"viesti_batched_writes", "viesti_write_batches", "viesti_batched_reads",
	"viesti_read_batches",
	"process_cpu_seconds"]


def metrics_broker(broker, *more):
	port = free_port()
	b = broker("sys_interval 0", *http_lines(port), *more)
	b.http = port
	wait_listening(port)
	return b


def test_format_families_and_types(broker):
	b = metrics_broker(broker, "threads 2")
	status, hdrs, body = get(b.http)
	text = body.decode()
	samples, families = scrape(b.http)
	for name in GAUGES:
		assert families[name].type == "gauge", name
	for name in COUNTERS:
		assert families[name].type == "counter", name
	assert families["viesti_persist_commit_seconds"].type == "histogram"
	for name in GAUGES + [n + "_total" for n in COUNTERS]:
		base = name[:-6] if name.endswith("_total") else name
		assert "# HELP %s " % name in text or "# HELP %s " % base in text, name
		assert "# TYPE %s " % name in text or "# TYPE %s " % base in text, name
	assert {dict(k[1])["thread"] for k in samples if k[0] == "viesti_thread_load"} == {"0", "1"}
	for k, v in samples.items():
		if k[0] == "viesti_thread_load":
			assert 0 <= v <= 1
	assert value(samples, "process_resident_memory_bytes") > 1e6
	assert value(samples, "process_virtual_memory_bytes") >= \
		value(samples, "process_resident_memory_bytes")
	assert value(samples, "process_open_fds") >= 5
	assert value(samples, "process_max_fds") >= value(samples, "process_open_fds")
	assert abs(value(samples, "process_start_time_seconds") - time.time()) < 120
	assert value(samples, "process_cpu_seconds_total") > 0


def test_clients_sessions_and_subscriptions(broker, clients):
	b = metrics_broker(broker)
	listener = "127.0.0.1:%d" % b.port
	# The fixture's readiness probe is a connection too; it may be counted after the first
	# scrape unless we wait for it (the CI run where this read 4 instead of 3).
	wait_until(lambda: value(scrape(b.http)[0], "viesti_connections_total",
		listener=listener) >= 1, 5, what="the readiness probe to be counted")
	s0, _ = scrape(b.http)
	cs = []
	for i in range(3):
		c = clients.raw(b.port, 4)
		c.connect(uid("m"), clean=False)
		c.subscribe([("m/%d/a" % i, 1), ("m/%d/b" % i, 0)])
		cs.append(c)
	s1, _ = scrape(b.http)
	assert value(s1, "viesti_clients_connected") == value(s0, "viesti_clients_connected") + 3
	assert value(s1, "viesti_sessions") == value(s0, "viesti_sessions") + 3
	assert value(s1, "viesti_subscriptions") == value(s0, "viesti_subscriptions") + 6
	cs[0].disconnect()

	def one_less():
		s, _ = scrape(b.http)
		return value(s, "viesti_clients_connected") == value(s0, "viesti_clients_connected") + 2
	wait_until(one_less, 5, what="clients_connected to drop")
	s2, _ = scrape(b.http)
	assert value(s2, "viesti_sessions") == value(s0, "viesti_sessions") + 3  # it persists
	assert value(s2, "viesti_connections_total", listener=listener) == \
		value(s0, "viesti_connections_total", listener=listener) + 3
	hl = "127.0.0.1:%d" % b.http
	assert value(s2, "viesti_connections_total", listener=hl) >= 3  # the scrapes themselves


def test_messages_received_retained_and_queued(broker, clients):
	b = metrics_broker(broker)
	# A persistent subscriber goes offline: what it is sent waits in its queue.
	sub = clients.raw(b.port, 4)
	sid = uid("offline")
	sub.connect(sid, clean=False)
	sub.subscribe([("q/#", 1)])
	sub.disconnect()
	wait_until(lambda: value(scrape(b.http)[0], "viesti_clients_connected") == 0, 5,
		what="the subscriber to be gone")
	s0, _ = scrape(b.http)
	pub = clients.raw(b.port, 4)
	pub.connect(uid("pub"))
	m = 25
	for i in range(m):
		pub.publish("q/%d" % i, b"x" * 10, qos=1)
	for i in range(3):
		pub.publish("r/%s/%d" % (sid, i), b"kept", qos=1, retain=True)
	s1, _ = scrape(b.http)
	assert value(s1, "viesti_messages_received_total") == \
		value(s0, "viesti_messages_received_total") + m + 3
	assert value(s1, "viesti_retained_messages") == value(s0, "viesti_retained_messages") + 3
	assert value(s1, "viesti_queued_messages") == value(s0, "viesti_queued_messages") + m
	assert value(s1, "viesti_bytes_received_total") > value(s0, "viesti_bytes_received_total")
	# Back online: the queue is sent; acknowledged, nothing is inflight any more.
	sub2 = clients.raw(b.port, 4)
	sub2.connect(sid, clean=False)
	for _ in range(m):
		sub2.ack(sub2.expect(3))

	def drained():
		s, _ = scrape(b.http)
		return (value(s, "viesti_queued_messages") == value(s0, "viesti_queued_messages") and
			value(s, "viesti_inflight_messages") == 0 and
			value(s, "viesti_messages_sent_total") >=
			value(s0, "viesti_messages_sent_total") + m)
	wait_until(drained, 5, what="the queue to drain")
	# A retained message cleared.
	pub.publish("r/%s/0" % sid, b"", qos=1, retain=True)
	s3, _ = scrape(b.http)
	assert value(s3, "viesti_retained_messages") == value(s0, "viesti_retained_messages") + 2


def test_queue_full_drops_are_counted(broker, clients):
	b = metrics_broker(broker, "max_queued_messages 5")
	sub = clients.raw(b.port, 4)
	sid = uid("full")
	sub.connect(sid, clean=False)
	sub.subscribe([("full/#", 1)])
	sub.disconnect()
	wait_until(lambda: value(scrape(b.http)[0], "viesti_clients_connected") == 0, 5,
		what="the subscriber to be gone")
	s0, _ = scrape(b.http)
	pub = clients.raw(b.port, 4)
	pub.connect(uid("pub"))
	for i in range(8):
		pub.publish("full/%d" % i, b"x", qos=1)
	s1, _ = scrape(b.http)
	assert value(s1, "viesti_messages_dropped_total", reason="queue_full") == \
		value(s0, "viesti_messages_dropped_total", reason="queue_full") + 3
	assert value(s1, "viesti_queued_messages") == value(s0, "viesti_queued_messages") + 5


def test_auth_failures_counted(broker, clients, tmp_path):
	from test_http import make_passwd
	pw = make_passwd(tmp_path, ("admin", "pw"))
	b = metrics_broker(broker, "allow_anonymous false", "password_file " + pw,
		"http_admin admin")
	auth = {"Authorization": basic("admin", "pw")}
	s0, _ = scrape(b.http, auth)
	c = clients.raw(b.port, 4)
	c.connect(uid("bad"), username="admin", password=b"wrong", expect_rc=4)
	c2 = clients.raw(b.port, 4)
	c2.connect(uid("anon"), expect_rc=5)
	assert get(b.http, headers={"Authorization": basic("admin", "nope")})[0] == 401
	s1, _ = scrape(b.http, auth)
	assert value(s1, "viesti_auth_failures_total") == value(s0, "viesti_auth_failures_total") + 3


def test_persist_commit_histogram(broker, clients, tmp_path):
	b = metrics_broker(broker, "persistence true", "persistence_location %s" % tmp_path)
	c = clients.raw(b.port, 4)
	c.connect(uid("p"), clean=False)
	c.subscribe([("p/#", 1)])
	for i in range(10):
		c.publish("p/%d" % i, b"x", qos=1)
	samples, fams = scrape(b.http)
	buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
		if k[0] == "viesti_persist_commit_seconds_bucket"))
	assert buckets[-1][0] == float("inf")
	counts = [v for _, v in buckets]
	assert counts == sorted(counts), "buckets are not cumulative"
	count = value(samples, "viesti_persist_commit_seconds_count")
	assert count >= 10 and counts[-1] == count
	assert 0 < value(samples, "viesti_persist_commit_seconds_sum") < count


def test_many_scrapes_while_publishing(broker, clients):
	"""Scrapes take no lock a PUBLISH waits for: 8 scrapers at once while a publisher sends
	QoS 1 messages to a subscriber; every scrape answers and every message arrives."""
	b = metrics_broker(broker, "threads 2")
	sub = clients.raw(b.port, 4)
	sub.connect(uid("sub"))
	sub.subscribe([("load/#", 1)])
	pub = clients.raw(b.port, 4)
	pub.connect(uid("pub"))
	stop = threading.Event()
	errors, done = [], [0]

	def scraper():
		while not stop.is_set():
			try:
				scrape(b.http)
				done[0] += 1
			except Exception as e:  # noqa: BLE001 - reported below
				errors.append(repr(e))
				return
	threads = [threading.Thread(target=scraper) for _ in range(8)]
	for t in threads:
		t.start()
	n = 400
	t0 = time.monotonic()
	for i in range(n):
		pub.publish("load/%d" % i, b"y" * 100, qos=1)
	got = 0
	while got < n:
		sub.ack(sub.expect(3, timeout=10))
		got += 1
	elapsed = time.monotonic() - t0
	stop.set()
	for t in threads:
		t.join(10)
	assert not errors, errors[:3]
	assert done[0] >= 8
	assert elapsed < 30
	s, _ = scrape(b.http)
	assert value(s, "viesti_clients_connected") == 2
