/* suite_int.h - what runner.c (suites, generations of guests, cases) and
 * suite_step.c (one step: host, guest, QMP, agent, copy, sleep) share.
 * Not for other modules. */
#ifndef QF_SUITE_INT_H
#define QF_SUITE_INT_H

#include <uv.h>

#include "cfg/suite.h"
#include "guest/session.h"
#include "base/json.h"
#include "src/ctl/control.h"
#include "src/fleet/fleet.h"
#include "src/run/runner.h"
#include "src/run/sched.h"
#include "src/status/status.h"

#define STEP_OUTPUT_MAX (1u << 20)  /* bytes kept per stream of a step */
#define STEP_GRACE_MS 1500          /* a lost channel waits this long for news of its guest */

/* A logical guest ("vm0-1") and its current instance. */
struct rguest {
    fguest_t *g;                 /* current instance, NULL before the first */
    guest_session_t *ssh, *ag;   /* opened by the first step that needs them */
    int ready_seen;              /* this instance reached ready once */
};

struct sjob;

enum rphase { P_QUEUED, P_BOOT, P_RUN, P_STOP, P_DONE };
enum rafter { A_NEXT_GEN, A_FINISH };

/* The outcome of one step, whatever ran it. */
typedef struct step_out {
    int status;           /* 0: it ran (see the rest); < 0: it could not (error) */
    int channel;          /* status is a lost channel to the guest: infra if the guest died */
    char *error;          /* when status < 0 */
    int timed_out;
    int exit_code;        /* run/host; -1 without one */
    char signal[16];
    char *out, *err;      /* run/host output (NUL-terminated) */
    int truncated;
    json_t *ret;          /* qmp/qga return value */
    char *err_text;       /* qmp/qga error reply: "CLASS: desc" */
    double elapsed_ms;
} step_out;

struct rsuite {
    st_suite st;                 /* what the status shows; first member */
    struct runner *r;
    struct suite *def;
    sched_need need;
    enum rphase ph;
    fleet_t *f;
    control_t *ctl;
    char tmp_dir[PATH_MAX];
    uv_timer_t kick, grace;
    int timers_open;
    struct rguest *g;
    char **passwords;            /* what masking removes from every report */
    int npasswords;
    int gen;

    int cur;                     /* case index */
    int tries;                   /* infra failures of the current case */
    unsigned token;              /* completions of older steps are stale */
    const struct suite_step **plan;
    int nplan, pc, tear_from, setup_all_to;
    int setup_all_done;
    char *setup_all_failed;
    int busy;                    /* a step is in flight */
    int in_grace;
    step_out *done;              /* a finished step waiting for its verdict */
    char *infra;                 /* why this generation is unusable */
    int aborted;                 /* interrupted: no more work */
    const char *abort_why;       /* "SIGINT", "qfleet down" */
    int reserved;                /* holds its sched_need */
    char *never;                 /* why it can never fit, or NULL */

    struct sjob *jobs;           /* host commands and sleeps in flight */
    int pending;                 /* closes and stops of P_STOP */
    int stop_stage;
    enum rafter after;
};

struct runner {
    uv_loop_t *loop;
    runner_opts o;
    st_run st;
    sched_limits lim;
    sched_use use;
    struct rsuite **s;
    int n;
    char **names;                /* instance names used in this run */
    int nnames, names_cap;
    int fleets_open;
    int started, finished;
    int config_error;
    const char *interrupted;
    runner_done_cb done_cb;
    void *done_data;
};

/* runner.c */
void rsuite_set_state(struct rsuite *s, const char *state, const char *reason);
/* suite_run.c */
/* A name for a new instance of logical, unique in the whole run: fleets of
 * one process share a run id (time and pid) and leases are owned by
 * "RUN/NAME", so "vm0-1" of two suites must differ ("vm0-1", "vm0-1.2"). */
void runner_instance_name(struct runner *r, const char *logical, char *out, size_t len);
/* Remember a password to mask in everything the suite reports. */
void rsuite_add_password(struct rsuite *s, const char *pw);

/* suite_step.c */
typedef void (*step_done_fn)(struct rsuite *s, unsigned token, step_out *o);
/* Start st; done gets the outcome (also for errors found before starting),
 * never before step_start returned. -ENOMEM (and no callback) if it could
 * not even allocate its job. */
int step_start(struct rsuite *s, const struct suite_step *st, unsigned token, step_done_fn done);
/* Kill this suite's host commands and sleeps (their completions are stale). */
void step_cancel_all(struct rsuite *s);
/* 1 if every expectation of st holds for o, else 0 and *why (malloc'd). */
int step_verdict(struct rsuite *s, const struct suite_step *st, const step_out *o, char **why);
/* The report of a step for the case log (malloc'd, masked). */
char *step_report(struct rsuite *s, const struct suite_step *st, const step_out *o, int ok);
void step_out_free(step_out *o);
/* A malloc'd printf (runner.c); NULL on ENOMEM. */
char *rs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A masked copy of text (passwords of the suite's VMs replaced). */
char *rsuite_mask(const struct rsuite *s, const char *text);
/* ${...} of the running case. */
char *rsuite_expand(struct rsuite *s, const char *text, char *err, size_t errlen);

#endif
