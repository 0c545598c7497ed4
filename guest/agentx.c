/* agentx.c - the guest-agent transport of guest sessions.
 *
 * Built on the asynchronous client of qmp/agent.h, so it runs on the loop
 * thread itself: no worker. Jobs run one at a time per session, each as a
 * chain of agent calls (guest-exec, then guest-exec-status polls with a
 * growing pause; guest-file-open, read/write chunks, close). Every agent
 * call gets the job's remaining time as its timeout, so a job never
 * outlives its deadline by more than one call's latency.
 *
 * The agent client belongs to the caller and cannot cancel one command, so
 * closing a session with a call in flight completes the job at once with
 * -ECANCELED and keeps this transport's state alive until the agent's
 * callback has come back. */
#include "guest/agentx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmp/agent.h"

#define DEF_OPEN_MS 60000
#define DEF_POLL_MS 200
#define FIRST_POLL_MS 10
#define CHUNK (256u << 10) /* per guest-file-read/write: ~341 KiB of base64 */
#define KILL_MS 5000       /* for the clean-up calls after a timeout */

typedef struct ax {
    guest_session_t *s;   /* NULL once the session is gone */
    agent_t *a;
    char *name;
    int open_ms, poll_ms;
    guest_job *q, *q_tail;
    guest_job *cur;
    int inflight;         /* agent calls whose callback is still due */
    int closing;
    int timer_closed;
    uv_timer_t timer;     /* pause between exec status polls */

    /* the current job */
    double t0, deadline;
    long long pid, handle;
    int fd;
    int poll_delay;
    char *buf;
} ax_t;

static void start_next(ax_t *x);

/* ----------------------------------------------------------------- basics */

static void maybe_free(ax_t *x)
{
    if (x->closing && x->timer_closed && x->inflight == 0) {
        free(x->name);
        free(x);
    }
}

/* An agent callback arrived: 1 if it still belongs to a running job. */
static int arrived(ax_t *x)
{
    x->inflight--;
    if (x->closing || !x->cur) {
        maybe_free(x);
        return 0;
    }
    return 1;
}

static int remaining(ax_t *x)
{
    double rem = x->deadline - guest__now_ms();
    return rem < 1 ? 1 : (int)rem;
}

static void job_fail(ax_t *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_fail(ax_t *x, int status, const char *fmt, ...)
{
    char step[512], what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    guest__step(x->cur, "agent", step, sizeof(step));
    guest__fail(x->cur, x->name, status, step, "%s", what);
}

/* Fail the job from an agent error: its text, its code, -ENOENT/-EACCES
 * for the guest's file errors. */
static void fail_err(ax_t *x, const conn_err *err, const char *doing)
{
    const char *d = err->desc ? err->desc : "agent error";
    int st = err->code;
    if (st == -EREMOTEIO && strstr(d, "No such file"))
        st = -ENOENT;
    else if (st == -EREMOTEIO && strstr(d, "ermission denied"))
        st = -EACCES;
    if (st == -ETIMEDOUT) {
        x->cur->timed_out = 1;
        job_fail(x, st, "timed out after %d ms (%s)", x->cur->timeout_ms, doing);
    } else {
        job_fail(x, st, "%s: %s", doing, d);
    }
}

/* A call could not even be queued (dead agent connection, no memory). */
static void fail_rc(ax_t *x, int rc, const char *doing)
{
    const conn_err *e = agent_error(x->a);
    job_fail(x, rc, "%s: %s", doing, e && e->desc ? e->desc : strerror(-rc));
}

/* Hand the current job back and go on with the next one. */
static void finish(ax_t *x)
{
    guest_job *j = x->cur;
    x->cur = NULL;
    if (x->fd >= 0) {
        close(x->fd);
        if (j->kind == JOB_COPY_OUT && j->status)
            unlink(j->path); /* no partial file that looks like a good copy */
    }
    x->fd = -1;
    free(x->buf);
    x->buf = NULL;
    j->elapsed_ms = guest__now_ms() - x->t0;
    guest__complete(x->s, j);
    if (!x->closing)
        start_next(x);
}

/* Release a guest file handle on an error path; the job's error stands. */
static void on_quiet_close(agent_t *a, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (arrived(x))
        finish(x);
}

static void abandon_file(ax_t *x)
{
    if (x->handle >= 0 &&
        agent_file_close(x->a, x->handle, KILL_MS, on_quiet_close, x) == 0) {
        x->handle = -1;
        x->inflight++;
        return;
    }
    finish(x);
}

/* ------------------------------------------------------------------- open */

static void on_ping(agent_t *a, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err)
        fail_err(x, err, "the agent does not answer");
    finish(x);
}

/* ------------------------------------------------------------------- exec */

static void on_reaped(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (arrived(x))
        finish(x); /* the timeout error is already in the job */
}

static void on_killed(agent_t *a, long long pid, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    /* Collect the killed command's status so qemu-ga forgets it. */
    if (agent_exec_status(x->a, x->pid, KILL_MS, on_reaped, x) == 0)
        x->inflight++;
    else
        finish(x);
}

