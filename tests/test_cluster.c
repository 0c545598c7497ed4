/* test_cluster.c - the etcd lease session (src/cluster) against a real etcd
 * started by tests/etcd_fx: create-if-absent claims, holders, release,
 * list, publish, keepalive, expiry, failover, etcd stopped and restarted. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/time.h"
#include "src/cluster/cluster.h"
#include "tests/etcd_fx.h"
#include "tests/testutil.h"

typedef struct sess {
    cluster_t *c;
    cluster_state states[64];
    char why[64][256];
    int nstates, live, lost, closed, conflicts;
    int done, result;
    char err[CLUSTER_ERR_MAX];
    char mac[18];
    cluster_lease ls[64];
    int nls;
    json_t *guests;
} sess;

static struct {
    tu_loop l;
    etcd_fx *fx;
    sess a, b;
} F;

static void close_all(void);

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    tu_loop_init(&F.l);
}

static void teardown(void)
{
    /* After a failed test: etcd first, while the loop still runs (with its
     * members alive the loop never runs dry). */
    if (!F.l.down) {
        close_all();
        etcd_fx_down(F.fx);
        F.fx = NULL;
    }
    tu_loop_cleanup(&F.l, close_all);
    etcd_fx_down(F.fx);
    json_free(F.a.guests);
    json_free(F.b.guests);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

static void start_etcd(int n)
{
    char why[256];
    F.fx = etcd_fx_start(&F.l.loop, n, why, sizeof(why));
    if (!F.fx)
        cr_skip_test("%s", why);
}

static void on_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    sess *x = data;
    if (x->nstates < 64) {
        x->states[x->nstates] = s;
        snprintf(x->why[x->nstates], sizeof(x->why[0]), "%s", why);
        x->nstates++;
    }
    if (s == CLUSTER_LIVE)
        x->live++;
    if (s == CLUSTER_LOST)
        x->lost++;
}

static void on_conflict(cluster_t *c, const char *kind, const char *value, const char *owner,
                        const char *holder, void *data)
{
    ((sess *)data)->conflicts++;
}

static void open_sess(sess *x, const char *store, const char *host, int ttl)
{
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = store, .host_id = host, .run = "r1", .ttl_s = ttl };
    int rc = cluster_open(&F.l.loop, &o, on_state, on_conflict, x, &x->c, err, sizeof(err));
    cr_assert_eq(rc, 0, "cluster_open: %s", err);
    cr_assert_eq(cluster_get_state(x->c), CLUSTER_CONNECTING);
}

static void open_live(sess *x, const char *host, int ttl)
{
    open_sess(x, etcd_fx_store(F.fx), host, ttl);
    cr_assert(tu_run_until(&F.l, &x->live, 10000), "session %s never went live: %s", host,
              x->nstates ? x->why[x->nstates - 1] : "no state reported");
    cr_assert_eq(cluster_get_state(x->c), CLUSTER_LIVE);
}

static void on_done(cluster_t *c, int result, void *data)
{
    sess *x = data;
    x->result = result;
    snprintf(x->err, sizeof(x->err), "%s", cluster_error(c));
    x->done = 1;
}

static int wait_call(sess *x, int rc)
{
    cr_assert_eq(rc, 0, "call refused: %s", strerror(-rc));
    cr_assert_eq(x->done, 0, "callback ran before the call returned");
    cr_assert(tu_run_until(&F.l, &x->done, 10000), "callback never ran");
    x->done = 0;
    return x->result;
}

static int claim(sess *x, const char *kind, const char *value, const char *owner)
{
    return wait_call(x, cluster_claim(x->c, kind, value, owner, on_done, x));
}

static void on_list(cluster_t *c, int result, const cluster_lease *l, size_t n, void *data)
{
    sess *x = data;
    x->result = result;
    x->nls = (int)(n < 64 ? n : 64);
    memcpy(x->ls, l, (size_t)x->nls * sizeof(*l));
    x->done = 1;
}

