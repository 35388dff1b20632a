"""Reload and lifecycle (issue 17, item 6).

SIGHUP adds and removes listeners: a new `listener` line starts listening without a restart, a
removed one stops accepting and disconnects its clients (5.0: DISCONNECT 0x98 Administrative
action), and the clients of the listeners that stay keep their connections. Directives that can
change without a restart take their new value. SIGTERM drains: every 5.0 client gets DISCONNECT
0x8B (Server shutting down) after what was queued for it, every other client a closed socket,
the broker exits 0 and stops accepting. pid_file is written and removed; `-d` detaches.
"""

import os
import signal
import socket
import subprocess

import pytest

from conftest import TARGET_BIN, free_port, wait_until
from mqtt_raw import DISCONNECT, PUBACK, PUBLISH, Closed, RawClient

pytestmark = pytest.mark.viesti_only

ADMIN_ACTION = 0x98
SHUTTING_DOWN = 0x8B


def reload(b):
	k = b.log_text().count("reload done")
	b.proc.send_signal(signal.SIGHUP)
	wait_until(lambda: b.log_text().count("reload done") > k, 5,
		what="the reload; log:\n%s" % b.log_text()[-1500:])


def refused(port):
	try:
		socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
		return False
	except OSError:
		return True


def test_sighup_adds_a_listener_while_clients_stay(broker):
	b = broker("threads 2")
	sub = RawClient(b.port, version=5)
	sub.connect("stays")
	sub.subscribe([("t/#", 1)])
	port2 = free_port()
	assert refused(port2)
	b.lines.append("listener %d 127.0.0.1" % port2)
	b.write_conf()
	reload(b)
	b.wait_log(r"reload: listening on 127\.0\.0\.1:%d" % port2)
	# Every worker opens its socket: many connections all get served.
	for i in range(8):
		with RawClient(port2) as pub:
			pub.connect("new%d" % i)
			pub.publish("t/%d" % i, b"via the new listener", qos=1)
	got = sub.publishes(8, timeout=5)
	assert {p.topic for p in got} == {"t/%d" % i for i in range(8)}
	sub.ping()  # never disconnected
	assert not any("client stays" in ln and "disconnected" in ln
		for ln in b.log_text().splitlines())
	sub.close()


def test_sighup_removes_a_listener_and_closes_its_clients(broker):
	port2 = free_port()
	b = broker("threads 2", "listener %d 127.0.0.1" % port2)
	keep = RawClient(b.port, version=5)
	keep.connect("on-kept")
	keep.subscribe([("k", 1)])
	gone5 = RawClient(port2, version=5)
	gone5.connect("on-removed-5")
	gone3 = RawClient(port2, version=4)
	gone3.connect("on-removed-3")
	b.lines.remove("listener %d 127.0.0.1" % port2)
	b.write_conf()
	reload(b)
	d = gone5.expect(DISCONNECT, timeout=5)
	assert d.rc == ADMIN_ACTION, d  # [MQTT-3.14.2-1] the server says why
	with pytest.raises(Closed):
		gone3.recv(timeout=5)
	wait_until(lambda: refused(port2), 5, what="port %d to refuse connections" % port2)
	b.wait_log(r"reload: listener 127\.0\.0\.1:%d closed, its clients are gone" % port2)
	# The kept listener's client is still connected and served.
	with RawClient(b.port) as pub:
		pub.connect("pub")
		pub.publish("k", b"still here", qos=1)
	assert keep.expect(PUBLISH, timeout=5).payload == b"still here"
	# The same port can be added back by a later reload.
	b.lines.append("listener %d 127.0.0.1" % port2)
	b.write_conf()
	reload(b)
	with RawClient(port2, version=5) as again:
		again.connect("back")
		again.ping()
	keep.ping()
	for c in (keep, gone5, gone3):
		c.close()


def test_sighup_adds_tls_and_websocket_listeners(broker, pki):
	"""New listeners get what their lines say: TLS from certfile/keyfile, WebSocket framing."""
	b = broker()
	tls_port, ws_port = free_port(), free_port()
	b.lines += ["listener %d 127.0.0.1" % tls_port, "certfile %s" % pki["server"][0],
		"keyfile %s" % pki["server"][1],
		"listener %d 127.0.0.1" % ws_port, "protocol websockets"]
	b.write_conf()
	reload(b)
	b.wait_log(r"reload: listening on 127\.0\.0\.1:%d \(TLS\)" % tls_port)
	b.wait_log(r"reload: listening on 127\.0\.0\.1:%d \(WebSocket\)" % ws_port)
	r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_port), "--cafile",
		pki["ca"], "-t", "t", "-m", "over tls"], capture_output=True, timeout=10)
	assert r.returncode == 0, r
	r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_port), "-t", "t",
		"-m", "plain"], capture_output=True, timeout=10)
	assert r.returncode != 0  # a TLS listener: plain MQTT is refused
	with socket.create_connection(("127.0.0.1", ws_port), timeout=5) as s:
		s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
		assert s.recv(4096).startswith(b"HTTP/1.1 101")


def test_a_listener_that_cannot_open_fails_the_whole_reload(broker, tmp_path):
	b = broker("max_qos 2")
	good, bad, taken = free_port(), free_port(), free_port()
	blocker = socket.socket()
	blocker.bind(("127.0.0.1", taken))
	blocker.listen(1)
	try:
		for lines, why in ((["listener %d 127.0.0.1" % bad, "certfile %s/none.crt" % tmp_path,
				"keyfile %s/none.key" % tmp_path], "none.crt"),
				(["listener %d 127.0.0.1" % taken], "%d" % taken)):
			b.lines = ["max_qos 1", "listener %d 127.0.0.1" % good] + lines
			b.write_conf()
			k = b.log_text().count("reload failed")
			b.proc.send_signal(signal.SIGHUP)
			wait_until(lambda: b.log_text().count("reload failed") > k, 5, what="the failure")
			assert why in b.log_text().rsplit("reload failed", 1)[1].splitlines()[0]
			assert refused(good) and refused(bad)  # nothing opened: all or nothing
			with RawClient(b.port, version=5) as c:
				assert c.connect("old-settings").props.get(0x24) is None  # max_qos 2 stays
	finally:
		blocker.close()


