"""Persistent sessions that move between Viesti nodes (issue 19; docs/cluster.md "Sessions
roam"; src/broker/cluster_session.h).

A session that goes offline on one node, receives messages published on a second, and resumes
on a third: session present, its subscriptions, every queued QoS 1/2 message once, in order. A
take-over across nodes of a connected client: the old connection is closed (0x8E), the session
with its unacknowledged messages follows the client. A clean start elsewhere ends the session
left behind, connected or not. A slow owner (SIGSTOP) is asked again while its lease is current.
A killed owner's session is rebuilt from its key and the stream (session present 1, the messages
published for it meanwhile). Real clients (mosquitto_sub, mosquitto_pub) across three nodes.
"""

import collections
import re
import signal
import threading
import time

import pytest

from conftest import free_port, wait_until
from helpers import MosquittoSub, mosquitto_pub, uid
from http_util import http_lines, scrape, value, wait_listening
from mqtt_raw import (CONNACK, DISCONNECT, P, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
	Closed, RawClient)
from test_cluster import data_dir, knows, nats, node, wait_subjects  # noqa: F401 (fixtures)

pytestmark = pytest.mark.viesti_only


def all_arrive(c, n, what):
	"""Waits until client c has received the payloads b"0" .. b"n-1", each at least once."""
	got = set()

	def all_back():
		got.update(m.payload for m in c.drain(timeout=0.2) if m.type == PUBLISH)
		return {b"%d" % i for i in range(n)} <= got
	wait_until(all_back, 15, what=what)


def queued(port):
	samples, _ = scrape(port)
	return value(samples, "viesti_queued_messages")


def test_a_session_resumes_on_a_third_node_with_what_was_queued_on_the_first(nats, broker, clients):
	n = nats()
	port = free_port()
	a = node(broker, n, "ra", *http_lines(port))
	wait_listening(port)
	b = node(broker, n, "rb", "log_type all")
	c = node(broker, n, "rc")
	t = uid("r")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	assert not s.connect(cid, clean=False).session_present
	s.subscribe([(t + "/#", 1), (t + "/two", 2)])
	wait_subjects(n, "ra", lambda x: "vs.m.%s.>" % t in x, "ra's subscription")
	knows(b, "vs.m.%s.>" % t)
	s.disconnect()
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	for i in range(20):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	p.publish("%s/two" % t, b"exactly once", qos=2)
	wait_until(lambda: queued(port) == 21, 10, what="21 messages queued on ra")
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present  # [MQTT-3.2.2-3], from another node
	got = r.publishes(21, timeout=10)
	assert [m.payload for m in got[:20]] == [b"%d" % i for i in range(20)]
	assert (got[20].topic, got[20].payload, got[20].qos) == (t + "/two", b"exactly once", 2)
	r.no_publish(0.5)
	c.wait_log(r"cluster: session of client %s taken from node ra" % cid, timeout=5)
	a.wait_log(r"cluster: session of client %s handed over to node rc" % cid, timeout=5)
	assert queued(port) == 0  # nothing left behind
	samples, _ = scrape(port)
	assert value(samples, "viesti_cluster_sessions_given_total") == 1
	assert value(samples, "viesti_cluster_sessions_taken_total") == 0
	# Its subscriptions came along: a message published on the first node reaches it on the
	# third, and the first keeps no copy (no subscriber there any more).
	wait_subjects(n, "rc", lambda x: "vs.m.%s.>" % t in x, "rc's subscription")
	wait_subjects(n, "ra", lambda x: "vs.m.%s.>" % t not in x, "ra's subscription gone")
	q = clients.raw(a.port, 4)
	q.connect(uid("q"))
	q.publish("%s/x" % t, b"live", qos=1)
	assert r.expect(PUBLISH, timeout=10).payload == b"live"


def test_a_take_over_across_nodes_brings_the_unacknowledged_messages(nats, broker, clients):
	"""The client is still connected on the first node, with QoS 1 messages sent and not
	acknowledged: a CONNECT on the second closes it (MQTT 5: 0x8E), and the messages are sent
	again there with DUP set [MQTT-4.4.0-1]; a QoS 2 whose PUBREC the old connection sent is
	completed with a PUBREL on the new one."""
	n = nats()
	a = node(broker, n, "ta")
	b = node(broker, n, "tb")
	t = uid("t")
	cid = uid("dev")
	old = clients.raw(a.port, 5)
	old.connect(cid, clean=False, props={P.SESSION_EXPIRY: 300})
	old.subscribe([(t + "/#", 2)])
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	for i in range(3):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	p.publish("%s/y" % t, b"two", qos=2)
	got = old.publishes(4, timeout=10, ack=False)  # received, never acknowledged
	assert [m.payload for m in got] == [b"0", b"1", b"2", b"two"]
	new = clients.raw(b.port, 5)
	assert new.connect(cid, clean=False, props={P.SESSION_EXPIRY: 300}).session_present
	closed = old.wait_closed(10)
	disc = [x for x in closed if x.type == DISCONNECT]
	assert disc and disc[0].rc == 0x8E, closed
	again = new.publishes(4, timeout=10)
	assert [m.payload for m in again] == [b"0", b"1", b"2", b"two"]
	assert all(m.dup for m in again)
	new.no_publish(0.5)


def test_a_session_made_at_start_up_is_found_on_the_next_node(nats, broker, clients):
	"""A persistent session that connects the moment its node listens, while the node is still
	binding the sessions bucket (the first node of the cluster creates it), waits for the
	bucket, so the node its client moves to next finds it: session present 1 [MQTT-3.2.2-3],
	its subscription with it. Deciding such a session alone left it without a key until the
	node's next write, and a client that moved within that window started anew."""
	n = nats()
	a = broker("cluster_url %s" % n.url, "cluster_node_id sa", start=False)
	t = uid("e")
	cid = uid("early")
	got = {}

	def early():
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline:
			try:
				c = RawClient(a.port, 4)
			except OSError:
				time.sleep(0.001)
				continue
			try:
				c.connect(cid, clean=False)
				c.subscribe([(t, 1)])
				got["connected"] = True
			except Exception as e:  # reported below, in the test's thread
				got["error"] = e
			finally:
				c.close()
			return

	th = threading.Thread(target=early)
	th.start()
	a.start()
	th.join(15)
	assert got.get("connected"), got
	a.wait_log(r"cluster: node sa sessions ready", timeout=10)
	b = node(broker, n, "sb")
	new = clients.raw(b.port, 4)
	assert new.connect(cid, clean=False).session_present
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"found", qos=1)
	assert new.expect(PUBLISH, timeout=10).payload == b"found"


def test_inflight_qos2_after_pubrec_completes_on_the_new_node(nats, broker, clients):
	"""A QoS 2 message the client acknowledged with PUBREC on the first node: on the second it
	gets the PUBREL, not the message again [MQTT-4.3.3-5]."""
	n = nats()
	a = node(broker, n, "qa")
	b = node(broker, n, "qb")
	t = uid("q")
	cid = uid("dev")
	old = clients.raw(a.port, 4)
	old.connect(cid, clean=False)
	old.subscribe([(t, 2)])
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	p.publish(t, b"once", qos=2)
	m = old.expect(PUBLISH, timeout=10)
	old.pubrec(m.pid)
	old.expect(PUBREL, timeout=10, pid=m.pid)  # the broker's PUBREL: state WAIT_PUBCOMP
	old.close()
	new = clients.raw(b.port, 4)
	assert new.connect(cid, clean=False).session_present
	rel = new.expect(PUBREL, timeout=10)
	assert rel.pid == m.pid
	new.no_publish(0.5)


