/* status.h - what `qfleet run` reports (docs/status.md): the run model the
 * runner fills, and the publisher that writes it for dashboards and people.
 *
 *   status.json   the whole model, rewritten atomically after every change
 *                 (before the loop next waits; the changes made since it
 *                 last waited make one rewrite)
 *   events.jsonl  every state change of the run, suites, cases, steps and
 *                 guests, one JSON object a line, append-only
 *   metrics.prom  Prometheus text format, rewritten with status.json
 *   junit.xml     (junit.c) rewritten whenever a case ends
 *   report.html   (report.c) one self-contained page made from the three
 *                 files above, for people: at the end of a run, or any
 *                 time later with `qfleet report`
 *   the terminal  a live table redrawn in place (at most 4 times a second)
 *                 on a TTY, else one plain line per suite and case event
 *
 * The model (st_run and what hangs off it) is plain data the caller owns
 * and fills; status_t, the publisher, is opaque: status_open creates it on
 * a model that must outlive it, status_close frees it asynchronously (its
 * callback runs exactly once, after the last handle closed).
 *
 * Everything shown goes through the suite's password mask first (runner);
 * nothing here ever sees a password. */
#ifndef QF_STATUS_H
#define QF_STATUS_H

#include <limits.h>
#include <stddef.h>
#include <uv.h>

#include "base/json.h"
#include "src/cluster/cluster.h"

#define STATUS_VERSION 1

typedef enum st_result {
    RES_PENDING,
    RES_RUNNING,
    RES_PASSED,
    RES_FAILED,   /* an expectation did not hold: the thing under test */
    RES_ERROR,    /* infrastructure: QEMU died, boot timed out, ... */
    RES_SKIPPED,  /* not run (interrupted, or the suite gave up) */
    RES_COUNT
} st_result;

const char *st_result_name(st_result r);

/* A suite's life (the runner drives it, in this order; waiting only
 * between queued and booting, stopping -> booting for a new generation). */
typedef enum st_suite_state {
    SS_QUEUED,    /* not admitted yet */
    SS_WAITING,   /* not admitted: does not fit now (reason says why) */
    SS_BOOTING,   /* a generation of guests is starting */
    SS_RUNNING,   /* cases run */
    SS_STOPPING,  /* the generation's sessions and guests stop */
    SS_DONE,      /* finished; result is final */
    SS_COUNT
} st_suite_state;

const char *st_suite_state_name(st_suite_state s);

typedef enum st_run_state {
    RUN_RUNNING,
    RUN_FINISHED,
    RUN_INTERRUPTED,
    RUN_STATE_COUNT
} st_run_state;

const char *st_run_state_name(st_run_state s);

/* One executed step of a case (its last attempt). */
typedef struct st_step {
    char *source;       /* "run vm0-1: uname -r" */
    int line;
    st_result result;
    double elapsed_ms;
    char *message;      /* why it failed, or NULL */
} st_step;

typedef struct st_case {
    const char *name;
    st_result result;
    int attempts;              /* times it started (retries after infra errors) */
    long long started_ms, finished_ms;   /* epoch ms; 0 not yet */
    char *message;             /* one line: why failed/error/skipped */
    char *detail;              /* the failing step's report, or NULL */
    char *log;                 /* every step's report: junit system-out */
    size_t log_len, log_cap;
    st_step *steps;
    int nsteps, steps_cap;
} st_case;

typedef struct st_guest {
    const char *name;          /* logical: "vm0-1" */
    char instance[96];         /* current instance in its fleet, "" before the first */
    int boots;                 /* instances started so far */
    json_t *snap;              /* fguest_json of the current instance, or NULL:
                                * taken at every fleet event, and by the
                                * runner's refresh when only its reason
                                * changed (a queued guest waiting) */
} st_guest;

typedef struct st_suite {
    const char *name, *file;
    char run_dir[PATH_MAX];    /* the suite's fleet run dir */
    int setup_each;            /* setup = each or clone: fresh guests per case */
    int setup_clone;           /* setup = clone (setup_each is set too) */
    st_suite_state state;
    st_result result;
    char *reason;              /* waiting for / why error */
    long long started_ms, finished_ms;
    int current;               /* index of the running case, -1 */
    st_case *cases;
    int ncases;
    st_guest *guests;
    int nguests;
    int retries_used;
    st_case tear_down_all;     /* its steps' reports (junit: the suite's system-out);
                                * result RES_PENDING until it ran */
} st_suite;

/* Per-phase boot histograms: one per fleet state a boot passes through
 * (allocating .. ssh-ready), buckets ST_PHASE_LE (seconds, model.c). */
#define ST_PHASES 20
#define ST_PHASE_BUCKETS 12
extern const double ST_PHASE_LE[ST_PHASE_BUCKETS];

