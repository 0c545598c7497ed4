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

#include "cfg/argv.h"
#include "src/alloc/alloc.h"
#include "src/alloc/vf.h"
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

/* The run's id: local time and pid, e.g. 20261202-114838-4242. */
static void run_id(struct runner *r)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    snprintf(r->st.id, sizeof(r->st.id), "%s-%d", stamp, (int)getpid());
}

/* The run dir (o->run_dir, else <state dir>/runs/<id>) and the status dir
 * (o->status_dir, else the run dir), both made and then absolute. */
static int run_dirs(struct runner *r, const runner_opts *o, char *err, size_t errlen)
{
    char state[PATH_MAX];
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
    if (rc < 0)
        return rc;
    snprintf(r->st.status_dir, sizeof(r->st.status_dir), "%s", o->status_dir ? o->status_dir : r->st.run_dir);
    if ((rc = fs_mkdir_p(r->st.status_dir, 0755, 0)) < 0) {
        snprintf(err, errlen, "status dir %s: %s", r->st.status_dir, strerror(-rc));
        return rc;
    }
    /* Absolute from here on: QEMU gets paths in the run dir, and the
     * status names files people open from elsewhere. */
    char abs[PATH_MAX];
    if (realpath(r->st.run_dir, abs))
        snprintf(r->st.run_dir, sizeof(r->st.run_dir), "%s", abs);
    if (realpath(r->st.status_dir, abs))
        snprintf(r->st.status_dir, sizeof(r->st.status_dir), "%s", abs);
    return 0;
}

/* o->junit_path made absolute, else junit.xml in the status dir. */
static void junit_path(struct runner *r, const runner_opts *o)
{
    char cwd[PATH_MAX];
    if (o->junit_path && o->junit_path[0] != '/' && getcwd(cwd, sizeof(cwd)))
        snprintf(r->st.junit_path, sizeof(r->st.junit_path), "%s/%s", cwd, o->junit_path);
    else
        snprintf(r->st.junit_path, sizeof(r->st.junit_path), "%s%s", o->junit_path ? o->junit_path
                 : r->st.status_dir, o->junit_path ? "" : "/junit.xml");
}

/* The scheduler's limits (the host's, then the options) and the status's
 * copy of them. */
