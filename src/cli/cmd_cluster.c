/* cmd_cluster.c - `qfleet alloc` and `qfleet leases` on an etcd store
 * (--store etcd://HOST:PORT[,...] or $QFLEET_STORE): leases that hold
 * across every host of a farm (src/cluster/cluster.h, docs/cluster.md).
 * The local store stays the default; cmd_alloc.c hands over here when a
 * store names etcd.
 *
 * An etcd lease lives only while its process keeps it alive, so `alloc`
 * on etcd needs --hold: it prints what it took, flushes, and keeps the
 * lease alive in the foreground until SIGTERM or SIGINT, then revokes it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/time.h"
#include "base/mac.h"
#include "src/alloc/alloc.h"
#include "src/cli/cmd.h"
#include "src/cluster/cluster.h"

#define WINDOW 8 /* claims in flight at once */

typedef struct sess {
    uv_loop_t loop;
    cluster_t *c;
    uv_signal_t sig[2];
    const char *prog;
    int opened, live, lost, closed, signalled, quiet;
    char why[CLUSTER_ERR_MAX];
    /* claims */
    int inflight, ok, failed, printed, json;
    char failure[CLUSTER_ERR_MAX];
    /* list */
    int listed, list_rc;
    json_t *rows;
} sess;

int cmd_cluster_store(const char *prog, int argc, char **argv, const char **store)
{
    const char *s = NULL;
    int at = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            s = argv[at = i + 1];
        else if (strncmp(argv[i], "--store=", 8) == 0)
            s = argv[at = i] + 8;
    }
    *store = NULL;
    if (!s) {
        const char *env = getenv(CLUSTER_STORE_ENV);
        *store = env && strncmp(env, "etcd://", 7) == 0 ? env : NULL;
        return 0;
    }
    if (strncmp(s, "etcd://", 7) == 0) {
        *store = s;
        return 0;
    }
    if (!*s)
        return cli_usage_error(prog, "--store takes etcd://HOST:PORT[,HOST:PORT...] or a "
                                     "state dir");
    /* A directory names the host store, as --state-dir does (and as
     * `qfleet up --store DIR`). */
    if (s == argv[at]) {
        argv[at - 1] = "--state-dir";
    } else {
        static char opt[4096];
        snprintf(opt, sizeof(opt), "--state-dir=%s", s);
        argv[at] = opt;
    }
    return 0;
}

static void on_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    sess *x = data;
    snprintf(x->why, sizeof(x->why), "%s", why);
    if (s == CLUSTER_LIVE)
        x->live = 1;
    if (s == CLUSTER_LOST)
        x->lost = 1;
    if (x->opened && !x->quiet)
        fprintf(stderr, "%s: etcd session %s: %s\n", x->prog, cluster_state_name(s), why);
}

static void on_conflict(cluster_t *c, const char *kind, const char *value, const char *owner,
                        const char *holder, void *data)
{
    sess *x = data;
    fprintf(stderr, "%s: lost %s %s of %s while cut off from etcd: now held by %s\n", x->prog,
            kind, value, owner, holder);
}

static void on_closed(cluster_t *c, int result, void *data)
{
    ((sess *)data)->closed = 1;
}

static void close_sess(sess *x)
{
    if (x->c) {
        cluster_close(x->c, on_closed, x);
        while (!x->closed)
            uv_run(&x->loop, UV_RUN_ONCE);
        x->c = NULL;
    }
    for (int i = 0; i < 2; i++)
        if (!uv_is_closing((uv_handle_t *)&x->sig[i]))
            uv_close((uv_handle_t *)&x->sig[i], NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    uv_loop_close(&x->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    ((sess *)s->data)->signalled = signum;
}

/* Open a session and wait until it is live: 0, or the exit code (3 when
 * no endpoint answers: a set-up error naming each endpoint). */
static int open_sess(sess *x, const char *prog, const char *store, const char *host_id)
{
    char err[CLUSTER_ERR_MAX];
    memset(x, 0, sizeof(*x));
    x->prog = prog;
    uv_loop_init(&x->loop);
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&x->loop, &x->sig[i]);
        x->sig[i].data = x;
        uv_signal_start(&x->sig[i], on_signal, i ? SIGTERM : SIGINT);
    }
    cluster_opts o = { .store = store, .host_id = host_id };
    int rc = cluster_open(&x->loop, &o, on_state, on_conflict, x, &x->c, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        close_sess(x);
        return rc == -EINVAL ? 2 : 3;
    }
    while (!x->live && !x->lost && !x->signalled)
        uv_run(&x->loop, UV_RUN_ONCE);
    x->opened = 1;
    if (!x->live) {
        fprintf(stderr, "%s: etcd store %s unreachable: %s\n", prog, store,
                x->signalled ? "interrupted" : x->why);
        close_sess(x);
        return 3;
    }
    return 0;
}

