/* cluster_int.h - what the files of src/cluster share: the HTTP client on
 * the loop (http.c) and the etcd v3 JSON gateway bodies and replies
 * (etcd.c). Nothing outside src/cluster includes this. */
#ifndef QF_CLUSTER_INT_H
#define QF_CLUSTER_INT_H

#include <stddef.h>
#include <uv.h>

#include "base/json.h"

/* --- http.c: POST JSON on the loop through libcurl's multi-socket API ---
 *
 * One client per session, over endpoints "http://H:P" tried in order: a
 * request goes to the endpoint that answered last; when it cannot connect,
 * times out or gets a 5xx, it goes on to the next one until each was tried
 * once. Replies are bounded (CLUSTER__HTTP_MAX bytes). The callback runs
 * exactly once from the loop (never inside cluster__http_post), unless the
 * request is cancelled or the client closed first. */
#define CLUSTER__HTTP_MAX (1024 * 1024)
#define CLUSTER__EP_MAX 16

typedef struct chttp chttp;
typedef struct chreq chreq;
/* result: 0 with status 200 and the body; -ETIMEDOUT, -ECONNREFUSED,
 * -EMSGSIZE, -EPROTO (an HTTP error: body holds etcd's reply when any);
 * err names the endpoint(s) tried. body is valid during the call only. */
typedef void (*chttp_cb)(int result, long status, const char *body, size_t len,
                         const char *err, void *data);

int cluster__http_new(uv_loop_t *loop, const char *endpoints, int timeout_ms, chttp **out,
                      char *err, size_t errlen);
/* body is copied. *req (may be NULL) names the request for cancel. */
int cluster__http_post(chttp *h, const char *path, const char *body, chttp_cb cb, void *data,
                       chreq **req);
/* Drop a pending request; its callback will not run. */
void cluster__http_cancel(chttp *h, chreq *r);
/* The endpoint requests go to first ("127.0.0.1:2379"). */
const char *cluster__http_endpoint(const chttp *h);
/* Drop every pending request (no callbacks), close handles; cb runs once
 * from the loop when the last handle closed, then h is freed. */
void cluster__http_close(chttp *h, void (*cb)(void *data), void *data);

/* --- etcd.c: request bodies (malloc'd JSON text) and replies ---------- */
/* An int64 field as the gateway writes it (a string, or absent for 0). */
long long cluster__etcd_int(const json_t *obj, const char *key);
/* Prefix range end: key with its last byte + 1 (buffer of keylen bytes). */
void cluster__etcd_prefix_end(const char *key, size_t keylen, char *end);

char *cluster__etcd_grant_body(int ttl_s);
char *cluster__etcd_id_body(long long lease); /* keepalive, revoke */
/* Create key = value on lease if absent, else range it. */
char *cluster__etcd_create_body(const char *key, const char *value, long long lease);
/* Put key = value on lease (lease 0: none). */
char *cluster__etcd_put_body(const char *key, const char *value, long long lease);
/* Delete key only while it is attached to lease. */
char *cluster__etcd_delete_body(const char *key, long long lease);
/* Put key = value only while it is attached to lease (a new owner). */
char *cluster__etcd_retag_body(const char *key, const char *value, long long lease);
/* Range [from, end) of at most limit keys (end NULL: from alone). */
char *cluster__etcd_range_body(const char *from, const char *end, int limit);

/* A reply parsed: NULL with err (naming what) when it is not JSON or
 * carries an "error". The caller frees. */
json_t *cluster__etcd_reply(const char *body, size_t len, char *err, size_t errlen);
/* One kv of a range reply: key and value decoded (malloc'd, caller frees). */
typedef struct cetcd_kv {
    char *key, *value;
    size_t value_len;
    long long lease, create_revision;
} cetcd_kv;
/* kvs of a range reply (a txn's first response_range when txn). n kvs in
 * *out (caller frees with cluster__etcd_kvs_free). 0 or -EPROTO/-ENOMEM. */
int cluster__etcd_kvs(const json_t *reply, int txn, cetcd_kv **out, size_t *n);
void cluster__etcd_kvs_free(cetcd_kv *kv, size_t n);


/* --- the session (cluster.c) and its calls (ops.c) -------------------- */
#include "src/cluster/cluster.h"

#define CLUSTER__KEY_MAX 512