static void run_limits(struct runner *r, const runner_opts *o)
{
    sched_host_defaults(&r->lim);
    r->lim.jobs = o->jobs;
    if (o->mem_budget_mb > 0)
        r->lim.mem_mb = o->mem_budget_mb;
    r->st.jobs = o->jobs;
    r->st.mem_budget_mb = r->lim.mem_mb;
    r->st.retries = o->retries;
    r->st.shard_k = o->shard_k;
    r->st.shard_n = o->shard_n;
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
    run_id(r);
    int rc = run_dirs(r, o, err, errlen);
    if (rc < 0) {
        free(r);
        return rc;
    }
    junit_path(r, o);
    run_limits(r, o);
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

/* FNV-1a of a pool's definition: two suites' pools are one scheduler
 * pool when they say the same (the VFs decide whether they compete). */
static unsigned long long fnv(unsigned long long h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator no name holds */
}

static unsigned long long pool_key(const struct cfg_vf_pool *d)
{
    unsigned long long h = fnv(14695981039346656037ull, d->name);
    for (int i = 0; i < d->npf; i++)
        h = fnv(h, d->pf[i]);
    h = fnv(h, "vfs=");
    for (int i = 0; i < d->nvfs; i++)
        h = fnv(h, d->vfs[i]);
    h = fnv(h, "exclude=");
    for (int i = 0; i < d->nexclude; i++)
        h = fnv(h, d->exclude[i]);
    return h;
}

/* The VFs of pool d usable by this run: sysfs's after vfs=/exclude=, less
 * those leased now (by another run or `qfleet up`). */
static int pool_usable(struct runner *r, alloc_store *st, const struct cfg_vf_pool *d,
                       char ***pci, int *n, char *why, size_t whylen)
{
    alloc_vf_pool p;
    alloc_vf *vfs = NULL;
    alloc_lease *l = NULL;
    size_t nvf = 0, nl = 0;
    int rc = alloc_vf_pool_init(&p, d->name, d->pf, (size_t)d->npf, r->o.sysfs_root, r->o.vf_nl,
                                why, whylen);
    if (rc == 0)
        rc = alloc_vf_pool_limit(&p, d->vfs, (size_t)d->nvfs, d->exclude, (size_t)d->nexclude, why,
                                 whylen);
    if (rc == 0)
        rc = alloc_vf_scan(&p, &vfs, &nvf, why, whylen);
    if (rc == 0)
        rc = alloc_list(st, &l, &nl, why, whylen);
    *n = 0;
    *pci = rc == 0 ? calloc(nvf + 1, sizeof(**pci)) : NULL;
    for (size_t i = 0; *pci && i < nvf; i++) {
        size_t k = 0;
        while (k < nl && (strcmp(l[k].kind, "vf") || strcmp(l[k].value, vfs[i].pci)))
            k++;
        if (k == nl)
            (*pci)[(*n)++] = strdup(vfs[i].pci);
    }
    if (rc == 0 && !*pci)
        rc = -ENOMEM;
    free(vfs);
    free(l);
    return rc;
}

/* The scheduler's index of pool d, read from the host the first time. */
static int pool_index(struct runner *r, alloc_store **st, const struct cfg_vf_pool *d, char *why,
                      size_t whylen)
{
    unsigned long long key = pool_key(d);
    int i = sched_vf_pool_find(&r->lim, key);
    if (i >= 0)
        return i;
    char e[512];
    alloc_opts ao = { .sysfs_root = r->o.sysfs_root };
    int rc = *st ? 0 : alloc_store_open(st, r->o.state_dir, &ao, e, sizeof(e));
    char **pci = NULL;
    int n = 0;
    if (rc == 0)
        rc = pool_usable(r, *st, d, &pci, &n, e, sizeof(e));
    if (rc == 0)
        rc = sched_vf_pool_add(&r->lim, key, d->name, (const char *const *)pci, n, e, sizeof(e));
    for (int k = 0; pci && k < n; k++)
        free(pci[k]);
    free(pci);
    if (rc < 0)
        snprintf(why, whylen, "VF pool %s: %s", d->name, e);
    return rc;
}

/* What the guests of s ask of the VF pools (devices with opt_pool).
 * *bad_prefix is set when a VM refuses --mac-prefix (why says how). */
static int suite_vfs(struct runner *r, struct rsuite *s, int *bad_prefix, char *why, size_t whylen)
{
    const struct suite *def = s->def;
    alloc_store *st = NULL;
    int rc = 0;
    for (int i = 0; rc == 0 && i < def->nguests; i++) {
        struct cfg_vm *vm;
        if ((rc = cfg_vm_from_docs(def->doc, def->guests[i].section, def->defaults_doc, &vm, why,
                                   whylen)) < 0)
            break;
        /* --mac-prefix is checked here, before anything runs (gen_start sets it). */
        if (r->o.mac_prefix && (rc = cfg_vm_set(vm, "mac_prefix", r->o.mac_prefix, why, whylen)) < 0) {
            *bad_prefix = 1;
            cfg_vm_free(vm);
            break;
        }
        struct cfg_needs nd;
        cfg_vm_needs(vm, &nd);
        for (int k = 0; rc >= 0 && k < nd.vfs; k++) {
            const struct cfg_vf_pool *d = cfg_vm_vf_pool(vm, nd.vf_pool[k]);
            if (!d)
                continue; /* the fleet says so at launch */
            if ((rc = pool_index(r, &st, d, why, whylen)) >= 0)
                sched_need_vfs(&s->need, rc, 1);
        }
        rc = rc < 0 ? rc : 0;
        cfg_vm_free(vm);
    }
    if (st)
        alloc_store_close(st);
    return rc;
}

/* Refuse a suite before anything is made for it: a name already in the
 * run, or a run dir QEMU's sockets cannot live in. */
static int suite_check(const struct runner *r, const struct suite *def, char *err, size_t errlen)
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
    return 0;
}

/* A suite not (yet) in r->s: what rsuite_new allocated. */
static void rsuite_free_bare(struct rsuite *s)
{
    if (s) {
        free(s->st.cases);
        free(s->st.guests);
        free(s->g);
    }
    free(s);
}

/* The run's record of def with its status names, not yet in the run; r's
 * arrays are grown for one more. NULL when out of memory. */
static struct rsuite *rsuite_new(struct runner *r, struct suite *def)
{
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
        rsuite_free_bare(s);
        return NULL;
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
    return s;
}

int runner_add(runner_t *r, struct suite *def, char *err, size_t errlen)
{
    int rc = suite_check(r, def, err, errlen);
    if (rc < 0)
        return rc;
    struct rsuite *s = rsuite_new(r, def);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char why[512];
    for (int i = 0; i < def->nguests && !s->never; i++) {
        const struct suite_guest *g = &def->guests[i];
        s->st.guests[i].name = g->name;
        if (sched_need_add(&s->need, g->name, g->mem_mb, g->cpupin, g->ncpupin, g->vnc, why, sizeof(why)) < 0)
            s->never = strdup(why);
    }
    int bad_prefix = 0;
    rc = s->never ? 0 : suite_vfs(r, s, &bad_prefix, why, sizeof(why));
    if (bad_prefix) {
        snprintf(err, errlen, "%s: --mac-prefix %s: %s", def->path, r->o.mac_prefix, why);
        rsuite_free_bare(s);
        return rc;
    }
    if (rc < 0)
        s->never = strdup(why);
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
