/* qmp.c - QMP client. See qmp.h. */
#include "qmp/qmp.h"
#include "qmp/test_hooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum qstate {
    Q_IDLE,
    Q_CONNECTING,
    Q_GREETING,    /* connected, waiting for {"QMP": ...} */
    Q_NEGOTIATING, /* qmp_capabilities sent */
    Q_READY,
    Q_DEAD,
};

/* A command in flight. It sits on the send-order list, where replies are
 * looked up (QEMU answers in order, so the head usually matches), and, if
 * it has a timeout, on the deadline-order list the timer walks. */
struct qcmd {
    struct qcmd *prev, *next;
    struct qcmd *tprev, *tnext;
    uint64_t id;
    uint64_t deadline; /* uv_now() ms, 0 = none */
    int timeout_ms;
    qmp_reply_cb cb;
    void *data;
    char name[];
};

struct sub {
    char *event; /* NULL = all */
    qmp_event_cb cb;
    void *data;
    int removed;
};

struct qmp {
    uv_loop_t *loop;
    conn_t *conn;
    uv_timer_t timer;    /* earliest command deadline */
    uv_timer_t hs_timer; /* handshake deadline */
    enum qstate state;
    int closing;
    int handles_open;    /* timers and conn not yet closed */
    int default_timeout;
    size_t max_input;
    int hs_timeout_ms;
    uint64_t hs_deadline;
    uint64_t armed;      /* deadline the timer is set for, 0 = idle */

    uint64_t next_id;
    struct qcmd *head, *tail;   /* send order */
    struct qcmd *thead, *ttail; /* deadline order */
    size_t in_flight;

    qmp_ready_cb ready_cb;
    void *ready_data;
    qmp_dead_cb dead_cb;
    void *dead_data;
    qmp_close_cb close_cb;
    void *close_data;

    struct sub *subs;
    size_t nsubs, capsubs;
    int dispatching_events;

    int have_greeting;
    qmp_greeting greeting;
    char *package;
    char **caps;

    qmp_stats st;
};

static void on_msg(conn_t *c, json_t *msg, const char *why, void *data);
static void on_dead(conn_t *c, const conn_err *err, void *data);

int qmp_new(uv_loop_t *loop, qmp_t **out)
{
    if (!loop || !out)
        return -EINVAL;
    qmp_t *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->loop = loop;
    q->default_timeout = QMP_DEFAULT_TIMEOUT_MS;
    q->next_id = 1;
    int rc = conn_new(loop, on_msg, on_dead, q, &q->conn);
    if (rc < 0) {
        free(q);
        return rc;
    }
    conn_set_label(q->conn, "QMP");
    uv_timer_init(loop, &q->timer);
    uv_timer_init(loop, &q->hs_timer);
    q->timer.data = q;
    q->hs_timer.data = q;
    q->handles_open = 3;
    *out = q;
    return 0;
}

void qmp_set_default_timeout(qmp_t *q, int ms)
{
    if (q && ms > 0)
        q->default_timeout = ms;
}

void qmp_set_max_input(qmp_t *q, size_t bytes)
{
    if (q)
        conn_set_max_input(q->conn, bytes);
}

void qmp_set_dead_cb(qmp_t *q, qmp_dead_cb cb, void *data)
{
    if (!q)
        return;
    q->dead_cb = cb;
    q->dead_data = data;
}

/* ---- the pending table ---- */

static void unlink_cmd(qmp_t *q, struct qcmd *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        q->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        q->tail = k->prev;
    if (k->deadline) {
        if (k->tprev)
            k->tprev->tnext = k->tnext;
        else
            q->thead = k->tnext;
        if (k->tnext)
            k->tnext->tprev = k->tprev;
        else
            q->ttail = k->tprev;
    }
    q->in_flight--;
}

