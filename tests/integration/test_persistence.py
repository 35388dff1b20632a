"""Persistence under stress: kill -9 during load, damaged logs, a full disk, wall-clock expiry.

The promise under test (docs/persistence.md): once the broker acknowledged something (PUBACK or
PUBREC to a publisher, SUBACK, CONNACK with session present), SIGKILL does not take it back.
On a full disk the broker stops acknowledging QoS 1/2 (5.0: reason code 0x97 Quota exceeded;
3.1.1: the connection is closed instead of acked), keeps serving QoS 0 and recovers when space
returns.

Load is produced by raw-socket publishers (mqtt_raw) that keep a window of QoS 1/2 messages in
flight and record which sequence numbers were acknowledged; the subscriber is a raw client with
its own QoS 2 receiver state (method A of [MQTT-4.3.3]: the message is delivered on PUBREL, and
the packet id is remembered across the reconnect), so a duplicate delivery is a broker fault.

Everything here is Viesti-only: Mosquitto writes its database only at autosave or shutdown, so
it loses acknowledged messages on SIGKILL by design.
"""

import collections
import glob
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import TARGET_BIN, wait_until
from helpers import uid
from mqtt_raw import (CONNACK, P, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Closed,
	ProtocolViolation, RawClient)

pytestmark = pytest.mark.viesti_only

STORE_NAME = "mosquitto.db.d"


@pytest.fixture
def data_dir():
	d = tempfile.mkdtemp(prefix="viesti-pt-")
	yield d
	shutil.rmtree(d, ignore_errors=True)


def pbroker(broker, d, *extra, start=True):
	return broker("persistence true", "persistence_location %s/" % d, "max_queued_messages 0",
		*extra, start=start)


def store_dir(d):
	return os.path.join(d, STORE_NAME)


def check_store(d):
	r = subprocess.run([TARGET_BIN, "broker", "--check-store", store_dir(d)],
		capture_output=True, timeout=30)
	return r.returncode, r.stdout.decode() + r.stderr.decode()


# --- load generation ----------------------------------------------------------------------------

class LoadPublisher(threading.Thread):
	"""Publishes "idx:seq" on pt/<idx> at QoS 1 or 2 with `window` messages in flight until
	stopped or the connection dies. `acked` holds the sequence numbers the broker took
	responsibility for: PUBACK (QoS 1) or PUBREC (QoS 2) with a success code."""

	def __init__(self, port, idx, qos, version, window=16, prefix="pt"):
		super().__init__(daemon=True)
		self.port, self.idx, self.qos, self.version = port, idx, qos, version
		self.window = window
		self.topic = "%s/%d" % (prefix, idx)
		self.acked = set()
		self.refused = set()
		self.sent = 0
		self.stop_evt = threading.Event()
		self.error = None

	def run(self):
		inflight = {}
		seq = 0
		try:
			c = RawClient(self.port, self.version)
			c.connect(uid("lp%d" % self.idx))
			while not self.stop_evt.is_set():
				while len(inflight) < self.window and not self.stop_evt.is_set():
					seq += 1
					pid = c.pid()
					c.send(c.publish_packet(self.topic, b"%d:%d" % (self.idx, seq), self.qos,
						pid=pid))
					inflight[pid] = seq
					self.sent = seq
				p = c.recv(timeout=3.0)
				if p.type == PUBACK:
					s = inflight.pop(p.pid)
					(self.acked if p.rc < 0x80 else self.refused).add(s)
				elif p.type == PUBREC:
					if p.rc < 0x80:
						self.acked.add(inflight[p.pid])
						c.pubrel(p.pid)
					else:
						self.refused.add(inflight.pop(p.pid))
				elif p.type == PUBCOMP:
					inflight.pop(p.pid, None)
			c.close()
		except (Closed, OSError, TimeoutError, ProtocolViolation) as e:
			self.error = e

	def stop(self):
		self.stop_evt.set()
		self.join(10)


def key_of(payload):
	a, b = payload.split(b":")
	return int(a), int(b)


class Collector:
	"""A persistent-session subscriber on its own thread with client-side QoS 2 state that
	outlives reconnects. counts[(idx, seq)] is how many times the message was delivered."""

	def __init__(self, port, version, qos, filt="pt/#", cid=None):
		self.port, self.version, self.qos, self.filt = port, version, qos, filt
		self.cid = cid or uid("col")
		self.counts = collections.Counter()
		self.q2 = {}  # packet id -> key, PUBREC sent, waiting for PUBREL
		self.lock = threading.Lock()
		self.thread = None
		self.c = None
		self.first = True
		self.session_present = None
		self.stop_evt = threading.Event()

	def connect(self, subscribe=False):
		c = RawClient(self.port, self.version)
		if self.version == 5:
			ack = c.connect(self.cid, clean=self.first, props={P.SESSION_EXPIRY: 600})
		else:
			ack = c.connect(self.cid, clean=False)
		self.first = False
		self.session_present = ack.session_present
		if subscribe:
			sa = c.subscribe((self.filt, self.qos))
			assert sa.codes == [self.qos], sa
		self.c = c
		return ack

	def _loop(self):
		c = self.c
		try:
			while not self.stop_evt.is_set():
				try:
					p = c.recv(timeout=0.2)
				except TimeoutError:
					continue
				if p.type == PUBLISH:
					k = key_of(p.payload)
					if p.qos == 2:
						with self.lock:
							self.q2[p.pid] = k
						c.pubrec(p.pid)
					else:
						with self.lock:
							self.counts[k] += 1
						if p.qos == 1:
							c.puback(p.pid)
				elif p.type == PUBREL:
					with self.lock:
						k = self.q2.pop(p.pid, None)
						if k is not None:
							self.counts[k] += 1
					c.pubcomp(p.pid)
		except (Closed, OSError, ProtocolViolation):
			pass

	def start(self):
		self.stop_evt.clear()
		self.thread = threading.Thread(target=self._loop, daemon=True)
		self.thread.start()

	def stop(self, close=True):
		self.stop_evt.set()
		if self.thread:
			self.thread.join(5)
		if close and self.c:
			self.c.close()

	def wait_for(self, keys, timeout):
		"""Waits until every key has arrived; returns the missing ones (empty on success)."""
		deadline = time.monotonic() + timeout
		while True:
			with self.lock:
				missing = [k for k in keys if self.counts[k] == 0]
			if not missing or time.monotonic() > deadline:
				return missing
			time.sleep(0.05)


