/* test_hooks.h - entry points for unit tests and fuzzers only.
 *
 * They bypass the socket: bytes go straight into a client's reader as if
 * the peer had sent them, and the agent's sync ids become predictable.
 * Nothing outside tests/ (and the qmp/ files that define them) includes
 * this header; the clients' face headers (conn.h, qmp.h, agent.h) do not
 * mention these functions. */
#ifndef QF_QMP_TEST_HOOKS_H
#define QF_QMP_TEST_HOOKS_H

#include <stddef.h>

#include "qmp/agent.h"
#include "qmp/conn.h"
#include "qmp/qmp.h"

/* Process bytes as if they had been read from the socket. Returns 0 or the
 * conn's error code once dead. */
int conn_feed(conn_t *c, const void *buf, size_t len);

/* The same for a QMP client, as if QEMU had sent them. */
int qmp_feed_for_test(qmp_t *q, const void *buf, size_t len);

/* The same for an agent client, as if qemu-ga had sent them. */
int agent_feed_for_test(agent_t *a, const void *buf, size_t len);
/* From now on the agent's guest-sync-delimited ids are id, id + 1, ...
 * instead of random ones. */
void agent_set_sync_id_for_test(agent_t *a, long long id);

#endif
