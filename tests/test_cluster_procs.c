/* test_cluster_procs.c - issue 18's tests with real processes: `qfleet
 * alloc --store etcd://... --hold` run by 8 processes as 4 simulated hosts
 * (distinct --host-id, the same MAC prefix on purpose), kill -9 of two of
 * them, and a 3-member etcd cluster losing a member while they allocate. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/mac.h"
#include "base/proc.h"
#include "src/cluster/cluster.h"
#include "tests/etcd_fx.h"
#include "tests/testutil.h"

#define NPROC 8
#define PREFIX "02:00:00:01" /* what cloned VMs would all derive */

typedef struct qp {
    proc_t *p;
    int exited, status, sig;
    char log[300];
} qp;

static struct {
    tu_loop l;
    etcd_fx *fx;
    char dir[256];
    qp q[NPROC + 1];
    cluster_t *c;
    int live, done, result, closed;
} F;

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    tu_loop_init(&F.l);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "cluster-procs"), 0);
}

static void teardown(void)
{
    for (int i = 0; i <= NPROC; i++)
        if (F.q[i].p)
            proc_close(F.q[i].p, NULL, NULL);
    F.l.down = 1; /* finish() did the checks, or the test failed first */
    etcd_fx_down(F.fx);
    tu_rmtree(F.dir);
}

TestSuite(cluster_procs, .init = setup, .fini = teardown, .timeout = 240);

static void on_exit_cb(proc_t *p, int status, int sig, void *data)
{
    qp *q = data;
    q->exited = 1;
    q->status = status;
    q->sig = sig;
}

/* qfleet alloc ... --hold as simulated host `host`, output in its log. */
static void spawn_alloc(int i, const char *host, const char *count, const char *mac)
{
    qp *q = &F.q[i];
    char owner[32], err[512];
    snprintf(owner, sizeof(owner), "run/p%d", i);
    snprintf(q->log, sizeof(q->log), "%s/p%d.log", F.dir, i);
    char *argv[24] = { QF_BINARY_DIR "/src/qfleet", "alloc", "mac", "--store",
                       (char *)etcd_fx_store(F.fx), "--host-id", (char *)host, "--owner", owner,
                       "--hold" };
    int n = 10;
    if (mac) {
        argv[n++] = "--mac";
        argv[n++] = (char *)mac;
    } else {
        argv[n++] = "--prefix";
        argv[n++] = PREFIX;
        argv[n++] = "--count";
        argv[n++] = (char *)count;
    }
    argv[n] = NULL;
    proc_opts o = { .argv = argv, .log_path = q->log };
    q->exited = 0;
    cr_assert_eq(proc_start(&F.l.loop, &o, on_exit_cb, q, &q->p, err, sizeof(err)), 0, "%s", err);
}

/* The MACs a process printed so far (its log also has its stderr lines). */
static int read_macs(const qp *q, char (*out)[18], int max)
{
    FILE *f = fopen(q->log, "r");
    char line[512];
    unsigned char m[6];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f) && n < max) {
        line[strcspn(line, "\n")] = '\0';
        if (mac_parse(line, m) == 0)
            mac_format(m, out[n++]);
    }
    fclose(f);
    return n;
}

/* Wait until process i printed want MACs; fails with its log when it
 * exits first. */
static void wait_macs(int i, int want, char (*out)[18])
{
    for (int t = 0; t < 1200; t++) { /* 120 s: 8 processes on a loaded 2-core box */
        if (read_macs(&F.q[i], out, want) == want)
            return;
        cr_assert(!F.q[i].exited, "qfleet alloc p%d exited (status %d) with %d of %d MACs; see %s",
                  i, F.q[i].status, read_macs(&F.q[i], out, want), want, F.q[i].log);
        tu_spin(&F.l, 100);
    }
    cr_assert_fail("p%d printed %d of %d MACs in 120 s", i, read_macs(&F.q[i], out, want), want);
}