/* --- qfleet leases --store etcd://... --------------------------------- */

static void on_list(cluster_t *c, int result, const cluster_lease *l, size_t n, void *data)
{
    sess *x = data;
    x->list_rc = result;
    x->listed = 1;
    snprintf(x->failure, sizeof(x->failure), "%s", cluster_error(c));
    x->rows = json_array();
    for (size_t i = 0; x->rows && i < n; i++) {
        json_t *o = json_object();
        if (!o)
            break;
        json_set_str(o, "kind", l[i].kind);
        json_set_str(o, "value", l[i].value);
        json_set_str(o, "host", l[i].host);
        json_set_str(o, "run", l[i].run);
        json_set_str(o, "owner", l[i].owner);
        json_set_int(o, "pid", l[i].pid);
        json_set_int(o, "taken_ms", l[i].taken_ms);
        json_append(x->rows, o);
    }
}

static int width(const json_t *rows, const char *key, int min)
{
    for (size_t i = 0; i < json_len(rows); i++) {
        const char *s = json_get_str(json_at(rows, i), key);
        int l = s ? (int)strlen(s) : 0;
        if (l > min)
            min = l;
    }
    return min;
}

static void print_rows(const json_t *rows, const char *store)
{
    if (json_len(rows) == 0) {
        printf("no leases held in %s\n", store);
        return;
    }
    int wk = width(rows, "kind", 4), wv = width(rows, "value", 5), wh = width(rows, "host", 4),
        wr = width(rows, "run", 3), wo = width(rows, "owner", 5);
    printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-7s  %s\n", wk, "KIND", wv, "VALUE", wh, "HOST", wr,
           "RUN", wo, "OWNER", "PID", "TAKEN");
    for (size_t i = 0; i < json_len(rows); i++) {
        const json_t *r = json_at(rows, i);
        char when[32];
        time_wall_text(json_get_int(r, "taken_ms", 0), "%Y-%m-%d %H:%M:%S", when, sizeof(when));
        printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-7lld  %s\n", wk, json_get_str(r, "kind"), wv,
               json_get_str(r, "value"), wh, json_get_str(r, "host"), wr,
               json_get_str(r, "run"), wo, json_get_str(r, "owner"), json_get_int(r, "pid", 0),
               when);
    }
}

int cmd_cluster_leases(const char *store, int argc, char **argv)
{
    static const char P[] = "qfleet leases";
    enum { O_JSON, O_STORE, O_HOST, O_KIND };
    cli_opt opts[] = { { "--json", 0, 0, NULL },    { "--store", 0, 1, NULL },
                       { "--host-id", 0, 1, NULL }, { "--kind", 0, 1, NULL },
                       { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 0, &ca))
        return 2;
    if (ca.help)
        return cli_help(cmd_cluster_leases_help);
    sess x;
    int rc = open_sess(&x, P, store, opts[O_HOST].value);
    if (rc)
        return rc;
    x.quiet = 1;
    rc = cluster_list(x.c, opts[O_KIND].value, on_list, &x);
    if (rc < 0) {
        close_sess(&x);
        return rc == -EINVAL ? cli_usage_error(P, "bad --kind '%s'", opts[O_KIND].value) : 1;
    }
    while (!x.listed)
        uv_run(&x.loop, UV_RUN_ONCE);
    close_sess(&x);
    if (x.list_rc < 0 || !x.rows) {
        fprintf(stderr, "%s: listing %s: %s\n", P, store,
                x.list_rc < 0 ? x.failure : strerror(ENOMEM));
        json_free(x.rows);
        return 1;
    }
    if (opts[O_JSON].value)
        return cli_print_json(x.rows) < 0 ? 1 : 0;
    print_rows(x.rows, store);
    json_free(x.rows);
    return 0;
}

const char cmd_cluster_leases_help[] =
    "usage: qfleet leases --store etcd://HOST:PORT[,HOST:PORT...] [--json] [--kind K]\n"
    "\n"
    "List every lease of the etcd cluster (all hosts): kind, value, host, run,\n"
    "owner, pid and when it was taken. A lease whose controller died vanishes by\n"
    "itself within its TTL (docs/cluster.md).\n"
    "\n"
    "  --store S       the etcd endpoints (default: $QFLEET_STORE when it is etcd://)\n"
    "  --host-id ID    this host's name in etcd (default: the host name)\n"
    "  --kind K        only leases of kind K (mac, vnc, vlan, ...)\n"
    "  --json          a JSON array of lease objects\n"
    "\n"
    "Exit: 0 ok, 1 failure, 2 usage, 3 etcd unreachable.\n";

