/* bench_alloc.c - lease store throughput: take+release cycles per second
 * with 1 and 8 processes on one state dir (`tools/bench alloc`).
 *
 *   single  one lease taken, then released: two locked table rewrites
 *   vm      a guest's set in one batch (MAC, VNC display and its port, a
 *           forwarded port), then released by owner: also two rewrites
 *   synced  as single, but a hold lease sits in the table, so every
 *           rewrite is fdatasync'd (see alloc_store.c for why only then)
 *
 * On a disk the figures are mostly rename and sync latency; --state-dir on
 * tmpfs shows the CPU cost alone.
 *
 * --etcd (start a private etcd) or --store etcd://H:P: MAC allocations per
 * second and their p50/p99 latency through etcd (src/cluster: one claim in
 * flight per process, each a create-if-absent transaction), beside the same
 * allocations on the local store, with 1 and 8 processes, in one run
 * (etcd_bench.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "src/alloc/alloc.h"
#include "tools/benchutil.h"
#include "tools/etcd_bench.h"

typedef struct result {
    const char *scenario;
    int procs;
    long cycles;
    double secs;
} result;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_alloc [--seconds S] [--procs N,N..] [--state-dir DIR] [--json]\n"
               "                   [--etcd | --store etcd://H:P[,H:P..]]\n"
               "Lease take+release cycles per second, per scenario and process count.\n"
               "  --etcd           instead: MAC allocations/s and p50/p99 latency through a\n"
               "                   private etcd started for the run, beside the local store\n"
               "  --store S        the same through the etcd cluster S\n"
               "  --seconds S      run each measurement S seconds (default 3)\n"
               "  --procs LIST     process counts (default 1,8)\n"
               "  --state-dir DIR  store to use (default: a fresh dir under $TMPDIR or /tmp)\n"
               "  --json           one JSON object instead of the table\n");
}

/* One worker process: cycles until the deadline, count into *out. */
static void worker(const char *dir, const char *scenario, int id, double until, long *out)
{
    char err[512], value[32];
    alloc_owner o;
    alloc_store *s = bench_worker_store(dir, id, &o);
    long n = 0;
    int rc = 0;
    while (rc >= 0 && now_s() < until) {
        if (strcmp(scenario, "vm")) {
            snprintf(value, sizeof(value), "%d", id);
            rc = alloc_take(s, &o, "bench", value, 0, NULL, err, sizeof(err));
            if (rc == 0)
                rc = alloc_release(s, o.name, "bench", value, err, sizeof(err));
        } else {
            char mac[MAC_STRLEN];
            int d, p;
            rc = alloc_begin(s, err, sizeof(err));
            if (rc == 0)
                rc = alloc_mac(s, &o, 0, "02:be:", 0, mac, err, sizeof(err));
            if (rc == 0)
                rc = alloc_vnc(s, &o, 0, &d, err, sizeof(err));
            if (rc == 0)
                rc = alloc_port(s, &o, ALLOC_SSH_PORTS_FIRST, ALLOC_SSH_PORTS_LAST, &p, err,
                                sizeof(err));
            if (rc == 0)
                rc = alloc_commit(s, err, sizeof(err));
            else
                alloc_abort(s);
            if (rc == 0)
                rc = alloc_release_owner(s, o.name, err, sizeof(err));
        }
        n++;
    }
    alloc_store_close(s);
    if (rc < 0) {
        fprintf(stderr, "bench_alloc: worker %d: %s\n", id, err);
        _exit(1);
    }
    *out = n;
    _exit(0);
}

/* The synced scenario's hold lease, taken before and freed after. */
static int hold_lease(const char *dir, int take)
{
    char err[512];
    alloc_store *s;
    alloc_owner o;
    int rc = alloc_store_open(&s, dir, NULL, err, sizeof(err));
    if (rc < 0)
        return rc;
    if (take)
        rc = alloc_owner_init(&o, "bench/hold", 0, err, sizeof(err)) ||
             alloc_take(s, &o, "bench", "hold", 0, NULL, err, sizeof(err));
    else
        rc = alloc_release_owner(s, "bench/hold", err, sizeof(err)) < 0;
    alloc_store_close(s);
    if (rc)
        fprintf(stderr, "bench_alloc: %s\n", err);
    return rc ? -EIO : 0;
}