def run_load(b, pubs_spec, qos, seconds):
	"""Starts the publishers, lets them run `seconds`, then kills the broker under load.
	Returns the publishers (all stopped) and the set of acknowledged keys."""
	pubs = [LoadPublisher(b.port, i, qos, v) for i, v in enumerate(pubs_spec)]
	for p in pubs:
		p.start()
	time.sleep(seconds)
	b.kill()
	for p in pubs:
		p.stop()
	acked = {(p.idx, s) for p in pubs for s in p.acked}
	return pubs, acked


def describe_missing(missing, col, pubs):
	missing = sorted(missing)
	per = collections.Counter(k[0] for k in missing)
	return ("%d acknowledged messages never arrived (per publisher %r; first %r; publishers "
		"acked %r of sent %r; subscriber got %d distinct)" % (len(missing), dict(per),
		missing[:10], [len(p.acked) for p in pubs], [p.sent for p in pubs], len(col.counts)))


# --- 1, 2, 6: kill -9 under sustained load ------------------------------------------------------

LOAD_CASES = [
	# (qos, subscriber online, subscriber protocol, fsync lines, seconds of load)
	pytest.param(1, True, 4, (), 1.5, id="qos1-online-v4"),
	pytest.param(1, False, 5, (), 1.5, id="qos1-offline-v5"),
	pytest.param(2, True, 5, (), 1.5, id="qos2-online-v5"),
	pytest.param(2, False, 4, (), 1.5, id="qos2-offline-v4"),
	pytest.param(1, True, 5, ("persistence_fsync batch",), 0.8, id="qos1-online-batch"),
	pytest.param(1, False, 4, ("persistence_fsync batch",), 0.8, id="qos1-offline-batch"),
	pytest.param(2, True, 4, ("persistence_fsync batch",), 0.8, id="qos2-online-batch"),
	pytest.param(2, False, 5, ("persistence_fsync batch",), 0.8, id="qos2-offline-batch"),
	pytest.param(1, True, 4, ("persistence_fsync interval 50",), 0.8, id="qos1-online-interval"),
	pytest.param(2, False, 5, ("persistence_fsync interval 50",), 0.8, id="qos2-offline-interval"),
]


@pytest.mark.parametrize("qos,online,sub_version,fsync,seconds", LOAD_CASES)
def test_kill9_under_load(broker, data_dir, qos, online, sub_version, fsync, seconds):
	"""Three publishers (3.1.1, 5.0, 3.1.1) publish as fast as acks come back; the broker is
	killed mid-stream; after a restart on the same store every message the broker acknowledged
	(PUBACK; for QoS 2 PUBREC) reaches the persistent subscriber, and at QoS 2 none twice."""
	b = pbroker(broker, data_dir, *fsync)
	col = Collector(b.port, sub_version, qos)
	col.connect(subscribe=True)
	if online:
		col.start()
	else:
		col.c.disconnect() if sub_version == 4 else col.c.close()
	pubs, acked = run_load(b, (4, 5, 4), qos, seconds)
	col.stop()
	assert len(acked) > 50, "load too small to mean anything: %d acked" % len(acked)

	b.start()
	ack = col.connect()
	assert ack.session_present, "persistent subscriber's session lost across kill -9"
	col.start()
	t_collect = time.monotonic()
	missing = col.wait_for(acked, timeout=15)
	print("load: %d acked, %d sent; collected in %.1f s" % (len(acked), sum(p.sent for p in pubs), time.monotonic() - t_collect))
	if qos == 2:
		time.sleep(0.7)  # a late duplicate would arrive now
	col.stop()
	assert not missing, describe_missing(missing, col, pubs)
	if qos == 2:
		dups = {k: n for k, n in col.counts.items() if n > 1}
		assert not dups, "QoS 2 messages delivered more than once: %d, e.g. %r" % (
			len(dups), sorted(dups.items())[:10])
	# nothing arrives that nobody sent
	sent = {(p.idx, s) for p in pubs for s in range(1, p.sent + 1)}
	assert set(col.counts) <= sent


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_pubrel_resent_after_kill9(broker, clients, data_dir, version):
	"""The subscriber received PUBLISH, sent PUBREC and got PUBREL; the broker dies before
	PUBCOMP. After the restart the broker must resend PUBREL for that packet id, not the
	PUBLISH ([MQTT-4.4.0-1]: on reconnect resend unacknowledged PUBLISH and PUBREL packets; the
	message is already past its PUBREC)."""
	b = pbroker(broker, data_dir)
	cid = uid("q2r")
	sprops = {P.SESSION_EXPIRY: 600} if version == 5 else None
	s = clients.raw(b.port, version)
	s.connect(cid, clean=(version == 5), props=sprops) if version == 5 else \
		s.connect(cid, clean=False)
	s.subscribe(("q2r/t", 2))
	p = clients.raw(b.port, version)
	p.connect(uid())
	assert p.publish("q2r/t", b"once", qos=2).type == PUBCOMP
	m = s.expect(PUBLISH)
	assert m.qos == 2 and m.payload == b"once"
	s.pubrec(m.pid)
	rel = s.expect(PUBREL, pid=m.pid)   # sent once its state is written: no wait
	assert rel.pid == m.pid
	b.kill()
	s.close()
	b.start()
	s = clients.raw(b.port, version)
	ack = s.connect(cid, clean=False, props=sprops) if version == 5 else \
		s.connect(cid, clean=False)
	assert ack.session_present
	got = s.drain(1.0, ack=False)
	pubs = [x for x in got if x.type == PUBLISH]
	rels = [x for x in got if x.type == PUBREL]
	assert not pubs, "broker resent the PUBLISH after PUBREC was received: %r" % got
	assert [r.pid for r in rels] == [m.pid], "expected one PUBREL for %d, got %r" % (m.pid, got)
	s.pubcomp(m.pid)
	assert not [x for x in s.drain(0.5) if x.type in (PUBLISH, PUBREL)]
	# and once PUBCOMP is in, the flow is over for good
	b.kill()
	s.close()
	b.start()
	s = clients.raw(b.port, version)
	assert (s.connect(cid, clean=False, props=sprops) if version == 5 else
		s.connect(cid, clean=False)).session_present
	got = s.drain(0.7, ack=False)
	assert not [x for x in got if x.type in (PUBLISH, PUBREL)], got


