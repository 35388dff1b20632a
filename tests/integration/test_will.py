"""Will messages: when they are and are not published, 5.0 Will Delay, retained wills."""

import time

import pytest

from mqtt_raw import P, PUBLISH
from helpers import uid


def _watcher(b, clients, flt="will/#", version=4):
	w = clients.raw(b.port, version)
	w.connect(uid("watch"))
	w.subscribe((flt, 1))
	return w


def _willed(b, clients, version=4, cid=None, will_props=None, retain=False, **kw):
	c = clients.raw(b.port, version)
	will = {"topic": "will/" + (cid or "x"), "payload": b"gone", "qos": 1, "retain": retain}
	if will_props:
		will["props"] = will_props
	c.connect(cid or uid("w"), will=will, **kw)
	return c


@pytest.mark.parametrize("version", [3, 4, 5])
def test_will_on_abnormal_disconnect(broker, clients, version):
	"""[MQTT-3.1.2-8] the will is published when the connection closes without DISCONNECT."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, version, cid="abn%d" % version)
	c.close()
	m = w.expect(PUBLISH, timeout=3)
	assert (m.topic, m.payload, m.qos) == ("will/abn%d" % version, b"gone", 1)


def test_will_on_keepalive_timeout(broker, clients):
	"""3.1.2.5: a keep-alive failure is an abnormal close: the will is published."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, 4, cid="ka", keepalive=1)
	t0 = time.monotonic()
	m = w.expect(PUBLISH, timeout=9)
	assert m.topic == "will/ka" and time.monotonic() - t0 >= 1.0


@pytest.mark.parametrize("version", [4, 5])
def test_no_will_after_normal_disconnect(broker, clients, version):
	"""[MQTT-3.1.2-10] (5.0: [MQTT-3.1.2-10] / 3.14.4) DISCONNECT 0x00 discards the will."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, version, cid="norm")
	c.disconnect()
	w.no_publish(0.6)


def test_v5_will_after_disconnect_with_will(broker, clients):
	"""3.14.2.1: DISCONNECT reason 0x04 (Disconnect with Will Message) publishes the will."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, 5, cid="dww")
	c.disconnect(rc=0x04)
	m = w.expect(PUBLISH, timeout=3)
	assert m.topic == "will/dww" and m.payload == b"gone"


def test_v5_will_properties_passthrough(broker, clients):
	"""3.1.3.2: will properties travel with the will message."""
	b = broker()
	w = clients.raw(b.port, 5)
	w.connect(uid())
	w.subscribe(("will/#", 1))
	_willed(b, clients, 5, cid="wp", will_props={
		P.CONTENT_TYPE: "text/plain", P.PAYLOAD_FORMAT: 1, P.RESPONSE_TOPIC: "will/reply",
		P.USER_PROPERTY: [("k", "v1"), ("k", "v2")]}).close()
	m = w.expect(PUBLISH, timeout=3)
	assert m.props.get(P.CONTENT_TYPE) == "text/plain"
	assert m.props.get(P.PAYLOAD_FORMAT) == 1
	assert m.props.get(P.RESPONSE_TOPIC) == "will/reply"
	assert m.props.user() == [("k", "v1"), ("k", "v2")]


def test_v5_will_delay_interval(broker, clients):
	"""[MQTT-3.1.3-9] the will is published after the Will Delay Interval, not before."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, 5, cid="wd", clean=True, will_props={P.WILL_DELAY: 2},
		props={P.SESSION_EXPIRY: 30})
	t0 = time.monotonic()
	c.close()
	m = w.expect(PUBLISH, timeout=6)
	dt = time.monotonic() - t0
	assert m.topic == "will/wd"
	assert dt >= 1.8, "will published after %.2fs, before its 2 s delay" % dt


def test_v5_will_delay_cancelled_by_reconnect(broker, clients):
	"""[MQTT-3.1.3-9] a new connection to the session within the delay: no will."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, 5, cid="wdc", clean=True, will_props={P.WILL_DELAY: 2},
		props={P.SESSION_EXPIRY: 30})
	c.close()
	again = clients.raw(b.port, 5)
	assert again.connect("wdc", clean=False, props={P.SESSION_EXPIRY: 30}).session_present
	w.no_publish(3.2)


def test_v5_will_at_session_end_before_delay(broker, clients):
	"""3.1.3.2.2: the will is published when the session ends, if that comes before the Will
	Delay Interval (session expiry 1 s, will delay 30 s)."""
	b = broker()
	w = _watcher(b, clients)
	c = _willed(b, clients, 5, cid="wse", clean=True, will_props={P.WILL_DELAY: 30},
		props={P.SESSION_EXPIRY: 1})
	c.close()
	m = w.expect(PUBLISH, timeout=5)
	assert m.topic == "will/wse"


@pytest.mark.parametrize("version", [4, 5])
def test_retained_will(broker, clients, version):
	"""[MQTT-3.1.2-17] Will Retain 1: the will is published as a retained message."""
	b = broker()
	live = _watcher(b, clients)
	c = _willed(b, clients, version, cid="wr", retain=True)
	c.close()
	assert live.expect(PUBLISH, timeout=4).topic == "will/wr"
	w = _watcher(b, clients)
	m = w.expect(PUBLISH, timeout=4)
	assert m.topic == "will/wr" and m.retain and m.payload == b"gone"


def _marker(b, clients, w):
	"""Publishes will/marker and returns the topics w got up to it (so that a will the broker
	routed before it is in the list, without waiting for a silence)."""
	p = clients.raw(b.port, 4)
	p.connect(uid("mark"))
	p.publish("will/marker", b"m", qos=1)
	got = []
	while True:
		m = w.expect(PUBLISH, timeout=5)
		w.puback(m.pid)
		got.append(m.topic)
		if m.topic == "will/marker":
			return got


# (version, old connection's session kept, new connection resumes it, will published)
TAKEOVERS = [
	(4, True, True, False),   # 3.1.1 clean session 0 twice: a reconnection, as Mosquitto
	(4, True, False, True),   # the new connection starts clean: the session ends
	(4, False, True, True),   # the old session ended with its connection
	(5, True, True, False),   # [MQTT-3.1.2-8] a new connection before the will was due
	(5, True, False, True),
	(5, False, True, True),
]


@pytest.mark.parametrize("version,kept,resumes,will", TAKEOVERS)
def test_will_on_takeover_only_when_the_session_ends(broker, clients, version, kept, resumes,
		will):
	"""A take-over that resumes a persistent session sends no will of the old connection; one
	where the session ends does. Several rounds, so that the old and new connections land on
	the same worker and on different ones."""
	b = broker()
	w = _watcher(b, clients)
	for r in range(6):
		cid = "tko%d%d%d%d" % (version, kept, resumes, r)
		props = {P.SESSION_EXPIRY: 60 if kept else 0} if version == 5 else None
		old = _willed(b, clients, version, cid=cid, clean=not kept, props=props)
		new = clients.raw(b.port, version)
		ack = new.connect(cid, clean=not resumes,
			props={P.SESSION_EXPIRY: 60} if version == 5 else None)
		assert ack.session_present == (kept and resumes)
		old.wait_closed(timeout=5)
		got = _marker(b, clients, w)
		wills = [t for t in got if t == "will/" + cid]
		assert len(wills) == (1 if will else 0), "round %d: got %r" % (r, got)
		new.disconnect()
