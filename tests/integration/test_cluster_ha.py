"""Viesti nodes on a three-server NATS cluster with JetStream (docs/cluster.md, high availability).

Three nats-servers form one cluster (routes between them, one JetStream meta group); three
Viesti nodes name all three servers in cluster_url and keep their stream and buckets on all
three (cluster_replicas 3). What is checked: QoS 0 and 1 cross between all three nodes; when
the NATS server that a Viesti node is connected to is killed (-9) while QoS 1 messages flow, the
node moves to another server and the cluster keeps serving: every QoS 1 message a publisher was
acknowledged, before the kill and after it, reaches the subscriber on another node (at least
once), and a message published after the kill still crosses.
"""

import os
import re
import threading
import time

import pytest

from conftest import free_port, wait_until
from helpers import uid
from mqtt_raw import PUBACK, PUBLISH, Closed, RawClient
from test_cluster import NATS, Nats, node

# Heavy: three nats-servers with JetStream and three Viesti nodes per test.
pytestmark = [pytest.mark.viesti_only, pytest.mark.serial]

REPLICAS = "cluster_replicas 3"


class NatsCluster:
	"""Three nats-servers routed to each other, named vsha0..2, one JetStream domain."""

	def __init__(self, tmp_path, size=3):
		cports = [free_port() for _ in range(size)]
		routes = ",".join("nats://127.0.0.1:%d" % p for p in cports)
		self.servers = []
		try:
			for i, cp in enumerate(cports):
				self.servers.append(Nats(tmp_path, args=["--server_name", "vsha%d" % i,
					"--cluster_name", "vsha", "--cluster", "nats://127.0.0.1:%d" % cp,
					"--routes", routes]))
			# JetStream answers once its meta group has elected a leader, which needs a
			# quorum of the three; until then the nodes could not make their stream and
			# buckets.
			wait_until(self.meta_leader, 30, interval=0.2, what="a JetStream meta leader")
		except BaseException:
			self.stop()
			raise
		self.url = ",".join(s.url for s in self.servers)

	def meta_leader(self):
		for s in self.servers:
			try:
				meta = s.monitor("jsz").get("meta_cluster") or {}
			except OSError:
				return False
			if not meta.get("leader") or meta.get("cluster_size") != len(self.servers):
				return False
		return True

	def server_of(self, name):
		"""The server that the connection named name is on (None: on none)."""
		for s in self.servers:
			if s.proc.poll() is None and name in s.client_names():
				return s
		return None

	def stop(self):
		for s in self.servers:
			s.stop()


@pytest.fixture
def cluster(tmp_path):
	if not os.access(NATS, os.X_OK):
		pytest.skip("no nats-server (scripts/install-deps installs it)")
	made = []

	def make():
		c = NatsCluster(tmp_path)
		made.append(c)
		return c
	yield make
	for c in made:
		c.stop()


def nodes(broker, nc, prefix, count=3):
	"""count Viesti nodes on nc, all logging what they learn of the others' subjects."""
	return [node(broker, nc, "%s%d" % (prefix, i), REPLICAS, "log_type all", timeout=30)
		for i in range(count)]


def knows_of(pub, subject, other):
	"""Waits until Viesti node pub knows that node other subscribes to subject (one other node
	known is not enough for the tests here: each node's interest comes on its own)."""
	pub.wait_log(r"cluster: subject %s of another node \(%s\." % (re.escape(subject), other),
		timeout=15)


def test_qos0_and_qos1_cross_between_three_nodes(cluster, broker, clients):
	nc = cluster()
	vs = nodes(broker, nc, "hr")
	t = uid("ha")
	subject = "vs.m.%s.>" % t
	subs = []
	for b in vs:
		s = clients.raw(b.port, 4)
		s.connect(uid("s"))
		s.subscribe([(t + "/#", 1)])
		subs.append(s)
	for i, pub in enumerate(vs):
		for j in range(len(vs)):
			if j != i:
				knows_of(pub, subject, "hr%d" % j)
	want = []
	for i, b in enumerate(vs):
		p = clients.raw(b.port, 4)
		p.connect(uid("p"))
		for k in range(10):
			for qos in (0, 1):
				payload = b"%d-%d-%d" % (i, qos, k)
				p.publish("%s/%d/%d" % (t, i, qos), payload, qos=qos)
				want.append(payload)
		p.disconnect()
	for s in subs:
		got = s.publishes(len(want), timeout=15)
		assert sorted(m.payload for m in got) == sorted(want)
		s.no_publish(0.3)  # exactly once, each of them


class Publisher(threading.Thread):
	"""Publishes QoS 1 messages "0", "1", ... on topic through the node on port, one at a time,
	until told to stop; notes which ones were acknowledged. A connection the node closes (it
	does so when JetStream does not take a message) or that stops answering is replaced by a new
	one, as a client would do; the message it was publishing is then not counted."""

	def __init__(self, port, topic):
		super().__init__(daemon=True)
		self.port, self.topic = port, topic
		self.acked = []
		self.reconnects = 0
		self.stop_at = None  # stop once this many were acknowledged
		self.error = None
		self.cid = uid("p")

	def run(self):
		try:
			self.loop()
		except Exception as e:  # reported by the test
			self.error = e

	def loop(self):
		c, i = None, 0
		deadline = time.monotonic() + 120
		while self.stop_at is None or len(self.acked) < self.stop_at:
			assert time.monotonic() < deadline, "the publisher got stuck"
			try:
				if c is None:
					c = RawClient(self.port, 4)
					c.connect(self.cid)
				c.publish(self.topic, b"%d" % i, qos=1, wait=False, pid=1 + i % 65535)
				c.expect(PUBACK, timeout=10, pid=1 + i % 65535)
				self.acked.append(b"%d" % i)
			except (Closed, TimeoutError, OSError):
				if c is not None:
					c.close()
				c = None
				self.reconnects += 1
				time.sleep(0.1)
			i += 1
		if c is not None:
			c.disconnect()


