/* agent.h - qemu-guest-agent client on a libuv loop.
 *
 * The agent channel is a byte stream to a daemon inside the guest (through
 * QEMU's virtio-serial chardev socket, or qemu-ga's own unix-listen socket
 * in tests). Unlike QMP it has no greeting, no events, and nothing tells
 * the host whether anything listens on the guest side: bytes written
 * before the guest opens its port linger in QEMU and reach a later agent
 * as garbage. Hence the rules this client follows:
 *
 *  - It never writes until its owner calls agent_sync(), which means "the
 *    guest opened the port" (the fleet learns that from QMP VSERPORT_CHANGE
 *    or query-chardev "frontend-open"). Connecting is fine; writing is not.
 *  - Synchronising writes a 0xFF byte (which resets qemu-ga's JSON parser;
 *    it answers it with an error line) and guest-sync-delimited with a
 *    random id. qemu-ga puts a 0xFF byte before that reply: input up to the
 *    0xFF is discarded and only a reply carrying our id counts.
 *  - One command is in flight at a time (qemu-ga serves one at a time
 *    anyway); replies are matched by order, not id, because older agents
 *    do not echo ids. After any timeout, malformed line or unanswered
 *    command the client resynchronises before its next command, so a late
 *    reply can never be taken for the next command's.
 *
 * Commands may be queued at any time before the connection dies; they wait
 * (with their timeout running) until the channel is synced.
 *
 * Ownership: agent_execute takes ownership of args, also on failure.
 * Everything handed to callbacks (result structs, their strings and
 * buffers, reply values, error strings) is valid only during the callback.
 * The agent_t is freed by agent_close(), asynchronously. Errors are as in
 * qmp.h: negative errno codes, -EREMOTEIO for errors the agent reported. */
#ifndef QF_AGENT_H
#define QF_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "qmp/conn.h"
#include "base/json.h"

typedef struct agent agent_t;

#define AGENT_DEFAULT_TIMEOUT_MS 10000
#define AGENT_DEFAULT_SYNC_TIMEOUT_MS 5000

typedef struct agent_info {
    const char *version;             /* qemu-ga's version, "" if absent */
    size_t ncommands;
    const char *const *commands;     /* names of the enabled commands */
} agent_info;

typedef struct agent_ipaddr {
    int family;                      /* 4 or 6 */
    const char *addr;                /* textual address */
    int prefix;                      /* -1 when absent */
} agent_ipaddr;

typedef struct agent_iface {
    const char *name;
    const char *hwaddr;              /* NULL when absent */
    size_t naddrs;
    const agent_ipaddr *addrs;
} agent_iface;

typedef struct agent_exec_opts {
    const char *path;                /* program inside the guest */
    const char *const *argv;         /* its arguments after argv[0]; NULL-terminated, may be NULL */
    const char *const *env;          /* "K=V" strings; NULL-terminated, may be NULL */
    const void *input;               /* stdin bytes, may be NULL */
    size_t input_len;
    int capture_output;              /* capture stdout and stderr */
} agent_exec_opts;

typedef struct agent_exec_result {
    int exited;
    int exitcode;                    /* -1 unless it exited normally */
    int signal;                      /* -1 unless killed by a signal */
    const unsigned char *out;        /* decoded stdout, NUL-terminated; never NULL */
    size_t out_len;
    const unsigned char *errout;     /* decoded stderr, NUL-terminated; never NULL */
    size_t errout_len;
    int out_truncated, errout_truncated;
} agent_exec_result;

typedef struct agent_stats {
    uint64_t sent, completed, failed, timeouts;
    uint64_t syncs, sync_failures;
    uint64_t unexpected;             /* replies with nothing in flight */
    size_t queued;                   /* not yet sent */
    uint64_t bytes_in, bytes_out;
} agent_stats;

typedef void (*agent_connect_cb)(agent_t *a, const conn_err *err, void *data);
/* Completion without a result (sync, ping, file close, shutdown sent). */
typedef void (*agent_done_cb)(agent_t *a, const conn_err *err, void *data);
typedef void (*agent_reply_cb)(agent_t *a, const json_t *ret, const conn_err *err, void *data);
/* A single integer result: a guest-exec pid or a guest-file-open handle. */
typedef void (*agent_int_cb)(agent_t *a, long long value, const conn_err *err, void *data);
typedef void (*agent_info_cb)(agent_t *a, const agent_info *info, const conn_err *err, void *data);
typedef void (*agent_ifaces_cb)(agent_t *a, const agent_iface *ifs, size_t n, const conn_err *err,
                                void *data);
typedef void (*agent_exec_status_cb)(agent_t *a, const agent_exec_result *st, const conn_err *err,
                                     void *data);