def test_a_clean_start_elsewhere_ends_the_session_left_behind(nats, broker, clients):
	"""[MQTT-3.1.2-4] across nodes: the offline session on the first node ends when the client
	starts clean on the second; its delayed will goes then, as on one node."""
	n = nats()
	a = node(broker, n, "ca")
	b = node(broker, n, "cb")
	t = uid("c")
	w = clients.raw(b.port, 4)
	w.connect(uid("w"))
	w.subscribe([(t + "/will", 1)])
	wait_subjects(n, "cb", lambda x: "vs.m.%s.will" % t in x, "cb's subscription")
	cid = uid("dev")
	old = clients.raw(a.port, 5)
	old.connect(cid, clean=False, props={P.SESSION_EXPIRY: 300},
		will=dict(topic=t + "/will", payload=b"late", qos=1, props={P.WILL_DELAY: 300}))
	old.subscribe([(t + "/x", 1)])
	old.close()  # no DISCONNECT: the will waits for its delay in the session
	new = clients.raw(b.port, 5)
	assert not new.connect(cid, clean=True, props={P.SESSION_EXPIRY: 300}).session_present
	m = w.expect(PUBLISH, timeout=10)
	assert m.payload == b"late"
	a.wait_log(r"cluster: client %s started clean on another node" % cid, timeout=5)
	# And the next resume, elsewhere again, finds the clean session of cb, not ca's old one.
	new.disconnect()
	again = clients.raw(a.port, 5)
	assert again.connect(cid, clean=False, props={P.SESSION_EXPIRY: 300}).session_present
	a.wait_log(r"cluster: session of client %s taken from node cb" % cid, timeout=5)


def test_an_offline_session_of_a_killed_node_resumes_elsewhere_with_its_messages(nats, broker,
		clients):
	"""The node that had it is killed: another node rebuilds the session from its key in
	vs_sessions (its subscriptions, and where the stream stood when it went offline) and the
	stream VS_MSGS: what was published for it on other nodes, before the kill and while that
	node was dead, arrives, in order; then it is this node's."""
	n = nats()
	b = node(broker, n, "kb", "log_type all")
	c = node(broker, n, "kc")
	t = uid("k")
	# A message in the stream from before the node that will have the session started: not
	# the session's (its consumer starts at the stream's end, and so does its floor).
	w = clients.raw(c.port, 4)
	w.connect(uid("w"))
	w.subscribe([(t + "/#", 1)])
	knows(b, "vs.m.%s.>" % t)
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	p.publish("%s/x" % t, b"old", qos=1)
	assert w.expect(PUBLISH, timeout=10).payload == b"old"
	w.disconnect()
	a = node(broker, n, "ka")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/#", 1)])
	# kb knows it (a second time: kc's went with w), so what it publishes for it goes
	# through the stream.
	line = "cluster: subject vs.m.%s.> of another node" % t
	wait_until(lambda: b.log_text().count(line) >= 2, 10, what="kb knowing ka's subject")
	s.disconnect()
	for i in range(10):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	a.kill()
	for i in range(10, 20):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	c.wait_log(r"cluster: node ka, which had client %s's session, does not answer: rebuilt "
		r"here with 1 subscriptions" % cid, timeout=5)
	got = r.publishes(20, timeout=10)
	payloads = [m.payload for m in got]
	# At least once, in order: a message may come twice (the floor is conservative).
	assert sorted(set(payloads), key=int) == [b"%d" % i for i in range(20)], payloads
	assert [int(x) for x in payloads] == sorted(int(x) for x in payloads)
	# Its subscription is this node's now: a new message comes live.
	wait_subjects(n, "kc", lambda x: "vs.m.%s.>" % t in x, "kc's subscription")
	p.publish("%s/x" % t, b"live", qos=1)
	assert r.expect(PUBLISH, timeout=10).payload == b"live"
	r.disconnect()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present  # kept here now


def six_qos2(nats, broker, clients, na, nc, *more_c):
	"""Nodes na and nc (with directives more_c); a persistent subscriber s (client id cid) to topic t on na, and a
	publisher p on nc whose six QoS 2 messages s received (got): it completed the first four,
	acknowledged the fifth with PUBREC (the PUBREL came, its PUBCOMP did not go) and not the
	sixth. Another session on na, connected, acknowledges nothing: it holds na's stream floor
	back, so a rebuild of s reads the stream from before every one of them."""
	n = nats()
	a = node(broker, n, na, "log_type all")
	c = node(broker, n, nc, "log_type all", *more_c)
	t = uid("x")
	h = clients.raw(a.port, 4)
	h.connect(uid("h"), clean=False)
	h.subscribe([(t, 1)])
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 2)])
	knows(c, "vs.m.%s" % t)
	p = clients.raw(c.port, 4)
	p.connect(uid("p"))
	for i in range(6):
		p.publish(t, b"%d" % i, qos=2)
	got = [s.expect(PUBLISH, timeout=10) for _ in range(6)]
	assert [m.payload for m in got] == [b"%d" % i for i in range(6)]
	assert len(set(m.pid for m in got)) == 6
	assert len(h.publishes(6, timeout=10, ack=False)) == 6
	for m in got[:4]:  # completed
		s.pubrec(m.pid)
		s.expect(PUBREL, timeout=10, pid=m.pid)
		s.pubcomp(m.pid)
	s.pubrec(got[4].pid)
	s.expect(PUBREL, timeout=10, pid=got[4].pid)
	return n, a, c, t, cid, s, p, got


def rest_once(r, again, p, t):
	"""The rebuilt session's client r completes the message that came again: no other of the
	six comes again, and one published now (by p, to t) comes live."""
	r.pubrec(again.pid)
	r.expect(PUBREL, timeout=10, pid=again.pid)
	r.pubcomp(again.pid)
	r.no_publish(1.0)  # not 0..4 again
	p.publish(t, b"live", qos=2)
	assert r.expect(PUBLISH, timeout=10).payload == b"live"


