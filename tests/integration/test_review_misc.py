"""Review: will topics in $SYS, outgoing topic aliases for messages that were not sent."""

import pytest

from helpers import uid
from mqtt_raw import P, PUBLISH

pytestmark = pytest.mark.viesti_only


def test_review_will_cannot_publish_into_sys(broker, clients):
	b = broker()
	c = clients.raw(b.port, 4)
	# Refusing the CONNECT (Viesti: not authorised) or dropping the will are both fine.
	ack = c.connect(uid("evil"), expect_rc=None, will={"topic": "$SYS/broker/version",
		"payload": b"pwned", "retain": True})
	assert ack.rc in (0, 5), ack
	c.close()  # no DISCONNECT: a will, if accepted, would be published now
	s = clients.raw(b.port, 4)
	s.connect(uid())
	s.subscribe(("$SYS/broker/version", 0))
	got = [p.payload for p in s.drain(0.8) if p.type == PUBLISH]
	assert b"pwned" not in got, got


def test_review_alias_not_registered_for_dropped_message(broker, clients):
	b = broker()
	sub = clients.raw(b.port, 5)
	sub.connect(uid("sub"), props={P.MAXIMUM_PACKET_SIZE: 200, P.TOPIC_ALIAS_MAXIMUM: 5})
	sub.subscribe(("al/t", 0))
	pub = clients.raw(b.port, 5)
	pub.connect(uid("pub"))
	pub.publish("al/t", b"x" * 500)   # too large for sub: not sent [MQTT-3.1.2-25]
	pub.publish("al/t", b"small")
	p = sub.expect(PUBLISH)
	assert p.payload == b"small"
	assert p.topic == "al/t", "alias %r used before it was ever sent with its topic" % (
		p.props.get(P.TOPIC_ALIAS),)
