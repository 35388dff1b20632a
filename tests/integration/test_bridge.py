"""Bridges in Mosquitto's syntax (issue 18): a Viesti broker with a `connection` section, and
as the remote Debian's Mosquitto (started here on a free port with its own configuration file,
stopped after) or a second Viesti.

What must hold: `out` topics reach the remote and `in` topics come back, with local and remote
prefixes mapped as mosquitto.conf(5) says; a `both` bridge never sends a message back where it
came from (3.1.1 with try_private, 5.0 with No Local), to Mosquitto and to Viesti; QoS 1
messages published while the remote is away wait in the bridge's local session and all arrive
in order once it is back, even across a restart of Viesti with persistence on; TLS with a CA
file and with a client certificate; a remote that refuses the password leaves the state
notification at "0" and the log names the bridge.
"""

import os
import subprocess

import pytest

import conftest
from conftest import free_port, wait_until
from helpers import uid

MOSQUITTO = "/usr/sbin/mosquitto"

pytestmark = [
	pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no mosquitto"),
	pytest.mark.skipif(conftest.TARGET == "mosquitto", reason="Viesti's bridges (log lines, $SYS)"),
]


class Mosquitto(conftest.Broker):
	"""Debian's mosquitto as the remote of a bridge."""

	def write_conf(self):
		with open(self.conf_path, "w") as f:
			if os.geteuid() == 0:
				f.write("user root\n")
			f.write("log_dest stderr\nlog_type all\n")
			if not any(line.startswith("listener") for line in self.lines):
				f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % self.port)
			for line in self.lines:
				f.write(line.rstrip("\n") + "\n")

	def command(self):
		return [MOSQUITTO, "-c", self.conf_path]

	def start(self, timeout=10.0):
		if getattr(self, "tls", False):
			# A TLS port: wait for the log line instead of a plain TCP probe's handshake.
			super_ready = self._start_proc()
			wait_until(lambda: "Opening ipv4 listen socket on port %d" % self.port in
				self.log_text(), timeout, what="mosquitto to listen")
			return super_ready
		return super().start(timeout)

	def _start_proc(self):
		self.logf = open(self.log_path, "ab")
		self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=subprocess.STDOUT,
			stdin=subprocess.DEVNULL, cwd=str(self.dir))
		self.stopped_on_purpose = False
		return self


@pytest.fixture
def mosquitto(tmp_path):
	"""Factory: mosquitto(*lines, port=None, tls=False) -> a started Mosquitto."""
	made = []

	def make(*lines, port=None, tls=False):
		m = Mosquitto(tmp_path, lines, "mosquitto%d" % len(made))
		if port:
			m.port = port
			m.write_conf()
		m.tls = tls
		made.append(m)
		return m.start()

	yield make
	for m in made:
		m.stop()


def bridge(port, *topics, name="b1", remote_id=None, version="mqttv311", extra=()):
	"""The lines of a `connection` section to 127.0.0.1:port."""
	lines = ["connection %s" % name, "address 127.0.0.1:%d" % port,
		"remote_clientid %s" % (remote_id or uid("site")),
		"bridge_protocol_version %s" % version, "restart_timeout 1"]
	lines += ["topic %s" % t for t in topics]
	return lines + list(extra)


def state_topic(lines):
	rid = [x.split()[1] for x in lines if x.startswith("remote_clientid")][0]
	return "$SYS/broker/connection/%s/state" % rid


def wait_state(clients, port, topic, want, timeout=10.0):
	"""Waits until the retained notification on topic says want ("1" or "0")."""
	def now():
		c = clients.paho(port)
		c.subscribe(topic, 1)
		try:
			return c.get(1.0).payload.decode() == want
		except AssertionError:
			return False
		finally:
			c.close()
	wait_until(now, timeout, interval=0.1, what="%s to be %s" % (topic, want))


