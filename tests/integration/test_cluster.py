"""Viesti nodes as one broker over NATS (issue 19, first part: routing; docs/cluster.md).

Each test starts Debian's nats-server on free ports and two Viesti nodes that name it in
cluster_url. What is checked: a message published on one node reaches the matching subscribers
of the other, exactly once, with the bytes NATS gives a meaning ('.', ' ', '*', '>') and empty
levels intact; "x/#" also takes "x"; a node does not get its own messages back; overlapping
filters cost one NATS subscription, and the last unsubscribe removes it (read from the NATS
server's monitoring endpoint); a node started before NATS joins when it comes.

JetStream (second part): QoS 1 and 2 cross nodes through the stream VS_MSGS, in order and once;
what a node acknowledged reaches the other nodes even when it is killed right after; a node that
was down gets, when it comes back, what was published meanwhile for its persistent sessions; the
will of a client of a killed node is published by exactly one survivor within the lease.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import tempfile
import urllib.request

import pytest

from conftest import free_port, wait_until
from helpers import uid
from http_util import http_lines, scrape, value, wait_listening
from mqtt_raw import (Closed, DISCONNECT, P, PUBACK, PUBCOMP, PUBLISH, PUBREC, SUBACK, UNSUBACK, UNSUBSCRIBE,
	packet, utf8)

pytestmark = pytest.mark.viesti_only

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Nats:
	"""One nats-server; args are more of its command-line options (test_cluster_ha.py: the
	options that make it one of a cluster)."""

	def __init__(self, tmp_path, port=None, js=True, args=()):
		self.port = port or free_port()
		self.url = "nats://127.0.0.1:%d" % self.port  # for cluster_url
		self.mport = free_port()
		self.log = open(str(tmp_path / ("nats-%d.log" % self.port)), "wb")
		self.store = str(tmp_path / ("js-%d" % self.port))  # JetStream's files
		js_args = ["-js", "-sd", self.store] if js else []
		self.proc = subprocess.Popen([NATS, "-a", "127.0.0.1", "-p", str(self.port), "-m",
			str(self.mport)] + js_args + list(args), stdout=self.log, stderr=subprocess.STDOUT)
		wait_until(self.up, 10, what="nats-server on %d" % self.port)

	def monitor(self, path):
		"""The JSON of a monitoring endpoint ("jsz", "connz?subs=1", ...)."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.mport, path), timeout=5)
		return json.loads(r.read())

	def client_names(self):
		"""The names of the connections to this server (a Viesti node's is its node id)."""
		return [c.get("name") for c in self.monitor("connz")["connections"] or []]

	def up(self):
		try:
			urllib.request.urlopen("http://127.0.0.1:%d/varz" % self.mport, timeout=1).read()
			return True
		except OSError:
			return False

	def subjects(self, node):
		"""The subjects the connection named node subscribes to under vs. (not its JetStream
		inboxes, its consumer's vs.d.NODE, its shared groups' consumers' vs.sd.QUEUE.N, nor
		vs.h.NODE where it answers for its sessions)."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/connz?subs=1" % self.mport, timeout=5)
		for c in json.loads(r.read())["connections"] or []:
			if c.get("name") == node:
				return sorted(x for x in c.get("subscriptions_list") or []
					if x.startswith("vs.") and not x.startswith(("vs.d.", "vs.h.", "vs.sd.")))
		return None

	def stream_state(self, name, field="messages"):
		"""A field of the JetStream stream name's state (0 when there is no such stream)."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=1" % self.mport, timeout=5)
		for acc in json.loads(r.read()).get("account_details") or []:
			for st in acc.get("stream_detail") or []:
				if st["name"] == name:
					return st["state"][field]
		return 0

	def consumer(self, name):
		"""JetStream's record of consumer name (its "delivered" and "ack_floor"), or {}."""
		for acc in self.monitor("jsz?consumers=1").get("account_details") or []:
			for st in acc.get("stream_detail") or []:
				for c in st.get("consumer_detail") or []:
					if c["name"] == name:
						return c
		return {}

	def ack_wait(self, consumer):
		"""The ack wait of consumer (of the stream VS_MSGS) in seconds, from JetStream's API."""
		info = json.loads(self.request("$JS.API.CONSUMER.INFO.VS_MSGS." + consumer))
		assert "error" not in info, info
		return info["config"]["ack_wait"] / 1e9

	def delivered(self, consumer):
		"""How many messages JetStream has sent the consumer (redeliveries included)."""
		return self.consumer(consumer).get("delivered", {}).get("consumer_seq", 0)

	def acked(self, consumer):
		"""The stream sequence up to which the consumer acknowledged everything (JetStream's
		ack floor)."""
		return self.consumer(consumer).get("ack_floor", {}).get("stream_seq", 0)

	def request(self, subject, data=b"", timeout=5):
		"""A NATS request on the client port (the protocol by hand: CONNECT, SUB, PUB with a
		reply subject); returns the answer's payload."""
		with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sk:
			f = sk.makefile("rb")
			f.readline()  # INFO
			sk.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.t 1\r\n'
				b"PUB %s _INBOX.t %d\r\n%s\r\n" % (subject.encode(), len(data), data))
			while True:
				line = f.readline()
				if not line:
					raise AssertionError("NATS closed the connection: no answer on " + subject)
				if line.startswith(b"PING"):
					sk.sendall(b"PONG\r\n")
				elif line.startswith(b"-ERR"):
					raise AssertionError(line.decode())
				elif line.startswith(b"MSG "):
					body = f.read(int(line.split()[-1]) + 2)
					return body[:-2]

	def keys(self, bucket):
		"""The keys in JetStream key-value bucket bucket (its stream's subjects)."""
		info = json.loads(self.request("$JS.API.STREAM.INFO.KV_" + bucket,
			json.dumps({"subjects_filter": "$KV.%s.>" % bucket}).encode()))
		assert "error" not in info, info
		prefix = "$KV.%s." % bucket
		return sorted(k[len(prefix):] for k in (info["state"].get("subjects") or {}))

	def kill(self):
		"""SIGKILL: gone at once, as in a crash."""
		self.proc.kill()
		self.proc.wait(5)

	def stop(self):
		if self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)
		self.log.close()


@pytest.fixture
def nats(tmp_path):
	if not os.access(NATS, os.X_OK):
		pytest.skip("no nats-server (scripts/install-deps installs it)")
	made = []

	def make(port=None, js=True):
		n = Nats(tmp_path, port, js)
		made.append(n)
		return n
	yield make
	for n in made:
		n.stop()


def node(broker, n, name, *more, js=True, timeout=10):
	"""A Viesti node named name on n (anything with a url for cluster_url)."""
	b = broker("cluster_url %s" % n.url, "cluster_node_id %s" % name, *more)
	b.wait_log(r"cluster: node %s connected to NATS" % name, timeout=timeout)
	if js:
		b.wait_log(r"cluster: node %s JetStream ready" % name, timeout=timeout)
		# Sessions roam from here on; one that connects before is this node's alone until its
		# key is first written (docs/cluster.md, "Sessions roam").
		b.wait_log(r"cluster: node %s sessions ready" % name, timeout=timeout)
	return b


def knows(pub, subject, timeout=10):
	"""Waits until node pub knows that another node subscribes to subject (cluster_interest.h:
	only then does its QoS 1/2 for it go through JetStream). pub logs with log_type all."""
	pub.wait_log(r"cluster: subject %s of another node" % re.escape(subject), timeout=timeout)


def wait_subjects(n, name, pred, what):
	wait_until(lambda: pred(n.subjects(name) or []), 10, what=what)


