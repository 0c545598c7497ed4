/* test_qmpctl_cluster.c - `qfleet up --store etcd://...` as separate
 * processes, one per simulated host (distinct --host-id and state dir, the
 * same --mac-prefix on purpose), against one real etcd (tests/etcd_fx),
 * and `qmpctl list --cluster` reading what they publish. Real QEMU: the
 * cheapest guest that reaches ready (no kernel, no agent). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "tests/etcd_fx.h"
#include "tests/testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define QMPCTL QF_BINARY_DIR "/tools/qmpctl"
#define PREFIX "02:dd:00:00:"

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    etcd_fx *fx;
    char dir[256], cfg[300];
    pid_t up[2];
} F;

static void tick(uv_timer_t *t) { (void)t; }

static void write_cfg(void)
{
    snprintf(F.cfg, sizeof(F.cfg), "%s/cheap.cfg", F.dir);
    FILE *fp = fopen(F.cfg, "w");
    cr_assert(fp);
    fprintf(fp, "[vm0]\n"
                "cpu =\n    model=qemu64,number=1;\n"
                "mem =\n    size=64;\n"
                "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
                "qga =\n    enable=no;\n"
                "vnc =\n    disable=yes;\n"
                "enable_kvm =\n    enable=no;\n");
    cr_assert_eq(fclose(fp), 0);
}

static void setup_dirs(void)
{
    memset(&F, 0, sizeof(F));
    cr_assert_eq(uv_loop_init(&F.loop), 0);
    uv_timer_init(&F.loop, &F.tick); /* wakes the fixture's UV_RUN_ONCE waits */
    uv_timer_start(&F.tick, tick, 20, 20);
    cr_assert_eq(tu_mkdtemp(F.dir, sizeof(F.dir), "qcluster"), 0);
    write_cfg();
}

static void setup(void)
{
    setup_dirs();
    char why[256];
    F.fx = etcd_fx_start(&F.loop, 1, why, sizeof(why));
    if (!F.fx)
        cr_skip_test("%s", why);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (F.up[i] > 0 && tu_alive(F.up[i]))
            tu_wait_exit(F.up[i], 1); /* kills it; its QEMUs die with it */
    etcd_fx_down(F.fx);
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    uv_loop_close(&F.loop);
    tu_rmtree(F.dir);
}

TestSuite(qmpctl_cluster, .init = setup, .fini = teardown, .timeout = 240);
/* No etcd at all. */
TestSuite(qmpctl_cluster_setup, .init = setup_dirs, .fini = teardown, .timeout = 60);

/* Start argv with QFLEET_STATE_DIR=DIR/host-state; stdout and stderr to
 * DIR/tag.out and DIR/tag.err. */
static pid_t spawn(const char *host, const char *tag, char *const argv[])
{
    char out[400], errp[400], state[400];
    snprintf(out, sizeof(out), "%s/%s.out", F.dir, tag);
    snprintf(errp, sizeof(errp), "%s/%s.err", F.dir, tag);
    snprintf(state, sizeof(state), "%s/%s-state", F.dir, host);
    mkdir(state, 0700);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        setenv("QFLEET_STATE_DIR", state, 1);
        unsetenv("QFLEET_STORE");
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static char *slurp(const char *tag, const char *ext)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s.%s", F.dir, tag, ext);
    char *s = fs_read_file(p, 1 << 22, NULL);
    return s ? s : strdup("");
}

/* Run argv to its end (30 s at most): its exit status. */
static int run(const char *host, const char *tag, char *const argv[])
{
    return tu_wait_exit(spawn(host, tag, argv), 30000);
}

static void up(int i, const char *host)
{
    char run_dir[400];
    snprintf(run_dir, sizeof(run_dir), "%s/%s-run", F.dir, host);
    char *argv[] = { QFLEET, "up", F.cfg, "--count", "2", "--store", (char *)etcd_fx_store(F.fx),
                     "--host-id", (char *)host, "--mac-prefix", PREFIX, "--run-dir", run_dir,
                     "--no-ssh", NULL };
    F.up[i] = spawn(host, host, argv);
}

static json_t *registry(const char *host)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s-run/guests.json", F.dir, host);
    size_t n;
    char *s = fs_read_file(p, 1 << 22, &n);
    json_t *v = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    return v;
}

