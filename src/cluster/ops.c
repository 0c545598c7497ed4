/* ops.c - the calls of a session: claim (create-if-absent), random MACs,
 * release, list, the published keys (host record, guests) and the reclaim
 * of held keys after a reconnect. Each call is a cop queued on the session;
 * advance (cluster.c) sends it and, once its HTTP replies were recorded,
 * finishes it here and runs its callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/mac.h"
#include "base/str.h"
#include "base/time.h"
#include "src/cluster/cluster_int.h"

#define LIST_PAGE 500
#define MAC_TRIES 64

void cluster__lease_key(char *out, size_t n, const char *kind, const char *value)
{
    snprintf(out, n, "/qfleet/lease/%s/%s", kind, value);
}

char *cluster__lease_value(cluster_t *c, const char *owner)
{
    json_t *v = json_object();
    if (!v)
        return NULL;
    json_set_str(v, "host", c->host);
    json_set_str(v, "run", c->run);
    json_set_str(v, "owner", owner);
    json_set_int(v, "pid", cluster__pid());
    json_set_int(v, "taken_ms", time_wall_ms());
    char *s = json_dump(v, NULL);
    json_free(v);
    return s;
}

static int valid_owner(const char *o)
{
    size_t n = o ? strlen(o) : 0;
    if (n == 0 || n >= CLUSTER_OWNER_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)o; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int valid_kv(const char *kind, const char *value)
{
    return kind && value && strlen(kind) < CLUSTER_KIND_MAX && is_ident(kind, "_-") &&
           strlen(value) < CLUSTER_VALUE_MAX && is_ident(value, ":._-");
}

static cop *op_new(cluster_t *c, cop_kind kind)
{
    cop *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->c = c;
    o->kind = kind;
    o->deadline = time_mono_ms() + c->ttl_s * 1000.0;
    cop **p = &c->ops;
    while (*p)
        p = &(*p)->next;
    *p = o;
    cluster__kick(c);
    return o;
}

static void op_free(cop *o)
{
    for (size_t i = 0; i < o->nkeys; i++)
        free(o->keys[i]);
    free(o->keys);
    free(o->ls);
    json_free(o->arr);
    free(o);
}

/* An immediate result, delivered from the loop like any other. */
static void op_settle(cop *o, int result)
{
    o->sent = o->done = 1;
    o->result = result;
}

static void holder_text(const cetcd_kv *kv, char *out, size_t n)
{
    json_t *v = json_parse(kv->value, kv->value_len, NULL, 0);
    const char *run = json_get_str(v, "run");
    snprintf(out, n, "host %s%s%s owner %s pid %lld", json_get_str(v, "host") ?: "?",
             run && *run ? " run " : "", run && *run ? run : "", json_get_str(v, "owner") ?: "?",
             json_get_int(v, "pid", 0));
    json_free(v);
}

/* --- replies (recorded; the op finishes in advance) ---------------------- */

static void claim_reply(cop *o, const json_t *r)
{
    cetcd_kv *kv = NULL;
    size_t n = 0;
    if (json_get_bool(r, "succeeded", 0)) {
        o->result = 0;
        return;
    }
    if (cluster__etcd_kvs(r, 1, &kv, &n) < 0 || n == 0) {
        o->result = -EAGAIN; /* gone between compare and range: cannot be, try again */
        snprintf(o->err, sizeof(o->err), "etcd: create of %s/%s failed without a holder",
                 o->kind_s, o->value);
        cluster__etcd_kvs_free(kv, n);
        return;
    }
    json_t *v = json_parse(kv[0].value, kv[0].value_len, NULL, 0);
    /* A retry of a create etcd applied already: the key is ours. */
    if (kv[0].lease == o->c->lease && o->c->lease &&
        strcmp(json_get_str(v, "owner") ?: "", o->owner) == 0) {
        o->result = 0;
    } else {
        o->result = -EEXIST;
        holder_text(&kv[0], o->err, sizeof(o->err));
    }
    json_free(v);
    cluster__etcd_kvs_free(kv, n);
}

