/* qmpctl_qmp.c - qmpctl's QMP side, on the async client of qmp/qmp.h.
 *
 * A QEMU monitor chardev serves one client at a time: a second client's
 * connect lands in the listen backlog and sees no greeting until the first
 * one leaves. So `qmpctl events`, which holds a monitor for as long as it
 * runs, shares it: it listens on SOCK.qmpctl and speaks QMP there, passing
 * commands through and copying every event to its clients. Every qmpctl
 * connection tries that relay first, then the monitor itself. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "qmp/conn.h"
#include "qmp/listener.h"
#include "qmp/qmp.h"
#include "tools/qmpctl_int.h"

/* Connect without blocking: when the monitor is held and its backlog is
 * full, a blocking connect would hang; this one fails with EAGAIN. */
static int dial(const char *path, int *fd_out)
{
    char err[64];
    return listener_dial(path, 1, fd_out, err, sizeof(err));
}

/* The relay if one answers, else the monitor. On failure desc says why in
 * words that name the socket. */
static int open_monitor(const struct qc_target *t, int *fd, int *via_relay, char *desc,
                        size_t desclen)
{
    char relay[PATH_MAX + sizeof(QC_RELAY_SUFFIX)];
    snprintf(relay, sizeof(relay), "%s%s", t->sock, QC_RELAY_SUFFIX);
    *via_relay = 0;
    if (dial(relay, fd) == 0) {
        *via_relay = 1;
        return 0;
    }
    int rc = dial(t->sock, fd);
    if (rc == -ENOENT && t->guest)
        snprintf(desc, desclen, "%s %s is gone (QEMU exited?)", t->what, t->sock);
    else if (rc == -ENOENT)
        snprintf(desc, desclen, "no %s %s (is QEMU running with -qmp unix:%s,server=on?)", t->what,
                 t->sock, t->sock);
    else if (rc == -ECONNREFUSED)
        snprintf(desc, desclen, "nothing listens on %s %s (QEMU exited?)", t->what, t->sock);
    else if (rc == -EAGAIN)
        snprintf(desc, desclen, "%s %s is busy: another client holds it and its backlog is full",
                 t->what, t->sock);
    else if (rc < 0)
        snprintf(desc, desclen, "%s %s: %s", t->what, t->sock, strerror(-rc));
    return rc;
}

static void set_error(struct qc_result *r, int remote, const char *cls, const char *desc)
{
    r->remote = remote;
    snprintf(r->cls, sizeof(r->cls), "%s", cls ? cls : "GenericError");
    snprintf(r->desc, sizeof(r->desc), "%s", desc ? desc : "");
}

/* A handshake that times out on a monitor we reached directly almost
 * always means someone else is connected to it. */
static void set_conn_error(struct qc_result *r, const conn_err *e, const struct qc_target *t,
                           int via_relay)
{
    char desc[sizeof(r->desc)];
    if (e->code == -ETIMEDOUT && !via_relay)
        snprintf(desc, sizeof(desc), "%s %s: no QMP greeting in time: another client holds this "
                 "monitor (qmp-shell, or a qmpctl from before relays?)", t->what, t->sock);
    else if (e->code == -ECONNRESET)
        snprintf(desc, sizeof(desc), "%s %s closed the connection (QEMU exited?)", t->what, t->sock);
    else
        snprintf(desc, sizeof(desc), "%s %s: %s", t->what, t->sock, e->desc);
    set_error(r, 0, e->cls, desc);
}

static void greeting_version(qmp_t *q, char *out, size_t outlen)
{
    const qmp_greeting *g = qmp_get_greeting(q);
    if (g)
        snprintf(out, outlen, "%d.%d.%d", g->major, g->minor, g->micro);
}

void qc_result_clear(struct qc_result *r)
{
    json_free(r->ret);
    memset(r, 0, sizeof(*r));
}

/* ---- one command ---- */

struct call {
    const struct qc_target *t;
    const char *cmd;
    json_t *args;
    int timeout_ms;
    int via_relay;
    struct qc_result *r;
};

static void call_reply(qmp_t *q, const qmp_reply *rep, void *data)
{
    struct call *c = data;
    if (rep->err && rep->err->code == -EREMOTEIO)
        set_error(c->r, 1, rep->err->cls, rep->err->desc);
    else if (rep->err)
        set_conn_error(c->r, rep->err, c->t, c->via_relay);
    else
        c->r->ret = json_copy(rep->ret);
    qmp_close(q, NULL, NULL);
}

