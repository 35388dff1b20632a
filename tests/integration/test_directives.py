"""Directives that were once read and ignored (issue 16): each one's effect, seen from outside.

user, mount_point, bind_interface, max_inflight_bytes, upgrade_outgoing_qos,
check_retain_source, log_timestamp_format, log_facility, clientid_prefixes (memory_limit:
test_limits.py; use_username_as_clientid: test_hardening.py).
"""

import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import TARGET_BIN, free_port, wait_until
from helpers import uid
from mqtt_raw import PUBLISH, RawClient

pytestmark = pytest.mark.viesti_only


def start_fails(tmp_path, *lines):
	"""Runs the broker on a config that must not start; returns its output."""
	conf = tmp_path / "bad.conf"
	conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n" % free_port() +
		"".join(l + "\n" for l in lines))
	env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
	r = subprocess.run([TARGET_BIN, "broker", "-c", str(conf)], capture_output=True, timeout=20,
		stdin=subprocess.DEVNULL, env=env)
	assert r.returncode != 0, "broker started: %r" % r.stderr
	return (r.stdout + r.stderr).decode("utf-8", "replace")


# --- clientid_prefixes -------------------------------------------------------------------------

def test_clientid_prefixes_refuses_others(broker, clients):
	b = broker("clientid_prefixes plant-")
	clients.raw(b.port, 4).connect("office-1", expect_rc=5)  # 3.1.1: not authorized
	clients.raw(b.port, 5).connect("office-2", expect_rc=0x87)
	ok = clients.raw(b.port, 4)
	ok.connect("plant-" + uid())
	ok.ping()


# --- user ----------------------------------------------------------------------------------------

def uids_of(pid):
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			if line.startswith(("Uid:", "Gid:")):
				yield line.split()[0], [int(x) for x in line.split()[1:]]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_drops_root(broker, clients):
	# A non-dumpable process (after setuid) cannot be inspected by LeakSanitizer at exit.
	b = broker("user nobody", env={"ASAN_OPTIONS": "detect_leaks=0"})
	b.wait_log(r"running as user nobody \(uid 65534, gid 65534\)")
	ids = dict(uids_of(b.proc.pid))
	assert ids["Uid:"] == [65534] * 4, ids  # real, effective, saved, filesystem
	assert ids["Gid:"] == [65534] * 4, ids
	s = clients.raw(b.port, 4)
	s.connect(uid())
	s.subscribe(("u/t", 1))
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("u/t", b"x", qos=1)
	assert s.expect(PUBLISH).payload == b"x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_unknown_stops_startup(tmp_path):
	out = start_fails(tmp_path, "user no_such_user_vs")
	assert "cannot drop privileges to user 'no_such_user_vs'" in out, out


def test_user_not_root_is_reported(broker, tmp_path):
	if os.geteuid() == 0:
		pytest.skip("run as root here: covered by test_user_drops_root")
	b = broker("user nobody")
	b.wait_log(r"user nobody: not started as root")


# --- bind_interface ------------------------------------------------------------------------------

def test_bind_interface_lo(broker, clients):
	b = broker("bind_interface lo")
	c = clients.raw(b.port, 4)
	c.connect(uid())
	c.ping()


def test_bind_interface_unknown_stops_startup(tmp_path):
	out = start_fails(tmp_path, "bind_interface nosuchif0")
	assert "bind_interface 'nosuchif0'" in out, out


# --- mount_point ---------------------------------------------------------------------------------

@pytest.fixture
def mounted(broker):
	"""A broker with a plain listener (b.port) and one with mount_point tenant/ (b.mport)."""
	mport = free_port()
	b = broker("listener %d 127.0.0.1" % mport, "mount_point tenant/", "sys_interval 1")
	b.mport = mport
	return b


