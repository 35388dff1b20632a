/*
 * Unit tests for the bridge sections of src/conf (`connection` and what follows it): Mosquitto's
 * defaults, one test per directive's parse rule, the `topic` line's optional words and ""
 * placeholders, and every error with its FILE:LINE. Names read as a checklist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/codec.h"
#include "conf/conf.h"

static char err[512];

static int parse(struct vs_config *c, const char *text)
{
	vs_config_init(c);
	return vs_config_parse_string(c, text, "test.conf", err, sizeof(err));
}

static void expect_error(const char *text, const char *want)
{
	struct vs_config c;
	int rc = parse(&c, text);
	if (rc != VS_ECONF || strcmp(err, want) != 0)
		print_error("text:\n%s\nwant: %s\ngot (%d): %s\n", text, want, rc, err);
	assert_int_equal(rc, VS_ECONF);
	assert_string_equal(err, want);
	vs_config_fini(&c);
}

static void expect_ok(struct vs_config *c, const char *text)
{
	int rc = parse(c, text);
	if (rc != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
}

/* Parses then validates; asserts the validation message. */
static void expect_invalid(const char *text, const char *want)
{
	struct vs_config c;
	expect_ok(&c, text);
	int rc = vs_config_validate(&c, err, sizeof(err));
	if (rc != VS_ECONF || strcmp(err, want) != 0)
		print_error("text:\n%s\nwant: %s\ngot (%d): %s\n", text, want, rc, err);
	assert_int_equal(rc, VS_ECONF);
	assert_string_equal(err, want);
	vs_config_fini(&c);
}

static void connection_opens_a_section_with_mosquittos_defaults(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection site1\naddress broker.example:1883\n");
	assert_int_equal(c.n_bridges, 1);
	struct vs_bridge_conf *b = &c.bridges[0];
	assert_string_equal(b->name, "site1");
	assert_int_equal(b->addresses.n, 1);
	assert_string_equal(b->addresses.v[0], "broker.example:1883");
	assert_int_equal(b->protocol_version, 4);
	assert_false(b->cleansession);
	assert_int_equal(b->local_cleansession, -1);
	assert_true(b->try_private);
	assert_true(b->notifications);
	assert_false(b->notifications_local_only);
	assert_null(b->notification_topic);
	assert_int_equal(b->keepalive_interval, 60);
	assert_int_equal(b->restart_timeout, 5);
	assert_int_equal(b->restart_timeout_cap, 30);
	assert_int_equal(b->start_type, VS_BRIDGE_AUTOMATIC);
	assert_int_equal(b->idle_timeout, 60);
	assert_int_equal(b->threshold, 10);
	assert_true(b->outgoing_retain);
	assert_true(b->attempt_unsubscribe);
	assert_false(b->round_robin);
	assert_null(b->remote_clientid);
	assert_null(b->local_clientid);
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
}

static void directives_go_to_the_last_connection(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\naddress h1\ntopic a/# out 1\n"
		      "listener 1884\n"
		      "connection b\naddress h2:1884\ntopic b/# in 2\nmax_connections 3\n");
	assert_int_equal(c.n_bridges, 2);
	assert_string_equal(c.bridges[0].addresses.v[0], "h1");
	assert_int_equal(c.bridges[0].n_topics, 1);
	assert_string_equal(c.bridges[1].addresses.v[0], "h2:1884");
	assert_int_equal(c.bridges[1].topics[0].dir, VS_BRIDGE_IN);
	assert_int_equal(c.listeners[0].max_connections, 3); /* listener directives still work */
	vs_config_fini(&c);
}

static void bridge_directive_before_any_connection_is_an_error(void **state)
{
	expect_error(
	    "port 1883\naddress 10.0.0.1\n",
	    "test.conf:2: 'address' outside a bridge section, expected a 'connection NAME' "
	    "line before it");
	expect_error("bridge_cafile /ca\n",
		     "test.conf:1: 'bridge_cafile' outside a bridge section, "
		     "expected a 'connection NAME' line before it");
}

static void connection_names_are_unique_and_required(void **state)
{
	expect_error("connection\n", "test.conf:1: missing value for 'connection', expected a "
				     "bridge name");
	expect_error("connection a\naddress h\nconnection a\n",
		     "test.conf:3: second bridge named 'a', expected a unique connection name");
	expect_error("connection a/b\n", "test.conf:1: bad bridge name 'a/b', expected a name "
					 "without '+', '#' or '/'");
	expect_error("connection a b\n", "test.conf:1: unexpected 'b' after the value of "
					 "'connection', expected end of line");
}

