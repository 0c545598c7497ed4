/* control.c - control socket server on the fleet's loop, and a blocking
 * one-shot client. The socket is a qmp/listener; each client a qmp/conn.
 *
 * A client's EOF means "no more requests": what it asked is still answered,
 * then its side is shut down. A client gets at most MAX_INFLIGHT requests in
 * progress and, through the listener's output limits, no more replies than
 * it reads; past that its input waits. */
#include "src/ctl/control.h"
#include "base/time.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmp/agent.h"
#include "qmp/conn.h"
#include "qmp/listener.h"

#define QGA_DEFAULT_TIMEOUT_MS 30000
#define MAX_INFLIGHT 64

struct client {
    control_t *ctl;
    conn_t *conn;
    int refs;          /* the conn + each request in progress */
    int inflight;      /* requests in progress */
    int dead;
    int eof;           /* the client sent its last request */
    int shutting;
    struct client *next;
};

struct control {
    uv_loop_t *loop;
    fleet_t *f;
    listener_t *lsn;
    struct client *clients;
    control_down_cb on_down;
    void *data;
    int closing;
    int lsn_closed;
};

struct request {
    struct client *cl;
    json_t *id;
};

static void client_unref(struct client *cl)
{
    if (--cl->refs > 0)
        return;
    control_t *c = cl->ctl;
    for (struct client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    free(cl);
    /* The last client out frees a closed control. */
    if (c->lsn_closed && !c->clients)
        free(c);
}

static void on_conn_closed(conn_t *conn, void *data)
{
    (void)conn;
    client_unref(data);
}

static void client_drop(struct client *cl)
{
    if (cl->dead)
        return;
    cl->dead = 1;
    conn_close(cl->conn, on_conn_closed, cl);
}

static void reply(struct client *cl, const json_t *id, json_t *ret, const char *cls, const char *desc)
{
    if (cl->dead) {
        json_free(ret);
        return;
    }
    /* A client that reads guests.json after our reply must see the change
     * the reply reports; if it cannot, the reply is that failure. */
    char why[300], failed[400];
    if (fleet_flush_registry(cl->ctl->f, why, sizeof(why)) < 0 && !cls) {
        snprintf(failed, sizeof(failed), "done, but the run's registry could not be updated: %s",
                 why);
        cls = "RegistryError";
        desc = failed;
    }
    json_t *r = json_object();
    if (id)
        json_set(r, "id", json_copy(id));
    if (cls) {
        json_t *e = json_object();
        json_set_str(e, "class", cls);
        json_set_str(e, "desc", desc);
        json_set(r, "error", e);
        json_free(ret);
    } else {
        json_set(r, "return", ret ? ret : json_object());
    }
    conn_send(cl->conn, r, NULL, NULL);
    json_free(r);
}

static void on_shut(conn_t *conn, int status, void *data)
{
    (void)conn;
    (void)status;
    client_drop(data);
}

/* After the client's EOF and the last reply: flush, shut down, close. */
static void client_maybe_finish(struct client *cl)
{
    if (!cl->eof || cl->inflight || cl->dead || cl->shutting)
        return;
    cl->shutting = 1;
    if (conn_shutdown(cl->conn, on_shut, cl) < 0)
        client_drop(cl);
}

static void on_eof(conn_t *conn, void *data)
{
    struct client *cl = data;
    (void)conn;
    cl->eof = 1;
    client_maybe_finish(cl);
}

static struct request *request_new(struct client *cl, const json_t *id)
{
    struct request *rq = calloc(1, sizeof(*rq));
    if (!rq)
        return NULL;
    rq->cl = cl;
    rq->id = id ? json_copy(id) : NULL;
    cl->refs++;
    if (++cl->inflight >= MAX_INFLIGHT)
        conn_pause(cl->conn);
    return rq;
}

static void request_done(struct request *rq)
{
    struct client *cl = rq->cl;
    json_free(rq->id);
    free(rq);
    if (cl->inflight-- == MAX_INFLIGHT && !cl->dead)
        conn_resume(cl->conn);
    client_maybe_finish(cl);
    client_unref(cl);
}

static void on_qga_reply(agent_t *a, const json_t *ret, const conn_err *err, void *data)
{
    struct request *rq = data;
    (void)a;
    if (err)
        reply(rq->cl, rq->id, NULL, err->code == -ETIMEDOUT ? "Timeout" : "AgentError", err->desc);
    else
        reply(rq->cl, rq->id, ret ? json_copy(ret) : json_object(), NULL, NULL);
    request_done(rq);
}

static void on_guest_stopped(fguest_t *g, void *data)
{
    struct request *rq = data;
    if (fguest_state(g) == GS_FAILED)
        reply(rq->cl, rq->id, NULL, "GuestFailed", fguest_reason(g));
    else
        reply(rq->cl, rq->id, json_object(), NULL, NULL);
    request_done(rq);
}

static void on_migrated(fleet_t *f, const fleet_migration *m, void *data)
{
    struct request *rq = data;
    (void)f;
    if (m->status == 0)
        reply(rq->cl, rq->id, json_copy(m->record), NULL, NULL);
    else
        reply(rq->cl, rq->id, NULL, m->status == -ETIMEDOUT ? "Timeout" : "MigrationFailed",
              m->error ? m->error : "migration failed");
    request_done(rq);
}

/* {"cmd":"migrate","guest":SRC,"destination":DST, "timeout_ms", "cancel",
 * "downtime_limit_ms", "max_bandwidth"}: answered when the destination is
 * ready (docs/rundir.md). */
static void handle_migrate(struct client *cl, const json_t *msg, fguest_t *src)
{
    control_t *c = cl->ctl;
    const json_t *id = json_get(msg, "id");
    const char *dname = json_get_str(msg, "destination");
    fguest_t *dst = dname ? fleet_find(c->f, dname) : NULL;
    char desc[512];
    if (!dst) {
        snprintf(desc, sizeof(desc), "no destination guest named '%.100s' in this run",
                 dname ? dname : "");
        reply(cl, id, NULL, "NoSuchGuest", desc);
        return;
    }
    fleet_migrate_opts o = {
        .timeout_ms = (int)json_get_int(msg, "timeout_ms", 0),
        .cancel_on_timeout = json_get_bool(msg, "cancel", 0),
        .downtime_limit_ms = json_get_int(msg, "downtime_limit_ms", 0),
        .max_bandwidth = json_get_int(msg, "max_bandwidth", 0),
    };
    struct request *rq = request_new(cl, id);
    if (!rq) {
        reply(cl, id, NULL, "BadRequest", "out of memory");
        return;
    }
    int rc = fleet_migrate(c->f, src, dst, &o, on_migrated, rq, desc, sizeof(desc));
    if (rc < 0) {
        reply(cl, id, NULL, rc == -EBUSY ? "GuestNotReady" : "BadRequest", desc);
        request_done(rq);
    }
}

static void handle(struct client *cl, const json_t *msg)
{
    control_t *c = cl->ctl;
    const json_t *id = json_get(msg, "id");
    const char *cmd = json_get_str(msg, "cmd");
    if (!cmd) {
        reply(cl, id, NULL, "BadRequest", "a request needs a \"cmd\" string");
        return;
    }
    if (!strcmp(cmd, "status")) {
        reply(cl, id, fleet_registry(c->f), NULL, NULL);
        return;
    }
    if (!strcmp(cmd, "down")) {
        reply(cl, id, json_object(), NULL, NULL);
        if (c->on_down)
            c->on_down(c, c->data);
        return;
    }
    if (strcmp(cmd, "qga") && strcmp(cmd, "stop") && strcmp(cmd, "migrate")) {
        char desc[128];
        snprintf(desc, sizeof(desc), "unknown cmd '%.60s' (status, qga, stop, migrate, down)",
                 cmd);
        reply(cl, id, NULL, "BadRequest", desc);
        return;
    }
    const char *name = json_get_str(msg, "guest");
    fguest_t *g = name ? fleet_find(c->f, name) : NULL;
    if (!g) {
        char desc[160];
        snprintf(desc, sizeof(desc), "no guest named '%.100s' in this run", name ? name : "");
        reply(cl, id, NULL, "NoSuchGuest", desc);
        return;
    }
    if (!strcmp(cmd, "migrate")) {
        handle_migrate(cl, msg, g);
        return;
    }
    struct request *rq = request_new(cl, id);
    if (!rq) {
        reply(cl, id, NULL, "BadRequest", "out of memory");
        return;
    }
    if (!strcmp(cmd, "stop")) {
        fguest_stop(g, on_guest_stopped, rq);
        return;
    }
    agent_t *a = fguest_agent(g);
    const char *execute = json_get_str(msg, "execute");
    char desc[160];
    if (!a || !execute) {
        if (!a)
            snprintf(desc, sizeof(desc), "%s: the agent is not connected (state %s)", fguest_name(g),
                     fleet_state_name(fguest_state(g)));
        else
            snprintf(desc, sizeof(desc), "qga needs an \"execute\" string");
        reply(cl, id, NULL, a ? "BadRequest" : "GuestNotReady", desc);
        request_done(rq);
        return;
    }
    const json_t *args = json_get(msg, "arguments");
    int timeout = (int)json_get_int(msg, "timeout_ms", QGA_DEFAULT_TIMEOUT_MS);
    int rc = agent_execute(a, execute, args ? json_copy(args) : NULL, timeout, on_qga_reply, rq);
    if (rc < 0) {
        snprintf(desc, sizeof(desc), "%s: agent: %s", fguest_name(g), strerror(-rc));
        reply(cl, id, NULL, "AgentError", desc);
        request_done(rq);
    }
}

static void on_msg(conn_t *conn, json_t *msg, const char *why, void *data)
{
    struct client *cl = data;
    (void)conn;
    if (!msg || json_typeof(msg) != JSON_OBJECT) {
        reply(cl, NULL, NULL, "BadRequest", why ? why : "a request is a JSON object");
        return;
    }
    handle(cl, msg);
}

static void on_dead(conn_t *conn, const conn_err *err, void *data)
{
    (void)conn;
    (void)err;
    client_drop(data);
}

static void on_client(listener_t *l, conn_t *conn, void *data)
{
    control_t *c = data;
    (void)l;
    struct client *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        conn_close(conn, NULL, NULL);
        return;
    }
    cl->ctl = c;
    cl->conn = conn;
    cl->refs = 1;
    conn_set_handlers(conn, on_msg, on_dead, cl);
    conn_set_eof_cb(conn, on_eof);
    conn_set_label(conn, "control");
    cl->next = c->clients;
    c->clients = cl;
}