def test_messages_cross_nodes_exactly_once(nats, broker, clients):
	n = nats()
	a = node(broker, n, "na")
	b = node(broker, n, "nb")
	t = uid("cl")
	wide = clients.raw(b.port, 4)
	wide.connect(uid("wide"))
	wide.subscribe([(t + "/#", 1)])
	narrow = clients.raw(b.port, 4)
	narrow.connect(uid("narrow"))
	narrow.subscribe([(t + "/+/x", 1)])
	here = clients.raw(a.port, 4)  # on the publishing node: its copy is routed there only
	here.connect(uid("here"))
	here.subscribe([(t + "/#", 1)])
	wait_subjects(n, "nb", lambda s: any(x.endswith(".*.x") for x in s), "nb's subscriptions")
	levels = ["1", "a.b c", "", "*", ">", "100%", "\u00e4"]
	pub = clients.raw(a.port, 4)
	pub.connect(uid("pub"))
	for lv in levels:
		pub.publish("%s/%s/x" % (t, lv), lv.encode(), qos=1)
	want = sorted("%s/%s/x" % (t, lv) for lv in levels)
	for c in (wide, narrow, here):
		got = sorted(c.expect(PUBLISH, timeout=10).topic for _ in levels)
		assert got == want
		c.no_publish(0.5)  # one copy each: no duplicate from overlapping subjects, no echo


def test_parent_level_and_retained_forwarding(nats, broker, clients):
	n = nats()
	a = node(broker, n, "pa")
	b = node(broker, n, "pb")
	t = uid("par")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 1)])
	wait_subjects(n, "pb", lambda x: len([y for y in x if t.replace("-", "-") in y]) == 2,
		"pb to take both subjects of %s/#" % t)
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"parent", qos=1)  # "x/#" matches "x" [MQTT-4.7.1-2]
	got = s.expect(PUBLISH, timeout=10)
	assert (got.topic, got.payload) == (t, b"parent")
	# A retained message published on one node while the other has a subscriber reaches it
	# live (RETAIN 0 [MQTT-3.3.1-12]), and is kept by both: a later subscriber on the other
	# node gets it once the bucket brought it there.
	p.publish(t + "/r", b"kept", qos=1, retain=True)
	got = s.expect(PUBLISH, timeout=10)
	assert (got.payload, got.retain) == (b"kept", False)
	got = wait_until(lambda: retained_of(clients, b.port, t + "/r"), 10, what="kept on pb")
	assert (got.payload, got.retain) == (b"kept", True)


def test_overlapping_filters_share_one_nats_subscription(nats, broker, clients):
	n = nats()
	node(broker, n, "oa")
	b = node(broker, n, "ob")
	t = uid("ov")
	subs = []
	for f in (t + "/#", t + "/#", t + "/+", "$share/g/" + t + "/+", "$share/g/" + t + "/+"):
		c = clients.raw(b.port, 5)
		c.connect(uid("o"))
		c.subscribe([(f, 1)])
		subs.append(c)
	esc = t  # uid() makes [a-z0-9-]: no escaping
	# The shared group has its own queue subscriptions, one for both members: under vs.s for
	# its filter, and vs.sl for long topics (the heartbeat is vs.hb, client-id claims vs.c,
	# the node's JetStream consumer delivers on vs.d.NODE).
	base = ["vs.c", "vs.hb", "vs.ib", "vs.l"]  # vs.ib: the SUBACK barrier (cluster_interest.h)
	share = ["vs.s.%s.*" % esc, "vs.sl"]
	want = sorted(base + share + ["vs.m.%s" % esc, "vs.m.%s.>" % esc, "vs.m.%s.*" % esc])
	wait_subjects(n, "ob", lambda s: vs_only(s) == want, "ob's subjects to be %s" % want)
	for c in subs[:3]:
		c.unsubscribe([(t + "/#")] if c is not subs[2] else [t + "/+"])
	wait_subjects(n, "ob", lambda s: vs_only(s) == sorted(base + share),
		"ob to keep only what the shared subscription needs")
	subs[3].close()  # a clean session ends: its subscription goes, the other member stays
	subs[4].close()
	wait_subjects(n, "ob", lambda s: vs_only(s) == base, "ob to drop the last one")


def vs_only(subjects):
	"""Viesti's own subjects (not the inboxes of JetStream requests and watchers)."""
	return sorted(x for x in subjects if x.startswith("vs."))


def test_a_node_started_before_nats_joins_when_it_comes(nats, broker, clients, tmp_path):
	port = free_port()
	a = broker("cluster_url nats://127.0.0.1:%d" % port, "cluster_node_id early")
	a.wait_log(r"cluster: NATS at .* not reachable yet", timeout=10)
	s = clients.raw(a.port, 4)  # the broker serves its own clients meanwhile
	s.connect(uid("s"))
	t = uid("late")
	s.subscribe([(t, 1)])
	s.publish(t + "/r", b"before-nats", qos=1, retain=True)  # kept, and written to the bucket later
	n = nats(port)
	a.wait_log(r"cluster: node early connected to NATS", timeout=15)
	a.wait_log(r"cluster: node early JetStream ready", timeout=15)
	b = node(broker, n, "later")
	wait_subjects(n, "early", lambda x: "vs.m.%s" % t in x, "early's subscription")
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"hello", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"hello"
	a.wait_log(r"cluster: 1 retained message\(s\) published here before bucket", timeout=15)
	got = wait_until(lambda: retained_of(clients, b.port, t + "/r"), 10, what="later has it")
	assert got.payload == b"before-nats"


def bucket_state(n):
	"""The state of the retained messages' stream (KV_vs_retained) on NATS: (messages, last_seq)."""
	r = urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=true" % n.mport, timeout=5)
	for acc in json.loads(r.read()).get("account_details") or []:
		for st in acc.get("stream_detail") or []:
			if st["name"] == "KV_vs_retained":
				return st["state"]["messages"], st["state"]["last_seq"]
	return None


def retained_of(clients, port, topic, version=4):
	"""The retained message a new subscriber to topic gets on port, or None."""
	c = clients.raw(port, version)
	c.connect(uid("r"))
	c.subscribe([(topic, 1)])
	# A live copy of a message still on its way from another node may come too: only what
	# the store sends on subscribe has RETAIN 1 [MQTT-3.3.1-8].
	got = [p for p in c.drain(0.3) if p.type == PUBLISH and p.retain]
	c.close()
	return got[0] if got else None


def payload_of(p):
	return p.payload if p else None


def bucketed(broker, n, name, *more):
	b = node(broker, n, name, *more)
	b.wait_log(r"cluster: \d+ retained message\(s\) read from bucket vs_retained", timeout=15)
	return b


def test_retained_in_the_bucket_reach_every_node_and_clear_everywhere(nats, broker, clients):
	n = nats()
	a = bucketed(broker, n, "ra")
	b = bucketed(broker, n, "rb")
	t = uid("ret")
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	# Nobody subscribes anywhere: the bucket alone carries them.
	p.publish(t + "/one", b"1", qos=1, retain=True)
	p.publish(t + "/odd.level/ x", b"2", qos=1, retain=True)
	for topic, payload in ((t + "/one", b"1"), (t + "/odd.level/ x", b"2")):
		got = wait_until(lambda: retained_of(clients, b.port, topic), 10,
			what="%s retained on rb" % topic)
		assert (got.payload, got.retain) == (payload, True)
	# One message per topic in the bucket (history 1), and no node writes back what it
	# applied: the stream's last sequence stays at the two puts.
	assert bucket_state(n) == (2, 2)
	# A node that joins later reads every retained message from the bucket at start-up.
	c = bucketed(broker, n, "rc")
	got = retained_of(clients, c.port, t + "/#")
	assert got is not None and got.retain
	s = clients.raw(c.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 1)])
	assert sorted(x.payload for x in s.publishes(2, timeout=5)) == [b"1", b"2"]
	# Cleared on another node: cleared everywhere.
	q = clients.raw(b.port, 4)
	q.connect(uid("q"))
	q.publish(t + "/one", b"", qos=1, retain=True)
	for port in (a.port, b.port, c.port):
		wait_until(lambda: retained_of(clients, port, t + "/one") is None, 10,
			what="%s/one cleared on port %d" % (t, port))
	assert retained_of(clients, a.port, t + "/odd.level/ x").payload == b"2"
	assert bucket_state(n)[1] == 3


