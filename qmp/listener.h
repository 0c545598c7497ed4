/* listener.h - a Unix stream socket server on one libuv loop, handing each
 * client over as a conn (qmp/conn.h); and the matching blocking dial.
 *
 * The one listener of the tree: the controller's control socket and
 * qmpctl's monitor relay both use it. Accepting is libuv's (uv_listen and
 * uv_accept on a uv_pipe_t): "try again" is not an error, and when the fd
 * table is full libuv's reserved spare descriptor lets it accept and close
 * the waiting connection, so a full fd table never spins the loop.
 *
 * Paths of any length: sun_path holds 107 bytes, so the listener binds as
 * /proc/self/fd/DIR/NAME through an O_PATH descriptor of the directory it
 * checked (the plain path when /proc is missing and the path fits), and a
 * dial does the same for a path that does not fit. Only NAME must be short.
 *
 * The socket is private: its directory must belong to us and must not be
 * writable by group or others (OpenSSH's StrictModes); the socket is born
 * 0600 (fchmod before bind, no umask change, no window where it is wider).
 * A socket file left by a dead server is replaced; a live one is not.
 *
 * A listener is freed only by listener_close(), asynchronously. Conns it
 * handed out belong to their owner and outlive it. */
#ifndef QF_LISTENER_H
#define QF_LISTENER_H

#include <stddef.h>

#include <uv.h>

#include "qmp/conn.h"

/* Output limits every accepted conn starts with (conn_set_output_limit):
 * a client that stops reading is held at the soft limit (no new requests
 * are read, so no new replies are made) and dropped past the hard one. */
#define LISTENER_OUT_SOFT (1u << 20)
#define LISTENER_OUT_HARD (64u << 20)

typedef struct listener listener_t;

/* A client connected. conn is open and will start reading on the next loop
 * turn; it has no handlers. From here it is the callback's: set handlers
 * (conn_set_handlers) and label, or conn_close it. */
typedef void (*listener_conn_cb)(listener_t *l, conn_t *conn, void *data);
typedef void (*listener_close_cb)(listener_t *l, void *data);

/* Listen on path (see above for the checks). 0 or -errno with err. */
int listener_start(uv_loop_t *loop, const char *path, listener_conn_cb cb, void *data,
                   listener_t **out, char *err, size_t errlen);

/* Stop accepting and remove the socket file at once (if it still is ours,
 * not a successor's); cb (may be NULL) runs from the loop, then l is freed.
 * Idempotent. */
void listener_close(listener_t *l, listener_close_cb cb, void *data);

/* How many waiting connections libuv or conn_accept reported as failed.
 * (Those closed by libuv's spare-fd answer to EMFILE are not reported.) */
unsigned long listener_dropped(const listener_t *l);

/* Connect to the socket at path, of any length. nonblock: a non-blocking
 * socket, and a full backlog fails with -EAGAIN instead of waiting. The fd
 * is close-on-exec. 0 or -errno, with err naming the path. */
int listener_dial(const char *path, int nonblock, int *fd, char *err, size_t errlen);

#endif
