"""PUBLISH flows: QoS 0/1/2 in both directions, flow control, redelivery, exactly-once."""

import pytest

from mqtt_raw import DISCONNECT, P, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL
from helpers import uid


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_matrix(broker, clients, version, pub_qos, sub_qos):
	"""[MQTT-3.8.4-6]/3.3.5: delivered at min(publish QoS, granted QoS); the publisher's
	handshake completes with matching packet identifiers."""
	b = broker()
	sub = clients.raw(b.port, version)
	sub.connect(uid())
	ack = sub.subscribe(("q/t", sub_qos))
	assert ack.codes == [sub_qos]
	pub = clients.raw(b.port, version)
	pub.connect(uid())
	res = pub.publish("q/t", b"payload-%d" % pub_qos, qos=pub_qos, pid=77 if pub_qos else None)
	if pub_qos == 1:
		assert res.type == PUBACK and res.pid == 77 and res.rc in (0, 0x10)
	elif pub_qos == 2:
		assert res.type == PUBCOMP and res.pid == 77 and res.rc == 0
	p = sub.expect(PUBLISH)
	assert p.topic == "q/t" and p.payload == b"payload-%d" % pub_qos
	assert p.qos == min(pub_qos, sub_qos)
	assert (p.pid is not None) == (p.qos > 0)
	if p.qos == 2:
		sub.pubrec(p.pid)
		rel = sub.expect(PUBREL, pid=p.pid)
		assert rel.flags == 2  # [MQTT-3.6.1-1]
		sub.pubcomp(p.pid)
	elif p.qos == 1:
		sub.puback(p.pid)
	sub.no_publish(0.2)


def test_v5_puback_no_subscribers(broker, clients):
	"""PUBACK reason is Success or No matching subscribers (0x10, a MAY)."""
	b = broker()
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	assert pub.publish("nobody/here", b"x", qos=1).rc in (0x00, 0x10)
	assert pub.publish("nobody/here", b"x", qos=2).rc == 0x00


def test_ordering_qos1(broker, clients):
	"""[MQTT-4.6.0-6] messages on one topic from one publisher arrive in order."""
	b = broker()
	sub = clients.raw(b.port, 4)
	sub.connect(uid())
	sub.subscribe(("ord/#", 1))
	pub = clients.raw(b.port, 4)
	pub.connect(uid())
	for i in range(100):
		pub.publish("ord/t", b"%d" % i, qos=1, wait=False)
	got = sub.publishes(100, timeout=10)
	assert [int(p.payload) for p in got] == list(range(100))


def test_large_payload(broker, clients):
	b = broker()
	sub = clients.raw(b.port, 4)
	sub.connect(uid())
	sub.subscribe(("big", 1))
	pub = clients.raw(b.port, 4)
	pub.connect(uid())
	data = bytes(range(256)) * 1200  # 300 KiB, a 3-byte remaining length
	pub.publish("big", data, qos=1)
	assert sub.expect(PUBLISH, timeout=5).payload == data


def test_v5_client_receive_maximum_window(broker, clients):
	"""[MQTT-3.3.4-9] the server sends no more than the client's Receive Maximum of
	unacknowledged QoS 1/2 PUBLISHes."""
	b = broker()
	sub = clients.raw(b.port, 5)
	sub.connect(uid(), props={P.RECEIVE_MAXIMUM: 2})
	sub.subscribe(("rm/#", 1))
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	for i in range(6):
		pub.publish("rm/t", b"%d" % i, qos=1)
	first = [p for p in sub.drain(0.5, ack=False) if p.type == PUBLISH]
	assert [p.payload for p in first] == [b"0", b"1"]
	for p in first:
		sub.puback(p.pid)
	rest = sub.publishes(4, timeout=3)
	assert [p.payload for p in rest] == [b"2", b"3", b"4", b"5"]


@pytest.mark.viesti_only  # Mosquitto 2.0.11 sends two more after one PUBACK (3 unacked with a
# Receive Maximum of 2), violating [MQTT-3.3.4-9].
def test_v5_client_receive_maximum_refill_one_per_ack(broker, clients):
	b = broker()
	sub = clients.raw(b.port, 5)
	sub.connect(uid(), props={P.RECEIVE_MAXIMUM: 2})
	sub.subscribe(("rm/#", 1))
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	for i in range(6):
		pub.publish("rm/t", b"%d" % i, qos=1)
	first = [p for p in sub.drain(0.5, ack=False) if p.type == PUBLISH]
	assert len(first) == 2
	sub.puback(first[0].pid)
	more = [p for p in sub.drain(0.5, ack=False) if p.type == PUBLISH]
	assert [p.payload for p in more] == [b"2"]


def test_v5_broker_receive_maximum_advertised(broker, clients):
	"""3.2.2.3.3: CONNACK carries the server's Receive Maximum when it is below 65535."""
	b = broker("max_inflight_messages 3")
	c = clients.raw(b.port, 5)
	ack = c.connect(uid())
	assert ack.props.get(P.RECEIVE_MAXIMUM) == 3