def test_last_writer_in_the_bucket_wins_and_a_restarted_node_catches_up(nats, broker, clients):
	n = nats()
	a = bucketed(broker, n, "wa")
	b = bucketed(broker, n, "wb")
	t = uid("lw")
	pa = clients.raw(a.port, 4)
	pa.connect(uid("pa"))
	pb = clients.raw(b.port, 4)
	pb.connect(uid("pb"))
	for i in range(20):  # both nodes write the same topic, interleaved
		(pa if i % 2 else pb).publish(t, b"%d" % i, qos=1, retain=True)
	wait_until(lambda: bucket_state(n) and bucket_state(n)[1] == 20, 10, what="20 puts")
	# Which put is last in the bucket depends on which node's connection flushed first; a
	# node started now reads the bucket's last value, and the others converge to it.
	c = bucketed(broker, n, "wc")
	last = payload_of(retained_of(clients, c.port, t))
	assert last is not None
	for port in (a.port, b.port):
		wait_until(lambda: payload_of(retained_of(clients, port, t)) == last, 10,
			what="the bucket's last put (%r) on port %d" % (last, port))
	# A node that was down while the topic changed has the bucket's value when it is back.
	b.stop()
	pa.publish(t, b"while-b-was-down", qos=1, retain=True)
	pa.publish(t + "/new", b"new", qos=1, retain=True)
	b2 = bucketed(broker, n, "wb")
	assert retained_of(clients, b2.port, t).payload == b"while-b-was-down"
	assert retained_of(clients, b2.port, t + "/new").payload == b"new"


def test_retained_expiry_travels_with_the_bucket(nats, broker, clients):
	n = nats()
	a = bucketed(broker, n, "ea")
	b = bucketed(broker, n, "eb")
	t = uid("exp")
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	p.publish(t, b"short", qos=1, retain=True, props={P.MESSAGE_EXPIRY: 2})
	got = wait_until(lambda: retained_of(clients, b.port, t, 5), 10, what="retained on eb")
	assert got.props.get(P.MESSAGE_EXPIRY) <= 2  # [MQTT-3.3.2-6] the time left
	# [MQTT-3.3.2-5] once expired it is not sent, on either node; a node started after
	# that does not take it from the bucket either.
	wait_until(lambda: retained_of(clients, b.port, t, 5) is None, 10, what="expiry on eb")
	c = bucketed(broker, n, "ec")
	assert retained_of(clients, c.port, t, 5) is None


def test_a_shared_group_across_nodes_gets_each_message_once(nats, broker, clients):
	n = nats()
	a = node(broker, n, "sa")
	b = node(broker, n, "sb")
	t = uid("sh")
	members = []
	for port in (a.port, b.port):
		m = clients.raw(port, 5)
		m.connect(uid("m"))
		m.subscribe([("$share/g/%s/+" % t, 1)])
		members.append(m)
	plain = []
	for port in (a.port, b.port):  # ordinary subscribers still get every message
		s = clients.raw(port, 5)
		s.connect(uid("s"))
		s.subscribe([(t + "/+", 1)])
		plain.append(s)
	for name in ("sa", "sb"):
		wait_subjects(n, name, lambda s: "vs.s.%s.*" % t in s and "vs.m.%s.*" % t in s,
			"%s's queue and plain subscriptions" % name)
	total = 60
	pubs = []
	for port in (a.port, b.port):
		p = clients.raw(port, 5)
		p.connect(uid("p"))
		pubs.append(p)
	for i in range(total):
		pubs[i % 2].publish("%s/%d" % (t, i), b"%d" % i, qos=1)
	got = []
	deadline = time.monotonic() + 15
	while len(got) < total and time.monotonic() < deadline:
		for m in members:
			got += [(m, p.payload) for p in m.drain(0.1) if p.type == PUBLISH]
	for m in members:
		got += [(m, p.payload) for p in m.drain(0.5) if p.type == PUBLISH]
	payloads = sorted(int(x[1]) for x in got)
	assert payloads == list(range(total)), "each message once to the group"
	share = [sum(1 for x in got if x[0] is m) for m in members]
	assert min(share) >= total // 6, "roughly balanced: %r" % share
	for s in plain:
		assert sorted(int(x.payload) for x in s.publishes(total, timeout=10)) == \
			list(range(total))
		s.no_publish(0.3)


def test_sys_and_metrics_show_the_cluster(nats, broker, clients):
	n = nats()
	port = free_port()
	a = node(broker, n, "ma", *http_lines(port))
	wait_listening(port)
	b = node(broker, n, "mb", "sys_interval 1")
	t = uid("m")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t, 1)])
	wait_subjects(n, "mb", lambda x: "vs.m.%s" % t in x, "mb's subscription")
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for i in range(3):
		p.publish(t, b"x", qos=1)
	assert len(s.publishes(3, timeout=10)) == 3

	def scraped():
		samples, _ = scrape(port)
		return samples if samples.get(("viesti_cluster_nodes", frozenset())) == 2 and \
			("viesti_cluster_rtt_seconds", frozenset()) in samples else None
	samples = wait_until(scraped, 15, what="ma to count 2 nodes and an RTT")
	assert value(samples, "viesti_cluster_connected") == 1
	assert value(samples, "viesti_cluster_messages_sent_total") >= 3
	assert 0 <= value(samples, "viesti_cluster_rtt_seconds") < 1
	assert value(samples, "viesti_cluster_retained_bucket") in (0, 1)
	sys = clients.raw(b.port, 4)
	sys.connect(uid("sys"))
	sys.subscribe([("$SYS/broker/cluster/#", 0)])
	seen = {}

	def sys_ready():
		for x in sys.drain(0.3):
			if x.type == PUBLISH:
				seen[x.topic] = x.payload.decode()
		return seen.get("$SYS/broker/cluster/nodes") == "2" and \
			int(seen.get("$SYS/broker/cluster/messages/received", "0")) >= 3
	wait_until(sys_ready, 15, what="$SYS/broker/cluster/ on mb: %r" % seen)
	assert seen["$SYS/broker/cluster/connected"] == "1"
	assert seen["$SYS/broker/cluster/rtt"].endswith(" ms")


def test_without_jetstream_each_node_keeps_what_it_routes(nats, broker, clients):
	n = nats(js=False)
	a = node(broker, n, "na", js=False)
	b = node(broker, n, "nb", js=False)
	b.wait_log(r"cluster: no JetStream bucket vs_retained yet", timeout=15)
	t = uid("nojs")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	t0 = time.monotonic()
	s.subscribe([(t, 1), ("$share/g/" + t, 1)])
	assert time.monotonic() - t0 < 0.9  # no barrier without JetStream: nothing it would protect
	wait_subjects(n, "nb", lambda x: "vs.m.%s" % t in x, "nb's subscription")
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"kept", qos=1, retain=True)
	assert s.expect(PUBLISH, timeout=10).payload == b"kept"
	# As before the bucket: the node that had a subscriber stored it from the frame.
	assert payload_of(retained_of(clients, b.port, t)) == b"kept"
	assert payload_of(retained_of(clients, a.port, t)) == b"kept"


