/*
 * Persistent sessions that move between the nodes of a cluster (docs/cluster.md, "Sessions
 * roam").
 *
 * Ownership: the key-value bucket vs_sessions holds, for each client id whose session outlives
 * its connection, the node that has it (key: the client id as a token, cluster/keys.h, or "=h"
 * and a hash when the token would be too long; value: the node id). It changes only by
 * compare-and-set (create where absent, update at the revision read), so two nodes never both
 * take a session.
 *
 * A CONNECT with Clean Start 0 on node B waits, unread, while B's session thread reads the key.
 * When node A has the session, B takes the key at the revision it read and asks A for it
 * (request on vs.h.<A's token>). A's worker closes the client's connection there if it is still
 * open (a take-over that resumes: no will), writes the session's whole state as store records
 * (subscriptions, queued and inflight messages, incoming QoS 2 ids: broker/persist.h), ends it
 * there and replies, in chunks of at most NATS's payload limit. B rebuilds the session, stores
 * it, and the CONNECT goes on: session present 1. A CONNECT that starts clean with a session
 * that outlives it takes the key too; the old owner ends its copy on that client's claim
 * (cluster_claim.h), as one node would.
 *
 * A node is asked while its lease (vs_nodes) is current, and lets the session go only before
 * the asker's deadline; a node that does not answer (lease lapsed, no responders) has its
 * session rebuilt from its key: the owner keeps there the session's subscriptions and, when it
 * goes offline, the stream sequence below which it had taken everything (vs_cjs_floor()); the
 * new node reads VS_MSGS from there for what the session's filters match (session present 1,
 * at least once). Without NATS the CONNECT goes on locally.
 */
#ifndef VS_BROKER_CLUSTER_SESSION_H
#define VS_BROKER_CLUSTER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_SESSIONS_BUCKET "vs_sessions"

struct vs_broker;
struct vs_session;
struct vs_conn;
struct vs_mail;
struct vs_worker;
struct vs_cluster_sessions;

/* Starts the session thread and answers requests for this node's sessions. NULL: no memory. */
struct vs_cluster_sessions *vs_cluster_sessions_start(struct vs_broker *b);
/* Tells its threads to stop, without waiting for them. */
void vs_cluster_sessions_stopping(struct vs_cluster_sessions *cs);
/* Stops the thread and the answers (none is made after this returns). */
void vs_cluster_sessions_stop(struct vs_cluster_sessions *cs);
/* Stops as vs_cluster_sessions_stop, then lets go of its subscription and buckets, which hold
 * the NATS connection (before the library's end waits for it). */
void vs_cluster_sessions_close(struct vs_cluster_sessions *cs);
void vs_cluster_sessions_free(struct vs_cluster_sessions *cs);

/* On c's worker, before its take-over step: when c's session outlives it and the cluster must
 * be asked first, hands that to the session thread and parks c (true); the answer comes back
 * as VS_MAIL_ROAMED. False: go on now (no cluster, a clean session, asked already). */
bool vs_cluster_session_ask(struct vs_conn *c);

/* On a worker: VS_MAIL_ROAMED (the session that came, or none) and VS_MAIL_HANDOVER (another
 * node asks for one of ours, or a client's clean start elsewhere ends it here). */
void vs_cluster_session_arrived(struct vs_worker *w, const struct vs_mail *m);
void vs_cluster_session_handover(struct vs_worker *w, const struct vs_mail *m);
/* Goes on with the CONNECT of c, parked at VS_CS_BARRIER since its session came (the CONNACK). */
void vs_cluster_session_resume(struct vs_conn *c);

/* Posts a VS_MAIL_HANDOVER that ends client_id's offline session here: _end as a clean start
 * on another node does (its delayed will goes), _drop silently (another node has it now). */
void vs_cluster_session_end(struct vs_broker *b, const char *client_id, size_t idlen);
void vs_cluster_session_drop(struct vs_broker *b, const char *client_id, size_t idlen);

/* How many sessions came here from other nodes, went from here to others, and were rebuilt here
 * (their node did not answer). All 0 for NULL. */
void vs_cluster_sessions_counts(struct vs_cluster_sessions *cs, uint64_t *taken, uint64_t *given,
				uint64_t *rebuilt);

/* A session of client_id that outlives its connection changed here: attached, subscriptions
 * changed, (offline) its connection went, or it ended. The session thread writes its
 * subscriptions, and where this node stood in the stream when it went offline, into its key
 * while this node owns it, so that another node can rebuild it should this one die; once the
 * session has ended here (or no longer outlives its connection) it removes the key, if the key
 * still names this node at the revision read. Any thread, no lock held. */
void vs_cluster_session_note(struct vs_broker *b, const char *client_id, size_t idlen,
			     bool offline);

/* Whether s, a session that came from another node, must not take the stream's message sseq:
 * that node had routed the stream beyond it to the session before letting it go, or it was
 * read for the session from the stream, so the session has it (or its client acknowledged it
 * there). Called by vs_deliver under s's lock, only for sseq <= b->roam_cut; any thread. */
bool vs_cluster_session_skips(struct vs_broker *b, const struct vs_session *s, uint64_t sseq);

#endif
