"""Start-up readiness: the broker accepts connections only once it can serve them.

A supervisor or a client that connects while the broker restores its store must not be accepted
and then refused (the port probe once listened, so a connection could land on it and be reset):
before the workers listen, connections are refused; from the first accepted one on, every one
is accepted and served.
"""

import errno
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from helpers import uid
from mqtt_raw import CONNACK, packet, utf8

pytestmark = pytest.mark.viesti_only


def test_no_connection_refused_after_the_first_is_accepted(broker, clients):
	d = tempfile.mkdtemp(prefix="viesti-su-")
	try:
		b = broker("persistence true", "persistence_location %s/" % d, "persistence_fsync never")
		c = clients.raw(b.port, 4)
		c.connect(uid("fill"))
		# 60,000 retained messages: a restore that takes a while (longer under ASan).
		batch = b"".join(c.publish_packet("su/%d" % i, b"x" * 64, retain=True)
			for i in range(60000))
		c.send(batch)
		c.ping(timeout=30)  # handled in order: every PUBLISH is in
		c.disconnect()
		assert b.stop() is None
		# Start it again and try a connection every millisecond from the first moment.
		env = dict(os.environ)
		env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
		b.logf = open(b.log_path, "ab")
		proc = subprocess.Popen(b.command(), stdout=b.logf, stderr=subprocess.STDOUT,
			stdin=subprocess.DEVNULL, cwd=str(b.dir), env=env)
		b.proc = proc  # stopped (and its log checked) by the fixture
		b.stopped_on_purpose = False
		accepted, refused_after = [], []
		deadline = time.monotonic() + 60
		while len(accepted) < 50 and time.monotonic() < deadline:
			assert proc.poll() is None, b.log_text()[-2000:]
			try:
				s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
				accepted.append(s)
			except OSError as e:
				if accepted:
					refused_after.append(e)
				elif e.errno != errno.ECONNREFUSED:
					raise
			time.sleep(0.001)
		assert accepted, "never accepted:\n" + b.log_text()[-2000:]
		assert not refused_after, "%d refused after the first accept: %r" % (
			len(refused_after), refused_after[:3])
		# Every accepted connection is served.
		for i, s in enumerate(accepted):
			body = utf8("MQTT") + bytes([4, 2, 0, 30]) + utf8(uid("su%d" % i))
			s.sendall(packet(1, 0, body))
		for s in accepted:
			s.settimeout(30)
			assert s.recv(4)[:1] == bytes([CONNACK << 4])
			s.close()
	finally:
		shutil.rmtree(d, ignore_errors=True)


def test_a_listener_that_cannot_bind_fails_start_up_cleanly(tmp_path):
	"""The first of two listeners finds its port taken: start-up fails naming it, and undoes
	only what it made (it used to close descriptor 0 and read a NULL listener for the second,
	which UBSan reported)."""
	from conftest import SANITIZER_PATTERNS, TARGET_BIN, free_port
	held = socket.socket()
	held.bind(("127.0.0.1", 0))
	held.listen(1)
	try:
		port = held.getsockname()[1]
		conf = tmp_path / "two.conf"
		conf.write_text("listener %d 127.0.0.1\nlistener %d 127.0.0.1\nallow_anonymous true\n"
			% (port, free_port()))
		p = subprocess.run([TARGET_BIN, "broker", "-c", str(conf)], capture_output=True,
			text=True, timeout=30, stdin=subprocess.DEVNULL)
	finally:
		held.close()
	out = p.stdout + p.stderr
	assert p.returncode != 0, out
	assert str(port) in out, out
	for pat in SANITIZER_PATTERNS:
		assert pat not in out, out