def hundred_more(pub):
	wait_until(lambda: not pub.is_alive(), 120, interval=0.1,
		what="100 more acknowledged after the kill (%d so far)" % len(pub.acked))


def every_acknowledged(pub, got, take, before, context=lambda: ""):
	"""Every message pub was acknowledged arrives, at least once, within 60 s: take(timeout)
	adds what arrives to got. before: how many were acknowledged before the kill."""
	assert pub.error is None, pub.error
	wanted = set(pub.acked)
	deadline = time.monotonic() + 60
	while not wanted <= set(got) and time.monotonic() < deadline:
		take(0.2)
	missing = sorted(wanted - set(got), key=int)
	assert not missing, "%d acknowledged messages missing (of %d, %d before the kill): %r%s" % (
		len(missing), len(wanted), before, missing[:20], context())


def kill_under_flow(cluster, broker, clients, victim):
	"""Node hk0 publishes QoS 1 to a subscriber on hk1 while the NATS server that node victim
	(0 or 1) is connected to is killed."""
	nc = cluster()
	vs = nodes(broker, nc, "hk")
	t = uid("hk")
	s = clients.raw(vs[1].port, 4)
	s.connect(uid("s"))
	s.subscribe([(t + "/#", 1)])
	knows_of(vs[0], "vs.m.%s.>" % t, "hk1")
	pub = Publisher(vs[0].port, t + "/x")
	pub.start()
	got = []

	def take(timeout):
		got.extend(m.payload for m in s.drain(timeout) if m.type == PUBLISH)

	try:
		wait_until(lambda: len(pub.acked) >= 50 or pub.error, 30, what="50 acknowledged")
		take(0.1)
		dead = nc.server_of("hk%d" % victim)
		assert dead is not None
		dead.kill()
		before = len(pub.acked)
		pub.stop_at = before + 100  # acknowledged after the kill
		hundred_more(pub)
	finally:
		pub.stop_at = 0
		pub.join(130)
	# What JetStream had delivered to a node's connection on the dead server comes again
	# after the consumer's ack wait (30 s).
	every_acknowledged(pub, got, take, before)
	# And the cluster still serves: one more, published now.
	p = clients.raw(vs[0].port, 4)
	p.connect(uid("late"))
	p.publish(t + "/late", b"late", qos=1)
	wait_until(lambda: take(0.2) or b"late" in got, 30, interval=0, what="the late message")
	assert nc.server_of("hk%d" % victim) is not None  # moved to another server


def test_killing_the_publishing_nodes_nats_server_loses_no_acknowledged_message(
		cluster, broker, clients):
	kill_under_flow(cluster, broker, clients, 0)


def test_killing_the_subscribing_nodes_nats_server_loses_no_acknowledged_message(
		cluster, broker, clients):
	kill_under_flow(cluster, broker, clients, 1)


def test_a_viesti_node_killed_under_qos1_load_loses_nothing_and_its_clients_go_on_elsewhere(
		cluster, broker, clients):
	"""The issue's scenario on its topology: three NATS servers, three Viesti nodes. A
	publisher on hv0 sends QoS 1 to a persistent subscriber on hv1, where another client has
	a will; hv1 is killed (-9) in the middle of the flow. Its client's will is published (to a
	watcher on hv2) by a survivor within the lease; the subscriber reconnects to hv2 and
	resumes its session (session present), and every message the publisher was acknowledged,
	before the kill and after it, reaches it (at least once)."""
	nc = cluster()
	lease = "cluster_lease 2"
	vs = [node(broker, nc, "hv%d" % i, REPLICAS, "log_type all", lease, timeout=30)
		for i in range(3)]
	t = uid("hv")
	cid = uid("s")
	s = clients.raw(vs[1].port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/x", 1)])
	watch = clients.raw(vs[2].port, 4)
	watch.connect(uid("w"))
	watch.subscribe([(t + "/will", 1)])
	dying = clients.raw(vs[1].port, 4)
	dying.connect(uid("d"), will=dict(topic=t + "/will", payload=b"gone", qos=1))
	knows_of(vs[0], "vs.m.%s.x" % t, "hv1")
	knows_of(vs[1], "vs.m.%s.will" % t, "hv2")
	pub = Publisher(vs[0].port, t + "/x")
	pub.start()
	got = []
	try:
		wait_until(lambda: len(pub.acked) >= 100 or pub.error, 30, what="100 acknowledged")
		got += [m.payload for m in s.drain(0.1) if m.type == PUBLISH]
		vs[1].kill()
		s.close()
		before = len(pub.acked)
		pub.stop_at = before + 100  # acknowledged after the kill
		m = watch.expect(PUBLISH, timeout=15)  # the lease (2 s) and a look (0.7 s)
		assert (m.topic, m.payload) == (t + "/will", b"gone")
		watch.ack(m)
		r = clients.raw(vs[2].port, 4)
		assert r.connect(cid, clean=False).session_present
		hundred_more(pub)
	finally:
		pub.stop_at = 0
		pub.join(130)
	every_acknowledged(pub, got,
		lambda timeout: got.extend(m.payload for m in r.drain(timeout) if m.type == PUBLISH),
		before, lambda: "\n" + "\n".join(
			[x for x in vs[1].log_text().splitlines() if "floor" in x][-3:] +
			[x for x in vs[2].log_text().splitlines() if cid in x or "stream" in x]))
	watch.no_publish(0.5)  # the will once
