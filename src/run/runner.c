/* runner.c - suites in parallel (runner.h): admission, cases and their
 * steps, infrastructure retries, the run's end; generations of guests are
 * booted and stopped by gen.c.
 *
 * Every suite is a state machine driven from one place, advance(), which
 * runs from the suite's own zero-delay timer. Fleet events, step results
 * and session closes only record what happened and kick that timer, so no
 * decision is ever taken inside the fleet's or a session's callback, where
 * starting or stopping guests would re-enter code that is mid-change. */
#include "src/run/run_int.h"
#include "base/time.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "base/fs.h"
#include "base/str.h"

static void advance(struct rsuite *s);
static void case_begin(struct rsuite *s);
static void suite_finish(struct rsuite *s);
static void check_done(struct runner *r);
static void on_down(control_t *c, void *data);

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

/* The first line of text, at most 300 bytes: for messages and the table. */
static char *first_line(const char *text)
{
    const char *t = text ? text : "";
    size_t n = strcspn(t, "\n");
    return str_printf("%.*s", (int)(n > 300 ? 300 : n), t);
}

/* Not admitted yet (whether or not it was told it does not fit). */
static int queued(const struct rsuite *s) { return s->st.state == SS_QUEUED || s->st.state == SS_WAITING; }

static void on_kick(uv_timer_t *t) { advance(t->data); }

void run__kick(struct rsuite *s)
{
    if (s->timers_open)
        uv_timer_start(&s->kick, on_kick, 0, 0);
}

/* ---- events ------------------------------------------------------------------ */

void run__suite_enter(struct rsuite *s, st_suite_state state, const char *reason)
{
    s->st.state = state;
    free(s->st.reason);
    s->st.reason = run__mask(s, reason);
    json_t *e = json_object();
    json_set_str(e, "suite", s->st.name);
    json_set_str(e, "state", st_suite_state_name(state));
    if (state == SS_DONE)
        json_set_str(e, "result", st_result_name(s->st.result));
    json_set(e, "reason", json_string(s->st.reason));
    status_event(s->r->out, "suite", e);
    status_changed(s->r->out, state == SS_DONE);
}

/* A case event: its state is its result's name, or "retrying" between
 * attempts (when its result is pending again). */
static void ev_case(struct rsuite *s, const st_case *c, int retrying)
{
    const char *state = retrying ? "retrying" : st_result_name(c->result);
    json_t *e = json_object();
    json_set_str(e, "suite", s->st.name);
    json_set_str(e, "case", c->name);
    json_set_str(e, "state", state);
    json_set_int(e, "attempt", c->attempts);
    json_set(e, "reason", json_string(c->message));
    if (c->finished_ms > 0 && c->started_ms > 0)
        json_set_int(e, "elapsed_ms", c->finished_ms - c->started_ms);
    status_event(s->r->out, "case", e);
    status_changed(s->r->out, 1);
}

void run__set_infra(struct rsuite *s, const char *fmt, ...)
{
    if (s->infra)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *raw = str_vprintf(fmt, ap);
    va_end(ap);
    s->infra = run__mask(s, raw ? raw : "infrastructure error");
    free(raw);
    run__kick(s);
}

/* Forget the step in flight: its completion, when it comes, is stale. */
static void drop_step(struct rsuite *s)
{
    s->token++;
    s->busy = 0;
    s->in_grace = 0;
    uv_timer_stop(&s->grace);
    run__step_out_free(s->done);
    s->done = NULL;
    run__step_cancel_all(s);
}

static void skip_rest(struct rsuite *s, int from, const char *why)
{
    for (int k = from; k < s->st.ncases; k++) {
        st_case *c = &s->st.cases[k];
        if (c->result != RES_PENDING && c->result != RES_RUNNING)
            continue;
        c->result = RES_SKIPPED;
        free(c->message);
        c->message = xstrdup(why);
        ev_case(s, c, 0);
    }
}

