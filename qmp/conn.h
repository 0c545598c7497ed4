/* conn.h - newline-delimited JSON over a Unix stream socket (uv_pipe_t).
 *
 * The transport under the QMP and guest-agent clients. A conn either
 * connects to a socket path (retrying while the socket does not exist yet
 * or refuses, because QEMU creates it some time after it starts) or adopts
 * an already connected fd. Once open it splits input at '\n', parses every
 * line as one JSON text and hands it to its owner; it writes JSON values as
 * one line each. Everything runs on one libuv loop; nothing blocks.
 *
 * A conn dies exactly once: on EOF (unless its owner asked for half-close
 * with conn_set_eof_cb), a read or write error, an input line over the cap,
 * output over its hard limit, or when its owner calls conn_fail(). It then
 * stops reading, reports the cause through on_dead, and every later write
 * fails at once with the same code. It is freed only by conn_close(),
 * asynchronously.
 *
 * Flow control, for servers (qmp/listener.h): input stops while the owner
 * pauses it or while more output is queued than the soft output limit
 * (the peer is not reading its replies); lines already buffered wait too.
 * It resumes from the loop, never inside the call that allowed it.
 *
 * Error codes are negative errno values (as libuv uses on Unix). */
#ifndef QF_CONN_H
#define QF_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/json.h"

/* An error as callbacks see it. code is a negative errno. cls is QEMU's
 * error class for errors the peer sent ("GenericError", "CommandNotFound",
 * with code -EREMOTEIO) or one of the CONN_ERR_* classes below for local
 * ones. desc is a human-readable sentence. Both strings stay valid only for
 * the duration of the callback that received the struct. */
typedef struct conn_err {
    int code;
    const char *cls;
    const char *desc;
} conn_err;

/* Classes of locally generated errors. */
#define CONN_ERR_TIMEOUT "Timeout"           /* -ETIMEDOUT */
#define CONN_ERR_CANCELLED "Cancelled"       /* -ECANCELED: closed by its owner */
#define CONN_ERR_DISCONNECTED "Disconnected" /* EOF, I/O error, peer exited */
#define CONN_ERR_PROTOCOL "ProtocolError"    /* -EPROTO, -EMSGSIZE */
#define CONN_ERR_LOCAL "LocalError"          /* -ENOMEM, -EINVAL, ... */

#define CONN_DEFAULT_MAX_INPUT (16u << 20)

typedef struct conn conn_t;

/* Connection attempt finished: err is NULL on success. */
typedef void (*conn_connect_cb)(conn_t *c, const conn_err *err, void *data);
/* One input line. msg is the parsed value, or NULL when the line is not
 * valid JSON, and then why says so. The conn frees msg after the callback
 * returns; take (json_take) or copy what must outlive it. The owner may
 * call conn_fail/conn_close/conn_discard_until from here. */
typedef void (*conn_msg_cb)(conn_t *c, json_t *msg, const char *why, void *data);
/* An open connection died; called once. (A failed connect is reported to
 * the connect callback only.) err stays valid until the conn is closed. */
typedef void (*conn_dead_cb)(conn_t *c, const conn_err *err, void *data);
/* A write was handed to the kernel completely (status 0) or failed. */
typedef void (*conn_write_cb)(conn_t *c, int status, void *data);
typedef void (*conn_close_cb)(conn_t *c, void *data);
/* The peer shut down its side (EOF) on a half-close conn; called once,
 * after every line received before the EOF was delivered. */
typedef void (*conn_eof_cb)(conn_t *c, void *data);

/* Allocate an idle conn on loop. on_msg and on_dead are the owner's
 * handlers (either may be NULL); data goes to both. */
int conn_new(uv_loop_t *loop, conn_msg_cb on_msg, conn_dead_cb on_dead, void *data,
             conn_t **out);

/* Replace the owner's handlers and data (for a conn created by someone
 * else, such as a listener, before it hands the conn over). */
void conn_set_handlers(conn_t *c, conn_msg_cb on_msg, conn_dead_cb on_dead, void *data);

/* Connect to the Unix socket at path. ENOENT, ECONNREFUSED and EAGAIN are
 * retried with a growing pause (10 ms up to 200 ms) until timeout_ms has
 * passed (timeout_ms <= 0: retry until conn_abort or conn_close). Other
 * errors end the attempt at once. cb runs exactly once unless the conn is
 * closed first, in which case it runs with -ECANCELED. Returns -EBUSY if the
 * conn is not idle, -ENAMETOOLONG for a path that does not fit sun_path. */