def test_qos2_incoming_state_survives_kill9(broker, clients, data_dir):
	"""A persistent publisher's QoS 2 message is PUBREC'd, the broker dies before PUBREL.
	After the restart the publisher resends PUBREL (the state of [MQTT-4.3.3-8]); the broker
	answers PUBCOMP, and the subscriber sees the message exactly once."""
	b = pbroker(broker, data_dir)
	sc = uid("q2s")
	s = clients.raw(b.port, 5)
	s.connect(sc, props={P.SESSION_EXPIRY: 600})
	s.subscribe(("q2i/t", 2))
	pc = uid("q2p")
	p = clients.raw(b.port, 5)
	p.connect(pc, props={P.SESSION_EXPIRY: 600})
	pid = p.publish("q2i/t", b"x", qos=2, wait=False)
	assert p.expect(PUBREC, pid=pid).rc == 0
	b.kill()
	p.close()
	s.close()
	b.start()
	p = clients.raw(b.port, 5)
	assert p.connect(pc, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
	p.pubrel(pid)
	assert p.expect(PUBCOMP, pid=pid).rc == 0
	s = clients.raw(b.port, 5)
	assert s.connect(sc, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
	got = [x for x in s.drain(1.0) if x.type == PUBLISH]
	assert [x.payload for x in got] == [b"x"], got


# --- 3: retained messages and sessions -----------------------------------------------------------

def test_retained_and_sessions_survive_kill9(broker, clients, data_dir):
	"""Retained set / replaced / deleted, subscriptions added / removed, and session-present
	all hold after SIGKILL."""
	b = pbroker(broker, data_dir)
	p = clients.raw(b.port, 5)
	p.connect(uid())
	for i in range(20):
		p.publish("ret/%d" % i, b"v1-%d" % i, qos=1, retain=True)
	p.publish("ret/3", b"v2-3", qos=1, retain=True)        # replaced
	p.publish("ret/4", b"", qos=1, retain=True)            # deleted
	p.publish("ret/5", b"v2-5", qos=0, retain=True)        # QoS 0 retained: no ack to hold to
	# A QoS 1 PUBLISH on the same connection after it: its PUBACK leaves only after a commit
	# that holds every record appended before it, the QoS 0 one included.
	p.publish("barrier", b"", qos=1)
	sessions = {}
	for v in (4, 5):
		cid = uid("rs%d" % v)
		s = clients.raw(b.port, v)
		if v == 5:
			s.connect(cid, props={P.SESSION_EXPIRY: 600})
		else:
			s.connect(cid, clean=False)
		assert s.subscribe([("keep/%d/#" % v, 1), ("gone/%d" % v, 1)]).codes == [1, 1]
		s.unsubscribe("gone/%d" % v)
		s.disconnect()
		sessions[v] = cid
	b.kill()
	b.start()
	r = clients.raw(b.port, 4)
	r.connect(uid())
	r.subscribe(("ret/#", 0))
	got = {m.topic: m.payload for m in r.drain(1.0) if m.type == PUBLISH}
	want = {"ret/%d" % i: b"v1-%d" % i for i in range(20)}
	want["ret/3"] = b"v2-3"
	del want["ret/4"]
	want["ret/5"] = b"v2-5"
	assert got == want
	p = clients.raw(b.port, 4)
	p.connect(uid())
	for v, cid in sessions.items():
		p.publish("keep/%d/x" % v, b"k", qos=1)
		p.publish("gone/%d" % v, b"g", qos=1)
	for v, cid in sessions.items():
		s = clients.raw(b.port, v)
		ack = s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600} if v == 5 else None)
		assert ack.session_present
		got = [(m.topic, m.payload, m.qos) for m in s.drain(0.8) if m.type == PUBLISH]
		assert got == [("keep/%d/x" % v, b"k", 1)], got


def test_clean_start_over_queued_session_then_two_restarts(broker, clients, data_dir):
	"""A clean start over a persistent session with messages queued leaves none of them, after
	SIGKILL and after a second restart (whose store starts from the first restart's snapshot).
	The floors in SESSION records (the new session's, and one per session in each snapshot)
	drop nothing they should not: the deliveries queued after the clean start, and after each
	restart, all come, once and in order."""
	b = pbroker(broker, data_dir)
	cid = uid("floor")
	s = clients.raw(b.port, 5)
	s.connect(cid, props={P.SESSION_EXPIRY: 600})
	assert s.subscribe(("fl/t", 1)).codes == [1]
	s.disconnect()
	p = clients.raw(b.port, 4)
	p.connect(uid())
	for i in range(5):
		p.publish("fl/t", b"old-%d" % i, qos=1)
	s = clients.raw(b.port, 5)
	ack = s.connect(cid, clean=True, props={P.SESSION_EXPIRY: 600})
	assert not ack.session_present
	assert s.subscribe(("fl/t", 1)).codes == [1]
	s.disconnect()
	for i in range(3):
		p.publish("fl/t", b"new-%d" % i, qos=1)
	b.kill()
	b.start()
	p = clients.raw(b.port, 4)
	p.connect(uid())
	for i in range(3, 5):
		p.publish("fl/t", b"new-%d" % i, qos=1)
	b.kill()
	b.start()
	s = clients.raw(b.port, 5)
	ack = s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600})
	assert ack.session_present
	got = [m.payload for m in s.publishes(5)]
	got += [m.payload for m in s.drain(0.3) if m.type == PUBLISH]   # and nothing more
	assert got == [b"new-%d" % i for i in range(5)], got


