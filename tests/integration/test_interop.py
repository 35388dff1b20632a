"""Interoperability with other clients: mosquitto_pub/mosquitto_sub, paho-mqtt, MQTT.js 5."""

import time

import pytest

from helpers import MosquittoSub, PahoClient, mosquitto_pub, props, run_mqttjs, uid
from mqtt_raw import P, PUBLISH


@pytest.mark.parametrize("version", [4, 5])
def test_mosquitto_pub_to_paho_sub(broker, clients, version):
	b = broker()
	sub = clients.paho(b.port, version=version)
	sub.subscribe("interop/+/x", 1)
	vflag = {4: "mqttv311", 5: "mqttv5"}[version]
	mosquitto_pub(b.port, "-V", vflag, "-q", "1", "-t", "interop/a/x", "-m", "from-cli")
	mosquitto_pub(b.port, "-V", vflag, "-q", "2", "-t", "interop/b/x", "-f", "/etc/hostname")
	m1, m2 = sub.get_n(2)
	assert (m1.topic, m1.payload, m1.qos) == ("interop/a/x", b"from-cli", 1)
	assert m2.topic == "interop/b/x" and m2.payload == open("/etc/hostname", "rb").read()


def test_mosquitto_pub_v5_user_property_to_raw(broker, clients):
	b = broker()
	sub = clients.raw(b.port, 5)
	sub.connect(uid())
	sub.subscribe(("interop/up", 1))
	mosquitto_pub(b.port, "-V", "mqttv5", "-q", "1", "-t", "interop/up", "-m", "p",
		"-D", "publish", "user-property", "who", "cli",
		"-D", "publish", "content-type", "text/x")
	m = sub.expect(PUBLISH)
	assert m.props.user() == [("who", "cli")]
	assert m.props.get(P.CONTENT_TYPE) == "text/x"


@pytest.mark.parametrize("vflag,pver", [("mqttv5", 5), ("mqttv311", 4), ("mqttv31", 3)])
def test_paho_pub_to_mosquitto_sub(broker, clients, vflag, pver):
	b = broker()
	s = MosquittoSub(b.port, "-V", vflag, "-q", "1", "-t", "interop/sub/#", "-C", "1", "-W",
		"8", "-v")
	try:
		pub = clients.paho(b.port, version=pver)
		# Publish until mosquitto_sub has subscribed and received one (it exits after -C 1).
		deadline = time.monotonic() + 8
		while s.p.poll() is None and time.monotonic() < deadline:
			pub.publish("interop/sub/t", b"hello from paho", qos=1)
			time.sleep(0.05)
		out, err, rc = s.output()
	finally:
		s.close()
	assert rc == 0, err
	assert out.strip().splitlines()[0] == "interop/sub/t hello from paho"


def test_mqttjs_pub_sub_user_properties(broker):
	b = broker()
	ups = {"a": "1", "b": ["x", "y"]}
	res = run_mqttjs({"port": b.port, "version": 5, "timeoutMs": 8000,
		"sub": {"topic": "js/#", "qos": 1, "count": 2},
		"pub": {"messages": [
			{"topic": "js/one", "payload": "p1", "qos": 1, "properties": {
				"userProperties": ups, "contentType": "text/plain"}},
			{"topic": "js/two", "payload": "p2", "qos": 2, "properties": {
				"responseTopic": "js/reply", "messageExpiryInterval": 100}}]}})
	assert not res["errors"], res
	assert res["connack"]["reasonCode"] in (0, None)
	r1, r2 = sorted(res["received"], key=lambda m: m["topic"])
	assert (r1["topic"], r1["payload"], r1["qos"]) == ("js/one", "p1", 1)
	assert r1["properties"]["userProperties"] == ups
	assert r1["properties"]["contentType"] == "text/plain"
	assert (r2["topic"], r2["payload"], r2["qos"]) == ("js/two", "p2", 1)  # min(2, granted 1)
	assert r2["properties"]["responseTopic"] == "js/reply"
	assert 0 < r2["properties"]["messageExpiryInterval"] <= 100


def test_mqttjs_sub_raw_pub_user_property_order(broker, clients):
	"""Same-name user properties from a raw client reach MQTT.js in order."""
	b = broker()
	import threading
	out = {}

	def run():
		out["res"] = run_mqttjs({"port": b.port, "version": 5, "timeoutMs": 8000,
			"sub": {"topic": "js2/t", "qos": 1, "count": 1}})

	t = threading.Thread(target=run)
	t.start()
	pub = clients.raw(b.port, 5)
	pub.connect(uid())
	watcher = clients.raw(b.port, 5)
	watcher.connect(uid())
	watcher.subscribe(("js2/t", 0))
	# Publish until the MQTT.js subscriber has got one.
	deadline = time.monotonic() + 8
	while t.is_alive() and time.monotonic() < deadline:
		pub.publish("js2/t", b"raw", qos=1, props={P.USER_PROPERTY: [("k", "1"), ("k", "2"),
			("j", "3")]})
		t.join(0.1)
	t.join(10)
	res = out["res"]
	assert not res["errors"], res
	assert res["received"][0]["properties"]["userProperties"] == {"k": ["1", "2"], "j": "3"}


def test_mqttjs_v311(broker):
	b = broker()
	res = run_mqttjs({"port": b.port, "version": 4, "timeoutMs": 8000,
		"sub": {"topic": "js3/+", "qos": 2, "count": 1},
		"pub": {"messages": [{"topic": "js3/a", "payload": "v4", "qos": 2}]}})
	assert not res["errors"], res
	assert res["received"][0]["payload"] == "v4" and res["received"][0]["qos"] == 2