def test_a_node_without_members_sends_to_a_group_on_other_nodes(nats, broker, clients):
	n = nats()
	a = node(broker, n, "ga")
	b = node(broker, n, "gb")
	c = node(broker, n, "gc")  # no members: it learns of the group from the heartbeats
	t = uid("grp")
	members = []
	for port in (a.port, b.port):
		m = clients.raw(port, 5)
		m.connect(uid("m"))
		m.subscribe([("$share/g/%s/#" % t, 1)])
		members.append(m)
	p = clients.raw(c.port, 5)
	p.connect(uid("p"))

	def probe_arrived():  # until gc has heard that others have groups
		p.publish(t + "/probe", b"", qos=1)
		return any(x.type == PUBLISH for m in members for x in m.drain(0.1))
	wait_until(probe_arrived, 10, what="a probe from gc to reach the group")
	for m in members:
		m.drain(0.3)
	total = 40
	for i in range(total):
		p.publish("%s/x/%d" % (t, i), b"%d" % i, qos=1)
	got = []
	deadline = time.monotonic() + 10
	while len(got) < total and time.monotonic() < deadline:
		for m in members:
			got += [int(x.payload) for x in m.drain(0.1) if x.type == PUBLISH and x.payload]
	for m in members:
		got += [int(x.payload) for x in m.drain(0.5) if x.type == PUBLISH and x.payload]
	assert sorted(got) == list(range(total))


def subscribed_pair(nats, broker, clients, na, nb, prefix, version):
	"""NATS and two nodes named na (logging all) and nb; a client of nb subscribed at QoS 2 to
	T/# (T a new topic starting with prefix), known to na: na's QoS 1/2 for it goes through
	JetStream. Returns (nats, na's broker, nb's, T, the subscriber)."""
	n = nats()
	a = node(broker, n, na, "log_type all")
	b = node(broker, n, nb)
	t = uid(prefix)
	s = clients.raw(b.port, version)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 2)])
	wait_subjects(n, nb, lambda x: "vs.m.%s.>" % t in x, nb + "'s subscription")
	knows(a, "vs.m.%s.>" % t)
	return n, a, b, t, s


def test_qos1_and_qos2_cross_nodes_in_order_once(nats, broker, clients):
	n, a, b, t, s = subscribed_pair(nats, broker, clients, "qa", "qb", "q", 5)
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	want = []
	for i in range(30):
		qos = 1 + i % 2
		p.publish("%s/%d" % (t, qos), b"%d" % i, qos=qos)
		want.append(("%s/%d" % (t, qos), b"%d" % i, qos))
	got = [(m.topic, m.payload, m.qos) for m in s.publishes(30, timeout=10)]
	assert got == want  # one publisher: its order kept across QoS 1 and 2
	s.no_publish(0.5)
	assert n.stream_state("VS_MSGS") >= 30  # they went through JetStream


def test_acknowledged_messages_survive_a_killed_node(nats, broker, clients):
	"""The publishing node is killed right after its PUBACKs/PUBRECs: every message it
	acknowledged reaches the subscriber on the other node, QoS 2 exactly once."""
	n, a, b, t, s = subscribed_pair(nats, broker, clients, "ka", "kb", "k", 4)
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	count = 200
	pids = {}
	for i in range(count):
		qos = 1 + i % 2
		pids[p.publish("%s/%d" % (t, qos), b"%d" % i, qos=qos, wait=False)] = qos
	for pid, qos in pids.items():
		p.expect(PUBACK if qos == 1 else PUBREC, timeout=10, pid=pid)
	a.kill()  # at once: no PUBREL, nothing flushed on the way out
	got = s.publishes(count, timeout=15)
	assert [m.payload for m in got] == [b"%d" % i for i in range(count)]
	s.no_publish(1.0)  # no duplicate


@pytest.fixture
def data_dir():
	d = tempfile.mkdtemp(prefix="viesti-cl-")
	yield d
	shutil.rmtree(d, ignore_errors=True)


def test_a_node_that_was_down_gets_what_was_published_meanwhile(nats, broker, clients, data_dir):
	n = nats()
	a = node(broker, n, "da", "log_type all")
	b = node(broker, n, "db", "persistence true", "persistence_location %s/" % data_dir)
	t = uid("d")
	cid = uid("s")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/#", 1)])
	wait_subjects(n, "db", lambda x: "vs.m.%s.>" % t in x, "db's subscription")
	knows(a, "vs.m.%s.>" % t)
	s.disconnect()
	b.kill()
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for i in range(50):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	b.start()
	b.wait_log(r"cluster: node db JetStream ready", timeout=10)
	s = clients.raw(b.port, 4)
	assert s.connect(cid, clean=False).session_present
	got = s.publishes(50, timeout=10)
	assert [m.payload for m in got] == [b"%d" % i for i in range(50)]
	# Published while it is up again: still through its consumer, after the backlog.
	p.publish("%s/x" % t, b"after", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"after"


@pytest.mark.parametrize("qos", [1, 2])
def test_what_a_killed_node_had_not_acknowledged_reaches_it_after_a_restart(nats, broker,
		clients, data_dir, qos):
	"""The receiving node is killed while JetStream delivers to it and started again: what it
	had been sent and had not acknowledged comes again after the ack wait (cluster_ack_wait 5:
	5 s, not the default 30), and is routed then, not taken for a copy of what it routed in
	this life: every message its publisher was acknowledged reaches the persistent session.
	At QoS 2 each once: one that the session held already (stored before the kill, its
	acknowledgement to JetStream lost with the node) is not queued a second time."""
	n = nats()
	a = node(broker, n, "ra", "log_type all")
	b = node(broker, n, "rb", "persistence true", "persistence_location %s/" % data_dir,
		"cluster_ack_wait 5")
	assert n.ack_wait("vs_rb") == 5
	t = uid("r")
	cid = uid("s")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/#", qos)])
	knows(a, "vs.m.%s.>" % t)
	s.disconnect()  # its messages wait in its session on rb
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	count, more = 400, 50
	pids = [p.publish("%s/x" % t, b"%d" % i, qos=qos, wait=False) for i in range(count)]
	wait_until(lambda: n.delivered("vs_rb") >= 50, 10, interval=0.001, what="deliveries to rb")
	b.kill()  # in the middle: some delivered and not yet acknowledged
	for pid in pids:
		p.expect(PUBACK if qos == 1 else PUBREC, timeout=10, pid=pid)
		if qos == 2:
			p.pubrel(pid)
	b.start()
	b.wait_log(r"cluster: node rb JetStream ready", timeout=10)
	for i in range(count, count + more):  # first deliveries of this life, ahead of the others
		p.publish("%s/x" % t, b"%d" % i, qos=qos)
	s = clients.raw(b.port, 4)
	assert s.connect(cid, clean=False).session_present
	got = []
	deadline = time.monotonic() + 20  # the ack wait (5 s), and margin; under 30 s
	while len(set(got)) < count + more and time.monotonic() < deadline:
		got += [m.payload for m in s.drain(0.2) if m.type == PUBLISH]
	missing = sorted(set(b"%d" % i for i in range(count + more)) - set(got), key=int)
	assert not missing, "%d of %d missing: %r" % (len(missing), count + more, missing[:20])
	if qos == 2:
		got += [m.payload for m in s.drain(1.0) if m.type == PUBLISH]
		twice = sorted({x for x in got if got.count(x) > 1}, key=int)
		assert not twice, "%d came twice: %r" % (len(twice), twice[:20])


def test_a_restarted_node_takes_its_new_ack_wait(nats, broker):
	"""cluster_ack_wait changes the ack wait of a consumer that an earlier run of the node made
	with another (JetStream keeps a durable consumer's configuration across restarts)."""
	n = nats()
	b = node(broker, n, "aw")
	assert n.ack_wait("vs_aw") == 30  # the default
	assert b.stop() is None
	c = node(broker, n, "aw", "cluster_ack_wait 7")
	assert n.ack_wait("vs_aw") == 7
	assert "keeps its ack wait" not in c.log_text()


def test_a_node_stopped_while_jetstream_delivers_to_it_exits_cleanly(nats, broker, clients):
	"""SIGTERM while another node's QoS 1 messages flow in: what the draining NATS connection
	delivers into the mailboxes after the workers stopped is given back before the NATS library
	closes (freeing it after crashed the node on its way out)."""
	n = nats()
	a = node(broker, n, "sa", "log_type all")
	b = node(broker, n, "sb")
	t = uid("st")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 1)])
	knows(a, "vs.m.%s.>" % t)
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for i in range(3000):
		p.publish(t + "/x", b"%d" % i, qos=1, wait=False)
	wait_until(lambda: n.delivered("vs_sb") >= 300, 10, interval=0.001, what="deliveries to sb")
	assert b.stop() is None  # exit 0 after SIGTERM
	assert b.sanitizer_report() is None