def test_session_expiry_counts_wall_clock_across_restart(broker, clients, data_dir):
	"""5.0 Session Expiry Interval 3 s: the broker is stopped, 4 s pass, it starts again: the
	session has expired even though the broker was down the whole time. A session with 60 s
	survives the same gap (and so does one kept across a kill -9)."""
	b = pbroker(broker, data_dir)
	short, long_ = uid("se3"), uid("se60")
	for cid, exp in ((short, 3), (long_, 60)):
		s = clients.raw(b.port, 5)
		s.connect(cid, props={P.SESSION_EXPIRY: exp})
		s.subscribe(("se/#", 1))
		s.disconnect()
	p = clients.raw(b.port, 5)
	p.connect(uid())
	p.publish("se/q", b"queued", qos=1)
	p.disconnect()
	assert b.stop() is None
	time.sleep(4.0)
	b.start()
	time.sleep(1.2)  # one session sweep (see test_expired_session_not_resumed_right_after_start)
	s = clients.raw(b.port, 5)
	ack = s.connect(short, clean=False, props={P.SESSION_EXPIRY: 3})
	assert not ack.session_present, "3 s session still present after 4 s of downtime"
	assert not [m for m in s.drain(0.5) if m.type == PUBLISH]
	s.disconnect()
	s = clients.raw(b.port, 5)
	assert s.connect(long_, clean=False, props={P.SESSION_EXPIRY: 60}).session_present
	assert [m.payload for m in s.drain(0.8) if m.type == PUBLISH] == [b"queued"]


def test_session_expiry_elapses_across_kill9(broker, clients, data_dir):
	"""The same with SIGKILL: the session went offline at t0 with 2 s expiry; the broker is
	killed at t0+0.3 and restarted at t0+2.5: the session is gone."""
	b = pbroker(broker, data_dir)
	cid = uid("sek")
	s = clients.raw(b.port, 5)
	s.connect(cid, props={P.SESSION_EXPIRY: 2})
	s.subscribe(("sek/#", 1))
	s.disconnect()
	time.sleep(0.3)
	b.kill()
	time.sleep(2.2)
	b.start()
	time.sleep(1.2)  # one session sweep (see test_expired_session_not_resumed_right_after_start)
	s = clients.raw(b.port, 5)
	assert not s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 2}).session_present


def test_expired_session_not_resumed_right_after_start(broker, clients, data_dir):
	"""A session whose expiry elapsed while the broker was down is gone for a client that
	connects the moment the broker accepts connections ([MQTT-3.1.2-23]: the session is kept
	only until the Session Expiry Interval has passed)."""
	b = pbroker(broker, data_dir)
	cid = uid("ser")
	s = clients.raw(b.port, 5)
	s.connect(cid, props={P.SESSION_EXPIRY: 1})
	s.subscribe(("ser/#", 1))
	s.disconnect()
	assert b.stop() is None
	time.sleep(2.2)
	b.start()
	s = clients.raw(b.port, 5)
	assert not s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 1}).session_present, \
		"session with 1 s expiry resumed after 2.2 s of downtime"


# --- 4: damaged logs -----------------------------------------------------------------------------

def log_records(path):
	"""[(offset, type, total length)] for the whole records of a log segment."""
	data = open(path, "rb").read()
	assert data[:4] == b"VSDB" and data[4:5] == b"L", path
	out, off = [], 20
	while off + 10 <= len(data):
		blen, rtype = struct.unpack_from("<IB", data, off)
		if off + 10 + blen > len(data):
			break
		out.append((off, rtype, 10 + blen))
		off += 10 + blen
	return out


def newest_log(d):
	logs = sorted(glob.glob(os.path.join(store_dir(d), "log-*.vlog")))
	assert logs, os.listdir(store_dir(d))
	return logs[-1]


def session_trail(d, cid):
	"""What the log segments say of client id cid's session, in order: ("S", floor or None)
	for SESSION records, ("D", None) for SESSION_DEL, ("Q", seq) for QUEUE records (the
	layouts of docs/persistence.md)."""
	want = cid.encode()
	out = []
	for path in sorted(glob.glob(os.path.join(store_dir(d), "log-*.vlog"))):
		data = open(path, "rb").read()
		for off, rtype, ln in log_records(path):
			body = data[off + 10:off + ln]
			(idlen,) = struct.unpack_from("<H", body, 0)
			if body[2:2 + idlen] != want:
				continue
			rest = body[2 + idlen:]
			if rtype == 1:                    # u32 u8 i64 u32 [u32 floor]
				floor = struct.unpack_from("<I", rest, 17)[0] if len(rest) >= 21 else None
				out.append(("S", floor))
			elif rtype == 2:
				out.append(("D", None))
			elif rtype == 8:                  # u64 u8 u16 u16 n*u32 u32 seq
				(n,) = struct.unpack_from("<H", rest, 11)
				out.append(("Q", struct.unpack_from("<I", rest, 13 + 4 * n)[0]))
	return out


def vs_seq_before(a, b):
	return ((a - b) & 0xffffffff) >= 0x80000000