def test_an_offline_session_of_a_killed_node_resumes_elsewhere_exactly_once(nats, broker,
		clients):
	"""The key of a session that went offline holds its whole state, as a hand-over carries
	it, and how far its node had routed the stream to it. When that node is killed, the
	session rebuilt on another node gives each message once, though another session held the
	dead node's floor back: none its client completed comes again, one it acknowledged with
	PUBREC gets its PUBREL, one it did not acknowledge comes again with DUP and the same
	packet identifier [MQTT-4.3.3-5] [MQTT-4.4.0-1], and a QoS 2 message the client had
	published there and resends (its PUBREC lost) is not routed twice [MQTT-4.3.3-9]."""
	n, a, c, t, cid, s, p, got = six_qos2(nats, broker, clients, "xa", "xc")
	t2, qid = uid("y"), uid("pub")
	w = clients.raw(c.port, 4)
	w.connect(uid("w"))
	w.subscribe([(t2, 2)])
	knows(a, "vs.m.%s" % t2)
	s.ping()
	s.close()  # got[5]: received, not acknowledged
	a.wait_log(r"cluster: client %s's key in bucket vs_sessions holds its whole state" % cid,
		timeout=10)
	# A publisher's QoS 2 exchange, its PUBREC lost.
	q = clients.raw(a.port, 4)
	q.connect(qid, clean=False)
	q.send(q.publish_packet(t2, b"once", qos=2, pid=7))
	q.expect(PUBREC, timeout=10, pid=7)
	assert w.expect(PUBLISH, timeout=10).payload == b"once"
	q.close()
	a.wait_log(r"cluster: client %s's key in bucket vs_sessions holds its whole state" % qid,
		timeout=10)
	a.kill()

	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	c.wait_log(r"node xa, which had client %s's session, does not answer: rebuilt" % cid,
		timeout=10)
	rel = r.expect(PUBREL, timeout=10)
	assert rel.pid == got[4].pid
	r.pubcomp(rel.pid)
	again = r.expect(PUBLISH, timeout=10)
	assert (again.payload, again.pid, again.dup) == (b"5", got[5].pid, True)
	rest_once(r, again, p, t)

	q = clients.raw(c.port, 4)
	assert q.connect(qid, clean=False).session_present
	q.send(q.publish_packet(t2, b"once", qos=2, pid=7, dup=True))
	q.expect(PUBREC, timeout=10, pid=7)
	q.pubrel(7)
	q.expect(PUBCOMP, timeout=10, pid=7)
	w.no_publish(1.0)  # not routed twice


def test_a_connected_session_of_a_killed_node_takes_qos2_once_elsewhere(nats, broker, clients):
	"""A subscriber connected to a node that is killed resumes its session on another node,
	rebuilt from the stream (read from below what the node held, so from before messages its
	client had completed). Each QoS 2 message comes once: a PUBREC the client gave is in
	JetStream's journal before its PUBREL goes, so the rebuild sends the PUBREL again, not the
	message; one the client received without acknowledging comes again with the packet id it
	had (the id follows from the stream sequence), which the client holds until its PUBREL and
	does not deliver twice [MQTT-4.3.3-5] [MQTT-4.3.3-10]."""
	n, a, c, t, cid, s, p, got = six_qos2(nats, broker, clients, "ka", "kc")
	s.ping()  # got[5]: received, not acknowledged; still connected when its node dies
	r, rels, again = rebuilt_elsewhere(clients, a, "ka", s, c, cid, 5)
	assert rels == set(m.pid for m in got[:5])
	assert (again.payload, again.pid) == (b"5", got[5].pid)
	rest_once(r, again, p, t)


def rebuilt_elsewhere(clients, a, name, s, c, cid, n_rels):
	"""Kills node a (named name) while its client s (client id cid) is connected; the client resumes on node
	c. Returns its new connection, the packet ids of the n_rels PUBRELs it got (each answered
	with PUBCOMP), and the one PUBLISH that came with them."""
	a.kill()
	s.close()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	c.wait_log(r"node %s, which had client %s's session, does not answer: rebuilt" % (
		name, cid), timeout=10)
	rels, again = set(), None
	while len(rels) < n_rels or again is None:
		x = r.recv(timeout=10)
		if x.type == PUBREL:
			rels.add(x.pid)
			r.pubcomp(x.pid)
		elif x.type == PUBLISH:
			assert again is None, x
			again = x
	return r, rels, again


def test_a_rebuild_cut_short_still_releases_what_its_client_acknowledged(nats, broker,
		clients):
	"""The node rebuilding a session queues at most max_queued_messages (1 here): its replay
	of the stream stops at the first message it queues. A later message that the client had
	acknowledged with PUBREC on the dead node still gets its PUBREL, from the journal: its
	client holds that packet id until then, and would take a later message sent with it for a
	resend of the first, and drop it [MQTT-4.3.3-10]."""
	n, a, c, t, cid, s, p, got = six_qos2(nats, broker, clients, "ca", "cc",
		"max_queued_messages 1")
	p.publish(t, b"6", qos=2)
	late = s.expect(PUBLISH, timeout=10)
	assert late.payload == b"6"
	s.pubrec(late.pid)  # after got[5], which it leaves unacknowledged
	s.expect(PUBREL, timeout=10, pid=late.pid)
	r, rels, again = rebuilt_elsewhere(clients, a, "ca", s, c, cid, 6)
	assert rels == set(m.pid for m in got[:5]) | {late.pid}
	assert (again.payload, again.pid) == (b"5", got[5].pid)


def restored_setup(nats, broker, clients, data_dir, *more):
	"""Node ra with persistence (and the lines more) and node rc; a persistent subscriber s
	(client id cid) to topic t on ra, and a publisher p on rc whose QoS 1 messages for t go
	through the stream."""
	n = nats()
	a = node(broker, n, "ra", "persistence true", "persistence_location %s/" % data_dir,
		"log_type all", *more)
	c = node(broker, n, "rc", "log_type all")
	t = uid("r")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 1)])
	knows(c, "vs.m.%s" % t)
	p = clients.raw(c.port, 4)
	p.connect(uid("p"))
	return n, a, c, t, cid, s, p


@pytest.mark.parametrize("at_kill", ["connected", "offline"])
def test_a_restored_session_keeps_what_it_holds_when_its_node_dies_again(nats, broker, clients,
		data_dir, at_kill):
	"""A node with persistence is killed while a persistent subscriber has messages it has not
	acknowledged (connected, or gone offline); it restarts and restores the session, offline.
	Killed again, the session is rebuilt on another node with every message it held and those
	that reached it meanwhile: the key says where to read the stream from below what the
	session holds (written at start-up, or kept from when it went offline), not the node's
	floor, which offline sessions do not hold back."""
	n, a, c, t, cid, s, p = restored_setup(nats, broker, clients, data_dir)
	for i in range(5):
		p.publish(t, b"%d" % i, qos=1)
	assert len(s.publishes(5, timeout=10, ack=False)) == 5  # held, not acknowledged
	# ra acknowledges them to JetStream once taken. Killed before those acknowledgements are
	# out, it gets the five again only after JetStream's 30 s ack wait, and until then its
	# floor rightly stays below them (the wait below would time out).
	wait_until(lambda: n.acked("vs_ra") >= n.stream_state("VS_MSGS", "last_seq"), 10,
		what="ra's acknowledgements to JetStream")
	if at_kill == "offline":
		s.close()
		a.wait_log(r"client %s's key in bucket vs_sessions holds its whole state" % cid,
			timeout=10)
	a.kill()
	s.close()
	a.start()
	ready = "cluster: node ra JetStream ready"
	wait_until(lambda: a.log_text().count(ready) >= 2, 10, what="ra ready again")
	for i in range(5, 10):
		p.publish(t, b"%d" % i, qos=1)
	# ra's floor for its connected sessions passes some of what the offline session holds
	# (before the kill it held the first message of the stream, sequence 1, and the floor
	# stayed 1).
	a.wait_log(r"this node's stream floor for its connected sessions is ([2-9]|[1-9]\d+)$",
		timeout=10)
	# The messages published after the restart have reached the session there.
	wait_until(lambda: n.delivered("vs_ra") >= 10, 10, what="ra's consumer past the stream")
	a.kill()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	got = {m.payload for m in r.publishes(10, timeout=10)}
	assert got == {b"%d" % i for i in range(10)}