def test_mount_point_publish_gets_prefix(mounted, clients):
	b = mounted
	plain = clients.raw(b.port, 4)
	plain.connect(uid())
	plain.subscribe(("#", 1))
	m = clients.raw(b.mport, 5)
	m.connect(uid())
	m.publish("a/b", b"in", qos=1)
	got = plain.expect(PUBLISH)
	assert (got.topic, got.payload) == ("tenant/a/b", b"in")


def test_mount_point_subscriber_sees_only_its_tree(mounted, clients):
	b = mounted
	m = clients.raw(b.mport, 4)
	m.connect(uid())
	m.subscribe(("#", 1))
	plain = clients.raw(b.port, 4)
	plain.connect(uid())
	plain.publish("other/x", b"no", qos=1)
	plain.publish("tenantx", b"no", qos=1)
	plain.publish("tenant/x/y", b"yes", qos=1)
	got = m.expect(PUBLISH)
	assert (got.topic, got.payload) == ("x/y", b"yes")
	m.no_publish(0.3)
	# UNSUBSCRIBE takes the prefix too.
	m.unsubscribe("#")
	plain.publish("tenant/x/y", b"gone", qos=1)
	m.no_publish(0.3)


def test_mount_point_retained_and_shared(mounted, clients):
	b = mounted
	plain = clients.raw(b.port, 4)
	plain.connect(uid())
	plain.publish("tenant/r/1", b"kept", qos=1, retain=True)
	plain.publish("r/1", b"outside", qos=1, retain=True)
	m = clients.raw(b.mport, 5)
	m.connect(uid())
	m.subscribe(("r/#", 1))
	got = m.expect(PUBLISH)
	assert (got.topic, got.payload, got.retain) == ("r/1", b"kept", True)
	m.no_publish(0.3)
	g = clients.raw(b.mport, 5)
	g.connect(uid())
	g.subscribe(("$share/grp/s/#", 1))
	plain.publish("tenant/s/2", b"shared", qos=1)
	got = g.expect(PUBLISH)
	assert (got.topic, got.payload) == ("s/2", b"shared")


def test_mount_point_without_a_slash_is_warned_about(broker):
	"""'t1' joins as written (as Mosquitto's does), so its clients would reach 't10/...' too:
	start-up says so, and a mount point ending with '/' says nothing."""
	p1, p2 = free_port(), free_port()
	b = broker("listener %d 127.0.0.1" % p1, "mount_point t1",
		"listener %d 127.0.0.1" % p2, "mount_point t2/")
	b.wait_log(r"listener 127\.0\.0\.1:%d: mount_point 't1' does not end with '/'" % p1)
	assert "mount_point 't2/'" not in b.log_text()


def test_mount_point_will_and_sys(mounted, clients):
	b = mounted
	plain = clients.raw(b.port, 4)
	plain.connect(uid())
	plain.subscribe(("tenant/#", 0))
	m = clients.raw(b.mport, 4)
	m.connect(uid(), will={"topic": "gone", "payload": b"bye"})
	m.close()  # no DISCONNECT: the will goes out
	got = plain.expect(PUBLISH, timeout=5)
	assert (got.topic, got.payload) == ("tenant/gone", b"bye")
	# $SYS is outside every mount point.
	s = clients.raw(b.mport, 4)
	s.connect(uid())
	s.subscribe(("$SYS/#", 0))
	s.no_publish(1.5)  # sys_interval 1


def test_mount_point_with_wildcard_refused(tmp_path):
	out = start_fails(tmp_path, "mount_point a/#/")
	assert "mount_point 'a/#/' contains a wildcard" in out, out


# --- upgrade_outgoing_qos ------------------------------------------------------------------------

@pytest.mark.parametrize("upgrade", [True, False])
def test_upgrade_outgoing_qos(broker, clients, upgrade):
	b = broker("upgrade_outgoing_qos %s" % ("true" if upgrade else "false"))
	s = clients.raw(b.port, 4)
	s.connect(uid())
	s.subscribe(("up/t", 2))
	p = clients.raw(b.port, 4)
	p.connect(uid())
	p.publish("up/t", b"q0", qos=0)
	got = s.publishes(1)[0]
	assert got.qos == (2 if upgrade else 0)
	# Retained messages sent on subscribe too.
	p.publish("up/r", b"r1", qos=1, retain=True)
	s.subscribe(("up/r", 2))
	got = s.publishes(1)[0]
	assert (got.payload, got.qos) == (b"r1", 2 if upgrade else 1)


