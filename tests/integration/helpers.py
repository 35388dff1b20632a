"""Client helpers for the integration suite: paho-mqtt 1.6 clients with blocking waits, the
mosquitto_pub/mosquitto_sub command-line clients, MQTT.js 5 through node, and pages in Debian's
chromium (headless, driven by playwright-core).

Every wait has a timeout; nothing sleeps a fixed time to let something happen.
"""

import json
import os
import queue
import subprocess
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt_raw import RawClient

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.abspath(os.path.join(HERE, "..", "node_modules"))
MQTTJS_RUNNER = os.path.join(HERE, "mqttjs_run.js")
BROWSER_RUNNER = os.path.join(HERE, "browser_run.js")
# MQTT.js's browser build (defines the global `mqtt`), for pages served to chromium.
MQTTJS_BROWSER_BUNDLE = os.path.join(NODE_MODULES, "mqtt", "dist", "mqtt.min.js")

PAHO_PROTOCOLS = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}


def uid(prefix="t"):
	return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class PahoClient:
	"""A paho client on its own network thread; received messages go to a queue."""

	def __init__(self, port, client_id=None, version=4, clean=True, keepalive=30,
			properties=None, will=None, connect=True, username=None, password=None):
		self.port = port
		self.version = version
		self.client_id = client_id if client_id is not None else uid("paho")
		kw = {"protocol": PAHO_PROTOCOLS[version]}
		if version != 5:
			kw["clean_session"] = clean
		self.clean = clean
		self.c = mqtt.Client(self.client_id, **kw)
		self.c.reconnect_delay_set(60, 120)  # a test decides when to reconnect
		self.messages = queue.Queue()
		self.connected = threading.Event()
		self.disconnected = threading.Event()
		self.connack = None
		self.disconnect_rc = None
		self._acks = {}
		self._lock = threading.Lock()
		self.c.on_connect = self._on_connect
		self.c.on_message = self._on_message
		self.c.on_subscribe = self._on_subscribe
		self.c.on_unsubscribe = self._on_unsubscribe
		self.c.on_disconnect = self._on_disconnect
		if will:
			self.c.will_set(**will)
		if username is not None:
			self.c.username_pw_set(username, password)
		self.keepalive = keepalive
		self.properties = properties
		if connect:
			self.connect()

	# callbacks run on paho's thread
	def _on_connect(self, c, ud, flags, rc, props=None):
		self.connack = {"flags": flags, "rc": rc, "props": props}
		self.connected.set()

	def _on_message(self, c, ud, msg):
		self.messages.put(msg)

	def _ack_event(self, mid):
		with self._lock:
			return self._acks.setdefault(mid, [threading.Event(), None])

	def _on_subscribe(self, c, ud, mid, granted, props=None):
		e = self._ack_event(mid)
		e[1] = granted
		e[0].set()

	def _on_unsubscribe(self, c, ud, mid, props=None, reasons=None):
		e = self._ack_event(mid)
		e[1] = reasons
		e[0].set()

	def _on_disconnect(self, c, ud, rc, props=None):
		self.disconnect_rc = rc
		self.disconnected.set()

	def connect(self, timeout=5.0, expect_rc=0):
		self.connected.clear()
		self.disconnected.clear()
		kw = {"keepalive": self.keepalive}
		if self.version == 5:
			kw["clean_start"] = self.clean
			if self.properties is not None:
				kw["properties"] = self.properties
		self.c.connect("127.0.0.1", self.port, **kw)
		self.c.loop_start()
		assert self.connected.wait(timeout), "paho CONNACK not received"
		rc = self.connack["rc"]
		rc = rc.value if hasattr(rc, "value") else rc
		if expect_rc is not None:
			assert rc == expect_rc, "CONNACK rc %r" % (self.connack["rc"],)
		return self.connack

	def subscribe(self, topic, qos=0, options=None, properties=None, timeout=5.0):
		"""Subscribes and waits for SUBACK; returns the granted QoS / reason codes."""
		if self.version == 5:
			opts = options or SubscribeOptions(qos=qos)
			rc, mid = self.c.subscribe(topic, options=opts, properties=properties)
		else:
			rc, mid = self.c.subscribe(topic, qos)
		assert rc == mqtt.MQTT_ERR_SUCCESS
		e = self._ack_event(mid)
		assert e[0].wait(timeout), "SUBACK not received"
		return e[1]

	def unsubscribe(self, topic, timeout=5.0):
		rc, mid = self.c.unsubscribe(topic)
		e = self._ack_event(mid)
		assert e[0].wait(timeout), "UNSUBACK not received"
		return e[1]

	def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=5.0):
		"""Publishes and waits until paho considers it complete (sent, PUBACK or PUBCOMP)."""
		info = self.c.publish(topic, payload, qos, retain, properties=properties)
		info.wait_for_publish(timeout)
		assert info.is_published(), "publish of %r not completed" % topic
		return info

	def get(self, timeout=3.0):
		try:
			return self.messages.get(timeout=timeout)
		except queue.Empty:
			raise AssertionError("no message within %.1fs" % timeout)

	def get_n(self, n, timeout=3.0):
		return [self.get(timeout) for _ in range(n)]

	def no_message(self, timeout=0.5):
		try:
			m = self.messages.get(timeout=timeout)
		except queue.Empty:
			return
		raise AssertionError("unexpected message on %r: %r" % (m.topic, m.payload))

	def disconnect(self, properties=None, reasoncode=None):
		try:
			if self.version == 5:
				self.c.disconnect(reasoncode=reasoncode, properties=properties)
			else:
				self.c.disconnect()
			self.disconnected.wait(2.0)
		finally:
			self.c.loop_stop()

	def close(self):
		try:
			self.c.disconnect()
		except Exception:
			pass
		self.c.loop_stop()

	def drop(self):
		"""Closes the socket without DISCONNECT (an abnormal disconnect)."""
		self.c.loop_stop()
		sock = self.c.socket()
		if sock:
			sock.close()