typedef void (*agent_read_cb)(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err,
                              void *data);
typedef void (*agent_write_cb)(agent_t *a, size_t written, const conn_err *err, void *data);
/* The connection died (EOF, I/O error, oversized input). */
typedef void (*agent_dead_cb)(agent_t *a, const conn_err *err, void *data);
typedef void (*agent_close_cb)(agent_t *a, void *data);

int agent_new(uv_loop_t *loop, agent_t **out);
/* Settings; ms > 0. */
void agent_set_default_timeout(agent_t *a, int ms);
void agent_set_sync_timeout(agent_t *a, int ms);
void agent_set_max_input(agent_t *a, size_t bytes);
void agent_set_dead_cb(agent_t *a, agent_dead_cb cb, void *data);

/* Connect (retrying while the socket is missing or refuses, up to
 * timeout_ms; <= 0 waits until agent_peer_exited/agent_close). Nothing is
 * written. cb runs exactly once. */
int agent_connect(agent_t *a, const char *path, int timeout_ms, agent_connect_cb cb, void *data);
/* Adopt a connected socket; the agent owns fd, also on failure. */
int agent_attach_fd(agent_t *a, int fd);
/* The process on the other end (QEMU, or qemu-ga in tests) exited: stop a
 * retrying connect at once (-ECONNABORTED). */
void agent_peer_exited(agent_t *a);

/* The guest opened the agent port: from now on the client may write.
 * Synchronises (once connected, after the command in flight if any) and
 * runs cb (may be NULL) when the agent echoed our id, or on failure.
 * timeout_ms: 0 = the sync timeout; it runs from when the sync is written.
 * Queued commands go out after a successful sync. A sync already under way
 * is superseded. -EBUSY if an agent_sync with a cb is already pending. */
int agent_sync(agent_t *a, int timeout_ms, agent_done_cb cb, void *data);
/* The guest closed the port (VSERPORT_CHANGE open=false): stop writing.
 * The command in flight and a pending agent_sync fail with -EPIPE; queued
 * commands stay queued for the next agent_sync. */
void agent_port_closed(agent_t *a);

/* Raw entry point: run cmd with args (an object or NULL; owned by the
 * callee). timeout_ms: 0 = default, < 0 = none. guest-shutdown and the
 * guest-suspend-* commands get no reply from a working agent, so for them
 * the callback runs with ret NULL and no error once the command was
 * written out. Returns 0, or the connection's error once dead, -ECANCELED
 * once closing, -EINVAL, -ENOMEM; on failure cb is not called. */
int agent_execute(agent_t *a, const char *cmd, json_t *args, int timeout_ms, agent_reply_cb cb,
                  void *data);

/* Typed helpers; same rules as agent_execute. */
int agent_ping(agent_t *a, int timeout_ms, agent_done_cb cb, void *data);
int agent_get_info(agent_t *a, int timeout_ms, agent_info_cb cb, void *data);
int agent_get_interfaces(agent_t *a, int timeout_ms, agent_ifaces_cb cb, void *data);
/* mode: "powerdown" (NULL), "halt" or "reboot". Completes when written out:
 * the guest going down shows up as QMP SHUTDOWN, not here. */
int agent_shutdown(agent_t *a, const char *mode, agent_done_cb cb, void *data);
/* Start a process; cb gets its pid. Poll agent_exec_status for the end. */
int agent_exec(agent_t *a, const agent_exec_opts *opts, int timeout_ms, agent_int_cb cb,
               void *data);
int agent_exec_status(agent_t *a, long long pid, int timeout_ms, agent_exec_status_cb cb,
                      void *data);
/* guest-file-*: open gives a handle; read up to count bytes (decoded);
 * write len bytes (encoded here); close. */
int agent_file_open(agent_t *a, const char *path, const char *mode, int timeout_ms, agent_int_cb cb,
                    void *data);
int agent_file_read(agent_t *a, long long handle, size_t count, int timeout_ms, agent_read_cb cb,
                    void *data);
int agent_file_write(agent_t *a, long long handle, const void *buf, size_t len, int timeout_ms,
                     agent_write_cb cb, void *data);
int agent_file_close(agent_t *a, long long handle, int timeout_ms, agent_done_cb cb, void *data);

/* 1 when the last sync succeeded and nothing has happened since that calls
 * for another one. */
int agent_is_synced(const agent_t *a);
/* Why the connection died, or NULL while it lives. */
const conn_err *agent_error(const agent_t *a);
void agent_get_stats(const agent_t *a, agent_stats *st);

/* Close: everything pending completes with -ECANCELED, then cb (may be
 * NULL) runs from the loop and a is freed. Idempotent. */
void agent_close(agent_t *a, agent_close_cb cb, void *data);

#endif
