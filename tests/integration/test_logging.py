"""Logging as Mosquitto users expect it (issue 17, item 7).

log_dest topic publishes each line to $SYS/broker/log/<E|W|N|I|M/subscribe|M/unsubscribe|WS>
as Mosquitto 2.0 does (QoS 2, not retained, "SECONDS: message", never debug lines); log_type
filters every destination; log_format json writes one JSON object per line with the client id
when the line is about a client; connection_messages false silences connects and disconnects;
log_timestamp false drops the prefix; the log file is reopened on SIGHUP (logrotate: rename,
SIGHUP, new lines land in a new file at the configured path).
"""

import json
import os
import re
import signal

import pytest

from conftest import wait_until
from helpers import PahoClient, uid

pytestmark = pytest.mark.viesti_only


def _log_watcher(clients, port):
	w = clients.add(PahoClient(port, client_id=uid("logw"), version=5))
	w.subscribe("$SYS/broker/log/#", qos=2)
	return w


def _drain(w, pred, timeout=5.0):
	"""Messages from w until one satisfies pred; returns (that message, all seen)."""
	seen = []

	def got():
		try:
			m = w.get(timeout=0.2)
		except AssertionError:
			return None
		seen.append(m)
		return m if pred(m) else None
	m = wait_until(got, timeout, interval=0, what="a log message; seen %r" % (
		[(x.topic, x.payload) for x in seen],))
	return m, seen


def test_log_dest_topic_publishes_mosquittos_topics(broker, clients):
	b = broker("log_dest topic", "log_dest stderr", "log_type all")
	w = _log_watcher(clients, b.port)
	cid = uid("sub")
	c = clients.add(PahoClient(b.port, client_id=cid))
	c.subscribe("q/w")
	c.unsubscribe("q/w")
	m, seen = _drain(w, lambda m: m.topic == "$SYS/broker/log/M/unsubscribe")
	topics = {x.topic for x in seen}
	assert "$SYS/broker/log/M/subscribe" in topics
	assert "$SYS/broker/log/I" in topics  # "client X connected ..." (viesti's wording: info)
	sub = [x for x in seen if x.topic == "$SYS/broker/log/M/subscribe"
		and cid.encode() in x.payload]
	assert sub, seen
	# Mosquitto's payload: "SECONDS: message"; QoS 2, not retained.
	assert re.match(rb"^\d{10}: client %s subscribed to 'q/w' QoS 0$" % cid.encode(),
		sub[0].payload), sub[0].payload
	assert all(x.qos == 2 and not x.retain for x in seen)
	# log_type all includes debug, but debug lines never go to the topic (as Mosquitto).
	assert "$SYS/broker/log/D" not in topics
	assert "Received SUBSCRIBE" in b.log_text()  # the debug trace went to stderr


def test_log_dest_topic_follows_log_type_and_timestamp(broker, clients):
	b = broker("log_dest topic", "log_type subscribe", "log_timestamp false")
	w = _log_watcher(clients, b.port)
	c = clients.add(PahoClient(b.port, client_id=uid("c")))
	c.subscribe("a/b")
	m, seen = _drain(w, lambda m: b"a/b" in m.payload)
	assert m.topic == "$SYS/broker/log/M/subscribe"
	assert m.payload.startswith(b"client ")  # no timestamp prefix
	assert {x.topic for x in seen} == {"$SYS/broker/log/M/subscribe"}
	w.no_message(0.5)  # the connect (info) was not logged anywhere
	assert "connected" not in b.log_text()


def test_log_format_json(broker, clients):
	b = broker("log_format json", "log_type all")
	cid = uid('js"\\')  # quotes and backslashes must be escaped
	c = clients.add(PahoClient(b.port, client_id=cid))
	c.subscribe("x/y")
	c.disconnect()
	b.wait_log(r"disconnected")
	lines = [ln for ln in b.log_text().splitlines() if ln.strip()]
	objs = [json.loads(ln) for ln in lines]  # every line is one JSON object
	for o in objs:
		assert set(o) >= {"time", "level", "message"}, o
		assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["time"]), o
		assert o["level"] in ("error", "warning", "notice", "info", "debug", "subscribe",
			"unsubscribe", "websockets"), o
	mine = [o for o in objs if o.get("client_id") == cid]
	levels = {o["level"] for o in mine}
	assert {"info", "subscribe"} <= levels, mine
	assert any("connected from" in o["message"] for o in mine)
	assert any("disconnected" in o["message"] for o in mine)


def test_connection_messages_false(broker, clients):
	b = broker("connection_messages false", "log_type all")
	clients.add(PahoClient(b.port, client_id="quietclient")).disconnect()
	clients.add(PahoClient(b.port, client_id="marker")).subscribe("m/#")
	b.wait_log(r"Received SUBSCRIBE from marker")
	assert not re.search(r"quietclient.*(connected|disconnected)", b.log_text())


def test_log_file_reopened_on_sighup_after_rotation(broker, clients, tmp_path):
	path = tmp_path / "viesti.log"
	b = broker("log_dest file %s" % path, "log_type all")
	clients.add(PahoClient(b.port, client_id="before-rotate"))
	wait_until(lambda: path.exists() and "before-rotate" in path.read_text(), 5,
		what="the first line in the log file")
	rotated = tmp_path / "viesti.log.1"
	os.rename(path, rotated)  # what logrotate does (without copytruncate)
	b.proc.send_signal(signal.SIGHUP)
	wait_until(lambda: path.exists() and "reload done" in path.read_text(), 5,
		what="a new log file after SIGHUP")
	clients.add(PahoClient(b.port, client_id="after-rotate"))
	wait_until(lambda: "after-rotate" in path.read_text(), 5, what="the new line")
	old = rotated.read_text()
	assert "before-rotate" in old and "after-rotate" not in old
	assert "before-rotate" not in path.read_text()


def test_bad_log_lines_fail_start_up(broker):
	for line, want in (("log_dest carrier-pigeon", "expected stderr, stdout, syslog, topic"),
			("log_format xml", "expected viesti, mosquitto or json"),
			("log_type chatty", "expected error, warning, notice")):
		b = broker(line, start=False)
		with pytest.raises(AssertionError):
			b.start(timeout=5)
		assert want in b.log_text(), b.log_text()
		assert re.search(r"\.conf:3: ", b.log_text()), b.log_text()
