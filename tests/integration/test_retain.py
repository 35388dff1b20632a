"""Retained messages: store, replace, clear, delivery on subscribe and the RETAIN flag."""

import pytest

from mqtt_raw import PUBLISH
from helpers import uid


def _pub(b, clients, version=4):
	p = clients.raw(b.port, version)
	p.connect(uid("rp"))
	return p


def _sub_collect(b, clients, flt, version=4, qos=1, wait=0.4):
	s = clients.raw(b.port, version)
	s.connect(uid("rs"))
	s.subscribe((flt, qos))
	return s, [p for p in s.drain(wait) if p.type == PUBLISH]


@pytest.mark.parametrize("version", [4, 5])
def test_retained_delivered_on_subscribe(broker, clients, version):
	"""[MQTT-3.3.1-6] the retained message goes to new matching subscriptions, with
	[MQTT-3.3.1-8] RETAIN 1."""
	b = broker()
	p = _pub(b, clients, version)
	p.publish("rt/a", b"A", qos=1, retain=True)
	p.disconnect()  # outlives its publisher
	s, got = _sub_collect(b, clients, "rt/a", version)
	assert [(m.topic, m.payload, m.retain) for m in got] == [("rt/a", b"A", True)]


def test_retained_replaced(broker, clients):
	"""[MQTT-3.3.1-5] a new retained message replaces the old one."""
	b = broker()
	p = _pub(b, clients)
	p.publish("rt/r", b"old", qos=1, retain=True)
	p.publish("rt/r", b"new", qos=1, retain=True)
	s, got = _sub_collect(b, clients, "rt/r")
	assert [m.payload for m in got] == [b"new"]


def test_retained_cleared_by_empty_payload(broker, clients):
	"""[MQTT-3.3.1-10]/[MQTT-3.3.1-11] (3.1.1): an empty retained PUBLISH is forwarded as
	normal and removes the retained message; it is not stored itself."""
	b = broker()
	p = _pub(b, clients)
	p.publish("rt/c", b"x", qos=1, retain=True)
	live = clients.raw(b.port, 4)
	live.connect(uid())
	live.subscribe(("rt/c", 1))
	assert live.publishes(1)[0].payload == b"x"
	p.publish("rt/c", b"", qos=1, retain=True)
	m = live.publishes(1)[0]
	assert m.payload == b"" and m.topic == "rt/c"
	s, got = _sub_collect(b, clients, "rt/#")
	assert got == []


def test_retained_qos_downgraded(broker, clients):
	"""Retained messages are delivered at min(stored QoS, granted QoS)."""
	b = broker()
	p = _pub(b, clients)
	p.publish("rt/q2", b"2", qos=2, retain=True)
	p.publish("rt/q1", b"1", qos=1, retain=True)
	s, got = _sub_collect(b, clients, "rt/+", qos=2)
	assert sorted((m.payload, m.qos) for m in got) == [(b"1", 1), (b"2", 2)]
	s, got = _sub_collect(b, clients, "rt/+", qos=0)
	assert sorted((m.payload, m.qos) for m in got) == [(b"1", 0), (b"2", 0)]


def test_retained_wildcard_many(broker, clients):
	b = broker()
	p = _pub(b, clients)
	for i in range(20):
		p.publish("rt/many/%d" % i, b"%d" % i, qos=1, retain=True)
	p.publish("rt/other", b"o", qos=1, retain=True)
	s, got = _sub_collect(b, clients, "rt/many/#", wait=0.6)
	assert sorted(int(m.payload) for m in got) == list(range(20))
	assert all(m.retain for m in got)


@pytest.mark.parametrize("version", [4, 5])
def test_retained_then_live_flags(broker, clients, version):
	"""Retained copy on subscribe has RETAIN 1; later live messages to that subscription have
	RETAIN 0 [MQTT-3.3.1-9] (5.0 with Retain As Published 0 [MQTT-3.3.1-12])."""
	b = broker()
	p = _pub(b, clients, version)
	p.publish("rt/l", b"stored", qos=1, retain=True)
	s = clients.raw(b.port, version)
	s.connect(uid())
	s.subscribe(("rt/l", 1))
	first = s.publishes(1)[0]
	assert first.retain and first.payload == b"stored"
	p.publish("rt/l", b"live-retained", qos=1, retain=True)
	p.publish("rt/l", b"live", qos=1)
	live = s.publishes(2)
	assert [(m.payload, m.retain) for m in live] == [(b"live-retained", False), (b"live", False)]


def test_retained_qos0_replaces(broker, clients):
	"""[MQTT-3.3.1-7] a QoS 0 retained message discards the previous retained message."""
	b = broker()
	p = _pub(b, clients)
	p.publish("rt/z", b"qos1", qos=1, retain=True)
	p.publish("rt/z", b"qos0", qos=0, retain=True)
	p.ping()
	s, got = _sub_collect(b, clients, "rt/z")
	assert [m.payload for m in got] in ([b"qos0"], [])