typedef struct cheld {
    char kind[CLUSTER_KIND_MAX];
    char value[CLUSTER_VALUE_MAX];
    char owner[CLUSTER_OWNER_MAX];
} cheld;

/* A key written on the lease and kept there: the host record and the
 * published guests. v NULL: to be deleted (then forgotten). */
typedef struct cpub {
    char key[CLUSTER__KEY_MAX];
    char *v;          /* JSON text */
    int dirty, inflight;
    struct cpub *next;
} cpub;

typedef enum { COP_CLAIM, COP_MAC, COP_RELEASE, COP_LIST, COP_GUESTS, COP_RECLAIM, COP_RETAG } cop_kind;

typedef struct cop {
    cluster_t *c;
    cop_kind kind;
    char kind_s[CLUSTER_KIND_MAX];
    char value[CLUSTER_VALUE_MAX];
    char owner[CLUSTER_OWNER_MAX];
    unsigned char prefix[6];
    int nprefix, tries;
    char *mac_out;
    int sent, done, result, pend;
    int transient;      /* the last failure may pass: send again after not_before */
    int same;           /* COP_MAC: send the same candidate again */
    int fail;           /* COP_RELEASE: its result whatever etcd says (-ENOMEM) */
    double deadline, not_before; /* monotonic ms */
    char **keys;      /* COP_RELEASE: keys to delete */
    size_t nkeys;
    char from[CLUSTER__KEY_MAX], end[CLUSTER__KEY_MAX]; /* paged ranges */
    cluster_lease *ls;
    size_t nls, capls;
    json_t *arr;
    char err[CLUSTER_ERR_MAX];
    cluster_cb cb;
    cluster_list_cb lcb;
    cluster_json_cb jcb;
    void *data;
    struct cop *next;
} cop;

struct cluster {
    uv_loop_t *loop;
    chttp *http;
    uv_timer_t kick, tick;
    int handles;
    cluster_state state;
    char why[CLUSTER_ERR_MAX];
    cluster_state_cb on_state;
    cluster_conflict_cb on_conflict;
    void *data;
    char host[CLUSTER_HOST_MAX];
    char run[CLUSTER_OWNER_MAX];
    char endpoints[CLUSTER_ERR_MAX];
    int ttl_s, timeout_ms;
    int readonly;             /* cluster_opts.readonly */
    long long lease;
    int lease_ttl;
    double proven_until;  /* monotonic ms */
    double next_ka;       /* monotonic ms of the next keepalive or grant */
    /* the lease request in flight (grant or keepalive) and its outcome */
    int lreq_inflight, lreq_done, lreq_grant, lreq_res;
    long long lreq_id, lreq_ttl;
    double lreq_sent;
    char lreq_err[CLUSTER_ERR_MAX];
    int resync;           /* reclaims in flight after a reconnect */
    int resync_failed;
    cheld *held;
    size_t nheld, capheld;
    cpub *pubs;
    cop *ops;
    double ka_last, ka_max;
    unsigned long long kas, ka_fail;
    char err[CLUSTER_ERR_MAX];
    int closing, revoking, finished;
    double close_deadline;
    cluster_cb close_cb;
    void *close_data;
};

void cluster__kick(cluster_t *c);
void cluster__set_state(cluster_t *c, cluster_state s, const char *why);
long long cluster__pid(void);
/* Held-keys table. */
cheld *cluster__held_find(cluster_t *c, const char *kind, const char *value);
int cluster__held_add(cluster_t *c, const char *kind, const char *value, const char *owner);
void cluster__held_del(cluster_t *c, cheld *h);
/* ops.c: start what is queued, finish what is done (from advance). */
void cluster__ops_advance(cluster_t *c);
void cluster__ops_cancel(cluster_t *c);
/* When an op waits to be sent again (monotonic ms), or 0. */
double cluster__ops_next(const cluster_t *c);
void cluster__pubs_advance(cluster_t *c);
void cluster__pubs_dirty(cluster_t *c);
void cluster__pubs_free(cluster_t *c);
int cluster__pub_set(cluster_t *c, const char *key, const json_t *v);
/* Reclaim every held key on the current lease (after a reconnect). */
int cluster__resync_start(cluster_t *c);
/* The value a lease key carries for owner. malloc'd JSON text. */
char *cluster__lease_value(cluster_t *c, const char *owner);
void cluster__lease_key(char *out, size_t n, const char *kind, const char *value);
#endif
