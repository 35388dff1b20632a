"""A loop turn's reads, and its writes, each in one io_uring system call (src/broker/iobatch.h,
conn.c vs_conn_prefetch, worker.c flush_all; `io_uring`): a fan-out's deliveries and a
fan-in's publishes go in batches and arrive whole and in order, also when they are too big for
one read or write, when one client of the batch has vanished, and when a packet is split
across reads; with `io_uring false` every read and write is its own call, and the same traffic
arrives the same. Where io_uring is unavailable (a seccomp profile, kernel.io_uring_disabled)
the broker says so and makes its calls one by one."""

import ctypes
import socket
import struct

import pytest

from conftest import wait_until
from helpers import uid
from http_util import scrape, value
from test_metrics import metrics_broker

pytestmark = pytest.mark.viesti_only  # io_uring and its metrics are Viesti's

ON = "io_uring: the reads and the sends of a loop turn go in one system call each"
UNAVAILABLE = "io_uring unavailable"


def io_uring_here():
	"""Whether this process may set up an io_uring (io_uring_setup, x86-64 and arm64: 425)."""
	libc = ctypes.CDLL(None, use_errno=True)
	params = ctypes.create_string_buffer(120)
	fd = libc.syscall(425, 4, params)
	if fd < 0:
		return False
	libc.close(fd)
	return True


def counters(b, what="write"):
	samples, _ = scrape(b.http)
	return (value(samples, "viesti_batched_%ss_total" % what),
		value(samples, "viesti_%s_batches_total" % what))


def subscribers(clients, port, n, tag):
	"""n subscribers to TAG/t, MQTT 3.1.1 and 5 in turn, at QoS 1 and 2 in turn."""
	subs = []
	for i in range(n):
		s = clients.raw(port, 5 if i % 2 else 4)
		s.connect(uid("%ss%d" % (tag, i)))
		s.subscribe(("%s/t" % tag, 1 + i % 2))
		subs.append(s)
	return subs


def fan_out(clients, port, n_subs=20, count=60, payload=b"", tag="fo"):
	"""One publisher, n_subs subscribers at QoS 1 and 2 (MQTT 3.1.1 and 5): each gets every
	message once, in order, with its payload intact."""
	subs = subscribers(clients, port, n_subs, tag)
	p = clients.raw(port, 4)
	p.connect(uid(tag + "p"))
	for n in range(count):
		p.publish("%s/t" % tag, b"%d:" % n + payload, qos=1, wait=False)
	for s in subs:
		got = s.publishes(count, timeout=30)
		assert [int(m.payload.split(b":", 1)[0]) for m in got] == list(range(count))
		assert all(m.payload.split(b":", 1)[1] == payload for m in got)
	return p, subs


def test_a_fan_out_goes_in_batches_and_arrives_whole_and_in_order(broker, clients):
	b = metrics_broker(broker, "threads 1", "log_type all")
	fan_out(clients, b.port)
	batched, batches = counters(b)
	if not io_uring_here():
		assert UNAVAILABLE in b.log_text()
		assert (batched, batches) == (0, 0)
		pytest.skip("io_uring is unavailable here: the broker sends one by one")
	assert ON in b.log_text()
	# 20 subscribers' deliveries made in the same turns: several writes per system call.
	assert batches > 0
	assert batched >= 2 * batches


def fan_in(clients, port, n_pubs=20, count=50, payload=b"", tag="fi"):
	"""n_pubs publishers at once to one subscriber, QoS 1 and 2: every message once, in order
	per publisher, intact."""
	sub = clients.raw(port, 5)
	sub.connect(uid(tag + "s"))
	sub.subscribe(("%s/#" % tag, 2))
	pubs = []
	for i in range(n_pubs):
		p = clients.raw(port, 5 if i % 2 else 4)
		p.connect(uid("%sp%d" % (tag, i)))
		pubs.append(p)
	for n in range(count):
		for i, p in enumerate(pubs):
			p.publish("%s/%d" % (tag, i), b"%d:" % n + payload, qos=1 + (n + i) % 2, wait=False)
	got = sub.publishes(n_pubs * count, timeout=30)
	for i in range(n_pubs):
		mine = [m.payload.split(b":", 1) for m in got if m.topic == "%s/%d" % (tag, i)]
		assert [int(k) for k, _ in mine] == list(range(count))
		assert all(rest == payload for _, rest in mine)
	return pubs, sub