@pytest.mark.viesti_only  # Mosquitto 2.0.11 answers the extra PUBLISH with PUBREC 0x97 and
# stays connected; 3.3.4 says the server "uses a DISCONNECT packet with Reason Code 0x93".
def test_v5_exceeding_broker_receive_maximum(broker, clients):
	b = broker("max_inflight_messages 2")
	c = clients.raw(b.port, 5)
	ack = c.connect(uid())
	assert ack.props.get(P.RECEIVE_MAXIMUM) == 2
	for pid in (1, 2, 3):
		c.publish("rmx/t", b"x", qos=2, pid=pid, wait=False)  # never PUBREL: stays unacked
	got = c.wait_closed()
	discs = [p for p in got if p.type == DISCONNECT]
	assert discs and discs[0].rc == 0x93, got
	ok = clients.raw(b.port, 5)
	ok.connect(uid())
	ok.ping()


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
def test_redelivery_with_dup_after_reconnect(broker, clients, version, qos):
	"""[MQTT-4.4.0-1] unacknowledged PUBLISHes are re-sent on session resumption with the
	original packet identifier and [MQTT-3.3.1-1] DUP=1."""
	b = broker()
	cid = uid("dup")
	kw = {"props": {P.SESSION_EXPIRY: 60}} if version == 5 else {}
	sub = clients.raw(b.port, version)
	sub.connect(cid, clean=False, **kw)
	sub.subscribe(("dup/t", qos))
	pub = clients.raw(b.port, version)
	pub.connect(uid())
	pub.publish("dup/t", b"again", qos=qos)
	first = sub.expect(PUBLISH)
	assert not first.dup and first.qos == qos
	sub.close()  # no ack
	sub = clients.raw(b.port, version)
	ack = sub.connect(cid, clean=False, **kw)
	assert ack.session_present
	again = sub.expect(PUBLISH)
	assert again.dup, "re-sent PUBLISH without DUP: %r" % again
	assert again.pid == first.pid and again.payload == b"again" and again.qos == qos
	sub.ack(again)
	sub.no_publish(0.3)


def test_qos2_pubrel_resent_after_reconnect(broker, clients):
	"""[MQTT-4.4.0-1] a PUBREL not yet completed is re-sent on resumption."""
	b = broker()
	cid = uid("rel")
	sub = clients.raw(b.port, 4)
	sub.connect(cid, clean=False)
	sub.subscribe(("rel/t", 2))
	pub = clients.raw(b.port, 4)
	pub.connect(uid())
	pub.publish("rel/t", b"x", qos=2)
	p = sub.expect(PUBLISH)
	sub.pubrec(p.pid)
	sub.expect(PUBREL, pid=p.pid)
	sub.close()  # no PUBCOMP
	sub = clients.raw(b.port, 4)
	sub.connect(cid, clean=False)
	rel = sub.expect(PUBREL)
	assert rel.pid == p.pid
	sub.pubcomp(rel.pid)
	sub.no_publish(0.3)


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_exactly_once_on_resend(broker, clients, version):
	"""4.3.3: a PUBLISH re-sent with the same packet identifier before PUBREL is not delivered
	again [MQTT-4.3.3-10]."""
	b = broker()
	sub = clients.raw(b.port, version)
	sub.connect(uid())
	sub.subscribe(("eo/t", 2))
	pub = clients.raw(b.port, version)
	pub.connect(uid())
	pub.send(pub.publish_packet("eo/t", b"once", qos=2, pid=5))
	assert pub.expect(PUBREC, pid=5)
	pub.send(pub.publish_packet("eo/t", b"once", qos=2, pid=5, dup=True))
	assert pub.expect(PUBREC, pid=5)
	pub.pubrel(5)
	assert pub.expect(PUBCOMP, pid=5).rc == 0
	got = [p for p in sub.drain(0.6) if p.type == PUBLISH]
	assert len(got) == 1 and got[0].payload == b"once", got
	# The identifier is free again: a new message with it is a new message.
	pub.publish("eo/t", b"second", qos=2, pid=5)
	assert sub.publishes(1)[0].payload == b"second"


def test_qos2_publisher_reconnect_pubrel(broker, clients):
	"""A publisher that got PUBREC and reconnects sends PUBREL; the broker answers PUBCOMP and
	the message is delivered exactly once."""
	b = broker()
	sub = clients.raw(b.port, 4)
	sub.connect(uid())
	sub.subscribe(("eo2/t", 2))
	cid = uid("p2")
	pub = clients.raw(b.port, 4)
	pub.connect(cid, clean=False)
	pub.send(pub.publish_packet("eo2/t", b"x", qos=2, pid=9))
	pub.expect(PUBREC, pid=9)
	pub.close()
	pub = clients.raw(b.port, 4)
	assert pub.connect(cid, clean=False).session_present
	pub.pubrel(9)
	pub.expect(PUBCOMP, pid=9)
	got = [p for p in sub.drain(0.6) if p.type == PUBLISH]
	assert len(got) == 1