typedef struct st_run {
    char id[64];
    char run_dir[PATH_MAX];
    char status_dir[PATH_MAX];
    char junit_path[PATH_MAX];
    st_run_state state;
    long long started_ms, finished_ms;
    int exit_code;             /* -1 while running */
    int jobs, retries, shard_k, shard_n;
    long long mem_budget_mb;
    int guests_in_use;         /* reserved by admitted suites */
    long long mem_in_use_mb;
    st_suite **suites;
    int nsuites;
    double *boot_s;            /* allocating -> ready of every guest that got there */
    int nboot, boot_cap;
    /* Time spent in each phase (index: fleet state) by every instance that
     * got to ready: count, sum of seconds, and cumulative bucket counts. */
    int phase_n[ST_PHASES];
    double phase_sum[ST_PHASES];
    int phase_le[ST_PHASES][ST_PHASE_BUCKETS];
    /* --metrics-textfile: also write metrics.prom as DIR/qfleet.prom ("": no) */
    char metrics_textfile[PATH_MAX];
    /* Cluster-wide leases: the session (the caller sets it and the store's
     * endpoints; NULL: host-local leases only). The publisher copies its
     * figures into cl_stats and cl_host before every rewrite. */
    cluster_t *cluster;
    char cluster_store[512];
    cluster_stats cl_stats;
    char cl_host[CLUSTER_HOST_MAX];
    /* What changes without the owner being told (a queued guest's reason
     * while it waits for the cluster session, fleet.h): the publisher calls
     * refresh (NULL: none) once per loop turn, before it decides whether to
     * rewrite, and rewrites when it returns 1 (the model changed). It only
     * copies into the model; no decision is taken there. */
    int (*refresh)(struct st_run *m, void *data);
    void *refresh_data;
} st_run;

/* The publisher of one run model. */
typedef struct status status_t;
typedef void (*status_close_cb)(status_t *st, void *data);

/* Open events.jsonl in model->status_dir and start flushing model on loop.
 * tty: draw the live table on stderr; quiet: neither table nor plain lines.
 * model must outlive the publisher. 0 or -errno (err says why). */
int status_open(st_run *model, uv_loop_t *loop, int tty, int quiet, status_t **out, char *err,
                size_t errlen);
/* Append one event: ts_ms, run and kind are added; ev is consumed. */
void status_event(status_t *st, const char *kind, json_t *ev);
/* Something in the model changed: status.json and metrics.prom follow at
 * the end of this loop turn, junit.xml too when junit is set. */
void status_changed(status_t *st, int junit);
/* A line for people: above the live table, or on stderr. */
void status_say(status_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write everything now (the final state). */
void status_flush(status_t *st);
/* Stop the handles and free st; cb (may be NULL) once, when they closed. */
void status_close(status_t *st, status_close_cb cb, void *data);

/* model.c: names, counts and the model's own memory. */
/* Counts of cases by result over the run. */
void status_case_counts(const st_run *r, int counts[RES_COUNT]);
/* Record a boot time. */
void status_boot_time(st_run *r, double seconds);
/* Record the phases of a boot that got to ready from its timings_ms (ms
 * from the start of allocating to each state reached, as fguest_json
 * writes them). status_event does it for every guest event "ready". */
void status_boot_phases(st_run *r, const json_t *timings_ms);
/* Append text to a case's log (system-out); the log is capped. */
void st_case_log(st_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_case_reset(st_case *c);    /* drop steps, log, message: a new attempt */
void st_suite_free(st_suite *s);   /* what the st_* fields own */

/* The suite's setup mode as status.json and junit.xml name it: "all",
 * "each" or "clone". */
const char *st_setup_name(const st_suite *s);

/* Renderings of a model (pure: they read it and touch nothing). */
/* The status.json document (status.c). */
json_t *status_json(const st_run *r);
/* The live table's text for a terminal width (status.c). */
char *status_table(const st_run *r, int width);
/* junit.c */
char *junit_render(const st_run *r);
int junit_write(const st_run *r, const char *path, char *err, size_t errlen);
/* metrics.c */
char *metrics_render(const st_run *r);

/* report.c: report.html of the status dir's status.json, events.jsonl and
 * junit.xml (the files, not a model: it works for a finished run). Pure
 * reading; the caller frees. NULL with err set when status.json is missing
 * or unreadable (events and junit are optional). */
char *status_report_render(const char *status_dir, char *err, size_t errlen);
/* Render and write it atomically to out_path (NULL: STATUS_DIR/report.html).
 * 0 or -errno. `qfleet run` calls it once its final status is written. */
int status_report_write(const char *status_dir, const char *out_path, char *err, size_t errlen);

/* check.c: doc against the documented schema (required members,
 * types, enum values, counts). 0, or -EINVAL naming the first problem. */
int status_check(const json_t *doc, char *err, size_t errlen);

#endif
