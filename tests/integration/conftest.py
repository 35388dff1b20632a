"""Fixtures for the broker integration suite.

The broker under test is chosen by the environment:
  VIESTI_BIN=/path/to/viesti      runs `viesti broker -c CONF`
  VIESTI_TARGET=mosquitto         runs `/usr/sbin/mosquitto -c CONF` (to validate the tests)
  neither                         uses <repo>/build-san/viesti if it exists, else skips
Tests marked `viesti_only` are skipped against Mosquitto.

`broker(*lines)` starts a broker on a free 127.0.0.1 port with `allow_anonymous true` plus the
given config lines, waits until it accepts TCP, and stops it at teardown; the test fails if the
broker died on its own, did not stop on SIGTERM, or printed a sanitizer report.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

import helpers  # noqa: E402

SANITIZER_PATTERNS = ["ERROR: AddressSanitizer", "runtime error:"]
if not os.environ.get("VIESTI_IGNORE_LEAKS"):
	SANITIZER_PATTERNS.append("ERROR: LeakSanitizer")


def _target():
	if os.environ.get("VIESTI_TARGET") == "mosquitto":
		return "mosquitto", os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
	path = os.environ.get("VIESTI_BIN") or os.path.join(REPO, "build-san", "viesti")
	return "viesti", path


TARGET, TARGET_BIN = _target()


def pytest_configure(config):
	config.addinivalue_line("markers",
		"viesti_only: needs a Viesti feature or behaviour Mosquitto lacks; skipped for mosquitto")
	config.addinivalue_line("markers",
		"serial: loads the machine or measures round trips; `make integration` runs these "
		"after the parallel part, one at a time")


def pytest_collection_modifyitems(config, items):
	if TARGET == "mosquitto":
		skip = pytest.mark.skip(reason="viesti_only (running against mosquitto)")
		for item in items:
			if "viesti_only" in item.keywords:
				item.add_marker(skip)
	elif not os.access(TARGET_BIN, os.X_OK):
		skip = pytest.mark.skip(reason="no broker binary at %s (set VIESTI_BIN or "
			"VIESTI_TARGET=mosquitto)" % TARGET_BIN)
		for item in items:
			item.add_marker(skip)


# Ports for brokers come from below the kernel's ephemeral range (32768-60999 on Debian), so that
# no client's source port can take one between free_port() and the broker's bind; each pytest-xdist
# worker has its own slice, so that two workers never hand out the same port.
PORT_BASE, PORT_SLICE = 20000, 1500
# Where in the slice this process starts: two pytest sessions at once on one machine (a
# developer's and a helper's) then rarely pick the same port; free_port() checks anyway.
_next_port = [os.getpid() * 37 % PORT_SLICE]


def _port_slice():
	worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3" under xdist, absent without
	try:
		index = int(worker.lstrip("gw"))
	except ValueError:
		index = 0
	return PORT_BASE + (index % 8) * PORT_SLICE


def free_port():
	"""A 127.0.0.1 TCP port nobody listens on, from this worker's slice (round robin)."""
	base = _port_slice()
	for _ in range(PORT_SLICE):
		port = base + _next_port[0] % PORT_SLICE
		_next_port[0] += 1
		with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
			try:
				s.bind(("127.0.0.1", port))
			except OSError:
				continue
			return port
	raise RuntimeError("no free port in %d-%d" % (base, base + PORT_SLICE - 1))


def wait_until(pred, timeout, interval=0.02, what="condition"):
	deadline = time.monotonic() + timeout
	while True:
		v = pred()
		if v:
			return v
		if time.monotonic() > deadline:
			raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
		time.sleep(interval)


