"""Log lines a client can cause with every packet are rationed per connection: a hostile client
publishing to a denied topic as fast as it can neither fills the disk nor drowns the other
clients' lines (at most VS_CONN_LOG_BURST = 10 such lines per 10 s, then a count of what was
left out when the connection closes or the next window opens)."""

import re

import pytest

from conftest import wait_until
from mqtt_raw import RawClient

pytestmark = pytest.mark.viesti_only


def test_denied_publish_flood_is_rationed(broker, tmp_path):
	acl = tmp_path / "acl"
	acl.write_text("topic readwrite ok/#\n")
	b = broker("allow_anonymous true", "acl_file %s" % acl)
	with RawClient(b.port) as flood:
		flood.connect("flooder")
		for i in range(500):
			flood.publish("secret/%d" % i, b"x")
		flood.publish("secret/last", b"x", qos=1)  # its PUBACK: all 501 were handled
		with RawClient(b.port) as other:  # another client's lines still get through
			other.connect("other")
			other.publish("also/denied", b"x", qos=1)
		flood.disconnect()
	b.wait_log(r"client flooder: \d+ more line\(s\) like those above left out", timeout=5)
	text = b.log_text()
	denied = re.findall(r"denied PUBLISH from client flooder", text)
	left = [int(n) for n in re.findall(r"client flooder: (\d+) more line", text)]
	# The 10 s window may turn over once during the flood: at most two bursts.
	assert 10 <= len(denied) <= 20, len(denied)
	assert len(denied) + sum(left) == 501
	assert "denied PUBLISH from client other to 'also/denied'" in text
