"""The MQTT-SN 1.2 gateway (`protocol mqttsn` on a UDP listener), driven by sn_client.SNClient
against paho MQTT clients on the same broker's TCP listener.

Every broker here comes from the `sn_broker` factory: the conftest broker's TCP listener (b.port)
plus a UDP listener on b.sn_port with `protocol mqttsn` and a predefined topic table (PREDEF
unless given). Spec sections cited are MQTT-SN 1.2's.
"""

import collections
import os
import queue
import random
import socket
import time

import pytest

from conftest import PORT_SLICE, _next_port, _port_slice, wait_until
from helpers import uid
import sn_client as sn
from sn_client import LossyRelay, SharedSocket, SNClient

# Mosquitto 2 has no MQTT-SN gateway.
pytestmark = pytest.mark.viesti_only

PREDEF = {1: "sensors/predef", 2: "sensors/other", 3: "load/all"}


# ---- fixtures ----------------------------------------------------------------------------------

def free_udp_port(host="127.0.0.1", family=socket.AF_INET):
	"""A UDP port nobody has bound on host, from this worker's slice (as conftest.free_port)."""
	base = _port_slice()
	for _ in range(PORT_SLICE):
		port = base + _next_port[0] % PORT_SLICE
		_next_port[0] += 1
		with socket.socket(family, socket.SOCK_DGRAM) as s:
			try:
				s.bind((host, port))
			except OSError:
				continue
		return port
	raise RuntimeError("no free UDP port in %d-%d" % (base, base + PORT_SLICE - 1))


def udp_bound(host, port, family):
	"""True when somebody (the broker) has bound host:port."""
	with socket.socket(family, socket.SOCK_DGRAM) as s:
		try:
			s.bind((host, port))
		except OSError:
			return True
	return False


def have_ipv6():
	if not socket.has_ipv6:
		return False
	try:
		with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
			s.bind(("::1", 0))
	except OSError:
		return False
	return True


@pytest.fixture
def sn_broker(broker, tmp_path):
	"""Factory: sn_broker(*lines, predefined=PREDEF, host="127.0.0.1", start=True, **broker_kw)
	-> Broker with a TCP MQTT listener (b.port) and an MQTT-SN UDP listener on host (b.sn_port,
	b.sn_host, b.sn_family); b.predefined is the table written to mqttsn_predefined_topics.
	lines follow `protocol mqttsn` in the config."""
	made = [0]

	def make(*lines, predefined=PREDEF, host="127.0.0.1", start=True, **kw):
		family = socket.AF_INET6 if ":" in host else socket.AF_INET
		udp = free_udp_port(host, family)
		conf = ["listener %d %s" % (udp, host), "protocol mqttsn"]
		if predefined is not None:
			path = tmp_path / ("predefined%d.txt" % made[0])
			path.write_text("# MQTT-SN predefined topics: ID TOPIC\n\n" +
				"".join("%d %s\n" % kv for kv in sorted(predefined.items())))
			conf.append("mqttsn_predefined_topics %s" % path)
		made[0] += 1
		b = broker(*(conf + list(lines)), start=False, **kw)
		b.sn_port, b.sn_host, b.sn_family = udp, host, family
		b.predefined = dict(predefined or {})
		if start:
			b.start()
			wait_until(lambda: udp_bound(host, udp, family), 5.0,
				what="the broker to bind UDP %s port %d" % (host, udp))
			# Every worker's socket must be in the SO_REUSEPORT group before a client
			# starts: the kernel keeps a client's datagrams on one socket only while the
			# group does not change (it stops changing once the broker runs).
			wait_until(lambda: "running with" in b.log_text(), 10.0,
				what="the broker to start its workers")
		return b

	return make


class SNRegistry:
	"""SN clients, shared sockets and relays of one test, closed at teardown."""

	def __init__(self):
		self.items = []

	def add(self, x):
		self.items.append(x)
		return x

	def client(self, b, client_id=None, **kw):
		"""An SNClient for broker b's gateway (its predefined table, its address family)."""
		kw.setdefault("family", b.sn_family)
		kw.setdefault("predefined", b.predefined)
		return self.add(SNClient(b.sn_host, b.sn_port, client_id or uid("sn"), **kw))

	def via(self, relay, b, client_id=None, **kw):
		"""An SNClient that talks to b's gateway through relay."""
		kw.setdefault("predefined", b.predefined)
		kw.setdefault("family", socket.AF_INET6 if ":" in relay.host else socket.AF_INET)
		return self.add(SNClient(relay.host, relay.port, client_id or uid("sn"), **kw))

	def relay(self, b, **kw):
		return self.add(LossyRelay((b.sn_host, b.sn_port), **kw))

	def shared(self, b):
		return self.add(SharedSocket(b.sn_host, b.sn_port, b.sn_family))

	def close_all(self):
		for x in reversed(self.items):
			try:
				x.stop() if isinstance(x, LossyRelay) else x.close()
			except Exception:
				pass