@pytest.mark.serial
def test_the_will_of_a_killed_nodes_client_is_published_once(nats, broker, clients):
	n = nats()
	lease = "cluster_lease 2"
	a = node(broker, n, "wa", lease)
	b = node(broker, n, "wb", lease)
	c = node(broker, n, "wc", lease)
	t = uid("w")
	s = clients.raw(c.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 1)])
	wait_subjects(n, "wc", lambda x: "vs.m.%s.>" % t in x, "wc's subscription")
	gone = clients.raw(a.port, 4)
	gid = uid("gone")
	gone.connect(gid, will=dict(topic=t + "/will", payload=b"bye", qos=1, retain=True))
	calm = clients.raw(a.port, 4)  # its will is cancelled by a normal DISCONNECT
	calm.connect(uid("calm"), will=dict(topic=t + "/calm", payload=b"no", qos=1))
	wait_until(lambda: n.stream_state("KV_vs_wills", "last_seq") >= 2, 10,
		what="the wills in vs_wills")
	calm.disconnect()  # a delete marker: the stream's third message
	wait_until(lambda: n.stream_state("KV_vs_wills", "last_seq") >= 3, 10,
		what="calm's will deleted")
	a.kill()
	m = s.expect(PUBLISH, timeout=10)  # the lease (2 s) and a scan (0.7 s), with margin
	assert (m.topic, m.payload, m.qos) == (t + "/will", b"bye", 1)
	s.ack(m)
	s.no_publish(1.5)  # one survivor published it
	key = [k for k in n.keys("vs_wills") if gid in k]
	assert len(key) == 1, n.keys("vs_wills")
	assert b"KV-Operation: DEL" in kv_last(n, "vs_wills", key[0])[0]  # and deleted it
	late = clients.raw(b.port, 4)  # retained on the other survivor too
	late.connect(uid("late"))
	late.subscribe([(t + "/will", 1)])
	m = late.expect(PUBLISH, timeout=10)
	assert (m.payload, m.retain) == (b"bye", True)
	assert b.log_text().count("expired") + c.log_text().count("expired") == 1


def test_nodes_look_for_dead_nodes_wills_without_listing_every_will(nats, broker, clients):
	"""Every third of a lease each node looks for nodes whose lease is gone: it reads the
	leases (a few keys) and watches a dead node's own wills, instead of listing every
	connected client's will in vs_wills (10 million of them took minutes, on every node, every
	few seconds). Counted in the NATS server's messages out while nothing else happens: 300
	wills listed by 2 nodes 3 times a second would be 1,800 a second."""
	n = nats()
	lease = "cluster_lease 3"  # a look every second
	a = node(broker, n, "ca", lease)
	b = node(broker, n, "cb", lease, "log_type all")
	t = uid("w")
	for i in range(300):
		clients.raw(a.port, 4).connect(uid("c"), will=dict(topic=t + "/will", payload=b"x",
			qos=1))
	wait_until(lambda: n.stream_state("KV_vs_wills", "messages") >= 300, 20,
		what="the 300 wills in vs_wills")
	look = "cluster: looked for nodes whose lease is gone"
	looked = b.log_text().count(look)
	before = n.monitor("varz")["out_msgs"]
	wait_until(lambda: b.log_text().count(look) >= looked + 3, 10, what="three looks by cb")
	out = n.monitor("varz")["out_msgs"] - before
	assert out < 300, out  # a single listing of every will would be 300


def kv_put_many(n, bucket, items, delete=False):
	"""Writes (key, value) items into key-value bucket bucket at once (core NATS publishes to
	$KV.BUCKET.KEY, which the bucket's stream stores); with delete, delete markers instead."""
	h = b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"
	out = [b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n']
	for k, v in items:
		subject = b"$KV.%s.%s" % (bucket.encode(), k.encode())
		if delete:
			out.append(b"HPUB %s %d %d\r\n%s\r\n" % (subject, len(h), len(h), h))
		else:
			out.append(b"PUB %s %d\r\n%s\r\n" % (subject, len(v), v))
	with socket.create_connection(("127.0.0.1", n.port), timeout=10) as sk:
		f = sk.makefile("rb")
		f.readline()  # INFO
		sk.sendall(b"".join(out) + b"PING\r\n")
		while not f.readline().startswith(b"PONG"):
			pass


def kv_last(n, bucket, key):
	"""The last message of key in bucket bucket: (headers, value)."""
	r = json.loads(n.request("$JS.API.STREAM.MSG.GET.KV_" + bucket,
		json.dumps({"last_by_subj": "$KV.%s.%s" % (bucket, key)}).encode()))
	return (base64.b64decode(r["message"].get("hdrs") or ""),
		base64.b64decode(r["message"].get("data") or ""))


def kv_get(n, bucket, key):
	"""The value of key in bucket bucket."""
	return kv_last(n, bucket, key)[1]


def test_a_node_started_after_a_death_publishes_thousands_of_its_wills(nats, broker, clients):
	"""A node lists the whole of vs_wills once, at its first look, to know the nodes that had
	wills: a dead node's 3,000 wills (one client's, copied) are all published by a node
	started after its lease expired. kvStore_Keys gave up on 3,000 keys (its 5 s limit is
	shortened by the time since the start at every key), and the node never listed again."""
	n = nats()
	lease = "cluster_lease 2"
	a = node(broker, n, "wa", lease)
	t = uid("w")
	clients.raw(a.port, 4).connect(uid("g"), will=dict(topic=t + "/will", payload=b"x", qos=1))
	wait_until(lambda: n.keys("vs_wills"), 10, what="the will in vs_wills")
	key = n.keys("vs_wills")[0]
	will = kv_get(n, "vs_wills", key)
	a.kill()
	tok = key.split(".")[0]
	kv_put_many(n, "vs_wills", [("%s.copy%d" % (tok, i), will) for i in range(2999)])
	wait_until(lambda: n.stream_state("KV_vs_wills", "messages") >= 3000, 20,
		what="3,000 wills in vs_wills")
	wait_until(lambda: not n.keys("vs_nodes"), 10, what="wa's lease to expire")
	b = node(broker, n, "wb", lease)
	wait_until(lambda: b.log_text().count("published will") == 3000, 60,
		what="3,000 wills published; log:\n" + b.log_text()[-2000:])
	assert "listing the wills" not in b.log_text()


def will_pair(broker, clients, n, level):
	"""Nodes wa and wb (a lease of 2 s) on n, and a subscriber s on wb to topic t + level, known
	to wa: wa's wills published by wb reach s."""
	lease = "cluster_lease 2"
	a = node(broker, n, "wa", lease)
	b = node(broker, n, "wb", lease)
	t = uid("w")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + level, 1)])
	wait_subjects(n, "wb", lambda x: any(t in y for y in x), "wb's subscription")
	return a, b, t, s