def test_new_session_numbers_its_deliveries_past_the_old_ones(broker, clients, data_dir):
	"""A client id's new session, after a clean start and after its old session expired and
	was removed, numbers its deliveries after the old session's and says so in its first
	SESSION record's floor: a QUEUE record of the old session that another thread writes
	late is then not replayed into the new one (docs/persistence.md)."""
	b = pbroker(broker, data_dir)
	cid = uid("num")
	p = clients.raw(b.port, 4)
	p.connect(uid())

	def generation(clean, expiry):
		s = clients.raw(b.port, 5)
		s.connect(cid, clean=clean, props={P.SESSION_EXPIRY: expiry})
		assert s.subscribe(("num/t", 1)).codes == [1]
		s.disconnect()
		for i in range(3):
			p.publish("num/t", b"m%d" % i, qos=1)

	generation(True, 600)
	generation(True, 1)                   # a clean start over the first
	# The second expires after a second offline, and the once-a-second sweep removes it.
	assert wait_until(lambda: session_trail(data_dir, cid).count(("D", None)) == 2, 10)
	generation(False, 600)                # nothing to resume: a new session
	trail = session_trail(data_dir, cid)
	starts = [i for i, (k, _) in enumerate(trail) if k == "D"]
	assert len(starts) == 2, trail
	bounds = [0] + [i + 1 for i in starts] + [len(trail)]
	gens = [trail[bounds[k]:bounds[k + 1]] for k in range(3)]
	last = 0
	for g in gens:
		# The session goes into the store whole: its SESSION record, then the same with the
		# floor, before any delivery of it.
		assert g[0] == ("S", None) and g[1][0] == "S", trail
		floor = g[1][1]
		seqs = [v for k, v in g if k == "Q"]
		assert len(seqs) == 3, trail
		# Past every number the client id had (ended_seq is the whole broker's: it may
		# be higher still).
		assert vs_seq_before(last, floor) and min(seqs) >= floor, (floor, seqs, trail)
		last = max(seqs)


def fill_retained(b, clients, n, prefix):
	p = clients.raw(b.port, 4)
	p.connect(uid())
	for i in range(n):
		p.publish("%s/%d" % (prefix, i), b"payload-%d" % i, qos=1, retain=True)
	p.disconnect()


def read_retained(b, clients, prefix):
	r = clients.raw(b.port, 4)
	r.connect(uid())
	r.subscribe(("%s/#" % prefix, 0))
	got = {m.topic: m.payload for m in r.drain(1.0) if m.type == PUBLISH}
	r.disconnect()
	return got


MSG, RETAIN, WILL = 5, 6, 11


def test_truncated_log_tail(broker, clients, data_dir):
	"""The last log segment is cut in the middle of its last record (a torn write): the store
	check reports it, the broker starts, warns, and keeps every earlier record."""
	b = pbroker(broker, data_dir)
	fill_retained(b, clients, 10, "tr")
	b.kill()
	path = newest_log(data_dir)
	recs = log_records(path)
	assert recs[-1][1] == RETAIN, recs[-3:]
	off, _, ln = recs[-1]
	with open(path, "r+b") as f:
		f.truncate(off + ln // 2)
	rc, out = check_store(data_dir)
	assert rc == 1, "check-store exit %d on a torn tail:\n%s" % (rc, out)
	assert "torn" in out.lower(), out
	b.start()
	b.wait_log(r"warn.*(trunc|cut|torn)")
	got = read_retained(b, clients, "tr")
	want = {"tr/%d" % i: b"payload-%d" % i for i in range(9)}
	assert {k: v for k, v in got.items() if k != "tr/9"} == want
	# repaired: the store is clean now, and a clean restart keeps it
	assert b.stop() is None
	rc, out = check_store(data_dir)
	assert rc == 0, out
	b.start()
	assert read_retained(b, clients, "tr") == got


def test_flipped_byte_mid_log(broker, clients, data_dir):
	"""A byte in the middle of the log is flipped (bit rot) with valid records after it: the
	check reports CORRUPT, the broker starts with the valid prefix, logs an error, sets the
	damaged file aside, and no damaged or later data leaks into its state."""
	b = pbroker(broker, data_dir)
	fill_retained(b, clients, 20, "fb")
	b.kill()
	path = newest_log(data_dir)
	recs = log_records(path)
	msgs = [r for r in recs if r[1] == MSG]
	assert len(msgs) == 20, recs
	off, _, ln = msgs[10]                # the body of retained message fb/10
	with open(path, "r+b") as f:
		f.seek(off + ln - 3)             # inside the payload
		c = f.read(1)
		f.seek(off + ln - 3)
		f.write(bytes([c[0] ^ 0x20]))
	rc, out = check_store(data_dir)
	assert rc == 1, "check-store exit %d on a flipped byte:\n%s" % (rc, out)
	assert "corrupt" in out.lower(), out
	b.start()
	b.wait_log(r"(error|warn).*(corrupt|crc|damage)")
	got = read_retained(b, clients, "fb")
	for i in range(10):
		assert got.get("fb/%d" % i) == b"payload-%d" % i, (i, got)
	for t, v in got.items():
		assert v == b"payload-%s" % t.split("/")[1].encode(), "damaged payload served: %r" % (
			(t, v),)
	assert glob.glob(os.path.join(store_dir(data_dir), "*.corrupt-*")), \
		os.listdir(store_dir(data_dir))
	assert b.stop() is None
	rc, out = check_store(data_dir)
	assert rc == 0, out
	b.start()
	assert read_retained(b, clients, "fb") == got


# --- 5: disk full --------------------------------------------------------------------------------

@pytest.fixture
def small_fs():
	if os.geteuid() != 0:
		pytest.skip("needs root to mount a tmpfs")
	d = tempfile.mkdtemp(prefix="viesti-full-")
	r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", d],
		capture_output=True)
	if r.returncode != 0:
		os.rmdir(d)
		pytest.skip("cannot mount a tmpfs: %s" % r.stderr.decode().strip())
	yield d
	if subprocess.run(["umount", d], capture_output=True).returncode != 0:
		subprocess.run(["umount", "-l", d], capture_output=True)
	shutil.rmtree(d, ignore_errors=True)


def connect_retry(b, clients, version, tries=6):
	"""A clean connection; retried because during a full disk a CONNECT may land on a worker
	that refuses its CONNACK (see test_disk_full_new_connections_get_connack)."""
	for i in range(tries):
		c = clients.raw(b.port, version)
		try:
			c.connect(uid())
			return c
		except Closed:
			if i == tries - 1:
				raise