@pytest.fixture
def sn_clients():
	"""Registry of SN clients / shared sockets / relays: sn_clients.client(b, cid, **kw),
	sn_clients.via(relay, b, cid, **kw), sn_clients.relay(b, loss=..., ...), sn_clients.shared(b)."""
	reg = SNRegistry()
	yield reg
	reg.close_all()


def watcher(clients, b, *topics, qos=2):
	"""A paho client subscribed to topics."""
	w = clients.paho(b.port)
	for t in topics:
		w.subscribe(t, qos)
	return w


def connected(sn_, b, client_id=None, **kw):
	c = sn_.client(b, client_id, **kw)
	assert c.connect() == sn.RC_ACCEPTED
	return c


def paho_drain(w, on_message, done, timeout):
	"""Feeds paho client w's messages to on_message until done() or timeout; returns done()."""
	deadline = time.monotonic() + timeout
	while not done():
		rem = deadline - time.monotonic()
		if rem <= 0:
			break
		try:
			m = w.messages.get(timeout=rem)
		except queue.Empty:
			break
		on_message(m)
	return done()


# ---- publish and subscribe, each QoS and topic id kind ------------------------------------------

@pytest.mark.parametrize("kind", ["normal", "predefined", "short"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_sn_publish_reaches_mqtt(sn_broker, sn_clients, clients, qos, kind):
	b = sn_broker()
	topic = {"normal": "sn/up/%d" % qos, "predefined": PREDEF[1], "short": "u%d" % qos}[kind]
	w = watcher(clients, b, topic)
	c = connected(sn_clients, b)
	payload = b"from sn %s qos %d" % (kind.encode(), qos)
	if kind == "normal":
		tid, rc = c.register(topic)
		assert rc == sn.RC_ACCEPTED and tid not in (0x0000, 0xFFFF), (tid, rc)
		rc = c.publish(payload, topic_id=tid, qos=qos, tid_type="normal")
	elif kind == "predefined":
		rc = c.publish(payload, topic_id=1, qos=qos, tid_type="predefined")
	else:
		rc = c.publish(payload, topic=topic, qos=qos, tid_type="short")
	assert rc == (None if qos == 0 else sn.RC_ACCEPTED)
	m = w.get(3)
	assert (m.topic, m.payload, m.qos, m.retain) == (topic, payload, qos, False)
	w.no_message(0.3)  # once


@pytest.mark.parametrize("kind", ["normal", "predefined", "short"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_publish_reaches_sn(sn_broker, sn_clients, clients, qos, kind):
	b = sn_broker()
	c = connected(sn_clients, b)
	if kind == "normal":
		topic = "sn/down/%d" % qos
		granted, tid, rc = c.subscribe(topic, qos=2)
		# A topic name without wildcards gets its topic id in SUBACK (5.4.16).
		assert rc == sn.RC_ACCEPTED and tid not in (0x0000, 0xFFFF), (granted, tid, rc)
		want = (tid, sn.TID_NORMAL)
	elif kind == "predefined":
		topic = PREDEF[1]
		granted, tid, rc = c.subscribe(1, qos=2, tid_type="predefined")
		assert (tid, rc) == (1, sn.RC_ACCEPTED)  # the id is echoed
		want = (1, sn.TID_PREDEFINED)
	else:
		topic = "d%d" % qos
		granted, tid, rc = c.subscribe(topic, qos=2, tid_type="short")
		assert (tid, rc) == (0, sn.RC_ACCEPTED)
		want = (sn.short_id(topic), sn.TID_SHORT)
	assert granted == 2
	payload = b"from mqtt %s qos %d" % (kind.encode(), qos)
	clients.paho(b.port).publish(topic, payload, qos=qos)
	m = c.recv_publish(3)
	assert (m.topic, m.payload, m.qos, m.retain) == (topic, payload, qos, False), m
	assert (m.topic_id, m.tid_type) == want, m
	assert c.registers == []  # the SUBACK's id (or the predefined / short one) is used as is
	assert not c.rejected
	c.no_publish(0.3)


def test_qos_minus_one_needs_no_connection(sn_broker, sn_clients, clients):
	"""QoS -1 (6.8): a PUBLISH to a predefined id or a short name from a client that never
	connected."""
	b = sn_broker()
	w = watcher(clients, b, PREDEF[1], "zz")
	c = sn_clients.client(b)
	c.publish(b"m1 predefined", topic_id=1, qos=-1, tid_type="predefined")
	c.publish(b"m1 short", topic="zz", qos=-1, tid_type="short")
	got = {m.topic: (m.payload, m.qos) for m in w.get_n(2, timeout=3)}
	assert got == {PREDEF[1]: (b"m1 predefined", 0), "zz": (b"m1 short", 0)}


def test_wildcard_subscription_registers_each_new_topic(sn_broker, sn_clients, clients):
	"""A wildcard SUBSCRIBE gets topic id 0x0000; the gateway sends REGISTER before the first
	PUBLISH on each new topic name (6.10)."""
	b = sn_broker()
	c = connected(sn_clients, b)
	granted, tid, rc = c.subscribe("sn/wild/+", qos=1)
	assert (granted, tid, rc) == (1, 0, sn.RC_ACCEPTED)
	p = clients.paho(b.port)
	for topic, payload in [("sn/wild/a", b"1"), ("sn/wild/a", b"2"), ("sn/wild/b", b"3")]:
		p.publish(topic, payload, qos=1)
	ms = c.recv_publishes(3, timeout=3)
	assert [(m.topic, m.payload, m.tid_type) for m in ms] == [("sn/wild/a", b"1", sn.TID_NORMAL),
		("sn/wild/a", b"2", sn.TID_NORMAL), ("sn/wild/b", b"3", sn.TID_NORMAL)]
	assert sorted(name for _, name in c.registers) == ["sn/wild/a", "sn/wild/b"], c.registers
	ids = {name: tid for tid, name in c.registers}
	assert ids["sn/wild/a"] != ids["sn/wild/b"] and 0 not in ids.values()
	assert [m.topic_id for m in ms] == [ids["sn/wild/a"], ids["sn/wild/a"], ids["sn/wild/b"]]
	assert not c.rejected


def test_wildcard_delivery_uses_predefined_and_short_ids(sn_broker, sn_clients, clients):
	"""A topic in the predefined table goes out with its predefined id, a two-character topic as
	a short name: neither needs a REGISTER."""
	b = sn_broker()
	c = connected(sn_clients, b)
	assert c.subscribe("sensors/#", qos=1)[1:] == (0, sn.RC_ACCEPTED)
	assert c.subscribe("+", qos=1)[1:] == (0, sn.RC_ACCEPTED)
	p = clients.paho(b.port)
	p.publish(PREDEF[1], b"pre", qos=1)
	p.publish("ab", b"short", qos=1)
	m1, m2 = c.recv_publishes(2, timeout=3)
	assert (m1.tid_type, m1.topic_id, m1.topic, m1.payload) == (
		sn.TID_PREDEFINED, 1, PREDEF[1], b"pre"), m1
	assert (m2.tid_type, m2.topic_id, m2.topic, m2.payload) == (
		sn.TID_SHORT, sn.short_id("ab"), "ab", b"short"), m2
	assert c.registers == []


def test_unsubscribe_each_kind(sn_broker, sn_clients, clients):
	b = sn_broker()
	c = connected(sn_clients, b)
	assert c.subscribe("sn/un", qos=1)[2] == sn.RC_ACCEPTED
	assert c.subscribe(2, qos=1, tid_type="predefined")[2] == sn.RC_ACCEPTED
	assert c.subscribe("un", qos=1, tid_type="short")[2] == sn.RC_ACCEPTED
	assert c.unsubscribe("sn/un")
	assert c.unsubscribe(2, tid_type="predefined")
	assert c.unsubscribe("un", tid_type="short")
	p = clients.paho(b.port)
	for t in ("sn/un", PREDEF[2], "un"):
		p.publish(t, b"x", qos=1)
	c.no_publish(0.5)


def test_publish_to_unknown_topic_id_is_rejected(sn_broker, sn_clients, clients):
	"""An unregistered normal id, or a predefined id outside the table: PUBACK with
	ReturnCode 0x02 'rejected: invalid topic ID' (5.4.13), and nothing is published."""
	b = sn_broker()
	w = watcher(clients, b, "#")
	c = connected(sn_clients, b)
	assert c.publish(b"x", topic_id=0x1234, qos=1, tid_type="normal") == sn.RC_INVALID_TOPIC
	assert c.publish(b"x", topic_id=999, qos=1, tid_type="predefined") == sn.RC_INVALID_TOPIC
	# QoS 2: the PUBACK comes instead of PUBREC.
	assert c.publish(b"x", topic_id=0x1235, qos=2, tid_type="normal") == sn.RC_INVALID_TOPIC
	w.no_message(0.5)
	assert c.ping()  # still connected


def test_retained_messages_delivered_on_subscribe(sn_broker, sn_clients, clients):
	b = sn_broker()
	p = clients.paho(b.port)
	p.publish("sn/ret/a", b"kept", qos=1, retain=True)
	p.publish(PREDEF[2], b"kept predefined", qos=1, retain=True)
	# A topic name: the SUBACK's id, then the retained PUBLISH with the retain flag.
	c = connected(sn_clients, b)
	granted, tid, rc = c.subscribe("sn/ret/a", qos=1)
	assert rc == sn.RC_ACCEPTED
	m = c.recv_publish(3)
	assert (m.topic, m.topic_id, m.payload, m.retain) == ("sn/ret/a", tid, b"kept", True), m
	# A wildcard: REGISTER first.
	c2 = connected(sn_clients, b)
	c2.subscribe("sn/ret/#", qos=1)
	m = c2.recv_publish(3)
	assert (m.topic, m.payload, m.retain) == ("sn/ret/a", b"kept", True), m
	assert [name for _, name in c2.registers] == ["sn/ret/a"]
	# A predefined id.
	c3 = connected(sn_clients, b)
	c3.subscribe(2, qos=1, tid_type="predefined")
	m = c3.recv_publish(3)
	assert (m.tid_type, m.topic_id, m.payload, m.retain) == (
		sn.TID_PREDEFINED, 2, b"kept predefined", True), m
	# A live message afterwards is not flagged retained.
	p.publish("sn/ret/a", b"live", qos=1)
	m = c.recv_publish(3)
	assert (m.payload, m.retain) == (b"live", False)


def test_three_byte_length_form_both_ways(sn_broker, sn_clients, clients):
	"""Messages of 256 bytes and more use the three-byte length (5.2.1); shorter ones may."""
	b = sn_broker()
	w = watcher(clients, b, "sn/long")
	c = connected(sn_clients, b)
	# A short message in the long form is still a message.
	c.send(sn.pingreq().encode(long_form=True))
	c.expect(sn.PINGRESP)
	tid, rc = c.register("sn/long")
	assert rc == sn.RC_ACCEPTED
	up = bytes(range(256)) * 2
	assert c.publish(up, topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert w.get(3).payload == up
	c.subscribe("sn/long", qos=1)
	down = os.urandom(600)
	clients.paho(b.port).publish("sn/long", down, qos=1)
	assert c.recv_publish(3).payload == down


# ---- will, keep-alive --------------------------------------------------------------------------

def test_will_published_when_client_vanishes(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "will/#")
	c = sn_clients.client(b)
	assert c.connect(duration=1, will=("will/sn", b"gone", 1, False)) == sn.RC_ACCEPTED
	c.close()  # no DISCONNECT, nothing more: lost after the keep-alive period
	m = w.get(timeout=3.5)
	assert (m.topic, m.payload, m.qos) == ("will/sn", b"gone", 1)


def test_will_topic_and_message_updates(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "will/#")
	c = sn_clients.client(b)
	assert c.connect(duration=1, will=("will/old", b"old", 0, False)) == sn.RC_ACCEPTED
	assert c.will_topic_update("will/new", qos=1, retain=True) == sn.RC_ACCEPTED
	assert c.will_msg_update(b"new message") == sn.RC_ACCEPTED
	c.close()
	m = w.get(timeout=3.5)
	assert (m.topic, m.payload, m.qos) == ("will/new", b"new message", 1)
	w.no_message(0.5)
	late = watcher(clients, b, "will/new", qos=1)  # WILLTOPICUPD's retain flag
	m = late.get(3)
	assert (m.payload, m.retain) == (b"new message", True)


def test_empty_will_topic_update_deletes_the_will(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "will/#")
	c = sn_clients.client(b)
	assert c.connect(duration=1, will=("will/x", b"x", 1, False)) == sn.RC_ACCEPTED
	assert c.will_topic_update(None) == sn.RC_ACCEPTED  # the empty WILLTOPICUPD (5.4.22)
	c.close()
	w.no_message(3.0)


def test_graceful_disconnect_publishes_no_will(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "will/#")
	c = sn_clients.client(b)
	assert c.connect(duration=1, will=("will/sn", b"gone", 1, False)) == sn.RC_ACCEPTED
	assert c.disconnect().type == sn.DISCONNECT
	c.close()
	w.no_message(2.5)  # longer than the keep-alive period and its grace


def test_pings_keep_the_client_alive(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "will/#")
	c = sn_clients.client(b)
	assert c.connect(duration=1, will=("will/sn", b"gone", 1, False)) == sn.RC_ACCEPTED
	for _ in range(6):  # 3 s, twice the keep-alive period
		assert c.ping()
		w.no_message(0.5)
	c.close()
	assert w.get(timeout=3.5).payload == b"gone"


# ---- sleeping clients (6.14) -------------------------------------------------------------------

def test_sleeping_client_gets_buffered_messages_on_wake(sn_broker, sn_clients, clients):
	b = sn_broker()
	c = connected(sn_clients, b)
	granted, tid, rc = c.subscribe("sn/sleep", qos=1)
	assert rc == sn.RC_ACCEPTED
	assert c.sleep(30).type == sn.DISCONNECT
	p = clients.paho(b.port)
	for i in range(3):
		p.publish("sn/sleep", b"m%d" % i, qos=1)
	assert c.recv_raw(0.5) is None, "the gateway sent a datagram to a sleeping client"
	ms = c.wake()
	assert [(m.topic, m.payload, m.qos) for m in ms] == [
		("sn/sleep", b"m%d" % i, 1) for i in range(3)], ms
	# After PINGRESP the client is asleep again: nothing follows, new messages wait.
	assert not c.inbox and c.recv_raw(0.3) is None
	p.publish("sn/sleep", b"m3", qos=1)
	assert c.recv_raw(0.5) is None, "the gateway sent a datagram to a sleeping client"
	assert [m.payload for m in c.wake()] == [b"m3"]
	# A CONNECT makes it active again: deliveries are immediate.
	assert c.connect(clean=False) == sn.RC_ACCEPTED
	p.publish("sn/sleep", b"m4", qos=1)
	assert c.recv_publish(3).payload == b"m4"


# ---- a lossy, reordering link (6.13) -----------------------------------------------------------

def _count_until_complete(want, get_payload, timeout, linger=1.0):
	"""Counts payloads from get_payload(timeout) until every payload in want was seen, then for
	linger seconds more (late duplicates); returns the Counter."""
	counts = collections.Counter()
	deadline = time.monotonic() + timeout
	done_at = None
	while True:
		now = time.monotonic()
		if done_at is None and all(counts[x] for x in want):
			done_at = now
		end = deadline if done_at is None else done_at + linger
		if now >= end:
			return counts
		payload = get_payload(end - now)
		if payload is not None:
			counts[payload] += 1


def test_lossy_link_qos1_at_least_once_qos2_exactly_once(sn_broker, sn_clients, clients):
	"""10% loss and some reordering each way; the client and the gateway retransmit."""
	b = sn_broker("mqttsn_retry_interval 0.3", "mqttsn_retry_count 10")
	relay = sn_clients.relay(b, loss=0.1, reorder=0.1, seed=20240601)
	n = 100

	# SN -> MQTT
	w = watcher(clients, b, "lossy/up/#")
	pub = sn_clients.via(relay, b, "lossy-pub", retry=0.3, retries=12)
	assert pub.connect(duration=120) == sn.RC_ACCEPTED
	t1, rc1 = pub.register("lossy/up/q1")
	t2, rc2 = pub.register("lossy/up/q2")
	assert rc1 == rc2 == sn.RC_ACCEPTED
	for i in range(n):
		assert pub.publish(b"u1-%d" % i, topic_id=t1, qos=1) == sn.RC_ACCEPTED
	for i in range(n):
		assert pub.publish(b"u2-%d" % i, topic_id=t2, qos=2) == sn.RC_ACCEPTED

	def paho_payload(t):
		try:
			return w.messages.get(timeout=t).payload
		except queue.Empty:
			return None

	want_q1 = [b"u1-%d" % i for i in range(n)]
	want_q2 = [b"u2-%d" % i for i in range(n)]
	up = _count_until_complete(want_q1 + want_q2, paho_payload, 20)
	assert [x for x in want_q1 + want_q2 if not up[x]] == [], "lost upstream"
	assert {x: up[x] for x in want_q2 if up[x] != 1} == {}, "QoS 2 duplicated upstream"
	pub.close()  # a DISCONNECT could lose its answer: the session just stays

	# MQTT -> SN
	sub = sn_clients.via(relay, b, "lossy-sub", retry=0.3, retries=12)
	assert sub.connect(duration=120) == sn.RC_ACCEPTED
	granted, tid, rc = sub.subscribe("lossy/down/+", qos=2)
	assert (granted, rc) == (2, sn.RC_ACCEPTED)
	p = clients.paho(b.port)
	for i in range(n):
		p.publish("lossy/down/q1", b"d1-%d" % i, qos=1)
	for i in range(n):
		p.publish("lossy/down/q2", b"d2-%d" % i, qos=2)

	def sn_payload(t):
		try:
			m = sub.recv_publish(t)
		except TimeoutError:
			return None
		assert m.topic == ("lossy/down/q%d" % m.qos), m
		return m.payload

	want_q1 = [b"d1-%d" % i for i in range(n)]
	want_q2 = [b"d2-%d" % i for i in range(n)]
	down = _count_until_complete(want_q1 + want_q2, sn_payload, 120)
	missing = [x for x in want_q1 + want_q2 if not down[x]]
	assert missing == [], "lost downstream: %d, first %r (relay %r)" % (
		len(missing), missing[:5], dict(relay.stats))
	assert {x: down[x] for x in want_q2 if down[x] != 1} == {}, "QoS 2 duplicated downstream"
	assert not sub.rejected
	# The link really was lossy and reordering.
	assert relay.stats["dropped_up"] and relay.stats["dropped_down"], dict(relay.stats)
	assert relay.reordered, dict(relay.stats)


def test_qos2_retransmitted_publish_delivered_once(sn_broker, sn_clients, clients):
	"""The same QoS 2 PUBLISH sent again with DUP before PUBREL, three times: one delivery."""
	b = sn_broker()
	w = watcher(clients, b, "sn/once")
	c = connected(sn_clients, b)
	tid, rc = c.register("sn/once")
	assert rc == sn.RC_ACCEPTED
	p = sn.publish(tid, b"once", qos=2, msg_id=77)
	c.send(p)
	c.expect(sn.PUBREC, match=lambda x: x.msg_id == 77)
	p.flags |= sn.DUP
	for _ in range(3):
		c.send(p)
		c.expect(sn.PUBREC, match=lambda x: x.msg_id == 77)
	c.send(sn.pubrel(77))
	c.expect(sn.PUBCOMP, match=lambda x: x.msg_id == 77)
	m = w.get(3)
	assert (m.payload, m.qos) == (b"once", 2)
	w.no_message(0.5)


# ---- forwarder encapsulation (5.5) -------------------------------------------------------------

def test_forwarder_encapsulation_nodes_with_own_sockets(sn_broker, sn_clients, clients):
	b = sn_broker()
	w = watcher(clients, b, "enc/#")
	n1 = sn_clients.client(b, "node-one", node_id=b"\x01")
	n2 = sn_clients.client(b, "node-two", node_id=b"\x02")
	# The gateway answers inside an encapsulation for the same node.
	n1.send(sn.connect("node-one"))
	ctrl, node, inner = sn.unwrap(n1.recv_raw(3) or b"")
	r = sn.decode(inner)
	assert (node, r.type, r.rc) == (b"\x01", sn.CONNACK, sn.RC_ACCEPTED)
	assert n2.connect() == sn.RC_ACCEPTED
	assert n1.subscribe("enc/t", qos=1)[2] == sn.RC_ACCEPTED
	tid, rc = n2.register("enc/t")
	assert rc == sn.RC_ACCEPTED
	assert n2.publish(b"hi", topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert n1.recv_publish(3).payload == b"hi"
	assert w.get(3).payload == b"hi"
	assert not n1.stray and not n2.stray, (n1.stray, n2.stray)


def test_two_nodes_behind_one_address_are_two_clients(sn_broker, sn_clients, clients):
	b = sn_broker()
	shared = sn_clients.shared(b)
	a = sn_clients.client(b, "node-a", node_id=b"\x01", sock=shared)
	z = sn_clients.client(b, "node-b", node_id=b"\x02", sock=shared)
	assert a.connect() == sn.RC_ACCEPTED
	assert z.connect() == sn.RC_ACCEPTED
	assert a.subscribe("enc/a", qos=1)[2] == sn.RC_ACCEPTED
	assert z.subscribe("enc/b", qos=1)[2] == sn.RC_ACCEPTED
	p = clients.paho(b.port)
	p.publish("enc/a", b"for a", qos=1)
	p.publish("enc/b", b"for b", qos=1)
	assert a.recv_publish(3).payload == b"for a"
	assert z.recv_publish(3).payload == b"for b"
	a.no_publish(0.3)
	z.no_publish(0.3)
	tid, rc = z.register("enc/a")
	assert rc == sn.RC_ACCEPTED
	assert z.publish(b"b to a", topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert a.recv_publish(3).payload == b"b to a"
	# One node leaving leaves the other connected.
	assert a.disconnect().type == sn.DISCONNECT
	assert z.ping()
	p.publish("enc/b", b"still", qos=1)
	assert z.recv_publish(3).payload == b"still"
	assert not shared.other and not a.stray and not z.stray


# ---- malformed datagrams -----------------------------------------------------------------------

def garbage(rng):
	"""(counted, extra): datagrams that are malformed by the framing alone (length field against
	the datagram, fixed fields cut short, a broken encapsulation), and other nonsense whose
	counting is the gateway's choice (empty datagram, reserved types, protocol id)."""
	counted = []
	valid_types = [t for t in sn.NAMES if t != sn.ENCAPSULATED]
	for _ in range(30):  # random bytes whose length byte disagrees with the datagram
		n = rng.randint(2, 80)
		d = bytearray(rng.getrandbits(8) for _ in range(n))
		d[0] = rng.choice([x for x in range(2, 256) if x != n])
		d[1] = rng.choice(valid_types)
		counted.append(bytes(d))
	counted += [
		b"\x01",                              # one byte
		b"\x01\x00",                          # three-byte form cut short
		b"\x01\x00\x10\x0c\x00",              # three-byte form says 16, has 5
		b"\x01\xff\xff\x16",                  # says 65535
		b"\x01\x00\x02\x16",                  # three-byte form below its own size
		b"\x05\x0c\x00\x00\x01",              # PUBLISH without its message id
		b"\x04\x0a\x00\x01",                  # REGISTER without message id and name
		b"\x02\x05",                          # CONNACK without return code
		b"\x04\x12\x00\x00",                  # SUBSCRIBE cut in its message id
		b"\x06\x0d\x00\x01\x00",              # PUBACK: length 6, 5 bytes
		b"\x03\x17\x00",                      # PINGRESP with a byte too many
		b"\x05\x18\x00\x00\x00",              # DISCONNECT with a 3-byte duration
		b"\x09\xfe\x00\x01",                  # encapsulation header past the datagram
		b"\x04\xfe\x00\x01\x05\x0c\x00",      # encapsulation around a truncated PUBLISH
		b"\x04\xfe\x00\x01",                  # encapsulation of nothing
	]
	extra = [b"", b"\x02\x03", b"\x02\x11", b"\x02\x19", b"\x02\xfd",
		sn.Packet(sn.CONNECT, flags=sn.CLEAN, protocol=0x02, duration=10, data=b"x").encode(),
		sn.publish(1, b"x", tid=3).encode()]
	return counted, extra


def test_garbage_datagrams_are_counted_and_harmless(sn_broker, sn_clients, clients):
	b = sn_broker("sys_interval 1")
	c = connected(sn_clients, b)
	granted, tid, rc = c.subscribe("sn/alive", qos=1)
	assert rc == sn.RC_ACCEPTED
	counted, extra = garbage(random.Random(7))
	with socket.socket(b.sn_family, socket.SOCK_DGRAM) as g:
		g.connect((b.sn_host, b.sn_port))
		for d in counted + extra:
			g.send(d)
	# The broker is up, the established client still works, and a new one can connect.
	assert c.ping()
	assert b.alive()
	assert c.publish(b"alive", topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert c.recv_publish(3).payload == b"alive"
	assert connected(sn_clients, b).ping()
	# $SYS/broker/viesti/mqttsn/malformed counts them.
	w = watcher(clients, b, "$SYS/broker/viesti/mqttsn/malformed", qos=0)
	seen = []

	def enough():
		return any(s.strip().isdigit() and int(s) >= len(counted) for s in seen)

	paho_drain(w, lambda m: seen.append(m.payload.decode("utf-8", "replace")), enough, 5)
	assert enough(), "malformed counter %r, sent %d malformed" % (seen, len(counted))


# ---- gateway discovery -------------------------------------------------------------------------

def test_searchgw_answered_with_the_configured_gateway_id(sn_broker, sn_clients):
	b = sn_broker("mqttsn_gateway_id 7")
	gw = sn_clients.client(b).search_gw(radius=1)
	assert (gw.type, gw.gw_id) == (sn.GWINFO, 7)


def test_searchgw_default_gateway_id_is_1(sn_broker, sn_clients):
	b = sn_broker()
	assert sn_clients.client(b).search_gw(radius=0).gw_id == 1


def _broadcast_listener(port):
	"""A socket that receives broadcasts to 255.255.255.255:port, if this machine delivers them
	locally (a probe is sent and must come back); else None."""
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	try:
		s.bind(("255.255.255.255", port))
		with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
			probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
			probe.bind(("127.0.0.1", 0))
			probe.sendto(b"probe", ("255.255.255.255", port))
		s.settimeout(1.0)
		while True:
			d = s.recv(65536)
			if d == b"probe":
				return s
	except OSError:
		s.close()
		return None


def test_advertise_interval_is_accepted_and_broadcast(sn_broker, sn_clients):
	b = sn_broker("mqttsn_gateway_id 9", "mqttsn_advertise_interval 1")
	c = sn_clients.client(b)
	assert c.search_gw().gw_id == 9
	assert c.connect() == sn.RC_ACCEPTED
	# ADVERTISE goes to 255.255.255.255:port (5.4.1); assert it only where loopback delivers
	# broadcasts at all.
	s = _broadcast_listener(b.sn_port)
	if s is None:
		return
	with s:
		deadline = time.monotonic() + 2.5
		adv = None
		while adv is None and time.monotonic() < deadline:
			s.settimeout(max(0.01, deadline - time.monotonic()))
			try:
				p = sn.decode(s.recv(65536))
			except (socket.timeout, sn.SNError):
				continue
			if p.type == sn.ADVERTISE:
				adv = p
	assert adv is not None, "no ADVERTISE within 2.5 s with mqttsn_advertise_interval 1"
	assert (adv.gw_id, adv.duration) == (9, 1)


# ---- IPv6 --------------------------------------------------------------------------------------

def test_ipv6_listener(sn_broker, sn_clients, clients):
	if not have_ipv6():
		pytest.skip("no IPv6 loopback on this machine")
	b = sn_broker(host="::1")
	w = watcher(clients, b, "sn/v6")
	c = connected(sn_clients, b)
	tid, rc = c.register("sn/v6")
	assert rc == sn.RC_ACCEPTED
	assert c.publish(b"up", topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert w.get(3).payload == b"up"
	c2 = connected(sn_clients, b)
	c2.subscribe("sn/v6", qos=1)
	clients.paho(b.port).publish("sn/v6", b"down", qos=1)
	assert c2.recv_publish(3).payload == b"down"


# ---- access control ----------------------------------------------------------------------------

def test_client_id_acl_pattern(sn_broker, sn_clients, clients, tmp_path):
	"""`pattern readwrite sensors/%c/#`: SN client s1 may publish to sensors/s1/... and not to
	sensors/s2/... (dropped silently, as Mosquitto does for MQTT 3.1.1)."""
	acl = tmp_path / "acl"
	acl.write_text("pattern readwrite sensors/%c/#\n")
	b = sn_broker("acl_file %s" % acl, predefined={1: "sensors/s2/t"})
	# The watcher is client s2, which the pattern lets read sensors/s2/#.
	w = clients.paho(b.port, client_id="s2")
	w.subscribe("sensors/s2/#", 1)
	w.publish("sensors/s2/self", b"control", qos=1)
	assert w.get(3).payload == b"control"
	c = connected(sn_clients, b, "s1")
	assert c.subscribe("sensors/s1/#", qos=1)[2] == sn.RC_ACCEPTED
	own, rc = c.register("sensors/s1/t")
	assert rc == sn.RC_ACCEPTED
	# Forbidden: by predefined id, QoS 0 and 1 (the PUBACK's code is not asserted), and by a
	# registered name (the REGISTER itself may be refused).
	c.publish(b"x0", topic_id=1, tid_type="predefined", qos=0)
	try:
		c.publish(b"x1", topic_id=1, tid_type="predefined", qos=1, timeout=2)
	except TimeoutError:
		pass
	other, rc = c.register("sensors/s2/t")
	if rc == sn.RC_ACCEPTED:
		c.publish(b"x2", topic_id=other, qos=0)
	# Allowed: delivered (to s1's own subscription).
	assert c.publish(b"mine", topic_id=own, qos=1) == sn.RC_ACCEPTED
	m = c.recv_publish(3)
	assert (m.topic, m.payload) == ("sensors/s1/t", b"mine")
	w.no_message(0.5)


def test_anonymous_refused_when_not_allowed(sn_broker, sn_clients):
	b = sn_broker("allow_anonymous false")
	assert sn_clients.client(b).connect() == sn.RC_NOT_SUPPORTED


def test_allowed_sources_admit_matching_clients(sn_broker, sn_clients):
	"""allow_anonymous false, but the source is in mqttsn_allowed_sources (repeatable)."""
	b = sn_broker("allow_anonymous false", "mqttsn_allowed_sources 10.0.0.0/8",
		"mqttsn_allowed_sources 127.0.0.0/8")
	c = connected(sn_clients, b)
	assert c.subscribe("sn/src", qos=1)[2] == sn.RC_ACCEPTED
	tid, rc = c.register("sn/src")
	assert c.publish(b"ok", topic_id=tid, qos=1) == sn.RC_ACCEPTED
	assert c.recv_publish(3).payload == b"ok"


def test_allowed_sources_refuse_other_sources(sn_broker, sn_clients, clients):
	b = sn_broker("mqttsn_allowed_sources 10.0.0.0/8", "mqttsn_allowed_sources 192.168.0.0/16")
	w = watcher(clients, b, PREDEF[1])
	c = sn_clients.client(b, timeout=1.5)
	try:
		rc = c.connect()
	except TimeoutError:
		rc = None  # ignored: also a refusal
	assert rc != sn.RC_ACCEPTED
	c.publish(b"x", topic_id=1, tid_type="predefined", qos=-1)
	w.no_message(0.5)


# ---- many clients ------------------------------------------------------------------------------

@pytest.mark.serial
def test_ten_thousand_clients(sn_broker, clients):
	"""10,000 SN clients, each on its own UDP socket (its own source port), connect and publish
	one QoS 0 message each to a predefined topic; a wildcard MQTT subscriber counts them."""
	import resource
	n, batch = 10000, 200
	need = n + 1000
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	if hard != resource.RLIM_INFINITY and hard < need:
		pytest.skip("RLIMIT_NOFILE hard limit %d is below the %d descriptors 10,000 UDP sockets "
			"need (raise it with ulimit -Hn)" % (hard, need))
	b = sn_broker()
	# Before the sockets: paho's loop uses select(), which takes descriptors below 1024 only.
	w = watcher(clients, b, "load/#", qos=0)
	resource.setrlimit(resource.RLIMIT_NOFILE,
		(hard if hard != resource.RLIM_INFINITY else max(soft, need), hard))
	cs = []
	try:
		start = time.monotonic()
		cs = [SNClient(b.sn_host, b.sn_port, "load-%05d" % i, timeout=10, predefined=PREDEF)
			for i in range(n)]
		for i in range(0, n, batch):
			group = cs[i:i + batch]
			for c in group:
				c.send(sn.connect(c.client_id, duration=600))
			for c in group:
				try:
					rc = c.expect(sn.CONNACK, timeout=5).rc
				except TimeoutError:
					rc = c.connect(duration=600)  # once more, on its own
				assert rc == sn.RC_ACCEPTED, (c.client_id, rc)
		connected_after = time.monotonic() - start
		got = set()
		for i in range(0, n, batch):
			group = cs[i:i + batch]
			for c in group:
				c.publish(c.client_id, topic_id=3, tid_type="predefined", qos=0)
			upto = i + len(group)
			# Waiting for each batch paces the senders (QoS 0 has no acknowledgement).
			assert paho_drain(w, lambda m: got.add(m.payload), lambda: len(got) >= upto, 10), \
				"%d of %d delivered" % (len(got), upto)
		assert got == {c.client_id for c in cs}
		print("10,000 SN clients: connected in %.1fs, all published in %.1fs" % (
			connected_after, time.monotonic() - start))
	finally:
		for c in cs:
			c.close()
		resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