def test_a_restored_session_that_held_nothing_keeps_what_reaches_it_when_its_node_dies_again(
		nats, broker, clients, data_dir):
	"""As above, but the session had acknowledged everything when its node was killed, connected:
	it holds no message of the stream when restored. What reaches it after the restart is
	still read again from the stream when the node dies a second time (its key must not leave
	the start to the node's floor for its connected sessions)."""
	n, a, c, t, cid, s, p = restored_setup(nats, broker, clients, data_dir)
	p.publish(t, b"old", qos=1)
	assert [m.payload for m in s.publishes(1, timeout=10)] == [b"old"]  # acknowledged
	# Another connected session on ra that acknowledges keeps ra's floor moving.
	k = clients.raw(a.port, 4)
	k.connect(uid("k"))
	k.subscribe([(t, 1)])
	wait_until(lambda: n.acked("vs_ra") >= n.stream_state("VS_MSGS", "last_seq"), 10,
		what="ra's acknowledgement to JetStream")
	a.kill()
	s.close()
	k.close()
	a.start()
	ready = "cluster: node ra JetStream ready"
	wait_until(lambda: a.log_text().count(ready) >= 2, 10, what="ra ready again")
	k = clients.raw(a.port, 4)
	k.connect(uid("k"))
	k.subscribe([(t, 1)])
	knows(c, "vs.m.%s" % t)
	for i in range(5):
		p.publish(t, b"%d" % i, qos=1)
	assert len(k.publishes(5, timeout=10)) == 5
	a.wait_log(r"this node's stream floor for its connected sessions is ([3-9]|[1-9]\d+)$",
		timeout=10)
	a.kill()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	got = {m.payload for m in r.publishes(5, timeout=10)}
	assert got == {b"%d" % i for i in range(5)}


def client_keys(n):
	"""The client ids' keys in vs_sessions (not the nodes' floors, "=n...")."""
	return [k for k in n.keys("vs_sessions") if not k.startswith("=n")]


@pytest.mark.parametrize("end", ["expiry", "clean start", "expiry 0 on DISCONNECT"])
def test_a_session_that_ended_leaves_no_key_to_rebuild_it(nats, broker, clients, end):
	"""A persistent session ends on its node: its expiry passes offline [MQTT-3.1.2-23], its
	client starts clean there with no expiry [MQTT-3.1.2-4], or sets expiry 0 on DISCONNECT.
	Its key in vs_sessions goes with it, so the bucket does not keep every client id ever
	seen, and when that node is killed, the client resuming on another node finds no session
	(session present 0 [MQTT-3.2.2-2]) instead of one rebuilt from the key. The journal of
	the PUBRECs its client gave (stream VS_RECS) goes too."""
	n = nats()
	a = node(broker, n, "ea")
	c = node(broker, n, "ec")
	cid = uid("dev")
	s = clients.raw(a.port, 5)
	s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 1 if end == "expiry" else 600})
	t = uid("e")
	s.subscribe([(t + "/#", 2)])
	wait_until(lambda: len(client_keys(n)) == 1, 10, what="the session's key")
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	p.publish(t + "/x", b"m", qos=2)  # through the stream: a persistent session takes it
	m = s.expect(PUBLISH, timeout=10)
	s.pubrec(m.pid)
	s.expect(PUBREL, timeout=10, pid=m.pid)
	s.pubcomp(m.pid)
	assert n.stream_state("VS_RECS") == 1
	if end == "expiry 0 on DISCONNECT":
		s.disconnect(props={P.SESSION_EXPIRY: 0})
	else:
		s.disconnect()
	if end == "clean start":
		s = clients.raw(a.port, 5)
		assert s.connect(cid, clean=True).session_present == 0
		s.disconnect()
	wait_until(lambda: not client_keys(n), 10, what="the session's key removed")
	wait_until(lambda: n.stream_state("VS_RECS") == 0, 10, what="its PUBRECs removed")
	a.kill()
	r = clients.raw(c.port, 5)
	assert not r.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
	assert len(client_keys(n)) == 1  # ec's now


@pytest.mark.serial
def test_kill_9_under_qos1_load_loses_nothing_acknowledged(nats, broker, clients):
	"""issue 19: a node is killed while QoS 1 messages flow through it. Every message it
	acknowledged reaches a subscriber on another node; its client's will is published by a
	survivor; its connected client's session resumes on another node, with the messages
	published for it elsewhere while it was away."""
	n = nats()
	lease = "cluster_lease 2"
	a = node(broker, n, "la", lease, "log_type all")
	b = node(broker, n, "lb", lease, "log_type all")
	c = node(broker, n, "lc", lease)
	t = uid("l")
	w = clients.raw(c.port, 4)  # the watcher
	w.connect(uid("w"))
	w.subscribe([(t + "/#", 1)])
	cid = uid("dev")
	s = clients.raw(a.port, 4)  # a device on the node to kill, with a will
	s.connect(cid, clean=False, will=dict(topic=t + "/will", payload=b"gone", qos=1))
	s.subscribe([(t + "/b/#", 1)])
	knows(a, "vs.m.%s.>" % t)
	knows(b, "vs.m.%s.b.>" % t)
	wait_until(lambda: n.stream_state("KV_vs_wills", "last_seq") >= 1, 10, what="the will")
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	q = clients.raw(b.port, 4)
	q.connect(uid("q"))
	pids = [p.publish("%s/a" % t, b"a%d" % i, qos=1, wait=False) for i in range(200)]
	acked = []
	for i, pid in enumerate(pids[:100]):
		p.expect(PUBACK, timeout=10, pid=pid)
		acked.append(b"a%d" % i)
	a.kill()  # with up to 100 more in flight
	for i in range(30):
		q.publish("%s/b/x" % t, b"b%d" % i, qos=1)
	want = set(acked) | {b"b%d" % i for i in range(30)} | {b"gone"}
	seen = set()

	def all_seen():
		seen.update(m.payload for m in w.drain(timeout=0.2) if m.type == PUBLISH)
		return want <= seen
	wait_until(all_seen, 20, what="every acknowledged message and the will at the watcher")
	r = clients.raw(b.port, 4)
	assert r.connect(cid, clean=False).session_present
	got = set()

	def all_b():
		got.update(m.payload for m in r.drain(timeout=0.2) if m.type == PUBLISH)
		return {b"b%d" % i for i in range(30)} <= got
	wait_until(all_b, 10, what="what was published for the device while its node was dead")