def test_a_dead_nodes_will_behind_thousands_of_delete_markers_is_published(nats, broker,
		clients):
	"""Most of a node's keys in vs_wills are delete markers (a client that disconnected
	normally, a will published). The watch of the dead node's keys gets through 3,000 of them
	to the will after them: with the watch's IgnoreDeletes, the skipped markers' time counted
	against one call's 5 s limit again and again, the watch failed, and the will was never
	published (nor the dead node forgotten)."""
	n = nats()
	a, b, t, s = will_pair(broker, clients, n, "/#")
	g = clients.raw(a.port, 4)
	g.connect(uid("g"), will=dict(topic=t + "/calm", payload=b"no", qos=1))
	wait_until(lambda: n.keys("vs_wills"), 10, what="the will in vs_wills")
	tok = n.keys("vs_wills")[0].split(".")[0]
	g.disconnect()  # its will deleted
	gone = ["%s.gone%d" % (tok, i) for i in range(3000)]
	kv_put_many(n, "vs_wills", [(k, b"x") for k in gone])
	kv_put_many(n, "vs_wills", [(k, None) for k in gone], delete=True)
	clients.raw(a.port, 4).connect(uid("g"), will=dict(topic=t + "/will", payload=b"bye",
		qos=1))
	wait_until(lambda: n.stream_state("KV_vs_wills", "last_seq") >= 6003, 20,
		what="the markers and the will in vs_wills")
	a.kill()
	m = s.expect(PUBLISH, timeout=20)
	assert (m.topic, m.payload) == (t + "/will", b"bye")
	s.ack(m)
	assert "Timeout" not in b.log_text()


def test_a_reaped_node_is_not_claimed_again_by_another_survivor(nats, broker, clients):
	"""The survivor that loses the claim on a dead node (reap.NODE, one lease) does not claim
	it once the claim expires and the winner has published every will: it has no will left,
	and only the winner says that it publishes the node's wills."""
	n = nats()
	lease = "cluster_lease 2"
	a = node(broker, n, "wa", lease)
	b = node(broker, n, "wb", lease, "log_type all")
	c = node(broker, n, "wc", lease, "log_type all")
	clients.raw(a.port, 4).connect(uid("g"), will=dict(topic=uid("w") + "/will", payload=b"x",
		qos=1))
	wait_until(lambda: n.keys("vs_wills"), 10, what="the will in vs_wills")
	a.kill()
	wait_until(lambda: (b.log_text() + c.log_text()).count("published will") == 1, 10,
		what="the will published")
	look = "cluster: looked for nodes whose lease is gone"
	lb, lc = b.log_text().count(look), c.log_text().count(look)
	wait_until(lambda: b.log_text().count(look) >= lb + 9 and c.log_text().count(look) >= lc + 9,
		20, what="three leases of looks")  # the claim expired long ago
	assert b.log_text().count("expired") + c.log_text().count("expired") == 1
	for x in (b, c):  # the other survivor only
		assert x.log_text().rsplit(look, 1)[1].startswith(" (1 other node(s) known)")


def test_a_node_restarted_while_reaped_keeps_its_new_clients_wills(nats, broker, clients):
	"""A node restarted with the same id while a survivor still publishes its 6,000 wills:
	the will its client x writes again on reconnecting (same key) is not published by the
	survivor while x is connected. The survivor published only revisions written before it
	saw the node dead (its lease is written before any will of its new life); it published
	x's new will, and deleted it, before."""
	n = nats()
	a, b, t, s = will_pair(broker, clients, n, "/x")
	clients.raw(a.port, 4).connect(uid("g"), will=dict(topic=t + "/copy", payload=b"c", qos=1))
	wait_until(lambda: n.keys("vs_wills"), 10, what="the will in vs_wills")
	key = n.keys("vs_wills")[0]
	tok = key.split(".")[0]
	will = kv_get(n, "vs_wills", key)
	kv_put_many(n, "vs_wills", [("%s.copy%d" % (tok, i), will) for i in range(6000)])
	xid = uid("x")
	clients.raw(a.port, 4).connect(xid, will=dict(topic=t + "/x", payload=b"old", qos=1))
	wait_until(lambda: n.stream_state("KV_vs_wills", "messages") >= 6002, 20, what="the wills in vs_wills")
	a.kill()
	b.wait_log("the lease of node wa expired", timeout=10)
	a2 = node(broker, n, "wa", "cluster_lease 2")
	assert b.log_text().count("published will") < 6000, "reaping over before the restart"
	x = clients.raw(a2.port, 4)
	x.connect(xid, will=dict(topic=t + "/x", payload=b"live", qos=1))
	wait_until(lambda: b.log_text().count("published will") >= 6001, 60, what="the wills published")
	got = []
	try:
		while True:
			m = s.expect(PUBLISH, timeout=2)
			s.ack(m)
			got.append(m.payload)
	except TimeoutError:
		pass
	assert b"live" not in got, got  # x is connected: its will is not due


def test_a_client_id_is_connected_on_one_node_at_a_time(nats, broker, clients):
	"""[MQTT-3.1.4-3] across nodes: a CONNECT on one node closes the connection with that client
	id on another (MQTT 5: DISCONNECT 0x8E, session taken over); other clients stay; a resumed
	session's take-over sends no will, a clean one's does."""
	n = nats()
	a = node(broker, n, "ta")
	b = node(broker, n, "tb")
	t = uid("to")
	watch = clients.raw(b.port, 4)
	watch.connect(uid("watch"))
	watch.subscribe([(t + "/#", 1)])
	wait_subjects(n, "tb", lambda x: "vs.m.%s.>" % t in x, "tb's subscription")
	cid = uid("dev")
	old = clients.raw(a.port, 5)
	old.connect(cid, clean=False, props={P.SESSION_EXPIRY: 60},
		will=dict(topic=t + "/will", payload=b"resumed", qos=1))
	bystander = clients.raw(a.port, 5)
	bystander.connect(uid("by"))
	new = clients.raw(b.port, 5)
	ack = new.connect(cid, clean=False, props={P.SESSION_EXPIRY: 60})
	assert ack.session_present  # the session came along (test_cluster_roam.py)
	got = old.wait_closed(10)
	disc = [p for p in got if p.type == DISCONNECT]
	assert disc and disc[0].rc == 0x8E, got
	# Closed by the hand-over of its session (cluster_session.h), before tb's claim.
	a.wait_log(r"cluster: session of client %s handed over to node tb" % cid, timeout=5)
	bystander.ping()  # still connected
	watch.no_publish(1.0)  # the new connection resumes: no will [MQTT-3.1.2-8] as on one node
	# Back to the first node with a clean start: the connection on tb goes, and its session
	# ends there (it had no will; the old one on ta is replaced by this connection's).
	again = clients.raw(a.port, 4)
	again.connect(cid, clean=True, will=dict(topic=t + "/will", payload=b"third", qos=1))
	new.wait_closed(10)
	b.wait_log(r"cluster: client %s connected on node ta: closing it here" % cid, timeout=5)
	# The claim of a clean start does not close a connection that came after it.
	again.ping()


