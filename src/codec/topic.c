/*
 * Topic name and topic filter syntax [MQTT-4.7].
 *
 * A topic name is at least one character and has no wildcard ('+' or '#') [MQTT-4.7.3-1],
 * [MQTT-3.3.2-2]. A filter is at least one character; '#' is alone in the last level
 * [MQTT-4.7.1-2]; '+' is alone in its level [MQTT-4.7.1-3]. A shared subscription
 * "$share/{group}/{filter}" has a non-empty group with no '/', '+' or '#' [MQTT-4.8.2-1] and a
 * non-empty, valid filter after it [MQTT-4.8.2-2].
 *
 * The *_syntax functions check only the above and are what the decoder calls after it has
 * validated UTF-8 itself (so it can tell a malformed string, 0x81, from a bad topic, 0x8F/0x90).
 * The public *_valid functions check UTF-8 too.
 */
#include "codec/wire.h"

#include <string.h>

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when one of the eight bytes of w is zero. */
static inline uint64_t has_zero(uint64_t w)
{
	return (w - ONES) & ~w & HIGHS;
}

/* Every PUBLISH topic passes here: eight bytes per step, looking for '+' or '#'. */
bool vs_topic_name_syntax(const uint8_t *s, size_t len)
{
	size_t i = 0;
	uint64_t w;

	if (len == 0)
		return false;
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		if (has_zero(w ^ (ONES * '+')) | has_zero(w ^ (ONES * '#')))
			return false;
	}
	for (; i < len; i++)
		if (s[i] == '+' || s[i] == '#')
			return false;
	return true;
}

/* Plain filter levels: wildcards alone in their level, '#' last. */
static bool filter_levels(const uint8_t *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		uint8_t c = s[i];
		if (c != '+' && c != '#')
			continue;
		if (i > 0 && s[i - 1] != '/')
			return false;
		if (c == '#') {
			if (i != len - 1) /* [MQTT-4.7.1-2] */
				return false;
		} else if (i + 1 < len && s[i + 1] != '/') { /* [MQTT-4.7.1-3] */
			return false;
		}
	}
	return true;
}

bool vs_topic_filter_syntax(const uint8_t *s, size_t len)
{
	static const char share[] = "$share/";
	const size_t sl = sizeof(share) - 1;
	size_t i;

	if (len < sl || memcmp(s, share, sl) != 0)
		return filter_levels(s, len);
	for (i = sl; i < len && s[i] != '/'; i++)
		if (s[i] == '+' || s[i] == '#') /* [MQTT-4.8.2-2] */
			return false;
	if (i == sl || i >= len) /* empty group, or no filter after it [MQTT-4.8.2-1] */
		return false;
	return filter_levels(s + i + 1, len - i - 1);
}

bool vs_topic_name_valid(const uint8_t *s, size_t len)
{
	return vs_topic_name_syntax(s, len) && vs_utf8_valid(s, len);
}

bool vs_topic_filter_valid(const uint8_t *s, size_t len)
{
	return vs_topic_filter_syntax(s, len) && vs_utf8_valid(s, len);
}

bool vs_topic_too_deep(const uint8_t *s, size_t len, int max)
{
	static const char share[] = "$share/";
	const size_t sl = sizeof(share) - 1;
	const uint8_t *end = s + len, *slash;
	size_t levels = 1;

	if (max <= 0 || len < (size_t)max)
		return false; /* n bytes hold at most n + 1 levels, and len + 1 <= max */
	if (len > sl && memcmp(s, share, sl) == 0) {
		slash = memchr(s + sl, '/', len - sl);
		if (slash)
			s = slash + 1;
	}
	while ((slash = memchr(s, '/', (size_t)(end - s))) != NULL) {
		if (++levels > (size_t)max)
			return true;
		s = slash + 1;
	}
	return false;
}

bool vs_topic_match(const char *f, const char *t)
{
	if (*t == '$' && (*f == '+' || *f == '#'))
		return false; /* [MQTT-4.7.2-1] */
	while (*f) {
		if (*f == '#')
			return true;
		if (*f == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		if (!*f)
			return !*t;
		if (*t != '/')
			return !*t && f[1] == '#' && !f[2]; /* "a/#" matches "a" [MQTT-4.7.1-2] */
		f++;
		t++;
	}
	return !*t;
}
