"""$SYS topics: published every sys_interval, not matched by a leading wildcard."""

import re
import time

from mqtt_raw import PUBLISH
from helpers import uid

WANTED = ["$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
	"$SYS/broker/messages/received"]


def _done(seen):
	"""All topics seen, with counters that reflect this test's traffic (the first values may be
	retained ones from before the clients connected)."""
	if not all(t in seen for t in WANTED):
		return False
	try:
		return (int(seen["$SYS/broker/clients/connected"]) >= 2 and
			int(seen["$SYS/broker/messages/received"]) >= 1)
	except ValueError:
		return True  # let the asserts report it


def _collect_sys(c, timeout=5.0):
	seen = {}
	deadline = time.monotonic() + timeout
	while not _done(seen) and time.monotonic() < deadline:
		try:
			p = c.expect(PUBLISH, timeout=max(0.05, deadline - time.monotonic()))
		except TimeoutError:
			break
		c.ack(p)
		seen[p.topic] = p.payload.decode("utf-8", "replace")
	return seen


def test_sys_topics_published(broker, clients):
	b = broker("sys_interval 1")
	other = clients.raw(b.port, 4)
	other.connect(uid())
	other.publish("sys/traffic", b"x", qos=1)
	c = clients.raw(b.port, 4)
	c.connect(uid())
	c.subscribe(("$SYS/#", 1))
	seen = _collect_sys(c)
	missing = [t for t in WANTED if t not in seen]
	assert not missing, "missing %r; got %r" % (missing, sorted(seen))
	assert seen["$SYS/broker/version"].strip()
	assert re.match(r"^\d+", seen["$SYS/broker/uptime"]), seen["$SYS/broker/uptime"]
	assert int(seen["$SYS/broker/clients/connected"]) >= 2
	assert int(seen["$SYS/broker/messages/received"]) >= 1


def test_sys_not_matched_by_leading_wildcard(broker, clients):
	"""[MQTT-4.7.2-1] '#' and '+/...' do not match topics starting with '$'."""
	b = broker("sys_interval 1")
	c = clients.raw(b.port, 4)
	c.connect(uid())
	c.subscribe([("#", 0), ("+/broker/#", 0), ("+/broker/uptime", 0)])
	got = [p for p in c.drain(2.3) if p.type == PUBLISH and p.topic.startswith("$")]
	assert not got, got
	# ...while an explicit $SYS subscription on the same connection does get them.
	c.subscribe(("$SYS/broker/uptime", 0))
	assert c.expect(PUBLISH, timeout=3).topic == "$SYS/broker/uptime"