def test_out_and_in_with_prefixes_to_mosquitto(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "s/# out 1 site/ centre/", "cmd/# in 1 local/ remote/",
		'"" out 1 local/full remote/whole')
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	far = clients.paho(remote.port)
	far.subscribe("centre/#", 1)
	far.subscribe("remote/whole", 1)
	near = clients.paho(local.port)
	near.subscribe("local/cmd/#", 1)
	near.publish("site/s/x", b"up", qos=1)
	m = far.get(5)
	assert (m.topic, m.payload) == ("centre/s/x", b"up")
	near.publish("local/full", b"whole", qos=1)  # empty pattern: the prefixes are the topics
	m = far.get(5)
	assert (m.topic, m.payload) == ("remote/whole", b"whole")
	near.publish("elsewhere/x", b"no", qos=1)  # not bridged
	far.publish("remote/cmd/a", b"down", qos=1)
	m = near.get(5)
	assert (m.topic, m.payload) == ("local/cmd/a", b"down")
	far.no_message(0.5)
	near.no_message(0.3)
	local.wait_log(r"bridge b1: connected to 127\.0\.0\.1:%d" % remote.port)


def both_no_loop(clients, local, remote, lines):
	wait_state(clients, local.port, state_topic(lines), "1")
	near = clients.paho(local.port)
	near.subscribe("loop/#", 1)
	far = clients.paho(remote.port)
	far.subscribe("loop/#", 1)
	# The remote side's subscription reaches the bridge only once the bridge subscribed there:
	# wait until a message from the remote comes through.
	wait_until(lambda: far.publish("loop/probe", b"p", qos=1) and _drain_one(near), 10,
		interval=0.2, what="the bridge's remote subscription")
	while True:  # what the probes left behind
		try:
			far.get(0.3)
		except AssertionError:
			break
	while True:
		try:
			near.get(0.3)
		except AssertionError:
			break
	near.publish("loop/a", b"from-local", qos=1)
	far.publish("loop/b", b"from-remote", qos=1)
	got_near = sorted((m.topic, m.payload) for m in near.get_n(2, 5))
	got_far = sorted((m.topic, m.payload) for m in far.get_n(2, 5))
	want = [("loop/a", b"from-local"), ("loop/b", b"from-remote")]
	assert got_near == want
	assert got_far == want
	near.no_message(1.0)  # nothing came back a second time
	far.no_message(0.2)


def _drain_one(c):
	try:
		c.get(0.3)
		return True
	except AssertionError:
		return False


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_both_without_loops_viesti_to_mosquitto(broker, mosquitto, clients, version):
	remote = mosquitto()
	lines = bridge(remote.port, "loop/# both 1", version=version)
	both_no_loop(clients, broker(*lines), remote, lines)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_both_without_loops_viesti_to_viesti(broker, clients, version):
	remote = broker()
	lines = bridge(remote.port, "loop/# both 1", version=version)
	both_no_loop(clients, broker(*lines), remote, lines)


def away_and_back(broker, mosquitto, clients, tmp_path, restart_local):
	"""1,000 QoS 1 messages published while the remote is away arrive in order once it is
	back. The remote keeps its subscriber's session across its own restart (persistence)."""
	rport = free_port()
	for d in ("remote", "local"):
		(tmp_path / d).mkdir()
	rlines = ["listener %d 127.0.0.1" % rport, "allow_anonymous true", "persistence true",
		"persistence_location %s/" % (tmp_path / "remote"), "max_queued_messages 5000",
		"max_inflight_messages 100"]
	remote = mosquitto(*rlines, port=rport)
	sub_id = uid("far")
	far = clients.paho(remote.port, client_id=sub_id, clean=False)
	far.subscribe("centre/#", 1)
	far.close()
	local_extra = ["max_queued_messages 5000"]
	if restart_local:
		local_extra += ["persistence true", "persistence_location %s" % (tmp_path / "local")]
	lines = bridge(remote.port, "data/# out 1 \"\" centre/") + local_extra
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	assert remote.stop() is None
	wait_state(clients, local.port, state_topic(lines), "0")
	near = clients.paho(local.port)
	for i in range(1000):
		near.c.publish("data/x", b"%d" % i, qos=1)
	wait_until(lambda: len(near.c._out_messages) == 0, 15, what="local PUBACKs")
	near.close()
	if restart_local:
		local.restart()
	remote.start()
	far = clients.paho(remote.port, client_id=sub_id, clean=False)
	got = [int(m.payload) for m in far.get_n(1000, 15)]
	assert got == list(range(1000))
	far.no_message(0.5)


def test_remote_away_1000_qos1_in_order(broker, mosquitto, clients, tmp_path):
	away_and_back(broker, mosquitto, clients, tmp_path, restart_local=False)


