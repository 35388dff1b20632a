/*
 * Fuzz target for a session that comes from another node of a cluster (cluster_session.h): the
 * records the old node sends are rebuilt into a session by vs_bp_session_import(), the same
 * replay the store uses at start-up, for client id "c1". Whatever the bytes, the import must
 * not crash, leak or over-read; and a session it accepts, sent on again (export) and imported
 * once more, must come back the same: subscriptions, queue, inflight window.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/persist.h"
#include "persist/store.h"
#include "session/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vs_broker b; /* the import reads no broker state but its id counter */
	const char *why;
	struct vs_session *s = vs_bp_session_import(&b, "c1", 2, data, size, size % 2 == 0, &why);
	if (!s)
		return 0;
	struct vs_store_buf out;
	vs_store_buf_init(&out);
	pthread_mutex_lock(&s->lock);
	int rc = vs_bp_session_export(&b, s, true, &out);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0) {
		struct vs_session *again =
		    vs_bp_session_import(&b, "c1", 2, out.data, out.len, true, &why);
		if (!again || vs_session_n_subs(again) != vs_session_n_subs(s) ||
		    again->queue.count != s->queue.count ||
		    again->inflight.count != s->inflight.count)
			abort();
		again->ended = true;
		vs_session_unref(again);
	}
	vs_store_buf_fini(&out);
	s->ended = true;
	vs_session_unref(s);
	return 0;
}
