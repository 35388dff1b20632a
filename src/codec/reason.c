/*
 * Reason codes: their names (MQTT 5.0 table 2-6), which packet may carry which
 * (sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1), and
 * the mapping of a 5.0 CONNACK reason code to a 3.1.1 return code.
 */
#include "codec/reason.h"

#include "codec/codec.h"

const char *vs_packet_name(int type)
{
	static const char *const names[16] = {
	    "reserved", "CONNECT",  "CONNACK",	  "PUBLISH", "PUBACK",	    "PUBREC",
	    "PUBREL",	"PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
	    "PINGREQ",	"PINGRESP", "DISCONNECT", "AUTH",
	};
	return names[type & 15];
}

const char *vs_reason_str(int rc)
{
	switch (rc) {
	case 0x00:
		return "Success";
	case 0x01:
		return "Granted QoS 1";
	case 0x02:
		return "Granted QoS 2";
	case 0x04:
		return "Disconnect with Will Message";
	case 0x10:
		return "No matching subscribers";
	case 0x11:
		return "No subscription existed";
	case 0x18:
		return "Continue authentication";
	case 0x19:
		return "Re-authenticate";
	case 0x80:
		return "Unspecified error";
	case 0x81:
		return "Malformed Packet";
	case 0x82:
		return "Protocol Error";
	case 0x83:
		return "Implementation specific error";
	case 0x84:
		return "Unsupported Protocol Version";
	case 0x85:
		return "Client Identifier not valid";
	case 0x86:
		return "Bad User Name or Password";
	case 0x87:
		return "Not authorized";
	case 0x88:
		return "Server unavailable";
	case 0x89:
		return "Server busy";
	case 0x8A:
		return "Banned";
	case 0x8B:
		return "Server shutting down";
	case 0x8C:
		return "Bad authentication method";
	case 0x8D:
		return "Keep Alive timeout";
	case 0x8E:
		return "Session taken over";
	case 0x8F:
		return "Topic Filter invalid";
	case 0x90:
		return "Topic Name invalid";
	case 0x91:
		return "Packet Identifier in use";
	case 0x92:
		return "Packet Identifier not found";
	case 0x93:
		return "Receive Maximum exceeded";
	case 0x94:
		return "Topic Alias invalid";
	case 0x95:
		return "Packet too large";
	case 0x96:
		return "Message rate too high";
	case 0x97:
		return "Quota exceeded";
	case 0x98:
		return "Administrative action";
	case 0x99:
		return "Payload format invalid";
	case 0x9A:
		return "Retain not supported";
	case 0x9B:
		return "QoS not supported";
	case 0x9C:
		return "Use another server";
	case 0x9D:
		return "Server moved";
	case 0x9E:
		return "Shared Subscriptions not supported";
	case 0x9F:
		return "Connection rate exceeded";
	case 0xA0:
		return "Maximum connect time";
	case 0xA1:
		return "Subscription Identifiers not supported";
	case 0xA2:
		return "Wildcard Subscriptions not supported";
	}
	return "Unknown";
}

/*
 * 3.1.1 has six return codes. Conditions on the server's side map to "Server unavailable" (3);
 * refusals of what the client sent map to "Not authorized" (5), the closest 3.1.1 has to a
 * refusal with a reason.
 */
int vs_reason_to_connack3(int rc)
{
	switch (rc) {
	case VS_RC_SUCCESS:
		return VS_CONNACK3_ACCEPTED;
	case VS_RC_UNSUPPORTED_VERSION:
		return VS_CONNACK3_BAD_VERSION;
	case VS_RC_CLIENT_ID_INVALID:
		return VS_CONNACK3_ID_REJECTED;
	case VS_RC_BAD_USER_OR_PASSWORD:
		return VS_CONNACK3_BAD_USER_OR_PASSWORD;
	case VS_RC_UNSPECIFIED:
	case VS_RC_IMPL_SPECIFIC:
	case VS_RC_SERVER_UNAVAILABLE:
	case VS_RC_SERVER_BUSY:
	case VS_RC_SERVER_SHUTTING_DOWN:
	case VS_RC_QUOTA_EXCEEDED:
	case VS_RC_USE_ANOTHER_SERVER:
	case VS_RC_SERVER_MOVED:
	case VS_RC_CONNECTION_RATE_EXCEEDED:
		return VS_CONNACK3_SERVER_UNAVAILABLE;
	}
	return VS_CONNACK3_NOT_AUTHORIZED;
}

