"""libviesti over WebSocket (issue 13), through the tools: viesti pub and sub with -L ws:// and
wss:// URLs and --ws-path, against Viesti's websockets listeners; a refused upgrade names the
HTTP status; viesti bench --ws-path moves messages over a WebSocket listener.
"""

import json
import subprocess

import pytest

from conftest import TARGET_BIN, free_port, wait_until
from helpers import uid

pytestmark = pytest.mark.viesti_only


def tool(*args, timeout=20):
	return subprocess.run([TARGET_BIN] + list(args), capture_output=True, timeout=timeout)


def roundtrip(b, sub_args, pub_args):
	"""viesti sub waits for one message; viesti pub sends it (again until it arrives)."""
	sub = subprocess.Popen([TARGET_BIN, "sub", "-C", "1", "-W", "15", "-v"] + sub_args,
		stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		wait_until(lambda: b.log_text().count("subscribed to") >= 1, 10,
			what="viesti sub's subscription")
		r = tool("pub", "-q", "1", *pub_args)
		assert r.returncode == 0, r.stderr
		out, err = sub.communicate(timeout=15)
		assert sub.returncode == 0, err
		return out.decode()
	finally:
		if sub.poll() is None:
			sub.kill()
			sub.wait()


def test_viesti_pub_and_sub_over_ws_urls(broker):
	ws = free_port()
	b = broker("listener %d 127.0.0.1" % ws, "protocol websockets", "log_type all")
	topic = uid("wscli")
	out = roundtrip(b, ["-L", "ws://127.0.0.1:%d/%s/#" % (ws, topic)],
		["-L", "ws://127.0.0.1:%d/%s/a" % (ws, topic), "-m", "over ws", "-V", "5"])
	assert out == "%s/a over ws\n" % topic
	assert b.log_text().count("on 127.0.0.1:%d (MQTT" % ws) >= 2


def test_viesti_pub_and_sub_over_wss_with_a_ca(broker, pki):
	wss = free_port()
	b = broker("listener %d 127.0.0.1" % wss, "protocol websockets", "log_type all",
		"certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1])
	topic = uid("wsscli")
	ca = ["--cafile", pki["ca"]]
	out = roundtrip(b, ["-L", "wss://localhost:%d/%s" % (wss, topic)] + ca,
		["-L", "wss://localhost:%d/%s" % (wss, topic), "-m", "over wss"] + ca)
	assert out == "%s over wss\n" % topic
	# The wrong CA fails the TLS handshake under the WebSocket, with OpenSSL's reason.
	r = tool("pub", "-L", "wss://localhost:%d/t" % wss, "-m", "x", "--cafile", pki["otherca"])
	assert r.returncode == 1
	assert b"certificate verify failed" in r.stderr


def test_ws_path_is_the_upgrade_path(broker):
	ws = free_port()
	b = broker("listener %d 127.0.0.1" % ws, "protocol websockets", "websockets_path /mqtt",
		"log_type all")
	topic = uid("wspath")
	out = roundtrip(b, ["-p", str(ws), "--ws-path", "/mqtt", "-t", topic],
		["-p", str(ws), "--ws-path", "/mqtt", "-t", topic, "-m", "at /mqtt"])
	assert out == "%s at /mqtt\n" % topic
	r = tool("pub", "-p", str(ws), "--ws-path", "/elsewhere", "-t", topic, "-m", "x")
	assert r.returncode == 1
	b.wait_log(r"closed before CONNECT: HTTP 404")
	r = tool("pub", "-p", str(ws), "--ws-path", "mqtt", "-t", topic, "-m", "x")
	assert r.returncode == 1
	assert b"--ws-path must start with '/'" in r.stderr


def test_viesti_bench_over_websocket(broker):
	ws = free_port()
	broker("listener %d 127.0.0.1" % ws, "protocol websockets")
	r = tool("bench", "pairs", "-p", str(ws), "--ws-path", "/mqtt", "-n", "4", "-q", "1",
		"-d", "1", "--warmup", "0.2", "--json", "--no-progress", timeout=60)
	assert r.returncode == 0, r.stderr
	j = json.loads(r.stdout.decode().strip().splitlines()[-1])
	assert j["websocket"] is True
	assert j["received"] > 0 and j["lost"] == 0 and j["duplicates"] == 0 and j["errors"] == 0