class Qos2Receiver:
	"""A subscriber that keeps its QoS 2 state across connections as MQTT asks of a client
	[MQTT-4.3.3-10]: it delivers a PUBLISH whose packet id it does not hold, holds the id
	until the PUBREL, and counts each payload it delivered."""

	def __init__(self):
		self.held = set()
		self.delivered = collections.Counter()
		self.conn = None

	def serve(self, timeout):
		"""Handles what arrives within timeout; returns False once the connection is gone."""
		try:
			p = self.conn.recv(timeout=timeout)
		except TimeoutError:
			return True
		except (Closed, OSError):
			return False
		if p.type == PUBLISH and p.qos == 2:
			if p.pid not in self.held:
				self.held.add(p.pid)
				self.delivered[p.payload] += 1
			self.conn.pubrec(p.pid)
		elif p.type == PUBREL:
			self.held.discard(p.pid)
			self.conn.pubcomp(p.pid)
		return True


@pytest.mark.serial
def test_a_subscriber_whose_node_is_killed_under_qos2_load_gets_each_message_once(nats, broker,
		clients):
	"""issue 19: QoS 2 messages flow from a publisher on one node to a persistent subscriber
	connected to another, which is killed with SIGKILL midway, exchanges of every stage in
	flight. The subscriber resumes on the publisher's node and, counting what it delivers as a
	client that keeps its QoS 2 state does, gets every message exactly once [MQTT-4.3.3]."""
	n = nats()
	a = node(broker, n, "qa", "log_type all")
	c = node(broker, n, "qc", "log_type all")
	t = uid("q2")
	cid = uid("dev")
	rx = Qos2Receiver()
	rx.conn = clients.raw(a.port, 4)
	rx.conn.connect(cid, clean=False)
	rx.conn.subscribe([(t, 2)])
	knows(c, "vs.m.%s" % t)
	total = 600
	done = threading.Event()
	errors = []

	def publish():
		try:
			p = clients.raw(c.port, 4)
			p.connect(uid("p"))
			for i in range(total):
				assert p.publish(t, b"%d" % i, qos=2).type == PUBCOMP
		except Exception as e:  # reported by the test's thread
			errors.append(e)
		done.set()
	threading.Thread(target=publish, daemon=True).start()
	wait_until(lambda: not rx.serve(0.05) or len(rx.delivered) >= total // 3, 20,
		what="a third of the messages before the kill")
	a.kill()
	rx.conn.close()
	rx.conn = clients.raw(c.port, 4)
	assert rx.conn.connect(cid, clean=False).session_present
	want = {b"%d" % i for i in range(total)}
	wait_until(lambda: rx.serve(0.05) and set(rx.delivered) >= want and done.is_set(), 60,
		what="every message at the subscriber")
	assert not errors, errors
	end = time.monotonic() + 1.0  # what else comes within a second: nothing twice
	while time.monotonic() < end and rx.serve(0.1):
		pass
	twice = {m: k for m, k in rx.delivered.items() if k > 1}
	assert not twice, "delivered more than once: %r" % twice
	assert set(rx.delivered) == want


def test_the_session_moves_with_persistence_on_both_sides(nats, broker, clients, data_dir):
	"""The node that takes a session stores it: killed right after, it has it when it comes
	back (subscriptions and queued messages)."""
	n = nats()
	a = node(broker, n, "pa", "persistence true", "persistence_location %s/a/" % data_dir)
	b = node(broker, n, "pb", "persistence true", "persistence_location %s/b/" % data_dir)
	t = uid("p")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 1)])
	p = clients.raw(a.port, 4)
	p.connect(uid("p"))
	for i in range(5):
		p.publish(t, b"%d" % i, qos=1)
	got = s.publishes(5, timeout=10, ack=False)
	assert len(got) == 5
	s.close()
	r = clients.raw(b.port, 4)
	assert r.connect(cid, clean=False).session_present
	assert len(r.publishes(5, timeout=10, ack=False)) == 5
	r.close()
	b.kill()
	b.start()
	b.wait_log(r"cluster: node pb JetStream ready", timeout=10)
	r = clients.raw(b.port, 4)
	assert r.connect(cid, clean=False).session_present
	again = r.publishes(5, timeout=10)
	assert [m.payload for m in again] == [b"%d" % i for i in range(5)]
	# The first node no longer has it: a restart there does not bring it back.
	a.stop()
	a.start()
	a.wait_log(r"cluster: node pa JetStream ready", timeout=10)
	replays = re.findall(r"records replayed in \d+ ms: (\d+) sessions", a.log_text())
	assert replays[-1] == "0", replays


def test_mosquitto_clients_see_one_broker(nats, broker, clients):
	"""Real clients: mosquitto_sub leaves a persistent session on one node (-c, -E: exit once
	subscribed), mosquitto_pub publishes on a second, and mosquitto_sub on a third gets what
	was queued."""
	n = nats()
	a = node(broker, n, "ma")
	b = node(broker, n, "mb", "log_type all")
	c = node(broker, n, "mc")
	t = uid("m")
	cid = uid("sub")
	MosquittoSub(a.port, "-i", cid, "-c", "-q", "1", "-t", t + "/#", "-E").output(10)
	knows(b, "vs.m.%s.>" % t)
	for i in range(3):
		mosquitto_pub(b.port, "-q", "1", "-t", t + "/x", "-m", "m%d" % i)
	out, err, rc = MosquittoSub(c.port, "-i", cid, "-c", "-q", "1", "-t", t + "/#", "-C", "3",
		"-W", "10").output(15)
	assert (out.split(), rc) == (["m0", "m1", "m2"], 0), err


@pytest.mark.parametrize("version", [4, 5])
def test_a_clean_start_elsewhere_ends_a_connected_session(nats, broker, clients, version):
	"""[MQTT-3.1.2-4] (3.1.1: [MQTT-3.1.2-6]) while the old connection is still open: its
	session ends with it, and a resume on its node afterwards finds none."""
	n = nats()
	a = node(broker, n, "xa")
	b = node(broker, n, "xb")
	cid = uid("dev")
	props = {P.SESSION_EXPIRY: 300} if version == 5 else None
	old = clients.raw(a.port, version)
	old.connect(cid, clean=False, props=props)
	old.subscribe([(uid("x") + "/x", 1)])
	new = clients.raw(b.port, version)
	assert not new.connect(cid, clean=True).session_present
	a.wait_log(r"cluster: client %s connected on node xb: closing it here" % cid, timeout=5)
	old.wait_closed(5)
	new.disconnect()
	again = clients.raw(a.port, version)
	assert not again.connect(cid, clean=False, props=props).session_present


def test_a_slow_owner_hands_the_session_over_when_it_is_back(nats, broker, clients):
	"""The node that has the session stops answering for a while (SIGSTOP: a pause, swap):
	its lease is current, so the new node keeps asking, and gets the session, with what was
	queued there, once it is back."""
	n = nats()
	a = node(broker, n, "sa")
	b = node(broker, n, "sb")
	t = uid("s")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 1)])
	s.disconnect()
	p = clients.raw(a.port, 4)  # on the same node: these are only in its queue
	p.connect(uid("p"))
	for i in range(5):
		p.publish(t, b"%d" % i, qos=1)
	p.disconnect()
	a.proc.send_signal(signal.SIGSTOP)
	r = clients.raw(b.port, 4)
	r.send(r.connect_packet(cid, clean=False))
	try:
		b.wait_log(r"cluster: node sa does not answer for client %s's session" % cid, timeout=10)
	finally:
		a.proc.send_signal(signal.SIGCONT)
	ack = r.expect(CONNACK, timeout=15)
	assert ack.session_present
	got = r.publishes(5, timeout=10)
	assert [m.payload for m in got] == [b"%d" % i for i in range(5)]
	a.wait_log(r"cluster: session of client %s handed over to node sb" % cid, timeout=5)