/* The deadline passed with the command still running: kill it and its
 * direct children (sh -c forks for compound commands), then reap it. */
static void exec_timeout(ax_t *x)
{
    char script[160];
    snprintf(script, sizeof(script),
             "kill -STOP %lld; pkill -KILL -P %lld; kill -KILL %lld; kill -CONT %lld",
             x->pid, x->pid, x->pid, x->pid);
    const char *argv[] = {"-c", script, NULL};
    agent_exec_opts o = {.path = "/bin/sh", .argv = argv};
    x->cur->timed_out = 1;
    job_fail(x, -ETIMEDOUT,
             "timed out after %d ms (the agent returns no output until a command ends)",
             x->cur->timeout_ms);
    if (agent_exec(x->a, &o, KILL_MS, on_killed, x) == 0)
        x->inflight++;
    else
        finish(x);
}

static void poll_status(uv_timer_t *tm);

static void on_status(agent_t *a, const agent_exec_result *st, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    guest_job *j = x->cur;
    if (err) {
        if (err->code == -ETIMEDOUT)
            exec_timeout(x);
        else {
            fail_err(x, err, "guest-exec-status");
            finish(x);
        }
        return;
    }
    if (!st->exited) {
        if (guest__now_ms() >= x->deadline) {
            exec_timeout(x);
            return;
        }
        /* Short commands end within a few polls; long ones are polled at
         * poll_ms so they do not keep the agent busy. */
        int d = x->poll_delay, rem = remaining(x);
        x->poll_delay = d * 2 < x->poll_ms ? d * 2 : x->poll_ms;
        uv_timer_start(&x->timer, poll_status, (uint64_t)(d < rem ? d : rem), 0);
        return;
    }
    size_t cap = x->s->max_output;
    guest__buf_add(&j->out, st->out, st->out_len, cap, 1);
    guest__buf_add(&j->errout, st->errout, st->errout_len, cap, 1);
    j->out.truncated |= st->out_truncated;
    j->errout.truncated |= st->errout_truncated;
    j->exit_code = st->exitcode;
    if (st->signal > 0) {
        const char *name = sigabbrev_np(st->signal); /* Linux numbering, as the guest's */
        if (name)
            snprintf(j->signal, sizeof(j->signal), "%s", name);
        else
            snprintf(j->signal, sizeof(j->signal), "%d", st->signal);
    }
    finish(x);
}

static void poll_status(uv_timer_t *tm)
{
    ax_t *x = tm->data;
    if (!x->cur)
        return;
    int rc = agent_exec_status(x->a, x->pid, remaining(x), on_status, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "guest-exec-status");
    finish(x);
}

static void on_exec_started(agent_t *a, long long pid, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err) {
        fail_err(x, err, "guest-exec");
        finish(x);
        return;
    }
    x->pid = pid;
    x->poll_delay = FIRST_POLL_MS;
    poll_status(&x->timer);
}

static void exec_start(ax_t *x)
{
    const char *argv[] = {"-c", x->cur->arg, NULL};
    agent_exec_opts o = {.path = "/bin/sh", .argv = argv, .capture_output = 1};
    int rc = agent_exec(x->a, &o, remaining(x), on_exec_started, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "guest-exec");
    finish(x);
}

/* ------------------------------------------------------------------ copies */

static void on_file_closed(agent_t *a, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err)
        fail_err(x, err, "closing the guest file");
    finish(x);
}

static void close_file(ax_t *x)
{
    long long h = x->handle;
    x->handle = -1;
    int rc = agent_file_close(x->a, h, remaining(x), on_file_closed, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "closing the guest file");
    finish(x);
}

static void write_chunk(ax_t *x);

static void on_written(agent_t *a, size_t written, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err) {
        fail_err(x, err, "writing the guest file");
        abandon_file(x);
        return;
    }
    write_chunk(x);
}

/* The host file is local: a plain read of one chunk does not stall the loop
 * noticeably, and keeps this a single chain of callbacks. */
static void write_chunk(ax_t *x)
{
    ssize_t n;
    do
        n = read(x->fd, x->buf, CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        job_fail(x, -e, "reading the host file: %s", strerror(e));
        abandon_file(x);
        return;
    }
    if (n == 0) {
        close_file(x);
        return;
    }
    int rc = agent_file_write(x->a, x->handle, x->buf, (size_t)n, remaining(x), on_written, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "writing the guest file");
    abandon_file(x);
}

static void read_chunk(ax_t *x);

static void on_read(agent_t *a, const void *buf, size_t len, int eof, const conn_err *err,
                    void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err) {
        fail_err(x, err, "reading the guest file");
        abandon_file(x);
        return;
    }
    for (const char *p = buf; len;) {
        ssize_t w = write(x->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            job_fail(x, -e, "writing the host file: %s", strerror(e));
            abandon_file(x);
            return;
        }
        p += w;
        len -= (size_t)w;
    }
    if (eof)
        close_file(x);
    else
        read_chunk(x);
}

