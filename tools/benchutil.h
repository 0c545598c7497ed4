/* benchutil.h - what the benchmarks share: the clocks they report in, and
 * one fleet of test guests booted to settled on the default loop. */
#ifndef QF_BENCHUTIL_H
#define QF_BENCHUTIL_H

#include "base/proc.h"
#include "src/alloc/alloc.h"
#include "src/cluster/cluster.h"
#include "src/fleet/fleet.h"

double bench_now_ms(void); /* monotonic */
double bench_cpu_s(void);  /* this process's user + system CPU, children excluded */
long bench_rss_kb(void);   /* VmRSS now */
long bench_peak_kb(void);  /* peak RSS */

/* One fleet of n guests "vm0-1".."vm0-N" of VM vm0 of cfg. */
typedef struct bench_fleet {
    fleet_t *f;
    double t0, t_all; /* bench_now_ms at start; ms until every guest settled */
    double cpu_s;     /* the controller's CPU over the boot */
    int failed;       /* a guest failed on the way */
    int done;
} bench_fleet;

/* Boot them (fleet_opts.clone = clone; cluster: the MACs claimed on that
 * live session too, or NULL) and run the default loop until all are
 * settled. 0, or -1 with the reason on stderr. The guests stay up for the
 * caller to read (b->f) until bench_fleet_stop. */
int bench_fleet_boot(bench_fleet *b, const char *cfg, const char *state_dir, int n, int clone,
                     cluster_t *cluster);
/* Stop every guest and free the fleet, on the default loop. */
void bench_fleet_stop(bench_fleet *b);

/* Worker id of a forked bench: the store in dir and its owner "bench/wID"
 * (this process), or _exit(1) with the reason on stderr. */
alloc_store *bench_worker_store(const char *dir, int id, alloc_owner *o);

/* A cluster session on loop that went live (or lost: s->lost). */
typedef struct bench_sess {
    cluster_t *c;
    int live, lost, done, result, closed;
} bench_sess;
void bench_sess_open(uv_loop_t *loop, const char *store, const char *host, bench_sess *s);
void bench_sess_close(uv_loop_t *loop, bench_sess *s);
/* A cluster_cb: result into the bench_sess data, done set. */
void bench_sess_done(cluster_t *c, int result, void *data);
void bench_run_until(uv_loop_t *loop, const int *flag);

/* A private etcd on free loopback ports, data in a temporary dir, for one
 * run: bench_etcd_up (0, or -errno with the reason on stderr; call
 * bench_etcd_down either way), then e->store is "etcd://127.0.0.1:PORT". */
typedef struct bench_etcd {
    uv_loop_t loop;
    proc_t *p;
    int exited;
    char dir[256], store[64];
} bench_etcd;
int bench_etcd_up(bench_etcd *e);
void bench_etcd_down(bench_etcd *e);

#endif
