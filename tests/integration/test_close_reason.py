"""The client can read why it was closed.

When the broker closes a connection after a DISCONNECT with a reason or a refusing CONNACK, the
client may have sent more than the broker read. Closing a socket with unread input makes the
kernel send a reset, and a reset throws away what the client had not read yet: the reason. The
broker shuts down its write side, reads and discards until the client closes (or a short
deadline), then closes (conn.c, lingering close).
"""

import socket

from mqtt_raw import DISCONNECT, PUBLISH, PUBREC, Closed, P
from helpers import uid


def _read_until_closed(c, timeout=20):
	got = []
	try:
		got = c.wait_closed(timeout=timeout)
	except (ConnectionResetError, Closed):
		pass
	return got


def test_disconnect_0x93_readable_behind_output_the_client_has_not_read(broker, clients):
	"""A client that is not reading (4 MB of retained messages wait for it) overflows Receive
	Maximum with 65,536 QoS 2 PUBLISHes it never completes. When it reads, it gets all the
	broker had for it and then DISCONNECT 0x93 [MQTT-3.3.4-9]; closing at once would have reset
	the connection and thrown the unread output, the reason included, away."""
	b = broker("max_inflight_messages 20")
	seed = clients.raw(b.port, 4)
	seed.connect(uid("seed"))
	for i in range(256):
		seed.publish("rm/r/%d" % i, b"r" * 16384, qos=1, retain=True)
	c = clients.raw(b.port, 5)
	c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)  # a small window: the
	# broker's output then waits in its socket when it closes
	ack = c.connect(uid("rm"))
	assert ack.props.get(P.RECEIVE_MAXIMUM) == 20
	c.subscribe(("rm/r/#", 0))  # the retained messages start to flow, and stop: it does not read
	burst = b"".join(
		c.publish_packet("rm/t", b"x", qos=2, pid=(i % 65535) + 1) for i in range(65536))
	try:
		c.sock.sendall(burst)  # the broker reads it all: the last 65,516 in its lingering close
	except OSError as e:
		raise AssertionError("the broker reset the connection: %s" % e)
	b.wait_log(r"disconnected: more QoS 2 messages in flight than Receive Maximum")
	got = _read_until_closed(c)
	assert sum(1 for p in got if p.type == PUBREC) == 20
	disc = [p for p in got if p.type == DISCONNECT]
	assert disc and disc[-1].rc == 0x93, "no DISCONNECT 0x93 read after %d packets: %r" % (
		len(got), got[-2:])
	assert got[-1].type == DISCONNECT
	assert sum(1 for p in got if p.type == PUBLISH) > 1  # output that waited is not lost