static int add_lease(cop *o, const cetcd_kv *kv)
{
    if (o->nls == o->capls) {
        size_t cap = o->capls ? o->capls * 2 : 64;
        cluster_lease *n = realloc(o->ls, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        o->ls = n;
        o->capls = cap;
    }
    cluster_lease *l = &o->ls[o->nls];
    memset(l, 0, sizeof(*l));
    const char *k = kv->key + strlen("/qfleet/lease/");
    const char *slash = strchr(k, '/');
    if (strncmp(kv->key, "/qfleet/lease/", 14) != 0 || !slash)
        return 0; /* not ours: skip */
    snprintf(l->kind, sizeof(l->kind), "%.*s", (int)(slash - k), k);
    snprintf(l->value, sizeof(l->value), "%s", slash + 1);
    json_t *v = json_parse(kv->value, kv->value_len, NULL, 0);
    snprintf(l->host, sizeof(l->host), "%s", json_get_str(v, "host") ?: "");
    snprintf(l->run, sizeof(l->run), "%s", json_get_str(v, "run") ?: "");
    snprintf(l->owner, sizeof(l->owner), "%s", json_get_str(v, "owner") ?: "");
    l->pid = (int)json_get_int(v, "pid", 0);
    l->taken_ms = json_get_int(v, "taken_ms", 0);
    json_free(v);
    o->nls++;
    return 0;
}

/* A page of a range: keep its kvs, and where to go on from when "more". */
static void range_reply(cop *o, const json_t *r)
{
    cetcd_kv *kv = NULL;
    size_t n = 0;
    int rc = cluster__etcd_kvs(r, 0, &kv, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (o->kind == COP_LIST) {
            rc = add_lease(o, &kv[i]);
        } else {
            json_t *g = json_parse(kv[i].value, kv[i].value_len, NULL, 0);
            if (g && json_typeof(g) == JSON_OBJECT)
                rc = json_append(o->arr, g);
            else
                json_free(g);
        }
    }
    o->result = rc;
    o->from[0] = '\0';
    if (rc == 0 && n > 0 && json_get_bool(r, "more", 0))
        snprintf(o->from, sizeof(o->from), "%s\x01", kv[n - 1].key);
    cluster__etcd_kvs_free(kv, n);
}

static void on_op_reply(int res, long status, const char *body, size_t len, const char *err,
                        void *data)
{
    cop *o = data;
    char perr[256];
    json_t *r = NULL;
    if (res == 0 && !(r = cluster__etcd_reply(body, len, perr, sizeof(perr)))) {
        res = -EPROTO;
        snprintf(o->err, sizeof(o->err), "etcd %s: %s", cluster__http_endpoint(o->c->http), perr);
    } else if (res < 0) {
        snprintf(o->err, sizeof(o->err), "%s", err);
        o->transient = res == -ETIMEDOUT || res == -ECONNREFUSED || status >= 500;
        if (res == -ECONNREFUSED)
            res = -ENOTCONN;
    }
    if (res < 0) {
        o->result = res;
    } else if (o->kind == COP_CLAIM || o->kind == COP_MAC || o->kind == COP_RECLAIM) {
        claim_reply(o, r);
    } else if (o->kind == COP_LIST || o->kind == COP_GUESTS) {
        range_reply(o, r);
    } else if (o->result == 0) {
        o->result = 0; /* release: the first error of the keys is kept */
    }
    json_free(r);
    if (--o->pend == 0)
        o->done = 1;
    cluster__kick(o->c);
}

/* --- sending ------------------------------------------------------------ */

static void mac_candidate(cop *o)
{
    unsigned char m[6];
    for (int i = 0; i < MAC_TRIES; i++) {
        memcpy(m, o->prefix, (size_t)o->nprefix);
        if (getrandom(m + o->nprefix, (size_t)(6 - o->nprefix), 0) < 0)
            for (int j = o->nprefix; j < 6; j++)
                m[j] = (unsigned char)rand();
        mac_format(m, o->value);
        if (!cluster__held_find(o->c, "mac", o->value))
            return;
    }
}

static int post(cop *o, const char *path, char *body)
{
    int rc = body ? cluster__http_post(o->c->http, path, body, on_op_reply, o, NULL) : -ENOMEM;
    free(body);
    if (rc == 0)
        o->pend++;
    return rc;
}

static int op_send(cop *o)
{
    cluster_t *c = o->c;
    char key[CLUSTER__KEY_MAX];
    o->sent = 1;
    o->result = 0;
    switch (o->kind) {
    case COP_MAC:
        if (!o->same)
            mac_candidate(o);
        o->same = 0;
        /* fall through */
    case COP_CLAIM:
    case COP_RECLAIM: {
        char *v = cluster__lease_value(c, o->owner);
        cluster__lease_key(key, sizeof(key), o->kind_s, o->value);
        int rc = v ? post(o, "/v3/kv/txn", cluster__etcd_create_body(key, v, c->lease)) : -ENOMEM;
        free(v);
        return rc;
    }
    case COP_RETAG: {
        char *v = cluster__lease_value(c, o->owner);
        cluster__lease_key(key, sizeof(key), o->kind_s, o->value);
        int rc = v ? post(o, "/v3/kv/txn", cluster__etcd_retag_body(key, v, c->lease)) : -ENOMEM;
        free(v);
        return rc;
    }
    case COP_RELEASE:
        for (size_t i = 0; i < o->nkeys; i++) {
            int rc = post(o, "/v3/kv/txn", cluster__etcd_delete_body(o->keys[i], c->lease));
            if (rc < 0)
                return rc;
        }
        if (o->nkeys == 0)
            o->done = 1;
        return 0;
    case COP_LIST:
    case COP_GUESTS:
        return post(o, "/v3/kv/range", cluster__etcd_range_body(o->from, o->end, LIST_PAGE));
    }
    return -EINVAL;
}

/* --- finishing ---------------------------------------------------------- */

static int lease_cmp(const void *a, const void *b)
{
    const cluster_lease *x = a, *y = b;
    int d = strcmp(x->kind, y->kind);
    if (d)
        return d;
    char *ex, *ey;
    long long nx = strtoll(x->value, &ex, 10), ny = strtoll(y->value, &ey, 10);
    if (*x->value && *y->value && !*ex && !*ey && nx != ny)
        return nx < ny ? -1 : 1;
    return strcmp(x->value, y->value);
}

static void reclaim_done(cluster_t *c, cop *o)
{
    cheld *h = cluster__held_find(c, o->kind_s, o->value);
    if (o->result == -EEXIST && h) {
        cluster__held_del(c, h);
        if (c->on_conflict && !c->closing)
            c->on_conflict(c, o->kind_s, o->value, o->owner, o->err, c->data);
    } else if (o->result < 0 && o->result != -EEXIST) {
        c->resync_failed = 1;
        snprintf(c->why, sizeof(c->why), "%s", o->err);
    }
    if (--c->resync == 0 && !c->resync_failed) {
        char why[CLUSTER_ERR_MAX];
        snprintf(why, sizeof(why), "lease %llx from etcd %s; %zu held keys claimed again",
                 (unsigned long long)c->lease, cluster__http_endpoint(c->http), c->nheld);
        cluster__set_state(c, CLUSTER_LIVE, why);
    }
}

/* Done with its replies: go on (next page, next MAC) or call back. 1 when
 * the op is over. */
static int op_finish(cluster_t *c, cop *o)
{
    /* etcd electing a leader, a member gone: try again while the session
     * holds, for at most a TTL. A create etcd applied before the reply was
     * lost is found to be ours (claim_reply). */
    double now = time_mono_ms();
    if (o->result < 0 && o->transient && o->kind != COP_RECLAIM && now < o->deadline &&
        c->state != CLUSTER_LOST && !c->closing) {
        o->transient = 0;
        o->same = 1; /* it may have been created: see it is ours first */
        o->sent = o->done = 0;
        o->not_before = now + 100;
        return 0;
    }
    if (o->kind == COP_MAC && o->result == -EEXIST && ++o->tries < MAC_TRIES &&
        c->state != CLUSTER_LOST && !c->closing) {
        o->sent = o->done = 0;
        return 0;
    }
    if ((o->kind == COP_LIST || o->kind == COP_GUESTS) && o->result == 0 && o->from[0]) {
        o->sent = o->done = 0;
        return 0;
    }
    if (o->kind == COP_MAC && o->result == -EEXIST)
        o->result = -ENOSPC;
    if ((o->kind == COP_CLAIM || o->kind == COP_MAC) && o->result == 0) {
        if (cluster__held_add(c, o->kind_s, o->value, o->owner) < 0)
            o->result = -ENOMEM;
        if (o->mac_out)
            memcpy(o->mac_out, o->value, MAC_STRLEN);
    }
    if (o->fail)
        o->result = o->fail;
    snprintf(c->err, sizeof(c->err), "%s", o->err);
    if (o->kind == COP_RECLAIM)
        reclaim_done(c, o);
    else if (o->kind == COP_LIST) {
        if (o->nls > 1)
            qsort(o->ls, o->nls, sizeof(*o->ls), lease_cmp);
        o->lcb(c, o->result, o->ls, o->result == 0 ? o->nls : 0, o->data);
    } else if (o->kind == COP_GUESTS) {
        json_t *a = o->result == 0 ? o->arr : NULL;
        if (a)
            o->arr = NULL;
        o->jcb(c, o->result, a, o->data);
    } else if (o->cb) {
        o->cb(c, o->result, o->data);
    }
    return 1;
}

void cluster__ops_advance(cluster_t *c)
{
    cop **p = &c->ops;
    while (*p && !c->closing) {
        cop *o = *p;
        if (!o->sent && o->not_before > time_mono_ms()) {
            p = &o->next;
            continue;
        }
        if (!o->sent) {
            int needs_live = o->kind == COP_CLAIM || o->kind == COP_MAC;
            if (needs_live && c->state != CLUSTER_LIVE && c->state != CLUSTER_UNPROVEN) {
                op_settle(o, -ENOTCONN);
                snprintf(o->err, sizeof(o->err), "etcd session is %s: %s",
                         cluster_state_name(c->state), c->why);
            } else {
                int rc = op_send(o);
                if (rc < 0 && o->pend == 0)
                    op_settle(o, rc);
            }
        }
        if (o->done && op_finish(c, o)) {
            *p = o->next;
            op_free(o);
            continue;
        }
        p = &o->next;
    }
}

double cluster__ops_next(const cluster_t *c)
{
    double next = 0;
    for (const cop *o = c->ops; o; o = o->next)
        if (!o->sent && o->not_before > 0 && (next == 0 || o->not_before < next))
            next = o->not_before;
    return next;
}

void cluster__ops_cancel(cluster_t *c)
{
    while (c->ops) {
        cop *o = c->ops;
        c->ops = o->next;
        o->result = -ECANCELED;
        o->from[0] = '\0';
        snprintf(o->err, sizeof(o->err), "etcd session closed");
        if (o->kind == COP_MAC)
            o->kind = COP_CLAIM;
        if (o->kind != COP_RECLAIM)
            op_finish(c, o);
        op_free(o);
    }
}

int cluster__resync_start(cluster_t *c)
{
    c->resync_failed = 0;
    for (size_t i = 0; i < c->nheld; i++) {
        cop *o = op_new(c, COP_RECLAIM);
        if (!o) {
            c->resync_failed = 1;
            return c->resync ? 0 : -ENOMEM;
        }
        snprintf(o->kind_s, sizeof(o->kind_s), "%s", c->held[i].kind);
        snprintf(o->value, sizeof(o->value), "%s", c->held[i].value);
        snprintf(o->owner, sizeof(o->owner), "%s", c->held[i].owner);
        c->resync++;
    }
    return 0;
}

/* --- the calls ---------------------------------------------------------- */

static int usable(const cluster_t *c, int live)
{
    if (!c)
        return -EINVAL;
    if (c->closing)
        return -ESHUTDOWN;
    if (live && c->readonly)
        return -EPERM;
    if (live && c->state != CLUSTER_LIVE)
        return -ENOTCONN;
    return 0;
}

/* The call's session check (live: it needs the lease), then (kind,
 * value) and owner (may be NULL: none) checked, and the value in the
 * canonical form keys use (a MAC as "02:00:.."): 0, or -errno. */
static int call_args(const cluster_t *c, int live, const char *kind, const char *value,
                     const char *owner, char v[CLUSTER_VALUE_MAX])
{
    unsigned char m[6];
    int rc = usable(c, live);
    if (rc < 0)
        return rc;
    if (!valid_kv(kind, value) || (owner && !valid_owner(owner)))
        return -EINVAL;
    snprintf(v, CLUSTER_VALUE_MAX, "%s", value);
    if (strcmp(kind, "mac") == 0) {
        if (mac_parse(value, m) < 0)
            return -EINVAL;
        mac_format(m, v);
    }
    return 0;
}

/* A queued op on (kind, v) for owner, its callback cb. NULL: no memory. */
static cop *op_for(cluster_t *c, cop_kind k, const char *kind, const char *v, const char *owner,
                   cluster_cb cb, void *data)
{
    cop *o = op_new(c, k);
    if (!o)
        return NULL;
    snprintf(o->kind_s, sizeof(o->kind_s), "%s", kind);
    snprintf(o->value, sizeof(o->value), "%s", v);
    snprintf(o->owner, sizeof(o->owner), "%s", owner);
    o->cb = cb;
    o->data = data;
    return o;
}

int cluster_claim(cluster_t *c, const char *kind, const char *value, const char *owner,
                  cluster_cb cb, void *data)
{
    char v[CLUSTER_VALUE_MAX];
    int rc = call_args(c, 1, kind, value, owner, v);
    if (rc < 0)
        return rc;
    if (!owner)
        return -EINVAL;
    cop *o = op_for(c, COP_CLAIM, kind, v, owner, cb, data);
    if (!o)
        return -ENOMEM;
    const cheld *h = cluster__held_find(c, kind, v);
    if (h && strcmp(h->owner, owner) == 0) {
        op_settle(o, 0);
    } else if (h) {
        op_settle(o, -EEXIST);
        snprintf(o->err, sizeof(o->err), "host %s%s%s owner %s pid %lld", c->host,
                 c->run[0] ? " run " : "", c->run, h->owner, cluster__pid());
    }
    return 0;
}

int cluster_claim_mac(cluster_t *c, const char *prefix, const char *owner, char *mac,
                      cluster_cb cb, void *data)
{
    int rc = usable(c, 1);
    if (rc < 0)
        return rc;
    unsigned char p[6];
    int n = prefix ? mac_octets_parse(prefix, p, 5) : -EINVAL;
    if (n < 1 || n > 5 || !valid_owner(owner) || !mac)
        return -EINVAL;
    cop *o = op_new(c, COP_MAC);
    if (!o)
        return -ENOMEM;
    snprintf(o->kind_s, sizeof(o->kind_s), "mac");
    snprintf(o->owner, sizeof(o->owner), "%s", owner);
    memcpy(o->prefix, p, (size_t)n);
    o->nprefix = n;
    o->mac_out = mac;
    o->cb = cb;
    o->data = data;
    return 0;
}

static int owned_by(const char *owner, const char *o)
{
    size_t n = strlen(o);
    return strncmp(owner, o, n) == 0 && (owner[n] == '\0' || owner[n] == '/');
}

/* Queue the delete of every held key matching (kind, value) or owner. */
static int release_keys(cluster_t *c, const char *kind, const char *value, const char *owner,
                        cluster_cb cb, void *data)
{
    cop *o = op_new(c, COP_RELEASE);
    if (!o)
        return -ENOMEM;
    o->cb = cb;
    o->data = data;
    for (size_t i = c->nheld; i-- > 0;) {
        cheld *h = &c->held[i];
        int match = owner ? owned_by(h->owner, owner)
                          : strcmp(h->kind, kind) == 0 && strcmp(h->value, value) == 0;
        if (!match)
            continue;
        char key[CLUSTER__KEY_MAX], **k = realloc(o->keys, (o->nkeys + 1) * sizeof(*k));
        cluster__lease_key(key, sizeof(key), h->kind, h->value);
        if (!k || !(k[o->nkeys] = strdup(key))) {
            if (k)
                o->keys = k;
            o->fail = -ENOMEM; /* what o has is released; its callback says -ENOMEM */
            return 0;
        }
        o->keys = k;
        o->nkeys++;
        cluster__held_del(c, h);
    }
    return 0;
}

int cluster_hand_over(cluster_t *c, const char *kind, const char *value, const char *owner,
                      cluster_cb cb, void *data)
{
    char v[CLUSTER_VALUE_MAX];
    int rc = call_args(c, 0, kind, value, owner, v);
    if (rc < 0)
        return rc;
    if (!owner)
        return -EINVAL;
    cheld *h = cluster__held_find(c, kind, v);
    if (!h)
        return -ENOENT;
    /* The table decides what a release takes: the new owner's at once.
     * The key's recorded owner follows (for listings; a reclaim after a
     * reconnect writes it anyway). */
    snprintf(h->owner, sizeof(h->owner), "%s", owner);
    cop *o = op_for(c, COP_RETAG, kind, v, owner, cb, data);
    if (!o)
        return -ENOMEM;
    if (c->state != CLUSTER_LIVE)
        op_settle(o, 0); /* the reclaim on reconnect writes the new owner */
    return 0;
}

int cluster_release(cluster_t *c, const char *kind, const char *value, cluster_cb cb,
                    void *data)
{
    char v[CLUSTER_VALUE_MAX];
    int rc = call_args(c, 0, kind, value, NULL, v);
    if (rc < 0)
        return rc;
    if (!cluster__held_find(c, kind, v))
        return -ENOENT;
    return release_keys(c, kind, v, NULL, cb, data);
}

int cluster_release_owner(cluster_t *c, const char *owner, cluster_cb cb, void *data)
{
    int rc = usable(c, 0);
    if (rc < 0)
        return rc;
    if (!valid_owner(owner))
        return -EINVAL;
    return release_keys(c, NULL, NULL, owner, cb, data);
}

static cop *range_op(cluster_t *c, cop_kind kind, const char *prefix)
{
    cop *o = op_new(c, kind);
    if (!o)
        return NULL;
    snprintf(o->from, sizeof(o->from), "%s", prefix);
    snprintf(o->end, sizeof(o->end), "%s", prefix);
    cluster__etcd_prefix_end(prefix, strlen(prefix), o->end);
    return o;
}

int cluster_list(cluster_t *c, const char *kind, cluster_list_cb cb, void *data)
{
    int rc = usable(c, 0);
    char prefix[CLUSTER__KEY_MAX];
    if (rc < 0)
        return rc;
    if (!cb || (kind && (strlen(kind) >= CLUSTER_KIND_MAX || !is_ident(kind, "_-"))))
        return -EINVAL;
    snprintf(prefix, sizeof(prefix), "/qfleet/lease/%s%s", kind ? kind : "", kind ? "/" : "");
    cop *o = range_op(c, COP_LIST, prefix);
    if (!o)
        return -ENOMEM;
    o->lcb = cb;
    o->data = data;
    return 0;
}

int cluster_guests(cluster_t *c, cluster_json_cb cb, void *data)
{
    int rc = usable(c, 0);
    if (rc < 0)
        return rc;
    if (!cb)
        return -EINVAL;
    json_t *arr = json_array();
    cop *o = arr ? range_op(c, COP_GUESTS, "/qfleet/guest/") : NULL;
    if (!o) {
        json_free(arr);
        return -ENOMEM;
    }
    o->arr = arr;
    o->jcb = cb;
    o->data = data;
    return 0;
}
