"""Protocol errors on raw sockets. For each: the broker closes the connection, a 5.0 client gets
the reason code the spec names (when the broker sends one), and the broker keeps serving others.

4.13.1 lets the server close without a CONNACK for a bad CONNECT ("MAY send CONNACK") and makes
DISCONNECT before closing a SHOULD for other packets, so the general tests accept a silent close;
test_v5_error_disconnect_reason_and_log (viesti_only) holds Viesti to the SHOULD.
"""

import struct

import pytest

from mqtt_raw import (CONNACK, DISCONNECT, PUBLISH, SUBSCRIBE, P, encode_props, packet, utf8,
	varint)
from helpers import uid

MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID, TOPIC_FILTER_INVALID = 0x81, 0x82, 0x90, 0x8F


def _still_serving(b, clients):
	"""A second client can still connect, subscribe and get a message."""
	c = clients.raw(b.port, 4)
	c.connect(uid("ok"))
	c.subscribe(("alive/t", 1))
	c.publish("alive/t", b"yes", qos=1)
	assert c.expect(PUBLISH).payload == b"yes"


def _check_close(c, allowed):
	got = c.wait_closed(timeout=4)
	ctrl = [p for p in got if p.type in (CONNACK, DISCONNECT)]
	if c.version == 5 and ctrl:
		assert ctrl[-1].rc in allowed, "reason 0x%02x, wanted one of %s (got %r)" % (
			ctrl[-1].rc, ["0x%02x" % a for a in allowed], got)
	if c.version != 5:
		bad = [p for p in ctrl if p.type == DISCONNECT]
		assert not bad, "3.1.1 has no server DISCONNECT: %r" % got
	return got


# --- errors in or before CONNECT -----------------------------------------------------------------

def _conn(c, **kw):
	return c.connect_packet(uid("pe"), **kw)


def _publish_raw(version, topic_bytes, flags=0, pid=None):
	body = struct.pack("!H", len(topic_bytes)) + topic_bytes
	if pid is not None:
		body += struct.pack("!H", pid)
	if version == 5:
		body += b"\x00"
	return packet(PUBLISH, flags, body + b"payload")


PRE_CONNECT = {
	# [MQTT-3.1.2-3] the reserved flag must be 0
	"reserved_connect_flag": (lambda c: _conn(c, flags_extra=0x01), (MALFORMED, PROTOCOL_ERROR)),
	# [MQTT-3.1.0-1] the first packet must be CONNECT
	"publish_before_connect": (lambda c: _publish_raw(c.version, b"a/b"), ()),
	# [MQTT-3.1.2-1] wrong protocol name
	"bad_protocol_name": (lambda c: _conn(c, proto_name="MQTX"), (0x84, MALFORMED,
		PROTOCOL_ERROR, 0x01)),
	# [MQTT-3.1.2-11]: will QoS set without Will Flag
	"will_qos_without_will": (lambda c: _conn(c, flags_extra=0x08), (MALFORMED, PROTOCOL_ERROR)),
	# 2.1.3: a varint longer than 4 bytes is malformed
	"bad_remaining_length": (lambda c: b"\x10\xff\xff\xff\xff\x7f", (MALFORMED,)),
	# [MQTT-2.2.2-2]/2.1.2: packet type 0 is reserved
	"packet_type_0_first": (lambda c: b"\x00\x00", (MALFORMED, PROTOCOL_ERROR)),
}


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("case", sorted(PRE_CONNECT))
def test_connect_phase_errors(broker, clients, version, case):
	b = broker()
	build, allowed = PRE_CONNECT[case]
	c = clients.raw(b.port, version)
	c.send(build(c))
	got = _check_close(c, allowed + (0x84,) if case == "bad_protocol_name" else allowed)
	acks = [p for p in got if p.type == CONNACK]
	assert all(a.rc != 0 for a in acks), "CONNACK success for a bad CONNECT: %r" % got
	_still_serving(b, clients)


