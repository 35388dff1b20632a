"""The HTTP listener (protocol http, issue 17 item 1): HTTP/1.1 on the broker's own loops, with
keep-alive and pipelining, the errors a broken or oversized request gets (and which of them end
the connection), access with Basic credentials from the listener's password file for users in
http_admin, TLS from the listener's certfile/keyfile, the idle timeout and max_connections."""

import http.client
import ssl
import subprocess
import time

import pytest

from conftest import TARGET_BIN, free_port, wait_until
from http_util import Conn, basic, get, http_lines, wait_listening
from mqtt_raw import CONNACK

pytestmark = pytest.mark.viesti_only


def http_broker(broker, *more, port=None):
	port = port or free_port()
	b = broker(*http_lines(port, *more))
	b.http = port
	wait_listening(port)
	return b


def test_keep_alive_two_requests_on_one_connection(broker):
	b = http_broker(broker)
	c = http.client.HTTPConnection("127.0.0.1", b.http, timeout=5)
	c.request("GET", "/metrics")
	r = c.getresponse()
	assert r.status == 200 and r.getheader("Connection") == "keep-alive"
	r.read()
	sock = c.sock
	c.request("GET", "/metrics")
	r = c.getresponse()
	assert r.status == 200
	assert b"viesti_clients_connected" in r.read()
	assert c.sock is sock, "the second request needed a new connection"
	c.close()


def test_pipelined_requests_answered_in_order(broker):
	b = http_broker(broker)
	c = Conn(b.http)
	c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"
		"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	s, h, body = c.response()
	assert s == 200 and body.startswith(b"# HELP")
	assert c.response()[0] == 404
	s, h, body = c.response(head_only=True)
	assert s == 200 and int(h["content-length"]) > 0
	s, h, _ = c.response()
	assert s == 405 and h["allow"] == "GET, HEAD"
	s, h, _ = c.response()
	assert s == 200 and h["connection"] == "close"
	assert c.closed()
	c.close()


def test_http_1_0_closes_unless_kept_alive(broker):
	b = http_broker(broker)
	c = Conn(b.http)
	c.send("GET /metrics HTTP/1.0\r\n\r\n")
	s, h, _ = c.response()
	assert s == 200 and h["connection"] == "close"
	assert c.closed()
	c.close()
	c = Conn(b.http)
	c.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	assert c.response()[1]["connection"] == "keep-alive"
	c.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	assert c.response()[0] == 200
	c.close()