/* --- qfleet alloc --store etcd://... ---------------------------------- */

const char cmd_cluster_alloc_help[] =
    "usage: qfleet alloc mac --store etcd://H:P[,H:P...] --owner NAME --hold\n"
    "                  [--prefix P | --mac MAC] [--count N] [--nic N] [--host-id ID] [--json]\n"
    "       qfleet alloc KIND VALUE --store etcd://... --owner NAME --hold [--host-id ID]\n"
    "\n"
    "Take leases that hold across every host sharing the etcd cluster: random MACs\n"
    "under a prefix, a given MAC, or any KIND VALUE the farm shares (vlan 100,\n"
    "vnc 7, port 4444). Each is created only if no one holds it.\n"
    "\n"
    "  --store S       etcd endpoints, tried in order (default: $QFLEET_STORE);\n"
    "                  a directory instead names the host store (--state-dir)\n"
    "  --owner NAME    who holds it (a MAC belongs to NAME/nicN)\n"
    "  --hold          required: print each value on its own line (a JSON object\n"
    "                  per line with --json), flush, then keep the etcd lease alive\n"
    "                  in the foreground until SIGTERM or SIGINT, and revoke it\n"
    "  --count N       N random MACs (NICs N.. of --nic; default 1)\n"
    "  --prefix P      MAC prefix, 1-5 octets (default: $QFLEET_MAC_PREFIX, else\n"
    "                  derived from this host's NIC)\n"
    "  --mac MAC       this MAC instead of a random one\n"
    "  --host-id ID    this host's name in etcd (default: the host name)\n"
    "\n"
    "Exit: 0 after a clean stop, 1 a value is taken (the holder is named),\n"
    "2 usage, 3 etcd unreachable at start.\n";

struct calloc_args {
    const char *store, *owner, *host, *prefix, *mac, *kind, *value;
    int count, nic, json;
};

static int calloc_parse(int argc, char **argv, struct calloc_args *a)
{
    static const char P[] = "qfleet alloc";
    enum { O_STORE, O_OWNER, O_HOLD, O_HOST, O_PREFIX, O_MAC, O_COUNT, O_NIC, O_JSON };
    cli_opt opts[] = { { "--store", 0, 1, NULL },   { "--owner", 0, 1, NULL },
                       { "--hold", 0, 0, NULL },    { "--host-id", 0, 1, NULL },
                       { "--prefix", 0, 1, NULL },  { "--mac", 0, 1, NULL },
                       { "--count", 0, 1, NULL },   { "--nic", 0, 1, NULL },
                       { "--json", 0, 0, NULL },    { NULL, 0, 0, NULL } };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, 2, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    *a = (struct calloc_args){ .owner = opts[O_OWNER].value, .host = opts[O_HOST].value,
                               .prefix = opts[O_PREFIX].value, .mac = opts[O_MAC].value,
                               .kind = ca.npos ? ca.pos[0] : NULL,
                               .value = ca.npos > 1 ? ca.pos[1] : NULL,
                               .json = !!opts[O_JSON].value, .count = 1 };
    if (cli_int(P, &opts[O_COUNT], 1, 65536, &a->count) ||
        cli_int(P, &opts[O_NIC], 0, 9999, &a->nic))
        return 2;
    if (!a->kind)
        return cli_usage_error(P, "say what to allocate: mac, or KIND VALUE");
    if (!a->owner)
        return cli_usage_error(P, "--owner NAME is required");
    if (!opts[O_HOLD].value)
        return cli_usage_error(P, "an etcd lease lives only while qfleet keeps it alive: add "
                                  "--hold (keeps it until SIGTERM/SIGINT)");
    int mac = strcmp(a->kind, "mac") == 0;
    if (!mac && !a->value)
        return cli_usage_error(P, "%s needs a VALUE on etcd (qfleet alloc %s VALUE ...)",
                               a->kind, a->kind);
    if (mac && a->value && !a->mac)
        a->mac = a->value;
    if (a->prefix && a->mac)
        return cli_usage_error(P, "--prefix and --mac exclude each other");
    if ((a->mac || !mac) && a->count != 1)
        return cli_usage_error(P, "--count applies to random MACs only");
    if (!mac && (a->prefix || a->mac || opts[O_NIC].value))
        return cli_usage_error(P, "--prefix, --mac and --nic apply to mac only");
    return 0;
}

