"""The JSON API under /api/v1 (issue 17 item 3, docs/http-api.md): every endpoint, its values
checked against what real paho clients did, pagination, and bad input (unknown client 404,
malformed JSON 400, wrong credentials 401, no right 403, unknown route 404, method 405, body
too large 413), each error as {"error": {"code", "message"}}."""

import base64
import json
import time

import pytest

from conftest import free_port, wait_until
from helpers import PahoClient, props, uid
from http_util import Conn, basic, http_lines, wait_listening
from test_http import make_passwd

pytestmark = pytest.mark.viesti_only


def api_broker(broker, *more):
	port = free_port()
	b = broker(*http_lines(port, *more))
	b.http = port
	wait_listening(port)
	return b


def call(b, method, path, body=None, auth=None, raw=None):
	"""(status, headers, parsed JSON body)."""
	c = Conn(b.http)
	try:
		h = {"Authorization": auth} if auth else {}
		if body is not None or raw is not None:
			h["Content-Type"] = "application/json"
		data = raw if raw is not None else (json.dumps(body).encode() if body is not None
			else b"")
		c.request(method, path, h, data)
		s, hd, text = c.response(head_only=method == "HEAD")
	finally:
		c.close()
	if method != "HEAD":
		assert hd["content-type"] == "application/json", (s, hd, text)
	return s, hd, (json.loads(text) if text else None)


def ok(b, method, path, body=None, status=200, **kw):
	s, _, j = call(b, method, path, body, **kw)
	assert s == status, (s, j)
	return j


def error(b, method, path, status, code=None, **kw):
	s, h, j = call(b, method, path, **kw)
	assert s == status, (s, j)
	assert set(j) == {"error"} and set(j["error"]) == {"code", "message"}, j
	assert j["error"]["message"]
	if code:
		assert j["error"]["code"] == code, j
	return h, j


def client_of(b, cid):
	return ok(b, "GET", "/api/v1/clients/" + cid)


def test_list_clients_shows_what_the_clients_did(broker):
	b = api_broker(broker)
	t0 = int(time.time())
	v5 = PahoClient(b.port, client_id=uid("api5"), version=5, keepalive=42, username="ann")
	v3 = PahoClient(b.port, client_id=uid("api3"), version=4, keepalive=17)
	try:
		listing = ok(b, "GET", "/api/v1/clients")
		got = {c["id"]: c for c in listing["clients"]}
		assert set(got) == {v5.client_id, v3.client_id}
		assert listing["count"] == 2 and listing["next_cursor"] is None
		c5, c3 = got[v5.client_id], got[v3.client_id]
		assert c5["protocol"] == "5.0" and c5["protocol_version"] == 5
		assert c3["protocol"] == "3.1.1" and c3["protocol_version"] == 4
		assert c5["username"] == "ann" and c3["username"] is None
		assert c5["keep_alive"] == 42 and c3["keep_alive"] == 17
		assert c5["listener"] == "127.0.0.1:%d" % b.port
		assert c5["address"].startswith("127.0.0.1:") and c5["connected"] is True
		assert t0 - 1 <= c5["connected_since"] <= time.time() + 1
		assert c5["inflight"] == 0 and c5["queued"] == 0 and c5["subscriptions"] == 0
		before = c3["bytes_in"]
		assert before > 0 and c3["bytes_out"] >= 4  # CONNECT in, CONNACK out
		v3.publish("api/bytes", b"x" * 1000, qos=1)
		# the PUBLISH (1000 bytes of payload and its header) counted on this connection only
		wait_until(lambda: client_of(b, v3.client_id)["bytes_in"] >= before + 1000, 5,
			what="bytes_in to count the publish")
		assert client_of(b, v5.client_id)["bytes_in"] < 1000
		# a client that leaves is no longer listed (its clean session ended)
		v3.disconnect()
		wait_until(lambda: [c["id"] for c in ok(b, "GET", "/api/v1/clients")["clients"]]
			== [v5.client_id], 5, what="the client that left to go")
	finally:
		v5.close()
		v3.close()


