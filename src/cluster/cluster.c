/* cluster.c - the session: one etcd lease kept alive from the loop, the
 * health states and the deadline until which the lease is proven alive,
 * re-grant and re-claim after a reconnect, close. Every decision is taken
 * in advance(), run from a zero-delay kick timer; HTTP callbacks only
 * record what they got and kick. The calls (claim, list, publish) are in
 * ops.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/str.h"
#include "base/time.h"
#include "src/cluster/cluster_int.h"

#define RETRY_MS 500.0

static const char *const state_names[] = {
    [CLUSTER_CONNECTING] = "connecting", [CLUSTER_LIVE] = "live",
    [CLUSTER_UNPROVEN] = "unproven",     [CLUSTER_LOST] = "lost",
    [CLUSTER_CLOSED] = "closed",
};

const char *cluster_state_name(cluster_state s)
{
    return (unsigned)s <= CLUSTER_CLOSED ? state_names[s] : "?";
}

long long cluster__pid(void)
{
    return (long long)getpid();
}

int cluster_store_parse(const char *store, char *out, size_t outlen, char *err, size_t errlen)
{
    if (!store || strncmp(store, "etcd://", 7) != 0)
        return 0;
    const char *s = store + 7;
    struct sbuf b = {0};
    int n = 0;
    while (1) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *colon = memchr(s, ':', len);
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (len == 0 || !colon || colon == s || end != s + len || port < 1 || port > 65535 ||
            memchr(s, '/', len) || memchr(s, '@', len) || ++n > CLUSTER__EP_MAX) {
            snprintf(err, errlen,
                     "store %s: bad endpoint '%.*s' (want etcd://HOST:PORT[,HOST:PORT...])", store,
                     (int)len, s);
            sb_free(&b);
            return -EINVAL;
        }
        sb_printf(&b, "%shttp://%.*s", b.len ? "," : "", (int)len, s);
        if (!e)
            break;
        s = e + 1;
    }
    if (b.failed || b.len >= outlen) {
        snprintf(err, errlen, "store %s: too long", store);
        sb_free(&b);
        return -EINVAL;
    }
    snprintf(out, outlen, "%s", b.s);
    sb_free(&b);
    return 1;
}

void cluster__set_state(cluster_t *c, cluster_state s, const char *why)
{
    snprintf(c->why, sizeof(c->why), "%s", why ? why : "");
    if (s == c->state)
        return;
    c->state = s;
    if (c->on_state && !c->closing)
        c->on_state(c, s, c->why, c->data);
}

static void on_kick(uv_timer_t *t);

void cluster__kick(cluster_t *c)
{
    if (!c->finished)
        uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* --- the held-keys table ------------------------------------------------ */

cheld *cluster__held_find(cluster_t *c, const char *kind, const char *value)
{
    for (size_t i = 0; i < c->nheld; i++)
        if (strcmp(c->held[i].kind, kind) == 0 && strcmp(c->held[i].value, value) == 0)
            return &c->held[i];
    return NULL;
}

