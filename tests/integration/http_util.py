"""Helpers for the HTTP listener's tests (test_http.py, test_metrics.py): an http listener
added to a test broker, raw requests over one socket, and /metrics parsed with the Prometheus
client library's own parser."""

import base64
import socket

from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, wait_until


def http_lines(port, *more):
	"""Config lines for an http listener on 127.0.0.1:port."""
	return ["listener %d 127.0.0.1" % port, "protocol http"] + list(more)


def listening(port):
	"""Whether a socket listens on TCP port (from /proc/net/tcp and tcp6: no connection made,
	so nothing is counted or left for the broker to close)."""
	for name in ("/proc/net/tcp", "/proc/net/tcp6"):
		try:
			with open(name) as f:
				next(f)
				for line in f:
					fields = line.split()
					if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
						return True
		except FileNotFoundError:
			pass
	return False


def wait_listening(port, timeout=10.0):
	"""Waits until the broker listens on port: the test fixture waits only for its MQTT port,
	and a listener opened after it may not listen yet on a loaded machine."""
	wait_until(lambda: listening(port), timeout, what="a listener on port %d" % port)


def basic(user, pw):
	return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


class Conn:
	"""One HTTP connection driven by hand: send() bytes, response() reads one answer."""

	def __init__(self, port, timeout=5.0, sock=None):
		self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
		self.sock.settimeout(timeout)
		self.buf = b""

	def send(self, data):
		self.sock.sendall(data if isinstance(data, bytes) else data.encode())

	def request(self, method, path, headers=None, body=b""):
		h = {"Host": "localhost"}
		h.update(headers or {})
		if body:
			h["Content-Length"] = str(len(body))
		head = "%s %s HTTP/1.1\r\n" % (method, path)
		head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
		self.send(head.encode() + body)

	def _fill(self):
		chunk = self.sock.recv(65536)
		if not chunk:
			raise EOFError("connection closed")
		self.buf += chunk

	def response(self, head_only=False):
		"""(status, headers dict with lower-case names, body)."""
		while b"\r\n\r\n" not in self.buf:
			self._fill()
		head, self.buf = self.buf.split(b"\r\n\r\n", 1)
		lines = head.decode("latin-1").split("\r\n")
		status = int(lines[0].split(" ")[1])
		headers = {}
		for line in lines[1:]:
			k, v = line.split(":", 1)
			headers[k.strip().lower()] = v.strip()
		n = 0 if head_only else int(headers.get("content-length", "0"))
		while len(self.buf) < n:
			self._fill()
		body, self.buf = self.buf[:n], self.buf[n:]
		return status, headers, body

	def closed(self):
		"""Whether the server has closed the connection (after any answer left to read)."""
		try:
			while True:
				chunk = self.sock.recv(65536)
				if not chunk:
					return True
				self.buf += chunk
		except (ConnectionResetError, BrokenPipeError):
			return True
		except socket.timeout:
			return False

	def close(self):
		self.sock.close()


def get(port, path="/metrics", headers=None):
	c = Conn(port)
	try:
		c.request("GET", path, headers)
		return c.response()
	finally:
		c.close()


def parse_metrics(text):
	"""{(sample name, frozenset of labels): value}, and the families by name."""
	samples, families = {}, {}
	for fam in text_string_to_metric_families(text):
		families[fam.name] = fam
		for s in fam.samples:
			samples[(s.name, frozenset(s.labels.items()))] = s.value
	return samples, families


def scrape(port, headers=None):
	status, hdrs, body = get(port, "/metrics", headers)
	assert status == 200, (status, body)
	assert hdrs["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
	return parse_metrics(body.decode())


def value(samples, name, **labels):
	return samples[(name, frozenset(labels.items()))]


__all__ = ["Conn", "basic", "free_port", "get", "http_lines", "listening", "parse_metrics", "scrape",
	"value", "wait_listening"]
