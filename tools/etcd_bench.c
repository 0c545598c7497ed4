/* etcd_bench.c - `tools/bench alloc --etcd`: MAC allocations through etcd
 * (one cluster session per process, one claim in flight, so each latency
 * is one create-if-absent round trip) beside the same allocations on the
 * local store, with each process count, in one run. Latencies go to shared
 * memory; p50 and p99 are over every allocation of every process. */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/proc.h"
#include "base/time.h"
#include "src/alloc/alloc.h"
#include "src/cluster/cluster.h"
#include "tools/benchutil.h"
#include "tools/etcd_bench.h"

#define LAT_MAX 200000 /* per process */
#define PREFIX "02:be:"

typedef struct eres {
    const char *store;
    int procs;
    long n;
    double secs, p50, p99;
} eres;

static void etcd_worker(const char *store, int id, double until, double *lat, long *n)
{
    uv_loop_t loop;
    char host[32], owner[64], mac[18];
    bench_sess w;
    uv_loop_init(&loop);
    snprintf(host, sizeof(host), "bench%d", id);
    bench_sess_open(&loop, store, host, &w);
    if (!w.live)
        _exit(1);
    long k = 0;
    while (k < LAT_MAX && time_mono_ms() < until) {
        snprintf(owner, sizeof(owner), "bench/w%d/nic%ld", id, k);
        double t0 = time_mono_ms();
        w.done = 0;
        if (cluster_claim_mac(w.c, PREFIX, owner, mac, bench_sess_done, &w) < 0)
            _exit(1);
        bench_run_until(&loop, &w.done);
        if (w.result < 0) {
            fprintf(stderr, "bench_alloc: etcd worker %d: %s\n", id, cluster_error(w.c));
            _exit(1);
        }
        lat[k++] = time_mono_ms() - t0;
    }
    *n = k;
    bench_sess_close(&loop, &w); /* revokes: the next measurement starts empty */
    _exit(0);
}

static void local_worker(const char *dir, int id, double until, double *lat, long *n)
{
    char err[512], mac[MAC_STRLEN];
    alloc_owner o;
    alloc_store *s = bench_worker_store(dir, id, &o);
    long k = 0;
    while (k < LAT_MAX && k < 9999 && time_mono_ms() < until) {
        double t0 = time_mono_ms();
        if (alloc_mac(s, &o, (int)k, PREFIX, 0, mac, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench_alloc: local worker %d: %s\n", id, err);
            _exit(1);
        }
        lat[k++] = time_mono_ms() - t0;
    }
    *n = k;
    alloc_release_owner(s, o.name, err, sizeof(err));
    alloc_store_close(s);
    _exit(0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One measurement: procs workers on store (NULL: the local store in dir). */
static int measure(const char *store, const char *dir, int procs, double secs, eres *r)
{
    size_t bytes = sizeof(double) * LAT_MAX * (size_t)procs + sizeof(long) * (size_t)procs;
    double *lat = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (lat == MAP_FAILED)
        return -errno;
    long *counts = (long *)(lat + (size_t)LAT_MAX * (size_t)procs);
    double t0 = time_mono_ms(), until = t0 + secs * 1e3;
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0) {
            double *mine = lat + (size_t)LAT_MAX * (size_t)i;
            if (store)
                etcd_worker(store, i, until, mine, &counts[i]);
            local_worker(dir, i, until, mine, &counts[i]);
        }
    }
    int failed = 0, st;
    for (int i = 0; i < procs; i++)
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            failed = 1;
    *r = (eres){ .store = store ? "etcd" : "local", .procs = procs, .secs = secs };
    double *all = malloc(sizeof(double) * LAT_MAX * (size_t)procs);
    for (int i = 0; all && i < procs; i++) {
        memcpy(all + r->n, lat + (size_t)LAT_MAX * (size_t)i, sizeof(double) * (size_t)counts[i]);
        r->n += counts[i];
    }
    if (all && r->n > 0) {
        qsort(all, (size_t)r->n, sizeof(double), cmp_double);
        r->p50 = all[r->n / 2];
        r->p99 = all[(size_t)((double)r->n * 0.99)];
    }
    free(all);
    munmap(lat, bytes);
    return failed || r->n == 0 ? -EIO : 0;
}

/* --- the run ------------------------------------------------------------- */

static void print(const eres *r, int nr, const char *store, int json)
{
    if (!json) {
        printf("MAC allocations (one in flight per process; etcd: %s)\n", store);
        printf("%-6s %6s %8s %8s %10s %8s %8s\n", "store", "procs", "allocs", "seconds",
               "allocs/s", "p50 ms", "p99 ms");
        for (int i = 0; i < nr; i++)
            printf("%-6s %6d %8ld %8.2f %10.0f %8.2f %8.2f\n", r[i].store, r[i].procs, r[i].n,
                   r[i].secs, r[i].n / r[i].secs, r[i].p50, r[i].p99);
        return;
    }
    json_t *o = json_object(), *arr = json_array();
    for (int i = 0; o && arr && i < nr; i++) {
        json_t *x = json_object();
        json_set_str(x, "store", r[i].store);
        json_set_int(x, "procs", r[i].procs);
        json_set_int(x, "allocs", r[i].n);
        json_set(x, "allocs_per_s", json_double(r[i].n / r[i].secs));
        json_set(x, "p50_ms", json_double(r[i].p50));
        json_set(x, "p99_ms", json_double(r[i].p99));
        json_append(arr, x);
    }
    json_set(o, "results", arr);
    char *text = json_dump_pretty(o, NULL);
    printf("%s\n", text ? text : "null");
    free(text);
    json_free(o);
}

int etcd_bench(const char *store, const char *dir, const int *procs, int np, double secs,
               int json)
{
    bench_etcd e = {0};
    char parsed[256], err[256];
    if (store && cluster_store_parse(store, parsed, sizeof(parsed), err, sizeof(err)) != 1) {
        fprintf(stderr, "bench_alloc: --store: %s\n", store ? err : "");
        return 2;
    }
    if (!store) {
        if (bench_etcd_up(&e) < 0) {
            bench_etcd_down(&e);
            return 3;
        }
        store = e.store;
    }
    eres r[32];
    int nr = 0, rc = 0;
    for (int i = 0; i < np && nr < 30 && rc == 0; i++) {
        if ((rc = measure(NULL, dir, procs[i], secs, &r[nr])) == 0)
            nr++;
        if (rc == 0 && (rc = measure(store, dir, procs[i], secs, &r[nr])) == 0)
            nr++;
    }
    int private = e.p != NULL;
    if (private)
        bench_etcd_down(&e);
    if (rc < 0) {
        fprintf(stderr, "bench_alloc: a worker failed\n");
        return 1;
    }
    print(r, nr, private ? "private, started for the run" : store, json);
    return 0;
}