int control_start(uv_loop_t *loop, fleet_t *f, const char *path, control_down_cb on_down,
                  void *data, control_t **out, char *err, size_t errlen)
{
    control_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    char why[1024];
    int rc = listener_start(loop, path, on_client, c, &c->lsn, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "control socket %s", why);
        free(c);
        return rc;
    }
    c->loop = loop;
    c->f = f;
    c->on_down = on_down;
    c->data = data;
    *out = c;
    return 0;
}

static void on_listener_closed(listener_t *l, void *data)
{
    control_t *c = data;
    (void)l;
    c->lsn_closed = 1;
    /* Clients still closing (or with requests in flight) point at c; the
     * last of them frees it. */
    if (!c->clients)
        free(c);
}

void control_close(control_t *c)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    for (struct client *cl = c->clients; cl; cl = cl->next)
        client_drop(cl);
    listener_close(c->lsn, on_listener_closed, c);
}

/* ---- blocking client ---- */

int control_request(const char *path, const json_t *req, json_t **reply_out, int timeout_ms,
                    char *err, size_t errlen)
{
    int fd;
    char why[1024];
    int rc0 = listener_dial(path, 0, &fd, why, sizeof(why));
    if (rc0 < 0) {
        snprintf(err, errlen, "%s (is the controller still running?)", why);
        return rc0;
    }
    size_t n;
    char *line = json_dump(req, &n);
    int rc = 0;
    if (!line || write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
        rc = -EIO;
        snprintf(err, errlen, "%s: write failed", path);
    }
    free(line);
    size_t cap = 65536, len = 0;
    char *buf = rc == 0 ? malloc(cap) : NULL;
    double end = time_mono_ms() + timeout_ms;
    while (rc == 0) {
        char *nl = buf ? memchr(buf, '\n', len) : NULL;
        if (nl) {
            *reply_out = json_parse(buf, (size_t)(nl - buf), err, errlen);
            rc = *reply_out ? 0 : -EPROTO;
            break;
        }
        if (!buf || len == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                rc = -EMSGSIZE;
                snprintf(err, errlen, "%s: reply too large", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        int left = (int)(end - time_mono_ms());
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int pr = left > 0 ? poll(&p, 1, left) : 0;
        if (pr < 0 && errno == EINTR)
            continue; /* the deadline is rechecked above */
        if (pr <= 0) {
            rc = -ETIMEDOUT;
            snprintf(err, errlen, "%s: no reply within %d ms", path, timeout_ms);
            break;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r <= 0) {
            rc = r == 0 ? -ECONNRESET : -errno;
            snprintf(err, errlen, "%s: the controller closed the connection", path);
            break;
        }
        len += (size_t)r;
    }
    free(buf);
    close(fd);
    return rc;
}