static void infra_handle(struct rsuite *s)
{
    struct runner *r = s->r;
    drop_step(s);
    if (s->in_tda) { /* the cases are settled; these guests are done with */
        st_case *t = &s->st.tear_down_all;
        t->result = RES_ERROR;
        st_case_log(t, "\n=== infrastructure error in tear_down_all ===\n%s\n", s->infra);
        run__gen_stop(s, s->after);
        return;
    }
    if (s->cur >= s->st.ncases) {
        run__gen_stop(s, A_FINISH);
        return;
    }
    st_case *c = &s->st.cases[s->cur];
    char *line = first_line(s->infra);
    s->tries++;
    if (s->tries <= r->o.retries && !s->setup_error) {
        s->st.retries_used++;
        st_case_log(c, "\n=== infrastructure error; retry %d of %d on fresh guests ===\n%s\n", s->tries,
                    r->o.retries, s->infra);
        st_case_reset(c);
        c->result = RES_PENDING;
        c->message = str_printf("retrying after: %s", line);
        ev_case(s, c, 1);
        free(c->message);
        c->message = NULL;
        status_say(r->out, "%s/%s: infrastructure error, retry %d/%d: %s", s->st.name, c->name,
                   s->tries, r->o.retries, line);
        run__gen_stop(s, A_NEXT_GEN);
    } else {
        c->result = RES_ERROR;
        free(c->message);
        free(c->detail);
        c->message = str_printf("infrastructure error%s: %s",
                                r->o.retries && !s->setup_error ? " (retries used up)" : "", line);
        c->detail = xstrdup(s->infra);
        st_case_log(c, "\n=== infrastructure error ===\n%s\n", s->infra);
        c->finished_ms = time_wall_ms();
        ev_case(s, c, 0);
        status_say(r->out, "%s/%s: ERROR: %s", s->st.name, c->name, line);
        char *why = str_printf("not run: case %s hit an infrastructure error", c->name);
        skip_rest(s, s->cur + 1, why);
        free(why);
        s->cur = s->st.ncases;
        run__gen_stop(s, A_FINISH);
    }
    free(line);
}

/* ---- cases and steps --------------------------------------------------------- */

static void plan_add(struct rsuite *s, const struct suite_case *blk)
{
    for (int i = 0; i < blk->nsteps; i++)
        s->plan[s->nplan++] = &blk->steps[i];
}

static void on_grace(uv_timer_t *t)
{
    struct rsuite *s = t->data;
    s->in_grace = 0;
    advance(s);
}

static void on_step_done(struct rsuite *s, unsigned token, step_out *o)
{
    if (token != s->token || s->st.state != SS_RUNNING) {
        run__step_out_free(o);
        return;
    }
    s->busy = 0;
    s->done = o;
    /* A lost channel is judged after a grace period: if QEMU died, its exit
     * (an infrastructure error) is reported by then; if not, the step failed. */
    if (o->status < 0 && o->channel && !s->infra) {
        s->in_grace = 1;
        uv_timer_start(&s->grace, on_grace, STEP_GRACE_MS, 0);
        return;
    }
    run__kick(s);
}

/* The tear_down's own verdict in the case log, before the implicit closes. */
static void tear_down_marks(struct rsuite *s)
{
    if (s->in_tda || !s->def->tear_down.nsteps)
        return;
    st_case *c = &s->st.cases[s->cur];
    if (s->pc == s->tear_from && !s->td_started && s->pc < s->closes_from) {
        s->td_started = 1;
        st_case_log(c, "=== tear_down (runs also after a failure) ===\n");
    } else if (s->pc == s->closes_from && s->td_started) {
        s->td_started = 0;
        st_case_log(c, "=== tear_down: %s ===\n", s->td_failures ? "FAILED" : "passed");
    }
}

static void next_step(struct rsuite *s);

/* [tear_down_all] once the cases on these guests are settled, then stop
 * them (after: what comes next). Its steps all run, also after a failure;
 * their reports are the suite's system-out in junit, and a failure is
 * the suite's reason, never a case's result. */