def test_qos1_stays_off_jetstream_when_no_other_node_subscribes(nats, broker, clients):
	"""cluster_interest.h: a QoS 1/2 message whose subscribers are all on its own node costs no
	JetStream round trip; one that another node wants goes through it, and stops going when
	that node unsubscribes."""
	n = nats()
	a = node(broker, n, "ia", "log_type all")
	b = node(broker, n, "ib")
	t = uid("i")
	local = clients.raw(a.port, 4)
	local.connect(uid("l"))
	local.subscribe([(t + "/#", 1)])
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for i in range(20):
		p.publish(t + "/x", b"%d" % i, qos=1)
	assert len(local.publishes(20, timeout=10)) == 20
	assert n.stream_state("VS_MSGS") == 0  # none went through JetStream
	far = clients.raw(b.port, 4)
	far.connect(uid("f"))
	far.subscribe([(t + "/+", 1)])
	knows(a, "vs.m.%s.*" % t)
	for i in range(20):
		p.publish(t + "/x", b"%d" % i, qos=1)
	assert len(far.publishes(20, timeout=10)) == 20
	assert len(local.publishes(20, timeout=10)) == 20
	assert n.stream_state("VS_MSGS") == 20
	far.unsubscribe([t + "/+"])
	a.wait_log(r"cluster: no more subject .* of another node", timeout=10)
	for i in range(5):
		p.publish(t + "/x", b"%d" % i, qos=1)
	assert len(local.publishes(5, timeout=10)) == 5
	assert n.stream_state("VS_MSGS") == 20


def test_a_suback_waits_until_every_node_knows_the_subscription(nats, broker, clients):
	"""cluster_interest.h, the barrier: a QoS 1/2 message published on another node right after
	the SUBACK goes through JetStream (stored, at least once), not on core NATS (at most once):
	the SUBACK waited until every other node's watch had the new subject. A QoS 0 SUBACK does
	not wait; a later UNSUBACK does not overtake a held SUBACK."""
	n = nats()
	a = node(broker, n, "ba")
	b = node(broker, n, "bb", "log_type all")
	c = node(broker, n, "bc")
	for other in ("ba", "bc"):
		b.wait_log(r"cluster: node %s is there" % other, timeout=10)
	pa = clients.raw(a.port, 4)
	pa.connect(uid("pa"))
	pc = clients.raw(c.port, 5)
	pc.connect(uid("pc"))
	stored = 0
	for i in range(6):
		t = uid("bar")
		s = clients.raw(b.port, 4 if i % 2 else 5)
		s.connect(uid("s"))
		s.subscribe([(t, 1 + i % 2)])
		p = pa if i % 2 else pc
		p.publish(t, b"%d" % i, qos=1 + i % 2)  # returns once acknowledged
		stored += 1
		assert n.stream_state("VS_MSGS") == stored, "message %d went on core NATS" % i
		assert s.expect(PUBLISH, timeout=10).payload == b"%d" % i
	# Several SUBSCRIBEs without waiting, then an UNSUBSCRIBE: the acks come in order.
	s = clients.raw(b.port, 5)
	s.connect(uid("s"))
	t = uid("ord")
	pids = [s.pid() for _ in range(4)]
	for k, pid in enumerate(pids[:3]):
		s.send(s.subscribe_packet(pid, [("%s/%d" % (t, k), 1)]))
	s.send(packet(UNSUBSCRIBE, 2, struct.pack("!H", pids[3]) + b"\0" + utf8("%s/0" % t)))
	acks = [s.recv(timeout=10) for _ in range(4)]
	assert [(x.type, x.pid) for x in acks] == [(SUBACK, pids[0]), (SUBACK, pids[1]),
		(SUBACK, pids[2]), (UNSUBACK, pids[3])]
	for k in (1, 2):
		pa.publish("%s/%d" % (t, k), b"o%d" % k, qos=1)
		assert s.expect(PUBLISH, timeout=10).payload == b"o%d" % k
	assert n.stream_state("VS_MSGS") == stored + 2


@pytest.mark.serial
def test_a_node_that_does_not_answer_delays_a_suback_by_a_second_at_most(nats, broker, clients):
	"""A node that stopped answering (SIGSTOP) is given up on after a second, with a warning:
	the SUBACK still comes."""
	n = nats()
	a = node(broker, n, "sa")
	b = node(broker, n, "sb")
	b.wait_log(r"cluster: node sa is there", timeout=10)
	a.proc.send_signal(signal.SIGSTOP)
	try:
		s = clients.raw(b.port, 4)
		s.connect(uid("s"))
		t0 = time.monotonic()
		s.subscribe([(uid("stop"), 1)])
		took = time.monotonic() - t0
		b.wait_log(r"cluster: 1 node\(s\) \(sa\) did not say within 1000 ms", timeout=5)
		assert 0.9 <= took < 5, took
		t0 = time.monotonic()
		s.subscribe([(uid("q0"), 0)])  # QoS 0 only: no barrier
		assert time.monotonic() - t0 < 0.9
		# A SUBACK waits for its own subjects only: one the node has known for a while does
		# not wait behind a new one that waits for sa.
		old = uid("old")
		s.subscribe([(old, 1)])  # waits its second for sa
		y = clients.raw(b.port, 4)
		y.connect(uid("y"))
		y.send(y.subscribe_packet(7, [(uid("new"), 1)]))
		z = clients.raw(b.port, 4)
		z.connect(uid("z"))
		t0 = time.monotonic()
		z.subscribe([(old, 1)])
		assert time.monotonic() - t0 < 0.9
		y.expect(SUBACK, timeout=5)
	finally:
		a.proc.send_signal(signal.SIGCONT)