static void address_takes_several_hosts_and_ports(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\naddress h1:1883 h2 [::1]:8883 # two\naddresses 10.0.0.1:1\n"
		      "round_robin true\n");
	struct vs_bridge_conf *b = &c.bridges[0];
	assert_int_equal(b->addresses.n, 4);
	assert_string_equal(b->addresses.v[2], "[::1]:8883");
	assert_string_equal(b->addresses.v[3], "10.0.0.1:1");
	assert_true(b->round_robin);
	vs_config_fini(&c);
	expect_error(
	    "connection a\naddress h:0\n",
	    "test.conf:2: bad address 'h:0' for 'address', expected HOST[:PORT] with a port "
	    "from 1 to 65535 ([ADDRESS]:PORT for IPv6)");
	expect_error(
	    "connection a\naddress h:x\n",
	    "test.conf:2: bad address 'h:x' for 'address', expected HOST[:PORT] with a port "
	    "from 1 to 65535 ([ADDRESS]:PORT for IPv6)");
	expect_error(
	    "connection a\naddress ::1\n",
	    "test.conf:2: bad address '::1' for 'address', expected HOST[:PORT] with a port "
	    "from 1 to 65535 ([ADDRESS]:PORT for IPv6)");
	expect_error("connection a\naddress\n",
		     "test.conf:2: missing value for 'address', expected HOST[:PORT], one or more");
	expect_invalid("connection a\ntopic #\n",
		       "bridge a: no 'address', expected 'address HOST[:PORT]' in its section");
}

static void topic_optional_words(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\naddress h\n"
		      "topic sensors/#\n"
		      "topic cmd/+ in\n"
		      "topic x both 2\n"
		      "topic y out 1 site/ centre/\n"
		      "topic \"\" in 1 local/full remote/full\n"
		      "topic z both 0 \"\" pre/  # comment\n");
	struct vs_bridge_conf *b = &c.bridges[0];
	assert_int_equal(b->n_topics, 6);
	assert_string_equal(b->topics[0].pattern, "sensors/#");
	assert_int_equal(b->topics[0].dir, VS_BRIDGE_OUT);
	assert_int_equal(b->topics[0].qos, 0);
	assert_string_equal(b->topics[0].local_prefix, "");
	assert_string_equal(b->topics[0].remote_prefix, "");
	assert_int_equal(b->topics[1].dir, VS_BRIDGE_IN);
	assert_int_equal(b->topics[2].dir, VS_BRIDGE_BOTH);
	assert_int_equal(b->topics[2].qos, 2);
	assert_string_equal(b->topics[3].local_prefix, "site/");
	assert_string_equal(b->topics[3].remote_prefix, "centre/");
	assert_string_equal(b->topics[4].pattern, "");
	assert_string_equal(b->topics[4].local_prefix, "local/full");
	assert_string_equal(b->topics[5].local_prefix, "");
	assert_string_equal(b->topics[5].remote_prefix, "pre/");
	vs_config_fini(&c);
}

static void topic_errors(void **state)
{
	expect_error("connection a\ntopic\n",
		     "test.conf:2: missing pattern for 'topic', expected 'topic PATTERN "
		     "[in|out|both [QOS [LOCAL-PREFIX REMOTE-PREFIX]]]'");
	expect_error("connection a\ntopic a sideways\n",
		     "test.conf:2: bad direction 'sideways' for 'topic', expected in, out or both");
	expect_error("connection a\ntopic a in 3\n",
		     "test.conf:2: bad QoS '3' for 'topic', expected 0, 1 or 2");
	expect_error("connection a\ntopic a in 1 local/\n",
		     "test.conf:2: local prefix 'local/' without a remote prefix, expected 'topic "
		     "PATTERN [in|out|both [QOS [LOCAL-PREFIX REMOTE-PREFIX]]]'");
	expect_error("connection a\ntopic a in 1 l/ r/ extra\n",
		     "test.conf:2: unexpected 'extra' after the remote prefix of 'topic', expected "
		     "end of line");
	expect_error(
	    "connection a\ntopic a/#/b\n",
	    "test.conf:2: bad pattern 'a/#/b' for 'topic', expected a topic filter ('+' and "
	    "'#' alone in their level, '#' last)");
	expect_error("connection a\ntopic a+\n",
		     "test.conf:2: bad pattern 'a+' for 'topic', expected a topic filter ('+' and "
		     "'#' alone in their level, '#' last)");
	expect_error(
	    "connection a\ntopic a out 0 l/+/ r/\n",
	    "test.conf:2: prefix 'l/+/' of 'topic' holds a wildcard, expected a topic name "
	    "prefix");
	expect_error("connection a\ntopic \"\" out\n",
		     "test.conf:2: empty pattern \"\" for 'topic' without prefixes, expected "
		     "LOCAL-PREFIX and REMOTE-PREFIX to give the topic");
}