static void tda_begin(struct rsuite *s, enum rafter after)
{
    const struct suite_case *t = &s->def->tear_down_all;
    if (!t->nsteps) {
        run__gen_stop(s, after);
        return;
    }
    st_case *c = &s->st.tear_down_all;
    free(s->plan);
    s->plan = calloc((size_t)(t->nsteps + t->ncloses + 1), sizeof(*s->plan));
    if (!s->plan) {
        run__set_infra(s, "out of memory");
        return;
    }
    s->nplan = s->pc = s->tear_from = s->setup_all_to = 0;
    plan_add(s, t);
    s->closes_from = s->nplan;
    for (int i = 0; i < t->ncloses; i++)
        s->plan[s->nplan++] = &t->closes[i];
    s->in_tda = 1;
    s->td_failures = 0;
    s->after = after;
    c->attempts++;
    c->result = RES_RUNNING;
    if (!c->started_ms)
        c->started_ms = time_wall_ms();
    st_case_log(c, "=== tear_down_all (guests of generation %d) ===\n", s->gen);
    next_step(s);
}

static void tda_end(struct rsuite *s)
{
    st_case *c = &s->st.tear_down_all;
    run__sessions_close(s, NULL, NULL);
    c->finished_ms = time_wall_ms();
    if (c->result != RES_FAILED)
        c->result = c->message ? RES_FAILED : RES_PASSED;
    st_case_log(c, "=== tear_down_all: %s ===\n", s->td_failures ? "FAILED" : "passed");
    if (c->message)
        status_say(s->r->out, "%s: %s", s->st.name, c->message);
    status_changed(s->r->out, 1);
    run__gen_stop(s, s->after);
}

static void next_step(struct rsuite *s)
{
    if (s->pc < s->nplan || s->pc == s->closes_from)
        tear_down_marks(s);
    if (s->pc >= s->nplan && s->in_tda) {
        tda_end(s);
        return;
    }
    if (s->pc >= s->nplan) {
        st_case *c = &s->st.cases[s->cur];
        run__sessions_close(s, NULL, NULL); /* none: the implicit closes ran */
        c->result = c->message ? RES_FAILED : RES_PASSED;
        c->finished_ms = time_wall_ms();
        ev_case(s, c, 0);
        status_say(s->r->out, "%s/%s: %s%s", s->st.name, c->name, c->message ? "FAILED: " : "passed",
                   c->message ? c->message : "");
        s->cur++;
        s->tries = 0;
        s->st.current = -1;
        if (s->cur >= s->st.ncases)
            tda_begin(s, A_FINISH);
        else if (s->def->setup_each)
            tda_begin(s, A_NEXT_GEN);
        else
            case_begin(s);
        return;
    }
    s->busy = 1;
    s->token++;
    if (run__step_start(s, s->plan[s->pc], s->token, on_step_done) < 0)
        run__set_infra(s, "out of memory");
}

static void step_finish(struct rsuite *s)
{
    step_out *o = s->done;
    s->done = NULL;
    const struct suite_step *st = s->plan[s->pc];
    st_case *c = run__plan_case(s);
    char *why = NULL;
    int ok = run__step_verdict(s, st, o, &why);
    char *rep = run__step_report(s, st, o, ok);
    st_case_log(c, "%s", rep ? rep : "");
    if (c->nsteps == c->steps_cap) {
        int cap = c->steps_cap ? c->steps_cap * 2 : 8;
        st_step *n = realloc(c->steps, sizeof(*n) * (size_t)cap);
        if (n) {
            c->steps = n;
            c->steps_cap = cap;
        }
    }
    if (c->nsteps < c->steps_cap)
        c->steps[c->nsteps++] = (st_step){ run__mask(s, st->source), st->loc.line,
                                           ok ? RES_PASSED : RES_FAILED, o->elapsed_ms, xstrdup(why) };
    json_t *e = json_object();
    json_set_str(e, "suite", s->st.name);
    json_set_str(e, "case", c->name);
    json_set_int(e, "line", st->loc.line);
    json_set(e, "source", json_string(c->nsteps ? c->steps[c->nsteps - 1].source : NULL));
    json_set_str(e, "state", ok ? "passed" : "failed");
    json_set_int(e, "elapsed_ms", (long long)o->elapsed_ms);
    json_set(e, "reason", json_string(why));
    status_event(s->r->out, "step", e);
    status_changed(s->r->out, 0);
    if (!ok) {
        int td = !s->in_tda && s->pc >= s->tear_from;
        s->td_failures += td || s->in_tda;
        const char *part = s->in_tda ? "tear_down_all: " : s->pc < s->setup_all_to ? "set_up_all: "
                         : td ? "tear_down: " : "";
        if (s->pc < s->setup_all_to && !s->setup_all_failed)
            s->setup_all_failed = xstrdup(c->name);
        if (!c->message) {
            c->message = str_printf("%s%s:%d: %s", part, s->def->path, st->loc.line, why ? why : "failed");
            c->detail = rep;
            rep = NULL;
        }
        /* tear_down still runs after a failure, as in DTS. */
        s->pc = s->pc < s->tear_from ? s->tear_from : s->pc + 1;
    } else {
        s->pc++;
    }
    free(rep);
    free(why);
    run__step_out_free(o);
    next_step(s);
}

