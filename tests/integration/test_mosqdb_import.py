"""Importing Mosquitto's mosquitto.db (docs/persistence.md, "Importing mosquitto.db").

Each test makes the database with Debian's mosquitto 2.0 itself: retained messages, and a
persistent session whose subscriber went away while QoS 1 messages were published for it; then
SIGTERM, so that Mosquitto writes mosquitto.db. Viesti then starts on the same
persistence_location, and real clients check that the retained messages and the queued messages
arrive, with session present = 1, and that mosquitto.db is byte-for-byte what Mosquitto wrote.
"""

import hashlib
import os
import signal
import socket
import subprocess

import pytest

from conftest import TARGET_BIN, free_port, wait_until
from helpers import PahoClient, mosquitto_pub

MOSQUITTO = "/usr/sbin/mosquitto"

pytestmark = [pytest.mark.viesti_only,
	pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no %s" % MOSQUITTO)]


def sha256(path):
	with open(path, "rb") as f:
		return hashlib.sha256(f.read()).hexdigest()


def make_mosquitto_db(d):
	"""Runs mosquitto with persistence in d, creates state, stops it; returns the db's path.
	State: retained imp/r1 ("one", QoS 1) and imp/r2 ("two", QoS 0); session "impsub" (MQTT
	3.1.1, clean session false, imp/q at QoS 1) with q1, q2, q3 published while it was away."""
	port = free_port()
	conf = os.path.join(str(d), "mosquitto.conf")
	with open(conf, "w") as f:
		f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n" % port)
		f.write("persistence_location %s/\n" % d)
		if os.geteuid() == 0:
			f.write("user root\n")
	log = open(os.path.join(str(d), "mosquitto.log"), "wb")
	p = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
	try:
		def up():
			assert p.poll() is None, "mosquitto exited"
			try:
				socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
				return True
			except OSError:
				return False
		wait_until(up, 10, what="mosquitto to listen")
		mosquitto_pub(port, "-r", "-q", "1", "-t", "imp/r1", "-m", "one")
		mosquitto_pub(port, "-r", "-q", "0", "-t", "imp/r2", "-m", "two")
		sub = PahoClient(port, client_id="impsub", version=4, clean=False)
		sub.subscribe("imp/q", qos=1)
		sub.disconnect()
		for i in (1, 2, 3):
			mosquitto_pub(port, "-q", "1", "-t", "imp/q", "-m", "q%d" % i)
	finally:
		p.send_signal(signal.SIGTERM)
		p.wait(10)
		log.close()
	path = os.path.join(str(d), "mosquitto.db")
	assert os.path.exists(path), "mosquitto wrote no database"
	return path


def test_first_start_imports_retained_and_queued_session(broker, tmp_path):
	db = make_mosquitto_db(tmp_path)
	before = sha256(db)
	b = broker("persistence true", "persistence_location %s" % tmp_path)
	b.wait_log(r"imported from \S*mosquitto\.db \(Mosquitto format version 6\): 2 retained "
		r"messages, 1 sessions, 1 subscriptions, 3 queued messages")

	# The persistent session: present, and its three QoS 1 messages arrive in order.
	sub = PahoClient(b.port, client_id="impsub", version=4, clean=False)
	try:
		assert sub.connack["flags"]["session present"] == 1
		got = sub.get_n(3, timeout=5)
		assert [m.payload for m in got] == [b"q1", b"q2", b"q3"]
		assert all(m.qos == 1 and m.topic == "imp/q" for m in got)
		# The subscription came over too: a new message reaches it.
		mosquitto_pub(b.port, "-q", "1", "-t", "imp/q", "-m", "after")
		assert sub.get(timeout=5).payload == b"after"
	finally:
		sub.disconnect()

	# Retained messages, to a new subscriber.
	c = PahoClient(b.port, version=5)
	try:
		c.subscribe("imp/#", qos=1)
		got = {m.topic: (m.payload, m.retain) for m in c.get_n(2, timeout=5)}
		assert got == {"imp/r1": (b"one", 1), "imp/r2": (b"two", 1)}
	finally:
		c.disconnect()

	assert sha256(db) == before, "mosquitto.db was changed"
	assert os.path.isdir(str(tmp_path / "mosquitto.db.d"))

	# The import happens once: the next start is a normal replay of Viesti's own store.
	assert b.stop() is None
	b.start()
	b.wait_log(r"records replayed")
	assert b.log_text().count("imported from") == 1
	c = PahoClient(b.port, version=4)
	try:
		c.subscribe("imp/r1", qos=1)
		assert c.get(timeout=5).payload == b"one"
	finally:
		c.disconnect()
	assert sha256(db) == before


def test_truncated_database_imports_what_is_valid_and_starts(broker, tmp_path):
	src = tmp_path / "made"
	src.mkdir()
	db = make_mosquitto_db(src)
	data = open(db, "rb").read()
	# Cut inside the last chunk (the retained entries are last): everything else is whole.
	cut = tmp_path / "mosquitto.db"
	cut.write_bytes(data[:-3])
	before = sha256(str(cut))
	b = broker("persistence true", "persistence_location %s" % tmp_path)
	b.wait_log(r"mosquitto\.db is damaged at byte \d+ of %d \(.*\): everything before it was "
		r"imported, the remaining \d+ bytes were skipped" % (len(data) - 3))
	b.wait_log(r"imported from \S*mosquitto\.db .*1 retained messages, 1 sessions")
	sub = PahoClient(b.port, client_id="impsub", version=4, clean=False)
	try:
		assert sub.connack["flags"]["session present"] == 1
		assert [m.payload for m in sub.get_n(3, timeout=5)] == [b"q1", b"q2", b"q3"]
	finally:
		sub.disconnect()
	assert sha256(str(cut)) == before


def test_garbage_file_is_reported_and_the_broker_starts_empty(broker, tmp_path):
	(tmp_path / "mosquitto.db").write_bytes(b"this is not a mosquitto database\n" * 10)
	b = broker("persistence true", "persistence_location %s" % tmp_path)
	b.wait_log(r"mosquitto\.db not imported: not a Mosquitto database")
	c = PahoClient(b.port, version=4)
	c.disconnect()


def test_import_by_hand_into_the_configured_store(broker, tmp_path):
	src = tmp_path / "made"
	src.mkdir()
	db = make_mosquitto_db(src)
	before = sha256(db)
	store = tmp_path / "store"
	store.mkdir()
	b = broker("persistence true", "persistence_location %s" % store, start=False)
	r = subprocess.run([TARGET_BIN, "broker", "-c", b.conf_path, "--import-mosquitto-db", db],
		capture_output=True, timeout=30)
	out = r.stdout.decode()
	assert r.returncode == 0, (out, r.stderr)
	assert "imported %s (Mosquitto format version 6) into %s/mosquitto.db.d: 2 retained " \
		"messages, 1 sessions, 1 subscriptions, 3 queued messages" % (db, store) in out
	assert sha256(db) == before
	b.start()
	sub = PahoClient(b.port, client_id="impsub", version=4, clean=False)
	try:
		assert sub.connack["flags"]["session present"] == 1
		assert [m.payload for m in sub.get_n(3, timeout=5)] == [b"q1", b"q2", b"q3"]
	finally:
		sub.disconnect()
	# The store holds data now: the broker did not import anything by itself.
	assert "imported from" not in b.log_text()

	# A missing file: a clear message and a failure status.
	r = subprocess.run([TARGET_BIN, "broker", "-c", b.conf_path, "--import-mosquitto-db",
		str(tmp_path / "nope.db")], capture_output=True, timeout=30)
	assert r.returncode != 0
	assert b"cannot read" in r.stdout + r.stderr
