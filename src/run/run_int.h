/* run_int.h - what the files of src/run share: runner.c (suites,
 * generations of guests, cases), suite.c (the run around them), step.c
 * (one step: host, guest, QMP, agent, copy, sleep, migrate and the
 * interactive sessions: spawn, send, expect, close) and verdict.c (judging
 * and reporting a step). Not for other modules. Cross-file internals are
 * run__name; everything else is static to its file.
 *
 * A suite's state is its st.state (status.h's st_suite_state): the status
 * shows it and advance() switches on it; run__suite_enter is the one place
 * that changes it. */
#ifndef QF_RUN_INT_H
#define QF_RUN_INT_H

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
    int migrating;               /* MIG_SRC, MIG_DST of a migrate step in flight (its
                                  * instance stopping is the fleet's hand-over, not infra), 0 */
};
enum { MIG_SRC = 1, MIG_DST = 2 };

/* An interactive session of the running case: a spawn's own SSH session
 * (one shell each), until a close step or the end of the case. */
struct isession {
    const char *name;            /* the spawn step's session name; NULL: slot free */
    int gi;                      /* its guest */
    guest_session_t *gs;
    double t0;                   /* time_mono_ms of the spawn, for the log's timings */
};

struct sjob;

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
    double since_spawn_ms;  /* spawn/send/expect/close: session age at the end; -1 none */
} step_out;

struct rsuite {
    st_suite st;                 /* what the status shows; first member */
    struct runner *r;
    struct suite *def;
    sched_need need;
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
    int closes_from;             /* plan index of the implicit closes */
    int td_started, td_failures; /* tear_down begun; failed steps of it or of tear_down_all */
    int in_tda;                  /* the plan is [tear_down_all] (then after says what next) */
    struct isession isess[SUITE_SESSIONS_MAX];
    int setup_all_done;
    char *setup_all_failed;
    int busy;                    /* a step is in flight */
    int in_grace;
    step_out *done;              /* a finished step waiting for its verdict */
    char *infra;                 /* why this generation is unusable */
    int setup_error;             /* infra is the host's set-up: retrying cannot help */
    int aborted;                 /* interrupted: no more work */
    const char *abort_why;       /* "SIGINT", "qfleet down" */
    int reserved;                /* holds its sched_need */
    char *never;                 /* why it can never fit, or NULL */

    struct sjob *jobs;           /* host commands and sleeps in flight */
    int pending;                 /* closes and stops while SS_STOPPING */
    int stop_stage;
    enum rafter after;
};

struct runner {
    uv_loop_t *loop;
    runner_opts o;
    st_run st;                   /* the model the status shows */
    status_t *out;               /* its publisher; NULL once closed */
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

/* runner.c: move s to state (its one transition point): the status
 * model, an event and a rewrite; reason (masked) is why it waits or
 * failed, or NULL. */
void run__suite_enter(struct rsuite *s, st_suite_state state, const char *reason);
/* runner.c: run the suite's advance() from the loop soon. */
void run__kick(struct rsuite *s);
/* runner.c: this generation is unusable (the first reason counts): kicks. */
void run__set_infra(struct rsuite *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* gen.c: boot a new generation of the suite's guests; stop the current one
 * (then after says what comes next); the fleet's on_event; st_run.refresh
 * (a waiting guest's reason into status.json). */
void run__gen_start(struct rsuite *s);
void run__gen_stop(struct rsuite *s, enum rafter after);
void run__fleet_event(fleet_t *f, fguest_t *g, fleet_state state, void *data);
int run__refresh_reasons(st_run *m, void *data);

/* suite.c */
/* A name for a new instance of logical, unique in the whole run: fleets of
 * one process share a run id (time and pid) and leases are owned by
 * "RUN/NAME", so "vm0-1" of two suites must differ ("vm0-1", "vm0-1.2"). */
void run__instance_name(struct runner *r, const char *logical, char *out, size_t len);
/* Remember a password to mask in everything the suite reports. */
void run__add_password(struct rsuite *s, const char *pw);

/* step.c */
typedef void (*step_done_fn)(struct rsuite *s, unsigned token, step_out *o);
/* Start st; done gets the outcome (also for errors found before starting),
 * never before run__step_start returned. -ENOMEM (and no callback) if it
 * could not even allocate its job. */
int run__step_start(struct rsuite *s, const struct suite_step *st, unsigned token, step_done_fn done);
/* Kill this suite's host commands and sleeps (their completions are stale). */
void run__step_cancel_all(struct rsuite *s);
/* Close every interactive session still open; cb (may be NULL) runs once
 * per closed one, from the loop. Returns how many were closed. */
int run__sessions_close(struct rsuite *s, guest_close_cb cb, void *data);
/* The running case's name: "" in [tear_down_all]. */
const char *run__case_name(const struct rsuite *s);
/* The log the running plan writes: the case's, or [tear_down_all]'s. */
st_case *run__plan_case(struct rsuite *s);
void run__step_out_free(step_out *o);
/* A masked copy of text (passwords of the suite's VMs replaced). */
char *run__mask(const struct rsuite *s, const char *text);
/* ${...} of the running case. */
char *run__expand(struct rsuite *s, const char *text, char *err, size_t errlen);

/* verdict.c */
/* 1 if every expectation of st holds for o, else 0 and *why (malloc'd). */
int run__step_verdict(struct rsuite *s, const struct suite_step *st, const step_out *o, char **why);
/* The report of a step for the case log (malloc'd, masked). */
char *run__step_report(struct rsuite *s, const struct suite_step *st, const step_out *o, int ok);

#endif