@pytest.mark.parametrize("request_bytes,status", [
	(b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400),        # space before the colon
	(b"GARBAGE\r\n\r\n", 400),
	(b"GET /metrics HTTP/1.1\r\n\r\n", 400),                    # HTTP/1.1 without Host
	(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400),
	(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
	 400),
	(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
	(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
	(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", 413),
	(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
	(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000, 431),  # never ends
])
def test_errors_that_end_the_connection(broker, request_bytes, status):
	b = http_broker(broker)
	c = Conn(b.http)
	c.send(request_bytes)
	s, h, body = c.response()
	assert s == status, body
	assert h["connection"] == "close"
	assert c.closed(), "the connection stays open after %d" % status
	c.close()
	assert get(b.http)[0] == 200  # the broker goes on


def test_errors_that_keep_the_connection(broker):
	b = http_broker(broker)
	c = Conn(b.http)
	c.request("GET", "/nope")
	assert c.response()[0] == 404
	c.request("DELETE", "/metrics")
	s, h, _ = c.response()
	assert s == 405 and h["allow"] == "GET, HEAD"
	c.request("GET", "/%zz")
	assert c.response()[0] == 400
	c.request("GET", "/" + "a" * 1100)
	assert c.response()[0] == 414
	c.request("GET", "/metrics")
	assert c.response()[0] == 200
	c.close()


def test_body_up_to_the_limit_is_read(broker):
	b = http_broker(broker, "http_body_size 100")
	c = Conn(b.http)
	c.send(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"b" * 60)
	time.sleep(0.05)  # the body in two pieces
	c.send(b"b" * 40 + b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	assert c.response()[0] == 405
	assert c.response()[0] == 200
	c.request("POST", "/metrics", body=b"c" * 101)
	assert c.response()[0] == 413
	c.close()


def test_slow_or_idle_client_is_closed(broker):
	b = http_broker(broker, "http_timeout 1")
	c = Conn(b.http)
	c.request("GET", "/metrics")
	assert c.response()[0] == 200
	t0 = time.monotonic()
	wait_until(c.closed, 5, what="the idle connection to be closed")
	assert time.monotonic() - t0 < 4
	c.close()
	c = Conn(b.http)
	c.send("GET /metrics HTTP/1.1\r\n")  # a head that never ends
	wait_until(c.closed, 5, what="the slow head to be cut")
	c.close()


def test_max_connections_on_the_http_listener(broker):
	b = http_broker(broker, "max_connections 2")
	keep = [Conn(b.http), Conn(b.http)]
	for k in keep:
		k.request("GET", "/metrics")
		assert k.response()[0] == 200
	third = Conn(b.http)
	assert third.closed()
	third.close()
	keep[0].close()

	def again():
		c = Conn(b.http)
		try:
			c.request("GET", "/metrics")
			return c.response()[0] == 200
		except (EOFError, ConnectionResetError):
			return False
		finally:
			c.close()
	wait_until(again, 5, what="a connection once one closed")
	keep[1].close()


def make_passwd(tmp_path, *users):
	path = str(tmp_path / "http-passwd")
	open(path, "w").close()
	for user, pw in users:
		subprocess.run([TARGET_BIN, "passwd", "-b", path, user, pw], check=True,
			capture_output=True, timeout=60)
	return path


def test_basic_access(broker, tmp_path):
	pw = make_passwd(tmp_path, ("admin", "s3cret"), ("user", "other"))
	b = http_broker(broker, "allow_anonymous false", "password_file " + pw, "http_admin admin")
	s, h, _ = get(b.http)
	assert s == 401 and h["www-authenticate"] == 'Basic realm="viesti"'
	s, h, _ = get(b.http, headers={"Authorization": basic("admin", "wrong")})
	assert s == 401 and h["www-authenticate"] == 'Basic realm="viesti"'
	assert get(b.http, headers={"Authorization": basic("nobody", "x")})[0] == 401
	assert get(b.http, headers={"Authorization": "Basic !!!"})[0] == 401
	assert get(b.http, headers={"Authorization": basic("user", "other")})[0] == 403
	assert get(b.http, "/nope", headers={"Authorization": basic("user", "other")})[0] == 403
	assert get(b.http, headers={"Authorization": basic("admin", "s3cret")})[0] == 200
	assert get(b.http, "/nope")[0] == 401  # no route is told without credentials
	# Keep-alive: the answer of the check is kept for the same credentials; other ones are
	# checked again; pipelined requests wait for their check in order. A failed check ends
	# the connection, as in MQTT: passwords cannot be guessed many to a connection.
	c = Conn(b.http)
	good = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % basic("admin",
		"s3cret")
	bad = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % basic("admin", "no")
	c.send(good + good + bad + good)
	assert [c.response()[0] for _ in range(2)] == [200, 200]
	s, h, _ = c.response()
	assert s == 401 and h["connection"] == "close"
	assert c.closed()
	c.close()


def test_credentials_are_checked_before_the_body_is_waited_for(broker, tmp_path):
	"""A request that announces a body is answered on its head when its credentials are
	missing or wrong, and the connection ends: the broker never holds a body for a client that
	may not send it (such bodies used to fill max_connecting_bytes for everyone)."""
	pw = make_passwd(tmp_path, ("admin", "s3cret"), ("user", "other"))
	b = http_broker(broker, "allow_anonymous false", "password_file " + pw, "http_admin admin")
	head = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n%s\r\n"
	for auth, status in [("", 401), ("Authorization: %s\r\n" % basic("admin", "bad"), 401),
			("Authorization: %s\r\n" % basic("user", "other"), 403)]:
		c = Conn(b.http)
		c.send(head % auth + "x")  # one byte of the 65,536 announced
		s, h, _ = c.response()
		assert s == status and h["connection"] == "close", (auth, s, h)
		assert c.closed()
		c.close()
	# With good credentials the body is waited for, and the request is answered once whole.
	c = Conn(b.http)
	c.send(head % ("Authorization: %s\r\n" % basic("admin", "s3cret")) + "x" * 1000)
	c.sock.settimeout(0.3)
	assert not c.closed()
	c.sock.settimeout(5)
	c.send("x" * (65536 - 1000))
	assert c.response()[0] == 405
	c.close()


def test_announced_bodies_cost_what_was_sent(broker, clients):
	"""Announcing a body costs the broker memory only as the body arrives: sixteen requests
	that announce 64 KiB and then send one byte leave room in a 1 MiB max_connecting_bytes for
	an MQTT client whose CONNECT comes in two pieces (the broker used to reserve what was
	announced, and such requests filled the budget of everyone's connections before
	CONNECT)."""
	b = http_broker(broker, "max_connecting_bytes 1048576", "threads 1")
	conns = [Conn(b.http) for _ in range(16)]
	for c in conns:
		c.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n")
	assert get(b.http)[0] == 200  # one worker: by now it has read every head
	for c in conns:
		c.send("x")  # the next read is where room for the body was reserved
	assert get(b.http)[0] == 200
	mq = clients.raw(b.port, 4)
	pkt = mq.connect_packet("two-pieces")
	mq.send(pkt[:5])
	assert get(b.http)[0] == 200  # by now it has read the first piece
	mq.send(pkt[5:])
	assert mq.expect(CONNACK).rc == 0
	for c in conns:
		c.close()


def test_basic_access_with_a_slow_hash_does_not_stall_mqtt(broker, tmp_path, clients):
	"""An argon2id check costs ~165 ms: it runs on an authentication thread, and MQTT clients
	of the same worker go on meanwhile."""
	path = str(tmp_path / "argon")
	open(path, "w").close()
	subprocess.run([TARGET_BIN, "passwd", "-b", "-H", "argon2id", path, "admin", "pw"],
		check=True, capture_output=True, timeout=60)
	b = http_broker(broker, "threads 1", "password_file " + path, "http_admin admin",
		"allow_anonymous false")
	c = clients.raw(b.port, 4)
	# Its own argon2id check takes seconds under ASan on a loaded machine.
	c.send(c.connect_packet("pinger", username="admin", password=b"pw"))
	assert c.expect(CONNACK, timeout=30).rc == 0
	conns = [Conn(b.http, timeout=60) for _ in range(4)]  # four argon2id checks under ASan
	for k in conns:
		k.request("GET", "/metrics", {"Authorization": basic("admin", "nope")})
	worst = 0
	for _ in range(10):
		t0 = time.monotonic()
		c.publish("t/ping", b"x", qos=1)
		worst = max(worst, time.monotonic() - t0)
	for k in conns:
		assert k.response()[0] == 401
		k.close()
	assert worst < 0.15, "a QoS 1 round trip took %.3f s during the checks" % worst


def test_https_listener(broker, pki):
	port = free_port()
	b = http_broker(broker, "certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1],
		port=port)
	ctx = ssl.create_default_context(cafile=pki["ca"])
	c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
	for _ in range(2):
		c.request("GET", "/metrics")
		r = c.getresponse()
		assert r.status == 200
		assert b"viesti_connections_total" in r.read()
	c.close()
	b.wait_log(r"listening on 127\.0\.0\.1:%d \(HTTPS\)" % port)
	# Plain HTTP to the TLS port gets nowhere, and the broker goes on.
	plain = Conn(port)
	plain.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	assert plain.closed()
	plain.close()


def test_protocol_http_in_the_config(broker, tmp_path):
	conf = tmp_path / "bad.conf"
	conf.write_text("listener %d\nprotocol httpx\n" % free_port())
	r = subprocess.run([TARGET_BIN, "broker", "-c", str(conf)], capture_output=True, timeout=10)
	assert r.returncode != 0
	assert b"mqtt, websockets, mqttsn or http" in r.stdout + r.stderr