class Broker:
	"""One broker process. Attributes: port, conf_path, log_path, target."""

	def __init__(self, tmp_path, lines, name, nofile=None, env=None):
		self.nofile = nofile  # RLIMIT_NOFILE for the broker process, or None
		self.extra_env = env or {}
		self.target = TARGET
		self.port = free_port()
		self.dir = tmp_path
		self.conf_path = str(tmp_path / ("%s.conf" % name))
		self.log_path = str(tmp_path / ("%s.log" % name))
		self.lines = list(lines)
		self.proc = None
		self.stopped_on_purpose = False
		self.write_conf()

	def write_conf(self):
		with open(self.conf_path, "w") as f:
			f.write("listener %d 127.0.0.1\n" % self.port)
			f.write("allow_anonymous true\n")
			if self.target == "mosquitto" and os.geteuid() == 0:
				f.write("user root\n")  # else it cannot read the test's files
			for line in self.lines:
				f.write(line.rstrip("\n") + "\n")

	def command(self):
		if self.target == "mosquitto":
			return [TARGET_BIN, "-c", self.conf_path]
		return [TARGET_BIN, "broker", "-c", self.conf_path]

	def start(self, timeout=10.0):
		env = dict(os.environ)
		env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
		env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
		env.update(self.extra_env)
		self.logf = open(self.log_path, "ab")
		preexec = None
		if self.nofile:
			import resource
			n = self.nofile
			preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))  # noqa: E731
		self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=subprocess.STDOUT,
			stdin=subprocess.DEVNULL, env=env, cwd=str(self.dir), preexec_fn=preexec)
		self.stopped_on_purpose = False

		def ready():
			if self.proc.poll() is not None:
				self.stopped_on_purpose = True  # reported here, not again at teardown
				raise AssertionError("broker exited with %s during start-up:\n%s" % (
					self.proc.returncode, self.log_text()[-3000:]))
			try:
				socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
				return True
			except OSError:
				return False

		wait_until(ready, timeout, what="broker to accept TCP on port %d" % self.port)
		return self

	def log_text(self):
		try:
			with open(self.log_path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except FileNotFoundError:
			return ""

	def wait_log(self, regex, timeout=3.0):
		"""Waits until the log matches regex; returns the match."""
		rx = re.compile(regex, re.M | re.I)
		return wait_until(lambda: rx.search(self.log_text()), timeout,
			what="log line matching %r; log:\n%s" % (regex, self.log_text()[-2000:]))

	def proc_status(self, field):
		"""A field of /proc/PID/status in kB (VmRSS, VmHWM, ...)."""
		with open("/proc/%d/status" % self.proc.pid) as f:
			for line in f:
				if line.startswith(field + ":"):
					return int(line.split()[1])
		raise KeyError(field)

	def cpu_seconds(self):
		"""User + system CPU the broker has used so far."""
		with open("/proc/%d/stat" % self.proc.pid) as f:
			fields = f.read().rsplit(")", 1)[1].split()
		return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

	def alive(self):
		return self.proc is not None and self.proc.poll() is None

	def stop(self, sig=signal.SIGTERM, timeout=10.0):
		"""Stops the broker; returns a problem description or None."""
		if self.proc is None:
			return None
		problem = None
		if self.proc.poll() is not None and not self.stopped_on_purpose:
			problem = "broker died unexpectedly (exit %s)" % self.proc.returncode
		elif self.proc.poll() is None:
			self.proc.send_signal(sig)
			try:
				self.proc.wait(timeout)
			except subprocess.TimeoutExpired:
				self.proc.kill()
				self.proc.wait(5)
				problem = "broker did not exit within %.0fs of signal %d" % (timeout, sig)
			if problem is None and sig == signal.SIGTERM and self.proc.returncode not in (0, ):
				problem = "broker exited with %s after SIGTERM" % self.proc.returncode
			# A cluster node that still holds a NATS object at its stop waits out the
			# library's close (2 s at every stop of every node).
			if problem is None and sig == signal.SIGTERM and \
					"the NATS library did not close" in self.log_text():
				problem = "broker's stop waited for the NATS library: an object of it was held"
		self.stopped_on_purpose = True
		self.logf.close()
		return problem

	def kill(self):
		"""SIGKILLs the broker (a crash, as far as clients can tell)."""
		self.stopped_on_purpose = True
		self.proc.kill()
		self.proc.wait(5)

	def restart(self, timeout=10.0):
		"""Stops the broker with SIGTERM (if running) and starts it again on the same port."""
		problem = self.stop() if self.alive() else None
		assert problem is None, problem
		return self.start(timeout)

	def sanitizer_report(self):
		text = self.log_text()
		for pat in SANITIZER_PATTERNS:
			i = text.find(pat)
			if i >= 0:
				return text[max(0, i - 200):i + 3000]
		return None


@pytest.fixture
def broker(tmp_path):
	"""Factory: broker(*config_lines, start=True) -> Broker."""
	made = []

	def make(*lines, start=True, nofile=None, env=None):
		b = Broker(tmp_path, lines, "broker%d" % len(made), nofile=nofile, env=env)
		made.append(b)
		if start:
			b.start()
		return b

	yield make
	problems = []
	for b in made:
		p = b.stop()
		if p:
			problems.append("%s\n--- log tail ---\n%s" % (p, b.log_text()[-3000:]))
		rep = b.sanitizer_report()
		if rep:
			problems.append("sanitizer report in broker log:\n" + rep)
	if problems:
		pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
	"""The test PKI (pki.py), made once per session with the openssl command: pki["ca"] is the
	CA's certificate, pki["server"] (certificate, key), and so on."""
	import pki as pki_mod
	if pki_mod.OPENSSL is None:
		pytest.skip("no openssl command")
	return pki_mod.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def clients():
	"""Registry that closes every client (raw or paho) at teardown."""
	reg = helpers.ClientRegistry()
	yield reg
	reg.close_all()


@pytest.fixture
def target():
	return TARGET