def test_pagination_and_prefix_search(broker):
	b = api_broker(broker)
	ids = ["pg-%s" % ch for ch in "abcde"] + ["other-1"]
	cs = [PahoClient(b.port, client_id=i) for i in ids]
	try:
		seen, cursor, pages = [], None, 0
		while True:
			q = "/api/v1/clients?prefix=pg-&limit=2" + ("&cursor=" + cursor if cursor else "")
			page = ok(b, "GET", q)
			pages += 1
			seen += [c["id"] for c in page["clients"]]
			assert page["count"] == len(page["clients"]) <= 2
			cursor = page["next_cursor"]
			if cursor is None:
				break
		assert seen == sorted(ids[:5]) and pages == 3
		assert [c["id"] for c in ok(b, "GET", "/api/v1/clients?prefix=oth")["clients"]] == \
			["other-1"]
		assert ok(b, "GET", "/api/v1/clients?prefix=zz")["clients"] == []
		# offline sessions appear with state=all
		off = PahoClient(b.port, client_id="pg-offline", clean=False)
		off.disconnect()
		wait_until(lambda: not client_of(b, "pg-offline")["connected"], 5, what="offline")
		assert "pg-offline" not in [c["id"] for c in
			ok(b, "GET", "/api/v1/clients?prefix=pg-")["clients"]]
		allc = ok(b, "GET", "/api/v1/clients?prefix=pg-&state=all")["clients"]
		offc = [c for c in allc if c["id"] == "pg-offline"][0]
		assert offc["connected"] is False and "offline_since" in offc
		error(b, "GET", "/api/v1/clients?limit=0", 400, "bad_parameter")
		error(b, "GET", "/api/v1/clients?limit=abc", 400, "bad_parameter")
		error(b, "GET", "/api/v1/clients?state=gone", 400, "bad_parameter")
		error(b, "GET", "/api/v1/clients?prefix=%zz", 400, "bad_parameter")
	finally:
		for c in cs:
			c.close()


def test_inspect_client_and_its_subscriptions(broker):
	from paho.mqtt.subscribeoptions import SubscribeOptions
	b = api_broker(broker)
	c = PahoClient(b.port, client_id="insp/ect", version=5)  # a '/' in the id
	try:
		c.subscribe("a/+/c", options=SubscribeOptions(qos=1, noLocal=True),
			properties=props("SUBSCRIBE", SubscriptionIdentifier=7))
		c.subscribe("x/#", options=SubscribeOptions(qos=2, retainAsPublished=True,
			retainHandling=2))
		one = client_of(b, "insp%2Fect")
		assert one["id"] == "insp/ect" and one["subscriptions"] == 2 and one["connected"]
		subs = ok(b, "GET", "/api/v1/clients/insp%2Fect/subscriptions")
		assert subs["count"] == 2
		got = {s["filter"]: s for s in subs["subscriptions"]}
		assert got["a/+/c"] == {"filter": "a/+/c", "qos": 1, "no_local": True,
			"retain_as_published": False, "retain_handling": 0,
			"subscription_identifier": 7}
		assert got["x/#"]["qos"] == 2 and got["x/#"]["retain_as_published"]
		assert got["x/#"]["retain_handling"] == 2
		error(b, "GET", "/api/v1/clients/nobody-here", 404, "unknown_client")
		error(b, "GET", "/api/v1/clients/nobody-here/subscriptions", 404, "unknown_client")
	finally:
		c.close()


def test_disconnect_a_5_0_client_with_administrative_action(broker):
	b = api_broker(broker)
	c = PahoClient(b.port, client_id="kick-me", version=5, clean=False,
		properties=props("CONNECT", SessionExpiryInterval=300))
	try:
		j = ok(b, "POST", "/api/v1/clients/kick-me/disconnect", status=202)
		assert j == {"id": "kick-me", "disconnected": True, "session_ended": False}
		assert c.disconnected.wait(5), "the client was not disconnected"
		rc = c.disconnect_rc
		assert getattr(rc, "value", rc) == 0x98  # DISCONNECT Administrative action
		# its session stays, offline
		wait_until(lambda: client_of(b, "kick-me")["connected"] is False, 5, what="offline")
		# an offline session: 409 unless it is ended
		error(b, "POST", "/api/v1/clients/kick-me/disconnect", 409, "not_connected")
		j = ok(b, "POST", "/api/v1/clients/kick-me/disconnect?session=end")
		assert j["session_ended"] is True and j["disconnected"] is False
		error(b, "GET", "/api/v1/clients/kick-me", 404, "unknown_client")
		error(b, "POST", "/api/v1/clients/kick-me/disconnect", 404, "unknown_client")
		error(b, "POST", "/api/v1/clients/x/disconnect?session=maybe", 400, "bad_parameter")
	finally:
		c.close()


