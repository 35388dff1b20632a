"""Helpers for the HTTP listener's tests (test_http.py, test_metrics.py): an http listener
added to a test broker, raw requests over one socket, and /metrics parsed with the Prometheus
client library's own parser."""

import base64
import socket

from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port


def http_lines(port, *more):
	"""Config lines for an http listener on 127.0.0.1:port."""
	return ["listener %d 127.0.0.1" % port, "protocol http"] + list(more)


def wait_listening(port, timeout=20.0, tls=False):
	"""The broker's readiness probe connects to its MQTT port; its other listeners may open a
	moment later: wait until this one accepts too."""
	from conftest import wait_until

	def accepts():
		# An HTTP/1.0 request, read to its end: the broker closes the connection itself, so
		# it no longer counts against the listener's max_connections when this returns.
		try:
			with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
				if tls:
					return True
				s.sendall(b"GET / HTTP/1.0\r\n\r\n")
				while s.recv(4096):
					pass
			return True
		except OSError:
			return False
	wait_until(accepts, timeout, what="port %d to listen" % port)


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


__all__ = ["Conn", "basic", "free_port", "get", "http_lines", "parse_metrics", "scrape", "value"]