def test_a_fan_in_is_read_in_batches_and_arrives_whole_and_in_order(broker, clients):
	b = metrics_broker(broker, "threads 1")
	fan_in(clients, b.port)
	batched, batches = counters(b, "read")
	if not io_uring_here():
		assert (batched, batches) == (0, 0)
		pytest.skip("io_uring is unavailable here: the broker reads one by one")
	# 20 publishers writing at once: several of them readable in the same wait.
	assert batches > 0
	assert batched >= 2 * batches


@pytest.mark.parametrize("uring", ["true", "false"])
def test_publishes_bigger_than_a_read_arrive_whole(broker, clients, uring):
	"""300 KiB messages from 6 publishers at once: a batch's read takes 64 KiB of one, the
	rest follows in the next reads into the connection's own buffer."""
	b = metrics_broker(broker, "threads 1", "io_uring " + uring)
	fan_in(clients, b.port, n_pubs=6, count=8, payload=b"y" * (300 * 1024), tag="bigin" + uring)
	if uring == "false" or not io_uring_here():
		assert counters(b, "read") == (0, 0)


def test_a_packet_split_across_reads_is_whole(broker, clients):
	"""Publishers that write each PUBLISH in two parts, the split moving through the packet:
	a batch's read may end inside a packet, whose rest the next read completes."""
	b = metrics_broker(broker, "threads 1")
	sub = clients.raw(b.port, 4)
	sub.connect(uid("splits"))
	sub.subscribe(("split/#", 1))
	pubs = []
	for i in range(12):
		p = clients.raw(b.port, 4)
		p.connect(uid("splitp%d" % i))
		pubs.append(p)
	count = 40

	def halves(i, n):
		topic = ("split/%d" % i).encode()
		body = struct.pack(">H", len(topic)) + topic + struct.pack(">H", n + 1) + b"%d" % n
		pkt = bytes([0x32, len(body)]) + body  # PUBLISH QoS 1
		cut = 1 + (n + i) % (len(pkt) - 1)
		return pkt[:cut], pkt[cut:]

	for n in range(count):
		for half in range(2):
			for i, p in enumerate(pubs):
				p.sock.sendall(halves(i, n)[half])
	got = sub.publishes(12 * count, timeout=30)
	for i in range(12):
		assert [int(m.payload) for m in got if m.topic == "split/%d" % i] == list(range(count))


def test_with_io_uring_false_each_write_is_its_own(broker, clients):
	b = metrics_broker(broker, "threads 1", "log_type all", "io_uring false")
	fan_out(clients, b.port, tag="off")
	fan_in(clients, b.port, tag="offin")
	assert counters(b) == (0, 0)
	assert counters(b, "read") == (0, 0)
	text = b.log_text()
	assert ON not in text and UNAVAILABLE not in text


@pytest.mark.parametrize("uring", ["true", "false"])
def test_deliveries_bigger_than_a_write_arrive_whole(broker, clients, uring):
	"""256 KiB messages to 8 subscribers: a batch's sends take part of them (a short write), the
	rest waits for EPOLLOUT and follows in order."""
	b = metrics_broker(broker, "threads 1", "io_uring " + uring)
	fan_out(clients, b.port, n_subs=8, count=12, payload=b"x" * (256 * 1024), tag="big" + uring)
	batched, _ = counters(b)
	assert batched > 0 if uring == "true" and io_uring_here() else batched == 0


def test_a_vanished_subscriber_does_not_stop_the_others(broker, clients):
	b = metrics_broker(broker, "threads 1", "log_type all")
	subs = subscribers(clients, b.port, 10, "gone")
	# Subscriber 3 goes with a reset (no FIN first): its connection fails, at a read or at a
	# write of a batch, whichever comes first, while the other nine go on. (A send that fails
	# inside a batch alone: test_broker_iobatch.c.)
	gone = subs.pop(3)
	gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
	gone.sock.close()
	p = clients.raw(b.port, 4)
	p.connect(uid("gonep"))
	for n in range(50):
		p.publish("gone/t", b"%d" % n, qos=1, wait=False)
	for s in subs:
		assert [int(m.payload) for m in s.publishes(50, timeout=20)] == list(range(50))
	# Its connection ends; the nine and the publisher stay.
	wait_until(lambda: value(scrape(b.http)[0], "viesti_clients_connected") == 10, timeout=10)
	assert b.alive()