static void stop(int i, int sig)
{
    proc_kill(F.q[i].p, sig);
    for (int t = 0; t < 200 && !F.q[i].exited; t++)
        tu_spin(&F.l, 50);
    cr_assert(F.q[i].exited, "p%d did not exit on signal %d", i, sig);
    if (sig == SIGTERM)
        cr_assert_eq(F.q[i].status, 0, "p%d: a clean stop exits 0; see %s", i, F.q[i].log);
}

static int cmp_mac(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Every MAC key in etcd, sorted, into out (n returned). */
static int etcd_macs(char (*out)[18], int max)
{
    char **k, **v;
    int n = etcd_fx_range(F.fx, "/qfleet/lease/mac/", &k, &v);
    cr_assert(n >= 0 && n <= max, "range of the MAC keys: %d", n);
    for (int i = 0; i < n; i++)
        snprintf(out[i], 18, "%s", k[i] + strlen("/qfleet/lease/mac/"));
    etcd_fx_free_kv(k, v, n);
    return n;
}

/* How many of macs[0..n) etcd still holds. */
static int still_held(char (*macs)[18], int n)
{
    static char in[2100][18];
    int m = etcd_macs(in, 2100), left = 0;
    for (int i = 0; i < n; i++)
        left += bsearch(macs[i], in, (size_t)m, 18, cmp_mac) != NULL;
    return left;
}

/* The end of a test: every process closed, etcd down, no handle left. */
static void finish(void)
{
    for (int i = 0; i <= NPROC; i++)
        if (F.q[i].p) {
            proc_close(F.q[i].p, NULL, NULL);
            F.q[i].p = NULL;
        }
    etcd_fx_down(F.fx);
    F.fx = NULL;
    F.l.closed = 1; /* no client of the fixture's own */
    tu_loop_down(&F.l, NULL);
}

static void on_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    if (s == CLUSTER_LIVE)
        F.live = 1;
}

static void on_done(cluster_t *c, int result, void *data)
{
    if (result == 0)
        F.done++;
    else
        F.result = result;
}

static void on_closed(cluster_t *c, int result, void *data)
{
    F.closed++;
}

/* The values of the dead are handed out again: a session of this test
 * process claims every one of them (bar skip, taken by a CLI process). */
static void claim_again(char (*macs)[18], int n, const char *skip)
{
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = etcd_fx_store(F.fx), .host_id = "h-test" };
    cr_assert_eq(cluster_open(&F.l.loop, &o, on_state, NULL, NULL, &F.c, err, sizeof(err)), 0);
    cr_assert(tu_run_until(&F.l, &F.live, 10000));
    int want = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(macs[i], skip) == 0)
            continue;
        cr_assert_eq(cluster_claim(F.c, "mac", macs[i], "test/again", on_done, NULL), 0);
        want++;
    }
    cr_assert(tu_run_until_n(&F.l, &F.done, want, 60000), "claimed %d of %d again (last error %d)",
              F.done, want, F.result);
    cr_assert_eq(F.result, 0);
    cluster_close(F.c, on_closed, NULL);
    cr_assert(tu_run_until(&F.l, &F.closed, 5000));
}

