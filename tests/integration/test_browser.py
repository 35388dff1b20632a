"""MQTT over WebSocket from a real browser (issue 13): Debian's chromium, headless, driven by
playwright-core (browser_run.js), loads a page that Viesti itself serves from http_dir; the page
uses MQTT.js's browser build to connect back over ws:// (or wss:// when the page came over
https), subscribes, receives a retained message, publishes, and receives what a plain TCP client
(paho) publishes to it. The assertions are on both sides: what the page received, and what the
TCP client received from the page.
"""

import os
import shutil
import threading

import pytest

from conftest import free_port
from helpers import MQTTJS_BROWSER_BUNDLE, run_browser, uid

pytestmark = pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists(
	"/usr/bin/chromium"), reason="no chromium (scripts/install-deps installs it)")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script src="mqtt.min.js"></script></head>
<body><p id="state">starting</p>
<script>
const params = new URLSearchParams(location.search);
const topic = params.get("topic");
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/mqtt";
const got = [];
const c = mqtt.connect(url, {protocolVersion: Number(params.get("v")), reconnectPeriod: 0,
	clientId: "page-" + Math.random().toString(16).slice(2)});
c.on("connect", () => {
	document.getElementById("state").textContent = "connected";
	c.subscribe(topic + "/#", {qos: 1}, (err, granted) => {
		if (err) { window.result = {error: String(err)}; return; }
		c.publish(topic + "/from-page", "hello from " + location.protocol, {qos: 1});
	});
});
c.on("message", (t, m, packet) => {
	got.push({topic: t, payload: m.toString(), retain: packet.retain});
	if (t === topic + "/from-outside") {
		window.result = {url: url, got: got};
		c.end();
	}
});
c.on("error", (e) => { window.result = {error: e.message}; });
c.on("close", () => { if (window.result === undefined) window.result = {error: "closed", got: got}; });
</script></body></html>
"""


def site(tmp_path):
	d = tmp_path / "www"
	d.mkdir()
	(d / "index.html").write_text(PAGE)
	shutil.copy(MQTTJS_BROWSER_BUNDLE, str(d / "mqtt.min.js"))
	return d


def page_roundtrip(b, clients, scheme, ws_port, version):
	topic = uid("browser")
	tcp = clients.paho(b.port)  # connected: a second connect() raced paho's own thread
	tcp.publish(topic + "/retained", b"kept for the page", qos=1, retain=True)
	tcp.subscribe(topic + "/from-page", qos=1)
	box = {}

	def browse():
		try:
			box["out"] = run_browser({
				"url": "%s://localhost:%d/index.html?topic=%s&v=%d" % (
					scheme, ws_port, topic, version),
				"ignore_https_errors": scheme == "https",
				"timeout_ms": 30000}, timeout=60)
		except Exception as e:  # reported below, in the test's thread
			box["error"] = e

	t = threading.Thread(target=browse)
	t.start()
	try:
		# The page's own publication reaches the TCP client...
		m = tcp.get(timeout=30)
		assert m.topic == topic + "/from-page"
		assert m.payload == ("hello from %s:" % scheme).encode()
		# ...and the TCP client's reaches the page, which then finishes.
		tcp.publish(topic + "/from-outside", b"hello from TCP", qos=1)
	finally:
		t.join(60)
	assert "error" not in box, box.get("error")
	out = box["out"]
	assert out["ok"], out
	res = out["result"]
	assert "error" not in res, out
	assert res["url"] == "%s://localhost:%d/mqtt" % ("wss" if scheme == "https" else "ws", ws_port)
	got = {g["topic"]: g for g in res["got"]}
	assert got[topic + "/retained"]["payload"] == "kept for the page"
	assert got[topic + "/retained"]["retain"] is True
	assert got[topic + "/from-page"]["payload"] == "hello from %s:" % scheme
	assert got[topic + "/from-outside"]["payload"] == "hello from TCP"
	assert not [e for e in out["errors"] if "favicon" not in e], out["errors"]
	return out


def test_a_page_served_by_viesti_talks_mqtt5_over_ws_in_chromium(broker, clients, tmp_path):
	ws = free_port()
	b = broker("listener %d 127.0.0.1" % ws, "protocol websockets", "http_dir %s" % site(tmp_path))
	page_roundtrip(b, clients, "http", ws, 5)
	b.wait_log(r"client page-\w+ connected from 127\.0\.0\.1:\d+ on 127\.0\.0\.1:%d \(MQTT 5\.0" % ws)


def test_a_page_served_over_https_talks_mqtt311_over_wss_in_chromium(broker, clients, tmp_path,
		pki):
	wss = free_port()
	b = broker("listener %d 127.0.0.1" % wss, "protocol websockets",
		"http_dir %s" % site(tmp_path), "certfile %s" % pki["server"][0],
		"keyfile %s" % pki["server"][1])
	page_roundtrip(b, clients, "https", wss, 4)
	b.wait_log(r"client page-\w+ connected from .* on 127\.0\.0\.1:%d \(MQTT 3\.1\.1" % wss)
