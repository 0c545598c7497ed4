/* cluster.h - leases that hold across every host of a farm, on etcd.
 *
 * A cluster_t is one controller's session with an etcd cluster (v3 JSON
 * gateway, 3.4): one etcd lease, granted at open with a TTL of a few
 * seconds and kept alive from the loop. Every key the session creates is
 * attached to that lease, so when the process dies, or is cut off from etcd
 * longer than the TTL, etcd drops its keys cluster-wide: reclaim needs no
 * sweeper. Host-local resources (CPU sets, host ports, VFs of this host's
 * PFs) stay in the local store (alloc.h); this holds what hosts share: MACs,
 * and what the user marks cluster-wide (VLAN ids, migration ports, VNC
 * displays of a shared console host).
 *
 * Keys (docs/cluster.md; values are JSON objects):
 *   /qfleet/lease/KIND/VALUE         one resource: {"host","run","owner","pid","taken_ms"}
 *   /qfleet/host/HOST                this controller: {"host","pid","run","since_ms"}
 *   /qfleet/guest/HOST/NAME          a published guest (fguest_json plus "host")
 * A resource is taken by a transaction that creates its key only if absent
 * (create_revision == 0), so two hosts never hold one value.
 *
 * Health. The session is CLUSTER_LIVE while etcd has confirmed the lease
 * within its TTL (the deadline is measured from the moment a successful
 * keepalive was *sent*, so it is never optimistic). When keepalives fail it
 * goes CLUSTER_UNPROVEN (keys still proven held until the deadline), then
 * CLUSTER_LOST at the deadline: from then on nothing may assume its keys
 * exist, and callers must take no new guest. It keeps trying; when etcd
 * answers again it re-grants a lease if the old one expired, re-creates
 * every key it held (a key someone else took meanwhile is reported through
 * on_conflict) and goes CLUSTER_LIVE again.
 *
 * Threading and lifetime: one loop, no blocking call; HTTP runs through
 * libcurl's multi-socket interface on uv_poll/uv_timer handles. Every
 * function returns at once: 0, or -errno (-EINVAL bad arguments, -ENOMEM,
 * -ENOTCONN when the session is not CLUSTER_LIVE for a call that needs it,
 * -ESHUTDOWN after cluster_close). A callback passed to a function that
 * returned 0 runs exactly once, from the loop, never before that function
 * returns; on close, pending ones run with -ECANCELED. The session's
 * memory is freed only after cluster_close's callback has run. */
#ifndef QF_CLUSTER_H
#define QF_CLUSTER_H

#include <stddef.h>
#include <uv.h>

#include "base/json.h"

#define CLUSTER_STORE_ENV "QFLEET_STORE"
#define CLUSTER_HOST_MAX 64
#define CLUSTER_KIND_MAX 16
#define CLUSTER_VALUE_MAX 64
#define CLUSTER_OWNER_MAX 160
#define CLUSTER_ERR_MAX 512

typedef struct cluster cluster_t;

/* The one name table of these states ("connecting", "live", ...). */
typedef enum cluster_state {
    CLUSTER_CONNECTING, /* no lease granted yet */
    CLUSTER_LIVE,       /* lease proven alive within its TTL */
    CLUSTER_UNPROVEN,   /* keepalives failing; keys held until the deadline */
    CLUSTER_LOST,       /* past the deadline: keys may be gone; take nothing new */
    CLUSTER_CLOSED,
} cluster_state;
const char *cluster_state_name(cluster_state s);

typedef struct cluster_opts {
    const char *store;   /* "etcd://HOST:PORT[,HOST:PORT...]" */
    const char *host_id; /* NULL: the host name */
    const char *run;     /* recorded with every key; NULL: "" */
    int ttl_s;           /* lease TTL; 0: 5 */
    int timeout_ms;      /* per HTTP request; 0: 1000 */
    int readonly;        /* a reader (qmpctl list --cluster): no lease, no host
                          * record, no claim (-EPERM); cluster_list and
                          * cluster_guests at once, on_state never called */
} cluster_opts;

/* Check a store string: 1 if it names etcd (endpoints copied to out as
 * "http://H:P,http://H:P"), 0 if it is a local store path (or NULL), -EINVAL
 * with a reason naming the bad part. */
int cluster_store_parse(const char *store, char *out, size_t outlen, char *err, size_t errlen);

typedef void (*cluster_cb)(cluster_t *c, int result, void *data);
/* A change of state; why says what happened ("etcd 127.0.0.1:2379:
 * connection refused since 12:01:02"). */
