/* runner.h - `qfleet run`: suites in parallel on one loop.
 *
 * Each suite gets its own fleet (run dir RUN_DIR/SUITE) and is admitted
 * whole when its guests fit the limits (sched.h). Its cases run in order;
 * with setup = all they share one generation of guests, with setup = each
 * every case boots a fresh one. A generation a guest of which fails or is
 * stopped from outside is an infrastructure error: the case is retried on
 * a fresh generation up to --retries times, then reported as error. A
 * failed expectation is a failure and never retried. VFs of the cfg's
 * vf_pools are a resource like memory: a suite waits for them (sched.h).
 *
 *   runner_t *r;
 *   runner_new(loop, &opts, &r, err, sizeof(err));
 *   runner_add(r, suite, ...);            (the runner owns the suite)
 *   runner_start(r, done, data);  uv_run(loop);
 *   code = runner_exit_code(r);  runner_free(r); */
#ifndef QF_RUNNER_H
#define QF_RUNNER_H

#include <stddef.h>
#include <uv.h>

struct suite;
struct st_run;
struct alloc_nl;
struct cluster;

typedef struct runner_opts {
    const char *state_dir;     /* NULL: the host default */
    const char *run_dir;       /* NULL: STATE/runs/RUN */
    const char *status_dir;    /* NULL: the run dir */
    const char *junit_path;    /* NULL: STATUS_DIR/junit.xml */
    int jobs;                  /* guests at once; 0: none */
    long long mem_budget_mb;   /* 0: MemAvailable */
    int retries;               /* infra retries per case */
    int boot_timeout_s;        /* 0: the suite's, else the cfg's */
    int shard_k, shard_n;      /* for the record; 0/0: no sharding */
    int tty, quiet;
    const char *mac_prefix;    /* every VM's mac_prefix (--mac-prefix); NULL: the cfg's */
    /* SR-IOV: where the VF pools' PFs and VFs are and how VF MACs are set,
     * as fleet_opts; NULL: /sys and the kernel. Tests point them at a fake
     * sysfs and a netlink recorder. Must outlive the runner. */
    const char *sysfs_root;
    const struct alloc_nl *vf_nl;
    struct cluster *cluster;   /* cluster-wide leases (fleet.h), kept by pointer; NULL: none */
    unsigned cluster_wide;     /* FLEET_CW_* for every suite's fleet */
} runner_opts;

typedef struct runner runner_t;
typedef void (*runner_done_cb)(runner_t *r, void *data);

int runner_new(uv_loop_t *loop, const runner_opts *o, runner_t **out, char *err, size_t errlen);
/* Add a suite (resolved); its name must be unique in the run. */
int runner_add(runner_t *r, struct suite *def, char *err, size_t errlen);
/* Fail the suites that can never fit, then admit what fits; cb once every
 * suite is done, every guest stopped and every file written. */
void runner_start(runner_t *r, runner_done_cb cb, void *data);
/* Stop: running cases end as error, the rest are skipped. */
void runner_interrupt(runner_t *r, const char *why);
/* 2 a suite can never fit, else 1 any failure, else 3 any error, else 0. */
int runner_exit_code(const runner_t *r);
struct st_run *runner_status(runner_t *r);
/* After the loop has run dry. */
void runner_free(runner_t *r);
/* The cluster session's news (the caller forwards its callbacks): an
 * event in events.jsonl, status.json's "cluster", and every live suite's
 * fleet told (fleet_cluster_state, fleet_cluster_conflict). */
void runner_cluster_state(runner_t *r, int state, const char *why);
void runner_cluster_conflict(runner_t *r, const char *kind, const char *value, const char *owner,
                             const char *holder);

#endif