def test_sighup_reloads_logging_and_limits(broker, tmp_path):
	b = broker("log_type error", "max_qos 2")
	c = RawClient(b.port, version=5)
	c.connect("quiet")
	c.subscribe([("a", 1)])
	assert "subscribed" not in b.log_text()
	b.lines = ["log_type all", "connection_messages false", "max_qos 0"]
	b.write_conf()
	reload(b)
	with RawClient(b.port, version=5) as c2:
		ack = c2.connect("after")
		assert ack.props.get(0x24) == 0, ack  # Maximum QoS 0 in CONNACK [MQTT-3.2.2-9]
		c2.subscribe([("b", 0)])
	b.wait_log(r"client after subscribed to 'b'")
	assert "client after connected" not in b.log_text()
	c.close()


def test_sigterm_drains(broker):
	# Several threads, so that subscribers sit on other threads than the publisher: what the
	# publisher's thread handed theirs before the stop must still go out.
	# An inflight window larger than the burst: past it, messages wait in the session for
	# PUBACKs a stopping broker no longer reads (and stay there, for a persistent session).
	b = broker("threads 4", "consolidate_threads false", "max_inflight_messages 64")
	subs5 = []
	for i in range(6):
		c = RawClient(b.port, version=5)
		c.connect("drain5-%d" % i)
		c.subscribe([("d", 1)])
		subs5.append(c)
	sub3 = RawClient(b.port, version=4)
	sub3.connect("drain3")
	pub = RawClient(b.port, version=5)
	pub.connect("pub")
	pub.publish("d", b"m-first", qos=1)  # PUBACK received: routed
	# More, and the stop right behind them: each one acknowledged must reach every subscriber
	# before its DISCONNECT.
	pids = {pub.publish("d", b"m%d" % i, qos=1, wait=False): b"m%d" % i for i in range(30)}
	b.proc.send_signal(signal.SIGTERM)
	# It stops accepting at once, while the clients it has are still being served.
	wait_until(lambda: refused(b.port) or not b.alive(), 5, what="the port to close")
	acked = [b"m-first"]
	while True:
		try:
			p = pub.recv(timeout=5)
		except Closed:
			break
		if p.type == PUBACK:
			acked.append(pids[p.pid])
	for c in subs5:
		got = []
		while True:
			p = c.recv(timeout=5)
			if p.type == DISCONNECT:
				break
			assert p.type == PUBLISH, p
			got.append(p.payload)
		assert p.rc == SHUTTING_DOWN, p  # [MQTT-3.14.2-1]
		missing = [m for m in acked if m not in got]
		assert not missing, "acknowledged, not delivered before the stop: %r" % missing
	with pytest.raises(Closed):
		sub3.recv(timeout=5)
	assert b.proc.wait(10) == 0
	b.stopped_on_purpose = True
	assert refused(b.port)
	assert "SIGTERM: shutting down" in b.log_text()
	for c in subs5 + [sub3, pub]:
		c.close()


def test_pid_file_written_and_removed(broker, tmp_path):
	pid_path = tmp_path / "viesti.pid"
	b = broker("pid_file %s" % pid_path)
	wait_until(lambda: pid_path.exists() and pid_path.read_text().endswith("\n"), 5,
		what="the pid file")
	assert int(pid_path.read_text()) == b.proc.pid
	# A second broker on the same port cannot start, and leaves the first one's pid file.
	r = subprocess.run([TARGET_BIN, "broker", "-c", b.conf_path], capture_output=True,
		timeout=20, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
	assert r.returncode == 1 and b"cannot start" in r.stdout + r.stderr, r
	assert int(pid_path.read_text()) == b.proc.pid
	assert b.stop() is None
	assert not pid_path.exists()


def test_daemon_detaches_and_stops_on_sigterm(tmp_path):
	port = free_port()
	pid_path = tmp_path / "d.pid"
	log_path = tmp_path / "d.log"
	conf = tmp_path / "d.conf"
	conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\n"
		"log_dest file %s\n" % (port, pid_path, log_path))
	env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
	r = subprocess.run([TARGET_BIN, "broker", "-d", "-c", str(conf)], timeout=20,
		capture_output=True, env=env, cwd=str(tmp_path))
	assert r.returncode == 0, r  # the parent returns once detached
	pid = None
	try:
		pid = wait_until(lambda: pid_path.exists() and pid_path.read_text().strip() and
			int(pid_path.read_text()), 10, what="the daemon's pid file")
		with open("/proc/%d/stat" % pid) as f:
			fields = f.read().rsplit(")", 1)[1].split()
		assert int(fields[1]) != os.getpid()  # not our child: its parent exited
		assert int(fields[3]) == pid  # its own session (setsid): no controlling terminal
		wait_until(lambda: not refused(port), 10, what="the daemon to listen")
		with RawClient(port, version=5) as c:
			c.connect("to-daemon")
			c.ping()
		os.kill(pid, signal.SIGTERM)
		wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
			open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z", 10,
			what="the daemon to exit")
		pid = None
		assert not pid_path.exists()
		assert "stopped" in log_path.read_text()
	finally:
		if pid:
			try:
				os.kill(pid, signal.SIGKILL)
			except ProcessLookupError:
				pass
