"""Every packet is handled once, and a reply the broker cannot send closes the connection.

The broker must never send a packet larger than the client's Maximum Packet Size
[MQTT-3.1.2-24]. When the reply a client waits for does not fit (or cannot be buffered), going on
would leave the client waiting for ever; before the handler contract (conn.h, enum vs_handled),
the failed reply also left the packet unconsumed, so it was handled again on every later read:
one QoS 1 PUBLISH reached its subscriber four times.
"""

import struct

from mqtt_raw import (CONNACK, PINGREQ, PINGRESP, PUBACK, PUBLISH, SUBACK, SUBSCRIBE, Closed,
	P, packet, utf8)
from helpers import uid


def _marker_after(b, clients, topic, sub):
	"""Publishes a marker at QoS 1 from a well-behaved client and returns every payload sub got
	up to and including it: whatever the broker routed before the marker is then in the list."""
	pub = clients.raw(b.port, 5)
	pub.connect(uid("mark"))
	pub.publish(topic, b"marker", qos=1)
	got = []
	while True:
		p = sub.expect(PUBLISH, timeout=5)
		got.append(p.payload)
		if p.qos:
			sub.puback(p.pid)
		if p.payload == b"marker":
			return got


def test_publish_from_client_that_cannot_take_its_connack_is_never_routed(broker, clients):
	"""The reported sequence: Maximum Packet Size 3 (no CONNACK fits), one QoS 1 PUBLISH in two
	pieces, three PINGREQs. The client is refused, and its PUBLISH reaches nobody (it reached
	the subscriber four times)."""
	b = broker()
	topic = "contract/" + uid("t")
	sub = clients.raw(b.port, 5)
	sub.connect(uid("sub"))
	sub.subscribe((topic, 1))

	bad = clients.raw(b.port, 5)
	cid = uid("tiny")
	bad.send(bad.connect_packet(cid, props={P.MAXIMUM_PACKET_SIZE: 3}))
	pub = bad.publish_packet(topic, b"once", qos=1, pid=1)
	try:
		bad.send(pub[:5])
		bad.send(pub[5:])
		for _ in range(3):
			bad.send(packet(PINGREQ, 0, b""))
	except OSError:
		pass  # the broker may already have closed
	got = bad.wait_closed(timeout=5)
	assert not [p for p in got if p.type == CONNACK], \
		"a CONNACK larger than the client's Maximum Packet Size was sent: %r" % got
	b.wait_log(r"client '%s' .*refused: CONNACK not sent: larger than the client's Maximum "
		r"Packet Size" % cid)
	assert "client %s connected" % cid not in b.log_text()
	assert _marker_after(b, clients, topic, sub) == [b"marker"]


def test_suback_larger_than_maximum_packet_size_closes(broker, clients):
	"""A SUBACK that cannot be sent closes the connection with a log line naming the client,
	rather than leave the client waiting for it (it used to go on without a SUBACK)."""
	b = broker()
	c = clients.raw(b.port, 5)
	cid = uid("small")
	ack = c.connect(cid, props={P.MAXIMUM_PACKET_SIZE: 64})
	assert ack.rc == 0
	# One return code per filter: 80 filters make a SUBACK of 85 bytes.
	body = struct.pack("!H", 7) + b"\x00"
	for i in range(80):
		body += utf8("f/%d" % i) + b"\x00"
	c.send(packet(SUBSCRIBE, 2, body))
	got = c.wait_closed(timeout=5)
	assert not [p for p in got if p.type == SUBACK], got
	b.wait_log(r"client %s .*disconnected: SUBACK not sent: larger than the client's Maximum "
		r"Packet Size \(64\)" % cid)
	# The broker goes on serving others.
	ok = clients.raw(b.port, 5)
	ok.connect(uid("ok"))
	assert ok.ping().type == PINGRESP


def test_each_packet_handled_once_when_split_across_reads(broker, clients):
	"""A QoS 1 PUBLISH that arrives in pieces, followed by PINGREQs in their own reads, is routed
	once and acknowledged once."""
	b = broker()
	topic = "contract/" + uid("t")
	sub = clients.raw(b.port, 5)
	sub.connect(uid("sub"))
	sub.subscribe((topic, 1))
	c = clients.raw(b.port, 5)
	c.connect(uid("pub"))
	pub = c.publish_packet(topic, b"once", qos=1, pid=9)
	for i in range(len(pub)):
		c.send(pub[i:i + 1])
	for _ in range(3):
		c.send(packet(PINGREQ, 0, b""))
	c.expect(PUBACK, pid=9)
	for _ in range(3):
		c.expect(PINGRESP)
	try:
		extra = c.recv(timeout=0.3)
	except (TimeoutError, Closed):
		extra = None
	assert extra is None, "a second reply: %r" % extra
	assert _marker_after(b, clients, topic, sub) == [b"once", b"marker"]
