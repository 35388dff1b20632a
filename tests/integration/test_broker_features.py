"""Broker-level behaviour: worker threads, persistence across restarts, many clients."""

import os
import shutil
import tempfile

import pytest

from helpers import uid
from mqtt_raw import PUBLISH


@pytest.mark.viesti_only  # `threads` is a Viesti directive
def test_threads_cross_worker_fanout(broker, clients):
	"""With several workers, clients land on different threads; every subscriber still gets
	every message, in order per publisher. Consolidation is off so that the two threads
	really run at once (test_threads.py covers one thread running both shards)."""
	b = broker("threads 2", "consolidate_threads false")
	subs = []
	for i in range(8):
		s = clients.raw(b.port, 5 if i % 2 else 4)
		s.connect(uid("ts%d" % i))
		s.subscribe(("thr/#", 1))
		subs.append(s)
	pubs = []
	for i in range(4):
		p = clients.raw(b.port, 4)
		p.connect(uid("tp%d" % i))
		pubs.append(p)
	for n in range(25):
		for i, p in enumerate(pubs):
			p.publish("thr/%d" % i, b"%d" % n, qos=1, wait=False)
	for s in subs:
		got = s.publishes(100, timeout=10)
		for i in range(4):
			mine = [int(m.payload) for m in got if m.topic == "thr/%d" % i]
			assert mine == list(range(25))


def test_many_clients(broker, clients):
	b = broker()
	subs = []
	for i in range(50):
		s = clients.raw(b.port, 4)
		s.connect(uid("mc%d" % i))
		s.subscribe(("many/t", 0))
		subs.append(s)
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("many/t", b"all", qos=1)
	for s in subs:
		assert s.expect(PUBLISH).payload == b"all"


@pytest.fixture
def data_dir():
	"""A world-writable directory outside pytest's private tmp tree: Mosquitto started as root
	drops to the `mosquitto` user and could not write under tmp_path."""
	d = tempfile.mkdtemp(prefix="viesti-it-")
	os.chmod(d, 0o777)
	yield d
	shutil.rmtree(d, ignore_errors=True)


def test_persistence_across_restart(broker, clients, data_dir):
	"""With `persistence true`, retained messages and persistent sessions (subscriptions and
	queued QoS 1 messages) survive a clean restart."""
	b = broker("persistence true", "persistence_location %s/" % data_dir)
	cid = uid("pers")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe(("pers/#", 1))
	s.disconnect()
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("pers/retained", b"kept", qos=1, retain=True)
	p.publish("pers/queued", b"waiting", qos=1)
	p.disconnect()
	b.restart()
	s = clients.raw(b.port, 4)
	assert s.connect(cid, clean=False).session_present
	got = {m.topic: m.payload for m in s.publishes(2, timeout=5)}
	assert got == {"pers/retained": b"kept", "pers/queued": b"waiting"}
	r = clients.raw(b.port, 4)
	r.connect(uid())
	r.subscribe(("pers/retained", 0))
	assert r.expect(PUBLISH).payload == b"kept"


@pytest.mark.viesti_only  # Mosquitto writes its database only at autosave/shutdown
def test_persistence_survives_kill9(broker, clients, data_dir):
	"""ARCHITECTURE.md: with fsync policy `never`, data reaches the kernel before any ack, so
	an acknowledged retained message and queued message survive SIGKILL."""
	b = broker("persistence true", "persistence_location %s/" % data_dir)
	cid = uid("k9")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe(("k9/#", 1))
	s.disconnect()
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("k9/retained", b"kept", qos=1, retain=True)
	p.publish("k9/queued", b"waiting", qos=1)
	b.kill()
	b.start()
	s = clients.raw(b.port, 4)
	assert s.connect(cid, clean=False).session_present
	got = {m.topic: m.payload for m in s.publishes(2, timeout=5)}
	assert got == {"k9/retained": b"kept", "k9/queued": b"waiting"}


def test_close_right_after_data_is_seen(broker, clients):
	"""A client that sends a packet and closes at once (no DISCONNECT, keep-alive 0, so no
	timeout would ever notice): the broker sees the close even when the data and the end of the
	stream reach it together, and publishes the will [MQTT-3.1.2-8]. Viesti reads sockets
	edge-triggered, so this checks that the close is not swallowed by the read of the data."""
	b = broker()
	s = clients.raw(b.port, 4)
	s.connect(uid("wsub"))
	s.subscribe(("edge/will/#", 0))
	for i in range(20):
		c = clients.raw(b.port, 4)
		c.connect(uid("edge%d" % i), keepalive=0,
			will={"topic": "edge/will/%d" % i, "payload": b"gone"})
		c.sock.sendall(c.publish_packet("edge/data", b"x" * 100, qos=0) * 3)
		c.sock.close()
	got = s.publishes(20, timeout=10)
	assert sorted(m.topic for m in got) == sorted("edge/will/%d" % i for i in range(20))
