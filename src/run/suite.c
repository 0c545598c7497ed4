/* suite.c - the run's setup and teardown around runner.c: the run
 * directory and status outputs, adding suites with what they need, the
 * instance names and passwords a run keeps, the exit code. */
#include "src/run/run_int.h"
#include "base/time.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "base/fs.h"
#include "cfg/argv.h"

static int name_used(const struct runner *r, const char *n)
{
    for (int i = 0; i < r->nnames; i++)
        if (!strcmp(r->names[i], n))
            return 1;
    return 0;
}

void run__instance_name(struct runner *r, const char *logical, char *out, size_t len)
{
    snprintf(out, len, "%s", logical);
    for (int k = 2; name_used(r, out); k++)
        snprintf(out, len, "%s.%d", logical, k);
    if (r->nnames == r->names_cap) {
        int cap = r->names_cap ? r->names_cap * 2 : 16;
        char **n = realloc(r->names, sizeof(*n) * (size_t)cap);
        if (!n)
            return;
        r->names = n;
        r->names_cap = cap;
    }
    r->names[r->nnames] = strdup(out);
    if (r->names[r->nnames])
        r->nnames++;
}

void run__add_password(struct rsuite *s, const char *pw)
{
    if (!pw || !*pw)
        return;
    for (int i = 0; i < s->npasswords; i++)
        if (!strcmp(s->passwords[i], pw))
            return;
    char **p = realloc(s->passwords, sizeof(*p) * (size_t)(s->npasswords + 1));
    if (!p)
        return;
    s->passwords = p;
    if ((p[s->npasswords] = strdup(pw)))
        s->npasswords++;
}

int runner_new(uv_loop_t *loop, const runner_opts *o, runner_t **out, char *err, size_t errlen)
{
    struct runner *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->loop = loop;
    r->o = *o;
    r->st.exit_code = -1;
    r->st.state = RUN_RUNNING;
    r->st.started_ms = time_wall_ms();
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32], state[PATH_MAX];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    snprintf(r->st.id, sizeof(r->st.id), "%s-%d", stamp, (int)getpid());
    int rc = 0;
    if (o->run_dir) {
        snprintf(r->st.run_dir, sizeof(r->st.run_dir), "%s", o->run_dir);
    } else if (o->state_dir || (rc = alloc_state_dir_default(state, sizeof(state))) == 0) {
        snprintf(r->st.run_dir, sizeof(r->st.run_dir), "%s/runs/%s", o->state_dir ? o->state_dir : state,
                 r->st.id);
    } else {
        snprintf(err, errlen, "no state dir: set QFLEET_STATE_DIR or pass --state-dir");
    }
    if (rc == 0 && (rc = fs_mkdir_p(r->st.run_dir, 0700, 0)) < 0)
        snprintf(err, errlen, "run dir %s: %s", r->st.run_dir, strerror(-rc));
    if (rc < 0) {
        free(r);
        return rc;
    }
    snprintf(r->st.status_dir, sizeof(r->st.status_dir), "%s", o->status_dir ? o->status_dir : r->st.run_dir);
    if (rc == 0 && (rc = fs_mkdir_p(r->st.status_dir, 0755, 0)) < 0)
        snprintf(err, errlen, "status dir %s: %s", r->st.status_dir, strerror(-rc));
    /* Absolute from here on: QEMU gets paths in the run dir, and the
     * status names files people open from elsewhere. */
    char abs[PATH_MAX];
    if (rc == 0 && realpath(r->st.run_dir, abs))
        snprintf(r->st.run_dir, sizeof(r->st.run_dir), "%s", abs);
    if (rc == 0 && realpath(r->st.status_dir, abs))
        snprintf(r->st.status_dir, sizeof(r->st.status_dir), "%s", abs);
    if (o->junit_path && o->junit_path[0] != '/' && getcwd(abs, sizeof(abs)))
        snprintf(r->st.junit_path, sizeof(r->st.junit_path), "%s/%s", abs, o->junit_path);
    else
        snprintf(r->st.junit_path, sizeof(r->st.junit_path), "%s%s", o->junit_path ? o->junit_path
                 : r->st.status_dir, o->junit_path ? "" : "/junit.xml");
    if (rc < 0) {
        free(r);
        return rc;
    }
    sched_host_defaults(&r->lim);
    r->lim.jobs = o->jobs;
    if (o->mem_budget_mb > 0)
        r->lim.mem_mb = o->mem_budget_mb;
    r->st.jobs = o->jobs;
    r->st.mem_budget_mb = r->lim.mem_mb;
    r->st.retries = o->retries;
    r->st.shard_k = o->shard_k;
    r->st.shard_n = o->shard_n;
    if ((rc = status_open(&r->st, loop, o->tty, o->quiet, &r->out, err, errlen)) < 0) {
        free(r);
        return rc;
    }
    json_t *e = json_object();
    json_set_str(e, "state", "started");
    json_set_str(e, "run_dir", r->st.run_dir);
    status_event(r->out, "run", e);
    *out = r;
    return 0;
}

