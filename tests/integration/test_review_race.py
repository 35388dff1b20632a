"""Review: the trie holds raw session pointers; vs_route() delivers to them after the trie's read
lock is released (src/broker/router.c vs_route -> vs_deliver). A clean session that ends on
another worker meanwhile is freed under the router's feet."""

import threading
import time

import pytest

from conftest import Broker
from helpers import uid
from mqtt_raw import RawClient, packet, utf8, PUBLISH

pytestmark = pytest.mark.viesti_only


def _churn(port, stop, errors):
	while not stop.is_set():
		try:
			c = RawClient(port, 4, timeout=5)
			c.connect(uid("ch"), clean=True)
			c.subscribe(("race/t", 1))
			c.disconnect()
		except Exception as e:  # the broker may be gone (sanitizer abort)
			errors.append(e)
			return


def _flood(port, stop, errors):
	try:
		p = RawClient(port, 4, timeout=5)
		p.connect(uid("pub"))
		chunk = b"".join(p.publish_packet("race/t", b"x" * 16, qos=0) for _ in range(200))
		while not stop.is_set():
			p.send(chunk)
			p.ping(timeout=10)
	except Exception as e:
		errors.append(e)


def test_review_route_vs_session_end_race(tmp_path, clients):
	# Not the `broker` fixture: its teardown would turn the sanitizer report into an error
	# instead of this test's (expected) failure.
	# consolidate_threads false: the race needs threads that really run at once.
	b = Broker(tmp_path, ["threads 4", "consolidate_threads false", "max_queued_messages 4"],
		"race").start()
	try:
		_run(b, clients)
	finally:
		clients.close_all()
		problem = b.stop()
	report = b.sanitizer_report()
	assert not report, report[:3000]
	assert problem is None, problem


def _run(b, clients):
	# Many offline persistent subscribers make the delivery loop (the window) long.
	for i in range(1500):
		c = clients.raw(b.port, 4)
		c.connect("static-%d" % i, clean=False)
		c.subscribe(("race/t", 1))
		c.disconnect()
	stop = threading.Event()
	errors = []
	ts = [threading.Thread(target=_flood, args=(b.port, stop, errors)) for _ in range(2)]
	ts += [threading.Thread(target=_churn, args=(b.port, stop, errors)) for _ in range(6)]
	for t in ts:
		t.start()
	deadline = time.monotonic() + 20
	while time.monotonic() < deadline and b.alive() and not b.sanitizer_report():
		time.sleep(0.2)
	stop.set()
	for t in ts:
		t.join(15)
