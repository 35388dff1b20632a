#!/usr/bin/python3
"""Regenerates the mosquitto.db samples in this directory with Debian's mosquitto 2.0.

Usage: make_files.py [PORT]   (run from anywhere; needs /usr/sbin/mosquitto, mosquitto_pub/_sub
and python3-paho-mqtt). Each sample is the file Mosquitto writes on SIGTERM:
  small.db   MQTT 3.1.1: two retained messages, session "subA" (two subscriptions) with one
             QoS 1 message in flight (retained, sent at subscribe, never acknowledged) and three
             QoS 1 messages queued while it was away.
  v5.db      MQTT 5: a retained message with properties (content type, user property, expiry),
             session "subV5" (expiry 7200 s; no-local, retain-as-published, subscription id 7)
             with queued QoS 2 and QoS 1 messages carrying properties, a QoS 2 message in flight
             (waiting for PUBREC), and session "sub311" sharing the queued messages.
  empty.db   a broker that never had any state: header and configuration chunk only.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

HERE = os.path.dirname(os.path.abspath(__file__))


def start(d, port):
	with open(os.path.join(d, "m.conf"), "w") as f:
		f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n" % port)
		f.write("persistence_location %s/\n" % d)
		if os.geteuid() == 0:
			f.write("user root\n")
	p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", os.path.join(d, "m.conf")],
		stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
	for _ in range(100):
		if subprocess.call(["mosquitto_pub", "-p", str(port), "-t", "probe", "-n"],
				stderr=subprocess.DEVNULL) == 0:
			return p
		time.sleep(0.05)
	raise SystemExit("mosquitto did not start")


def stop(p, d, name):
	p.terminate()
	p.wait(10)
	shutil.copy(os.path.join(d, "mosquitto.db"), os.path.join(HERE, name))


def pub(port, *args):
	subprocess.check_call(["mosquitto_pub", "-p", str(port)] + list(args))


def v5_session(port):
	c = mqtt.Client("subV5", protocol=mqtt.MQTTv5)
	props = Properties(PacketTypes.CONNECT)
	props.SessionExpiryInterval = 7200
	c.connect("127.0.0.1", port, clean_start=False, properties=props)
	c.loop_start()
	sp = Properties(PacketTypes.SUBSCRIBE)
	sp.SubscriptionIdentifier = 7
	done = []
	c.on_subscribe = lambda *a: done.append(1)
	c.subscribe("v5/q/#", options=SubscribeOptions(qos=2, noLocal=True, retainAsPublished=True),
		properties=sp)
	while not done:
		time.sleep(0.02)
	c.disconnect()
	c.loop_stop()


def main():
	port = int(sys.argv[1]) if len(sys.argv) > 1 else 21883
	with tempfile.TemporaryDirectory() as d:
		p = start(d, port)
		stop(p, d, "empty.db")
	with tempfile.TemporaryDirectory() as d:
		p = start(d, port)
		pub(port, "-r", "-q", "1", "-t", "home/temp", "-m", "21.5")
		pub(port, "-r", "-q", "0", "-t", "home/hum", "-m", "40")
		subprocess.check_call(["mosquitto_sub", "-p", str(port), "-c", "-i", "subA", "-q", "1",
			"-t", "home/#", "-t", "alerts", "-E"])
		for i in (1, 2, 3):
			pub(port, "-q", "1", "-t", "alerts", "-m", "alert %d" % i)
		stop(p, d, "small.db")
	with tempfile.TemporaryDirectory() as d:
		p = start(d, port)
		pub(port, "-V", "5", "-r", "-q", "1", "-t", "v5/ret", "-m", "retained-with-props",
			"-D", "publish", "content-type", "text/plain", "-D", "publish", "user-property",
			"color", "blue", "-D", "publish", "message-expiry-interval", "86400")
		pub(port, "-V", "5", "-r", "-q", "2", "-t", "v5/q/r2", "-m", "retained qos2")
		v5_session(port)
		subprocess.check_call(["mosquitto_sub", "-p", str(port), "-V", "311", "-c", "-i",
			"sub311", "-q", "2", "-t", "v5/q/+", "-E"])
		pub(port, "-V", "5", "-q", "2", "-t", "v5/q/a", "-m", "qos2 props", "-D", "publish",
			"response-topic", "resp/t", "-D", "publish", "correlation-data", "abc123", "-D",
			"publish", "payload-format-indicator", "1", "-D", "publish", "user-property", "a",
			"1", "-D", "publish", "user-property", "b", "2")
		pub(port, "-V", "5", "-q", "1", "-t", "v5/q/b", "-m", "qos1 expiring", "-D",
			"publish", "message-expiry-interval", "3600")
		pub(port, "-q", "0", "-t", "v5/q/c", "-m", "qos0")
		stop(p, d, "v5.db")


if __name__ == "__main__":
	main()