def test_remote_away_1000_qos1_across_a_viesti_restart(broker, mosquitto, clients, tmp_path):
	away_and_back(broker, mosquitto, clients, tmp_path, restart_local=True)


def tls_remote(mosquitto, pki, *more):
	port = free_port()
	cert, key = pki["server"]
	return mosquitto("listener %d 127.0.0.1" % port, "allow_anonymous true",
		"cafile %s" % pki["ca"], "certfile %s" % cert, "keyfile %s" % key, *more, port=port,
		tls=True)


def test_tls_with_a_ca_file(broker, mosquitto, clients, pki):
	remote = tls_remote(mosquitto, pki)
	lines = bridge(remote.port, "t/# both 1", extra=["bridge_cafile %s" % pki["ca"]])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	remote.wait_log(r"New (client|bridge) connected .* as %s" % state_topic(lines).split("/")[3])


def test_tls_with_a_client_certificate(broker, mosquitto, clients, pki):
	remote = tls_remote(mosquitto, pki, "require_certificate true")
	cert, key = pki["client"]
	lines = bridge(remote.port, "t/# both 1", extra=["bridge_cafile %s" % pki["ca"],
		"bridge_certfile %s" % cert, "bridge_keyfile %s" % key])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	# Without the certificate the same remote refuses the handshake.
	lines2 = bridge(remote.port, "t/# both 1", name="nocert",
		extra=["bridge_cafile %s" % pki["ca"]])
	other = broker(*lines2)
	other.wait_log(r"bridge nocert: .*(fail|error|alert)", timeout=10)
	wait_state(clients, other.port, state_topic(lines2), "0")


def test_remote_refuses_the_password(broker, mosquitto, clients, tmp_path):
	pw = tmp_path / "pw"
	subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "site", "right"], check=True,
		capture_output=True)
	port = free_port()
	remote = mosquitto("listener %d 127.0.0.1" % port, "allow_anonymous false",
		"password_file %s" % pw, port=port)
	lines = bridge(remote.port, "t/# out 1", extra=["remote_username site",
		"remote_password wrong"])
	local = broker(*lines)
	local.wait_log(r"bridge b1: 127\.0\.0\.1:%d refused the connection: not authorized"
		% remote.port, timeout=10)
	# It keeps trying, and the state stays "0".
	local.wait_log(r"(?s)refused the connection.*refused the connection", timeout=10)
	wait_state(clients, local.port, state_topic(lines), "0")


def test_address_list_goes_on_to_the_next(broker, mosquitto, clients):
	remote = mosquitto()
	dead = free_port()
	lines = bridge(remote.port, "t/# out 1")
	lines[1] = "address 127.0.0.1:%d 127.0.0.1:%d" % (dead, remote.port)
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	local.wait_log(r"bridge b1: connecting to 127\.0\.0\.1:%d" % dead)
	local.wait_log(r"bridge b1: connected to 127\.0\.0\.1:%d" % remote.port)


def test_lazy_start_waits_for_threshold_messages(broker, mosquitto, clients):
	remote = mosquitto()
	far = clients.paho(remote.port)
	far.subscribe("d/#", 1)
	lines = bridge(remote.port, "d/# out 1", extra=["start_type lazy", "threshold 3"])
	local = broker(*lines)
	near = clients.paho(local.port)
	near.publish("d/1", b"1", qos=1)
	near.publish("d/2", b"2", qos=1)
	far.no_message(1.0)
	assert "connecting to" not in local.log_text()
	near.publish("d/3", b"3", qos=1)
	assert [m.payload for m in far.get_n(3, 5)] == [b"1", b"2", b"3"]
	wait_state(clients, local.port, state_topic(lines), "1")


def test_tls_psk(broker, mosquitto, clients, pki):
	from pki import PSK_IDENTITY, PSK_KEY
	port = free_port()
	remote = mosquitto("listener %d 127.0.0.1" % port, "allow_anonymous true",
		"psk_hint hint", "psk_file %s" % pki["psk_file"], port=port, tls=True)
	lines = bridge(remote.port, "t/# out 1", extra=["bridge_identity %s" % PSK_IDENTITY,
		"bridge_psk %s" % PSK_KEY])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")