static int list(sess *x, const char *kind)
{
    cr_assert_eq(wait_call(x, cluster_list(x->c, kind, on_list, x)), 0);
    return x->nls;
}

static void on_closed(cluster_t *c, int result, void *data)
{
    ((sess *)data)->closed++;
}

static void close_sess(sess *x)
{
    if (x->c && !x->closed) {
        cluster_close(x->c, on_closed, x);
        cluster_close(x->c, on_closed, x); /* idempotent */
        tu_run_until(&F.l, &x->closed, 5000);
        x->c = NULL;
    }
}

static void close_all(void)
{
    close_sess(&F.a);
    close_sess(&F.b);
}

/* The end of every test: both sessions closed once, etcd down, no handle
 * left on the loop. */
static void finish(void)
{
    close_all();
    etcd_fx_down(F.fx);
    F.fx = NULL;
    /* each session's close callback ran once (close is idempotent) */
    F.l.closed = F.a.closed <= 1 && F.b.closed <= 1 ? 1 : 100;
    tu_loop_down(&F.l, NULL);
}

/* How many keys etcd itself has under prefix, and the value of the first. */
static int etcd_count(const char *prefix, char *first, size_t firstlen)
{
    char **k = NULL, **v = NULL;
    int n = etcd_fx_range(F.fx, prefix, &k, &v);
    cr_assert(n >= 0, "no etcd member answered a range of %s", prefix);
    if (first)
        snprintf(first, firstlen, "%s", n > 0 ? v[0] : "");
    etcd_fx_free_kv(k, v, n);
    return n;
}

Test(cluster, claim_is_create_if_absent_and_names_the_holder)
{
    start_etcd(1);
    open_live(&F.a, "hA", 5);
    open_live(&F.b, "hB", 5);
    cr_assert_eq(claim(&F.a, "vlan", "100", "run1/vm1"), 0, "%s", F.a.err);
    char v[512];
    cr_assert_eq(etcd_count("/qfleet/lease/vlan/100", v, sizeof(v)), 1);
    cr_assert(strstr(v, "\"host\":\"hA\"") && strstr(v, "\"owner\":\"run1/vm1\""), "%s", v);

    cr_assert_eq(claim(&F.b, "vlan", "100", "run2/vm9"), -EEXIST);
    cr_assert(strstr(F.b.err, "host hA") && strstr(F.b.err, "owner run1/vm1"), "holder: %s",
              F.b.err);
    cr_assert_eq(claim(&F.a, "vlan", "100", "run1/vm1"), 0, "same owner again: %s", F.a.err);
    cr_assert_eq(claim(&F.a, "vlan", "100", "run1/other"), -EEXIST);

    cr_assert_eq(wait_call(&F.a, cluster_release(F.a.c, "vlan", "100", on_done, &F.a)), 0);
    cr_assert_eq(etcd_count("/qfleet/lease/vlan/100", NULL, 0), 0);
    cr_assert_eq(cluster_release(F.a.c, "vlan", "100", on_done, &F.a), -ENOENT);
    cr_assert_eq(claim(&F.b, "vlan", "100", "run2/vm9"), 0, "%s", F.b.err);
    cr_assert_eq(cluster_claim(F.a.c, "vlan", "1 00", "o", on_done, &F.a), -EINVAL);
    finish();
}