def test_a_subject_lingers_in_the_bucket_after_its_last_subscription(nats, broker, clients):
	"""cluster_interest.h: a subject this node no longer has stays in vs_interest for 3 s (a
	session handed over keeps its messages in JetStream until the new node's subjects are
	known); a subscription that comes back meanwhile costs no write, and the other nodes go on
	sending through JetStream. Then the key goes."""
	n = nats()
	a = node(broker, n, "la", "log_type all")
	b = node(broker, n, "lb")
	t = uid("lg")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/+", 1)])
	knows(a, "vs.m.%s.*" % t)
	s.unsubscribe([t + "/+"])
	s.subscribe([(t + "/+", 1)])  # back within the 3 s
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	p.publish(t + "/x", b"one", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"one"
	assert n.stream_state("VS_MSGS") == 1
	t0 = time.monotonic()
	s.unsubscribe([t + "/+"])
	a.wait_log(r"cluster: no more subject .* of another node", timeout=15)
	assert time.monotonic() - t0 >= 2.5  # it lingered
	assert len(re.findall(r"no more subject", a.log_text())) == 1  # the first wrote nothing


def test_many_new_subjects_at_once_are_all_known_before_their_subacks(nats, broker, clients):
	"""A burst of new subjects (a reconnect storm of devices, each with its own topic) is
	written to vs_interest pipelined, and every SUBACK still waits until the other node knows
	its subject: a QoS 1 message published there right after goes through JetStream."""
	n = nats()
	a = node(broker, n, "ma2")
	b = node(broker, n, "mb2", "log_type all")
	b.wait_log(r"cluster: node ma2 is there", timeout=10)
	t = uid("many")
	subs = []
	for k in range(4):
		s = clients.raw(b.port, 4)
		s.connect(uid("s"))
		s.send(s.subscribe_packet(1, [("%s/%d/%d" % (t, k, i), 1) for i in range(250)]))
		subs.append(s)
	for s in subs:
		assert s.expect(SUBACK, timeout=20).codes == [1] * 250
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for k, s in enumerate(subs):
		for i in (0, 123, 249):
			p.publish("%s/%d/%d" % (t, k, i), b"x", qos=1)
			assert s.expect(PUBLISH, timeout=10).topic == "%s/%d/%d" % (t, k, i)
	assert n.stream_state("VS_MSGS") == 12  # all through JetStream


def stream_update(n, name, **changes):
	"""Changes the configuration of JetStream stream name (the API's update takes it whole)."""
	info = json.loads(n.request("$JS.API.STREAM.INFO." + name))
	assert "error" not in info, info
	cfg = dict(info["config"], **changes)
	r = json.loads(n.request("$JS.API.STREAM.UPDATE." + name, json.dumps(cfg).encode()))
	assert "error" not in r, r


def test_a_qos2_message_jetstream_refused_is_stored_when_its_publisher_sends_it_again(nats,
		broker, clients):
	"""JetStream refuses a QoS 2 message (its stream is full): the node withholds the PUBREC and
	disconnects the publisher. Its packet id stays held in the session (the message reached
	this node's clean sessions), so the resend after the reconnect is not routed here again
	[MQTT-4.3.3-9]; but it must still reach JetStream, and through it the other nodes and this
	node's persistent sessions, once. Before this was fixed the resend was acknowledged and the
	message lost for them."""
	n, a, b, t, s = subscribed_pair(nats, broker, clients, "ra", "rb", "r", 4)
	local = clients.raw(a.port, 4)  # subscribers on the publisher's node: one takes it now,
	local.connect(uid("l"))
	local.subscribe([(t + "/#", 2)])
	kept = clients.raw(a.port, 4)  # one (persistent) from the stream (cluster_durable_sessions)
	kept.connect(uid("k"), clean=False)
	kept.subscribe([(t + "/#", 2)])
	cid = uid("p")
	p = clients.raw(a.port, 4)
	p.connect(cid, clean=False)
	p.publish(t + "/0", b"before", qos=2)
	assert [m.payload for m in s.publishes(1, timeout=10)] == [b"before"]
	assert [m.payload for m in local.publishes(1, timeout=10)] == [b"before"]
	assert [m.payload for m in kept.publishes(1, timeout=10)] == [b"before"]
	stored = n.stream_state("VS_MSGS")
	stream_update(n, "VS_MSGS", max_msgs=stored, discard="new")
	p.send(p.publish_packet(t + "/1", b"refused", qos=2, pid=7))
	assert not [x for x in p.wait_closed(timeout=10) if x.type == PUBREC]
	a.wait_log(r"JetStream did not take QoS 1/2 messages", timeout=10)
	stream_update(n, "VS_MSGS", max_msgs=-1, discard="old")
	p = clients.raw(a.port, 4)
	assert p.connect(cid, clean=False).session_present
	p.send(p.publish_packet(t + "/1", b"refused", qos=2, pid=7, dup=True))
	assert p.expect(PUBREC, pid=7, timeout=10).rc == 0
	p.pubrel(7)
	p.expect(PUBCOMP, pid=7, timeout=10)
	p.publish(t + "/2", b"after", qos=2)
	# Once on each node: the other node gets it from the stream, this one had it already.
	assert [m.payload for m in s.publishes(2, timeout=10)] == [b"refused", b"after"]
	assert [m.payload for m in local.publishes(2, timeout=10)] == [b"refused", b"after"]
	assert [m.payload for m in kept.publishes(2, timeout=10)] == [b"refused", b"after"]
	assert n.stream_state("VS_MSGS") == stored + 2


def test_a_qos2_resend_refused_for_good_is_answered_not_kept(nats, broker, clients):
	"""JetStream refused a QoS 2 message, so the node keeps it to offer again; but the resend is
	one the node refuses for good (here a $SYS topic, as an ACL changed by a reload would). It
	is answered with its reason code, as a first send would be, and the client stays connected.
	Before this was fixed, the node kept it again and closed the client, at every reconnect."""
	n, a, b, t, s = subscribed_pair(nats, broker, clients, "ga", "gb", "g", 5)
	cid = uid("p")
	p = clients.raw(a.port, 5)
	p.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600})
	p.publish(t + "/0", b"before", qos=2)
	assert [m.payload for m in s.publishes(1, timeout=10)] == [b"before"]
	stored = n.stream_state("VS_MSGS")
	stream_update(n, "VS_MSGS", max_msgs=stored, discard="new")
	p.send(p.publish_packet(t + "/1", b"refused", qos=2, pid=7))
	assert not [x for x in p.wait_closed(timeout=10) if x.type == PUBREC]
	stream_update(n, "VS_MSGS", max_msgs=-1, discard="old")
	for attempt in range(2):  # refused for good: answered each time, never a disconnect
		p = clients.raw(a.port, 5)
		assert p.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
		p.send(p.publish_packet("$SYS/g", b"refused", qos=2, pid=7, dup=True))
		assert p.expect(PUBREC, pid=7, timeout=10).rc == 0x87
		p.publish(t + "/2", b"after%d" % attempt, qos=2)  # still connected, and serving
		p.disconnect()
	assert [m.payload for m in s.publishes(2, timeout=10)] == [b"after0", b"after1"]


def test_a_qos2_message_refused_while_nats_is_away_goes_when_its_publisher_sends_it_again(nats,
		broker, clients):
	"""NATS is away for a moment (its server restarted): a QoS 2 message another node wants
	cannot be published at all, so the node withholds the PUBREC and disconnects the publisher.
	The resends while NATS is still away are refused the same way; the first after it is back
	reaches the other node, once. Before this was fixed, a publish that failed at once was not
	remembered, and the resend was acknowledged from the held packet id: lost for the other
	node."""
	n, a, b, t, s = subscribed_pair(nats, broker, clients, "na", "nb", "n", 4)
	cid = uid("p")
	p = clients.raw(a.port, 4)
	p.connect(cid, clean=False)
	p.publish(t + "/0", b"before", qos=2)
	assert [m.payload for m in s.publishes(1, timeout=10)] == [b"before"]
	n.kill()
	p.send(p.publish_packet(t + "/1", b"away", qos=2, pid=9))
	assert not [x for x in p.wait_closed(timeout=10) if x.type == PUBREC]
	n2 = nats(port=n.port)  # the same store: the stream is as it was
	deadline = time.monotonic() + 30
	while True:  # until the node is back on NATS, each try refused as the first
		left = deadline - time.monotonic()
		assert left > 0, "the resend never went through"
		p = clients.raw(a.port, 4)
		assert p.connect(cid, clean=False).session_present
		p.send(p.publish_packet(t + "/1", b"away", qos=2, pid=9, dup=True))
		try:
			assert p.expect(PUBREC, pid=9, timeout=min(15, left)).rc == 0
			break
		except (Closed, OSError, TimeoutError):
			time.sleep(0.2)  # between tries: the node reconnects to NATS meanwhile
	p.pubrel(9)
	p.expect(PUBCOMP, pid=9, timeout=10)
	p.publish(t + "/2", b"after", qos=2)
	assert [m.payload for m in s.publishes(2, timeout=20)] == [b"away", b"after"]
	s.no_publish(0.5)
	assert n2.stream_state("VS_MSGS") >= 3