static int measure(const char *dir, const char *scenario, int procs, double secs, result *r)
{
    if (!strcmp(scenario, "synced") && hold_lease(dir, 1) < 0)
        return -EIO;
    long *counts = mmap(NULL, sizeof(long) * (size_t)procs, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        return -errno;
    double t0 = now_s(), until = t0 + secs;
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0)
            worker(dir, scenario, i, until, &counts[i]);
    }
    int failed = 0, st;
    for (int i = 0; i < procs; i++)
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            failed = 1;
    r->scenario = scenario;
    r->procs = procs;
    r->secs = now_s() - t0;
    r->cycles = 0;
    for (int i = 0; i < procs; i++)
        r->cycles += counts[i];
    if (r->cycles == 0)
        failed = 1; /* nothing measured: no rate to print */
    munmap(counts, sizeof(long) * (size_t)procs);
    if (!strcmp(scenario, "synced") && hold_lease(dir, 0) < 0)
        failed = 1;
    return failed ? -EIO : 0;
}

/* The temporary state dir of the run, when it made one. */
static void rmdir_tmp(const char *dir)
{
    if (!dir)
        return;
    char path[600];
    const char *files[] = { "leases.json", "leases.lock", "leases.tmp" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    double secs = 3;
    const char *dir = NULL, *procs_list = "1,8", *store = NULL;
    int json = 0, etcd = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--procs") && i + 1 < argc) {
            procs_list = argv[++i];
        } else if (!strcmp(argv[i], "--state-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--etcd")) {
            etcd = 1;
        } else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (secs <= 0) {
        usage(stderr);
        return 2;
    }
    char tmpl[512];
    if (!dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof(tmpl), "%s/qf-bench-alloc-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("bench_alloc: mkdtemp");
            return 1;
        }
        dir = tmpl;
    }
    int procs[16], np = 0;
    for (const char *p = procs_list; *p && np < 16;) {
        procs[np] = atoi(p);
        if (procs[np] < 1 || procs[np] > 256) {
            usage(stderr);
            return 2;
        }
        np++;
        p += strcspn(p, ",");
        p += *p == ',';
    }
    if (etcd || store) {
        int erc = etcd_bench(store, dir, procs, np, secs, json);
        rmdir_tmp(dir == tmpl ? dir : NULL);
        return erc;
    }
    static const char *scen[] = { "single", "vm", "synced" };
    result res[3 * 16];
    int nr = 0, rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++)
        for (int i = 0; i < np && rc == 0; i++)
            if ((rc = measure(dir, scen[s], procs[i], secs, &res[nr])) == 0)
                nr++;
    rmdir_tmp(dir == tmpl ? dir : NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_alloc: a worker failed\n");
        return 1;
    }
    if (json) {
        json_t *o = json_object(), *arr = json_array();
        json_set_str(o, "state_dir", dir == tmpl ? "(temporary)" : dir);
        for (int i = 0; i < nr; i++) {
            json_t *r = json_object();
            json_set_str(r, "scenario", res[i].scenario);
            json_set_int(r, "procs", res[i].procs);
            json_set_int(r, "cycles", res[i].cycles);
            json_set_int(r, "ms", (long long)(res[i].secs * 1e3));
            json_set_int(r, "cycles_per_s", (long long)(res[i].cycles / res[i].secs));
            json_set_int(r, "us_per_cycle", (long long)(res[i].secs * 1e6 / res[i].cycles));
            json_append(arr, r);
        }
        json_set(o, "results", arr);
        char *text = json_dump_pretty(o, NULL);
        printf("%s\n", text ? text : "null");
        free(text);
        json_free(o);
        return 0;
    }
    printf("lease take+release cycles (each: 2 locked table rewrites)\n");
    /* us/cycle is 1/rate over all processes; each process waits procs
     * times as long for its own cycle. */
    printf("%-8s %6s %10s %8s %12s %10s\n", "scenario", "procs", "cycles", "seconds", "cycles/s",
           "us/cycle");
    for (int i = 0; i < nr; i++)
        printf("%-8s %6d %10ld %8.2f %12.0f %10.0f\n", res[i].scenario, res[i].procs, res[i].cycles,
               res[i].secs, res[i].cycles / res[i].secs, res[i].secs * 1e6 / res[i].cycles);
    return 0;
}