def test_local_credentials_are_checked_at_start_up(tmp_path):
	pw = tmp_path / "local.pw"
	subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "bridge", "secret"], check=True,
		capture_output=True)
	conf = tmp_path / "local.conf"
	lines = ["listener %d 127.0.0.1" % free_port(), "password_file %s" % pw]
	lines += bridge(free_port(), "t/# out 1", extra=["local_username bridge",
		"local_password nope"])
	conf.write_text("\n".join(lines) + "\n")
	r = subprocess.run([conftest.TARGET_BIN, "broker", "-c", str(conf)], capture_output=True,
		timeout=10, cwd=str(tmp_path))
	assert r.returncode != 0
	assert b"bridge b1: password_file refuses local_username 'bridge'" in r.stdout + r.stderr
	r = subprocess.run([conftest.TARGET_BIN, "broker", "-c", str(conf), "--test-config"],
		capture_output=True, timeout=10, cwd=str(tmp_path))  # --test-config says so too
	assert r.returncode != 0
	assert b"bridge b1: password_file refuses local_username 'bridge'" in r.stderr


def test_notifications_at_the_remote_with_a_will(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "t/# out 1")
	topic = state_topic(lines)
	local = broker(*lines)
	wait_state(clients, remote.port, topic, "1")
	watcher = clients.paho(remote.port)
	watcher.subscribe(topic, 1)
	assert watcher.get(3).payload == b"1"
	assert local.stop() is None  # no DISCONNECT: the remote publishes the will
	m = watcher.get(10)
	assert (m.payload, m.retain) == (b"0", False)
	wait_state(clients, remote.port, topic, "0")


def test_local_retained_messages_reach_the_remote_when_it_comes(broker, mosquitto, clients):
	port = free_port()
	lines = bridge(port, "r/# out 1")
	local = broker(*lines)
	clients.paho(local.port).publish("r/x", b"kept", qos=1, retain=True)
	remote = mosquitto("listener %d 127.0.0.1" % port, "allow_anonymous true", port=port)
	wait_state(clients, local.port, state_topic(lines), "1")

	def retained_there():
		c = clients.paho(remote.port)
		c.subscribe("r/#", 1)
		try:
			m = c.get(0.5)
			return (m.topic, m.payload, m.retain) == ("r/x", b"kept", True)
		except AssertionError:
			return False
		finally:
			c.close()
	wait_until(retained_there, 10, interval=0.2, what="the retained message at the remote")


def test_outgoing_retain_false_clears_the_flag(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "r/# out 1", extra=["bridge_outgoing_retain false"])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	far = clients.paho(remote.port)
	far.subscribe("r/#", 1)
	clients.paho(local.port).publish("r/y", b"live", qos=1, retain=True)
	m = far.get(5)
	assert (m.topic, m.payload) == ("r/y", b"live")
	late = clients.paho(remote.port)
	late.subscribe("r/#", 1)
	late.no_message(0.5)  # not retained at the remote


def test_mqtt5_properties_cross_the_bridge(broker, mosquitto, clients):
	from paho.mqtt.packettypes import PacketTypes
	from paho.mqtt.properties import Properties
	remote = mosquitto()
	lines = bridge(remote.port, "o/# out 1", "i/# in 1", version="mqttv50")
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	far = clients.paho(remote.port, version=5)
	far.subscribe("o/#", 1)
	near = clients.paho(local.port, version=5)
	near.subscribe("i/#", 1)
	wait_until(lambda: far.publish("i/probe", b"p", qos=1) and _drain_one(near), 10,
		interval=0.2, what="the bridge's remote subscription")
	props = Properties(PacketTypes.PUBLISH)
	props.ContentType = "text/plain"
	props.UserProperty = [("k", "v")]
	props.MessageExpiryInterval = 600
	near.publish("o/x", b"out", qos=1, properties=props)
	m = far.get(5)
	assert m.properties.ContentType == "text/plain"
	assert m.properties.UserProperty == [("k", "v")]
	assert 0 < m.properties.MessageExpiryInterval <= 600
	far.publish("i/y", b"in", qos=1, properties=props)
	m = near.get(5)
	assert (m.topic, m.properties.ContentType) == ("i/y", "text/plain")
	assert m.properties.UserProperty == [("k", "v")]