static void call_ready(qmp_t *q, const conn_err *err, void *data)
{
    struct call *c = data;
    if (err) {
        if (err->code != -ECANCELED)
            set_conn_error(c->r, err, c->t, c->via_relay);
        qmp_close(q, NULL, NULL);
        return;
    }
    greeting_version(q, c->r->version, sizeof(c->r->version));
    json_t *args = c->args;
    c->args = NULL; /* qmp_execute owns it from here, also on failure */
    int rc = qmp_execute(q, c->cmd, args, c->timeout_ms, call_reply, c);
    if (rc < 0) {
        set_error(c->r, 0, CONN_ERR_LOCAL, strerror(-rc));
        qmp_close(q, NULL, NULL);
    }
}

int qc_qmp_call(const struct qc_target *t, const char *cmd, json_t *args, int timeout_ms,
                struct qc_result *r)
{
    memset(r, 0, sizeof(*r));
    struct call c = { .t = t, .cmd = cmd, .args = args, .timeout_ms = timeout_ms, .r = r };
    int fd;
    char desc[sizeof(r->desc)];
    if (open_monitor(t, &fd, &c.via_relay, desc, sizeof(desc)) < 0) {
        set_error(r, 0, CONN_ERR_DISCONNECTED, desc);
        json_free(args);
        return -1;
    }
    uv_loop_t loop;
    qmp_t *q = NULL;
    uv_loop_init(&loop);
    int rc = qmp_new(&loop, &q);
    if (rc == 0)
        rc = qmp_attach_fd(q, fd, timeout_ms, call_ready, &c);
    else
        close(fd);
    if (rc < 0) {
        set_error(r, 0, CONN_ERR_LOCAL, strerror(-rc));
        qmp_close(q, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    json_free(c.args);
    return r->ret ? 0 : -1;
}

/* ---- the relay ---- */

struct relay;

struct rclient {
    struct relay *rl;
    conn_t *conn;
    int refs;        /* the conn, plus one per command in flight */
    int dead;
    int negotiated;
    struct rclient *next;
};

struct relay {
    qmp_t *q;        /* the monitor we hold */
    listener_t *lsn;
    struct rclient *clients;
    int lsn_closed;
};

struct rcmd {
    struct rclient *cl;
    json_t *id;
};

static void relay_maybe_free(struct relay *rl)
{
    if (rl->lsn_closed && !rl->clients)
        free(rl);
}

static void client_unref(struct rclient *cl)
{
    if (--cl->refs > 0)
        return;
    struct relay *rl = cl->rl;
    for (struct rclient **p = &rl->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    free(cl);
    relay_maybe_free(rl);
}

static void client_closed(conn_t *c, void *data)
{
    (void)c;
    client_unref(data);
}

static void client_drop(struct rclient *cl)
{
    if (cl->dead)
        return;
    cl->dead = 1;
    conn_close(cl->conn, client_closed, cl);
}

/* Send v (owned) to a live client, with id when the request had one. */
static void client_send(struct rclient *cl, json_t *v, const json_t *id)
{
    if (!cl->dead) {
        if (id)
            json_set(v, "id", json_copy(id));
        conn_send(cl->conn, v, NULL, NULL);
    }
    json_free(v);
}

static void client_error(struct rclient *cl, const json_t *id, const char *cls, const char *desc)
{
    json_t *v = json_object(), *e = json_object();
    json_set_str(e, "class", cls);
    json_set_str(e, "desc", desc);
    json_set(v, "error", e);
    client_send(cl, v, id);
}

static void relay_reply(qmp_t *q, const qmp_reply *rep, void *data)
{
    struct rcmd *k = data;
    (void)q;
    if (rep->err) {
        client_error(k->cl, k->id, rep->err->cls, rep->err->desc);
    } else {
        json_t *v = json_object();
        json_set(v, "return", json_copy(rep->ret));
        client_send(k->cl, v, k->id);
    }
    client_unref(k->cl);
    json_free(k->id);
    free(k);
}

/* What QEMU itself would do with a client's line, minus out-of-band. */
static void client_msg(conn_t *c, json_t *msg, const char *why, void *data)
{
    struct rclient *cl = data;
    (void)c;
    if (cl->dead || !cl->rl->q)
        return; /* going away: the monitor client may be closed already */
    if (!msg || json_typeof(msg) != JSON_OBJECT) {
        client_error(cl, NULL, "GenericError", why ? why : "QMP input must be a JSON object");
        return;
    }
    const json_t *id = json_get(msg, "id");
    const char *cmd = json_get_str(msg, "execute");
    const json_t *args = json_get(msg, "arguments");
    if (json_get(msg, "exec-oob")) {
        client_error(cl, id, "GenericError", "out-of-band execution is not supported here");
    } else if (!cmd) {
        client_error(cl, id, "GenericError", "QMP input lacks member 'execute'");
    } else if (args && json_typeof(args) != JSON_OBJECT) {
        client_error(cl, id, "GenericError", "QMP input member 'arguments' must be an object");
    } else if (!strcmp(cmd, "qmp_capabilities")) {
        if (cl->negotiated) {
            client_error(cl, id, "CommandNotFound",
                         "Capabilities negotiation is already complete, command ignored");
        } else {
            cl->negotiated = 1;
            json_t *v = json_object();
            json_set(v, "return", json_object());
            client_send(cl, v, id);
        }
    } else if (!cl->negotiated) {
        client_error(cl, id, "CommandNotFound",
                     "Expecting capabilities negotiation with 'qmp_capabilities'");
    } else {
        struct rcmd *k = calloc(1, sizeof(*k));
        if (!k) {
            client_error(cl, id, "GenericError", "out of memory");
            return;
        }
        k->cl = cl;
        k->id = id ? json_copy(id) : NULL;
        cl->refs++;
        int rc = qmp_execute(cl->rl->q, cmd, args ? json_copy(args) : NULL, 0, relay_reply, k);
        if (rc < 0) {
            client_error(cl, id, "GenericError", strerror(-rc));
            client_unref(cl);
            json_free(k->id);
            free(k);
        }
    }
}

static void client_dead(conn_t *c, const conn_err *err, void *data)
{
    (void)c;
    (void)err;
    client_drop(data);
}

static void relay_greet(struct relay *rl, struct rclient *cl)
{
    const qmp_greeting *g = qmp_get_greeting(rl->q);
    json_t *v = json_object(), *qmp = json_object(), *ver = json_object(), *qemu = json_object();
    json_set_int(qemu, "major", g ? g->major : 0);
    json_set_int(qemu, "minor", g ? g->minor : 0);
    json_set_int(qemu, "micro", g ? g->micro : 0);
    json_set(ver, "qemu", qemu);
    json_set_str(ver, "package", g ? g->package : "");
    json_set(qmp, "version", ver);
    json_set(qmp, "capabilities", json_array()); /* no oob through the relay */
    json_set(v, "QMP", qmp);
    client_send(cl, v, NULL);
}

static void relay_accept(listener_t *l, conn_t *conn, void *data)
{
    struct relay *rl = data;
    (void)l;
    struct rclient *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        conn_close(conn, NULL, NULL);
        return;
    }
    cl->rl = rl;
    cl->conn = conn;
    cl->refs = 1;
    cl->next = rl->clients;
    rl->clients = cl;
    conn_set_handlers(conn, client_msg, client_dead, cl);
    conn_set_label(conn, "relay client");
    relay_greet(rl, cl);
}

/* Listen on path next to the monitor. Sharing is a convenience: when it
 * cannot be set up the follower still runs, with a warning. */
static struct relay *relay_start(uv_loop_t *loop, qmp_t *q, const char *path)
{
    struct relay *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->q = q;
    char err[1024];
    int rc = listener_start(loop, path, relay_accept, rl, &rl->lsn, err, sizeof(err));
    if (rc < 0) {
        /* EADDRINUSE: another follower shares it already. */
        if (rc != -EADDRINUSE)
            fprintf(stderr, "%s: not sharing the monitor: %s\n", qc_prog, err);
        free(rl);
        return NULL;
    }
    return rl;
}

static void relay_lsn_closed(listener_t *l, void *data)
{
    struct relay *rl = data;
    (void)l;
    rl->lsn_closed = 1;
    relay_maybe_free(rl);
}

/* The listener unlinks first, so nobody new finds a relay going away. */
static void relay_close(struct relay *rl)
{
    if (!rl)
        return;
    rl->q = NULL;
    for (struct rclient *cl = rl->clients; cl; cl = cl->next)
        client_drop(cl);
    listener_close(rl->lsn, relay_lsn_closed, rl);
}

static void relay_event(struct relay *rl, const qmp_event *ev)
{
    for (struct rclient *cl = rl ? rl->clients : NULL; cl; cl = cl->next) {
        if (cl->dead || !cl->negotiated)
            continue;
        json_t *v = json_object(), *ts = json_object();
        json_set_str(v, "event", ev->name);
        if (ev->data)
            json_set(v, "data", json_copy(ev->data));
        json_set_int(ts, "seconds", ev->seconds);
        json_set_int(ts, "microseconds", ev->microseconds);
        json_set(v, "timestamp", ts);
        client_send(cl, v, NULL);
    }
}

/* ---- following events ---- */

#define RETRY_MS 100
/* After the sharing qmpctl left, every follower it served races for the
 * monitor; the losers wait in QEMU's backlog, so a short handshake bound
 * sends them back to find the winner's relay. */
#define TAKEOVER_HANDSHAKE_MS 1500

struct follow {
    uv_loop_t *loop;
    const struct qc_target *t;
    const char *label;
    int json;
    int timeout_ms;
    int via_relay;
    qmp_t *q;
    struct relay *relay;
    uv_signal_t sig[3];
    uv_timer_t retry;
    uint64_t retry_until;   /* uv_now() deadline while taking over */
    int taking_over;
    int saw_shutdown;
    int finished;
    int exit_code;
};

static void follow_say(struct follow *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void follow_say(struct follow *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s%s", qc_prog, f->label ? f->label : "", f->label ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void follow_finish(struct follow *f, int code)
{
    if (f->finished)
        return;
    f->finished = 1;
    f->exit_code = code;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&f->sig[i], NULL);
    uv_close((uv_handle_t *)&f->retry, NULL);
    relay_close(f->relay);
    f->relay = NULL;
    qmp_close(f->q, NULL, NULL);
    f->q = NULL;
}

static void print_event(struct follow *f, const qmp_event *ev)
{
    if (f->json) {
        json_t *v = json_object(), *ts = json_object();
        json_set_int(ts, "seconds", ev->seconds);
        json_set_int(ts, "microseconds", ev->microseconds);
        json_set(v, "timestamp", ts);
        json_set_str(v, "event", ev->name);
        if (ev->data)
            json_set(v, "data", json_copy(ev->data));
        if (f->label)
            json_set_str(v, "guest", f->label);
        qc_print_json(v, 1);
        json_free(v);
    } else {
        /* QEMU's own timestamp (host clock), so events that queued up
         * behind a slow terminal still show when they happened. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        time_t s = ev->seconds >= 0 ? (time_t)ev->seconds : now.tv_sec;
        long us = ev->seconds >= 0 ? (long)ev->microseconds : now.tv_nsec / 1000;
        struct tm tm;
        char stamp[32];
        localtime_r(&s, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
        char *data = ev->data ? json_dump(ev->data, NULL) : NULL;
        printf("%s.%06ld  %s%s%s%s%s\n", stamp, us, f->label ? f->label : "", f->label ? "  " : "",
               ev->name, data ? "  " : "", data ? data : "");
        free(data);
        fflush(stdout); /* one line per event, also into a pipe or file */
    }
}

static void follow_event(qmp_t *q, const qmp_event *ev, void *data)
{
    struct follow *f = data;
    (void)q;
    if (!strcmp(ev->name, "SHUTDOWN"))
        f->saw_shutdown = 1;
    print_event(f, ev);
    relay_event(f->relay, ev);
    if (ferror(stdout))
        follow_finish(f, QC_OK); /* the reader went away (| head) */
}

static void follow_ready(qmp_t *q, const conn_err *err, void *data);
static void follow_retry(uv_timer_t *t);

/* Connect (relay first) and start the handshake. 0, 1 to try again
 * shortly (the monitor's backlog is full), or -1 after saying why not. */
static int follow_connect(struct follow *f, int hs_timeout_ms)
{
    int fd;
    char desc[600];
    int rc = open_monitor(f->t, &fd, &f->via_relay, desc, sizeof(desc));
    if (rc == -EAGAIN && f->taking_over)
        return 1;
    if (rc < 0) {
        follow_say(f, "%s", desc);
        return -1;
    }
    rc = qmp_new(f->loop, &f->q);
    if (rc < 0) {
        close(fd);
        follow_say(f, "%s", strerror(-rc));
        return -1;
    }
    rc = qmp_attach_fd(f->q, fd, hs_timeout_ms, follow_ready, f);
    if (rc < 0) {
        follow_say(f, "%s", strerror(-rc));
        return -1;
    }
    return 0;
}

static void take_over_later(struct follow *f)
{
    if (uv_now(f->loop) >= f->retry_until) {
        follow_say(f, "could not take over the monitor within %d ms", f->timeout_ms);
        follow_finish(f, QC_FAIL);
        return;
    }
    uv_timer_start(&f->retry, follow_retry, RETRY_MS, 0);
}

static void follow_retry(uv_timer_t *t)
{
    struct follow *f = t->data;
    int rc = follow_connect(f, TAKEOVER_HANDSHAKE_MS);
    if (rc > 0)
        take_over_later(f);
    else if (rc < 0)
        follow_finish(f, QC_FAIL);
}

static void follow_dead(qmp_t *q, const conn_err *err, void *data)
{
    struct follow *f = data;
    (void)q;
    if (f->saw_shutdown) {
        follow_say(f, "QEMU shut down; no more events");
        follow_finish(f, QC_OK);
        return;
    }
    if (!f->via_relay) {
        follow_say(f, "%s %s closed (QEMU exited?)", f->t->what, f->t->sock);
        follow_finish(f, QC_FAIL);
        return;
    }
    /* The qmpctl we shared with went away while QEMU may well live on. */
    follow_say(f, "the qmpctl that shared the monitor went away (%s); taking over", err->desc);
    qmp_close(f->q, NULL, NULL);
    f->q = NULL;
    f->taking_over = 1;
    f->retry_until = uv_now(f->loop) + (uint64_t)f->timeout_ms;
    uv_timer_start(&f->retry, follow_retry, RETRY_MS, 0);
}

static void follow_ready(qmp_t *q, const conn_err *err, void *data)
{
    struct follow *f = data;
    if (err) {
        if (err->code == -ECANCELED)
            return;
        if (f->taking_over && err->code == -ETIMEDOUT) {
            /* Another follower won the race; its relay is the way in. */
            qmp_close(q, NULL, NULL);
            f->q = NULL;
            take_over_later(f);
            return;
        }
        struct qc_result r = { 0 };
        set_conn_error(&r, err, f->t, f->via_relay);
        follow_say(f, "%s", r.desc);
        follow_finish(f, QC_FAIL);
        return;
    }
    qmp_subscribe(q, NULL, follow_event, f);
    qmp_set_dead_cb(q, follow_dead, f);
    if (!f->via_relay) {
        char path[PATH_MAX + sizeof(QC_RELAY_SUFFIX)];
        snprintf(path, sizeof(path), "%s%s", f->t->sock, QC_RELAY_SUFFIX);
        f->relay = relay_start(f->loop, q, path);
    }
    char ver[32] = "?";
    greeting_version(q, ver, sizeof(ver));
    if (f->taking_over)
        follow_say(f, "following again%s; events of the last moments may be missing",
                   f->via_relay ? " through another sharing qmpctl" : "");
    else
        fprintf(stderr, "%s: following QMP events of %s (QEMU %s%s); Ctrl-C to stop\n", qc_prog,
                f->label ? f->label : f->t->sock, ver, f->via_relay ? ", through a sharing qmpctl" : "");
    f->taking_over = 0;
}

static void follow_signal(uv_signal_t *h, int signo)
{
    (void)signo;
    follow_finish(h->data, QC_OK);
}

int qc_follow_events(const struct qc_target *t, const char *label, int json, int timeout_ms)
{
    struct follow f = { .t = t, .label = label, .json = json, .timeout_ms = timeout_ms };
    uv_loop_t loop;
    uv_loop_init(&loop);
    f.loop = &loop;
    /* A reader that went away (| head) is a normal end, seen through
     * ferror(stdout), not a death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &f.sig[i]);
        f.sig[i].data = &f;
        uv_signal_start(&f.sig[i], follow_signal, sigs[i]);
    }
    uv_timer_init(&loop, &f.retry);
    f.retry.data = &f;
    if (follow_connect(&f, timeout_ms) != 0)
        follow_finish(&f, QC_FAIL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return f.exit_code;
}
