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

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

from conftest import free_port, wait_until
from helpers import uid
from mqtt_raw import PUBACK, PUBLISH, PUBREC

pytestmark = pytest.mark.viesti_only

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Nats:
	def __init__(self, tmp_path, port=None):
		self.port = port or free_port()
		self.mport = free_port()
		self.log = open(str(tmp_path / ("nats-%d.log" % self.port)), "wb")
		self.store = str(tmp_path / ("js-%d" % self.port))
		self.proc = subprocess.Popen([NATS, "-a", "127.0.0.1", "-p", str(self.port), "-m",
			str(self.mport), "-js", "-sd", self.store], stdout=self.log,
			stderr=subprocess.STDOUT)
		wait_until(self.up, 10, what="nats-server on %d" % self.port)

	def up(self):
		try:
			urllib.request.urlopen("http://127.0.0.1:%d/varz" % self.mport, timeout=1).read()
			return True
		except OSError:
			return False

	def subjects(self, node):
		"""The message subjects the connection named node subscribes to (not its JetStream
		inboxes and consumer)."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/connz?subs=1" % self.mport, timeout=5)
		for c in json.loads(r.read())["connections"] or []:
			if c.get("name") == node:
				return sorted(x for x in c.get("subscriptions_list") or []
					if x.startswith(("vs.m", "vs.l")))
		return None

	def stream_state(self, name, field="messages"):
		"""A field of the JetStream stream name's state (0 when there is no such stream)."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=1" % self.mport, timeout=5)
		for acc in json.loads(r.read()).get("account_details") or []:
			for st in acc.get("stream_detail") or []:
				if st["name"] == name:
					return st["state"][field]
		return 0

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

	def make(port=None):
		n = Nats(tmp_path, port)
		made.append(n)
		return n
	yield make
	for n in made:
		n.stop()


def node(broker, n, name, *more):
	b = broker("cluster_url nats://127.0.0.1:%d" % n.port, "cluster_node_id %s" % name, *more)
	b.wait_log(r"cluster: node %s connected to NATS" % name, timeout=10)
	b.wait_log(r"cluster: node %s JetStream ready" % name, timeout=10)
	return b


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
	# A retained message published on one node while the other has a subscriber is kept by
	# both: a later subscriber on the other node gets it.
	p.publish(t + "/r", b"kept", qos=1, retain=True)
	assert s.expect(PUBLISH, timeout=10).payload == b"kept"
	late = clients.raw(b.port, 4)
	late.connect(uid("late"))
	late.subscribe([(t + "/r", 1)])
	got = late.expect(PUBLISH, timeout=10)
	assert (got.payload, got.retain) == (b"kept", True)


def test_overlapping_filters_share_one_nats_subscription(nats, broker, clients):
	n = nats()
	node(broker, n, "oa")
	b = node(broker, n, "ob")
	t = uid("ov")
	subs = []
	for f in (t + "/#", t + "/#", t + "/+", "$share/g/" + t + "/+"):
		c = clients.raw(b.port, 5)
		c.connect(uid("o"))
		c.subscribe([(f, 1)])
		subs.append(c)
	esc = t  # uid() makes [a-z0-9-]: no escaping
	want = sorted(["vs.l", "vs.m.%s" % esc, "vs.m.%s.>" % esc, "vs.m.%s.*" % esc])
	wait_subjects(n, "ob", lambda s: s == want, "ob's subjects to be %s" % want)
	for c in subs[:3]:
		c.unsubscribe([(t + "/#")] if c is not subs[2] else [t + "/+"])
	wait_subjects(n, "ob", lambda s: s == sorted(["vs.l", "vs.m.%s.*" % esc]),
		"ob to keep only what the shared subscription needs")
	subs[3].close()  # a clean session ends: its subscription goes
	wait_subjects(n, "ob", lambda s: s == ["vs.l"], "ob to drop the last one")


def test_a_node_started_before_nats_joins_when_it_comes(nats, broker, clients, tmp_path):
	port = free_port()
	a = broker("cluster_url nats://127.0.0.1:%d" % port, "cluster_node_id early")
	a.wait_log(r"cluster: NATS at .* not reachable yet", timeout=10)
	s = clients.raw(a.port, 4)  # the broker serves its own clients meanwhile
	s.connect(uid("s"))
	t = uid("late")
	s.subscribe([(t, 1)])
	n = nats(port)
	a.wait_log(r"cluster: node early connected to NATS", timeout=15)
	a.wait_log(r"cluster: node early JetStream ready", timeout=15)
	b = node(broker, n, "later")
	wait_subjects(n, "early", lambda x: "vs.m.%s" % t in x, "early's subscription")
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"hello", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"hello"


def test_qos1_and_qos2_cross_nodes_in_order_once(nats, broker, clients):
	n = nats()
	a = node(broker, n, "qa")
	b = node(broker, n, "qb")
	t = uid("q")
	s = clients.raw(b.port, 5)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 2)])
	wait_subjects(n, "qb", lambda x: "vs.m.%s.>" % t in x, "qb's subscription")
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
	n = nats()
	a = node(broker, n, "ka")
	b = node(broker, n, "kb")
	t = uid("k")
	s = clients.raw(b.port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 2)])
	wait_subjects(n, "kb", lambda x: "vs.m.%s.>" % t in x, "kb's subscription")
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
	a = node(broker, n, "da")
	b = node(broker, n, "db", "persistence true", "persistence_location %s/" % data_dir)
	t = uid("d")
	cid = uid("s")
	s = clients.raw(b.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/#", 1)])
	wait_subjects(n, "db", lambda x: "vs.m.%s.>" % t in x, "db's subscription")
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
	gone.connect(uid("gone"), will=dict(topic=t + "/will", payload=b"bye", qos=1, retain=True))
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
	late = clients.raw(b.port, 4)  # retained on the other survivor too
	late.connect(uid("late"))
	late.subscribe([(t + "/will", 1)])
	m = late.expect(PUBLISH, timeout=10)
	assert (m.payload, m.retain) == (b"bye", True)
	assert b.log_text().count("expired") + c.log_text().count("expired") == 1