static void case_begin(struct rsuite *s)
{
    struct suite *d = s->def;
    const struct suite_case *dc = &d->cases[s->cur];
    st_case *c = &s->st.cases[s->cur];
    s->st.current = s->cur;
    if (c->attempts > 0)
        st_case_log(c, "\n=== attempt %d ===\n", c->attempts + 1);
    c->attempts++;
    c->result = RES_RUNNING;
    if (!c->started_ms)
        c->started_ms = time_wall_ms();
    ev_case(s, c, 0);
    free(s->plan);
    s->nplan = s->pc = 0;
    s->plan = calloc((size_t)(d->set_up_all.nsteps + d->set_up.nsteps + dc->nsteps + d->tear_down.nsteps +
                              dc->ncloses + 1), sizeof(*s->plan));
    if (!s->plan) {
        run__set_infra(s, "out of memory");
        return;
    }
    if (!s->setup_all_done)
        plan_add(s, &d->set_up_all);
    s->setup_all_done = 1;
    s->setup_all_to = s->nplan;
    plan_add(s, &d->set_up);
    plan_add(s, dc);
    s->tear_from = s->nplan;
    plan_add(s, &d->tear_down);
    s->closes_from = s->nplan;
    s->td_failures = 0;
    for (int i = 0; i < dc->ncloses; i++)
        s->plan[s->nplan++] = &dc->closes[i];
    if (s->setup_all_failed) {
        c->message = str_printf("not run: set_up_all failed (in case %s)", s->setup_all_failed);
        s->pc = s->nplan;
    }
    next_step(s);
}

/* ---- the suite's state machine ------------------------------------------------- */

static void advance(struct rsuite *s)
{
    switch (s->st.state) {
    case SS_BOOTING:
        if (s->infra) {
            infra_handle(s);
            return;
        }
        /* A migration destination (its VM has `migration = enable=yes`)
         * is up once it waits for a migrate step. */
        for (int i = 0; i < s->def->nguests; i++)
            if (!s->g[i].g || (fguest_state(s->g[i].g) != GS_READY &&
                               fguest_state(s->g[i].g) != GS_AWAITING_MIGRATION))
                return;
        run__suite_enter(s, SS_RUNNING, NULL);
        case_begin(s);
        return;
    case SS_RUNNING:
        if (s->infra)
            infra_handle(s);
        else if (s->done && !s->in_grace)
            step_finish(s);
        return;
    case SS_STOPPING:
        if (s->stop_stage != 3)
            return;
        s->stop_stage = 0;
        if (s->after == A_NEXT_GEN && !s->aborted && !s->r->interrupted)
            run__gen_start(s);
        else
            suite_finish(s);
        return;
    default:
        return;
    }
}

static void on_fleet_freed(fleet_t *f, void *data)
{
    struct rsuite *s = data;
    (void)f;
    s->r->fleets_open--;
    check_done(s->r);
}