static int all_ready(const char *host, int n)
{
    json_t *reg = registry(host);
    const json_t *gs = json_get(reg, "guests");
    int ready = 0;
    for (size_t i = 0; i < json_len(gs); i++)
        ready += !strcmp(json_get_str(json_at(gs, i), "state"), "ready");
    json_free(reg);
    return ready == n;
}

static void wait_ready(int i, const char *host)
{
    double end = tu_now_ms() + 90000;
    while (!all_ready(host, 2) && tu_now_ms() < end && tu_alive(F.up[i]))
        etcd_fx_spin(F.fx, 100);
    char *err = slurp(host, "err");
    cr_assert(all_ready(host, 2), "%s: guests not ready:\n%s", host, err);
    free(err);
}

/* The MAC keys in etcd: n, with mac[k] and host[k]. */
static int etcd_macs(char mac[][32], char host[][64], int max)
{
    char **k, **v;
    int n = etcd_fx_range(F.fx, "/qfleet/lease/mac/", &k, &v);
    cr_assert_geq(n, 0, "etcd did not answer");
    cr_assert_leq(n, max);
    for (int i = 0; i < n; i++) {
        snprintf(mac[i], 32, "%s", k[i] + strlen("/qfleet/lease/mac/"));
        json_t *o = json_parse(v[i], strlen(v[i]), NULL, 0);
        snprintf(host[i], 64, "%s", o ? json_get_str(o, "host") : "");
        json_free(o);
    }
    etcd_fx_free_kv(k, v, n);
    return n;
}

static int etcd_count(const char *prefix)
{
    char **k, **v;
    int n = etcd_fx_range(F.fx, prefix, &k, &v);
    cr_assert_geq(n, 0, "etcd did not answer");
    etcd_fx_free_kv(k, v, n);
    return n;
}

/* qmpctl list --cluster --json: the array it printed. */
static json_t *list_cluster(void)
{
    char *argv[] = { QMPCTL, "list", "--cluster", "--store", (char *)etcd_fx_store(F.fx), "--json",
                     NULL };
    int rc = run("tool", "list", argv);
    char *out = slurp("list", "out"), *err = slurp("list", "err");
    cr_assert_eq(rc, 0, "qmpctl list --cluster: %d: %s", rc, err);
    json_t *v = json_parse(out, strlen(out), NULL, 0);
    cr_assert(v && json_typeof(v) == JSON_ARRAY, "not a JSON array: %s", out);
    free(out);
    free(err);
    return v;
}

static int listed(const json_t *arr, const char *host, const char *name, const char *mac)
{
    for (size_t i = 0; i < json_len(arr); i++) {
        const json_t *g = json_at(arr, i);
        if (!strcmp(json_get_str(g, "host"), host) && !strcmp(json_get_str(g, "name"), name) &&
            !strcmp(json_get_str(g, "state"), "ready") &&
            (!mac || !strcmp(json_str(json_at(json_get(g, "macs"), 0)), mac)))
            return 1;
    }
    return 0;
}

/* (a) Two hosts, the same MAC prefix, one etcd: 4 distinct MACs, each a key
 * in etcd with its host; `qmpctl list --cluster` shows the 4 guests with
 * their hosts; after `qfleet down` of one its keys and guests are gone. */
