"""Review: backpressure overshoot (src/broker/router.c overshoot()) and max_queued_bytes."""

import time

import pytest

from helpers import uid
from mqtt_raw import P, PUBLISH, PUBACK

pytestmark = pytest.mark.viesti_only


def test_review_queued_bytes_bounded_for_connected_subscriber(broker, clients):
	b = broker("max_queued_messages 0", "max_queued_bytes 4000")
	sub = clients.raw(b.port, 5)
	sub.connect(uid("slow"), props={P.RECEIVE_MAXIMUM: 1})
	sub.subscribe(("bp/t", 1))
	pub = clients.raw(b.port, 5)
	pub.connect(uid("pub"))
	n = 400
	pids = []
	for i in range(n):
		pids.append(pub.publish("bp/t", b"%04d" % i + b"x" * 1000, qos=1, wait=False))
	for pid in pids:  # every PUBLISH was handled (throttling only delays it)
		pub.expect(PUBACK, pid=pid, timeout=20)
	got = 0
	while True:
		try:
			p = sub.expect(PUBLISH, timeout=1.0)
		except TimeoutError:
			break
		sub.puback(p.pid)
		got += 1
	# 4000 bytes of ~1 KB payloads: a handful queued, one in flight. Allow 16x, as for counts.
	assert got <= 16 * 4 + 1, "%d messages (%d KB) were queued for one subscriber " \
		"with max_queued_bytes 4000" % (got, got)