Test(cluster_procs, eight_processes_four_hosts_2000_macs_then_kill_9)
{
    char why[256];
    if (!(F.fx = etcd_fx_start(&F.l.loop, 1, why, sizeof(why))))
        cr_skip_test("%s", why);
    static char macs[NPROC][250][18], all[2100][18], dead[500][18];
    for (int i = 0; i < NPROC; i++) {
        char host[16];
        snprintf(host, sizeof(host), "host%d", i / 2);
        spawn_alloc(i, host, "250", NULL);
    }
    int n = 0;
    for (int i = 0; i < NPROC; i++) {
        wait_macs(i, 250, macs[i]);
        memcpy(all[n], macs[i], sizeof(macs[i]));
        n += 250;
    }
    qsort(all, (size_t)n, 18, cmp_mac);
    for (int i = 1; i < n; i++)
        cr_assert_str_neq(all[i - 1], all[i], "MAC %s handed out twice", all[i]);
    static char inetcd[2100][18];
    cr_assert_eq(etcd_macs(inetcd, 2100), 2000, "etcd holds every MAC once");
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(inetcd[i], all[i], "etcd and the outputs agree");

    /* kill -9 one process of host0 and one of host1: no revoke. */
    double t0 = tu_now_ms();
    stop(0, SIGKILL);
    stop(3, SIGKILL);
    memcpy(dead[0], macs[0], sizeof(macs[0]));
    memcpy(dead[250], macs[3], sizeof(macs[3]));
    int left = 500;
    while (left > 0 && tu_now_ms() - t0 < 15000) {
        left = still_held(dead, 500);
        if (left)
            tu_spin(&F.l, 100);
    }
    double gone = tu_now_ms() - t0;
    cr_assert_eq(left, 0, "%d keys of the killed processes outlived their lease", left);
    cr_assert_leq(gone, 5000 + 1000, "keys gone %.0f ms after kill -9: more than TTL + 1 s", gone);
    cr_assert_eq(etcd_macs(inetcd, 2100), 1500);

    /* Handed out again: one by `qfleet alloc mac --mac X`, the rest by a
     * session of this process. */
    spawn_alloc(NPROC, "host9", NULL, dead[7]);
    char one[1][18];
    wait_macs(NPROC, 1, one);
    cr_assert_str_eq(one[0], dead[7]);
    claim_again(dead, 500, dead[7]);
    for (int i = 1; i <= NPROC; i++)
        if (i != 3)
            stop(i, SIGTERM);
    cr_assert_eq(etcd_macs(inetcd, 2100), 0, "a clean stop revokes: nothing left");
    finish();
}

Test(cluster_procs, three_members_one_killed_allocation_goes_on)
{
    char why[256];
    if (!(F.fx = etcd_fx_start(&F.l.loop, 3, why, sizeof(why))))
        cr_skip_test("%s", why);
    static char macs[4][400][18], all[1600][18];
    for (int i = 0; i < 4; i++) {
        char host[16];
        snprintf(host, sizeof(host), "host%d", i);
        spawn_alloc(i, host, "400", NULL);
    }
    wait_macs(0, 10, macs[0]); /* allocation is under way */
    etcd_fx_kill(F.fx, 0);
    int n = 0;
    for (int i = 0; i < 4; i++) {
        wait_macs(i, 400, macs[i]);
        memcpy(all[n], macs[i], sizeof(macs[i]));
        n += 400;
    }
    qsort(all, (size_t)n, 18, cmp_mac);
    for (int i = 1; i < n; i++)
        cr_assert_str_neq(all[i - 1], all[i], "MAC %s handed out twice", all[i]);
    static char inetcd[1700][18];
    int held = etcd_macs(inetcd, 1700);
    cr_assert_eq(held, 1600, "etcd holds %d MAC keys, the outputs 1600", held);
    for (int i = 0; i < 4; i++)
        stop(i, SIGTERM);
    cr_assert_eq(etcd_macs(inetcd, 1700), 0);
    finish();
}

/* ---- the CLI around it ---- */

static int cli_rc;
static void on_cli_exit(proc_t *p, int status, int sig, void *data)
{
    cli_rc = status;
    *(int *)data = 1;
}

/* Run qfleet with args to its end: its exit code, stdout and stderr
 * (malloc'd). */
static int run_qfleet(char *const *args, char **out, char **err)
{
    char *argv[16] = { QF_BINARY_DIR "/src/qfleet" }, e[512];
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    proc_opts o = { .argv = argv, .capture_max = 1 << 20, .timeout_ms = 30000 };
    proc_t *p;
    int done = 0;
    cr_assert_eq(proc_start(&F.l.loop, &o, on_cli_exit, &done, &p, e, sizeof(e)), 0, "%s", e);
    cr_assert(tu_run_until(&F.l, &done, 35000));
    *out = proc_take_output(p, 1);
    *err = proc_take_output(p, 2);
    proc_close(p, NULL, NULL);
    return cli_rc;
}