def fill_disk(b, clients, payload):
	"""Publishes QoS 1 (5.0) full/<n> until the broker refuses one. Returns (acked seqs,
	first refusal code, the publisher or None, last seq)."""
	acked, refused = [], None
	p, seq = None, 0
	deadline = time.monotonic() + 20
	while refused is None and time.monotonic() < deadline:
		seq += 1
		try:
			if p is None:
				p = clients.raw(b.port, 5)
				p.connect(uid())
			a = p.publish("full/%d" % seq, payload, qos=1)
		except (Closed, OSError, TimeoutError):
			p = None  # a failed commit closes the connection whose ack was pending
			continue
		if a.rc < 0x80:
			acked.append(seq)
		else:
			refused = a.rc
	assert refused is not None, "no refusal after %d acked 1 KiB messages on a 256 KiB " \
		"tmpfs" % len(acked)
	assert refused == 0x97, "refused with 0x%02x, wanted 0x97 (Quota exceeded)" % refused
	assert len(acked) > 10, acked
	b.wait_log(r"error.*(space|ENOSPC|persist)")
	assert b.alive()
	return acked, p, seq


def offline_subscriber(b, clients, filt):
	cid = uid("full")
	s = clients.raw(b.port, 5)
	s.connect(cid, props={P.SESSION_EXPIRY: 600})
	s.subscribe((filt, 1))
	s.disconnect()
	return cid


FSYNC_CASES = [pytest.param((), id="never"),
	pytest.param(("persistence_fsync batch",), id="batch")]


@pytest.mark.parametrize("fsync", FSYNC_CASES)
def test_disk_full(small_fs, broker, clients, fsync):
	"""ENOSPC: QoS 1 is refused (5.0 PUBACK 0x97, 3.1.1 connection closed) but nothing acked
	is lost, QoS 0 keeps flowing, and once space returns QoS 1 is acked again; after kill -9
	every acked message reaches the persistent subscriber. With fsync batch the write fails
	while earlier writes' syncs may still be in flight (their acknowledgements held)."""
	b = pbroker(broker, small_fs, *fsync)
	cid = offline_subscriber(b, clients, "full/#")
	live = clients.raw(b.port, 4)
	live.connect(uid())
	live.subscribe(("q0/#", 0))
	payload = b"x" * 1024
	acked, p, seq = fill_disk(b, clients, payload)

	# QoS 0 still flows to a subscriber connected before
	live.publish("q0/a", b"zero", qos=0)
	assert live.expect(PUBLISH).payload == b"zero"
	# a 3.1.1 publisher's QoS 1 message is not acked: the connection is closed instead
	o = connect_retry(b, clients, 4)
	o.publish("full/v4", payload, qos=1, wait=False)
	got = o.wait_closed(3.0)
	assert not [x for x in got if x.type == PUBACK], got
	# a QoS 2 message is refused at PUBREC
	q = connect_retry(b, clients, 5)
	rec = q.publish("full/q2", payload, qos=2)
	assert rec.type == PUBREC and rec.rc == 0x97, rec

	# space returns
	r = subprocess.run(["mount", "-o", "remount,size=4m", small_fs], capture_output=True)
	assert r.returncode == 0, r.stderr
	ok = False
	deadline = time.monotonic() + 8
	while not ok and time.monotonic() < deadline:
		seq += 1
		try:
			if p is None:
				p = clients.raw(b.port, 5)
				p.connect(uid())
			a = p.publish("full/%d" % seq, payload, qos=1)
		except (Closed, OSError, TimeoutError):
			p = None
			continue
		if a.rc < 0x80:
			acked.append(seq)
			ok = True
		else:
			time.sleep(0.2)
	assert ok, "QoS 1 still refused 8 s after space returned"
	for _ in range(20):
		seq += 1
		a = p.publish("full/%d" % seq, payload, qos=1)
		assert a.rc == 0, "refused after recovery: 0x%02x" % a.rc
		acked.append(seq)
	b.wait_log(r"persist.*(works again|recover)")

	b.kill()
	b.start()
	s = clients.raw(b.port, 5)
	assert s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
	want = {"full/%d" % q for q in acked}
	got = set()
	deadline = time.monotonic() + 15
	while not want <= got and time.monotonic() < deadline:
		got |= {m.topic for m in s.drain(0.5) if m.type == PUBLISH}
	assert want <= got, "acked but lost after the disk-full episode: %r" % sorted(
		want - got, key=lambda t: int(t.split("/")[1]))[:20]


@pytest.mark.parametrize("fsync", FSYNC_CASES)
def test_disk_full_new_connections_get_connack(small_fs, broker, clients, fsync):
	"""While the disk is full, new clean-session connections (several, so that every worker
	thread gets some) still get CONNACK and SUBACK and can use QoS 0: nothing about them is
	stored. [MQTT-3.2.0-1] the first packet the server sends is CONNACK."""
	b = pbroker(broker, small_fs, *fsync)
	offline_subscriber(b, clients, "full/#")
	fill_disk(b, clients, b"x" * 1024)
	problems = []
	for i in range(6):
		v = 4 + i % 2
		n = clients.raw(b.port, v)
		try:
			n.connect(uid("q0new"))
			assert n.subscribe(("q0/%d" % i, 0)).codes == [0]
			n.publish("q0/%d" % i, b"new", qos=0)
			assert n.expect(PUBLISH).payload == b"new"
		except (Closed, OSError, TimeoutError) as e:
			problems.append("new clean MQTT %s connection #%d: %s" % (
				"5.0" if v == 5 else "3.1.1", i, e))
	assert not problems, "during disk full:\n" + "\n".join(problems)