Test(qmpctl_cluster, two_hosts_one_prefix_distinct_macs_listed_with_hosts)
{
    /* One after the other: the simulated hosts share this machine's real
     * ports, and a port is seen taken only once a QEMU binds it. */
    up(0, "hostA");
    wait_ready(0, "hostA");
    up(1, "hostB");
    wait_ready(1, "hostB");
    char mac[8][32], host[8][64];
    int n = etcd_macs(mac, host, 8);
    cr_assert_eq(n, 4, "%d MAC keys in etcd", n);
    int na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        cr_assert(!strncmp(mac[i], PREFIX, strlen(PREFIX)), "%s", mac[i]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(mac[i], mac[j]);
        na += !strcmp(host[i], "hostA");
        nb += !strcmp(host[i], "hostB");
    }
    cr_assert_eq(na, 2);
    cr_assert_eq(nb, 2);
    /* Each guest's MAC in its registry is the one etcd has for its host.
     * Publishing trails guests.json by a round trip to etcd: list until
     * every guest shows ready (5 s at most). */
    const char *hosts[2] = { "hostA", "hostB" };
    json_t *arr = NULL;
    for (int t = 0; t < 50; t++) {
        json_free(arr);
        arr = list_cluster();
        int ready = 0;
        for (size_t i = 0; i < json_len(arr); i++)
            ready += !strcmp(json_get_str(json_at(arr, i), "state"), "ready");
        if (ready == 4)
            break;
        etcd_fx_spin(F.fx, 100);
    }
    cr_assert_eq(json_len(arr), 4, "%zu guests listed", json_len(arr));
    for (int h = 0; h < 2; h++) {
        json_t *reg = registry(hosts[h]);
        for (size_t i = 0; i < 2; i++) {
            const json_t *g = json_at(json_get(reg, "guests"), i);
            const char *m = json_str(json_at(json_get(g, "macs"), 0));
            int found = 0;
            for (int k = 0; k < n; k++)
                found |= !strcmp(mac[k], m) && !strcmp(host[k], hosts[h]);
            cr_assert(found, "%s of %s is not in etcd under its host", m, hosts[h]);
            cr_assert(listed(arr, hosts[h], json_get_str(g, "name"), m), "%s %s not listed",
                      hosts[h], json_get_str(g, "name"));
        }
        json_free(reg);
    }
    json_free(arr);
    /* The table: a HOST column, a row per guest. */
    char *targv[] = { QMPCTL, "list", "--cluster", "--store", (char *)etcd_fx_store(F.fx), NULL };
    cr_assert_eq(run("tool", "table", targv), 0);
    char *table = slurp("table", "out");
    cr_assert(!strncmp(table, "HOST", 4), "%s", table);
    int rows = 0;
    for (char *l = strchr(table, '\n'); l && l[1]; l = strchr(l + 1, '\n'))
        rows += !strncmp(l + 1, "hostA ", 6) || !strncmp(l + 1, "hostB ", 6);
    cr_assert_eq(rows, 4, "%s", table);
    free(table);

    char run_dir[400];
    snprintf(run_dir, sizeof(run_dir), "%s/hostA-run", F.dir);
    char *dargv[] = { QFLEET, "down", run_dir, NULL };
    cr_assert_eq(run("hostA", "down", dargv), 0);
    cr_assert_eq(tu_wait_exit(F.up[0], 30000), 0);
    n = etcd_macs(mac, host, 8);
    cr_assert_eq(n, 2, "%d MAC keys left", n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(host[i], "hostB");
    cr_assert_eq(etcd_count("/qfleet/guest/hostA/"), 0);
    cr_assert_eq(etcd_count("/qfleet/host/hostA"), 0);
    arr = list_cluster();
    cr_assert_eq(json_len(arr), 2);
    for (size_t i = 0; i < json_len(arr); i++)
        cr_assert_str_eq(json_get_str(json_at(arr, i), "host"), "hostB");
    json_free(arr);
    snprintf(run_dir, sizeof(run_dir), "%s/hostB-run", F.dir);
    cr_assert_eq(run("hostB", "down", dargv), 0);
    cr_assert_eq(tu_wait_exit(F.up[1], 30000), 0);
    cr_assert_eq(etcd_count("/qfleet/"), 0, "every key went with its controller");
}

/* A port nobody listens on (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* etcd unreachable at start: exit 3 (set-up), the endpoint named, nothing
 * launched, no run directory. */
Test(qmpctl_cluster_setup, unreachable_etcd_at_start_is_a_setup_error)
{
    char store[64], run_dir[400];
    snprintf(store, sizeof(store), "etcd://127.0.0.1:%d", dead_port());
    snprintf(run_dir, sizeof(run_dir), "%s/run", F.dir);
    char *argv[] = { QFLEET, "up", F.cfg, "--store", store, "--run-dir", run_dir, NULL };
    cr_assert_eq(run("h", "up", argv), 3);
    char *err = slurp("up", "err");
    cr_assert(strstr(err, store + strlen("etcd://")) && strstr(err, "unreachable"), "%s", err);
    free(err);
    cr_assert_neq(access(run_dir, F_OK), 0, "a run dir was made");
    char *largv[] = { QMPCTL, "list", "--cluster", "--store", store, NULL };
    cr_assert_eq(run("tool", "list", largv), 1);
    char *nargv[] = { QMPCTL, "list", "--cluster", NULL };
    cr_assert_eq(run("tool", "list", nargv), 2, "no store named: a usage error");
}

/* `qfleet run --store`: the suite's guest claims its MAC on etcd, and the
 * run's status.json and metrics.prom show the session (docs/status.md). */
Test(qmpctl_cluster, run_reports_the_cluster_in_status_and_metrics)
{
    char suite[400], status[400], run_dir[400];
    snprintf(suite, sizeof(suite), "%s/s.suite", F.dir);
    snprintf(status, sizeof(status), "%s/status", F.dir);
    snprintf(run_dir, sizeof(run_dir), "%s/run", F.dir);
    FILE *fp = fopen(suite, "w");
    cr_assert(fp);
    fprintf(fp, "[suite]\ncfg = cheap.cfg\nvms = vm0\n"
                "[case up]\nqmp vm0: query-status\n    expect status = running\n"
                "host: sleep 3\n"); /* long enough for keepalives (every TTL/3) */
    cr_assert_eq(fclose(fp), 0);
    char *argv[] = { QFLEET, "run", suite, "--store", (char *)etcd_fx_store(F.fx), "--host-id",
                     "hostR", "--status-dir", status, "--run-dir", run_dir, "--plain", NULL };
    int rc = run("hostR", "run", argv);
    char *err = slurp("run", "err");
    cr_assert_eq(rc, 0, "qfleet run: %d\n%s", rc, err);
    free(err);
    char p[500];
    snprintf(p, sizeof(p), "%s/status.json", status);
    size_t n;
    char *s = fs_read_file(p, 1 << 22, &n);
    json_t *doc = s ? json_parse(s, n, NULL, 0) : NULL;
    free(s);
    const json_t *cl = json_get(json_get(doc, "run"), "cluster");
    cr_assert(cl && json_typeof(cl) == JSON_OBJECT, "no run.cluster in status.json");
    cr_assert_str_eq(json_get_str(cl, "host_id"), "hostR");
    cr_assert_str_eq(json_get_str(cl, "state"), "live");
    cr_assert(strstr(json_get_str(cl, "endpoint"), etcd_fx_endpoint(F.fx, 0)), "%s",
              json_get_str(cl, "endpoint"));
    json_free(doc);
    snprintf(p, sizeof(p), "%s/metrics.prom", status);
    char *m = fs_read_file(p, 1 << 22, NULL);
    cr_assert(m);
    cr_assert(strstr(m, "qfleet_cluster_state{state=\"live\",host=\"hostR\""), "%s", m);
    cr_assert(strstr(m, "qfleet_cluster_state{state=\"lost\",host=\"hostR\""), "%s", m);
    const char *live = strstr(m, "qfleet_cluster_state{state=\"live\"");
    cr_assert(live && strstr(live, "} 1\n") == strchr(live, '}'), "live is not 1: %s", m);
    cr_assert(strstr(m, "qfleet_cluster_keepalive_seconds "), "%s", m);
    cr_assert(strstr(m, "qfleet_cluster_keepalive_max_seconds "), "%s", m);
    cr_assert(strstr(m, "qfleet_cluster_keepalives_total ") &&
              !strstr(m, "qfleet_cluster_keepalives_total 0\n"), "no keepalive counted: %s", m);
    cr_assert(!strstr(m, "qfleet_cluster_keepalive_seconds 0.000000\n"), "%s", m);
    cr_assert(strstr(m, "qfleet_cluster_keepalive_failures_total 0\n"), "%s", m);
    cr_assert(strstr(m, "qfleet_cluster_leases_held "), "%s", m);
    free(m);
    /* The suite's fleet wrote the session's state in its events.jsonl. */
    snprintf(p, sizeof(p), "%s/s/events.jsonl", run_dir);
    char *ev = fs_read_file(p, 1 << 22, NULL);
    cr_assert(ev && strstr(ev, "\"event\":\"cluster\",\"state\":\"live\",\"host\":\"hostR\""),
              "%s", ev ? ev : p);
    free(ev);
    cr_assert_eq(etcd_count("/qfleet/"), 0, "the run's keys went with it");
}