static void protocol_version_names(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\nbridge_protocol_version mqttv50\nconnection b\n"
		      "bridge_protocol_version mqttv31\n");
	assert_int_equal(c.bridges[0].protocol_version, 5);
	assert_int_equal(c.bridges[1].protocol_version, 3);
	vs_config_fini(&c);
	expect_error("connection a\nbridge_protocol_version 5\n",
		     "test.conf:2: bad value '5' for 'bridge_protocol_version', expected mqttv31, "
		     "mqttv311 or mqttv50");
}

static void session_and_identity_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\ncleansession true\nlocal_cleansession false\n"
		      "remote_clientid rc\nlocal_clientid lc\nremote_username ru\n"
		      "remote_password p w\nlocal_username lu\nlocal_password lp\n"
		      "try_private false\n");
	struct vs_bridge_conf *b = &c.bridges[0];
	assert_true(b->cleansession);
	assert_int_equal(b->local_cleansession, 0);
	assert_string_equal(b->remote_clientid, "rc");
	assert_string_equal(b->local_clientid, "lc");
	assert_string_equal(b->remote_username, "ru");
	assert_string_equal(b->remote_password, "p w"); /* the rest of the line, as Mosquitto */
	assert_string_equal(b->local_username, "lu");
	assert_string_equal(b->local_password, "lp");
	assert_false(b->try_private);
	vs_config_fini(&c);
	/* Mosquitto's older names. */
	expect_ok(&c, "connection a\nclientid c1\nusername u1\npassword p1\n");
	assert_string_equal(c.bridges[0].remote_clientid, "c1");
	assert_string_equal(c.bridges[0].remote_username, "u1");
	assert_string_equal(c.bridges[0].remote_password, "p1");
	vs_config_fini(&c);
	expect_error("connection a\ncleansession maybe\n",
		     "test.conf:2: bad value 'maybe' for 'cleansession', expected true or false");
	expect_error(
	    "connection a\nremote_clientid a b\n",
	    "test.conf:2: unexpected 'b' after the value of 'remote_clientid', expected end "
	    "of line");
	expect_invalid("connection a\naddress h\nlocal_clientid x\nconnection b\naddress h\n"
		       "local_clientid x\n",
		       "bridge b: the same local_clientid as an earlier bridge, expected a unique "
		       "one");
}

static void notifications_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\nnotifications false\nnotifications_local_only true\n"
		      "notification_topic site/state\n");
	assert_false(c.bridges[0].notifications);
	assert_true(c.bridges[0].notifications_local_only);
	assert_string_equal(c.bridges[0].notification_topic, "site/state");
	vs_config_fini(&c);
}