def test_disconnect_and_end_the_session_of_a_connected_client(broker):
	b = api_broker(broker)
	c = PahoClient(b.port, client_id="end-me", version=4, clean=False)
	try:
		c.subscribe("keep/#", qos=1)
		ok(b, "POST", "/api/v1/clients/end-me/disconnect?session=end", status=202)
		assert c.disconnected.wait(5)
		wait_until(lambda: call(b, "GET", "/api/v1/clients/end-me")[0] == 404, 5,
			what="the session to end")
		assert ok(b, "GET", "/api/v1/stats")["subscriptions"] == 0
	finally:
		c.close()


def test_retained_list_pages_encodings_and_delete(broker):
	b = api_broker(broker)
	p = PahoClient(b.port, version=5)
	try:
		p.publish("r/text", "héllo".encode(), qos=1, retain=True,
			properties=props(ContentType="text/plain", CorrelationData=b"cd"))
		p.publish("r/bin", b"\xff\x00\x01", qos=0, retain=True)
		p.publish("r/deep/x", b"3", qos=2, retain=True)
		p.publish("other/t", b"o", retain=True)
		wait_until(lambda: ok(b, "GET", "/api/v1/retained?filter=r/%23")["count"] == 3, 5,
			what="3 retained messages")
		got = {m["topic"]: m for m in ok(b, "GET", "/api/v1/retained?filter=r/%23")["retained"]}
		assert list(got) == ["r/bin", "r/deep/x", "r/text"]  # sorted by topic
		t = got["r/text"]
		assert t["payload"] == "héllo" and t["encoding"] == "utf8" and t["qos"] == 1
		assert t["size"] == len("héllo".encode())
		assert t["properties"]["content_type"] == "text/plain"
		assert t["properties"]["correlation_data"] == "cd"
		bn = got["r/bin"]
		assert bn["encoding"] == "base64" and base64.b64decode(bn["payload"]) == b"\xff\x00\x01"
		forced = ok(b, "GET", "/api/v1/retained?filter=r/text&encoding=base64")["retained"][0]
		assert forced["encoding"] == "base64"
		assert base64.b64decode(forced["payload"]) == "héllo".encode()
		# pages
		p1 = ok(b, "GET", "/api/v1/retained?filter=r/%23&limit=2")
		assert [m["topic"] for m in p1["retained"]] == ["r/bin", "r/deep/x"]
		assert p1["next_cursor"] == "r/deep/x"
		p2 = ok(b, "GET", "/api/v1/retained?filter=r/%23&limit=2&cursor=r/deep/x")
		assert [m["topic"] for m in p2["retained"]] == ["r/text"] and p2["next_cursor"] is None
		assert [m["topic"] for m in ok(b, "GET", "/api/v1/retained?filter=r/%2B")["retained"]] \
			== ["r/bin", "r/text"]
		error(b, "GET", "/api/v1/retained", 400, "bad_parameter")  # a filter is needed
		error(b, "GET", "/api/v1/retained?filter=a/%23/b", 400, "bad_parameter")
		error(b, "GET", "/api/v1/retained?filter=%24share/g/x", 400, "bad_parameter")
		error(b, "GET", "/api/v1/retained?filter=r/%23&encoding=hex", 400, "bad_parameter")
		# delete by filter: gone from the store, and a new subscriber gets none of them
		assert ok(b, "DELETE", "/api/v1/retained?filter=r/%23") == {"filter": "r/#",
			"deleted": 3}
		assert ok(b, "GET", "/api/v1/retained?filter=r/%23")["retained"] == []
		assert ok(b, "GET", "/api/v1/retained?filter=other/%23")["count"] == 1
		s = PahoClient(b.port)
		s.subscribe("#")
		assert s.get().topic == "other/t"
		s.no_message()
		s.close()
	finally:
		p.close()