static void suite_start(struct rsuite *s)
{
    struct runner *r = s->r;
    char err[1024], path[PATH_MAX + 32];
    sched_take(&r->use, &s->need);
    s->reserved = 1;
    r->st.guests_in_use = r->use.guests;
    r->st.mem_in_use_mb = r->use.mem_mb;
    s->st.started_ms = time_wall_ms();
    fleet_opts fo = {
        .state_dir = r->o.state_dir,
        .run_dir = s->st.run_dir,
        .cfg_path = s->def->cfg,
        .boot_timeout_s = r->o.boot_timeout_s ? r->o.boot_timeout_s : s->def->boot_timeout_s,
        .clone = s->def->setup_clone,
        .sysfs_root = r->o.sysfs_root,
        .vf_nl = r->o.vf_nl,
        .cluster = r->o.cluster,
        .cluster_wide = r->o.cluster_wide,
    };
    if (fleet_new(r->loop, &fo, run__fleet_event, s, &s->f, err, sizeof(err)) < 0) {
        st_case *c = &s->st.cases[0];
        c->result = RES_ERROR;
        c->message = str_printf("infrastructure error: %s", err);
        skip_rest(s, 1, "not run: the suite could not start");
        suite_finish(s);
        return;
    }
    r->fleets_open++;
    snprintf(s->tmp_dir, sizeof(s->tmp_dir), "%s/tmp", s->st.run_dir);
    fs_mkdir_p(s->tmp_dir, 0700, 0);
    snprintf(path, sizeof(path), "%s/control.sock", s->st.run_dir);
    if (control_start(r->loop, s->f, path, on_down, s, &s->ctl, err, sizeof(err)) < 0)
        status_say(r->out, "qfleet: %s: no control socket: %s", s->st.name, err);
    status_say(r->out, "%s: starting %d guest(s) in %s", s->st.name, s->def->nguests, s->st.run_dir);
    run__gen_start(s);
}

void runner_cluster_state(runner_t *r, int state, const char *why)
{
    json_t *e = json_object();
    json_set_str(e, "state", cluster_state_name((cluster_state)state));
    json_set_str(e, "why", why ? why : "");
    if (r->out) {
        status_event(r->out, "cluster", e);
        status_changed(r->out, 0);
    } else {
        json_free(e);
    }
    for (int i = 0; i < r->n; i++)
        if (r->s[i]->f)
            fleet_cluster_state(r->s[i]->f, (cluster_state)state, why);
}

void runner_cluster_conflict(runner_t *r, const char *kind, const char *value, const char *owner,
                             const char *holder)
{
    if (r->out)
        status_say(r->out, "qfleet: cluster: %s %s of %s was taken by %s", kind, value, owner,
                   holder);
    for (int i = 0; i < r->n; i++)
        if (r->s[i]->f)
            fleet_cluster_conflict(r->s[i]->f, kind, value, owner, holder);
}

static void pump(struct runner *r)
{
    if (r->interrupted || !r->started)
        return;
    for (int i = 0; i < r->n; i++) {
        struct rsuite *s = r->s[i];
        if (!queued(s))
            continue;
        char why[256];
        if (sched_fits_now(&r->lim, &r->use, &s->need, why, sizeof(why)))
            suite_start(s);
        else if (!s->st.reason || strcmp(s->st.reason, why))
            run__suite_enter(s, SS_WAITING, why);
    }
}

static void suite_finish(struct rsuite *s)
{
    struct runner *r = s->r;
    char *why = str_printf("not run%s%s", s->abort_why ? ": " : "", s->abort_why ? s->abort_why : "");
    skip_rest(s, 0, why);
    free(why);
    int n[RES_COUNT] = { 0 };
    for (int k = 0; k < s->st.ncases; k++)
        n[s->st.cases[k].result]++;
    s->st.result = n[RES_ERROR] ? RES_ERROR : n[RES_FAILED] ? RES_FAILED
                 : n[RES_PASSED] ? RES_PASSED : RES_SKIPPED;
    s->st.finished_ms = time_wall_ms();
    s->st.current = -1;
    const st_case *t = &s->st.tear_down_all;
    char *reason = xstrdup(s->never ? s->never : t->result == RES_FAILED ? t->message : NULL);
    run__suite_enter(s, SS_DONE, reason);
    free(reason);
    status_say(r->out, "%s: %s (%d passed, %d failed, %d error, %d skipped)", s->st.name,
               st_result_name(s->st.result), n[RES_PASSED], n[RES_FAILED], n[RES_ERROR], n[RES_SKIPPED]);
    if (s->reserved) {
        sched_release(&r->use, &s->need);
        s->reserved = 0;
        r->st.guests_in_use = r->use.guests;
        r->st.mem_in_use_mb = r->use.mem_mb;
    }
    if (s->ctl)
        control_close(s->ctl);
    s->ctl = NULL;
    if (s->f)
        fleet_free(s->f, on_fleet_freed, s);
    s->f = NULL;
    if (s->timers_open) {
        s->timers_open = 0;
        uv_close((uv_handle_t *)&s->kick, NULL);
        uv_close((uv_handle_t *)&s->grace, NULL);
    }
    r->finished++;
    pump(r);
    check_done(r);
}