static void timing_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\nkeepalive_interval 30\nrestart_timeout 10\n"
		      "start_type lazy\nidle_timeout 120\nthreshold 50\n"
		      "connection b\nrestart_timeout 2 60\nstart_type once\n");
	assert_int_equal(c.bridges[0].keepalive_interval, 30);
	assert_int_equal(c.bridges[0].restart_timeout, 10);
	assert_int_equal(c.bridges[0].restart_timeout_cap, 0); /* one value: constant */
	assert_int_equal(c.bridges[0].start_type, VS_BRIDGE_LAZY);
	assert_int_equal(c.bridges[0].idle_timeout, 120);
	assert_int_equal(c.bridges[0].threshold, 50);
	assert_int_equal(c.bridges[1].restart_timeout, 2);
	assert_int_equal(c.bridges[1].restart_timeout_cap, 60);
	assert_int_equal(c.bridges[1].start_type, VS_BRIDGE_ONCE);
	vs_config_fini(&c);
	expect_error(
	    "connection a\nkeepalive_interval 2\n",
	    "test.conf:2: bad value '2' for 'keepalive_interval', expected an integer from "
	    "5 to 65535");
	expect_error("connection a\nrestart_timeout 30 5\n",
		     "test.conf:2: restart_timeout cap 5 below its base 30, expected BASE CAP with "
		     "CAP >= BASE");
	expect_error("connection a\nrestart_timeout 0\n",
		     "test.conf:2: bad value '0' for 'restart_timeout', expected an integer from 1 "
		     "to 86400");
	expect_error(
	    "connection a\nrestart_timeout 1 2 3\n",
	    "test.conf:2: unexpected '3' after the value of 'restart_timeout', expected end "
	    "of line");
	expect_error(
	    "connection a\nstart_type manual\n",
	    "test.conf:2: bad value 'manual' for 'start_type', expected automatic, lazy or "
	    "once");
	expect_error("connection a\nthreshold 0\n",
		     "test.conf:2: bad value '0' for 'threshold', expected an integer from 1 to "
		     "2147483647");
}

static void packet_and_retain_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\nbridge_max_packet_size 2048\nbridge_outgoing_retain false\n"
		      "bridge_attempt_unsubscribe false\n");
	assert_int_equal(c.bridges[0].max_packet_size, 2048);
	assert_false(c.bridges[0].outgoing_retain);
	assert_false(c.bridges[0].attempt_unsubscribe);
	vs_config_fini(&c);
	expect_error("connection a\nbridge_max_packet_size 10\n",
		     "test.conf:2: bad value '10' for 'bridge_max_packet_size', expected 0 (no "
		     "limit) or at least 20");
}

static void tls_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c,
		  "connection a\naddress h:8883\nbridge_cafile /etc/ca.pem\n"
		  "bridge_capath /etc/ssl/certs\nbridge_certfile /c.pem\nbridge_keyfile /k.pem\n"
		  "bridge_insecure true\nbridge_tls_version tlsv1.3\nbridge_alpn mqtt\n");
	struct vs_bridge_conf *b = &c.bridges[0];
	assert_string_equal(b->cafile, "/etc/ca.pem");
	assert_string_equal(b->capath, "/etc/ssl/certs");
	assert_string_equal(b->certfile, "/c.pem");
	assert_string_equal(b->keyfile, "/k.pem");
	assert_true(b->insecure);
	assert_string_equal(b->tls_version, "tlsv1.3");
	assert_string_equal(b->alpn, "mqtt");
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
	expect_ok(&c, "connection a\naddress h\nbridge_identity me\nbridge_psk 0aFF\n");
	assert_string_equal(c.bridges[0].identity, "me");
	assert_string_equal(c.bridges[0].psk, "0aFF");
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
	expect_error(
	    "connection a\nbridge_tls_version tlsv1.0\n",
	    "test.conf:2: bad value 'tlsv1.0' for 'bridge_tls_version', expected tlsv1.2 or "
	    "tlsv1.3");
	expect_error("connection a\nbridge_psk 0xab\n",
		     "test.conf:2: bad value for 'bridge_psk', expected an even number of "
		     "hexadecimal digits (no 0x, at most 256 bytes)");
	expect_error("connection a\nbridge_psk abc\n",
		     "test.conf:2: bad value for 'bridge_psk', expected an even number of "
		     "hexadecimal digits (no 0x, at most 256 bytes)");
	expect_invalid("connection a\naddress h\nbridge_cafile /ca\nbridge_certfile /c\n",
		       "bridge a: bridge_certfile and bridge_keyfile go together, expected both or "
		       "neither");
	expect_invalid("connection a\naddress h\nbridge_certfile /c\nbridge_keyfile /k\n",
		       "bridge a: bridge_certfile without bridge_cafile or bridge_capath, expected "
		       "one of them (TLS is on only with a CA, as in Mosquitto)");
	expect_invalid("connection a\naddress h\nbridge_psk ab\n",
		       "bridge a: bridge_psk and bridge_identity go together, expected both or "
		       "neither");
	expect_invalid(
	    "connection a\naddress h\nbridge_psk ab\nbridge_identity i\nbridge_cafile /c\n",
	    "bridge a: bridge_psk with bridge_cafile, bridge_capath or bridge_certfile, "
	    "expected either a pre-shared key or certificates");
	expect_invalid("connection a\naddress h\nbridge_require_ocsp true\n",
		       "bridge a: 'bridge_require_ocsp true' is not supported yet");
}