def test_a_restored_session_keeps_what_reaches_it_when_nats_was_away_at_the_restart(nats, broker,
		clients, data_dir):
	"""A node with persistence is killed with a persistent subscriber connected that holds
	nothing; NATS goes too, and the node restarts while it is away: its sessions' bucket may be
	bound before its consumer. The restored session's key is written once the node knows where
	the stream stands (vs_cjs_taken()), not with no floor: what reaches it after the restart is
	read again when the node dies a second time (before, none of it: the rebuild read the
	stream from the node's floor for its connected sessions)."""
	n, a, c, t, cid, s, p = restored_setup(nats, broker, clients, data_dir,
		"cluster_ack_wait 5")
	p.publish(t, b"old", qos=1)
	assert [m.payload for m in s.publishes(1, timeout=10)] == [b"old"]  # acknowledged
	a.kill()
	s.close()
	port = n.port
	n.kill()
	a.start()  # NATS away
	n = nats(port=port)  # back, with its store
	ready = "cluster: node ra JetStream ready"
	wait_until(lambda: a.log_text().count(ready) >= 2, 20, what="ra ready again")
	c.wait_log(r"cluster: node rc JetStream ready", timeout=20)
	# A connected session on ra that acknowledges moves ra's floor past what follows.
	k = clients.raw(a.port, 4)
	k.connect(uid("k"))
	k.subscribe([(t, 1)])
	p = clients.raw(c.port, 4)
	p.connect(uid("p"))
	for i in range(5):
		p.publish(t, b"%d" % i, qos=1)
	assert len(k.publishes(5, timeout=10)) == 5
	# (5 s at most: ra's ack wait, cluster_ack_wait, for what was in flight at the kill)
	a.wait_log(r"this node's stream floor for its connected sessions is ([3-9]|[1-9]\d+)$",
		timeout=20)
	a.kill()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	got = {m.payload for m in r.publishes(5, timeout=10)} | {m.payload for m in r.drain(0.5) if m.type == PUBLISH}
	assert got >= {b"%d" % i for i in range(5)}, got  # "old" again: at least once


def waits_on(b, cid):
	"""The session thread of node b that client cid's CONNECT waits for (b logs with
	log_type all)."""
	return b.wait_log(r"cluster: client %s's CONNECT waits for session thread (\d)" % cid,
		timeout=10).group(1)


def test_a_connect_that_never_attaches_leaves_no_key_of_a_session_that_ended(nats, broker, clients):
	"""A persistent session ends on its node (a clean start there) while that node's session
	thread for its client id is held up (another client id's CONNECT asks a stopped node): the
	note that removes its key waits. A CONNECT for the id (no clean start) comes meanwhile and
	its client hangs up before it is answered: no session is made. The key still goes: were it
	left, naming the node, a rebuild elsewhere after that node's death would give the client a
	session that ended (session present 1, [MQTT-3.2.2-2]), and the key would stay for ever."""
	n = nats()
	a = node(broker, n, "ka", "log_type all")
	b = node(broker, n, "kb", "log_type all")
	c = node(broker, n, "kc", "log_type all")
	t = uid("k")
	cid = uid("dev")
	x = clients.raw(a.port, 4)
	x.connect(cid, clean=False)
	shard = waits_on(a, cid)
	x.subscribe([(t, 1)])
	knows(c, "vs.m.%s" % t)
	x.disconnect()
	# Another client id on the same session thread (the same on every node), its session kb's.
	for _ in range(100):
		other = uid("dev")
		y = clients.raw(b.port, 4)
		y.connect(other, clean=False)
		y.disconnect()
		if waits_on(b, other) == shard:
			break
	else:
		raise AssertionError("no client id on session thread %s in 100" % shard)
	wait_until(lambda: {cid, other} <= set(client_keys(n)), 10, what="both keys")
	b.proc.send_signal(signal.SIGSTOP)
	try:
		y = clients.raw(a.port, 4)
		y.send(y.connect_packet(other, clean=False))  # ka's session thread asks kb: held up
		waits_on(a, other)
		x = clients.raw(a.port, 4)
		x.connect(cid, clean=True)  # the session ends: its key's note waits
		x.disconnect()
		x = clients.raw(a.port, 4)
		x.send(x.connect_packet(cid, clean=False))  # a CONNECT queued after that note
		wait_until(lambda: a.log_text().count("client %s's CONNECT waits" % cid) >= 2, 10,
			what="the second CONNECT of %s queued" % cid)
		x.close()  # gone before its CONNACK: no session
		# The note waited behind the stuck CONNECT (else this test tests nothing).
		assert "client %s's session ended here" % cid not in a.log_text()
	finally:
		b.proc.send_signal(signal.SIGCONT)
	assert y.expect(CONNACK, timeout=30).session_present
	wait_until(lambda: cid not in client_keys(n), 10, what="the ended session's key removed")
	a.kill()
	r = clients.raw(c.port, 4)
	assert not r.connect(cid, clean=False).session_present  # it ended


@pytest.mark.parametrize("conf", ["cluster_durable_all true", "cluster_durable_sessions true"])
def test_a_dead_node_loses_none_of_its_own_sessions_messages(nats, broker, clients, conf):
	"""A QoS 1 message that only the publishing node's own offline persistent session wants
	still goes through JetStream (cluster_durable_sessions, the default; or every message with
	cluster_durable_all), so when that node is killed the session, rebuilt on another node,
	gets it."""
	n = nats()
	a = node(broker, n, "da", conf)
	b = node(broker, n, "db")
	t = uid("d")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t + "/#", 1)])
	s.disconnect()
	p = clients.raw(a.port, 4)  # on the same node, nobody else subscribes
	p.connect(uid("p"))
	for i in range(10):
		p.publish("%s/x" % t, b"%d" % i, qos=1)
	wait_until(lambda: n.stream_state("VS_MSGS", "last_seq") >= 10, 10,
		what="the messages in the stream")
	a.kill()
	r = clients.raw(b.port, 4)
	assert r.connect(cid, clean=False).session_present
	got = r.publishes(10, timeout=10)
	assert sorted(set(m.payload for m in got), key=int) == [b"%d" % i for i in range(10)]


