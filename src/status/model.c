/* model.c - the run model's names, counts and memory (status.h): what
 * every renderer of the model shares. Calls nothing of status's own. */
#include "src/fleet/fleet.h"
#include "src/status/status_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_LOG_MAX (512 * 1024)

static const char *const result_names[RES_COUNT] = {
    [RES_PENDING] = "pending", [RES_RUNNING] = "running", [RES_PASSED] = "passed",
    [RES_FAILED] = "failed",   [RES_ERROR] = "error",     [RES_SKIPPED] = "skipped",
};

static const char *const suite_state_names[SS_COUNT] = {
    [SS_QUEUED] = "queued",   [SS_WAITING] = "waiting",   [SS_BOOTING] = "booting",
    [SS_RUNNING] = "running", [SS_STOPPING] = "stopping", [SS_DONE] = "done",
};

static const char *const run_state_names[RUN_STATE_COUNT] = {
    [RUN_RUNNING] = "running", [RUN_FINISHED] = "finished", [RUN_INTERRUPTED] = "interrupted",
};

const char *st_result_name(st_result r) { return r < RES_COUNT ? result_names[r] : "?"; }
const char *st_suite_state_name(st_suite_state s) { return s < SS_COUNT ? suite_state_names[s] : "?"; }
const char *st_run_state_name(st_run_state s) { return s < RUN_STATE_COUNT ? run_state_names[s] : "?"; }
const char *st_setup_name(const st_suite *s)
{
    return s->setup_clone ? "clone" : s->setup_each ? "each" : "all";
}

/* ---- the model's own memory ---------------------------------------------- */

void st_case_log(st_case *c, const char *fmt, ...)
{
    if (c->log_len >= CASE_LOG_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t need = c->log_len + (size_t)n + 1;
    if (need > c->log_cap) {
        size_t cap = c->log_cap ? c->log_cap : 1024;
        while (cap < need)
            cap *= 2;
        char *p = realloc(c->log, cap);
        if (!p)
            return;
        c->log = p;
        c->log_cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(c->log + c->log_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->log_len += (size_t)n;
    if (c->log_len >= CASE_LOG_MAX) {
        static const char cut[] = "\n[log truncated]\n";
        memcpy(c->log + CASE_LOG_MAX - sizeof(cut), cut, sizeof(cut));
        c->log_len = CASE_LOG_MAX - 1;
    }
}

static void steps_free(st_case *c)
{
    for (int i = 0; i < c->nsteps; i++) {
        free(c->steps[i].source);
        free(c->steps[i].message);
    }
    free(c->steps);
    c->steps = NULL;
    c->nsteps = c->steps_cap = 0;
}

void st_case_reset(st_case *c)
{
    steps_free(c);
    free(c->message);
    free(c->detail);
    c->message = c->detail = NULL;
}

void st_suite_free(st_suite *s)
{
    for (int i = 0; i < s->ncases; i++) {
        st_case_reset(&s->cases[i]);
        free(s->cases[i].log);
    }
    st_case_reset(&s->tear_down_all);
    free(s->tear_down_all.log);
    for (int i = 0; i < s->nguests; i++)
        json_free(s->guests[i].snap);
    free(s->cases);
    free(s->guests);
    free(s->reason);
}

void status_boot_time(st_run *r, double seconds)
{
    if (r->nboot == r->boot_cap) {
        int cap = r->boot_cap ? r->boot_cap * 2 : 16;
        double *b = realloc(r->boot_s, sizeof(*b) * (size_t)cap);
        if (!b)
            return;
        r->boot_s = b;
        r->boot_cap = cap;
    }
    r->boot_s[r->nboot++] = seconds;
}

/* Phases last from milliseconds (allocating) to minutes (a TCG boot). */
const double ST_PHASE_LE[ST_PHASE_BUCKETS] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300 };

_Static_assert(GS_COUNT <= ST_PHASES, "ST_PHASES must cover every fleet state");

void status_boot_phases(st_run *r, const json_t *t)
{
    long long at[ST_PHASES];
    for (int k = 0; k < GS_COUNT; k++)
        at[k] = json_get_int(t, fleet_state_name(k), -1);
    for (int k = GS_ALLOCATING; k < GS_READY; k++) {
        int next = k + 1;
        while (next < GS_READY && at[next] < 0)
            next++;
        if (at[k] < 0 || at[next] < at[k])
            continue;
        double secs = (at[next] - at[k]) / 1000.0;
        r->phase_n[k]++;
        r->phase_sum[k] += secs;
        for (int b = 0; b < ST_PHASE_BUCKETS; b++)
            r->phase_le[k][b] += secs <= ST_PHASE_LE[b];
    }
}

void status_case_counts(const st_run *r, int counts[RES_COUNT])
{
    memset(counts, 0, sizeof(int) * RES_COUNT);
    for (int i = 0; i < r->nsuites; i++)
        for (int k = 0; k < r->suites[i]->ncases; k++)
            counts[r->suites[i]->cases[k].result]++;
}