enum {
	S_CONNACK = 1 << 0,
	S_PUBACK = 1 << 1, /* and PUBREC */
	S_PUBREL = 1 << 2, /* and PUBCOMP */
	S_SUBACK = 1 << 3,
	S_UNSUBACK = 1 << 4,
	S_DISCONNECT = 1 << 5,
	S_AUTH = 1 << 6,
};

#define ALL (S_CONNACK | S_PUBACK | S_PUBREL | S_SUBACK | S_UNSUBACK | S_DISCONNECT | S_AUTH)

static const uint8_t sets[256] = {
    [0x00] = ALL,
    [0x01] = S_SUBACK,
    [0x02] = S_SUBACK,
    [0x04] = S_DISCONNECT,
    [0x10] = S_PUBACK,
    [0x11] = S_UNSUBACK,
    [0x18] = S_AUTH,
    [0x19] = S_AUTH,
    [0x80] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISCONNECT,
    [0x81] = S_CONNACK | S_DISCONNECT,
    [0x82] = S_CONNACK | S_DISCONNECT,
    [0x83] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISCONNECT,
    [0x84] = S_CONNACK,
    [0x85] = S_CONNACK,
    [0x86] = S_CONNACK,
    [0x87] = S_CONNACK | S_PUBACK | S_SUBACK | S_UNSUBACK | S_DISCONNECT,
    [0x88] = S_CONNACK,
    [0x89] = S_CONNACK | S_DISCONNECT,
    [0x8A] = S_CONNACK,
    [0x8B] = S_DISCONNECT,
    [0x8C] = S_CONNACK,
    [0x8D] = S_DISCONNECT,
    [0x8E] = S_DISCONNECT,
    [0x8F] = S_SUBACK | S_UNSUBACK | S_DISCONNECT,
    [0x90] = S_CONNACK | S_PUBACK | S_DISCONNECT,
    [0x91] = S_PUBACK | S_SUBACK | S_UNSUBACK,
    [0x92] = S_PUBREL,
    [0x93] = S_DISCONNECT,
    [0x94] = S_DISCONNECT,
    [0x95] = S_CONNACK | S_DISCONNECT,
    [0x96] = S_DISCONNECT,
    [0x97] = S_CONNACK | S_PUBACK | S_SUBACK | S_DISCONNECT,
    [0x98] = S_DISCONNECT,
    [0x99] = S_CONNACK | S_PUBACK | S_DISCONNECT,
    [0x9A] = S_CONNACK | S_DISCONNECT,
    [0x9B] = S_CONNACK | S_DISCONNECT,
    [0x9C] = S_CONNACK | S_DISCONNECT,
    [0x9D] = S_CONNACK | S_DISCONNECT,
    [0x9E] = S_SUBACK | S_DISCONNECT,
    [0x9F] = S_CONNACK | S_DISCONNECT,
    [0xA0] = S_DISCONNECT,
    [0xA1] = S_SUBACK | S_DISCONNECT,
    [0xA2] = S_SUBACK | S_DISCONNECT,
};

bool vs_reason_valid(int rc, int type)
{
	int set;

	if (rc < 0 || rc > 255)
		return false;
	switch (type) {
	case VS_CONNACK:
		set = S_CONNACK;
		break;
	case VS_PUBACK:
	case VS_PUBREC:
		set = S_PUBACK;
		break;
	case VS_PUBREL:
	case VS_PUBCOMP:
		set = S_PUBREL;
		break;
	case VS_SUBACK:
		set = S_SUBACK;
		break;
	case VS_UNSUBACK:
		set = S_UNSUBACK;
		break;
	case VS_DISCONNECT:
		set = S_DISCONNECT;
		break;
	case VS_AUTH:
		set = S_AUTH;
		break;
	default:
		return false;
	}
	return (sets[rc] & set) != 0;
}
