/* agent.c - qemu-guest-agent client. See agent.h for the protocol rules. */
#include "qmp/agent_int.h"
#include "qmp/test_hooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>


/* Write-completion context of a command without a reply: the command may
 * have timed out and been freed before its bytes drain, so it is found
 * again by sequence number. */
struct flush {
    agent_t *a;
    uint64_t seq;
};

struct agent {
    uv_loop_t *loop;
    conn_t *conn;
    uv_timer_t timer;
    int closing;
    int handles_open;
    int dead;
    int connected;

    int port_open;  /* the owner said the guest side is open: writing allowed */
    int synced;
    int syncing;    /* 0xFF + guest-sync-delimited written, reply awaited */
    long long sync_id;
    uint64_t sync_deadline;
    int sync_timeout_now;
    int test_ids;
    long long next_test_id;
    agent_done_cb sync_cb; /* the owner's agent_sync, if pending */
    void *sync_data;
    int sync_req_timeout;

    int default_timeout, sync_timeout;
    struct acmd *head, *tail;
    size_t nqueued;
    struct acmd *inflight;
    uint64_t seq;

    agent_connect_cb connect_cb;
    void *connect_data;
    agent_dead_cb dead_cb;
    void *dead_data;
    agent_close_cb close_cb;
    void *close_data;
    agent_stats st;
};

static void on_msg(conn_t *c, json_t *msg, const char *why, void *data);
static void on_dead(conn_t *c, const conn_err *err, void *data);
static void pump(agent_t *a);
static void arm_timer(agent_t *a);

int agent_new(uv_loop_t *loop, agent_t **out)
{
    if (!loop || !out)
        return -EINVAL;
    agent_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    int rc = conn_new(loop, on_msg, on_dead, a, &a->conn);
    if (rc < 0) {
        free(a);
        return rc;
    }
    conn_set_label(a->conn, "qemu-ga");
    a->loop = loop;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    a->handles_open = 2;
    a->default_timeout = AGENT_DEFAULT_TIMEOUT_MS;
    a->sync_timeout = AGENT_DEFAULT_SYNC_TIMEOUT_MS;
    *out = a;
    return 0;
}

void agent_set_default_timeout(agent_t *a, int ms)
{
    if (a && ms > 0)
        a->default_timeout = ms;
}

void agent_set_sync_timeout(agent_t *a, int ms)
{
    if (a && ms > 0)
        a->sync_timeout = ms;
}

void agent_set_max_input(agent_t *a, size_t bytes)
{
    if (a)
        conn_set_max_input(a->conn, bytes);
}

void agent_set_dead_cb(agent_t *a, agent_dead_cb cb, void *data)
{
    if (!a)
        return;
    a->dead_cb = cb;
    a->dead_data = data;
}

/* ---- completing commands ---- */

static void free_cmd(struct acmd *k)
{
    json_free(k->msg);
    free(k);
}

static void complete_err(agent_t *a, struct acmd *k, const conn_err *e)
{
    a->st.failed++;
    agent__call_err(a, k, e);
    free_cmd(k);
}

static void complete_ok(agent_t *a, struct acmd *k, const json_t *ret)
{
    const char *bad = agent__call_ok(a, k, ret);
    if (bad) {
        char desc[200];
        snprintf(desc, sizeof(desc), "qemu-ga: malformed reply to %s: %s", k->name, bad);
        conn_err e = { -EPROTO, CONN_ERR_PROTOCOL, desc };
        complete_err(a, k, &e);
        return;
    }
    a->st.completed++;
    free_cmd(k);
}

static void unqueue(agent_t *a, struct acmd *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        a->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        a->tail = k->prev;
    k->prev = k->next = NULL;
    a->nqueued--;
}

/* Fail the pending agent_sync, if any. */
static void fail_sync_cb(agent_t *a, const conn_err *e)
{
    agent_done_cb cb = a->sync_cb;
    a->sync_cb = NULL;
    if (cb)
        cb(a, e, a->sync_data);
}