struct claim {
    sess *x;
    char owner[CLUSTER_OWNER_MAX];
    char value[CLUSTER_VALUE_MAX];
    const char *kind;
};

static void print_claim(const struct claim *k, const char *host)
{
    if (!k->x->json) {
        printf("%s\n", k->value);
        return;
    }
    json_t *o = json_object();
    if (o) {
        json_set_str(o, "kind", k->kind);
        json_set_str(o, "value", k->value);
        json_set_str(o, "owner", k->owner);
        json_set_str(o, "host", host);
        json_set_str(o, "store", "etcd");
        char *s = json_dump(o, NULL);
        if (s)
            printf("%s\n", s);
        free(s);
        json_free(o);
    }
}

static void on_claimed(cluster_t *c, int result, void *data)
{
    struct claim *k = data;
    sess *x = k->x;
    x->inflight--;
    if (result == 0) {
        x->ok++;
        print_claim(k, cluster_host(c));
    } else if (!x->failed++) {
        snprintf(x->failure, sizeof(x->failure), "%s %s: %s%s%s", k->kind,
                 k->value[0] ? k->value : "(random)",
                 result == -EEXIST ? "held by " : strerror(-result),
                 result == -EEXIST ? "" : ": ", cluster_error(c));
    }
}

static int start_claim(sess *x, const struct calloc_args *a, struct claim *k, int i)
{
    k->x = x;
    k->kind = strcmp(a->kind, "mac") == 0 ? "mac" : a->kind;
    if (strcmp(k->kind, "mac") == 0)
        snprintf(k->owner, sizeof(k->owner), "%s/nic%d", a->owner, a->nic + i);
    else
        snprintf(k->owner, sizeof(k->owner), "%s", a->owner);
    if (strcmp(k->kind, "mac") == 0 && !a->mac)
        return cluster_claim_mac(x->c, a->prefix, k->owner, k->value, on_claimed, k);
    snprintf(k->value, sizeof(k->value), "%s", a->mac ? a->mac : a->value);
    unsigned char m[6];
    if (a->mac && mac_parse(a->mac, m) == 0)
        mac_format(m, k->value);
    return cluster_claim(x->c, k->kind, k->value, k->owner, on_claimed, k);
}

/* Every claim, WINDOW at a time: 0 when all were taken. */
static int claim_all(sess *x, const struct calloc_args *a, struct claim *k)
{
    int next = 0;
    while ((x->ok + x->failed < a->count) && !x->signalled) {
        while (!x->failed && next < a->count && x->inflight < WINDOW) {
            int rc = start_claim(x, a, &k[next], next);
            if (rc < 0) {
                snprintf(x->failure, sizeof(x->failure), "%s: %s", a->kind,
                         rc == -EINVAL ? "bad value, prefix or owner" : strerror(-rc));
                x->failed++;
                break;
            }
            next++;
            x->inflight++;
        }
        if (x->failed && x->inflight == 0)
            break;
        uv_run(&x->loop, UV_RUN_ONCE);
    }
    fflush(stdout);
    return x->failed || x->signalled ? -1 : 0;
}

int cmd_cluster_alloc(const char *store, int argc, char **argv)
{
    static const char P[] = "qfleet alloc";
    struct calloc_args a;
    int rc = calloc_parse(argc, argv, &a);
    if (rc)
        return rc == CLI_HELP ? cli_help(cmd_cluster_alloc_help) : rc;
    char pfx[32], err[256];
    if (strcmp(a.kind, "mac") == 0 && !a.mac && !a.prefix) {
        /* Not alloc_mac_default_prefix: its warning about cloned VMs
         * suggests etcd, which is what this is. */
        const char *env = getenv(ALLOC_MAC_PREFIX_ENV);
        if (env && *env)
            snprintf(pfx, sizeof(pfx), "%s", env);
        else if (alloc_mac_host_prefix(NULL, pfx, sizeof(pfx), err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s\n", P, err);
            return 2;
        }
        a.prefix = pfx;
    }
    struct claim *k = calloc((size_t)a.count, sizeof(*k));
    if (!k)
        return 1;
    sess x;
    if ((rc = open_sess(&x, P, store, a.host))) {
        free(k);
        return rc;
    }
    x.json = a.json;
    if (claim_all(&x, &a, k) < 0) {
        if (x.failed)
            fprintf(stderr, "%s: %s\n", P, x.failure);
        close_sess(&x);
        free(k);
        return x.failed ? 1 : 0;
    }
    while (!x.signalled)
        uv_run(&x.loop, UV_RUN_ONCE);
    close_sess(&x); /* revokes: every claim is released at once */
    free(k);
    return 0;
}