# --- errors after a successful CONNECT --------------------------------------------------------

def _subscribe_raw(c, payload, flags=2):
	body = struct.pack("!H", 1)
	if c.version == 5:
		body += b"\x00"
	return packet(SUBSCRIBE, flags, body + payload)


CONNECTED = {
	# [MQTT-3.1.0-2] a second CONNECT is a protocol error
	"second_connect": (lambda c: _conn(c), (PROTOCOL_ERROR,)),
	# [MQTT-3.3.1-4] QoS 3
	"publish_qos3": (lambda c: _publish_raw(c.version, b"a/b", flags=0x06, pid=1),
		(MALFORMED, PROTOCOL_ERROR)),
	# [MQTT-3.3.2-2] wildcards in a topic name
	"publish_wildcard_plus": (lambda c: _publish_raw(c.version, b"a/+/b"),
		(MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID)),
	"publish_wildcard_hash": (lambda c: _publish_raw(c.version, b"a/#"),
		(MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID)),
	# [MQTT-1.5.3-1] ill-formed UTF-8; [MQTT-1.5.3-2] U+0000
	"publish_invalid_utf8": (lambda c: _publish_raw(c.version, b"a/\xc3\x28"),
		(MALFORMED, TOPIC_NAME_INVALID)),
	"publish_utf16_surrogate": (lambda c: _publish_raw(c.version, b"a/\xed\xa0\x80"),
		(MALFORMED, TOPIC_NAME_INVALID)),
	"publish_nul_in_topic": (lambda c: _publish_raw(c.version, b"a/\x00b"),
		(MALFORMED, TOPIC_NAME_INVALID)),
	# [MQTT-3.8.3-3] (5.0 [MQTT-3.8.3-2]) SUBSCRIBE without a filter
	"subscribe_no_filters": (lambda c: _subscribe_raw(c, b""), (MALFORMED, PROTOCOL_ERROR)),
	# [MQTT-3.8.1-1] SUBSCRIBE fixed-header flags must be 0010
	"subscribe_bad_flags": (lambda c: _subscribe_raw(c, utf8("a/b") + b"\x00", flags=0),
		(MALFORMED, PROTOCOL_ERROR)),
	# [MQTT-3.8.3-4] (5.0 [MQTT-3.8.3-5]) reserved bits in the options byte
	"subscribe_reserved_option_bits": (lambda c: _subscribe_raw(c, utf8("a/b") + b"\xc0"),
		(MALFORMED, PROTOCOL_ERROR)),
	# 4.7.1.2: '#' must be last
	"subscribe_hash_not_last": (lambda c: _subscribe_raw(c, utf8("a/#/b") + b"\x00"),
		(MALFORMED, PROTOCOL_ERROR, TOPIC_FILTER_INVALID)),
	# [MQTT-3.6.1-1] PUBREL flags must be 0010
	"pubrel_bad_flags": (lambda c: packet(6, 0, struct.pack("!H", 1)),
		(MALFORMED, PROTOCOL_ERROR)),
	# 2.1.2: packet type 0 is reserved
	"packet_type_0": (lambda c: b"\x00\x00", (MALFORMED, PROTOCOL_ERROR)),
	"bad_remaining_length": (lambda c: b"\x30\xff\xff\xff\xff\x7f", (MALFORMED,)),
	# 3.12: PINGREQ has no variable header or payload (Remaining Length 0)
	"pingreq_with_body": (lambda c: packet(12, 0, b"\x00"), (MALFORMED, PROTOCOL_ERROR)),
}

# Mosquitto 2.0.11 answers a PINGREQ with a 1-byte body with PINGRESP and stays connected;
# 3.1.1 4.8 [MQTT-4.8.0-1] says a protocol violation MUST close the connection.
VIESTI_ONLY_CASES = {"pingreq_with_body"}

# Cases where a 3.1.1 broker may legitimately answer instead of closing.
V4_MAY_ANSWER = {"subscribe_hash_not_last"}