def props(ptype="PUBLISH", **kw):
	"""props(MessageExpiryInterval=5, UserProperty=[("a","b")]) -> paho Properties."""
	p = Properties(getattr(PacketTypes, ptype))
	for k, v in kw.items():
		setattr(p, k, v)
	return p


class ClientRegistry:
	def __init__(self):
		self.items = []

	def add(self, c):
		self.items.append(c)
		return c

	def raw(self, port, version=4, **kw):
		return self.add(RawClient(port, version=version, **kw))

	def paho(self, port, **kw):
		return self.add(PahoClient(port, **kw))

	def close_all(self):
		for c in self.items:
			try:
				c.close()
			except Exception:
				pass


# --- mosquitto command-line clients -------------------------------------------------------------

def mosquitto_pub(port, *args, timeout=10.0):
	r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port)] + list(args),
		capture_output=True, timeout=timeout)
	assert r.returncode == 0, "mosquitto_pub failed: %r" % (r.stderr,)
	return r


class MosquittoSub:
	"""mosquitto_sub in the background; output() waits for it to exit (use -C and -W)."""

	def __init__(self, port, *args):
		self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)] +
			list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

	def output(self, timeout=10.0):
		try:
			out, err = self.p.communicate(timeout=timeout)
		except subprocess.TimeoutExpired:
			self.p.kill()
			out, err = self.p.communicate()
			raise AssertionError("mosquitto_sub did not finish: %r %r" % (out, err))
		return out.decode(), err.decode(), self.p.returncode

	def close(self):
		if self.p.poll() is None:
			self.p.kill()
			self.p.wait(5)


# --- MQTT.js ----------------------------------------------------------------------------------

def run_mqttjs(spec, timeout=20.0):
	"""Runs mqttjs_run.js with a JSON spec (see that file); returns its JSON result."""
	env = dict(os.environ, NODE_PATH=NODE_MODULES)
	r = subprocess.run(["node", MQTTJS_RUNNER, json.dumps(spec)], capture_output=True,
		timeout=timeout, env=env)
	assert r.returncode == 0, "mqttjs runner failed (%d): %s %s" % (
		r.returncode, r.stdout.decode()[-2000:], r.stderr.decode()[-2000:])
	return json.loads(r.stdout.decode().strip().splitlines()[-1])


def run_browser(spec, timeout=60.0):
	"""Runs browser_run.js with a JSON spec (see that file): loads spec["url"] in headless chromium
	until spec["wait_for"] is truthy; returns its JSON result ({ok, result, console, errors})."""
	env = dict(os.environ, NODE_PATH=NODE_MODULES)
	r = subprocess.run(["node", BROWSER_RUNNER, json.dumps(spec)], capture_output=True,
		timeout=timeout, env=env)
	assert r.returncode == 0, "browser runner failed (%d): %s %s" % (
		r.returncode, r.stdout.decode()[-2000:], r.stderr.decode()[-2000:])
	return json.loads(r.stdout.decode().strip().splitlines()[-1])
