/* qmp.h - QEMU Machine Protocol client on a libuv loop.
 *
 * One qmp_t talks to one QEMU over its QMP Unix socket: it reads the
 * greeting, negotiates capabilities (no out-of-band), then lets the owner
 * run commands. Every command carries a unique integer id, any number may
 * be in flight, and replies are matched by id, so their order does not
 * matter. Events go to subscribers.
 *
 * Ownership and lifetimes:
 *  - qmp_execute takes ownership of args, also when it fails.
 *  - Values handed to callbacks (reply values, event data, error strings)
 *    belong to the client and are valid only during the callback; copy
 *    (json_copy) what must outlive it.
 *  - The qmp_t is freed by qmp_close(), asynchronously: its close callback
 *    runs from the loop after every handle is closed; the pointer must not
 *    be used after that.
 *
 * Errors are negative errno codes. Remote errors (QEMU's {"error": ...})
 * come with code -EREMOTEIO, cls = QEMU's class, desc = QEMU's text. Local
 * ones use the CONN_ERR_* classes of conn.h: -ETIMEDOUT, -ECANCELED (the
 * client was closed), -ECONNRESET (EOF) or another I/O error, -EPROTO
 * (QEMU sent something that is not QMP), -EMSGSIZE (line over the cap).
 *
 * Once the connection is dead (EOF, error, failed handshake) every pending
 * command completes with that error and later calls return its code at
 * once; qmp_error() describes it. */
#ifndef QF_QMP_H
#define QF_QMP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "qmp/conn.h"
#include "base/json.h"

typedef struct qmp qmp_t;

/* Default per-command timeout, changeable with qmp_set_default_timeout. */
#define QMP_DEFAULT_TIMEOUT_MS 30000

/* What QEMU said about itself in its greeting. Valid until close. */
typedef struct qmp_greeting {
    int major, minor, micro;
    const char *package;        /* "" when absent */
    size_t ncaps;
    const char *const *caps;    /* capabilities offered, e.g. "oob" */
} qmp_greeting;

/* The outcome of one command. */
typedef struct qmp_reply {
    uint64_t id;                /* the id the client gave the command */
    const char *cmd;            /* its name */
    const json_t *ret;          /* "return" value on success, else NULL */
    const conn_err *err;        /* NULL on success */
} qmp_reply;

typedef struct qmp_event {
    const char *name;           /* "SHUTDOWN", "STOP", ... */
    int64_t seconds;            /* QEMU's timestamp; -1 when absent */
    int64_t microseconds;
    const json_t *data;         /* "data" member, NULL when absent */
} qmp_event;

typedef struct qmp_stats {
    uint64_t sent;              /* commands written, the handshake included */
    uint64_t completed;         /* completions with a return value */
    uint64_t failed;            /* completions with any error */
    uint64_t timeouts;
    uint64_t events;
    uint64_t unknown_replies;   /* ids this client never issued, or none */
    uint64_t late_replies;      /* ids that had already completed (timeouts) */
    size_t in_flight;
    uint64_t bytes_in, bytes_out;
} qmp_stats;

/* Handshake finished: err NULL means ready for commands. */
typedef void (*qmp_ready_cb)(qmp_t *q, const conn_err *err, void *data);
typedef void (*qmp_reply_cb)(qmp_t *q, const qmp_reply *r, void *data);
typedef void (*qmp_event_cb)(qmp_t *q, const qmp_event *ev, void *data);
/* The connection died after it was ready (EOF after quit, I/O error). */
typedef void (*qmp_dead_cb)(qmp_t *q, const conn_err *err, void *data);
typedef void (*qmp_close_cb)(qmp_t *q, void *data);

int qmp_new(uv_loop_t *loop, qmp_t **out);

/* Settings; call before connecting. timeout ms > 0. */
void qmp_set_default_timeout(qmp_t *q, int ms);
void qmp_set_max_input(qmp_t *q, size_t bytes);
void qmp_set_dead_cb(qmp_t *q, qmp_dead_cb cb, void *data);

/* Connect to QEMU's QMP socket, retrying while it does not exist yet or
 * refuses, then read the greeting and negotiate. timeout_ms bounds the
 * whole handshake (<= 0: no limit; then only qmp_peer_exited or qmp_close
 * end a connect that keeps failing). cb runs exactly once (with -ECANCELED
 * if the client is closed first). */
int qmp_connect(qmp_t *q, const char *path, int timeout_ms, qmp_ready_cb cb, void *data);
/* The same over an already connected socket; the client owns fd. */
int qmp_attach_fd(qmp_t *q, int fd, int timeout_ms, qmp_ready_cb cb, void *data);
/* The owner saw QEMU exit: stop a connect that is still retrying (its cb
 * gets -ECONNABORTED). Once connected, EOF follows by itself. */
void qmp_peer_exited(qmp_t *q);

/* Run cmd with args (an object, or NULL for none; owned by the callee).
 * timeout_ms: 0 = the default, < 0 = none. cb may be NULL (fire and
 * forget). Returns 0 or: -ENOTCONN before ready, the connection's error
 * code once dead, -ECANCELED once closing, -EINVAL, -ENOMEM. On failure cb
 * is not called. On a timeout the command completes with -ETIMEDOUT and
 * its late reply, if any, is dropped (counted in late_replies). */
int qmp_execute(qmp_t *q, const char *cmd, json_t *args, int timeout_ms, qmp_reply_cb cb,
                void *data);

/* Deliver events named event (NULL = all events) to cb. Subscribing the
 * same (event, cb, data) twice delivers twice. Safe from any callback. */
int qmp_subscribe(qmp_t *q, const char *event, qmp_event_cb cb, void *data);
/* Remove one matching subscription; -ENOENT if none. */
int qmp_unsubscribe(qmp_t *q, const char *event, qmp_event_cb cb, void *data);

/* NULL until the greeting has been read. */
const qmp_greeting *qmp_get_greeting(const qmp_t *q);
int qmp_is_ready(const qmp_t *q);
/* Why the connection died, or NULL while it lives. */
const conn_err *qmp_error(const qmp_t *q);
void qmp_get_stats(const qmp_t *q, qmp_stats *st);

/* Close: pending commands complete with -ECANCELED, a pending ready cb
 * too, then cb (may be NULL) runs from the loop and q is freed.
 * Idempotent: later calls do nothing (their cb is not called). */
void qmp_close(qmp_t *q, qmp_close_cb cb, void *data);

#endif