int runner_add(runner_t *r, struct suite *def, char *err, size_t errlen)
{
    for (int i = 0; i < r->n; i++) {
        if (!strcmp(r->s[i]->def->name, def->name)) {
            snprintf(err, errlen, "%s: suite name '%s' is also the name of %s (names must be unique in "
                     "a run: set 'name =' in [suite])", def->path, def->name, r->s[i]->def->path);
            return -EEXIST;
        }
    }
    /* A run dir QEMU's sockets cannot live in is the host's set-up, not
     * the suite's: refuse it before anything starts (-ENAMETOOLONG). */
    char dir[PATH_MAX], why[512];
    snprintf(dir, sizeof(dir), "%s/%s", r->st.run_dir, def->name);
    for (int i = 0; i < def->nguests; i++)
        if (cfg_sock_paths_fit(dir, def->guests[i].name, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "suite %s: %s", def->name, why);
            return -ENAMETOOLONG;
        }
    struct rsuite *s = calloc(1, sizeof(*s));
    struct rsuite **ns = realloc(r->s, sizeof(*ns) * (size_t)(r->n + 1));
    st_suite **ss = realloc(r->st.suites, sizeof(*ss) * (size_t)(r->n + 1));
    if (ns)
        r->s = ns;
    if (ss)
        r->st.suites = ss;
    if (s) {
        s->st.cases = calloc((size_t)def->ncases, sizeof(st_case));
        s->st.guests = calloc((size_t)def->nguests + 1, sizeof(st_guest));
        s->g = calloc((size_t)def->nguests + 1, sizeof(struct rguest));
    }
    if (!s || !ns || !ss || !s->st.cases || !s->st.guests || !s->g) {
        if (s) {
            free(s->st.cases);
            free(s->st.guests);
            free(s->g);
        }
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->r = r;
    s->def = def;
    s->st.name = def->name;
    s->st.file = def->path;
    s->st.setup_each = def->setup_each;
    s->st.current = -1;
    s->st.ncases = def->ncases;
    s->st.nguests = def->nguests;
    snprintf(s->st.run_dir, sizeof(s->st.run_dir), "%s/%s", r->st.run_dir, def->name);
    for (int i = 0; i < def->ncases; i++)
        s->st.cases[i].name = def->cases[i].name;
    s->st.tear_down_all.name = "tear_down_all";
    for (int i = 0; i < def->nguests && !s->never; i++) {
        const struct suite_guest *g = &def->guests[i];
        s->st.guests[i].name = g->name;
        if (sched_need_add(&s->need, g->name, g->mem_mb, g->cpupin, g->ncpupin, g->vnc, why, sizeof(why)) < 0)
            s->never = strdup(why);
    }
    for (int i = 0; i < def->nguests; i++)
        s->st.guests[i].name = def->guests[i].name;
    uv_timer_init(r->loop, &s->kick);
    uv_timer_init(r->loop, &s->grace);
    s->kick.data = s->grace.data = s;
    s->timers_open = 1;
    r->s[r->n] = s;
    r->st.suites[r->n] = &s->st;
    r->n++;
    r->st.nsuites = r->n;
    run__suite_enter(s, SS_QUEUED, NULL);
    return 0;
}

int runner_exit_code(const runner_t *r)
{
    int n[RES_COUNT];
    status_case_counts(&r->st, n);
    return r->config_error ? 2 : n[RES_FAILED] ? 1 : n[RES_ERROR] ? 3 : 0;
}

struct st_run *runner_status(runner_t *r) { return &r->st; }

void runner_free(runner_t *r)
{
    if (!r)
        return;
    if (r->out) /* never started: its handles close (and it is freed) when the loop runs */
        status_close(r->out, NULL, NULL);
    for (int i = 0; i < r->n; i++) {
        struct rsuite *s = r->s[i];
        st_suite_free(&s->st);
        suite_free(s->def);
        for (int k = 0; k < s->npasswords; k++)
            free(s->passwords[k]);
        free(s->passwords);
        free(s->plan);
        free(s->g);
        free(s->infra);
        free(s->never);
        free(s->setup_all_failed);
        run__step_out_free(s->done);
        free(s);
    }
    for (int i = 0; i < r->nnames; i++)
        free(r->names[i]);
    free(r->names);
    free(r->s);
    free(r->st.suites);
    free(r->st.boot_s);
    free(r);
}