@pytest.mark.parametrize("fsync", FSYNC_CASES)
def test_disk_full_subscriber_acks_keep_flowing(small_fs, broker, clients, fsync):
	"""While the disk is full, a connected persistent subscriber keeps taking the messages
	acknowledged before it filled: its PUBACK ends a delivery (a DEQUEUE record the store
	cannot write yet), which promises the client nothing, so the next delivery is neither
	withdrawn nor held and the subscriber is not disconnected. Receive Maximum 1 makes each
	PUBACK release the next message in the same loop turn."""
	b = pbroker(broker, small_fs, *fsync)
	s = clients.raw(b.port, 5)
	s.connect(uid("full"), props={P.SESSION_EXPIRY: 600, P.RECEIVE_MAXIMUM: 1})
	assert s.subscribe(("full/#", 1)).codes == [1]
	acked, _, _ = fill_disk(b, clients, b"x" * 1024)
	want = ["full/%d" % q for q in acked]
	got = []
	deadline = time.monotonic() + 15
	while len(got) < len(want) and time.monotonic() < deadline:
		try:
			p = s.expect(PUBLISH, timeout=3.0)
		except (Closed, TimeoutError) as e:
			pytest.fail("after %d of %d deliveries during disk full: %s" % (
				len(got), len(want), e))
		s.puback(p.pid)
		got.append(p.topic)
	# In order; a message published before the refusal but not acknowledged may come too.
	assert [t for t in got if t in want] == want, got[:20]
	assert b.alive() and s.is_open()


# --- 7: delayed will -----------------------------------------------------------------------------

def will_client(b, clients, topic, delay=2, expiry=60):
	w = clients.raw(b.port, 5)
	w.connect(uid("will"), props={P.SESSION_EXPIRY: expiry},
		will={"topic": topic, "payload": b"gone", "qos": 1, "props": {P.WILL_DELAY: delay}})
	return w


def watch(b, clients, topic):
	s = clients.raw(b.port, 5)
	s.connect(uid())
	s.subscribe((topic, 1))
	return s


def test_delayed_will_pending_survives_kill9(broker, clients, data_dir):
	"""The client drops at t0 with will delay 2 s; the broker is killed at t0+0.3 and restarted
	at once: the will is published at about t0+2 (the publish time is wall clock), not at
	once and not never."""
	b = pbroker(broker, data_dir)
	w = will_client(b, clients, "pw/a")   # its CONNACK came after the will's record
	wills = lambda: sum(1 for _, t, _ in log_records(newest_log(data_dir)) if t == WILL)
	before = wills()
	w.close()
	t0 = time.monotonic()
	# The broker saw the drop once it recorded the will's publish time.
	assert wait_until(lambda: wills() > before, 5)
	b.kill()
	b.start()
	s = watch(b, clients, "pw/a")
	m = s.expect(PUBLISH, timeout=5)
	dt = time.monotonic() - t0
	assert m.payload == b"gone"
	assert 1.0 <= dt <= 4.0, "will published %.2f s after the drop, wanted ~2 s" % dt
	s.no_publish(0.5)


def test_delayed_will_of_connected_client_survives_kill9(broker, clients, data_dir):
	"""The client is connected with a will (delay 2 s, session expiry 60) when the broker is
	killed. The will is part of the session state ([MQTT-4.1] "The Will Message and the Will
	Delay Interval"), and the crash closed the network connection, so after the restart the
	will is published about 2 s later."""
	b = pbroker(broker, data_dir)
	w = will_client(b, clients, "pw/b")   # its CONNACK came after the will's record
	b.kill()
	w.close()
	b.start()
	t0 = time.monotonic()
	s = watch(b, clients, "pw/b")
	m = s.expect(PUBLISH, timeout=5)
	dt = time.monotonic() - t0
	assert m.payload == b"gone"
	assert 1.0 <= dt <= 4.0, "will published %.2f s after the restart, wanted ~2 s" % dt


# --- kill -9 while a snapshot is being written ---------------------------------------------------

def test_kill9_during_snapshot(broker, clients, data_dir):
	"""Retained messages of 256 KiB replace each other on 40 topics until the log passes the
	64 MiB compaction threshold and a snapshot (snap-*.tmp) is being written; the broker is
	killed while it is. After the restart every topic holds the last acknowledged value or a
	newer one, the .tmp is gone, and the store checks clean."""
	b = pbroker(broker, data_dir)
	sd = store_dir(data_dir)
	p = clients.raw(b.port, 4)
	p.connect(uid())
	last = {}
	seq = 0
	saw_tmp = False
	deadline = time.monotonic() + 30
	pad = b"." * (256 * 1024)
	while time.monotonic() < deadline:
		seq += 1
		t = "snap/%d" % (seq % 40)
		p.publish(t, b"%08d" % seq + pad, qos=1, retain=True)
		last[t] = seq
		if glob.glob(os.path.join(sd, "snap-*.tmp")):
			saw_tmp = True
			for _ in range(3):  # a few more acked while the snapshot runs
				seq += 1
				t = "snap/%d" % (seq % 40)
				p.publish(t, b"%08d" % seq + pad, qos=1, retain=True)
				last[t] = seq
			break
	b.kill()
	if not saw_tmp:
		pytest.skip("no snapshot in progress seen within 30 s (%d messages)" % seq)
	b.start()
	assert not glob.glob(os.path.join(sd, "snap-*.tmp")), os.listdir(sd)
	r = clients.raw(b.port, 4)
	r.connect(uid())
	r.subscribe(("snap/#", 0))
	got = {m.topic: int(m.payload[:8]) for m in r.drain(3.0) if m.type == PUBLISH}
	for t, s in last.items():
		assert got.get(t, -1) >= s, "%s: retained seq %r after restart, last acked %d" % (
			t, got.get(t), s)
	assert b.stop() is None
	rc, out = check_store(data_dir)
	assert rc == 0, out