def test_publish_reaches_subscribers_with_its_properties(broker):
	b = api_broker(broker)
	s5 = PahoClient(b.port, version=5)
	s3 = PahoClient(b.port, version=4)
	try:
		s5.subscribe("pub/#", qos=2)
		s3.subscribe("pub/#", qos=1)
		j = ok(b, "POST", "/api/v1/publish", {
			"topic": "pub/a", "payload": "hi \u00e9", "qos": 1,
			"properties": {"content_type": "text/x", "response_topic": "re/ply",
				"correlation_data": "c1", "message_expiry_interval": 60,
				"payload_format_indicator": 1,
				"user_properties": [["k", "v"], ["k", "w"]]}})
		assert j == {"topic": "pub/a", "delivered": 2}
		m = s5.get()
		assert m.topic == "pub/a" and m.payload == "hi é".encode() and m.qos == 1
		pp = m.properties
		assert pp.ContentType == "text/x" and pp.ResponseTopic == "re/ply"
		assert pp.CorrelationData == b"c1" and pp.PayloadFormatIndicator == 1
		assert pp.UserProperty == [("k", "v"), ("k", "w")]
		assert 55 <= pp.MessageExpiryInterval <= 60
		m3 = s3.get()
		assert m3.payload == "hi é".encode() and m3.qos == 1
		# base64 payload, QoS 0, retained
		ok(b, "POST", "/api/v1/publish", {"topic": "pub/bin", "payload": "AAEC",
			"payload_encoding": "base64", "retain": True})
		assert s3.get().payload == b"\x00\x01\x02"
		r = ok(b, "GET", "/api/v1/retained?filter=pub/bin")["retained"]
		assert r[0]["payload"] == "AAEC" and r[0]["encoding"] == "base64"
		late = PahoClient(b.port)
		late.subscribe("pub/bin")
		got = late.get()
		assert got.retain and got.payload == b"\x00\x01\x02"
		late.close()
		assert ok(b, "POST", "/api/v1/publish", {"topic": "nobody/here"})["delivered"] == 0
	finally:
		s5.close()
		s3.close()


@pytest.mark.parametrize("body,code", [
	(b"{", "malformed_json"),
	(b'{"topic": "a",}', "malformed_json"),
	(b"\"\\ud800\"", "malformed_json"),
	(b"[1, 2]", "bad_request"),
	(b"{}", "bad_request"),
	(b'{"topic": "a/+"}', "bad_request"),
	(b'{"topic": "$SYS/x"}', "bad_request"),
	(b'{"topic": 5}', "bad_request"),
	(b'{"topic": "a", "qos": 3}', "bad_request"),
	(b'{"topic": "a", "qos": 1.5}', "bad_request"),
	(b'{"topic": "a", "retain": "yes"}', "bad_request"),
	(b'{"topic": "a", "payload": "!!", "payload_encoding": "base64"}', "bad_request"),
	(b'{"topic": "a", "properties": {"message_expiry_interval": -1}}', "bad_request"),
	(b'{"topic": "a", "properties": {"response_topic": "r/#"}}', "bad_request"),
	(b'{"topic": "a", "properties": {"user_properties": [["k"]]}}', "bad_request"),
])
def test_publish_refuses_bad_bodies(broker, body, code):
	b = api_broker(broker)
	error(b, "POST", "/api/v1/publish", 400, code, raw=body)


def test_routes_methods_and_sizes(broker):
	b = api_broker(broker, "http_body_size 100")
	error(b, "GET", "/api/v1/nothing", 404, "not_found")
	error(b, "GET", "/api/v2/clients", 404, "not_found")
	h, _ = error(b, "DELETE", "/api/v1/clients", 405, "method_not_allowed")
	assert h["allow"] == "GET, HEAD"
	h, _ = error(b, "GET", "/api/v1/publish", 405, "method_not_allowed")
	assert h["allow"] == "POST"
	h, _ = error(b, "PUT", "/api/v1/publish", 405, "method_not_allowed")
	error(b, "POST", "/api/v1/publish", 413, "payload_too_large",
		raw=json.dumps({"topic": "a", "payload": "x" * 200}).encode())
	s, h, _ = call(b, "HEAD", "/api/v1/stats")
	assert s == 200 and int(h["content-length"]) > 0