Test(cluster, macs_list_and_release_by_owner)
{
    start_etcd(1);
    open_live(&F.a, "hA", 5);
    open_live(&F.b, "hB", 5);
    char macs[3][18];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(wait_call(&F.a, cluster_claim_mac(F.a.c, "02:00:00:01", "r1/vm1/nic",
                                                       F.a.mac, on_done, &F.a)),
                     0, "%s", F.a.err);
        cr_assert(strncmp(F.a.mac, "02:00:00:01:", 12) == 0, "%s", F.a.mac);
        memcpy(macs[i], F.a.mac, 18);
    }
    cr_assert_eq(claim(&F.a, "vnc", "10", "r1/vm2"), 0);
    cr_assert_eq(claim(&F.b, "vnc", "9", "r7/vm1"), 0);

    cr_assert_eq(list(&F.b, NULL), 5);
    cr_assert_str_eq(F.b.ls[0].kind, "mac");
    cr_assert(strcmp(F.b.ls[0].value, F.b.ls[1].value) < 0, "sorted by value");
    cr_assert_str_eq(F.b.ls[0].host, "hA");
    cr_assert_str_eq(F.b.ls[0].run, "r1");
    cr_assert_str_eq(F.b.ls[0].owner, "r1/vm1/nic");
    cr_assert_eq(F.b.ls[0].pid, getpid());
    cr_assert_str_eq(F.b.ls[3].value, "9", "vnc 9 before 10");
    cr_assert_str_eq(F.b.ls[3].host, "hB");
    cr_assert_str_eq(F.b.ls[4].value, "10");
    cr_assert_eq(list(&F.b, "mac"), 3);

    cluster_stats st;
    cluster_get_stats(F.a.c, &st);
    cr_assert_eq(st.held, 4);
    cr_assert_eq(wait_call(&F.a, cluster_release_owner(F.a.c, "r1/vm1", on_done, &F.a)), 0);
    cr_assert_eq(list(&F.a, NULL), 2, "the three NICs of r1/vm1 are released");
    cr_assert_eq(etcd_count("/qfleet/lease/mac/", NULL, 0), 0);
    cluster_get_stats(F.a.c, &st);
    cr_assert_eq(st.held, 1);
    finish();
}

static void on_guests(cluster_t *c, int result, json_t *v, void *data)
{
    sess *x = data;
    x->result = result;
    json_free(x->guests);
    x->guests = v;
    x->done = 1;
}

static json_t *guests(sess *x)
{
    cr_assert_eq(wait_call(x, cluster_guests(x->c, on_guests, x)), 0);
    cr_assert(x->guests && json_typeof(x->guests) == JSON_ARRAY);
    return x->guests;
}

Test(cluster, publish_is_coalesced_and_seen_by_other_hosts)
{
    start_etcd(1);
    open_live(&F.a, "hA", 5);
    open_live(&F.b, "hB", 5);
    json_t *g = json_object();
    json_set_str(g, "name", "vm1");
    for (int i = 0; i < 50; i++) {
        json_set_int(g, "n", i);
        cr_assert_eq(cluster_publish(F.a.c, "vm1", g), 0);
    }
    json_free(g);
    json_t *arr = NULL;
    for (int t = 0; t < 100; t++) { /* written from the loop: wait for the last */
        arr = guests(&F.b);
        if (json_len(arr) == 1 && json_get_int(json_at(arr, 0), "n", -1) == 49)
            break;
        tu_spin(&F.l, 20);
    }
    cr_assert_eq(json_len(arr), 1);
    cr_assert_eq(json_get_int(json_at(arr, 0), "n", -1), 49);
    cr_assert_str_eq(json_get_str(json_at(arr, 0), "host"), "hA");
    cr_assert_eq(etcd_count("/qfleet/host/hA", NULL, 0), 1, "the host record");

    cr_assert_eq(cluster_publish(F.a.c, "vm1", NULL), 0);
    for (int t = 0; t < 100 && json_len(guests(&F.b)) > 0; t++)
        tu_spin(&F.l, 20);
    cr_assert_eq(json_len(F.b.guests), 0);
    finish();
}