int cluster__held_add(cluster_t *c, const char *kind, const char *value, const char *owner)
{
    if (cluster__held_find(c, kind, value))
        return 0;
    if (c->nheld == c->capheld) {
        size_t cap = c->capheld ? c->capheld * 2 : 64;
        cheld *n = realloc(c->held, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        c->held = n;
        c->capheld = cap;
    }
    cheld *h = &c->held[c->nheld++];
    snprintf(h->kind, sizeof(h->kind), "%s", kind);
    snprintf(h->value, sizeof(h->value), "%s", value);
    snprintf(h->owner, sizeof(h->owner), "%s", owner);
    return 0;
}

void cluster__held_del(cluster_t *c, cheld *h)
{
    size_t i = (size_t)(h - c->held);
    c->held[i] = c->held[--c->nheld];
}

/* --- lease requests: grant and keepalive -------------------------------- */

static void on_lease_reply(int res, long status, const char *body, size_t len, const char *err,
                           void *data)
{
    cluster_t *c = data;
    c->lreq_inflight = 0;
    c->lreq_done = 1;
    c->lreq_res = res;
    c->lreq_id = c->lreq_ttl = 0;
    snprintf(c->lreq_err, sizeof(c->lreq_err), "%s", err);
    if (res == 0) {
        char perr[256];
        json_t *v = cluster__etcd_reply(body, len, perr, sizeof(perr));
        const json_t *r = v && json_get(v, "result") ? json_get(v, "result") : v;
        if (!v) {
            c->lreq_res = -EPROTO;
            snprintf(c->lreq_err, sizeof(c->lreq_err), "etcd %s: %s",
                     cluster__http_endpoint(c->http), perr);
        } else {
            c->lreq_id = cluster__etcd_int(r, "ID");
            c->lreq_ttl = cluster__etcd_int(r, "TTL");
        }
        json_free(v);
    } else if (res == -EPROTO && len) {
        char perr[256];
        json_t *v = cluster__etcd_reply(body, len, perr, sizeof(perr));
        if (!v)
            snprintf(c->lreq_err, sizeof(c->lreq_err), "%s: %s", err, perr);
        json_free(v);
    }
    cluster__kick(c);
}

static void send_lease_req(cluster_t *c, double now)
{
    int grant = c->lease == 0;
    char *body = grant ? cluster__etcd_grant_body(c->ttl_s) : cluster__etcd_id_body(c->lease);
    int rc = body ? cluster__http_post(c->http, grant ? "/v3/lease/grant" : "/v3/lease/keepalive",
                                       body, on_lease_reply, c, NULL)
                  : -ENOMEM;
    free(body);
    if (rc < 0) {
        c->next_ka = now + RETRY_MS;
        return;
    }
    c->lreq_inflight = 1;
    c->lreq_grant = grant;
    c->lreq_sent = now;
}

static double ka_interval(const cluster_t *c)
{
    int ttl = c->lease_ttl > 0 ? c->lease_ttl : c->ttl_s;
    return ttl * 1000.0 / 3.0;
}

/* The lease was confirmed (granted or kept alive) by a request sent at
 * lreq_sent: proven until then + TTL. */
static void lease_confirmed(cluster_t *c, double now)
{
    double rtt = now - c->lreq_sent;
    c->lease_ttl = (int)c->lreq_ttl;
    c->proven_until = c->lreq_sent + c->lreq_ttl * 1000.0;
    c->next_ka = c->lreq_sent + ka_interval(c);
    c->kas++;
    c->ka_last = rtt;
    if (rtt > c->ka_max)
        c->ka_max = rtt;
    if (c->state == CLUSTER_LIVE || c->state == CLUSTER_UNPROVEN) {
        cluster__set_state(c, CLUSTER_LIVE, "lease kept alive");
        return;
    }
    /* First grant or back after LOST: every held key is claimed again. */
    cluster__pubs_dirty(c);
    if (c->nheld == 0) {
        char why[CLUSTER_ERR_MAX];
        snprintf(why, sizeof(why), "lease %llx granted by etcd %s (TTL %d s)",
                 (unsigned long long)c->lease, cluster__http_endpoint(c->http), c->lease_ttl);
        cluster__set_state(c, CLUSTER_LIVE, why);
    } else if (cluster__resync_start(c) < 0) {
        c->next_ka = now + RETRY_MS;
    }
}

static void lease_failed(cluster_t *c, double now, const char *why)
{
    c->ka_fail++;
    c->next_ka = now + (ka_interval(c) < RETRY_MS ? ka_interval(c) : RETRY_MS);
    if (c->state == CLUSTER_LIVE)
        cluster__set_state(c, CLUSTER_UNPROVEN, why);
    else if (c->state == CLUSTER_CONNECTING)
        cluster__set_state(c, CLUSTER_LOST, why);
    else
        snprintf(c->why, sizeof(c->why), "%s", why);
}

static void lease_result(cluster_t *c, double now)
{
    c->lreq_done = 0;
    if (c->lreq_res < 0) {
        lease_failed(c, now, c->lreq_err);
        return;
    }
    if (c->lreq_grant) {
        if (c->lreq_id == 0 || c->lreq_ttl <= 0) {
            lease_failed(c, now, "etcd granted no lease");
            return;
        }
        c->lease = c->lreq_id;
    } else if (c->lreq_ttl <= 0) {
        /* etcd answers, but the lease expired: its keys are gone. */
        char why[CLUSTER_ERR_MAX];
        snprintf(why, sizeof(why), "lease %llx expired in etcd; its keys are gone",
                 (unsigned long long)c->lease);
        c->lease = 0;
        c->next_ka = now;
        cluster__set_state(c, CLUSTER_LOST, why);
        return;
    }
    lease_confirmed(c, now);
}

/* --- advance ------------------------------------------------------------ */

static void finish_close(cluster_t *c);

static void check_deadline(cluster_t *c, double now)
{
    if ((c->state == CLUSTER_LIVE || c->state == CLUSTER_UNPROVEN) && now >= c->proven_until) {
        char why[CLUSTER_ERR_MAX * 2];
        snprintf(why, sizeof(why), "lease %llx not proven alive for %d s: %s",
                 (unsigned long long)c->lease, c->lease_ttl,
                 c->why[0] ? c->why : "no keepalive confirmed");
        cluster__set_state(c, CLUSTER_LOST, why);
    }
}

static void arm_tick(cluster_t *c, double now)
{
    double next = now + 3600e3;
    if (!c->readonly && !c->lreq_inflight && c->resync == 0)
        next = c->next_ka;
    if ((c->state == CLUSTER_LIVE || c->state == CLUSTER_UNPROVEN) && c->proven_until < next)
        next = c->proven_until;
    double op = cluster__ops_next(c);
    if (op > 0 && op < next)
        next = op;
    if (c->closing)
        next = c->close_deadline;
    double d = next - now;
    uv_timer_start(&c->tick, on_kick, d > 0 ? (uint64_t)d + 1 : 1, 0); /* never 0: see advance */
}

static void advance(cluster_t *c)
{
    double now = time_mono_ms();
    if (c->closing) {
        if (c->lreq_done)
            c->lreq_done = 0;
        if (!c->revoking || now >= c->close_deadline)
            finish_close(c);
        else
            arm_tick(c, now);
        return;
    }
    if (c->lreq_done)
        lease_result(c, now);
    if (c->resync == 0 && c->resync_failed) {
        c->resync_failed = 0;
        c->next_ka = now + RETRY_MS;
    }
    check_deadline(c, now);
    cluster__ops_advance(c);
    cluster__pubs_advance(c);
    if (c->closing) { /* a callback closed the session */
        advance(c);
        return;
    }
    now = time_mono_ms();
    if (!c->readonly && !c->lreq_inflight && c->resync == 0 && now >= c->next_ka)
        send_lease_req(c, now);
    arm_tick(c, now);
}

static void on_kick(uv_timer_t *t)
{
    advance(t->data);
}

/* --- open and close ----------------------------------------------------- */

static int fill_opts(cluster_t *c, const cluster_opts *o, char *err, size_t errlen)
{
    int rc = cluster_store_parse(o->store, c->endpoints, sizeof(c->endpoints), err, errlen);
    if (rc == 0)
        snprintf(err, errlen, "store '%s' is not etcd://HOST:PORT[,...]",
                 o->store ? o->store : "(none)");
    if (rc <= 0)
        return -EINVAL;
    if (o->host_id) {
        snprintf(c->host, sizeof(c->host), "%s", o->host_id);
    } else if (gethostname(c->host, sizeof(c->host)) < 0) {
        snprintf(c->host, sizeof(c->host), "localhost");
    }
    c->host[sizeof(c->host) - 1] = '\0';
    const char *want = o->host_id ? o->host_id : c->host;
    if (!is_ident(c->host, "._-") || strlen(want) >= CLUSTER_HOST_MAX) {
        snprintf(err, errlen, "host id '%s': letters, digits, '.', '_', '-' (at most %d)",
                 want, CLUSTER_HOST_MAX - 1);
        return -EINVAL;
    }
    snprintf(c->run, sizeof(c->run), "%s", o->run ? o->run : "");
    c->ttl_s = o->ttl_s > 0 ? o->ttl_s : 5;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    c->readonly = o->readonly;
    if (c->ttl_s < 2 || c->ttl_s > 3600) {
        snprintf(err, errlen, "lease TTL %d s: want 2..3600", c->ttl_s);
        return -EINVAL;
    }
    return 0;
}

int cluster_open(uv_loop_t *loop, const cluster_opts *o, cluster_state_cb on_state,
                 cluster_conflict_cb on_conflict, void *data, cluster_t **out, char *err,
                 size_t errlen)
{
    if (!loop || !o || !out)
        return -EINVAL;
    cluster_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = fill_opts(c, o, err, errlen);
    if (rc == 0)
        rc = cluster__http_new(loop, c->endpoints, c->timeout_ms, &c->http, err, errlen);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->loop = loop;
    c->on_state = on_state;
    c->on_conflict = on_conflict;
    c->data = data;
    c->state = CLUSTER_CONNECTING;
    uv_timer_init(loop, &c->kick);
    uv_timer_init(loop, &c->tick);
    c->kick.data = c->tick.data = c;
    c->handles = 2;
    json_t *h = c->readonly ? NULL : json_object();
    if (h) {
        json_set_str(h, "host", c->host);
        json_set_int(h, "pid", cluster__pid());
        json_set_str(h, "run", c->run);
        json_set_int(h, "since_ms", time_wall_ms());
        char key[CLUSTER__KEY_MAX];
        snprintf(key, sizeof(key), "/qfleet/host/%s", c->host);
        cluster__pub_set(c, key, h);
        json_free(h);
    }
    c->next_ka = time_mono_ms();
    cluster__kick(c);
    *out = c;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    cluster_t *c = h->data;
    if (--c->handles > 0)
        return;
    cluster_cb cb = c->close_cb;
    void *data = c->close_data;
    if (cb)
        cb(c, 0, data);
    free(c->held);
    free(c);
}

static void http_closed(void *data)
{
    handle_closed((uv_handle_t *)&((cluster_t *)data)->kick);
}

static void finish_close(cluster_t *c)
{
    if (c->finished)
        return;
    c->finished = 1;
    c->revoking = 0;
    cluster__ops_cancel(c);
    cluster__pubs_free(c);
    c->handles++; /* the HTTP client counts as one */
    cluster__http_close(c->http, http_closed, c);
    uv_timer_stop(&c->kick);
    uv_timer_stop(&c->tick);
    uv_close((uv_handle_t *)&c->kick, handle_closed);
    uv_close((uv_handle_t *)&c->tick, handle_closed);
}

static void on_revoked(int res, long status, const char *body, size_t len, const char *err,
                       void *data)
{
    cluster_t *c = data;
    c->revoking = 0;
    cluster__kick(c);
}

void cluster_close(cluster_t *c, cluster_cb cb, void *data)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_data = data;
    c->state = CLUSTER_CLOSED;
    c->close_deadline = time_mono_ms() + c->timeout_ms;
    if (c->lease) {
        char *body = cluster__etcd_id_body(c->lease);
        if (body && cluster__http_post(c->http, "/v3/lease/revoke", body, on_revoked, c, NULL) == 0)
            c->revoking = 1;
        free(body);
    }
    cluster__kick(c);
}

/* --- reads -------------------------------------------------------------- */

cluster_state cluster_get_state(const cluster_t *c)
{
    return c->state;
}

const char *cluster_host(const cluster_t *c)
{
    return c->host;
}

const char *cluster_error(const cluster_t *c)
{
    return c->err;
}

void cluster_get_stats(const cluster_t *c, cluster_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->state = c->state;
    st->lease_id = c->lease;
    st->ttl_s = c->lease_ttl > 0 ? c->lease_ttl : c->ttl_s;
    st->keepalive_last_ms = c->ka_last;
    st->keepalive_max_ms = c->ka_max;
    st->keepalives = c->kas;
    st->keepalive_failures = c->ka_fail;
    st->held = c->nheld;
    if (c->lease && c->proven_until > 0)
        st->proven_until_ms = time_wall_ms() + (long long)(c->proven_until - time_mono_ms());
}
