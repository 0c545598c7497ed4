/* ssh.c - libssh transport: the per-session worker thread, its queues,
 * keepalive; connecting and login are in ssh_connect.c.
 * See ssh.h for why this is a worker thread and not non-blocking libssh. */
#include "guest/ssh.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libssh/server.h> /* ssh_send_keepalive; works on client sessions too */

#define DEF_CONNECT_MS 120000
#define DEF_IO_MS 20000
#define DEF_KEEPALIVE_MS 15000
#define DEF_KEEPALIVE_MAX 3
#define WD_SLACK_MS 2000
#define WD_PERIOD_MS 1000

/* ------------------------------------------------------------- small bits */

int ssh__stopping(sshtp *t)
{
    pthread_mutex_lock(&t->mu);
    int stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

int ssh__lost(sshtp *t)
{
    if (t->lost)
        return 1;
    if (!t->ss)
        return 0;
    if (ssh_is_connected(t->ss) && !(ssh_get_status(t->ss) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
        return 0;
    t->lost = 1;
    t->why_status = -ENOTCONN;
    pthread_mutex_lock(&t->mu);
    int wd = t->wd_fired;
    pthread_mutex_unlock(&t->mu);
    if (wd)
        snprintf(t->why, sizeof(t->why),
                 "connection dropped: the guest stopped answering (still no progress %d ms "
                 "after the step's deadline)", t->io_timeout_ms + WD_SLACK_MS);
    else
        snprintf(t->why, sizeof(t->why), "connection lost: %s", ssh_get_error(t->ss));
    return 1;
}

int ssh__pump(sshtp *t, int ms)
{
    /* The session joins the event only while we poll it, so that libssh's
     * own blocking calls keep using the session's default poll context. */
    ssh_event_add_session(t->ev, t->ss);
    int rc = ssh_event_dopoll(t->ev, ms);
    ssh_event_remove_session(t->ev, t->ss);
    return rc == SSH_ERROR || ssh__lost(t) ? -1 : 0;
}

void ssh__step(const guest_job *j, char *out, size_t outlen)
{
    guest__step(j, "ssh", out, outlen);
}

void ssh__fail(sshtp *t, guest_job *j, const char *what)
{
    char step[512];
    ssh__step(j, step, sizeof(step));
    if (ssh__stopping(t))
        guest__fail(j, t->name, -ECANCELED, step, "cancelled: session closed");
    else if (ssh__lost(t))
        guest__fail(j, t->name, -ENOTCONN, step, "%s", t->why);
    else if (*ssh_get_error(t->ss))
        guest__fail(j, t->name, -EIO, step, "%s: %s", what, ssh_get_error(t->ss));
    else /* libssh's blocking calls give up silently when their timeout ends */
        guest__fail(j, t->name, -ETIMEDOUT, step, "%s: no answer from the guest in time", what);
}

/* --------------------------------------------------------------- keepalive */

/* A keepalive@openssh.com request wants a reply (sshd answers "failure",
 * which is fine): unlike SSH_MSG_IGNORE, silence then means the guest is
 * gone. libssh waits for the reply up to the io timeout and does not say
 * whether it came, so a wait that long counts as a miss. */
static void keepalive(sshtp *t)
{
    double t0 = guest__now_ms();
    ssh__set_timeout(t->ss, t->io_timeout_ms); /* a step may have left a shorter one */
    ssh_send_keepalive(t->ss);
    if (ssh__lost(t))
        return;
    if (guest__now_ms() - t0 >= t->io_timeout_ms * 0.9) {
        if (++t->ka_missed >= t->keepalive_max) {
            t->lost = 1;
            t->why_status = -ENOTCONN;
            snprintf(t->why, sizeof(t->why), "connection lost: no answer to %d keepalives",
                     t->ka_missed);
        }
    } else {
        t->ka_missed = 0;
    }
    t->last_io = guest__now_ms();
}

/* ------------------------------------------------------------------ worker */

/* Arm the watchdog for a step that should be over by `end`. Our own
 * deadlines are checked between libssh calls, and libssh bounds most of its
 * waits by the io timeout, but not all: its SFTP reader retries a silent
 * channel forever. */
static void arm_watchdog(sshtp *t, double end)
{
    pthread_mutex_lock(&t->mu);
    t->job_deadline = end ? end + t->io_timeout_ms + WD_SLACK_MS : 0;
    pthread_mutex_unlock(&t->mu);
}

static void run_job(sshtp *t, guest_job *j)
{
    double t0 = guest__now_ms(), deadline = t0 + j->timeout_ms;
    arm_watchdog(t, j->kind == JOB_OPEN ? t0 + t->connect_timeout_ms : deadline);
    if (j->kind == JOB_OPEN) {
        ssh__connect(t, j);
    } else if (ssh__stopping(t)) {
        ssh__fail(t, j, "cancelled");
    } else if (!t->ss || ssh__lost(t)) {
        char step[512];
        ssh__step(j, step, sizeof(step));
        guest__fail(j, t->name, t->why_status ? t->why_status : -ENOTCONN, step, "%s", t->why);
    } else {
        /* libssh's own waits inside this step end with the step, at most
         * the io timeout. */
        ssh__set_timeout(t->ss, j->timeout_ms < t->io_timeout_ms ? j->timeout_ms : t->io_timeout_ms);
        switch (j->kind) {
        case JOB_EXEC: ssh__exec(t, j, deadline); break;
        case JOB_SEND: ssh__send(t, j, deadline); break;
        case JOB_EXPECT: ssh__expect(t, j, deadline); break;
        case JOB_COPY_IN: ssh__copy_in(t, j, deadline); break;
        case JOB_COPY_OUT: ssh__copy_out(t, j, deadline); break;
        default: break;
        }
    }
    arm_watchdog(t, 0);
    j->elapsed_ms = guest__now_ms() - t0;
    t->last_io = guest__now_ms();
}

static void post(sshtp *t, guest_job *j)
{
    pthread_mutex_lock(&t->mu);
    if (t->done_tail)
        t->done_tail->next = j;
    else
        t->done = j;
    t->done_tail = j;
    pthread_mutex_unlock(&t->mu);
    uv_async_send(&t->async);
}

/* Wait for a job or a stop; sends keepalives while idle. Called and returns
 * with mu held. */
static void idle_wait(sshtp *t)
{
    while (!t->pend && !t->stop) {
        int ka = t->keepalive_ms > 0 && t->ss && !t->lost;
        if (!ka) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        double due = t->last_io + t->keepalive_ms, now = guest__now_ms();
        if (now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double ns = ts.tv_nsec + (due - now) * 1e6;
            ts.tv_sec += (time_t)(ns / 1e9);
            ts.tv_nsec = (long)(ns - (double)(time_t)(ns / 1e9) * 1e9);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        t->busy = 1;
        pthread_mutex_unlock(&t->mu);
        arm_watchdog(t, guest__now_ms() + t->io_timeout_ms);
        keepalive(t);
        arm_watchdog(t, 0);
        pthread_mutex_lock(&t->mu);
        t->busy = 0;
    }
}

static void *worker(void *arg)
{
    sshtp *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        idle_wait(t);
        if (t->stop)
            break;
        guest_job *j = t->pend;
        t->pend = j->next;
        if (!t->pend)
            t->pend_tail = NULL;
        j->next = NULL;
        t->busy = 1;
        pthread_mutex_unlock(&t->mu);
        run_job(t, j);
        post(t, j);
        pthread_mutex_lock(&t->mu);
        t->busy = 0;
    }
    guest_job *rest = t->pend;
    t->pend = t->pend_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (rest) {
        guest_job *j = rest;
        rest = j->next;
        j->next = NULL;
        ssh__fail(t, j, "cancelled");
        post(t, j);
    }
    ssh__disconnect(t);
    if (t->ev)
        ssh_event_free(t->ev);
    t->ev = NULL;
    guest__buf_free(&t->sh_buf);
    pthread_mutex_lock(&t->mu);
    t->exited = 1;
    pthread_mutex_unlock(&t->mu);
    /* Last touch of t by this thread: the loop joins before closing async. */
    uv_async_send(&t->async);
    return NULL;
}

/* -------------------------------------------------------------- loop side */

static void tp_free(sshtp *t)
{
    if (t->password) /* do not leave it lying in freed heap */
        memset(t->password, 0, strlen(t->password));
    free(t->name);
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->key_path);
    free(t->known_hosts);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    sshtp *t = h->data;
    if (--t->handles > 0)
        return;
    guest_session_t *s = t->s;
    tp_free(t);
    if (s)
        guest__closed(s);
}

static void close_handles(sshtp *t)
{
    uv_close((uv_handle_t *)&t->wd, on_handle_closed);
    uv_close((uv_handle_t *)&t->async, on_handle_closed);
}

static void on_watchdog(uv_timer_t *tm)
{
    sshtp *t = tm->data;
    pthread_mutex_lock(&t->mu);
    if (t->busy && t->job_deadline > 0 && guest__now_ms() > t->job_deadline && t->sock >= 0 &&
        !t->wd_fired) {
        t->wd_fired = 1;
        shutdown(t->sock, SHUT_RDWR);
    }
    pthread_mutex_unlock(&t->mu);
}

static void on_async(uv_async_t *a)
{
    sshtp *t = a->data;
    pthread_mutex_lock(&t->mu);
    guest_job *list = t->done;
    t->done = t->done_tail = NULL;
    int exited = t->exited;
    pthread_mutex_unlock(&t->mu);
    while (list) {
        guest_job *j = list;
        list = j->next;
        j->next = NULL;
        guest__complete(t->s, j);
    }
    if (exited && !t->joined) {
        t->joined = 1;
        pthread_join(t->thr, NULL);
        close_handles(t);
    }
}

static void ssh_submit(guest_session_t *s, guest_job *j)
{
    sshtp *t = s->tp;
    pthread_mutex_lock(&t->mu);
    if (t->pend_tail)
        t->pend_tail->next = j;
    else
        t->pend = j;
    t->pend_tail = j;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void ssh_close(guest_session_t *s)
{
    sshtp *t = s->tp;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    /* A busy worker may sit in a blocking libssh call for up to the io
     * timeout: shutting the socket down makes that call fail now. An idle
     * one wakes on the condvar and can still say goodbye properly. */
    if (t->busy && t->sock >= 0)
        shutdown(t->sock, SHUT_RDWR);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static const guest_ops ssh_ops = {.submit = ssh_submit, .close = ssh_close};

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -ENOMEM : 0;
}

int guest__ssh_init(guest_session_t *s, const guest_opts *o)
{
    const guest_ssh_opts *so = &o->ssh;
    if (so->port <= 0 || so->port > 65535 || !so->user || !*so->user || !so->known_hosts ||
        !*so->known_hosts)
        return -EINVAL;
    sshtp *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->sock = -1;
    t->s = s;
    if (dup_opt(&t->name, o->name) || dup_opt(&t->host, so->host ? so->host : "127.0.0.1") ||
        dup_opt(&t->user, so->user) || dup_opt(&t->password, so->password) ||
        dup_opt(&t->key_path, so->key_path) || dup_opt(&t->known_hosts, so->known_hosts)) {
        pthread_mutex_init(&t->mu, NULL); /* tp_free destroys them */
        pthread_cond_init(&t->cv, NULL);
        tp_free(t);
        return -ENOMEM;
    }
    t->port = so->port;
    t->connect_timeout_ms = so->connect_timeout_ms > 0 ? so->connect_timeout_ms : DEF_CONNECT_MS;
    t->io_timeout_ms = so->io_timeout_ms > 0 ? so->io_timeout_ms : DEF_IO_MS;
    t->keepalive_ms = so->keepalive_ms < 0 ? 0 : so->keepalive_ms ? so->keepalive_ms : DEF_KEEPALIVE_MS;
    t->keepalive_max = so->keepalive_max_missed > 0 ? so->keepalive_max_missed : DEF_KEEPALIVE_MAX;
    t->copy_mode = so->copy_mode;
    t->max_output = s->max_output;
    t->sh_bol = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines ignore clock steps */
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = uv_async_init(s->loop, &t->async, on_async);
    if (rc < 0) {
        tp_free(t);
        return rc;
    }
    t->async.data = t;
    uv_timer_init(s->loop, &t->wd); /* cannot fail on Linux */
    t->wd.data = t;
    t->handles = 2;
    uv_timer_start(&t->wd, on_watchdog, WD_PERIOD_MS, WD_PERIOD_MS);
    uv_unref((uv_handle_t *)&t->wd); /* the async keeps the loop alive */
    /* The worker must never take the process's signals (SIGCHLD for QEMU
     * children, SIGINT, ...): they belong to the loop thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&t->thr, NULL, worker, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        t->s = NULL; /* the session is freed by guest_open's caller */
        close_handles(t);
        return rc;
    }
    s->tp = t;
    s->ops = &ssh_ops;
    return 0;
}