def test_a_session_that_moved_is_known_everywhere_before_its_connack(nats, broker, clients):
	"""The barrier (cluster_interest.h) for a session that came from another node: its CONNACK
	waits until every other node knows its subjects, so a QoS 1 message published right after
	the CONNACK on the node it left goes through JetStream (that node let go of the subjects;
	its own key, which lingers, does not count for itself)."""
	n = nats()
	a = node(broker, n, "ma")
	b = node(broker, n, "mb")
	c = node(broker, n, "mc", "log_type all")
	for other in ("ma", "mb"):
		c.wait_log(r"cluster: node %s is there" % other, timeout=10)
	p = clients.raw(a.port, 4)  # on the node the session leaves
	p.connect(uid("p"))
	for i in range(3):
		t = uid("mv")
		cid = uid("dev")
		s = clients.raw(a.port, 4)
		s.connect(cid, clean=False)
		s.subscribe([(t, 1)])
		s.disconnect()
		before = n.stream_state("VS_MSGS")
		r = clients.raw(c.port, 4)
		assert r.connect(cid, clean=False).session_present
		p.publish(t, b"right after %d" % i, qos=1)
		assert n.stream_state("VS_MSGS") == before + 1, "went on core NATS"
		assert r.expect(PUBLISH, timeout=10).payload == b"right after %d" % i
		r.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_a_persistent_subscriber_on_the_publishing_node_gets_each_message_once(nats, broker,
		clients, version):
	"""cluster_durable_sessions: the persistent session takes the stream's copy (in order, QoS 2
	exactly once), a clean one on the same node the direct one; the stream holds one copy of
	each. With cluster_durable_sessions false neither goes through JetStream."""
	n = nats()
	a = node(broker, n, "pa")
	node(broker, n, "pb")
	t = uid("ps")
	keep = clients.raw(a.port, version)
	keep.connect(uid("keep"), clean=False, props={P.SESSION_EXPIRY: 300} if version == 5 else None)
	keep.subscribe([(t + "/#", 2)])
	now = clients.raw(a.port, version)
	now.connect(uid("now"))
	now.subscribe([(t + "/#", 2)])
	p = clients.raw(a.port, version)
	p.connect(uid("p"))
	want = []
	for i in range(30):
		qos = 1 + i % 2
		p.publish("%s/%d" % (t, qos), b"%d" % i, qos=qos)
		want.append(("%s/%d" % (t, qos), b"%d" % i, qos))
	for c in (keep, now):
		got = [(m.topic, m.payload, m.qos) for m in c.publishes(30, timeout=10)]
		assert got == want
		c.no_publish(0.5)
	assert n.stream_state("VS_MSGS") == 30
	off = node(broker, n, "pc", "cluster_durable_sessions false")
	# Until it has read the other nodes' subjects it sends QoS 1/2 through JetStream to be safe
	# (cluster_interest.h: "true while unknown"): wait for that, or the stream holds 31.
	off.wait_log(r"subject\(s\) of other nodes read from bucket vs_interest", timeout=10)
	s = clients.raw(off.port, version)
	s.connect(uid("keep2"), clean=False, props={P.SESSION_EXPIRY: 300} if version == 5 else None)
	t2 = uid("ps2")  # no other node subscribes
	s.subscribe([(t2, 1)])
	q = clients.raw(off.port, version)
	q.connect(uid("q"))
	q.publish(t2, b"direct", qos=1)
	assert s.expect(PUBLISH, timeout=10).payload == b"direct"
	assert n.stream_state("VS_MSGS") == 30


def test_a_connected_session_of_a_killed_node_gets_what_it_held_elsewhere(nats, broker, clients):
	"""A persistent session connected to a node that is killed while it holds QoS 1 messages
	(sent to the client, not acknowledged): resumed on another node, it gets every one of them
	(at least once). The dead node wrote, every second, the stream sequence below which its
	sessions hold nothing (cluster_session.h); the session is rebuilt from there."""
	n = nats()
	lease = "cluster_lease 2"
	a = node(broker, n, "ka2", lease, "log_type all")
	b = node(broker, n, "kb2", lease, "log_type all")
	c = node(broker, n, "kc2", lease)
	t = uid("held")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 1)])
	knows(b, "vs.m.%s" % t)
	p = clients.raw(b.port, 4)
	p.connect(uid("p"))
	for i in range(50):
		p.publish(t, b"%d" % i, qos=1)  # each acknowledged
	assert len(s.publishes(50, timeout=10, ack=False)) == 50  # held by the session on ka2
	a.wait_log(r"cluster: this node's stream floor for its connected sessions is", timeout=10)
	a.kill()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	all_arrive(r, 50, "the 50 messages the session held on the dead node")


def test_a_persistent_subscriber_on_the_publishing_node_counts_and_survives_nats(nats, broker,
		clients):
	"""cluster_durable_sessions, the corners: a persistent session that takes the stream's copy
	is a subscriber for the PUBACK (5.0: not 0x10 No matching subscribers); a client's own
	message through a No Local subscription and an overlapping one comes to it once; with NATS
	gone, messages for this node's persistent sessions are acknowledged and delivered as on a
	single broker."""
	n = nats()
	a = node(broker, n, "ca")
	t = uid("cs")
	keep = clients.raw(a.port, 5)
	keep.connect(uid("keep"), clean=False, props={P.SESSION_EXPIRY: 300})
	keep.subscribe([(t + "/#", 1)])
	p = clients.raw(a.port, 5)
	p.connect(uid("p"))
	ack = p.publish(t + "/x", b"one", qos=1)
	assert ack.rc == 0  # a subscriber, though it takes the stream's copy
	assert keep.expect(PUBLISH, timeout=10).payload == b"one"
	assert n.stream_state("VS_MSGS") == 1
	# Its own message: No Local on t/#, plain on t/self: once, now.
	me = clients.raw(a.port, 5)
	me.connect(uid("me"), clean=False, props={P.SESSION_EXPIRY: 300})
	me.subscribe([(t + "/#", 1 | 0x04), (t + "/self", 1)])
	me.publish(t + "/self", b"mine", qos=1)
	got = me.publishes(1, timeout=10)
	assert got[0].payload == b"mine"
	me.no_publish(1.0)
	n.kill()
	a.wait_log(r"cluster: NATS connection lost", timeout=10)
	q = clients.raw(a.port, 5)
	q.connect(uid("q"))
	ack = q.publish(t + "/y", b"no nats", qos=1)
	assert ack.rc == 0
	assert [m.payload for m in keep.publishes(2, timeout=10)][-1] == b"no nats"
	nats(n.port)  # back: the node reconnects (and stops as usual at the end)
	wait_until(lambda: len(re.findall(r"node ca connected to NATS", a.log_text())) >= 2, 15,
		what="ca connected to NATS again")


