/* benchutil.c - see benchutil.h. */
#include "tools/benchutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/proc.h"
#include "cfg/vm.h"

double bench_now_ms(void) { return (double)uv_hrtime() / 1e6; }

double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long bench_rss_kb(void)
{
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

long bench_peak_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void on_event(fleet_t *f, fguest_t *g, fleet_state s, void *data)
{
    bench_fleet *b = data;
    if (s == GS_FAILED && !b->t_all) {
        fprintf(stderr, "bench: %s failed: %s\n", fguest_name(g), fguest_reason(g));
        b->failed = 1;
    }
    if (!b->t_all && fleet_settled(f))
        b->t_all = bench_now_ms() - b->t0;
}

int bench_fleet_boot(bench_fleet *b, const char *cfg, const char *state_dir, int n, int clone,
                     cluster_t *cluster)
{
    *b = (bench_fleet){ 0 };
    uv_loop_t *loop = uv_default_loop();
    fleet_opts o = { .state_dir = state_dir, .cfg_path = cfg, .clone = clone, .cluster = cluster };
    char err[1024];
    if (fleet_new(loop, &o, on_event, b, &b->f, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    for (int i = 1; i <= n; i++) {
        struct cfg_vm *vm;
        char name[32];
        snprintf(name, sizeof(name), "vm0-%d", i);
        if (cfg_vm_load(cfg, "vm0", NULL, &vm, err, sizeof(err)) < 0 ||
            fleet_add(b->f, vm, name, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
    }
    double cpu0 = bench_cpu_s();
    b->t0 = bench_now_ms();
    fleet_start(b->f);
    while (!b->t_all)
        uv_run(loop, UV_RUN_ONCE);
    b->cpu_s = bench_cpu_s() - cpu0;
    return 0;
}

static void on_stopped(fleet_t *f, void *data)
{
    fleet_free(f, NULL, NULL);
    ((bench_fleet *)data)->done = 1;
}

void bench_fleet_stop(bench_fleet *b)
{
    fleet_stop_all(b->f, on_stopped, b);
    while (!b->done)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    b->f = NULL;
}

alloc_store *bench_worker_store(const char *dir, int id, alloc_owner *o)
{
    char err[512], name[64];
    alloc_store *s;
    snprintf(name, sizeof(name), "bench/w%d", id);
    if (alloc_store_open(&s, dir, NULL, err, sizeof(err)) ||
        alloc_owner_init(o, name, getpid(), err, sizeof(err))) {
        fprintf(stderr, "bench: %s\n", err);
        _exit(1);
    }
    return s;
}

/* --- etcd sessions and a private etcd ------------------------------------ */

static void w_state(cluster_t *c, cluster_state s, const char *why, void *data)
{
    bench_sess *w = data;
    w->live |= s == CLUSTER_LIVE;
    w->lost |= s == CLUSTER_LOST;
}

void bench_sess_done(cluster_t *c, int result, void *data)
{
    bench_sess *w = data;
    w->result = result;
    w->done = 1;
}

static void w_closed(cluster_t *c, int result, void *data)
{
    ((bench_sess *)data)->closed = 1;
}

void bench_run_until(uv_loop_t *loop, const int *flag)
{
    while (!*flag)
        uv_run(loop, UV_RUN_ONCE);
}

/* A session on store that went live (or lost: w.lost). */
void bench_sess_open(uv_loop_t *loop, const char *store, const char *host, bench_sess *w)
{
    char err[CLUSTER_ERR_MAX];
    cluster_opts o = { .store = store, .host_id = host };
    memset(w, 0, sizeof(*w));
    if (cluster_open(loop, &o, w_state, NULL, w, &w->c, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        w->lost = 1;
        return;
    }
    while (!w->live && !w->lost)
        uv_run(loop, UV_RUN_ONCE);
}

void bench_sess_close(uv_loop_t *loop, bench_sess *w)
{
    cluster_close(w->c, w_closed, w);
    bench_run_until(loop, &w->closed);
}

static int free_port(void)
{
    for (int t = 0; t < 1000; t++) {
        int port = 12000 + (int)(random() % 20000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path) < 0 ? -1 : 0;
}

static void etcd_exited(proc_t *p, int status, int sig, void *data)
{
    *(int *)data = 1;
}

int bench_etcd_up(bench_etcd *e)
{
    char data[300], log[300], client[64], peer[64], cluster[96], err[512];
    const char *t = getenv("TMPDIR");
    snprintf(e->dir, sizeof(e->dir), "%s/qf-bench-etcd-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(e->dir))
        return -errno;
    srandom((unsigned)getpid());
    int cp = free_port(), pp = free_port();
    snprintf(data, sizeof(data), "%s/data", e->dir);
    snprintf(log, sizeof(log), "%s/etcd.log", e->dir);
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", cp);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", pp);
    snprintf(cluster, sizeof(cluster), "default=%s", peer);
    snprintf(e->store, sizeof(e->store), "etcd://127.0.0.1:%d", cp);
    char *argv[] = { "etcd", "--data-dir", data, "--listen-client-urls", client,
                     "--advertise-client-urls", client, "--listen-peer-urls", peer,
                     "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, NULL };
    proc_opts o = { .argv = argv, .log_path = log };
    uv_loop_init(&e->loop);
    if (proc_start(&e->loop, &o, etcd_exited, &e->exited, &e->p, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: etcd: %s\n", err);
        return -ENOENT;
    }
    for (int i = 0; i < 50 && !e->exited; i++) { /* 10 s */
        bench_sess w;
        bench_sess_open(&e->loop, e->store, "bench-probe", &w);
        int live = w.live;
        if (w.c)
            bench_sess_close(&e->loop, &w);
        if (live)
            return 0;
        usleep(200000);
    }
    fprintf(stderr, "bench: etcd did not come up; see %s\n", log);
    return -ETIMEDOUT;
}

void bench_etcd_down(bench_etcd *e)
{
    if (e->p) {
        proc_kill(e->p, SIGTERM);
        bench_run_until(&e->loop, &e->exited);
        proc_close(e->p, NULL, NULL);
        uv_run(&e->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&e->loop);
    nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
