"""Sessions: clean session / clean start, session present, offline queues, expiry, queue limits."""

import time

import pytest

from mqtt_raw import P, PUBLISH
from helpers import uid


def _persistent(clients, port, version, cid, **kw):
	c = clients.raw(port, version)
	if version == 5:
		kw.setdefault("props", {P.SESSION_EXPIRY: 300})
	ack = c.connect(cid, clean=kw.pop("clean", False), **kw)
	return c, ack


@pytest.mark.parametrize("version", [4, 5])
def test_session_present_flag(broker, clients, version):
	"""[MQTT-3.2.2-2]/[MQTT-3.2.2-3]: session present 1 when resuming a stored session,
	[MQTT-3.2.2-1] 0 after a clean session / clean start."""
	b = broker()
	cid = uid("sp")
	c, ack = _persistent(clients, b.port, version, cid)
	assert not ack.session_present
	c.subscribe(("sp/t", 1))
	c.disconnect()
	c, ack = _persistent(clients, b.port, version, cid)
	assert ack.session_present
	c.disconnect()
	c, ack = _persistent(clients, b.port, version, cid, clean=True)
	assert not ack.session_present


def test_clean_session_discards_subscriptions(broker, clients):
	"""[MQTT-3.1.2-6] a clean session's state ends with the connection."""
	b = broker()
	cid = uid("cs")
	c = clients.raw(b.port, 4)
	c.connect(cid, clean=True)
	c.subscribe(("cs/t", 1))
	c.disconnect()
	c = clients.raw(b.port, 4)
	ack = c.connect(cid, clean=False)
	assert not ack.session_present
	pub = clients.raw(b.port, 4)
	pub.connect(uid())
	pub.publish("cs/t", b"x", qos=1)
	c.no_publish(0.4)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
def test_offline_messages_delivered_on_reconnect(broker, clients, version, qos):
	"""[MQTT-3.1.2-5] QoS 1/2 messages for a disconnected persistent session are stored and
	delivered when it resumes."""
	b = broker()
	cid = uid("off")
	c, _ = _persistent(clients, b.port, version, cid)
	c.subscribe(("off/#", qos))
	c.disconnect()
	pub = clients.raw(b.port, version)
	pub.connect(uid())
	for i in range(5):
		pub.publish("off/%d" % i, b"m%d" % i, qos=qos)
	c, ack = _persistent(clients, b.port, version, cid)
	assert ack.session_present
	got = c.publishes(5)
	assert [p.payload for p in got] == [b"m%d" % i for i in range(5)]  # [MQTT-4.6.0-6]
	assert all(p.qos == qos for p in got)
	c.no_publish(0.3)


def test_v5_session_expiry_zero_ends_session(broker, clients):
	"""3.1.2.11.2: Session Expiry Interval absent (0): the session ends on disconnect."""
	b = broker()
	cid = uid("se0")
	c = clients.raw(b.port, 5)
	c.connect(cid, clean=False)
	c.subscribe(("se0/t", 1))
	c.disconnect()
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False)
	assert not ack.session_present


def test_v5_session_expiry_interval(broker, clients):
	"""3.1.2.11.2: the session survives the disconnect, then expires after the interval."""
	b = broker()
	cid = uid("se")
	c = clients.raw(b.port, 5)
	c.connect(cid, clean=True, props={P.SESSION_EXPIRY: 1})
	c.subscribe(("se/t", 1))
	c.disconnect()
	gone_at = time.monotonic() + 1.0
	# Still there inside the interval (reconnecting restarts the clock, so only once).
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False, props={P.SESSION_EXPIRY: 1})
	assert ack.session_present
	c.disconnect()
	time.sleep(2.6)
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False, props={P.SESSION_EXPIRY: 1})
	assert not ack.session_present, "session still present after its expiry interval"
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	pub.publish("se/t", b"x", qos=1)
	c.no_publish(0.3)


def test_v5_session_expiry_changed_on_disconnect(broker, clients):
	"""3.14.2.2.2: DISCONNECT may set a new Session Expiry Interval (non-zero CONNECT value)."""
	b = broker()
	cid = uid("sed")
	c = clients.raw(b.port, 5)
	c.connect(cid, clean=True, props={P.SESSION_EXPIRY: 1})
	c.subscribe(("sed/t", 1))
	c.disconnect(rc=0, props={P.SESSION_EXPIRY: 0})
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False)
	assert not ack.session_present


def test_max_queued_messages_drops_excess(broker, clients):
	"""The offline queue is bounded by max_queued_messages; excess messages are dropped, and the
	ones kept are delivered in order."""
	b = broker("max_queued_messages 2", "max_inflight_messages 1")
	cid = uid("mq")
	c, _ = _persistent(clients, b.port, 4, cid)
	c.subscribe(("mq/t", 1))
	c.disconnect()
	pub = clients.raw(b.port, 4)
	pub.connect(uid())
	for i in range(10):
		pub.publish("mq/t", b"%d" % i, qos=1)
	c, ack = _persistent(clients, b.port, 4, cid)
	got = [p for p in c.drain(1.0) if p.type == PUBLISH]
	assert 1 <= len(got) <= 3, "%d messages delivered from a queue limited to 2" % len(got)
	nums = [int(p.payload) for p in got]
	assert nums == sorted(nums)
