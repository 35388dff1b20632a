/*
 * Bridge sections of the configuration (see conf.h): defaults, teardown, and the `topic` line,
 * whose optional words and "" placeholders are the one piece of bridge syntax with more than
 * one value. The directive table in parse.c routes each bridge directive into the last
 * `connection` section; what the values mean at run time is broker/bridge.c's business.
 *
 * Defaults are Mosquitto 2.0's (mosquitto.conf(5)): cleansession false, try_private true,
 * notifications true, keepalive_interval 60, restart_timeout 5 30 (backoff), start_type
 * automatic, idle_timeout 60, threshold 10, bridge_outgoing_retain true,
 * bridge_attempt_unsubscribe true, bridge_protocol_version mqttv311.
 */
#include "conf/conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int vs_bridge_conf_init(struct vs_bridge_conf *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->protocol_version = 4;
	b->local_cleansession = -1;
	b->try_private = true;
	b->notifications = true;
	b->keepalive_interval = 60;
	b->restart_timeout = 5;
	b->restart_timeout_cap = 30;
	b->idle_timeout = 60;
	b->threshold = 10;
	b->outgoing_retain = true;
	b->attempt_unsubscribe = true;
	b->name = strdup(name);
	return b->name ? 0 : -ENOMEM;
}

void vs_bridge_topic_fini(struct vs_bridge_topic *t)
{
	free(t->pattern);
	free(t->local_prefix);
	free(t->remote_prefix);
	memset(t, 0, sizeof(*t));
}

void vs_bridge_conf_fini(struct vs_bridge_conf *b)
{
	char **strs[] = {&b->name,
			 &b->remote_clientid,
			 &b->local_clientid,
			 &b->remote_username,
			 &b->remote_password,
			 &b->local_username,
			 &b->local_password,
			 &b->notification_topic,
			 &b->cafile,
			 &b->capath,
			 &b->certfile,
			 &b->keyfile,
			 &b->tls_version,
			 &b->alpn,
			 &b->identity,
			 &b->psk};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	vs_strlist_fini(&b->addresses);
	for (size_t i = 0; i < b->n_topics; i++)
		vs_bridge_topic_fini(&b->topics[i]);
	free(b->topics);
	b->topics = NULL;
	b->n_topics = 0;
}

/* [MQTT-4.7.1-2], [MQTT-4.7.1-3]: '#' alone and last, '+' alone in its level. */
static bool filter_ok(const char *f)
{
	if (!*f)
		return false;
	for (const char *p = f; *p; p++) {
		bool starts = p == f || p[-1] == '/';
		bool ends = p[1] == '\0' || p[1] == '/';
		if (*p == '#' && !(starts && p[1] == '\0'))
			return false;
		if (*p == '+' && !(starts && ends))
			return false;
	}
	return true;
}

/* "" in the file stands for the empty string (Mosquitto). */
static char *unquote(const char *w)
{
	return strdup(strcmp(w, "\"\"") == 0 ? "" : w);
}

static int bad(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return VS_ECONF;
}

static int parse_words(char *words, struct vs_bridge_topic *t, char *why, size_t whylen)
{
	static const char usage[] =
	    "expected 'topic PATTERN [in|out|both [QOS [LOCAL-PREFIX REMOTE-PREFIX]]]'";
	char *w = vs_conf_next_word(&words);
	if (!w)
		return bad(why, whylen, "missing pattern for 'topic', %s", usage);
	if (!(t->pattern = unquote(w)))
		return -ENOMEM;
	if ((w = vs_conf_next_word(&words)) != NULL && w[0] != '#') {
		if (strcmp(w, "out") == 0)
			t->dir = VS_BRIDGE_OUT;
		else if (strcmp(w, "in") == 0)
			t->dir = VS_BRIDGE_IN;
		else if (strcmp(w, "both") == 0)
			t->dir = VS_BRIDGE_BOTH;
		else
			return bad(why, whylen,
				   "bad direction '%s' for 'topic', expected in, out or both", w);
		w = vs_conf_next_word(&words);
	}
	if (w && w[0] != '#') {
		if (strlen(w) != 1 || w[0] < '0' || w[0] > '2')
			return bad(why, whylen, "bad QoS '%s' for 'topic', expected 0, 1 or 2", w);
		t->qos = w[0] - '0';
		w = vs_conf_next_word(&words);
	}
	if (w && w[0] != '#') {
		if (!(t->local_prefix = unquote(w)))
			return -ENOMEM;
		if (!(w = vs_conf_next_word(&words)))
			return bad(why, whylen, "local prefix '%s' without a remote prefix, %s",
				   t->local_prefix, usage);
		if (!(t->remote_prefix = unquote(w)))
			return -ENOMEM;
		w = vs_conf_next_word(&words);
	}
	if (w && w[0] != '#')
		return bad(why, whylen,
			   "unexpected '%s' after the remote prefix of 'topic', "
			   "expected end of line",
			   w);
	return 0;
}

static int check_topic(const struct vs_bridge_topic *t, char *why, size_t whylen)
{
	const char *prefixes[] = {t->local_prefix, t->remote_prefix};
	for (int i = 0; i < 2; i++)
		if (strpbrk(prefixes[i], "+#"))
			return bad(why, whylen,
				   "prefix '%s' of 'topic' holds a wildcard, expected a topic "
				   "name prefix",
				   prefixes[i]);
	if (!*t->pattern) {
		/* Mosquitto: an empty pattern needs the prefixes, which are then the topics. */
		if (!*t->local_prefix && !*t->remote_prefix)
			return bad(why, whylen, "%s",
				   "empty pattern \"\" for 'topic' without prefixes, expected "
				   "LOCAL-PREFIX and REMOTE-PREFIX to give the topic");
		return 0;
	}
	if (!filter_ok(t->pattern))
		return bad(why, whylen,
			   "bad pattern '%s' for 'topic', expected a topic filter ('+' and '#' "
			   "alone in their level, '#' last)",
			   t->pattern);
	return 0;
}

char *vs_bridge_topic_map(const struct vs_bridge_topic *t, const char *topic, bool out)
{
	const char *from = out ? t->local_prefix : t->remote_prefix;
	const char *to = out ? t->remote_prefix : t->local_prefix;
	if (!*t->pattern)
		return strdup(to); /* the prefixes are the whole topics */
	size_t lf = strlen(from), lt = strlen(to);
	if (strncmp(topic, from, lf) != 0)
		return NULL;
	size_t rest = strlen(topic + lf);
	char *s = malloc(lt + rest + 1);
	if (s) {
		memcpy(s, to, lt);
		memcpy(s + lt, topic + lf, rest + 1);
	}
	return s;
}

int vs_bridge_topic_parse(char *words, struct vs_bridge_topic *t, char *why, size_t whylen)
{
	memset(t, 0, sizeof(*t));
	t->dir = VS_BRIDGE_OUT;
	int rc = parse_words(words, t, why, whylen);
	if (rc == 0 && !t->local_prefix &&
	    (!(t->local_prefix = strdup("")) || !(t->remote_prefix = strdup(""))))
		rc = -ENOMEM;
	if (rc == 0)
		rc = check_topic(t, why, whylen);
	if (rc)
		vs_bridge_topic_fini(t);
	return rc;
}
