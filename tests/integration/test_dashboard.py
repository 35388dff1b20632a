"""The dashboard at / (issue 17 item 4, docs/dashboard.md): its files come from the binary with
their content types, an ETag and Cache-Control (304 on If-None-Match), and in Debian's headless
chromium (playwright-core, dashboard_run.js) the page shows a client that connects and drops
one that leaves without a reload, finds clients by prefix and disconnects one from the
keyboard, lists retained messages by filter, and shows messages arriving on a live topic
filter over the broker's WebSocket listener."""

import json
import os
import select
import shutil
import subprocess

import pytest

from conftest import free_port
from helpers import NODE_MODULES, HERE, PahoClient, uid
from http_util import Conn, basic, http_lines, wait_listening
from test_http import make_passwd

pytestmark = [pytest.mark.viesti_only]
needs_chromium = pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists(
	"/usr/bin/chromium"), reason="no chromium (scripts/install-deps installs it)")

SRC = os.path.join(HERE, "..", "..", "src", "broker", "dashboard")
RUNNER = os.path.join(HERE, "dashboard_run.js")


def dash_broker(broker, *more):
	h, w = free_port(), free_port()
	b = broker(*(http_lines(h, *more) + ["listener %d 127.0.0.1" % w, "protocol websockets"]))
	b.http, b.ws = h, w
	wait_listening(h)
	wait_listening(w)
	return b


class Page:
	"""The dashboard open in chromium; each method is one command of dashboard_run.js."""

	def __init__(self, url, credentials=None):
		spec = {"url": url}
		if credentials:
			spec["http_credentials"] = credentials
		self.p = subprocess.Popen(["node", RUNNER, json.dumps(spec)], stdin=subprocess.PIPE,
			stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
			env=dict(os.environ, NODE_PATH=NODE_MODULES))
		first = self._read(60)
		assert first.get("ready"), first

	def _read(self, timeout):
		r, _, _ = select.select([self.p.stdout], [], [], timeout)
		assert r, "dashboard_run.js said nothing for %.0f s" % timeout
		line = self.p.stdout.readline()
		assert line, "dashboard_run.js ended: %s" % self.p.stderr.read()[-2000:]
		return json.loads(line)

	def do(self, **cmd):
		self.p.stdin.write(json.dumps(cmd) + "\n")
		self.p.stdin.flush()
		out = self._read(cmd.get("timeout_ms", 10000) / 1000 + 20)
		assert out["ok"], "%r: %s (page errors: %s)" % (cmd, out.get("error"), out["errors"])
		self.errors = out["errors"]
		return out["result"]

	def wait(self, expr, timeout_ms=10000):
		return self.do(wait_for=expr, timeout_ms=timeout_ms)

	def close(self):
		try:
			self.p.stdin.close()
			self.p.wait(30)
		except Exception:
			self.p.kill()
			self.p.wait(5)


def row(cid):
	return "document.querySelector('#client-rows tr[data-id=%s]')" % json.dumps(cid)


@pytest.fixture
def page():
	opened = []

	def open_page(url, credentials=None):
		p = Page(url, credentials)
		opened.append(p)
		return p

	yield open_page
	for p in opened:
		p.close()