Test(cluster_procs, leases_lists_every_host_and_errors_are_clear)
{
    char why[256], *out, *err;
    if (!(F.fx = etcd_fx_start(&F.l.loop, 1, why, sizeof(why))))
        cr_skip_test("%s", why);
    spawn_alloc(0, "hostA", "2", NULL);
    spawn_alloc(1, "hostB", NULL, "02:00:00:01:aa:bb");
    char m[2][18];
    wait_macs(0, 2, m);
    wait_macs(1, 1, m);
    char *store = (char *)etcd_fx_store(F.fx);

    char *json[] = { "leases", "--store", store, "--json", NULL };
    cr_assert_eq(run_qfleet(json, &out, &err), 0, "%s", err);
    json_t *v = json_parse(out, strlen(out), NULL, 0);
    cr_assert(v && json_len(v) == 3, "%s", out);
    int b = -1, a = 0;
    for (int i = 0; i < 3; i++) {
        if (strcmp(json_get_str(json_at(v, (size_t)i), "value"), "02:00:00:01:aa:bb") == 0)
            b = i;
        else
            a += strcmp(json_get_str(json_at(v, (size_t)i), "host"), "hostA") == 0;
        if (i)
            cr_assert(strcmp(json_get_str(json_at(v, (size_t)i - 1), "value"),
                             json_get_str(json_at(v, (size_t)i), "value")) < 0, "sorted");
    }
    cr_assert(b >= 0, "%s", out);
    cr_assert_str_eq(json_get_str(json_at(v, (size_t)b), "host"), "hostB");
    cr_assert_str_eq(json_get_str(json_at(v, (size_t)b), "owner"), "run/p1/nic0");
    cr_assert_eq(a, 2, "both MACs of hostA: %s", out);
    json_free(v);
    free(out);
    free(err);

    setenv(CLUSTER_STORE_ENV, store, 1); /* QFLEET_STORE picks etcd too */
    char *table[] = { "leases", NULL };
    cr_assert_eq(run_qfleet(table, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "HOST") && strstr(out, "hostA") && strstr(out, "run/p1/nic0"), "%s",
              out);
    free(out);
    free(err);
    char *taken[] = { "alloc", "mac", "02:00:00:01:AA:BB", "--owner", "x", "--hold", NULL };
    cr_assert_eq(run_qfleet(taken, &out, &err), 1, "%s", err);
    cr_assert(strstr(err, "held by host hostB") && strstr(err, "run/p1/nic0"), "%s", err);
    free(out);
    free(err);
    unsetenv(CLUSTER_STORE_ENV);

    char *nohold[] = { "alloc", "mac", "--store", store, "--owner", "x", NULL };
    cr_assert_eq(run_qfleet(nohold, &out, &err), 2);
    cr_assert(strstr(err, "--hold"), "%s", err);
    free(out);
    free(err);
    char *down[] = { "leases", "--store", "etcd://127.0.0.1:1,127.0.0.1:9", NULL };
    cr_assert_eq(run_qfleet(down, &out, &err), 3, "unreachable etcd is a set-up error");
    cr_assert(strstr(err, "127.0.0.1:1") && strstr(err, "127.0.0.1:9"), "%s", err);
    free(out);
    free(err);
    char *dir[] = { "leases", "--store", F.dir, NULL }; /* a directory: the host store */
    cr_assert_eq(run_qfleet(dir, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "no leases held in") && strstr(out, F.dir), "%s", out);
    free(out);
    free(err);
    stop(0, SIGTERM);
    stop(1, SIGTERM);
    finish();
}
