"""Viesti nodes as one broker over NATS (issue 19, first part: routing; docs/cluster.md).

Each test starts Debian's nats-server on free ports and two Viesti nodes that name it in
cluster_url. What is checked: a message published on one node reaches the matching subscribers
of the other, exactly once, with the bytes NATS gives a meaning ('.', ' ', '*', '>') and empty
levels intact; "x/#" also takes "x"; a node does not get its own messages back; overlapping
filters cost one NATS subscription, and the last unsubscribe removes it (read from the NATS
server's monitoring endpoint); a node started before NATS joins when it comes.
"""

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from conftest import free_port, wait_until
from helpers import uid
from mqtt_raw import PUBLISH

pytestmark = pytest.mark.viesti_only

NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Nats:
	def __init__(self, tmp_path, port=None):
		self.port = port or free_port()
		self.mport = free_port()
		self.log = open(str(tmp_path / ("nats-%d.log" % self.port)), "wb")
		store = tmp_path / ("js-%d" % self.port)  # JetStream: the bucket of retained messages
		self.proc = subprocess.Popen([NATS, "-a", "127.0.0.1", "-p", str(self.port), "-m",
			str(self.mport), "-js", "-sd", str(store)], stdout=self.log,
			stderr=subprocess.STDOUT)
		wait_until(self.up, 10, what="nats-server on %d" % self.port)

	def up(self):
		try:
			urllib.request.urlopen("http://127.0.0.1:%d/varz" % self.mport, timeout=1).read()
			return True
		except OSError:
			return False

	def subjects(self, node):
		"""The subjects the connection named node subscribes to."""
		r = urllib.request.urlopen("http://127.0.0.1:%d/connz?subs=1" % self.mport, timeout=5)
		for c in json.loads(r.read())["connections"] or []:
			if c.get("name") == node:
				return sorted(c.get("subscriptions_list") or [])
		return None

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
	for f in (t + "/#", t + "/#", t + "/+", "$share/g/" + t + "/+", "$share/g/" + t + "/+"):
		c = clients.raw(b.port, 5)
		c.connect(uid("o"))
		c.subscribe([(f, 1)])
		subs.append(c)
	esc = t  # uid() makes [a-z0-9-]: no escaping
	# The shared group has its own queue subscriptions, one for both members: under vs.s for
	# its filter, and vs.sl for long topics (the heartbeat is vs.hb).
	base = ["vs.hb", "vs.l"]
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
	n = nats(port)
	a.wait_log(r"cluster: node early connected to NATS", timeout=15)
	b = node(broker, n, "later")
	wait_subjects(n, "early", lambda x: "vs.m.%s" % t in x, "early's subscription")
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"hello", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"hello"