def test_a_session_roaming_under_load_misses_nothing_and_takes_qos2_once(nats, broker, clients):
	"""The instant of a hand-over (cluster_session.c take()): three publishers, one on each
	node, send QoS 2 messages without pause while a persistent subscriber hops from node to
	node, half the time disconnecting first and half the time taken over. Every message
	acknowledged to its publisher arrives; none arrives twice except as a resend (DUP set, of a
	message sent and not completed before the hop) [MQTT-4.3.3], [MQTT-4.4.0-1]."""
	n = nats()
	nodes = [node(broker, n, name) for name in ("la", "lb", "lc")]
	t = uid("ld")
	cid = uid("dev")
	props = {P.SESSION_EXPIRY: 300}
	s = clients.raw(nodes[0].port, 5)
	s.connect(cid, clean=False, props=props)
	s.subscribe([(t + "/#", 2)])
	pubs = []
	for k, b in enumerate(nodes):
		p = clients.raw(b.port, 5)
		p.connect(uid("p%d" % k))
		pubs.append(p)
	stop = threading.Event()
	sent = {}
	errors = []

	def publish(k):
		i = 0
		try:
			while not stop.is_set():
				rc = pubs[k].publish("%s/%d" % (t, k), b"%d:%d" % (k, i), qos=2).rc
				assert rc == 0, "PUBCOMP %#x" % rc
				i += 1
		except Exception as e:  # reported below, not lost with the thread
			errors.append("publisher %d: %r" % (k, e))
		sent[k] = i

	threads = [threading.Thread(target=publish, args=(k,)) for k in range(3)]
	for th in threads:
		th.start()
	got = []

	where = {}  # payload -> (connection, DUP, packet id) of each copy

	def take(c, secs):
		for x in c.drain(secs):
			if x.type == PUBLISH:
				got.append(x)
				where.setdefault(x.payload, []).append((id(c), x.dup, x.pid))

	try:
		take(s, 0.5)
		for hop in range(6):
			if hop % 2:
				s.disconnect()
			new = clients.raw(nodes[(hop + 1) % 3].port, 5)
			assert new.connect(cid, clean=False, props=props).session_present
			if not hop % 2:
				take(s, 2)  # what the old connection had before it was closed
			s = new
			take(s, 0.7)
	finally:
		stop.set()
		for th in threads:
			th.join(30)
	assert not errors, errors
	want = {b"%d:%d" % (k, i) for k in range(3) for i in range(sent[k])}
	deadline = time.monotonic() + 30
	while want - {m.payload for m in got} and time.monotonic() < deadline:
		take(s, 0.5)
	missing = want - {m.payload for m in got}
	assert not missing, "%d of %d missing: %s" % (len(missing), len(want), sorted(missing)[:10])
	firsts = collections.Counter(m.payload for m in got if not m.dup)
	twice = {x for x, c in firsts.items() if c > 1}
	assert not twice, "QoS 2 delivered again as new: %s" % [(x, where[x]) for x in sorted(twice)[:10]]
	# A resend keeps the packet identifier of the copy sent before (which the client may never
	# have read: its connection was closed) [MQTT-4.3.3-1].
	bad = [x for x, copies in where.items() if any(
		dup and copies[0][2] != pid for _, dup, pid in copies[1:])]
	assert not bad, "DUP under another packet id: %s" % [(x, where[x]) for x in sorted(bad)[:10]]
	assert len(want) > 300, "too few messages to test the hand-overs: %d" % len(want)


def test_what_came_with_a_hand_over_survives_the_death_of_the_new_node(nats, broker, clients):
	"""Messages that a session brings from its old node keep their stream sequence (the MSG
	record carries it): on the new node they hold its stream floor as its own do, so when that
	node is killed with them sent and not acknowledged, a third node rebuilding the session
	reads them again from the stream."""
	n = nats()
	lease = "cluster_lease 2"
	port = free_port()
	a = node(broker, n, "ha3", lease, *http_lines(port))
	wait_listening(port)
	b = node(broker, n, "hb3", lease, "log_type all")
	c = node(broker, n, "hc3", lease)
	t = uid("hk")
	cid = uid("dev")
	s = clients.raw(a.port, 4)
	s.connect(cid, clean=False)
	s.subscribe([(t, 1)])
	s.disconnect()
	p = clients.raw(c.port, 4)
	p.connect(uid("p"))
	for i in range(30):
		p.publish(t, b"%d" % i, qos=1)
	wait_until(lambda: queued(port) == 30, 10, what="30 messages queued on ha3")
	# hb3 took the stream's 30 messages too (for nobody): its floor is past them.
	b.wait_log(r"stream floor for its connected sessions is 31$", timeout=10)
	mark = len(b.log_text())
	r = clients.raw(b.port, 4)
	assert r.connect(cid, clean=False).session_present
	assert len(r.publishes(30, timeout=10, ack=False)) == 30  # held on hb3, unacknowledged
	assert "taken from node ha3" in b.log_text()[mark:]
	wait_until(lambda: re.search(r"stream floor for its connected sessions is 1$",
		b.log_text()[mark:], re.M), 10, what="hb3's floor back at the messages that came")
	b.kill()
	q = clients.raw(c.port, 4)
	assert q.connect(cid, clean=False).session_present
	all_arrive(q, 30, "the 30 messages that came to hb3 with the hand-over")


def test_a_killed_nodes_offline_session_gets_its_local_messages_once(nats, broker, clients):
	"""With cluster_durable_sessions false a node's own QoS 2 messages reach its persistent
	sessions when published, not from the stream; another node wanting the subject puts a copy
	in the stream too. A session goes offline holding such a message whose copy in the stream
	this node has not received back yet (NATS paused a moment): its key holds its whole state,
	and a rebuild after the node is killed gives the message once [MQTT-4.3.3-5], not once from
	the key and again from the stream."""
	n = nats()
	# Two threads that keep their connections: the publisher's turn waits for JetStream
	# while the subscriber's thread goes on (tried until the two are on different threads).
	a = node(broker, n, "la", "cluster_durable_sessions false", "log_type all", "threads 2",
		"consolidate_threads false")
	c = node(broker, n, "lc", "log_type all")
	t = uid("l")
	w = clients.raw(c.port, 4)  # another node wants t: its messages go through the stream
	w.connect(uid("w"))
	w.subscribe([(t + "/#", 2)])
	knows(a, "vs.m.%s.>" % t)
	cid = None
	for k in range(10):
		sc, pc, tk = uid("dev"), uid("p"), "%s/%d" % (t, k)
		s = clients.raw(a.port, 4)
		s.connect(sc, clean=False)
		s.subscribe([(tk, 2)])
		p = clients.raw(a.port, 4)
		p.connect(pc)
		n.proc.send_signal(signal.SIGSTOP)
		try:
			p.publish(tk, b"once", qos=2, pid=1, wait=False)
			# Routed to it when it came; its publisher's turn waits for JetStream.
			a.wait_log(r"Received PUBLISH from %s \(d0, q2, r0, m1," % pc, timeout=4)
			try:
				s.ping(timeout=1.0)  # its thread goes on
				s.close()
				# Offline: its note exports it at once, and then waits for NATS.
				a.wait_log(r"client %s \(.*\) disconnected" % sc, timeout=3)
				cid = sc
			except TimeoutError:
				pass
		finally:
			n.proc.send_signal(signal.SIGCONT)
		p.expect(PUBREC, timeout=10, pid=1)
		if cid:
			break
		s.close()
	assert cid, "the publisher and the subscriber never on different threads"
	a.wait_log(r"cluster: client %s's key in bucket vs_sessions holds its whole state" % cid,
		timeout=10)
	a.kill()
	r = clients.raw(c.port, 4)
	assert r.connect(cid, clean=False).session_present
	c.wait_log(r"node la, which had client %s's session, does not answer: rebuilt" % cid,
		timeout=10)
	got = [m.payload for m in r.drain(3.0) if m.type == PUBLISH]
	assert got == [b"once"], got