/* Fail everything: the command in flight, the queue, a pending sync. */
static void fail_all(agent_t *a, const conn_err *e)
{
    a->syncing = 0;
    a->synced = 0;
    struct acmd *k = a->inflight;
    a->inflight = NULL;
    if (k)
        complete_err(a, k, e);
    while (a->head) {
        k = a->head;
        unqueue(a, k);
        complete_err(a, k, e);
    }
    fail_sync_cb(a, e);
}

/* ---- synchronising ---- */

static long long new_sync_id(agent_t *a)
{
    if (a->test_ids)
        return a->next_test_id++;
    uint64_t r = 0;
    /* GRND_NONBLOCK: never stall the loop on an entropy-starved guest host
     * at boot; the id only has to differ from the previous ones. */
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = uv_hrtime() ^ (uintptr_t)a ^ (a->seq << 32) ^ (uint64_t)a->sync_id * 0x9E3779B97F4A7C15u;
    /* Positive and exactly representable as a double, in case some layer
     * of a guest agent goes through floating point. */
    r &= (UINT64_C(1) << 53) - 1;
    return r ? (long long)r : 1;
}

static void start_sync(agent_t *a)
{
    a->sync_id = new_sync_id(a);
    a->syncing = 1;
    a->sync_timeout_now = a->sync_cb && a->sync_req_timeout > 0 ? a->sync_req_timeout : a->sync_timeout;
    a->sync_deadline = uv_now(a->loop) + (uint64_t)a->sync_timeout_now;
    a->st.syncs++;
    /* Whatever arrives before the agent's 0xFF is stale: replies to timed
     * out commands, the error line the agent answers our 0xFF with. */
    conn_discard_until(a->conn, 0xFF);
    json_t *msg = json_object(), *args = json_object();
    int rc = json_set_int(args, "id", a->sync_id);
    if (rc == 0)
        rc = json_set_str(msg, "execute", "guest-sync-delimited");
    if (rc == 0)
        rc = json_set(msg, "arguments", args);
    else
        json_free(args);
    if (rc == 0)
        rc = conn_send_raw(a->conn, "\xff", 1, NULL, NULL);
    if (rc == 0)
        rc = conn_send(a->conn, msg, NULL, NULL);
    json_free(msg);
    if (rc < 0 && !a->dead && !a->closing) {
        a->syncing = 0;
        a->st.sync_failures++;
        conn_fail(a->conn, rc, CONN_ERR_LOCAL, "cannot write guest-sync-delimited");
    }
}

static void sync_timed_out(agent_t *a)
{
    a->syncing = 0;
    a->synced = 0;
    a->st.sync_failures++;
    char desc[160];
    snprintf(desc, sizeof(desc), "qemu-ga: no answer to guest-sync-delimited within %d ms",
             a->sync_timeout_now);
    conn_err e = { -ETIMEDOUT, CONN_ERR_TIMEOUT, desc };
    fail_sync_cb(a, &e);
}

/* ---- the queue ---- */

static void on_flushed(conn_t *c, int status, void *data)
{
    struct flush *fl = data;
    agent_t *a = fl->a;
    (void)c;
    if (status == 0 && !a->closing && a->inflight && a->inflight->seq == fl->seq) {
        struct acmd *k = a->inflight;
        a->inflight = NULL;
        /* A failing agent still answers with an error line: resync so it
         * cannot pass for the next command's reply. */
        a->synced = 0;
        complete_ok(a, k, NULL);
        pump(a);
        arm_timer(a);
    }
    free(fl);
}

