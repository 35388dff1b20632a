"""Review: persistence replay order (src/broker/connect.c attach_session + router.c
vs_router_end_session + restore.c on_session/on_session_del)."""

import shutil
import tempfile

import pytest

from conftest import wait_until
from helpers import uid
from mqtt_raw import P, PUBLISH

pytestmark = pytest.mark.viesti_only


@pytest.fixture
def data_dir():
	d = tempfile.mkdtemp(prefix="viesti-rv-")
	yield d
	shutil.rmtree(d, ignore_errors=True)


def pbroker(broker, d, *extra):
	return broker("persistence true", "persistence_location %s/" % d, *extra)


def clean_start_replacement(b, clients, cid):
	"""A persistent session subscribed to old/t, then Clean Start 1 with an expiry: the old
	session ends and a new persistent one begins, subscribed (acknowledged) to new/t."""
	c = clients.raw(b.port, 5)
	c.connect(cid, clean=True, props={P.SESSION_EXPIRY: 600})
	c.subscribe(("old/t", 1))
	c.disconnect()
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=True, props={P.SESSION_EXPIRY: 600})
	assert not ack.session_present
	assert c.subscribe(("new/t", 1)).codes == [1]  # SUBACK: acknowledged, so it must survive
	return c


def test_review_clean_start_replacement_session_survives_kill9(broker, clients, data_dir):
	b = pbroker(broker, data_dir)
	cid = uid("cs")
	clean_start_replacement(b, clients, cid)
	b.kill()  # right after the SUBACK, the client still connected
	b.start()
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600})
	assert ack.session_present, "acknowledged persistent session lost after kill -9"
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	pub.publish("new/t", b"x", qos=1)
	assert [m.payload for m in c.drain(0.6) if m.type == PUBLISH] == [b"x"]


def test_review_clean_start_replacement_subscription_survives_kill9(broker, clients, data_dir):
	b = pbroker(broker, data_dir)
	cid = uid("cs")
	c = clean_start_replacement(b, clients, cid)
	c.disconnect()  # offline now: the SESSION record is written again
	# Both connections' graceful ends are logged once the broker has handled them.
	done = "client %s (" % cid
	wait_until(lambda: sum(1 for line in b.log_text().splitlines()
		if done in line and "disconnected: client sent DISCONNECT" in line) >= 2, 5,
		what="the broker to handle the DISCONNECT")
	b.kill()
	b.start()
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	pub.publish("new/t", b"x", qos=1)
	c = clients.raw(b.port, 5)
	ack = c.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600})
	assert ack.session_present
	got = [m.payload for m in c.drain(0.6) if m.type == PUBLISH]
	assert got == [b"x"], "message for the acknowledged subscription lost: %r" % got


def test_review_retained_redelivery_survives_kill9(broker, clients, data_dir):
	b = pbroker(broker, data_dir)
	pub = clients.raw(b.port, 4)
	pub.connect(uid("pub"))
	pub.publish("rd/t", b"v", qos=1, retain=True)
	cid = uid("rd")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe(("rd/t", 1))
	m = s.expect(PUBLISH)
	s.puback(m.pid)       # done: DEQUEUE
	s.ping()
	s.subscribe(("rd/t", 1))  # [MQTT-3.8.4-3] the retained message is sent again
	m2 = s.expect(PUBLISH)
	assert m2.payload == b"v"  # not acknowledged: it must be sent again after a restart
	# No wait: output leaves only after the records of its turn are written.
	b.kill()
	b.start()
	s = clients.raw(b.port, 4)
	ack = s.connect(cid, clean=False)
	assert ack.session_present
	got = [p.payload for p in s.drain(0.8) if p.type == PUBLISH]
	assert got == [b"v"], "unacknowledged QoS 1 message lost after kill -9: %r" % got
