/* test_fleet_cluster.c - the fleet's cluster-wide leases (fleet.h,
 * "cluster-wide leases") against a real etcd (tests/etcd_fx) and real
 * QEMU: two simulated hosts in this process, each its own cluster session
 * (its own --host-id) and its own host store (state dir), on one loop.
 *
 * The guests are the cheapest real QMP peers that reach ready: QEMU (TCG)
 * with an e1000 NIC, no kernel, no agent (qga = enable=no), so a guest is
 * ready once QEMU runs and query-pci answered - under a second. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "cfg/suite.h"
#include "cfg/vm.h"
#include "src/alloc/alloc.h"
#include "src/cluster/cluster.h"
#include "src/fleet/fleet.h"
#include "src/run/runner.h"
#include "tests/etcd_fx.h"
#include "tests/testutil.h"

#define PREFIX "02:cc:00:00:00:" /* 256 MACs: small enough to fill */

struct host {
    const char *id;
    cluster_t *c;
    fleet_t *f;
    runner_t *r; /* instead of f: a `qfleet run` on this host's session */
    cluster_state st;
    int lost, live_again, conflicts;
    int closed, freed;
    char state_dir[300], run_dir[300];
};

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    etcd_fx *fx;
    char dir[256];
    struct host h[2];
    unsigned cluster_wide; /* fleet_opts.cluster_wide of the next host_up */
} F;

static void tick(uv_timer_t *t) { (void)t; }

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick);
    uv_timer_start(&F.tick, tick, 20, 20); /* wakes UV_RUN_ONCE to re-check */
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "fcluster"), 0);
    char why[256];
    F.fx = etcd_fx_start(&F.loop, 1, why, sizeof(why));
    if (!F.fx)
        cr_skip_test("%s", why);
}

static void on_freed(fleet_t *f, void *data);
static void on_closed(cluster_t *c, int result, void *data);
static void proxy_stop(void);

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* After a test that failed half-way: free what it left (a passing test
 * took everything down in its body and checked each callback). */
static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (F.h[i].f && !F.h[i].freed)
            fleet_free(F.h[i].f, on_freed, &F.h[i]);
    for (int k = 0; k < 200 && !((!F.h[0].f || F.h[0].freed) && (!F.h[1].f || F.h[1].freed)); k++)
        uv_run(&F.loop, UV_RUN_ONCE);
    for (int i = 0; i < 2; i++)
        if (F.h[i].c && !F.h[i].closed)
            cluster_close(F.h[i].c, on_closed, &F.h[i]);
    proxy_stop();
    etcd_fx_down(F.fx);
    F.fx = NULL;
    double end = tu_now_ms() + 5000;
    while (tu_now_ms() < end && ((F.h[0].c && !F.h[0].closed) || (F.h[1].c && !F.h[1].closed)))
        uv_run(&F.loop, UV_RUN_ONCE);
    uv_walk(&F.loop, close_any, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    uv_loop_close(&F.loop);
    tu_rmtree(F.dir);
}

TestSuite(fleet_cluster, .init = setup, .fini = teardown, .timeout = 240);

/* Run the loop until pred holds or ms pass; returns pred. */
static int run_until(int (*pred)(void *), void *arg, int ms)
{
    double end = tu_now_ms() + ms;
    int ok;
    while (!(ok = pred(arg)) && tu_now_ms() < end)
        uv_run(&F.loop, UV_RUN_ONCE);
    return ok;
}

/* ---- hosts ---- */

static void on_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    struct host *h = data;
    (void)c;
    if (s == CLUSTER_LOST)
        h->lost++;
    if (s == CLUSTER_LIVE && h->lost)
        h->live_again++;
    h->st = s;
    if (h->f) /* what an owner does: forward, the fleet records and kicks */
        fleet_cluster_state(h->f, s, why);
    if (h->r) /* a runner forwards to its suites' fleets */
        runner_cluster_state(h->r, s, why);
}