static void read_chunk(ax_t *x)
{
    int rc = agent_file_read(x->a, x->handle, CHUNK, remaining(x), on_read, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "reading the guest file");
    abandon_file(x);
}

static void on_file_open(agent_t *a, long long handle, const conn_err *err, void *data)
{
    ax_t *x = data;
    if (!arrived(x))
        return;
    if (err) {
        fail_err(x, err, "opening the guest file");
        finish(x);
        return;
    }
    x->handle = handle;
    if (x->cur->kind == JOB_COPY_IN)
        write_chunk(x);
    else
        read_chunk(x);
}

static void copy_start(ax_t *x)
{
    guest_job *j = x->cur;
    int in = j->kind == JOB_COPY_IN;
    struct stat st;
    x->fd = in ? open(j->path, O_RDONLY | O_CLOEXEC)
               : open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int e = x->fd < 0 ? errno : 0;
    if (!e && in && fstat(x->fd, &st) < 0)
        e = errno;
    else if (!e && in && !S_ISREG(st.st_mode))
        e = EINVAL;
    if (e) {
        job_fail(x, -e, "host file: %s", e == EINVAL ? "not a regular file" : strerror(e));
        finish(x);
        return;
    }
    if (!(x->buf = malloc(CHUNK))) {
        job_fail(x, -ENOMEM, "out of memory");
        finish(x);
        return;
    }
    int rc = agent_file_open(x->a, j->arg, in ? "w" : "r", remaining(x), on_file_open, x);
    if (rc == 0) {
        x->inflight++;
        return;
    }
    fail_rc(x, rc, "opening the guest file");
    finish(x);
}

/* ------------------------------------------------------------------ queue */

static void start_next(ax_t *x)
{
    if (x->cur || !x->q)
        return;
    guest_job *j = x->q;
    x->q = j->next;
    if (!x->q)
        x->q_tail = NULL;
    j->next = NULL;
    x->cur = j;
    x->t0 = guest__now_ms();
    if (j->kind == JOB_OPEN)
        j->timeout_ms = x->open_ms;
    x->deadline = x->t0 + j->timeout_ms;
    x->pid = x->handle = -1;
    x->fd = -1;
    int rc;
    switch (j->kind) {
    case JOB_OPEN:
        rc = agent_ping(x->a, remaining(x), on_ping, x);
        if (rc == 0) {
            x->inflight++;
        } else {
            fail_rc(x, rc, "ping");
            finish(x);
        }
        break;
    case JOB_EXEC:
        exec_start(x);
        break;
    case JOB_COPY_IN:
    case JOB_COPY_OUT:
        copy_start(x);
        break;
    default: /* send/expect are refused by session.c for the agent */
        job_fail(x, -ENOTSUP, "the agent has no interactive shell");
        finish(x);
        break;
    }
}

static void ax_submit(guest_session_t *s, guest_job *j)
{
    ax_t *x = s->tp;
    if (x->q_tail)
        x->q_tail->next = j;
    else
        x->q = j;
    x->q_tail = j;
    start_next(x);
}

static void on_timer_closed(uv_handle_t *h)
{
    ax_t *x = h->data;
    guest_session_t *s = x->s;
    x->s = NULL;
    x->timer_closed = 1;
    guest__closed(s);
    maybe_free(x);
}

static void cancel(ax_t *x, guest_job *j)
{
    char step[512];
    guest__step(j, "agent", step, sizeof(step));
    guest__fail(j, x->name, -ECANCELED, step, "cancelled: session closed");
    guest__complete(x->s, j);
}

static void ax_close(guest_session_t *s)
{
    ax_t *x = s->tp;
    x->closing = 1;
    uv_timer_stop(&x->timer);
    if (x->cur) { /* its agent call, if any, comes back to a closing x */
        guest_job *j = x->cur;
        x->cur = NULL;
        if (x->fd >= 0) {
            close(x->fd);
            if (j->kind == JOB_COPY_OUT)
                unlink(j->path);
        }
        x->fd = -1;
        free(x->buf);
        x->buf = NULL;
        cancel(x, j);
    }
    while (x->q) {
        guest_job *j = x->q;
        x->q = j->next;
        j->next = NULL;
        cancel(x, j);
    }
    x->q_tail = NULL;
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static const guest_ops agent_ops = {.submit = ax_submit, .close = ax_close};

int guest__agent_init(guest_session_t *s, const guest_opts *o)
{
    if (!o->agent.client)
        return -EINVAL;
    ax_t *x = calloc(1, sizeof(*x));
    if (!x || !(x->name = strdup(o->name))) {
        free(x);
        return -ENOMEM;
    }
    x->s = s;
    x->a = o->agent.client;
    x->open_ms = o->agent.open_timeout_ms > 0 ? o->agent.open_timeout_ms : DEF_OPEN_MS;
    x->poll_ms = o->agent.poll_ms > 0 ? o->agent.poll_ms : DEF_POLL_MS;
    x->fd = -1;
    uv_timer_init(s->loop, &x->timer);
    x->timer.data = x;
    s->tp = x;
    s->ops = &agent_ops;
    return 0;
}