# --- max_inflight_bytes --------------------------------------------------------------------------

def test_max_inflight_bytes(broker, clients):
	b = broker("max_inflight_bytes 10", "max_inflight_messages 20")
	s = clients.raw(b.port, 4)
	s.connect(uid())
	s.subscribe(("ib/t", 1))
	p = clients.raw(b.port, 4)
	p.connect(uid())
	for i in range(3):
		p.publish("ib/t", b"%08d" % i, qos=1)
	# 0 bytes in flight: the first goes; 8 < 10: the second too; 16 >= 10: the third waits.
	first = s.publishes(2, ack=False)
	assert [x.payload for x in first] == [b"00000000", b"00000001"]
	s.no_publish(0.3)
	s.puback(first[0].pid)
	s.puback(first[1].pid)
	assert s.publishes(1)[0].payload == b"00000002"


# --- check_retain_source -------------------------------------------------------------------------

@pytest.mark.parametrize("check", [True, False])
def test_check_retain_source(broker, clients, tmp_path, check):
	acl = tmp_path / "acl"
	acl.write_text("user pub\ntopic write rs/#\nuser sub\ntopic read rs/#\n")
	b = broker("acl_file %s" % acl, "check_retain_source %s" % ("true" if check else "false"))
	p = clients.raw(b.port, 4)
	p.connect(uid(), username="pub")
	p.publish("rs/1", b"kept", qos=1, retain=True)
	p.disconnect()
	s = clients.raw(b.port, 4)
	s.connect(uid(), username="sub")
	s.subscribe(("rs/#", 1))
	assert s.expect(PUBLISH).payload == b"kept"
	# The publisher loses its right to publish there.
	acl.write_text("user sub\ntopic read rs/#\n")
	b.proc.send_signal(signal.SIGHUP)
	b.wait_log(r"reload done")
	s2 = clients.raw(b.port, 4)
	s2.connect(uid(), username="sub")
	s2.subscribe(("rs/#", 1))
	if check:
		s2.no_publish(0.5)
		b.wait_log(r"their publishers may no longer publish them \(check_retain_source\)")
	else:
		assert s2.expect(PUBLISH).payload == b"kept"


# --- log_timestamp_format, log_facility ----------------------------------------------------------

def test_log_timestamp_format(broker, tmp_path):
	path = tmp_path / "ts.log"
	b = broker("log_dest file %s" % path, "log_timestamp_format TS[%Y/%H]")
	wait_until(lambda: path.exists() and "listening on" in path.read_text(), 5,
		what="the log file")
	lines = [l for l in path.read_text().splitlines() if l]
	assert lines and all(re.match(r"TS\[\d{4}/\d{2}\] \w+: ", l) for l in lines), lines
	assert b.alive()


@pytest.mark.serial  # binds /dev/log, which every syslog writer on the machine would use
@pytest.mark.skipif(os.geteuid() != 0 or os.path.exists("/dev/log"),
	reason="needs root and no syslog daemon's /dev/log")
def test_log_facility(broker):
	sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	sock.bind("/dev/log")
	try:
		sock.settimeout(5)
		b = broker("log_dest syslog", "log_facility 3")
		want = "listening on 127.0.0.1:%d" % b.port
		while True:
			msg = sock.recv(4096).decode("utf-8", "replace")
			if want in msg:
				break
		pri = int(re.match(r"<(\d+)>", msg).group(1))
		assert pri >> 3 == 19, msg  # LOG_LOCAL3
		assert pri & 7 == 5, msg  # notice
	finally:
		sock.close()
		os.unlink("/dev/log")