def test_files_are_embedded_with_types_and_cache_headers(broker):
	b = dash_broker(broker)
	for path, name, ctype in [("/", "index.html", "text/html; charset=utf-8"),
			("/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
			("/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8")]:
		c = Conn(b.http)
		c.request("GET", path)
		s, h, body = c.response()
		assert s == 200 and h["content-type"] == ctype
		with open(os.path.join(SRC, name), "rb") as f:
			assert body == f.read(), "%s is not the file in src/broker/dashboard" % path
		assert h["cache-control"] == "no-cache" and h["etag"].startswith('"')
		assert "frame-ancestors 'none'" in h["content-security-policy"]
		c.request("GET", path, {"If-None-Match": h["etag"]})
		s2, h2, body2 = c.response(head_only=True)
		assert s2 == 304 and h2["etag"] == h["etag"]
		c.request("GET", path, {"If-None-Match": '"other"'})
		assert c.response()[0] == 200
		c.close()
	c = Conn(b.http)
	c.request("GET", "/favicon.ico")
	assert c.response()[0] == 404
	c.close()


@needs_chromium
def test_dashboard_shows_a_client_that_connects_and_drops_one_that_leaves(broker, page):
	b = dash_broker(broker)
	p = page("http://127.0.0.1:%d/" % b.http)
	p.wait("document.getElementById('s-clients').textContent === '0'")
	cid = uid("dash")
	c = PahoClient(b.port, client_id=cid, version=5, keepalive=33)
	try:
		# it appears, with what the broker knows of it, without a reload
		got = p.wait(row(cid) + " && [...%s.cells].map(x => x.textContent)" % row(cid))
		assert got[0] == cid and got[1] == "–" and got[2].startswith("127.0.0.1:")
		assert got[3] == "5.0" and got[4] == "127.0.0.1:%d" % b.port and got[6] == "33 s"
		p.wait("document.getElementById('s-clients').textContent === '1'")
		# and goes when it leaves
		c.disconnect()
		p.wait("!" + row(cid))
		p.wait("document.getElementById('s-clients').textContent === '0'")
		assert p.do(eval="performance.getEntriesByType('navigation').length") == 1
		assert p.errors == []
	finally:
		c.close()


@needs_chromium
def test_search_disconnect_retained_and_live_view_from_the_keyboard(broker, page):
	b = dash_broker(broker)
	keep, other = uid("keep"), uid("zz")
	ck = PahoClient(b.port, client_id=keep, version=5)
	co = PahoClient(b.port, client_id=other, version=4)
	pub = PahoClient(b.port)
	try:
		pub.publish("dash/r/1", b"retained one", qos=1, retain=True)
		pub.publish("dash/r/2", b"\xff\xfe", retain=True)
		p = page("http://127.0.0.1:%d/" % b.http)
		p.wait(row(keep) + " && " + row(other))
		# search by prefix
		p.do(fill="#client-prefix", value="keep-")
		p.do(press="#client-prefix", key="Enter")
		p.wait("!" + row(other) + " && !!" + row(keep))
		# disconnect from the keyboard (the confirmation is accepted)
		p.do(press="#client-rows button[data-id=%s]" % json.dumps(keep), key="Enter")
		assert ck.disconnected.wait(5), "the dashboard's disconnect did not reach the client"
		assert getattr(ck.disconnect_rc, "value", ck.disconnect_rc) == 0x98
		p.wait("!" + row(keep))
		# retained messages by filter
		p.do(fill="#retained-filter", value="dash/r/#")
		p.do(press="#retained-filter", key="Enter")
		cells = p.wait("document.querySelectorAll('#retained-rows tr').length === 2 && "
			"[...document.querySelectorAll('#retained-rows tr')].map("
			"r => [...r.cells].map(c => c.textContent))")
		assert cells[0][0] == "dash/r/1" and cells[0][1] == "retained one"
		assert cells[1][0] == "dash/r/2" and cells[1][1] == "(base64) //4="
		# live topic view over the WebSocket listener
		p.wait("!document.getElementById('live-start').disabled")
		p.do(fill="#live-filter", value="dash/live/#")
		p.do(press="#live-filter", key="Enter")
		p.wait("document.getElementById('live-state').textContent.startsWith('Subscribed')")
		pub.publish("dash/live/a", b"first", qos=1)
		pub.publish("dash/live/b", "z\u00e9".encode(), qos=0)
		pub.publish("dash/other", b"not this", qos=0)
		got = p.wait("document.querySelectorAll('#live-messages li').length >= 2 && "
			"[...document.querySelectorAll('#live-messages li')].map("
			"li => [li.querySelector('.topic').textContent, li.querySelector('code').textContent])")
		assert got == [["dash/live/b", "z\u00e9"], ["dash/live/a", "first"]]
		assert p.errors == []
	finally:
		for c in (ck, co, pub):
			c.close()


@needs_chromium
def test_dashboard_behind_basic_credentials(broker, tmp_path, page):
	pw = make_passwd(tmp_path, ("admin", "s3cret"))
	b = dash_broker(broker, "allow_anonymous false", "password_file " + pw, "http_admin admin")
	c = Conn(b.http)
	c.request("GET", "/")
	assert c.response()[0] == 401
	c.request("GET", "/", {"Authorization": basic("admin", "s3cret")})
	assert c.response()[0] == 200
	c.close()
	p = page("http://127.0.0.1:%d/" % b.http, {"username": "admin", "password": "s3cret"})
	p.wait("document.getElementById('s-clients').textContent === '0'")
	assert p.errors == []