def test_second_broker_on_same_store_refused(broker, clients, data_dir):
	"""docs/persistence.md: a second broker on the same store directory fails at start-up
	with a message naming the directory and the pid holding it; the first keeps working and
	its store is untouched."""
	b = pbroker(broker, data_dir)
	fill_retained(b, clients, 3, "two")
	b2 = pbroker(broker, data_dir, start=False)
	with pytest.raises(AssertionError, match="during start-up"):
		b2.start()
	assert re.search(r"in use by another process pid %d" % b.proc.pid, b2.log_text()), \
		b2.log_text()[-1000:]
	assert len(read_retained(b, clients, "two")) == 3
	b.kill()
	b.start()
	assert len(read_retained(b, clients, "two")) == 3


def test_session_of_connected_client_survives_kill9(broker, clients, data_dir):
	"""A persistent session whose client is connected at the crash: its CONNACK said the
	session exists, so after the restart it is present (3.1.1 clean session 0, 5.0 expiry
	60), with its subscription; a 5.0 session with expiry 1 s is present too (its connection
	ended at the restart, so its expiry starts then), and gone 2 s after its next disconnect."""
	b = pbroker(broker, data_dir)
	c4, c5, c2 = uid("cc4"), uid("cc5"), uid("cc2")
	a = clients.raw(b.port, 4)
	assert not a.connect(c4, clean=False).session_present
	a.subscribe(("cc/4", 1))
	x = clients.raw(b.port, 5)
	x.connect(c5, props={P.SESSION_EXPIRY: 60})   # no subscription: the session alone
	y = clients.raw(b.port, 5)
	y.connect(c2, props={P.SESSION_EXPIRY: 1})   # its CONNACK came after its records
	b.kill()
	for c in (a, x, y):
		c.close()
	b.start()
	a = clients.raw(b.port, 4)
	assert a.connect(c4, clean=False).session_present
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("cc/4", b"sub kept", qos=1)
	assert a.expect(PUBLISH).payload == b"sub kept"
	x = clients.raw(b.port, 5)
	assert x.connect(c5, clean=False, props={P.SESSION_EXPIRY: 60}).session_present
	y = clients.raw(b.port, 5)
	assert y.connect(c2, clean=False, props={P.SESSION_EXPIRY: 1}).session_present
	y.disconnect()
	time.sleep(2.2)  # expiry 1 s + the once-a-second session sweep
	y = clients.raw(b.port, 5)
	assert not y.connect(c2, clean=False, props={P.SESSION_EXPIRY: 1}).session_present


# --- fsync batch: an fdatasync that fails -----------------------------------------------------

FAILSYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
/* fdatasync fails with EIO while the file named by VS_FAIL_SYNC exists. */
int fdatasync(int fd)
{
	static int (*real)(int);
	const char *flag = getenv("VS_FAIL_SYNC");
	if (flag && access(flag, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}
"""


@pytest.fixture
def failsync(tmp_path):
	"""A preload library whose fdatasync fails while tmp_path/fail exists: (library, flag)."""
	cc = shutil.which("cc") or shutil.which("gcc")
	if not cc:
		pytest.skip("no C compiler for the fdatasync shim")
	src = tmp_path / "failsync.c"
	src.write_text(FAILSYNC_C)
	lib = tmp_path / "failsync.so"
	r = subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src), "-ldl"],
		capture_output=True)
	if r.returncode != 0:
		pytest.skip("cannot build the fdatasync shim: %s" % r.stderr.decode()[:200])
	return str(lib), str(tmp_path / "fail")


def test_batch_failed_fdatasync_withdraws_held_acks(broker, clients, data_dir, failsync):
	"""With fsync batch, an fdatasync fails (EIO) while a QoS 1 message's PUBACK waits for it:
	the PUBACK never goes out (the connection is closed so the client sends again), the store
	turns unhealthy, and once fdatasync works the records are written again and QoS 1 is acked
	again; after kill -9 every acknowledged message reaches the persistent subscriber."""
	lib, flag = failsync
	env = {"LD_PRELOAD": lib, "VS_FAIL_SYNC": flag,
		"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"}
	b = broker("persistence true", "persistence_location %s/" % data_dir,
		"max_queued_messages 0", "persistence_fsync batch", env=env)
	cid = offline_subscriber(b, clients, "fs/#")
	p = clients.raw(b.port, 5)
	p.connect(uid())
	acked = []
	for i in range(5):
		assert p.publish("fs/%d" % i, b"ok", qos=1).rc == 0
		acked.append(i)

	open(flag, "w").close()
	p.publish("fs/lost", b"not acked", qos=1, wait=False)
	got = p.wait_closed(5.0)
	assert not [x for x in got if x.type == PUBACK], \
		"PUBACK sent although its fdatasync failed: %r" % got
	b.wait_log(r"persist.*(fail|Input/output)")
	os.unlink(flag)

	# QoS 1 is acked again once a write is synced (the failed turn's records are written
	# again); a refusal (0x97) or a closed connection meanwhile is allowed
	ok, seq = False, 100
	deadline = time.monotonic() + 8
	p = None
	while not ok and time.monotonic() < deadline:
		seq += 1
		try:
			if p is None:
				p = clients.raw(b.port, 5)
				p.connect(uid())
			a = p.publish("fs/%d" % seq, b"ok", qos=1)
		except (Closed, OSError, TimeoutError):
			p = None
			continue
		if a.rc < 0x80:
			acked.append(seq)
			ok = True
		else:
			time.sleep(0.1)
	assert ok, "QoS 1 still refused 8 s after fdatasync works again"
	for _ in range(10):
		seq += 1
		assert p.publish("fs/%d" % seq, b"ok", qos=1).rc == 0
		acked.append(seq)

	b.kill()
	b.start()
	s = clients.raw(b.port, 5)
	assert s.connect(cid, clean=False, props={P.SESSION_EXPIRY: 600}).session_present
	want = {"fs/%d" % q for q in acked}
	got = set()
	deadline = time.monotonic() + 10
	while not want <= got and time.monotonic() < deadline:
		got |= {m.topic for m in s.drain(0.5) if m.type == PUBLISH}
	assert want <= got, "acked but lost: %r" % sorted(want - got)