static void link_cmd(qmp_t *q, struct qcmd *k)
{
    k->prev = q->tail;
    k->next = NULL;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->in_flight++;
    if (!k->deadline)
        return;
    /* Timeouts are mostly equal, so the new deadline is mostly the latest:
     * walking back from the tail is O(1) in practice. */
    struct qcmd *after = q->ttail;
    while (after && after->deadline > k->deadline)
        after = after->tprev;
    k->tprev = after;
    k->tnext = after ? after->tnext : q->thead;
    if (k->tnext)
        k->tnext->tprev = k;
    else
        q->ttail = k;
    if (after)
        after->tnext = k;
    else
        q->thead = k;
}

/* Unlink k, run its callback with ret or err, free it. */
static void complete(qmp_t *q, struct qcmd *k, const json_t *ret, const conn_err *err)
{
    unlink_cmd(q, k);
    if (err)
        q->st.failed++;
    else
        q->st.completed++;
    if (k->cb) {
        qmp_reply r = { .id = k->id, .cmd = k->name, .ret = err ? NULL : ret, .err = err };
        k->cb(q, &r, k->data);
    }
    free(k);
}

static void fail_all(qmp_t *q, const conn_err *err)
{
    while (q->head)
        complete(q, q->head, NULL, err);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(qmp_t *q)
{
    if (q->closing || !q->thead) {
        return; /* an idle armed timer just fires once for nothing */
    }
    uint64_t due = q->thead->deadline;
    if (q->armed && q->armed <= due)
        return;
    uint64_t now = uv_now(q->loop);
    q->armed = due;
    uv_timer_start(&q->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    qmp_t *q = t->data;
    q->armed = 0;
    uint64_t now = uv_now(q->loop);
    while (!q->closing && q->thead && q->thead->deadline <= now) {
        struct qcmd *k = q->thead;
        char desc[200];
        snprintf(desc, sizeof(desc), "QMP command '%s' (id %llu) timed out after %d ms", k->name,
                 (unsigned long long)k->id, k->timeout_ms);
        conn_err e = { -ETIMEDOUT, CONN_ERR_TIMEOUT, desc };
        q->st.timeouts++;
        complete(q, k, NULL, &e);
    }
    arm_timer(q);
}

static struct qcmd *find_cmd(qmp_t *q, uint64_t id)
{
    for (struct qcmd *k = q->head; k; k = k->next)
        if (k->id == id)
            return k;
    return NULL;
}

/* ---- sending ---- */

static int send_cmd(qmp_t *q, const char *cmd, json_t *args, int timeout_ms, qmp_reply_cb cb,
                    void *data)
{
    size_t nlen = strlen(cmd);
    struct qcmd *k = calloc(1, sizeof(*k) + nlen + 1);
    json_t *msg = json_object();
    if (!k || !msg) {
        free(k);
        json_free(msg);
        json_free(args);
        return -ENOMEM;
    }
    memcpy(k->name, cmd, nlen + 1);
    k->id = q->next_id++;
    k->cb = cb;
    k->data = data;
    int rc = json_set_str(msg, "execute", cmd);
    if (rc == 0 && args)
        rc = json_set(msg, "arguments", args);
    if (rc == 0)
        rc = json_set_int(msg, "id", (long long)k->id);
    if (rc == 0)
        rc = conn_send(q->conn, msg, NULL, NULL);
    json_free(msg);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (timeout_ms == 0)
        timeout_ms = q->default_timeout;
    if (timeout_ms > 0) {
        k->timeout_ms = timeout_ms;
        k->deadline = uv_now(q->loop) + (uint64_t)timeout_ms;
    }
    link_cmd(q, k);
    q->st.sent++;
    arm_timer(q);
    return 0;
}

int qmp_execute(qmp_t *q, const char *cmd, json_t *args, int timeout_ms, qmp_reply_cb cb,
                void *data)
{
    int rc = 0;
    if (!q || !cmd || !*cmd || (args && json_typeof(args) != JSON_OBJECT))
        rc = -EINVAL;
    else if (q->closing)
        rc = -ECANCELED;
    else if (q->state == Q_DEAD)
        rc = conn_error(q->conn) ? conn_error(q->conn)->code : -ENOTCONN;
    else if (q->state != Q_READY)
        rc = -ENOTCONN;
    if (rc < 0) {
        json_free(args);
        return rc;
    }
    return send_cmd(q, cmd, args, timeout_ms, cb, data);
}

/* ---- handshake ---- */

static void ready_done(qmp_t *q, const conn_err *err)
{
    uv_timer_stop(&q->hs_timer);
    qmp_ready_cb cb = q->ready_cb;
    q->ready_cb = NULL;
    if (!err)
        q->state = Q_READY;
    if (cb)
        cb(q, err, q->ready_data);
}

static void on_hs_timeout(uv_timer_t *t)
{
    qmp_t *q = t->data;
    char desc[160];
    snprintf(desc, sizeof(desc), "no QMP greeting and negotiation within %d ms", q->hs_timeout_ms);
    /* Killing the conn reports through on_dead, which calls ready_done. */
    conn_fail(q->conn, -ETIMEDOUT, CONN_ERR_TIMEOUT, desc);
}

/* Wait for the greeting within what is left of the caller's budget. */
static void start_handshake(qmp_t *q)
{
    q->state = Q_GREETING;
    if (!q->hs_deadline)
        return; /* the caller set no limit */
    uint64_t now = uv_now(q->loop);
    uv_timer_start(&q->hs_timer, on_hs_timeout, q->hs_deadline > now ? q->hs_deadline - now : 0, 0);
}

static void on_connected(conn_t *c, const conn_err *err, void *data)
{
    qmp_t *q = data;
    (void)c;
    if (q->closing)
        return;
    if (err) {
        q->state = Q_DEAD;
        ready_done(q, err);
        return;
    }
    start_handshake(q);
}

int qmp_connect(qmp_t *q, const char *path, int timeout_ms, qmp_ready_cb cb, void *data)
{
    if (!q || !path)
        return -EINVAL;
    if (q->closing)
        return -ECANCELED;
    if (q->state != Q_IDLE)
        return -EBUSY;
    q->hs_timeout_ms = timeout_ms;
    q->hs_deadline = timeout_ms > 0 ? uv_now(q->loop) + (uint64_t)timeout_ms : 0;
    q->ready_cb = cb;
    q->ready_data = data;
    q->state = Q_CONNECTING;
    int rc = conn_connect(q->conn, path, timeout_ms, on_connected, q);
    if (rc < 0) {
        q->ready_cb = NULL;
        q->state = Q_IDLE;
    }
    return rc;
}

int qmp_attach_fd(qmp_t *q, int fd, int timeout_ms, qmp_ready_cb cb, void *data)
{
    if (!q)
        return -EINVAL;
    if (q->closing || q->state != Q_IDLE) {
        if (fd >= 0)
            close(fd); /* the client owns fd, also on failure */
        return q->closing ? -ECANCELED : -EBUSY;
    }
    q->hs_timeout_ms = timeout_ms;
    q->hs_deadline = timeout_ms > 0 ? uv_now(q->loop) + (uint64_t)timeout_ms : 0;
    int rc = conn_attach_fd(q->conn, fd);
    if (rc < 0) {
        q->state = Q_DEAD;
        return rc;
    }
    q->ready_cb = cb;
    q->ready_data = data;
    start_handshake(q);
    return 0;
}

void qmp_peer_exited(qmp_t *q)
{
    if (q && !q->closing)
        conn_abort(q->conn);
}

static void on_caps(qmp_t *q, const qmp_reply *r, void *data)
{
    (void)data;
    if (!r->err) {
        ready_done(q, NULL);
        return;
    }
    /* Local failures (dead conn, close) are reported by on_dead/qmp_close. */
    if (r->err->code != -EREMOTEIO)
        return;
    char desc[300];
    snprintf(desc, sizeof(desc), "qmp_capabilities refused: %s: %s", r->err->cls, r->err->desc);
    conn_fail(q->conn, -EPROTO, CONN_ERR_PROTOCOL, desc);
}

static int parse_greeting(qmp_t *q, const json_t *g)
{
    const json_t *ver = json_get(g, "version");
    const json_t *qemu = json_get(ver, "qemu");
    q->greeting.major = (int)json_get_int(qemu, "major", -1);
    q->greeting.minor = (int)json_get_int(qemu, "minor", -1);
    q->greeting.micro = (int)json_get_int(qemu, "micro", -1);
    const char *pkg = json_get_str(ver, "package");
    q->package = strdup(pkg ? pkg : "");
    if (!q->package)
        return -ENOMEM;
    q->greeting.package = q->package;
    const json_t *caps = json_get(g, "capabilities");
    size_t n = json_typeof(caps) == JSON_ARRAY ? json_len(caps) : 0;
    q->caps = calloc(n + 1, sizeof(char *));
    if (!q->caps)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_str(json_at(caps, i));
        if (s && !(q->caps[k++] = strdup(s)))
            return -ENOMEM;
    }
    q->greeting.ncaps = k;
    q->greeting.caps = (const char *const *)q->caps;
    q->have_greeting = 1;
    return 0;
}

static void fail_proto(qmp_t *q, const char *what, const char *detail)
{
    char desc[300];
    snprintf(desc, sizeof(desc), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    conn_fail(q->conn, -EPROTO, CONN_ERR_PROTOCOL, desc);
}

static void compact_subs(qmp_t *q)
{
    size_t k = 0;
    for (size_t i = 0; i < q->nsubs; i++) {
        if (q->subs[i].removed)
            free(q->subs[i].event);
        else
            q->subs[k++] = q->subs[i];
    }
    q->nsubs = k;
}

static void dispatch_event(qmp_t *q, const json_t *msg, const char *name)
{
    const json_t *ts = json_get(msg, "timestamp");
    qmp_event ev = {
        .name = name,
        .seconds = ts ? json_get_int(ts, "seconds", -1) : -1,
        .microseconds = ts ? json_get_int(ts, "microseconds", -1) : -1,
        .data = json_get(msg, "data"),
    };
    q->st.events++;
    q->dispatching_events++;
    /* Subscriptions added by a callback start with the next event. */
    size_t n = q->nsubs;
    for (size_t i = 0; i < n && !q->closing; i++) {
        struct sub s = q->subs[i]; /* the array may move under the callback */
        if (s.removed || (s.event && strcmp(s.event, name)))
            continue;
        s.cb(q, &ev, s.data);
    }
    if (--q->dispatching_events == 0)
        compact_subs(q);
}

static void on_msg(conn_t *c, json_t *msg, const char *why, void *data)
{
    qmp_t *q = data;
    (void)c;
    if (q->closing)
        return;
    if (!msg) {
        fail_proto(q, "invalid JSON from QEMU", why);
        return;
    }
    if (json_typeof(msg) != JSON_OBJECT) {
        fail_proto(q, "QEMU sent a JSON value that is not an object", NULL);
        return;
    }
    if (q->state == Q_GREETING) {
        const json_t *g = json_get(msg, "QMP");
        if (json_typeof(g) != JSON_OBJECT) {
            fail_proto(q, "expected the QMP greeting", NULL);
            return;
        }
        int rc = parse_greeting(q, g);
        if (rc == 0) {
            q->state = Q_NEGOTIATING;
            rc = send_cmd(q, "qmp_capabilities", NULL, -1, on_caps, NULL);
        }
        if (rc < 0 && q->state != Q_DEAD)
            conn_fail(q->conn, rc, CONN_ERR_LOCAL, "cannot negotiate QMP capabilities");
        return;
    }
    const char *event = json_get_str(msg, "event");
    if (event) {
        dispatch_event(q, msg, event);
        return;
    }
    const json_t *ret = json_get(msg, "return");
    const json_t *error = json_get(msg, "error");
    long long id;
    if ((!ret && !error) || json_as_int(json_get(msg, "id"), &id) < 0 || id <= 0) {
        q->st.unknown_replies++;
        return;
    }
    struct qcmd *k = find_cmd(q, (uint64_t)id);
    if (!k) {
        if ((uint64_t)id < q->next_id)
            q->st.late_replies++;
        else
            q->st.unknown_replies++;
        return;
    }
    if (error) {
        const char *cls = json_get_str(error, "class");
        const char *desc = json_get_str(error, "desc");
        conn_err e = { -EREMOTEIO, cls ? cls : "GenericError", desc ? desc : "(no description)" };
        complete(q, k, NULL, &e);
    } else {
        complete(q, k, ret, NULL);
    }
}

static void on_dead(conn_t *c, const conn_err *err, void *data)
{
    qmp_t *q = data;
    (void)c;
    if (q->closing)
        return;
    enum qstate was = q->state;
    q->state = Q_DEAD;
    uv_timer_stop(&q->hs_timer);
    fail_all(q, err);
    if (q->closing)
        return;
    if (was != Q_READY)
        ready_done(q, err);
    else if (q->dead_cb)
        q->dead_cb(q, err, q->dead_data);
}

/* ---- events ---- */

int qmp_subscribe(qmp_t *q, const char *event, qmp_event_cb cb, void *data)
{
    if (!q || !cb)
        return -EINVAL;
    if (q->nsubs == q->capsubs) {
        size_t cap = q->capsubs ? q->capsubs * 2 : 8;
        struct sub *p = realloc(q->subs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        q->subs = p;
        q->capsubs = cap;
    }
    char *ev = NULL;
    if (event && !(ev = strdup(event)))
        return -ENOMEM;
    q->subs[q->nsubs++] = (struct sub){ .event = ev, .cb = cb, .data = data };
    return 0;
}

int qmp_unsubscribe(qmp_t *q, const char *event, qmp_event_cb cb, void *data)
{
    if (!q)
        return -EINVAL;
    for (size_t i = 0; i < q->nsubs; i++) {
        struct sub *s = &q->subs[i];
        if (s->removed || s->cb != cb || s->data != data)
            continue;
        if ((s->event == NULL) != (event == NULL) || (event && strcmp(s->event, event)))
            continue;
        s->removed = 1;
        if (!q->dispatching_events)
            compact_subs(q);
        return 0;
    }
    return -ENOENT;
}

/* ---- queries ---- */

const qmp_greeting *qmp_get_greeting(const qmp_t *q)
{
    return q && q->have_greeting ? &q->greeting : NULL;
}

int qmp_is_ready(const qmp_t *q)
{
    return q && !q->closing && q->state == Q_READY;
}

const conn_err *qmp_error(const qmp_t *q)
{
    return q ? conn_error(q->conn) : NULL;
}

void qmp_get_stats(const qmp_t *q, qmp_stats *st)
{
    if (!q || !st)
        return;
    *st = q->st;
    st->in_flight = q->in_flight;
    st->bytes_in = conn_bytes_in(q->conn);
    st->bytes_out = conn_bytes_out(q->conn);
}

int qmp_feed_for_test(qmp_t *q, const void *buf, size_t len)
{
    return q ? conn_feed(q->conn, buf, len) : -EINVAL;
}

/* ---- closing ---- */

static void release(qmp_t *q)
{
    if (--q->handles_open > 0)
        return;
    if (q->close_cb)
        q->close_cb(q, q->close_data);
    for (size_t i = 0; i < q->nsubs; i++)
        free(q->subs[i].event);
    free(q->subs);
    if (q->caps)
        for (char **p = q->caps; *p; p++)
            free(*p);
    free(q->caps);
    free(q->package);
    free(q);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_conn_closed(conn_t *c, void *data)
{
    (void)c;
    release(data);
}

void qmp_close(qmp_t *q, qmp_close_cb cb, void *data)
{
    if (!q || q->closing)
        return;
    q->closing = 1;
    q->close_cb = cb;
    q->close_data = data;
    conn_err e = { -ECANCELED, CONN_ERR_CANCELLED, "QMP client closed" };
    qmp_ready_cb rcb = q->ready_cb;
    q->ready_cb = NULL;
    fail_all(q, &e);
    if (rcb)
        rcb(q, &e, q->ready_data);
    uv_close((uv_handle_t *)&q->timer, on_handle_closed);
    uv_close((uv_handle_t *)&q->hs_timer, on_handle_closed);
    conn_close(q->conn, on_conn_closed, q);
}