typedef void (*cluster_state_cb)(cluster_t *c, cluster_state s, const char *why, void *data);
/* After a reconnect: a key this session held was taken by someone else
 * while it was cut off. holder is that someone ("host h2 run r owner o"). */
typedef void (*cluster_conflict_cb)(cluster_t *c, const char *kind, const char *value,
                                    const char *owner, const char *holder, void *data);

/* Start a session: returns at once; on_state reports CLUSTER_LIVE once the
 * lease is granted, or CLUSTER_LOST with why naming every endpoint tried
 * when none answers within opts->timeout_ms (callers at start-up treat
 * that as a set-up error). on_conflict may be NULL. */
int cluster_open(uv_loop_t *loop, const cluster_opts *o, cluster_state_cb on_state,
                 cluster_conflict_cb on_conflict, void *data, cluster_t **out, char *err,
                 size_t errlen);
/* Revoke the lease (bounded by timeout_ms), fail pending calls with
 * -ECANCELED, close handles; cb (may be NULL) runs once, after which c is
 * freed. */
void cluster_close(cluster_t *c, cluster_cb cb, void *data);

cluster_state cluster_get_state(const cluster_t *c);
const char *cluster_host(const cluster_t *c);
/* The last error or holder text of a failed call, for its callback. */
const char *cluster_error(const cluster_t *c);

/* Take (kind, value) for owner cluster-wide. cb result: 0 (also when this
 * session already holds it for the same owner), -EEXIST (cluster_error
 * names the holder: host, run, owner), -ENOTCONN, -ETIMEDOUT. */
int cluster_claim(cluster_t *c, const char *kind, const char *value, const char *owner,
                  cluster_cb cb, void *data);
/* A random MAC under prefix (1-5 octets, "02:00:00:01:") nobody holds,
 * claimed for owner; written to mac (18 bytes) before cb runs with 0.
 * -ENOSPC after 64 taken candidates in a row. */
int cluster_claim_mac(cluster_t *c, const char *prefix, const char *owner, char *mac,
                      cluster_cb cb, void *data);
/* Give back one key of this session, or every key of owner and the names
 * below it ("RUN/VM" releases "RUN/VM/nic0"). cb may be NULL. */
int cluster_release(cluster_t *c, const char *kind, const char *value, cluster_cb cb,
                    void *data);
int cluster_release_owner(cluster_t *c, const char *owner, cluster_cb cb, void *data);

/* Hand (kind, value), held by this session, to owner: a migration's
 * destination taking its source's MAC on this host. The key stays on the
 * lease; from now on owner's release gives it back and the old owner's
 * does not. cb (may be NULL) says whether etcd recorded the new owner.
 * -ENOENT if this session holds no such key. */
int cluster_hand_over(cluster_t *c, const char *kind, const char *value, const char *owner,
                      cluster_cb cb, void *data);

/* One key of /qfleet/lease/ as listed. */
typedef struct cluster_lease {
    char kind[CLUSTER_KIND_MAX];
    char value[CLUSTER_VALUE_MAX];
    char host[CLUSTER_HOST_MAX];
    char run[CLUSTER_OWNER_MAX];
    char owner[CLUSTER_OWNER_MAX];
    int pid;
    long long taken_ms;
} cluster_lease;
typedef void (*cluster_list_cb)(cluster_t *c, int result, const cluster_lease *l, size_t n,
                                void *data);
/* Every lease of the cluster (kind NULL: all kinds), sorted by kind then
 * value. l is valid during cb only. */
int cluster_list(cluster_t *c, const char *kind, cluster_list_cb cb, void *data);

/* Publish guest name of this host (v is copied; "host" is added), or drop
 * it (v NULL). Coalesced: the latest value per name is written from the
 * loop, on the session's lease, so a dead controller's guests vanish. */
int cluster_publish(cluster_t *c, const char *name, const json_t *v);
typedef void (*cluster_json_cb)(cluster_t *c, int result, json_t *v, void *data);
/* Every published guest of every host as an array (cb owns v). */
int cluster_guests(cluster_t *c, cluster_json_cb cb, void *data);

/* For metrics.prom and status. */
typedef struct cluster_stats {
    cluster_state state;
    long long lease_id;
    int ttl_s;
    double keepalive_last_ms;     /* round trip of the last good keepalive */
    double keepalive_max_ms;
    unsigned long long keepalives, keepalive_failures;
    size_t held;                  /* keys this session holds */
    long long proven_until_ms;    /* wall clock the lease is proven to live until */
} cluster_stats;
void cluster_get_stats(const cluster_t *c, cluster_stats *st);

#endif
