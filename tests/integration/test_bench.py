"""`viesti bench` (the load generator) and bench/compare (Viesti against Mosquitto).

The generator runs against the fixture broker (Viesti, or Mosquitto with
VIESTI_TARGET=mosquitto); it is always the Viesti binary from VIESTI_BIN (or build-san/viesti).
test_compare_quick starts two brokers of its own and takes about 20-40 s under the sanitizers;
set VIESTI_FAST=1 to skip it.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
VIESTI = os.environ.get("VIESTI_BIN") or os.path.join(REPO, "build-san", "viesti")
COMPARE = os.path.join(REPO, "bench", "compare")

pytestmark = pytest.mark.serial  # it loads the machine

needs_viesti = pytest.mark.skipif(not os.access(VIESTI, os.X_OK),
	reason="no viesti binary at %s" % VIESTI)


def bench(port, *args, timeout=60):
	env = dict(os.environ)
	env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
	p = subprocess.run([VIESTI, "bench"] + [str(a) for a in args] +
		["-p", str(port), "--json"], capture_output=True, text=True, timeout=timeout,
		env=env, stdin=subprocess.DEVNULL)
	assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
	assert p.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout,
		p.stderr)
	lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
	assert len(lines) == 1, p.stdout
	return json.loads(lines[0])


@needs_viesti
def test_pairs_qos1_no_loss(broker):
	b = broker()
	r = bench(b.port, "pairs", "-n", 5, "-d", 2, "-q", 1)
	assert r["ok"] and r["errors"] == 0, r
	assert r["connected"] == 10 and r["connect_failed"] == 0
	assert r["sent"] > 0
	assert r["received"] == r["sent"], r
	assert r["expected"] == r["sent"] and r["unique"] == r["sent"]
	assert r["lost"] == 0 and r["duplicates"] == 0
	assert r["acked"] == r["sent"]
	lat = r["latency_us"]
	for k in ("min", "mean", "p50", "p90", "p99", "p99_9", "max"):
		assert k in lat
	assert lat["count"] > 0
	assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
	assert r["sent_per_s"] > 0 and r["received_per_s"] > 0
	assert r["cpu_s"]["total"] > 0


@needs_viesti
def test_fanout_qos2_rate_limited(broker):
	"""A fixed rate: each subscriber gets every message once (QoS 2 never duplicates)."""
	b = broker()
	r = bench(b.port, "fanout", "-n", 3, "-q", 2, "-r", 200, "-d", 1, "--warmup", 0.2,
		"--window", 10)
	assert r["errors"] == 0, r
	assert 150 <= r["sent"] <= 300, r
	assert r["received"] == 3 * r["sent"] and r["duplicates"] == 0 and r["lost"] == 0


@needs_viesti
def test_latency_by_publisher(broker):
	"""--by-publisher: each publisher's own latency, and the counts add up to the whole."""
	b = broker()
	r = bench(b.port, "fanin", "-P", 3, "-q", 1, "-r", 500, "-d", 1, "--warmup", 0.2,
		"--by-publisher")
	assert r["errors"] == 0 and r["lost"] == 0, r
	per = r["by_publisher"]
	assert [p["id"] for p in per] == [0, 1, 2]
	assert sum(p["count"] for p in per) == r["latency_us"]["count"]
	for p in per:
		# 500 msg/s each for a second (the window is by send time): never more, fewer
		# when the generator runs late (a loaded machine, the sanitizers)
		assert 100 <= p["count"] <= 650, per
		assert 0 < p["p50"] <= p["p99"] <= r["latency_us"]["max"], per
	assert "by_publisher" not in bench(b.port, "fanin", "-P", 2, "-q", 1, "-r", 100, "-d",
		0.3, "--warmup", 0)
	env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:detect_leaks=1")
	p = subprocess.run([VIESTI, "bench", "pairs", "-n", "2", "-r", "200", "-d", "0.5",
		"--warmup", "0", "-p", str(b.port), "--by-publisher", "--no-progress"], capture_output=True,
		text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
	assert p.returncode == 0, p.stderr
	assert "publishers' p99" in p.stdout and "publisher 1 " in p.stdout, p.stdout


@needs_viesti
def test_shared_group_splits_stream(broker, target):
	b = broker()
	r = bench(b.port, "shared", "-P", 2, "-n", 3, "-q", 1, "-r", 300, "-d", 1, "--warmup", 0)
	assert r["errors"] == 0, r
	assert r["lost"] == 0 and r["duplicates"] == 0
	assert r["unique"] == r["sent"], r


@needs_viesti
def test_conn_holds_idle_connections(broker):
	b = broker()
	r = bench(b.port, "conn", "-n", 200, "-d", 0.5, "--warmup", 0)
	assert r["connected"] == 200 and r["connect_failed"] == 0 and r["errors"] == 0, r
	assert r["connect_per_s"] > 0


@needs_viesti
def test_bad_arguments():
	p = subprocess.run([VIESTI, "bench", "pairs", "-s", "8"], capture_output=True, text=True)
	assert p.returncode == 2 and "size" in p.stderr
	p = subprocess.run([VIESTI, "bench", "nosuch"], capture_output=True, text=True)
	assert p.returncode == 2 and "unknown scenario" in p.stderr
	p = subprocess.run([VIESTI, "bench", "pairs", "-n", "1001", "--by-publisher"],
		capture_output=True, text=True)
	assert p.returncode == 2 and "at most 1000 publishers" in p.stderr
	for scenario in ("sub", "conn", "pub"):
		p = subprocess.run([VIESTI, "bench", scenario, "--by-publisher"], capture_output=True,
			text=True)
		assert p.returncode == 2 and "needs the run's own publishers" in p.stderr, p.stderr


@needs_viesti
@pytest.mark.skipif(not os.access("/usr/sbin/mosquitto", os.X_OK), reason="no mosquitto")
@pytest.mark.skipif(bool(os.environ.get("VIESTI_FAST")), reason="VIESTI_FAST set")
def test_compare_quick(tmp_path):
	md = tmp_path / "table.md"
	env = dict(os.environ)
	env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
	p = subprocess.run(["/usr/bin/python3", COMPARE, "--viesti", VIESTI, "--quick",
		"--md", str(md)], capture_output=True, text=True, timeout=120, env=env,
		stdin=subprocess.DEVNULL, cwd=str(tmp_path))
	assert p.returncode == 0, "stdout:\n%s\nstderr:\n%s" % (p.stdout, p.stderr[-3000:])
	assert "viesti" in p.stdout.lower() and "mosquitto" in p.stdout.lower()
	text = md.read_text()
	assert "pairs" in text and "conn" in text and "|" in text


def _compare_module():
	import importlib.machinery
	import importlib.util
	loader = importlib.machinery.SourceFileLoader("bench_compare", COMPARE)
	spec = importlib.util.spec_from_loader("bench_compare", loader)
	mod = importlib.util.module_from_spec(spec)
	loader.exec_module(mod)
	return mod


def test_compare_flashmq_config_at_its_best(tmp_path):
	"""FlashMQ's run gets its own dialect: a listen block on 127.0.0.1 with tcp_nodelay, QoS
	queues of 65,535 messages, one thread per core, anonymous clients."""
	mod = _compare_module()
	conf = tmp_path / "f.conf"
	mod.write_conf(str(conf), "flashmq", 12345, ["thread_count 2"])
	text = conf.read_text()
	for want in ("max_qos_msg_pending_per_client 65535", "allow_anonymous true",
			"port 12345", "inet4_bind_address 127.0.0.1", "tcp_nodelay true", "thread_count 2"):
		assert want in text, text
	assert "listener" not in text  # not Mosquitto's dialect
	assert mod.parse_peer("flashmq=/opt/flashmq/flashmq") == ("flashmq", "/opt/flashmq/flashmq")


def test_compare_needs_a_peer(tmp_path):
	p = subprocess.run(["/usr/bin/python3", COMPARE, "--viesti", VIESTI or "/bin/true",
		"--no-mosquitto", "--quick"], capture_output=True, text=True, timeout=30,
		stdin=subprocess.DEVNULL, cwd=str(tmp_path))
	assert p.returncode != 0 and "no peer" in p.stderr