Test(cluster, keepalive_keeps_the_lease_proven)
{
    start_etcd(1);
    open_live(&F.a, "hA", 2);
    cr_assert_eq(claim(&F.a, "port", "5000", "r1/vm1"), 0);
    tu_spin(&F.l, 3500); /* longer than the TTL: only keepalives keep it */
    cluster_stats st;
    cluster_get_stats(F.a.c, &st);
    cr_assert_eq(st.state, CLUSTER_LIVE);
    cr_assert_geq(st.keepalives, 3, "grant + keepalives every TTL/3");
    cr_assert_eq(st.keepalive_failures, 0);
    cr_assert_gt(st.keepalive_max_ms, 0);
    cr_assert_eq(st.ttl_s, 2);
    cr_assert_neq(st.lease_id, 0);
    cr_assert_gt(st.proven_until_ms, time_wall_ms());
    cr_assert_eq(st.held, 1);
    cr_assert_eq(etcd_count("/qfleet/lease/port/5000", NULL, 0), 1);
    cr_assert_str_eq(cluster_state_name(st.state), "live");
    finish();
}

/* A session in a child that dies without revoking: etcd drops its keys
 * when the lease expires. */
static void child_claims(const char *store, int fd)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sess x = {0};
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = store, .host_id = "hDead", .ttl_s = 2 };
    if (cluster_open(&loop, &o, on_state, NULL, &x, &x.c, err, sizeof(err)) < 0)
        _exit(1);
    while (!x.live && !x.lost)
        uv_run(&loop, UV_RUN_ONCE);
    if (cluster_claim(x.c, "vlan", "7", "dead/vm", on_done, &x) < 0)
        _exit(2);
    while (!x.done)
        uv_run(&loop, UV_RUN_ONCE);
    if (write(fd, x.result == 0 ? "y" : "n", 1) != 1)
        _exit(3);
    uv_run(&loop, UV_RUN_DEFAULT); /* keepalives until killed */
    _exit(0);
}

Test(cluster, keys_expire_after_the_holder_dies_without_revoke)
{
    start_etcd(1);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_claims(etcd_fx_store(F.fx), p[1]);
    }
    close(p[1]);
    char c = 0;
    cr_assert_eq(read(p[0], &c, 1), 1);
    close(p[0]);
    cr_assert_eq(c, 'y', "the child's claim failed");
    cr_assert_eq(etcd_count("/qfleet/lease/vlan/7", NULL, 0), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    double t0 = tu_now_ms();
    int n = 1;
    while (n > 0 && tu_now_ms() - t0 < 2000 + 1000 + 2000) { /* TTL + 1 s, + 2 s of slack */
        tu_spin(&F.l, 100);
        n = etcd_count("/qfleet/lease/vlan/7", NULL, 0);
    }
    cr_assert_eq(n, 0, "the dead holder's key outlived its lease");
    open_live(&F.a, "hA", 5);
    cr_assert_eq(claim(&F.a, "vlan", "7", "r1/vm1"), 0, "handed out again: %s", F.a.err);
    finish();
}

Test(cluster, unreachable_at_open_names_the_endpoints)
{
    int p1 = 1, p2 = 9; /* ports nobody listens on */
    char store[128];
    snprintf(store, sizeof(store), "etcd://127.0.0.1:%d,127.0.0.1:%d", p1, p2);
    open_sess(&F.a, store, "hA", 5);
    cr_assert(tu_run_until(&F.l, &F.a.lost, 10000), "no LOST reported");
    const char *why = F.a.why[F.a.nstates - 1];
    cr_assert(strstr(why, "127.0.0.1:1") && strstr(why, "127.0.0.1:9"), "why: %s", why);
    cr_assert_eq(cluster_claim(F.a.c, "vlan", "1", "o", on_done, &F.a), -ENOTCONN);
    char out[256], err[256];
    cr_assert_eq(cluster_store_parse("etcd://h:1,h2:2", out, sizeof(out), err, sizeof(err)), 1);
    cr_assert_str_eq(out, "http://h:1,http://h2:2");
    cr_assert_eq(cluster_store_parse("/var/lib/qfleet", out, sizeof(out), err, sizeof(err)), 0);
    cr_assert_eq(cluster_store_parse("etcd://h", out, sizeof(out), err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "'h'"), "%s", err);
    finish();
}

