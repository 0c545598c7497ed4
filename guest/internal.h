/* internal.h - what session.c shares with the transports (ssh.c, agentx.c).
 * Not part of the public API. */
#ifndef QF_GUEST_INTERNAL_H
#define QF_GUEST_INTERNAL_H

#include <regex.h>
#include <stddef.h>

#include "guest/session.h"

/* A growable byte buffer, always NUL-terminated once anything was added. */
typedef struct gbuf {
    char *p;
    size_t len, cap;
    int truncated; /* bytes were dropped because of the cap */
} gbuf;

/* Append, keeping at most cap bytes: the first cap (keep_head) or the last
 * cap (!keep_head). 0 or -ENOMEM. */
int guest__buf_add(gbuf *b, const void *d, size_t n, size_t cap, int keep_head);
/* Remove the first n bytes. */
void guest__buf_consume(gbuf *b, size_t n);
void guest__buf_free(gbuf *b);

typedef enum {
    JOB_OPEN,
    JOB_EXEC,
    JOB_SEND,
    JOB_EXPECT,
    JOB_COPY_IN,
    JOB_COPY_OUT,
} job_kind;

/* One submitted operation. The loop thread builds it; a transport owns it
 * while it runs (the SSH worker thread, or the loop for the agent) and hands
 * it back through guest__complete. */
typedef struct guest_job {
    struct guest_job *next;
    job_kind kind;
    char *arg;            /* command, shell text, regex source or guest path */
    size_t arg_len;
    char *path;           /* host path (copies) */
    regex_t re;           /* JOB_EXPECT, compiled by the loop thread */
    int timeout_ms;
    guest_cb cb;
    void *data;

    /* results, filled by the transport */
    int status;
    char *error;
    int exit_code;
    char signal[16];
    int timed_out;
    gbuf out, errout, before;
    double elapsed_ms;
} guest_job;

/* The transport behind a session. */
typedef struct guest_ops {
    /* Take a job (JOB_OPEN is the first one queued). It must come back
     * through guest__complete exactly once. */
    void (*submit)(guest_session_t *s, guest_job *j);
    /* Abort the running job, cancel queued ones, tear down, and finally
     * call guest__closed from the loop thread. */
    void (*close)(guest_session_t *s);
} guest_ops;

struct guest_session {
    uv_loop_t *loop;
    char *name;
    guest_transport kind;
    const guest_ops *ops;
    void *tp;              /* transport state */
    int default_timeout_ms;
    size_t max_output;
    int up;
    int closing;
    guest_close_cb close_cb;
    void *close_data;
};

/* Loop thread only: report j to its owner and free it. */
void guest__complete(guest_session_t *s, guest_job *j);
/* Loop thread only: the transport has released everything; run the close
 * callback and free s. */
void guest__closed(guest_session_t *s);

/* Set j->status and j->error = "<guest>: <step>: <printf>". */
void guest__fail(guest_job *j, const char *guest, int status, const char *step,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A short, printable description of the job's step for errors, such as
 * "exec `uname -r`" or "copy in /tmp/f -> /root/f", into out. */
void guest__step(const guest_job *j, const char *transport, char *out, size_t outlen);
/* Printable tail (at most max bytes, escaped) of d[0..n), quoted, into out. */
void guest__tail(const char *d, size_t n, size_t max, char *out, size_t outlen);
/* Single-quote s for a POSIX shell. malloc'd, NULL on ENOMEM. */
char *guest__shquote(const char *s);
double guest__now_ms(void);

#endif