/* ---- the run ------------------------------------------------------------------- */

static void on_status_closed(status_t *st, void *data)
{
    struct runner *r = data;
    (void)st;
    r->out = NULL;
    if (r->done_cb)
        r->done_cb(r, r->done_data);
}

static void check_done(struct runner *r)
{
    if (!r->started || r->finished < r->n || r->fleets_open > 0 || r->st.finished_ms)
        return;
    r->st.finished_ms = time_wall_ms();
    r->st.state = r->interrupted ? RUN_INTERRUPTED : RUN_FINISHED;
    r->st.exit_code = runner_exit_code(r);
    json_t *e = json_object();
    json_set_str(e, "state", st_run_state_name(r->st.state));
    json_set_int(e, "exit_code", r->st.exit_code);
    status_event(r->out, "run", e);
    status_flush(r->out);
    char rerr[512];
    if (status_report_write(r->st.status_dir, NULL, rerr, sizeof(rerr)) < 0)
        status_say(r->out, "qfleet: report.html: %s", rerr);
    status_close(r->out, on_status_closed, r);
}

void runner_start(runner_t *r, runner_done_cb cb, void *data)
{
    r->done_cb = cb;
    r->done_data = data;
    r->started = 1;
    r->st.refresh = run__refresh_reasons;
    r->st.refresh_data = r;
    char why[512];
    for (int i = 0; i < r->n; i++) {
        struct rsuite *s = r->s[i];
        s->st.setup_clone = s->def->setup_clone; /* status.json's "clone" */
        if (s->st.state == SS_DONE)
            continue;
        if (!s->never && sched_never_fits(&r->lim, &s->need, why, sizeof(why)))
            s->never = strdup(why);
        if (!s->never)
            continue;
        r->config_error = 1;
        char *msg = str_printf("not run: the suite can never fit: %s", s->never);
        for (int k = 0; k < s->st.ncases; k++) {
            s->st.cases[k].result = RES_ERROR;
            s->st.cases[k].message = xstrdup(msg);
        }
        status_say(r->out, "%s: can never fit: %s", s->st.name, s->never);
        free(msg);
        suite_finish(s);
    }
    pump(r);
    status_changed(r->out, 1);
    check_done(r);
}

/* No more work for s: the case running ends as error, the rest is skipped
 * (by suite_finish), the guests stop. */
static void suite_abort(struct rsuite *s, const char *why)
{
    if (s->st.state == SS_DONE || s->aborted)
        return;
    s->aborted = 1;
    s->abort_why = why;
    if (queued(s)) {
        suite_finish(s);
    } else if (s->st.state == SS_BOOTING || s->st.state == SS_RUNNING) {
        drop_step(s);
        if (s->in_tda) {
            s->st.tear_down_all.result = RES_ERROR;
            st_case_log(&s->st.tear_down_all, "=== tear_down_all: interrupted: %s ===\n", why);
        }
        st_case *c = s->cur < s->st.ncases ? &s->st.cases[s->cur] : NULL;
        if (c && c->result == RES_RUNNING) {
            c->result = RES_ERROR;
            free(c->message);
            c->message = str_printf("interrupted: %s", why);
            c->finished_ms = time_wall_ms();
            ev_case(s, c, 0);
        }
        run__gen_stop(s, A_FINISH);
    }
}

/* `qfleet down SUITE_RUN_DIR` on the suite's control socket. */
static void on_down(control_t *c, void *data)
{
    struct rsuite *s = data;
    (void)c;
    status_say(s->r->out, "%s: stopped by qfleet down", s->st.name);
    suite_abort(s, "qfleet down");
}

void runner_interrupt(runner_t *r, const char *why)
{
    if (r->interrupted)
        return;
    r->interrupted = why;
    status_say(r->out, "qfleet: %s: stopping every suite", why);
    for (int i = 0; i < r->n; i++)
        suite_abort(r->s[i], why);
    check_done(r);
}