Test(cluster, failover_when_a_member_of_three_dies, .timeout = 180)
{
    start_etcd(3);
    open_live(&F.a, "hA", 5);
    cr_assert_eq(claim(&F.a, "vlan", "1", "r1/a"), 0);
    etcd_fx_kill(F.fx, 0); /* the first endpoint: where requests went */
    for (int i = 2; i < 12; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        cr_assert_eq(claim(&F.a, "vlan", v, "r1/a"), 0, "claim %d after the kill: %s", i,
                     F.a.err);
    }
    tu_spin(&F.l, 2000);
    cr_assert_eq(cluster_get_state(F.a.c), CLUSTER_LIVE);
    cr_assert_eq(F.a.lost, 0);
    cr_assert_eq(etcd_count("/qfleet/lease/vlan/", NULL, 0), 11);
    finish();
}

Test(cluster, etcd_stopped_then_restarted, .timeout = 180)
{
    start_etcd(1);
    open_live(&F.a, "hA", 3);
    cr_assert_eq(claim(&F.a, "vlan", "42", "r1/vm1"), 0);
    etcd_fx_stop(F.fx, 0);
    cr_assert(tu_run_until(&F.l, &F.a.lost, 15000), "LOST never reported");
    int un = -1, lo = -1;
    for (int i = 0; i < F.a.nstates; i++) {
        if (F.a.states[i] == CLUSTER_UNPROVEN && un < 0)
            un = i;
        if (F.a.states[i] == CLUSTER_LOST && lo < 0)
            lo = i;
    }
    cr_assert(un >= 0 && un < lo, "UNPROVEN comes before LOST");
    cr_assert(strstr(F.a.why[lo], "not proven"), "why: %s", F.a.why[lo]);
    cr_assert_eq(cluster_claim(F.a.c, "vlan", "43", "r1/vm2", on_done, &F.a), -ENOTCONN,
                 "nothing new is taken while LOST");
    int live = F.a.live;
    etcd_fx_restart(F.fx, 0);
    cr_assert(tu_run_until_n(&F.l, &F.a.live, live + 1, 15000), "not LIVE again after restart");
    char v[512];
    cr_assert_eq(etcd_count("/qfleet/lease/vlan/42", v, sizeof(v)), 1, "held key lost");
    cr_assert(strstr(v, "\"host\":\"hA\""), "%s", v);
    cr_assert_eq(F.a.conflicts, 0);
    cluster_stats st;
    cluster_get_stats(F.a.c, &st);
    cr_assert_eq(st.held, 1);
    cr_assert_gt(st.keepalive_failures, 0);
    cr_assert_eq(claim(&F.a, "vlan", "43", "r1/vm2"), 0, "%s", F.a.err);
    finish();
}

/* ---- the HTTP client's bounds, against plain sockets of this test ---- */

/* A listening socket that never accepts: connects complete (backlog), no
 * reply ever comes. */
static int silent_port(int *fd)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(*fd >= 0);
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(*fd, 16), 0);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

Test(cluster, a_silent_endpoint_times_out_and_the_next_one_answers)
{
    start_etcd(1);
    int fd, port = silent_port(&fd);
    char store[160], err[CLUSTER_ERR_MAX];
    snprintf(store, sizeof(store), "etcd://127.0.0.1:%d,%s", port, etcd_fx_store(F.fx) + 7);
    cluster_opts o = { .store = store, .host_id = "hA", .timeout_ms = 300 };
    cr_assert_eq(cluster_open(&F.l.loop, &o, on_state, NULL, &F.a, &F.a.c, err, sizeof(err)), 0);
    cr_assert(tu_run_until(&F.l, &F.a.live, 10000), "no failover past the silent endpoint");
    cr_assert_eq(F.a.lost, 0);
    cr_assert_eq(claim(&F.a, "vlan", "5", "r1/vm1"), 0, "%s", F.a.err);
    close_sess(&F.a);

    snprintf(store, sizeof(store), "etcd://127.0.0.1:%d", port);
    open_sess(&F.b, store, "hB", 5);
    cr_assert(tu_run_until(&F.l, &F.b.lost, 10000));
    const char *why = F.b.why[F.b.nstates - 1];
    cr_assert(strstr(why, "imeout") || strstr(why, "timed out"), "why: %s", why);
    close(fd);
    finish();
}