static void count_report(void *ud, const char *msg)
{
	(void)msg;
	(*(int *)ud)++;
}

static void test_config_reports_every_bridge_problem(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\nconnection b\naddress h\nbridge_psk ab\n");
	int n = 0;
	assert_int_equal(vs_config_validate_all(&c, count_report, &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), VS_ECONF);
	assert_string_equal(err, "bridge a: no 'address', expected 'address HOST[:PORT]' in its "
				 "section");
	vs_config_fini(&c);
}

static void topic_matching_follows_mqtt(void **state)
{
	assert_true(vs_topic_match("a/b", "a/b"));
	assert_false(vs_topic_match("a/b", "a/bc"));
	assert_false(vs_topic_match("a/bc", "a/b"));
	assert_true(vs_topic_match("a/+/c", "a/x/c"));
	assert_false(vs_topic_match("a/+/c", "a/x/y/c"));
	assert_true(vs_topic_match("a/+", "a/")); /* empty level */
	assert_true(vs_topic_match("a/#", "a"));  /* [MQTT-4.7.1-2] parent level */
	assert_true(vs_topic_match("a/#", "a/b/c"));
	assert_true(vs_topic_match("#", "x/y"));
	assert_false(vs_topic_match("#", "$SYS/x")); /* [MQTT-4.7.2-1] */
	assert_false(vs_topic_match("+/x", "$SYS/x"));
	assert_true(vs_topic_match("$SYS/#", "$SYS/x"));
	assert_true(vs_topic_match("site/", "site/"));
	assert_false(vs_topic_match("site/a", "site"));
}

static void topic_mapping_swaps_prefixes(void **state)
{
	struct vs_config c;
	expect_ok(&c, "connection a\ntopic # out 1 site/ centre/\ntopic cmd/+ in 1 \"\" remote/\n"
		      "topic \"\" both 0 local/full remote/whole\ntopic plain/# both\n");
	struct vs_bridge_topic *t = c.bridges[0].topics;
	char *m = vs_bridge_topic_map(&t[0], "site/a/b", true);
	assert_string_equal(m, "centre/a/b");
	free(m);
	m = vs_bridge_topic_map(&t[0], "centre/a/b", false);
	assert_string_equal(m, "site/a/b");
	free(m);
	m = vs_bridge_topic_map(&t[1], "remote/cmd/x", false);
	assert_string_equal(m, "cmd/x");
	free(m);
	m = vs_bridge_topic_map(&t[1], "cmd/x", true);
	assert_string_equal(m, "remote/cmd/x");
	free(m);
	m = vs_bridge_topic_map(&t[2], "local/full", true); /* empty pattern: the prefixes */
	assert_string_equal(m, "remote/whole");
	free(m);
	m = vs_bridge_topic_map(&t[2], "remote/whole", false);
	assert_string_equal(m, "local/full");
	free(m);
	m = vs_bridge_topic_map(&t[3], "plain/x", true);
	assert_string_equal(m, "plain/x");
	free(m);
	assert_null(vs_bridge_topic_map(&t[0], "other/a", true)); /* without the prefix */
	vs_config_fini(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connection_opens_a_section_with_mosquittos_defaults),
	    cmocka_unit_test(directives_go_to_the_last_connection),
	    cmocka_unit_test(bridge_directive_before_any_connection_is_an_error),
	    cmocka_unit_test(connection_names_are_unique_and_required),
	    cmocka_unit_test(address_takes_several_hosts_and_ports),
	    cmocka_unit_test(topic_optional_words),
	    cmocka_unit_test(topic_errors),
	    cmocka_unit_test(protocol_version_names),
	    cmocka_unit_test(session_and_identity_directives),
	    cmocka_unit_test(notifications_directives),
	    cmocka_unit_test(timing_directives),
	    cmocka_unit_test(packet_and_retain_directives),
	    cmocka_unit_test(tls_directives),
	    cmocka_unit_test(test_config_reports_every_bridge_problem),
	    cmocka_unit_test(topic_matching_follows_mqtt),
	    cmocka_unit_test(topic_mapping_swaps_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