static void on_conflict(cluster_t *c, const char *kind, const char *value, const char *owner,
                        const char *holder, void *data)
{
    struct host *h = data;
    (void)c;
    h->conflicts++;
    if (h->f)
        fleet_cluster_conflict(h->f, kind, value, owner, holder);
}

static int is_live(void *arg) { return ((struct host *)arg)->st == CLUSTER_LIVE; }

static void on_event(fleet_t *f, fguest_t *g, fleet_state s, void *data)
{
    (void)f, (void)g, (void)s, (void)data;
}

static void host_up_via(int i, const char *id, const char *store);

static void host_up(int i, const char *id) { host_up_via(i, id, NULL); }

/* Host i, reaching etcd at store (NULL: the fixture's). */
static void host_up_via(int i, const char *id, const char *store)
{
    struct host *h = &F.h[i];
    h->id = id;
    snprintf(h->state_dir, sizeof(h->state_dir), "%s/%s-state", F.dir, id);
    snprintf(h->run_dir, sizeof(h->run_dir), "%s/%s-run", F.dir, id);
    cr_assert_eq(mkdir(h->state_dir, 0700), 0);
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = store ? store : etcd_fx_store(F.fx), .host_id = id };
    cr_assert_eq(cluster_open(&F.loop, &o, on_state, on_conflict, h, &h->c, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(run_until(is_live, h, 10000), "host %s: the session never went live", id);
    fleet_opts fo = { .state_dir = h->state_dir, .run_dir = h->run_dir, .no_ssh = 1,
                      .cluster = h->c, .cluster_wide = F.cluster_wide };
    cr_assert_eq(fleet_new(&F.loop, &fo, on_event, h, &h->f, err, sizeof(err)), 0, "%s", err);
}

static void add_guest_x(int i, const char *name, const char *mac, const char *extra);

/* The cheap guest; mac: a fixed MAC for its NIC, or NULL (allocated). */
static void add_guest(int i, const char *name, const char *mac) { add_guest_x(i, name, mac, ""); }

/* The same with more cfg keys (extra). */
static void add_guest_x(int i, const char *name, const char *mac, const char *extra)
{
    char path[400], err[1024];
    snprintf(path, sizeof(path), "%s/%s.cfg", F.dir, name);
    FILE *fp = fopen(path, "w");
    cr_assert(fp);
    fprintf(fp,
            "[vm0]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=64;\n"
            "net =\n    type=nic,opt_model=e1000,opt_addr=1f%s%s;\n    type=user;\n"
            "qga =\n    enable=no;\n"
            "%s"
            "enable_kvm =\n    enable=no;\n%s",
            mac ? ",opt_macaddr=" : "", mac ? mac : "",
            strstr(extra, "vnc =") ? "" : "vnc =\n    disable=yes;\n", extra);
    cr_assert_eq(fclose(fp), 0);
    struct cfg_vm *vm;
    cr_assert_eq(cfg_vm_load(path, "vm0", NULL, &vm, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg_vm_set(vm, "mac_prefix", PREFIX, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(fleet_add(F.h[i].f, vm, name, err, sizeof(err)), 0, "%s", err);
    fleet_start(F.h[i].f);
}

struct want {
    int host;
    const char *name;
    fleet_state s;
};

static int guest_in(void *arg)
{
    const struct want *w = arg;
    fguest_t *g = fleet_find(F.h[w->host].f, w->name);
    return g && fguest_state(g) == w->s;
}

static void wait_state(int i, const char *name, fleet_state s, int ms)
{
    struct want w = { i, name, s };
    fguest_t *g = fleet_find(F.h[i].f, name);
    cr_assert(run_until(guest_in, &w, ms), "%s on %s: %s, not %s: %s", name, F.h[i].id,
              g ? fleet_state_name(fguest_state(g)) : "missing", fleet_state_name(s),
              g ? fguest_reason(g) : "");
}

/* The guest's one MAC from its registry entry (static buffer). */
static const char *mac_of(int i, const char *name)
{
    static char mac[32];
    json_t *v = fguest_json(fleet_find(F.h[i].f, name));
    snprintf(mac, sizeof(mac), "%s", json_str(json_at(json_get(v, "macs"), 0)));
    json_free(v);
    return mac;
}

/* Field what ("host", "owner") of /qfleet/lease/mac/MAC in etcd, or ""
 * (static). */
static const char *etcd_field(const char *mac, const char *what)
{
    static char host[CLUSTER_OWNER_MAX];
    char prefix[64], **k, **v;
    snprintf(prefix, sizeof(prefix), "/qfleet/lease/mac/%s", mac);
    int n = etcd_fx_range(F.fx, prefix, &k, &v);
    cr_assert_geq(n, 0, "etcd did not answer");
    host[0] = 0;
    json_t *o = n == 1 ? json_parse(v[0], strlen(v[0]), NULL, 0) : NULL;
    if (o)
        snprintf(host, sizeof(host), "%s", json_get_str(o, what));
    json_free(o);
    etcd_fx_free_kv(k, v, n);
    return host;
}

static const char *etcd_holder(const char *mac) { return etcd_field(mac, "host"); }

static void on_freed(fleet_t *f, void *data)
{
    (void)f;
    ((struct host *)data)->freed++;
}

static void on_stopped(fleet_t *f, void *data)
{
    (void)data;
    fleet_free(f, on_freed, data);
}

static void on_closed(cluster_t *c, int result, void *data)
{
    (void)c, (void)result;
    ((struct host *)data)->closed++;
}

static int host_freed(void *arg) { return ((struct host *)arg)->freed; }
static int host_closed(void *arg) { return ((struct host *)arg)->closed; }

/* Stop the guests, free the fleet, then close the session (as qfleet up
 * does): each callback exactly once. */
static void host_down(int i)
{
    struct host *h = &F.h[i];
    fleet_stop_all(h->f, on_stopped, h);
    cr_assert(run_until(host_freed, h, 30000), "host %s: the fleet was not freed", h->id);
    cluster_close(h->c, on_closed, h);
    cr_assert(run_until(host_closed, h, 10000), "host %s: the session did not close", h->id);
    uv_run(&F.loop, UV_RUN_NOWAIT);
    cr_assert_eq(h->freed, 1);
    cr_assert_eq(h->closed, 1);
    h->f = NULL;
    h->c = NULL;
}


/* ---- a TCP proxy in front of etcd, to cut one host off ----
 *
 * Host A reaches etcd only through it; cut closes every connection it
 * carries and every one made while cut, so A's session fails at once while
 * etcd itself (and host B) go on. */

struct pconn {
    uv_tcp_t a, b; /* client side, etcd side */
    uv_connect_t cr;
    int closed, closing;
    struct pconn *next;
};

static struct {
    uv_tcp_t srv;
    int port, cut, open;
    struct sockaddr_in to;
    struct pconn *conns;
} P;

static void p_closed(uv_handle_t *h)
{
    struct pconn *c = h->data;
    if (++c->closed < 2)
        return;
    for (struct pconn **pp = &P.conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    free(c);
}

static void p_close(struct pconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->a, p_closed);
    uv_close((uv_handle_t *)&c->b, p_closed);
}

static void p_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = buf->base ? n : 0;
}

static void p_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void p_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct pconn *c = s->data;
    if (n < 0 || P.cut) {
        free(buf->base);
        p_close(c);
        return;
    }
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    w->data = buf->base;
    uv_stream_t *to = s == (uv_stream_t *)&c->a ? (uv_stream_t *)&c->b : (uv_stream_t *)&c->a;
    if (n == 0 || uv_write(w, to, &out, 1, p_written) < 0) {
        free(buf->base);
        free(w);
    }
}

static void p_connected(uv_connect_t *r, int status)
{
    struct pconn *c = r->data;
    if (status < 0 || P.cut || c->closing) {
        p_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->a, p_alloc, p_read);
    uv_read_start((uv_stream_t *)&c->b, p_alloc, p_read);
}

static void p_accept(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    struct pconn *c = calloc(1, sizeof(*c));
    cr_assert(c);
    uv_tcp_init(&F.loop, &c->a);
    uv_tcp_init(&F.loop, &c->b);
    c->a.data = c->b.data = c->cr.data = c;
    c->next = P.conns;
    P.conns = c;
    if (uv_accept(srv, (uv_stream_t *)&c->a) < 0 || P.cut) {
        p_close(c);
        return;
    }
    uv_tcp_connect(&c->cr, &c->b, (const struct sockaddr *)&P.to, p_connected);
}

static void proxy_start(const char *endpoint)
{
    memset(&P, 0, sizeof(P));
    char host[64];
    int port;
    cr_assert_eq(sscanf(endpoint, "%63[^:]:%d", host, &port), 2, "%s", endpoint);
    uv_ip4_addr(host, port, &P.to);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_init(&F.loop, &P.srv);
    cr_assert_eq(uv_tcp_bind(&P.srv, (const struct sockaddr *)&any, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&P.srv, 16, p_accept), 0);
    struct sockaddr_in me;
    int len = sizeof(me);
    uv_tcp_getsockname(&P.srv, (struct sockaddr *)&me, &len);
    P.port = ntohs(me.sin_port);
    P.open = 1;
}

static void proxy_cut(int cut)
{
    P.cut = cut;
    for (struct pconn *c = P.conns; cut && c; c = c->next)
        p_close(c);
}

static void proxy_stop(void)
{
    if (!P.open)
        return;
    proxy_cut(1);
    uv_close((uv_handle_t *)&P.srv, NULL);
    P.open = 0;
}

/* ---- tests ---- */

/* (b) A MAC the cfg fixes, held by host A, fails the guest of host B that
 * wants it, naming host A; A's guest is unharmed. */
Test(fleet_cluster, fixed_mac_held_elsewhere_fails_naming_the_holder)
{
    host_up(0, "hostA");
    host_up(1, "hostB");
    add_guest(0, "a", "52:54:00:aa:00:01");
    wait_state(0, "a", GS_READY, 60000);
    cr_assert_str_eq(etcd_holder("52:54:00:aa:00:01"), "hostA");
    add_guest(1, "b", "52:54:00:aa:00:01");
    wait_state(1, "b", GS_FAILED, 30000);
    const char *why = fguest_reason(fleet_find(F.h[1].f, "b"));
    cr_assert(strstr(why, "mac 52:54:00:aa:00:01 is held cluster-wide by") && strstr(why, "hostA"),
              "%s", why);
    cr_assert_eq(fguest_state(fleet_find(F.h[0].f, "a")), GS_READY);
    cr_assert_str_eq(etcd_holder("52:54:00:aa:00:01"), "hostA");
    host_down(1);
    host_down(0);
    cr_assert_str_eq(etcd_holder("52:54:00:aa:00:01"), "", "released with the guest");
}

#define NA 4 /* host A's guests */

static int held_by_a(const char *mac, char a[NA][32])
{
    for (int k = 0; k < NA; k++)
        if (!strcmp(mac, a[k]))
            return 1;
    return 0;
}

/* An allocated MAC that another host holds is given back and another one
 * taken. Host B's own store is filled so that the only MACs it may still
 * hand out under the prefix are host A's four (free in B's store, held in
 * etcd) and one truly free: B's guest must end up with that one. (Without
 * the cluster claims it would get one of A's 4 times out of 5.) */
Test(fleet_cluster, allocated_mac_held_elsewhere_is_picked_again)
{
    host_up(0, "hostA");
    host_up(1, "hostB");
    char a[NA][32], name[16], err[512];
    for (int k = 0; k < NA; k++) {
        snprintf(name, sizeof(name), "a%d", k);
        add_guest(0, name, NULL);
    }
    for (int k = 0; k < NA; k++) {
        snprintf(name, sizeof(name), "a%d", k);
        wait_state(0, name, GS_READY, 60000);
        snprintf(a[k], sizeof(a[k]), "%s", mac_of(0, name));
        for (int j = 0; j < k; j++)
            cr_assert_str_neq(a[k], a[j]);
    }
    alloc_store *st;
    cr_assert_eq(alloc_store_open(&st, F.h[1].state_dir, NULL, err, sizeof(err)), 0, "%s", err);
    alloc_owner fill;
    cr_assert_eq(alloc_owner_init(&fill, "test/fill", 0, err, sizeof(err)), 0, "%s", err);
    char free_mac[32] = "";
    cr_assert_eq(alloc_begin(st, err, sizeof(err)), 0, "%s", err);
    for (int x = 0, left = 1; x < 256; x++) {
        char mac[32];
        snprintf(mac, sizeof(mac), PREFIX "%02x", x);
        if (held_by_a(mac, a))
            continue;
        if (left && x > 16) { /* keep one out of the fill */
            snprintf(free_mac, sizeof(free_mac), "%s", mac);
            left = 0;
            continue;
        }
        cr_assert_eq(alloc_reserve_mac(st, &fill, x, mac, 0, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(alloc_commit(st, err, sizeof(err)), 0, "%s", err);
    alloc_store_close(st);
    add_guest(1, "b", NULL);
    wait_state(1, "b", GS_READY, 60000);
    cr_assert_str_eq(mac_of(1, "b"), free_mac, "B's guest got %s, not the one free MAC",
                     mac_of(1, "b"));
    cr_assert_str_eq(etcd_holder(free_mac), "hostB");
    for (int k = 0; k < NA; k++)
        cr_assert_str_eq(etcd_holder(a[k]), "hostA");
    host_down(1);
    host_down(0);
}

/* events.jsonl has a line with needle after one with after (NULL: any). */
static int has_line(const char *run_dir, const char *after, const char *needle)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/events.jsonl", run_dir);
    char *s = fs_read_file(path, 1 << 22, NULL);
    const char *from = s && after ? strstr(s, after) : s;
    int has = from && strstr(from, needle);
    free(s);
    return has;
}

#define EV(state) "\"event\":\"cluster\",\"state\":\"" state "\""

static int host_lost(void *arg) { return ((struct host *)arg)->st == CLUSTER_LOST; }

/* (c) etcd stopped mid-run: the session goes unproven then lost, each a
 * line in events.jsonl; the ready guest keeps running; a guest added
 * then stays queued and says why (in its reason and in guests.json);
 * etcd restarted: the session is live again and the queued guest boots. */
Test(fleet_cluster, etcd_stopped_holds_new_guests_and_restarted_resumes)
{
    host_up(0, "hostC");
    struct host *h = &F.h[0];
    add_guest(0, "a", NULL);
    wait_state(0, "a", GS_READY, 60000);
    json_t *ga = fguest_json(fleet_find(h->f, "a"));
    pid_t qemu = (pid_t)json_get_int(ga, "pid", 0);
    json_free(ga);
    cr_assert_gt(qemu, 0);
    etcd_fx_stop(F.fx, 0);
    cr_assert(run_until(host_lost, h, 20000), "the session never said lost");
    cr_assert(has_line(h->run_dir, EV("live"), EV("unproven")));
    cr_assert(has_line(h->run_dir, EV("unproven"), EV("lost")));
    add_guest(0, "b", NULL);
    uv_run(&F.loop, UV_RUN_NOWAIT);
    double end = tu_now_ms() + 2000;
    while (tu_now_ms() < end) /* time enough to boot it, were it allowed */
        uv_run(&F.loop, UV_RUN_ONCE);
    fguest_t *b = fleet_find(h->f, "b");
    cr_assert_eq(fguest_state(b), GS_QUEUED, "%s", fleet_state_name(fguest_state(b)));
    cr_assert(!strncmp(fguest_reason(b), "waiting: etcd unreachable since ", 32) &&
              strstr(fguest_reason(b), "lease TTL 5 s passed"), "%s", fguest_reason(b));
    cr_assert_eq(fguest_state(fleet_find(h->f, "a")), GS_READY);
    cr_assert(tu_alive(qemu), "the running guest's QEMU must keep running");
    json_t *reg = fleet_registry(h->f);
    cr_assert_str_eq(json_get_str(json_get(reg, "cluster"), "state"), "lost");
    cr_assert_str_eq(json_get_str(json_get(reg, "cluster"), "host"), "hostC");
    json_free(reg);
    etcd_fx_restart(F.fx, 0);
    wait_state(0, "b", GS_READY, 30000);
    cr_assert_eq(h->live_again, 1);
    cr_assert(has_line(h->run_dir, EV("lost"), EV("live")), "no live line after the lost one");
    cr_assert_str_eq(fguest_reason(b), "");
    cr_assert_str_eq(etcd_holder(mac_of(0, "a")), "hostC", "re-created after the restart");
    cr_assert_str_eq(etcd_holder(mac_of(0, "b")), "hostC");
    host_down(0);
}

struct claim { int done, result; };

static void on_claimed(cluster_t *c, int result, void *data)
{
    (void)c;
    struct claim *k = data;
    k->done = 1;
    k->result = result;
}

static int claim_done(void *arg) { return ((struct claim *)arg)->done; }

static int mac_gone(void *arg) { return !etcd_holder(arg)[0]; }

/* A host cut off from etcd past its lease TTL loses its keys; host B takes
 * one of them meanwhile; when A reaches etcd again the session reports the
 * conflict and the fleet fails the guest that held the key, naming B. */
Test(fleet_cluster, key_taken_while_cut_off_fails_its_guest_naming_the_holder)
{
    proxy_start(etcd_fx_endpoint(F.fx, 0));
    char via[64];
    snprintf(via, sizeof(via), "etcd://127.0.0.1:%d", P.port);
    host_up_via(0, "hostA", via);
    host_up(1, "hostB");
    add_guest(0, "a", NULL);
    wait_state(0, "a", GS_READY, 60000);
    char mac[32];
    snprintf(mac, sizeof(mac), "%s", mac_of(0, "a"));
    cr_assert_str_eq(etcd_holder(mac), "hostA");
    proxy_cut(1);
    cr_assert(run_until(host_lost, &F.h[0], 20000), "host A never said lost");
    cr_assert(run_until(mac_gone, mac, 15000), "etcd kept A's key past its TTL");
    struct claim k = { 0 };
    cr_assert_eq(cluster_claim(F.h[1].c, "mac", mac, "other/b", on_claimed, &k), 0);
    cr_assert(run_until(claim_done, &k, 10000));
    cr_assert_eq(k.result, 0, "%s", cluster_error(F.h[1].c));
    cr_assert_eq(fguest_state(fleet_find(F.h[0].f, "a")), GS_READY, "cut off, it keeps running");
    proxy_cut(0);
    wait_state(0, "a", GS_FAILED, 30000);
    const char *why = fguest_reason(fleet_find(F.h[0].f, "a"));
    cr_assert(strstr(why, mac) && strstr(why, "taken cluster-wide by") && strstr(why, "hostB"),
              "%s", why);
    cr_assert_geq(F.h[0].conflicts, 1);
    cr_assert_str_eq(etcd_holder(mac), "hostB");
    host_down(0);
    host_down(1);
    proxy_stop();
    cr_assert_str_eq(etcd_holder(mac), "");
}

/* A live migration on one host: the MAC the pair shares stays claimed
 * cluster-wide, handed to the destination, when the source's QEMU stops
 * and releases what it held; it goes with the destination. */
static void on_migrated(fleet_t *f, const fleet_migration *m, void *data)
{
    (void)f;
    int *st = data;
    *st = m->status == 0 ? 1 : -1;
    if (m->status)
        fprintf(stderr, "migration: %s\n", m->error ? m->error : "?");
}

static int flag_nonzero(void *arg) { return *(int *)arg != 0; }

Test(fleet_cluster, migration_hands_the_mac_to_the_destination)
{
    host_up(0, "hostA");
    add_guest(0, "src", NULL);
    add_guest_x(0, "dst", NULL, "migration =\n    enable=yes,listen=127.0.0.1;\n");
    wait_state(0, "src", GS_READY, 60000);
    wait_state(0, "dst", GS_AWAITING_MIGRATION, 60000);
    char mac[32];
    snprintf(mac, sizeof(mac), "%s", mac_of(0, "src"));
    cr_assert_str_eq(etcd_holder(mac), "hostA");
    char err[1024];
    int st = 0;
    fleet_migrate_opts mo = { .timeout_ms = 60000 };
    cr_assert_eq(fleet_migrate(F.h[0].f, fleet_find(F.h[0].f, "src"), fleet_find(F.h[0].f, "dst"),
                               &mo, on_migrated, &st, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(run_until(flag_nonzero, &st, 90000), "the migration never ended");
    cr_assert_eq(st, 1, "the migration failed");
    /* "src" now names the destination, "dst" the old QEMU, stopped. */
    cr_assert_eq(fguest_state(fleet_find(F.h[0].f, "dst")), GS_STOPPED);
    cr_assert_str_eq(mac_of(0, "src"), mac);
    cr_assert_str_eq(etcd_holder(mac), "hostA", "the source's release took the pair's MAC");
    const char *owner = etcd_field(mac, "owner");
    size_t n = strlen(owner);
    cr_assert(n > 4 && strcmp(owner + n - 4, "/dst") == 0, "owner %s, not the destination", owner);
    host_down(0);
    cr_assert_str_eq(etcd_holder(mac), "", "released with the destination");
}

/* --cluster-wide vnc: displays are claimed as ("vnc", N) beside the MACs.
 * Displays 0 and 1 are held in etcd by another host (a shared console
 * host), though their ports are free here: host B's guest skips them and
 * takes 2, claimed under host B; it goes with the guest. */
Test(fleet_cluster, cluster_wide_vnc_skips_displays_held_elsewhere)
{
    host_up(0, "console");
    F.cluster_wide = FLEET_CW_VNC;
    host_up(1, "hostB");
    for (int d = 0; d < 2; d++) {
        struct claim k = { 0 };
        char v[8];
        snprintf(v, sizeof(v), "%d", d);
        cr_assert_eq(cluster_claim(F.h[0].c, "vnc", v, "other/console", on_claimed, &k), 0);
        cr_assert(run_until(claim_done, &k, 10000));
        cr_assert_eq(k.result, 0, "%s", cluster_error(F.h[0].c));
    }
    add_guest_x(1, "b", NULL, "vnc =\n    disable=no;\n");
    wait_state(1, "b", GS_READY, 60000);
    json_t *v = fguest_json(fleet_find(F.h[1].f, "b"));
    long long display = json_get_int(v, "vnc", -1);
    json_free(v);
    cr_assert_eq(display, 2, "display %lld, not the first one free cluster-wide", display);
    char **k, **val;
    int n = etcd_fx_range(F.fx, "/qfleet/lease/vnc/2", &k, &val);
    cr_assert_eq(n, 1, "display 2 is not claimed in etcd");
    cr_assert(strstr(val[0], "\"hostB\""), "%s", val[0]);
    etcd_fx_free_kv(k, val, n);
    host_down(1);
    n = etcd_fx_range(F.fx, "/qfleet/lease/vnc/2", &k, &val);
    etcd_fx_free_kv(k, val, n);
    cr_assert_eq(n, 0, "display 2 stayed claimed after the guest went");
    host_down(0);
}

/* ---- qfleet run on a cluster session ---- */

static int run_done;

static void on_run_done(runner_t *r, void *data)
{
    (void)r, (void)data;
    run_done = 1;
}

static int is_done(void *arg)
{
    (void)arg;
    return run_done;
}

/* The reason of the run's first suite's first guest in STATUS_DIR's
 * status.json, "" when it has none, NULL when there is no document yet
 * (static buffer). */
static const char *status_reason(const char *status_dir, char *state, size_t statelen)
{
    static char reason[512];
    char p[400];
    snprintf(p, sizeof(p), "%s/status.json", status_dir);
    size_t n;
    char *text = fs_read_file(p, 1 << 20, &n);
    json_t *doc = text ? json_parse(text, n, NULL, 0) : NULL;
    free(text);
    if (!doc)
        return NULL;
    const json_t *g = json_at(json_get(json_at(json_get(doc, "suites"), 0), "guests"), 0);
    const char *r = json_get_str(g, "reason"), *s = json_get_str(g, "state");
    snprintf(reason, sizeof(reason), "%s", r ? r : "");
    snprintf(state, statelen, "%s", s ? s : "");
    json_free(doc);
    return reason;
}

static int status_waits(void *arg)
{
    char st[32];
    const char *r = status_reason(arg, st, sizeof(st));
    return r && !strncmp(r, "waiting: etcd unreachable since ", 32);
}

/* etcd stopped before a suite's guests boot: they stay queued, and the
 * run's status.json says why (the guest's reason, as the fleet's
 * guests.json has it), though no fleet event told the runner. */
Test(fleet_cluster, run_status_shows_why_a_guest_waits)
{
    struct host *h = &F.h[0];
    h->id = "hostR";
    char err[CLUSTER_ERR_MAX], p[400], rd[300], state[300];
    snprintf(state, sizeof(state), "%s/hostR-state", F.dir);
    snprintf(rd, sizeof(rd), "%s/hostR-run", F.dir);
    cr_assert_eq(mkdir(state, 0700), 0);
    cluster_opts o = { .store = etcd_fx_store(F.fx), .host_id = h->id };
    cr_assert_eq(cluster_open(&F.loop, &o, on_state, on_conflict, h, &h->c, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(run_until(is_live, h, 10000), "the session never went live");
    snprintf(p, sizeof(p), "%s/cheap.cfg", F.dir);
    FILE *fp = fopen(p, "w");
    cr_assert(fp);
    fprintf(fp, "[vm0]\ncpu =\n    model=qemu64,number=1;\nmem =\n    size=64;\n"
                "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
                "qga =\n    enable=no;\nvnc =\n    disable=yes;\nenable_kvm =\n    enable=no;\n");
    cr_assert_eq(fclose(fp), 0);
    tu_write_in(F.dir, "held.suite", "[suite]\ncfg = cheap.cfg\nvms = vm0\n[case a]\nhost: true\n");

    etcd_fx_stop(F.fx, 0);
    cr_assert(run_until(host_lost, h, 20000), "the session never said lost");
    runner_opts ro = { .state_dir = state, .run_dir = rd, .jobs = 1, .quiet = 1,
                       .mac_prefix = PREFIX, .cluster = h->c };
    cr_assert_eq(runner_new(&F.loop, &ro, &h->r, err, sizeof(err)), 0, "%s", err);
    struct suite *s;
    snprintf(p, sizeof(p), "%s/held.suite", F.dir);
    cr_assert_eq(suite_load(p, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(runner_add(h->r, s, err, sizeof(err)), 0, "%s", err);
    run_done = 0;
    runner_start(h->r, on_run_done, NULL);
    int waits = run_until(status_waits, rd, 10000);
    char gstate[32];
    const char *why = status_reason(rd, gstate, sizeof(gstate));
    cr_assert(waits, "status.json's guest has no waiting reason: '%s' (%s)", why ? why : "(none)",
              gstate);
    cr_assert_str_eq(gstate, "queued");
    cr_assert(strstr(why, "lease TTL 5 s passed"), "%s", why);
    /* the same words as the fleet's own registry */
    snprintf(p, sizeof(p), "%s/held/guests.json", rd);
    size_t n;
    char *text = fs_read_file(p, 1 << 20, &n);
    cr_assert(text, "%s", p);
    cr_assert(strstr(text, why), "guests.json does not say '%s': %s", why, text);
    free(text);

    runner_interrupt(h->r, "test over");
    cr_assert(run_until(is_done, NULL, 30000), "the run did not end");
    runner_free(h->r);
    h->r = NULL;
    cluster_close(h->c, on_closed, h);
    cr_assert(run_until(host_closed, h, 10000), "the session did not close");
    h->c = NULL;
}