def _connected_error(b, clients, version, case, cid=None):
	build, allowed = CONNECTED[case]
	c = clients.raw(b.port, version)
	c.connect(cid or uid("pe"))
	c.send(build(c))
	if case == "subscribe_hash_not_last":
		# 3.1.1 allows SUBACK 0x80; 5.0 allows SUBACK 0x8F: then the connection may stay open.
		if c.is_open(0.5):
			from mqtt_raw import SUBACK
			ack = c.expect(SUBACK, timeout=0.1)
			assert ack.codes == [0x80 if version == 4 else 0x8F]
			return None
	return _check_close(c, allowed)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("case", [pytest.param(k, marks=pytest.mark.viesti_only)
	if k in VIESTI_ONLY_CASES else k for k in sorted(CONNECTED)])
def test_connected_phase_errors(broker, clients, version, case):
	b = broker()
	_connected_error(b, clients, version, case)
	_still_serving(b, clients)


def test_v5_subscription_identifier_zero(broker, clients):
	"""3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error."""
	b = broker()
	c = clients.raw(b.port, 5)
	c.connect(uid())
	c.send(c.subscribe_packet(1, [("a/b", 0)], props={P.SUBSCRIPTION_ID: 0}))
	_check_close(c, (MALFORMED, PROTOCOL_ERROR))
	_still_serving(b, clients)


def test_v5_unknown_property_in_connect(broker, clients):
	"""2.2.2.2: an unknown property identifier makes the packet malformed."""
	b = broker()
	c = clients.raw(b.port, 5)
	body = utf8("MQTT") + bytes([5, 2]) + struct.pack("!H", 60)
	body += varint(2) + b"\x7f\x00" + utf8(uid())
	c.send(packet(1, 0, body))
	got = _check_close(c, (MALFORMED, PROTOCOL_ERROR))
	assert all(p.rc != 0 for p in got if p.type == CONNACK)
	_still_serving(b, clients)


def test_v311_auth_packet_is_error(broker, clients):
	"""AUTH (type 15) does not exist in 3.1.1 [MQTT-2.2.1]: the connection is closed."""
	b = broker()
	c = clients.raw(b.port, 4)
	c.connect(uid())
	c.send(packet(15, 0, b""))
	_check_close(c, ())
	_still_serving(b, clients)


def test_many_bad_clients_then_good(broker, clients):
	b = broker()
	for i in range(20):
		c = clients.raw(b.port, 4)
		c.send(bytes([i * 13 % 256]) + b"\xff\xff\xff\xff\xff" + bytes(range(i)))
		c.close()
	_still_serving(b, clients)


# Post-CONNECT cases where 5.0 names a single reason code; Viesti must send it.
STRICT_V5 = {
	"second_connect": PROTOCOL_ERROR,
	"publish_qos3": MALFORMED,
	"publish_invalid_utf8": MALFORMED,
	"subscribe_no_filters": PROTOCOL_ERROR,
	"packet_type_0": MALFORMED,
	"bad_remaining_length": MALFORMED,
}


@pytest.mark.viesti_only
@pytest.mark.parametrize("case", sorted(STRICT_V5))
def test_v5_error_disconnect_reason_and_log(broker, clients, case):
	"""4.13.1: the server SHOULD send DISCONNECT with the reason code before closing; Viesti
	does, and its log names the client and the reason."""
	b = broker()
	cid = uid("bad-" + case.replace("_", "-"))
	got = _connected_error(b, clients, 5, case, cid=cid)
	discs = [p for p in got if p.type == DISCONNECT]
	assert discs and discs[0].rc == STRICT_V5[case], got
	b.wait_log(r"%s.*(disconnect|protocol|malformed|error|invalid|closed)|"
		r"(disconnect|protocol|malformed|error|invalid|closed).*%s" % (cid, cid))
	_still_serving(b, clients)
