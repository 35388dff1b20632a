"""Review: re-routing of a shared-subscription member's messages when its session ends
(src/broker/router.c reroute_shared -> vs_route)."""

import pytest

from mqtt_raw import P, PUBLISH
from helpers import uid


def _setup(b, clients):
	plain = clients.raw(b.port, 5)
	plain.connect(uid("plain"))
	plain.subscribe(("rr/t", 1))
	# The slow member: Receive Maximum 1, never acknowledges, session ends with the connection.
	slow = clients.raw(b.port, 5)
	slow.connect(uid("slow"), props={P.RECEIVE_MAXIMUM: 1})
	slow.subscribe(("$share/g/rr/t", 1))
	fast = clients.raw(b.port, 5)
	fast.connect(uid("fast"))
	fast.subscribe(("$share/g/rr/t", 1))
	pub = clients.raw(b.port, 5)
	pub.connect(uid("pub"))
	return plain, slow, fast, pub


@pytest.mark.viesti_only
def test_review_reroute_does_not_duplicate_to_plain_subscribers(broker, clients):
	b = broker()
	plain, slow, fast, pub = _setup(b, clients)
	for i in range(6):
		pub.publish("rr/t", b"%d" % i, qos=1)
	got = [p.payload for p in plain.publishes(6)]
	assert sorted(got) == [b"%d" % i for i in range(6)]
	slow.expect(PUBLISH)  # one inflight, the rest queued, none acknowledged
	slow.close()          # session expiry 0: the session ends, its messages go to the group
	fast.drain(0.8)
	again = [p.payload for p in plain.drain(0.8) if p.type == PUBLISH]
	assert again == [], "plain subscriber got re-routed copies: %r" % again


@pytest.mark.viesti_only
def test_review_reroute_does_not_rewrite_retained(broker, clients):
	b = broker()
	plain, slow, fast, pub = _setup(b, clients)
	for i in range(4):
		pub.publish("rr/t", b"%d" % i, qos=1, retain=True)
	first = slow.expect(PUBLISH)
	last = b"3"
	if first.payload == b"1":
		# slow holds 1 and 3; make sure the last retained went to the other member
		pub.publish("rr/t", b"4", qos=1, retain=True)
		last = b"4"
	plain.drain(0.3)
	slow.close()
	fast.drain(0.8)
	late = clients.raw(b.port, 5)
	late.connect(uid("late"))
	late.subscribe(("rr/t", 0))
	got = late.expect(PUBLISH)
	assert got.payload == last, "retained is %r, last published %r" % (got.payload, last)
