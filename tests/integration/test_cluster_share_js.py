"""Shared subscriptions across nodes at QoS 1/2 through JetStream (issue 19; docs/cluster.md
"Shared subscriptions across nodes"; src/broker/cluster_share.h).

A group with members on two nodes gets each QoS 1 message once, from publishers on any node
(the group's members' node too); when a member's node is killed with messages of the group in
flight, every message acknowledged to its publisher reaches the surviving member (at least
once: what the dead node took and did not acknowledge to JetStream comes again to the other
node after the group's ack wait, 10 s).
"""

import signal
import time

import pytest

from conftest import wait_until
from helpers import uid
from mqtt_raw import PUBACK, PUBLISH
from test_cluster import knows, nats, node  # noqa: F401 (fixture)

pytestmark = pytest.mark.viesti_only


def members_on(clients, ports, share):
	ms = []
	for port in ports:
		m = clients.raw(port, 5)
		m.connect(uid("m"))
		m.subscribe([(share, 1)])
		ms.append(m)
	return ms


def collect(members, want, timeout):
	got = []
	deadline = time.monotonic() + timeout
	while len(got) < want and time.monotonic() < deadline:
		for m in members:
			got += [(m, p.payload) for p in m.drain(0.1) if p.type == PUBLISH]
	return got


def test_each_qos1_message_once_to_a_group_across_nodes(nats, broker, clients):
	n = nats()
	a = node(broker, n, "ga", "log_type all")
	b = node(broker, n, "gb", "log_type all")
	c = node(broker, n, "gc", "log_type all")
	t = uid("g")
	share = "$share/g/%s/+" % t
	members = members_on(clients, (a.port, b.port), share)
	subject = "vs.m.%s.*" % t
	for pub_node in (a, b, c):  # each node knows the group's subjects on the other nodes
		knows(pub_node, subject)
	total = 90
	pubs = []
	for port in (a.port, b.port, c.port):  # from the members' nodes too
		p = clients.raw(port, 5)
		p.connect(uid("p"))
		pubs.append(p)
	for i in range(total):
		pubs[i % 3].publish("%s/%d" % (t, i), b"%d" % i, qos=1)
	got = collect(members, total, 20)
	for m in members:
		got += [(m, p.payload) for p in m.drain(0.5) if p.type == PUBLISH]
	assert sorted(int(x[1]) for x in got) == list(range(total)), "each message once"
	share_of = [sum(1 for x in got if x[0] is m) for m in members]
	assert min(share_of) >= total // 6, "both nodes take part: %r" % share_of
	# They went through the group's consumers, not core NATS (at most once).
	assert "JetStream consumers of %s are not there" % share not in a.log_text()


@pytest.mark.serial
def test_what_a_dead_member_node_had_not_taken_goes_to_the_other(nats, broker, clients):
	"""The node of one member is frozen (SIGSTOP) while QoS 1 messages for the group are
	published and acknowledged, then killed: JetStream gave it some of them, which it never
	acknowledged; after the group's ack wait they go to the member on the other node. Every
	acknowledged message reaches the group."""
	n = nats()
	a = node(broker, n, "ka")
	b = node(broker, n, "kb")
	c = node(broker, n, "kc", "log_type all")
	t = uid("k")
	share = "$share/g/%s/#" % t
	dying, surviving = members_on(clients, (a.port, b.port), share)
	knows(c, "vs.m.%s.>" % t)
	p = clients.raw(c.port, 5)
	p.connect(uid("p"))
	p.publish("%s/x" % t, b"warm", qos=1)  # both nodes' consumers are bound
	collect([dying, surviving], 1, 10)
	a.proc.send_signal(signal.SIGSTOP)
	total = 60
	pids = [p.publish("%s/x" % t, b"%d" % i, qos=1, wait=False) for i in range(total)]
	for pid in pids:
		p.expect(PUBACK, timeout=10, pid=pid)  # all acknowledged: in JetStream
	a.kill()
	got = set()

	def all_in():
		got.update(x.payload for x in surviving.drain(0.2) if x.type == PUBLISH)
		return got >= {b"%d" % i for i in range(total)}
	# Those JetStream gave the frozen node come again after the ack wait (10 s).
	wait_until(all_in, 30, what="every acknowledged message at the surviving member")


def test_a_group_takes_jetstream_only_once_its_consumers_are_there(nats, broker, clients):
	"""Until its JetStream consumers are bound a group's QoS 1 messages take core NATS (at most
	once, docs/cluster.md), not the stream, where no consumer could take them yet (a review
	found 10 of 10 lost that way when the group was new); once bound they go through the
	stream, and reach the member."""
	n = nats()
	a = node(broker, n, "ra", "log_type all")
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	for i in range(5):
		t = uid("r")
		m = clients.raw(a.port, 5)
		m.connect(uid("m"))
		before = n.stream_state("VS_MSGS", "last_seq")
		m.subscribe([("$share/g/%s/x" % t, 1)])
		a.wait_log(r"cluster: \$share/g/%s/x reads its JetStream consumers" % t, timeout=10)
		p.publish("%s/x" % t, b"%d" % i, qos=1)
		got = collect([m], 1, 10)
		assert [x[1] for x in got] == [b"%d" % i], "message %d" % i
		assert n.stream_state("VS_MSGS", "last_seq") == before + 1  # through the stream


def test_two_groups_on_one_subject_keep_their_own_interest(nats, broker, clients):
	"""Each group's subject has its own key in vs_interest: when one of two groups on a subject
	goes, the other's QoS 1 messages still go through JetStream."""
	n = nats()
	a = node(broker, n, "ka", "log_type all")
	b = node(broker, n, "kb")
	t = uid("k")
	m1 = members_on(clients, (b.port,), "$share/g1/%s/x" % t)[0]
	m2 = clients.raw(b.port, 5)
	m2.connect(uid("m2"))
	m2.subscribe([("$share/g2/%s/x" % t, 1)])
	line = "cluster: subject vs.m.%s.x of another node" % t
	wait_until(lambda: a.log_text().count(line) >= 2, 10, what="both groups' keys at ka")
	m1.unsubscribe("$share/g1/%s/x" % t)
	gone = "cluster: no more subject"
	wait_until(lambda: gone in a.log_text(), 10, what="g1's key gone at ka")
	before = n.stream_state("VS_MSGS", "last_seq")
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	p.publish("%s/x" % t, b"durable", qos=1)
	assert [x[1] for x in collect([m2], 1, 10)] == [b"durable"]
	assert n.stream_state("VS_MSGS", "last_seq") == before + 1  # through JetStream


def test_a_members_suback_waits_for_its_groups_consumers(nats, broker, clients):
	"""The SUBACK of a new group's first member waits until the group reads its JetStream
	consumers and the other nodes know its subject (cluster_share.h, cluster_interest.h): a QoS 1
	message published on another node right after it goes through JetStream, to the member."""
	n = nats()
	a = node(broker, n, "sa3")
	b = node(broker, n, "sb3", "log_type all")
	b.wait_log(r"cluster: node sa3 is there", timeout=10)
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	for i in range(3):
		t = uid("gw")
		m = clients.raw(b.port, 5)
		m.connect(uid("m"))
		m.subscribe([("$share/g%d/%s" % (i, t), 1)])
		before = n.stream_state("VS_MSGS")
		p.publish(t, b"right after %d" % i, qos=1)
		assert n.stream_state("VS_MSGS") == before + 1, "went on core NATS"
		got = collect([m], 1, 10)
		assert [x[1] for x in got] == [b"right after %d" % i]