def test_sys_counters(broker, mosquitto, clients):
	from http_util import http_lines, scrape, value as metric
	remote = mosquitto()
	lines = bridge(remote.port, "c/# out 1", extra=["topic d/# in 1"])
	hport = free_port()
	local = broker("sys_interval 1", *http_lines(hport), *lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	near = clients.paho(local.port)
	for i in range(3):
		near.publish("c/%d" % i, b"x", qos=1)
	base = "$SYS/broker/viesti/bridge/b1/"

	def value(name):
		c = clients.paho(local.port)
		c.subscribe(base + name, 0)
		try:
			return c.get(1.0).payload.decode()
		except AssertionError:
			return None
		finally:
			c.close()
	wait_until(lambda: value("state") == "connected", 5, what="bridge state connected")
	wait_until(lambda: value("messages/sent") == "3", 5, what="3 messages sent")
	assert value("queued") == "0"
	assert value("connects") == "1"
	samples, families = scrape(hport)  # and GET /metrics
	assert families["viesti_bridge_up"].type == "gauge"
	assert metric(samples, "viesti_bridge_up", bridge="b1") == 1
	assert metric(samples, "viesti_bridge_messages_sent_total", bridge="b1") == 3
	assert metric(samples, "viesti_bridge_queued_messages", bridge="b1") == 0


def test_lazy_bridge_disconnects_when_idle(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "d/# out 1", extra=["start_type lazy", "threshold 1",
		"idle_timeout 1"])
	local = broker(*lines)
	clients.paho(local.port).publish("d/1", b"1", qos=1)
	local.wait_log(r"bridge b1: connected to", timeout=5)
	local.wait_log(r"bridge b1: idle for 1 s, disconnecting \(lazy\)", timeout=5)
	wait_state(clients, local.port, state_topic(lines), "0")
	clients.paho(local.port).publish("d/2", b"2", qos=1)  # and back on the next message
	local.wait_log(r"(?s)idle for 1 s.*connected to", timeout=5)


def test_start_type_once_does_not_reconnect(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "d/# out 1", extra=["start_type once"])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	assert remote.stop() is None
	local.wait_log(r"bridge b1: stopped \(start_type once\)", timeout=5)
	remote.start()
	wait_state(clients, local.port, state_topic(lines), "0")
	clients.paho(remote.port).no_message(1.5)
	assert local.log_text().count("bridge b1: connected to") == 1


def test_a_client_cannot_take_the_bridges_local_session(broker, mosquitto, clients):
	remote = mosquitto()
	lines = bridge(remote.port, "t/# out 1", extra=["local_clientid local.mine"])
	local = broker(*lines)
	wait_state(clients, local.port, state_topic(lines), "1")
	other = clients.paho(local.port)  # an unrelated client stays connected
	c = clients.paho(local.port, client_id="local.mine", connect=False)
	c.connected.clear()
	c.c.connect("127.0.0.1", local.port)
	c.c.loop_start()
	assert c.connected.wait(5)
	rc = c.connack["rc"]
	assert (rc.value if hasattr(rc, "value") else rc) != 0
	local.wait_log(r"client id local\.mine is a bridge's local_clientid")
	far = clients.paho(remote.port)  # the bridge still works
	far.subscribe("t/#", 1)
	other.publish("t/1", b"still", qos=1)
	assert far.get(5).payload == b"still"


def test_test_config_checks_bridge_sections(tmp_path):
	conf = tmp_path / "bad.conf"
	conf.write_text("listener %d 127.0.0.1\n"
		"connection b\n"
		"address h:0\n"
		"topic a/#/b out 1\n"
		"connection c\n"
		"bridge_cafile /nonexistent/ca.pem\n"
		"keepalive_interval 1\n" % free_port())
	r = subprocess.run([conftest.TARGET_BIN, "broker", "-c", str(conf), "--test-config"],
		capture_output=True, text=True, timeout=30)
	assert r.returncode != 0, r
	for want in ["bad.conf:3: bad address 'h:0' for 'address'",
			"bad.conf:4: bad pattern 'a/#/b' for 'topic'",
			"bad.conf:7: bad value '1' for 'keepalive_interval'",
			"bridge c: cannot read bridge_cafile '/nonexistent/ca.pem'"]:
		assert want in r.stderr, (want, r.stderr)
	assert "configuration OK" not in r.stdout