/* A server that answers every request with a body of 2 MiB. */
static uv_tcp_t big_srv;
static void big_closed(uv_handle_t *h)
{
    free(h);
}
static void big_written(uv_write_t *w, int status)
{
    uv_close((uv_handle_t *)w->handle, big_closed);
    free(w->data);
    free(w);
}
static void big_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    static char buf[4096];
    *b = uv_buf_init(buf, sizeof(buf));
}
static void big_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n <= 0 || s->data)
        return;
    s->data = s; /* answered */
    size_t body = 2u << 20;
    char hdr[128];
    int hl = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body);
    char *all = malloc((size_t)hl + body);
    memcpy(all, hdr, (size_t)hl);
    memset(all + hl, ' ', body);
    uv_write_t *w = calloc(1, sizeof(*w));
    w->data = all;
    uv_buf_t buf = uv_buf_init(all, (unsigned)((size_t)hl + body));
    uv_write(w, s, &buf, 1, big_written);
}
static void big_conn(uv_stream_t *srv, int status)
{
    uv_tcp_t *c = calloc(1, sizeof(*c));
    uv_tcp_init(srv->loop, c);
    if (uv_accept(srv, (uv_stream_t *)c) == 0)
        uv_read_start((uv_stream_t *)c, big_alloc, big_read);
    else
        uv_close((uv_handle_t *)c, big_closed);
}

Test(cluster, a_reply_over_1_mib_is_refused)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int len = sizeof(a);
    uv_tcp_init(&F.l.loop, &big_srv);
    cr_assert_eq(uv_tcp_bind(&big_srv, (struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&big_srv, 8, big_conn), 0);
    uv_tcp_getsockname(&big_srv, (struct sockaddr *)&a, &len);
    char store[64];
    snprintf(store, sizeof(store), "etcd://127.0.0.1:%d", ntohs(a.sin_port));
    open_sess(&F.a, store, "hA", 5);
    cr_assert(tu_run_until(&F.l, &F.a.lost, 10000));
    const char *why = F.a.why[F.a.nstates - 1];
    cr_assert(strstr(why, "larger than 1 MiB"), "why: %s", why);
    close_sess(&F.a);
    uv_close((uv_handle_t *)&big_srv, NULL);
    finish();
}

/* A reader (cluster_opts.readonly, what `qmpctl list --cluster` opens):
 * lists at once, takes no lease, writes no host record, may claim nothing;
 * the writer's keys and guests are all it sees. */
Test(cluster, reader_lists_and_writes_nothing)
{
    start_etcd(1);
    open_live(&F.a, "hA", 5);
    cr_assert_eq(claim(&F.a, "vnc", "3", "r1/vm1"), 0);
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = etcd_fx_store(F.fx), .host_id = "reader", .readonly = 1 };
    cr_assert_eq(cluster_open(&F.l.loop, &o, on_state, NULL, &F.b, &F.b.c, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(list(&F.b, NULL), 1);
    cr_assert_str_eq(F.b.ls[0].host, "hA");
    cr_assert_eq(cluster_claim(F.b.c, "vnc", "4", "r/x", on_done, &F.b), -EPERM);
    cr_assert_eq(cluster_claim_mac(F.b.c, "02:00:00:02", "r/x", F.b.mac, on_done, &F.b), -EPERM);
    cluster_stats st;
    cluster_get_stats(F.b.c, &st);
    cr_assert_eq(st.lease_id, 0, "a reader took a lease");
    cr_assert_eq(etcd_count("/qfleet/host/reader", NULL, 0), 0, "a reader wrote its host record");
    cr_assert_eq(etcd_count("/qfleet/host/hA", NULL, 0), 1);
    cr_assert_eq(F.b.nstates, 0, "a reader reported a state");
    finish();
}