int conn_connect(conn_t *c, const char *path, int timeout_ms, conn_connect_cb cb, void *data);

/* Adopt a connected stream socket (for instance one end of a socketpair).
 * The conn owns fd from then on, also on failure, and closes it. */
int conn_attach_fd(conn_t *c, int fd);

/* The peer process is gone (the caller reaped QEMU or qemu-ga): a pending
 * connect stops at once and fails with -ECONNABORTED. On an open conn it
 * does nothing: the kernel still delivers what the peer wrote before it
 * died, then EOF, so no final event or reply is lost. */
void conn_abort(conn_t *c);

/* Adopt the connection waiting on a listening libuv stream (uv_accept).
 * On failure the conn is dead (conn_error says why; on_dead is not called)
 * and the waiting connection is dropped. */
int conn_accept(conn_t *c, uv_stream_t *server);

/* Half-close: EOF from the peer means "no more requests", not "gone". Input
 * ends (buffered lines, and a last line without '\n', are still delivered),
 * then cb runs; the conn stays open for writing until the owner closes it,
 * usually from the callback of conn_shutdown. */
void conn_set_eof_cb(conn_t *c, conn_eof_cb cb);

/* After every write queued so far went out, shut down the write side (the
 * peer reads EOF). cb (may be NULL) runs once with 0 or the error; close the
 * conn from there. -ENOTCONN unless open, -EALREADY the second time. */
int conn_shutdown(conn_t *c, conn_write_cb cb, void *data);

/* Output limits in bytes queued but not yet taken by the kernel. Above soft,
 * input is held until the queue drains to half of soft; above hard the conn
 * dies with -ENOBUFS. 0 disables a limit (the default for both). */
void conn_set_output_limit(conn_t *c, size_t soft, size_t hard);

/* The owner holds input (for instance: too many requests in progress) and
 * lets it go again. Not counted: one resume undoes any number of pauses. */
void conn_pause(conn_t *c);
void conn_resume(conn_t *c);

/* Send v as one line (compact JSON + '\n'). v stays the caller's. cb (may
 * be NULL) runs when the kernel took all of it or the write failed. Returns
 * 0, or the error that killed the conn, or -ENOTCONN before it is open. */
int conn_send(conn_t *c, const json_t *v, conn_write_cb cb, void *data);
/* Send raw bytes (copied). Same rules as conn_send. */
int conn_send_raw(conn_t *c, const void *buf, size_t len, conn_write_cb cb, void *data);

/* Drop all buffered and future input up to and including the next byte
 * equal to delim, then resume line framing. For the guest agent's
 * guest-sync-delimited, which marks its reply with a leading 0xFF. */
void conn_discard_until(conn_t *c, unsigned char delim);

/* A short name ("QMP", "qemu-ga") put in front of the conn's own error
 * descriptions, so a log line says which channel failed. Copied. */
void conn_set_label(conn_t *c, const char *label);

/* Largest accepted input line in bytes (default CONN_DEFAULT_MAX_INPUT).
 * A longer line kills the conn with -EMSGSIZE. */
void conn_set_max_input(conn_t *c, size_t bytes);

/* Kill an open conn with code, cls (kept by pointer: pass a constant such
 * as CONN_ERR_PROTOCOL) and desc (copied); no-op unless open. on_dead runs
 * before this returns. */
void conn_fail(conn_t *c, int code, const char *cls, const char *desc);

/* 1 when open and alive. */
int conn_is_open(const conn_t *c);
/* The error that killed the conn, or NULL while it lives. */
const conn_err *conn_error(const conn_t *c);

/* Counters, for statistics. */
uint64_t conn_bytes_in(const conn_t *c);
uint64_t conn_bytes_out(const conn_t *c);
/* Bytes handed to conn_send* whose write has not completed yet. */
size_t conn_queued_out(const conn_t *c);

/* Close and free the conn. Idempotent: later calls are ignored. Pending
 * connects complete with -ECANCELED, queued writes with UV_ECANCELED; then
 * cb (may be NULL) runs from the loop and the conn is freed. */
void conn_close(conn_t *c, conn_close_cb cb, void *data);

#endif