def test_stats_counts(broker):
	b = api_broker(broker, "threads 2")
	cs = [PahoClient(b.port) for _ in range(3)]
	try:
		cs[0].subscribe("s/1")
		cs[1].subscribe("s/2")
		cs[2].publish("s/r", b"v", retain=True)
		st = ok(b, "GET", "/api/v1/stats")
		assert st["clients_connected"] == 3 and st["sessions"] == 3
		assert st["subscriptions"] == 2 and st["retained_messages"] >= 1
		assert st["messages"]["received"] >= 1 and st["bytes"]["received"] > 0
		assert len(st["threads"]) == 2 and all(0 <= t["load"] <= 1 for t in st["threads"])
		assert st["version"] and st["uptime_seconds"] >= 0 and st["memory_resident_bytes"] > 0
		assert {"messages_received", "messages_sent", "bytes_received", "bytes_sent"} == \
			set(st["rates"])
		names = {(l["protocol"], l["port"]) for l in st["listeners"]}
		assert ("mqtt", b.port) in names and ("http", b.http) in names
		# a second of traffic shows as a rate
		for _ in range(20):
			cs[2].publish("s/1", b"x", qos=1)
		wait_until(lambda: ok(b, "GET", "/api/v1/stats")["rates"]["messages_received"] > 0,
			5, what="a receive rate")
	finally:
		for c in cs:
			c.close()


def test_reload_is_sighup(broker):
	b = api_broker(broker)
	assert ok(b, "POST", "/api/v1/reload", status=202) == {"reload": True}
	b.wait_log(r"SIGHUP: reloading", timeout=5)
	# still serving
	assert ok(b, "GET", "/api/v1/stats")["clients_connected"] == 0


def test_credentials_and_rights(broker, tmp_path):
	pw = make_passwd(tmp_path, ("admin", "s3cret"), ("user", "other"))
	b = api_broker(broker, "allow_anonymous false", "password_file " + pw, "http_admin admin")
	admin = basic("admin", "s3cret")
	h, _ = error(b, "GET", "/api/v1/clients", 401, "unauthorized")
	assert h["www-authenticate"] == 'Basic realm="viesti"'
	error(b, "GET", "/api/v1/clients", 401, "unauthorized", auth=basic("admin", "wrong"))
	error(b, "GET", "/api/v1/stats", 403, "forbidden", auth=basic("user", "other"))
	error(b, "POST", "/api/v1/publish", 403, "forbidden", auth=basic("user", "other"),
		raw=b'{"topic": "a"}')
	error(b, "POST", "/api/v1/publish", 401, "unauthorized", raw=b'{"topic": "a"}')
	assert ok(b, "GET", "/api/v1/clients", auth=admin)["clients"] == []
	assert ok(b, "POST", "/api/v1/publish", {"topic": "a"}, auth=admin)["delivered"] == 0


def test_retained_changes_through_the_api_survive_a_restart(broker, tmp_path):
	"""A retained publish and a delete made through the API are recorded by persistence like
	a client's: after a restart the published one is there and the deleted ones are not."""
	d = tmp_path / "store"
	d.mkdir()
	b = api_broker(broker, "persistence true", "persistence_location %s/" % d)
	p = PahoClient(b.port)
	try:
		p.publish("keep/old", b"from a client", qos=1, retain=True)
		p.publish("gone/1", b"x", qos=1, retain=True)
		p.publish("gone/2", b"y", qos=1, retain=True)
	finally:
		p.close()
	ok(b, "POST", "/api/v1/publish", {"topic": "keep/new", "payload": "from the API",
		"qos": 1, "retain": True})
	assert ok(b, "DELETE", "/api/v1/retained?filter=gone/%23")["deleted"] == 2
	b.restart()
	wait_listening(b.http)
	got = {m["topic"]: m["payload"] for m in
		ok(b, "GET", "/api/v1/retained?filter=%23")["retained"]}
	assert got == {"keep/old": "from a client", "keep/new": "from the API"}


def test_a_query_too_long_is_refused_not_cut(broker):
	b = api_broker(broker)
	error(b, "GET", "/api/v1/clients?prefix=" + "a" * 1100, 414, "uri_too_long")
	assert ok(b, "GET", "/api/v1/clients?prefix=" + "a" * 900)["clients"] == []


def test_disconnect_on_the_same_thread_as_the_request(broker):
	"""With one worker, the HTTP connection and the client's are on the same thread: the mail
	goes to the worker's own mailbox and is taken on its next turn."""
	b = api_broker(broker, "threads 1")
	c = PahoClient(b.port, client_id="same-thread", version=5)
	try:
		ok(b, "POST", "/api/v1/clients/same-thread/disconnect?session=end", status=202)
		assert c.disconnected.wait(5)
		assert getattr(c.disconnect_rc, "value", c.disconnect_rc) == 0x98
		wait_until(lambda: call(b, "GET", "/api/v1/clients/same-thread")[0] == 404, 5,
			what="the session to end")
	finally:
		c.close()