/* Send whatever can go now. Never writes before the port is open. */
static void pump(agent_t *a)
{
    if (a->closing || a->dead || !conn_is_open(a->conn) || !a->port_open)
        return;
    if (a->syncing || a->inflight)
        return;
    if (!a->synced) {
        if (a->sync_cb || a->head)
            start_sync(a);
        arm_timer(a);
        return;
    }
    struct acmd *k = a->head;
    if (!k)
        return;
    unqueue(a, k);
    a->inflight = k;
    uint64_t seq = k->seq;
    struct flush *fl = NULL;
    int rc = 0;
    if (k->noreply && !(fl = malloc(sizeof(*fl))))
        rc = -ENOMEM;
    if (fl)
        *fl = (struct flush){ a, seq };
    if (rc == 0)
        rc = conn_send(a->conn, k->msg, fl ? on_flushed : NULL, fl);
    a->st.sent += rc == 0;
    if (rc < 0) {
        free(fl);
        /* A write error kills the conn, whose on_dead completed k already. */
        if (a->inflight && a->inflight->seq == seq) {
            a->inflight = NULL;
            char desc[160];
            snprintf(desc, sizeof(desc), "qemu-ga: cannot send %s: %s", k->name, uv_strerror(rc));
            conn_err e = { rc, CONN_ERR_LOCAL, desc };
            complete_err(a, k, &e);
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    agent_t *a = t->data;
    uint64_t now = uv_now(a->loop);
    if (a->syncing && a->sync_deadline <= now)
        sync_timed_out(a);
    struct acmd *k = a->inflight;
    if (!a->closing && k && k->deadline && k->deadline <= now) {
        a->inflight = NULL;
        a->synced = 0; /* its reply may still come: resync before the next */
        a->st.timeouts++;
        char desc[200];
        snprintf(desc, sizeof(desc), "qemu-ga: %s timed out after %d ms", k->name, k->timeout_ms);
        conn_err e = { -ETIMEDOUT, CONN_ERR_TIMEOUT, desc };
        complete_err(a, k, &e);
    }
    /* Queued commands that waited too long (port never opened, agent
     * unresponsive). A callback may change the queue, so rescan. */
    for (int again = 1; again && !a->closing;) {
        again = 0;
        for (k = a->head; k; k = k->next) {
            if (!k->deadline || k->deadline > now)
                continue;
            unqueue(a, k);
            a->st.timeouts++;
            char desc[200];
            snprintf(desc, sizeof(desc), "qemu-ga: %s timed out after %d ms, never sent%s", k->name,
                     k->timeout_ms, a->port_open ? "" : " (agent port not open)");
            conn_err e = { -ETIMEDOUT, CONN_ERR_TIMEOUT, desc };
            complete_err(a, k, &e);
            again = 1;
            break;
        }
    }
    pump(a);
    arm_timer(a);
}

static void arm_timer(agent_t *a)
{
    if (a->closing)
        return;
    uint64_t due = 0;
    if (a->syncing)
        due = a->sync_deadline;
    if (a->inflight && a->inflight->deadline && (!due || a->inflight->deadline < due))
        due = a->inflight->deadline;
    for (struct acmd *k = a->head; k; k = k->next)
        if (k->deadline && (!due || k->deadline < due))
            due = k->deadline;
    if (!due) {
        uv_timer_stop(&a->timer);
        return;
    }
    uint64_t now = uv_now(a->loop);
    uv_timer_start(&a->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- input ---- */

static void on_msg(conn_t *c, json_t *msg, const char *why, void *data)
{
    agent_t *a = data;
    if (a->closing || a->dead)
        return;
    if (a->syncing) {
        long long id;
        if (json_as_int(json_get(msg, "return"), &id) == 0 && id == a->sync_id) {
            a->syncing = 0;
            a->synced = 1;
            agent_done_cb cb = a->sync_cb;
            a->sync_cb = NULL;
            if (cb)
                cb(a, NULL, a->sync_data);
            pump(a);
            arm_timer(a);
        } else {
            /* The reply to an earlier sync, or junk after a 0xFF. */
            conn_discard_until(c, 0xFF);
        }
        return;
    }
    const json_t *ret = json_get(msg, "return");
    const json_t *error = json_get(msg, "error");
    struct acmd *k = a->inflight;
    if (!k) {
        /* Nothing asked for this; whatever it was, the stream can no
         * longer be trusted to pair replies with commands. */
        a->st.unexpected++;
        a->synced = 0;
        return;
    }
    a->inflight = NULL;
    if (!msg || (!ret && !error)) {
        a->synced = 0;
        char desc[300];
        snprintf(desc, sizeof(desc), "qemu-ga: %s in reply to %s: %s",
                 msg ? "unexpected message" : "invalid JSON", k->name,
                 msg ? "neither a return nor an error" : why);
        conn_err e = { -EPROTO, CONN_ERR_PROTOCOL, desc };
        complete_err(a, k, &e);
    } else if (error) {
        const char *cls = json_get_str(error, "class");
        const char *desc = json_get_str(error, "desc");
        conn_err e = { -EREMOTEIO, cls ? cls : "GenericError", desc ? desc : "(no description)" };
        if (k->noreply)
            a->synced = 0; /* its write callback may still come */
        complete_err(a, k, &e);
    } else {
        complete_ok(a, k, ret);
    }
    pump(a);
    arm_timer(a);
}

static void on_dead(conn_t *c, const conn_err *err, void *data)
{
    agent_t *a = data;
    (void)c;
    if (a->closing || a->dead)
        return;
    a->dead = 1;
    uv_timer_stop(&a->timer);
    fail_all(a, err);
    if (!a->closing && a->dead_cb)
        a->dead_cb(a, err, a->dead_data);
}

/* ---- connection ---- */

static void on_connected(conn_t *c, const conn_err *err, void *data)
{
    agent_t *a = data;
    (void)c;
    if (a->closing)
        return;
    agent_connect_cb cb = a->connect_cb;
    a->connect_cb = NULL;
    if (err) {
        a->dead = 1;
        fail_all(a, err);
    } else {
        a->connected = 1;
    }
    if (cb && !a->closing)
        cb(a, err, a->connect_data);
    pump(a);
    arm_timer(a);
}

int agent_connect(agent_t *a, const char *path, int timeout_ms, agent_connect_cb cb, void *data)
{
    if (!a || !path)
        return -EINVAL;
    if (a->closing)
        return -ECANCELED;
    a->connect_cb = cb;
    a->connect_data = data;
    int rc = conn_connect(a->conn, path, timeout_ms, on_connected, a);
    if (rc < 0)
        a->connect_cb = NULL;
    return rc;
}

int agent_attach_fd(agent_t *a, int fd)
{
    if (!a)
        return conn_attach_fd(NULL, fd);
    int rc = conn_attach_fd(a->conn, fd);
    if (rc == 0) {
        a->connected = 1;
        pump(a);
        arm_timer(a);
    }
    return rc;
}

void agent_peer_exited(agent_t *a)
{
    if (a && !a->closing)
        conn_abort(a->conn);
}

static int usable(const agent_t *a)
{
    if (a->closing)
        return -ECANCELED;
    if (a->dead) {
        const conn_err *e = conn_error(a->conn);
        return e ? e->code : -ENOTCONN;
    }
    return 0;
}

int agent_sync(agent_t *a, int timeout_ms, agent_done_cb cb, void *data)
{
    if (!a)
        return -EINVAL;
    int rc = usable(a);
    if (rc < 0)
        return rc;
    if (a->sync_cb)
        return -EBUSY;
    a->port_open = 1;
    a->synced = 0;
    a->syncing = 0; /* a sync already under way is superseded: its id no longer matches */
    a->sync_cb = cb;
    a->sync_data = data;
    a->sync_req_timeout = timeout_ms;
    pump(a);
    arm_timer(a);
    return 0;
}

void agent_port_closed(agent_t *a)
{
    if (!a || a->closing || a->dead)
        return;
    a->port_open = 0;
    a->synced = 0;
    a->syncing = 0;
    conn_err e = { -EPIPE, CONN_ERR_DISCONNECTED, "qemu-ga: the guest closed the agent port" };
    struct acmd *k = a->inflight;
    a->inflight = NULL;
    if (k)
        complete_err(a, k, &e);
    if (!a->closing)
        fail_sync_cb(a, &e);
    arm_timer(a);
}

/* ---- submitting ---- */

static int is_noreply(const char *cmd)
{
    static const char *const names[] = { "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram",
                                         "guest-suspend-hybrid" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(cmd, names[i]))
            return 1;
    return 0;
}

/* Build the command; args is consumed. NULL with *rc set on failure. */
struct acmd *agent__new_cmd(agent_t *a, const char *cmd, json_t *args, int timeout_ms,
                             enum akind kind, int *rc)
{
    *rc = 0;
    if (!a || !cmd || !*cmd || (args && json_typeof(args) != JSON_OBJECT))
        *rc = -EINVAL;
    else
        *rc = usable(a);
    if (*rc < 0) {
        json_free(args);
        return NULL;
    }
    size_t n = strlen(cmd);
    struct acmd *k = calloc(1, sizeof(*k) + n + 1);
    json_t *msg = json_object();
    if (!k || !msg || json_set_str(msg, "execute", cmd) < 0) {
        json_free(args);
        args = NULL;
        goto nomem;
    }
    if (args && json_set(msg, "arguments", args) < 0) /* consumes args */
        goto nomem;
    memcpy(k->name, cmd, n + 1);
    k->msg = msg;
    k->kind = kind;
    k->noreply = is_noreply(cmd);
    k->seq = ++a->seq;
    if (timeout_ms == 0)
        timeout_ms = a->default_timeout;
    if (timeout_ms > 0) {
        k->timeout_ms = timeout_ms;
        k->deadline = uv_now(a->loop) + (uint64_t)timeout_ms;
    }
    return k;
nomem:
    free(k);
    json_free(msg);
    *rc = -ENOMEM;
    return NULL;
}

int agent__enqueue(agent_t *a, struct acmd *k, void *data)
{
    k->data = data;
    k->prev = a->tail;
    if (a->tail)
        a->tail->next = k;
    else
        a->head = k;
    a->tail = k;
    a->nqueued++;
    pump(a);
    arm_timer(a);
    return 0;
}

/* ---- queries, tests ---- */

int agent_is_synced(const agent_t *a)
{
    return a && !a->closing && !a->dead && a->synced;
}

const conn_err *agent_error(const agent_t *a)
{
    return a ? conn_error(a->conn) : NULL;
}

void agent_get_stats(const agent_t *a, agent_stats *st)
{
    if (!a || !st)
        return;
    *st = a->st;
    st->queued = a->nqueued;
    st->bytes_in = conn_bytes_in(a->conn);
    st->bytes_out = conn_bytes_out(a->conn);
}

int agent_feed_for_test(agent_t *a, const void *buf, size_t len)
{
    return a ? conn_feed(a->conn, buf, len) : -EINVAL;
}

void agent_set_sync_id_for_test(agent_t *a, long long id)
{
    if (!a)
        return;
    a->test_ids = 1;
    a->next_test_id = id;
}

/* ---- closing ---- */

static void release(agent_t *a)
{
    if (--a->handles_open > 0)
        return;
    if (a->close_cb)
        a->close_cb(a, a->close_data);
    free(a);
}

static void on_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_conn_closed(conn_t *c, void *data)
{
    (void)c;
    release(data);
}

void agent_close(agent_t *a, agent_close_cb cb, void *data)
{
    if (!a || a->closing)
        return;
    a->closing = 1;
    a->close_cb = cb;
    a->close_data = data;
    conn_err e = { -ECANCELED, CONN_ERR_CANCELLED, "qemu-ga client closed" };
    agent_connect_cb ccb = a->connect_cb;
    a->connect_cb = NULL;
    fail_all(a, &e);
    if (ccb)
        ccb(a, &e, a->connect_data);
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
    conn_close(a->conn, on_conn_closed, a);
}
