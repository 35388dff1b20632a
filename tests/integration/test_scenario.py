"""End-to-end mission: a home with temperature sensors, a thermostat and an analytics service.

Sensors publish home/<room>/temperature (QoS 0 and 1, 3.1.1 and 5.0 clients); the thermostat
subscribes home/+/temperature; analytics subscribes home/# with a persistent session, goes
offline, and on return receives every QoS 1 reading it missed, in order per sensor, with none
lost or duplicated beyond QoS 1's allowance.
"""

import collections

from helpers import PahoClient, props, uid
from mqtt_raw import P, PUBLISH

ROOMS = ["kitchen", "living", "bedroom", "bath"]


def test_home_mission(broker, clients):
	b = broker()
	thermostat = clients.paho(b.port, client_id=uid("thermostat"), version=5)
	thermostat.subscribe("home/+/temperature", 1)

	analytics_id = uid("analytics")
	analytics = clients.raw(b.port, 4)
	analytics.connect(analytics_id, clean=False)
	analytics.subscribe(("home/#", 1))

	sensors = {}
	for i, room in enumerate(ROOMS):
		sensors[room] = clients.paho(b.port, client_id=uid("sensor-" + room),
			version=5 if i % 2 else 4)

	def round_(n, qos_by_room):
		for room in ROOMS:
			s = sensors[room]
			kw = {}
			if s.version == 5:
				kw["properties"] = props(UserProperty=[("unit", "C")])
			s.publish("home/%s/temperature" % room, b"%s:%d" % (room.encode(), n),
				qos=qos_by_room[room], **kw)

	qos = {room: i % 2 for i, room in enumerate(ROOMS)}  # QoS 0 and 1 sensors
	for n in range(5):
		round_(n, qos)
	# The thermostat gets every reading (loopback: QoS 0 is not lost in practice).
	got = thermostat.get_n(5 * len(ROOMS), timeout=5)
	per_room = collections.defaultdict(list)
	for m in got:
		per_room[m.topic.split("/")[1]].append(int(m.payload.split(b":")[1]))
	assert all(per_room[r] == list(range(5)) for r in ROOMS), dict(per_room)
	v5_readings = [m for m in got if m.properties and getattr(m.properties, "UserProperty",
		None)]
	assert v5_readings and all(m.properties.UserProperty == [("unit", "C")]
		for m in v5_readings)

	online = analytics.publishes(5 * len(ROOMS), timeout=5)
	assert len(online) == 20

	# Analytics goes offline abruptly; QoS 1 sensors keep reporting.
	analytics.close()
	all_qos1 = {room: 1 for room in ROOMS}
	for n in range(5, 15):
		round_(n, all_qos1)
	thermostat.get_n(10 * len(ROOMS), timeout=5)
	sensors["bath"].publish("home/bath/humidity", b"bath:55", qos=1)

	analytics = clients.raw(b.port, 4)
	assert analytics.connect(analytics_id, clean=False).session_present
	missed = analytics.publishes(10 * len(ROOMS) + 1, timeout=8)
	seen = collections.defaultdict(list)
	for m in missed:
		assert m.qos == 1
		if m.topic.endswith("temperature"):
			seen[m.topic.split("/")[1]].append(int(m.payload.split(b":")[1]))
	for room in ROOMS:
		assert seen[room] == list(range(5, 15)), (room, seen[room])
	assert any(m.topic == "home/bath/humidity" for m in missed)
	analytics.no_publish(0.3)

	# The thermostat did not get the humidity reading (home/+/temperature only).
	thermostat.no_message(0.3)
