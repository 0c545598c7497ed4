/* cmd_run.c - `qfleet run`: test suites (cfg/SUITES.md) in parallel on one
 * loop, with status output for dashboards (docs/status.md). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/suite.h"
#include "src/cli/cmd.h"
#include "src/fleet/fleet.h"
#include "src/run/runner.h"
#include "src/run/sched.h"
#include "src/status/status.h"

static const char run_usage[] =
    "usage: qfleet run SUITE... [options]\n"
    "\n"
    "Run test suites (cfg/SUITES.md) in parallel: each suite boots its guests\n"
    "from its DTS cfg once they fit the limits below, runs its cases in order\n"
    "and stops them. Progress is a live table on a terminal, plain lines\n"
    "otherwise; status.json, events.jsonl, metrics.prom and junit.xml are\n"
    "kept up to date in the status dir. VFs of the cfgs' vf_pools count like\n"
    "memory: a suite waits for them.\n"
    "\n"
    "options:\n"
    "  --jobs J           guests at once over all suites (default: 2 per CPU, at least 4)\n"
    "  --mem-budget MiB   memory for guests and QEMU (default: MemAvailable)\n"
    "  --retries R        reruns of a case after an infrastructure error (default 1)\n"
    "  --shard K/N        run only slice K of N of the suites (stable by suite name)\n"
    "  --status-dir DIR   status.json, events.jsonl, metrics.prom, junit.xml (default: run dir)\n"
    "  --junit FILE       write junit.xml here instead\n"
    "  --metrics-textfile DIR  also write metrics.prom as DIR/qfleet.prom, replaced\n"
    "                     atomically, for node_exporter's textfile collector\n"
    "  --run-dir DIR      run directory (default STATE/runs/RUN); suite SUITE uses DIR/SUITE\n"
    "  --state-dir DIR    host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  --boot-timeout S   seconds from start to agent, for every suite\n"
    "  --mac-prefix P     every VM's MAC prefix (1-5 octets), over the cfgs' mac_prefix\n"
    "  --list             print the suites this shard would run and exit (--json: as JSON)\n"
    "  --json             print the final status.json on stdout instead of a summary\n"
    "  --plain            plain progress lines even on a terminal\n"
    "  -q, --quiet        no progress output\n"
    "  --store etcd://H:P[,H:P...]  claim every guest MAC cluster-wide on etcd\n"
    "                     (default $QFLEET_STORE; a directory: the host store there,\n"
    "                     as --state-dir; none: leases stay host-local)\n"
    "  --host-id ID       this host's name in the cluster (default: the host name)\n"
    "  --cluster-wide K   also claim these kinds cluster-wide: vnc,migration,vlan\n"
    "\n"
    "exit: 0 all passed, 1 a case failed, 2 usage or config error (also a suite\n"
    "      that can never fit), 3 infrastructure errors, 128+N stopped by signal N\n";

struct run {
    runner_t *r;
    uv_signal_t sig[3];
    int signo;
    cmd_session cc;
};

static void on_signal(uv_signal_t *h, int signo)
{
    struct run *u = h->data;
    if (u->signo) {
        fprintf(stderr, "qfleet: second signal, exiting at once\n");
        _exit(128 + signo);
    }
    u->signo = signo;
    runner_interrupt(u->r, signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "SIGHUP");
}

static void close_signals(void *data)
{
    struct run *u = data;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&u->sig[i], NULL);
}

static void on_done(runner_t *r, void *data)
{
    struct run *u = data;
    (void)r;
    cmd_session_close(&u->cc, close_signals, u); /* every fleet is freed by now */
}

static void run_cluster_state(cmd_session *cc, cluster_state s, const char *why)
{
    struct run *u = cc->data;
    runner_cluster_state(u->r, s, why);
}

static void run_cluster_conflict(cmd_session *cc, const char *kind, const char *value,
                                 const char *owner, const char *holder)
{
    struct run *u = cc->data;
    runner_cluster_conflict(u->r, kind, value, owner, holder);
}

static void summary(const st_run *st)
{
    printf("%-24s %-8s %6s %6s %6s %7s %9s\n", "SUITE", "RESULT", "PASSED", "FAILED", "ERROR", "SKIPPED",
           "TIME");
    for (int i = 0; i < st->nsuites; i++) {
        const st_suite *s = st->suites[i];
        int n[RES_COUNT] = { 0 };
        for (int k = 0; k < s->ncases; k++)
            n[s->cases[k].result]++;
        double secs = s->started_ms > 0 && s->finished_ms > 0 ? (s->finished_ms - s->started_ms) / 1000.0 : 0;
        printf("%-24s %-8s %6d %6d %6d %7d %8.1fs\n", s->name, st_result_name(s->result), n[RES_PASSED],
               n[RES_FAILED], n[RES_ERROR], n[RES_SKIPPED], secs);
    }
    int shown = 0;
    for (int i = 0; i < st->nsuites; i++) {
        const st_suite *s = st->suites[i];
        for (int k = 0; k < s->ncases; k++) {
            const st_case *c = &s->cases[k];
            if (c->result != RES_FAILED && c->result != RES_ERROR)
                continue;
            if (!shown++)
                printf("\n");
            printf("%s %s/%s: %s\n", c->result == RES_FAILED ? "FAILED" : "ERROR ", s->name, c->name,
                   c->message ? c->message : "");
        }
    }
    printf("\nstatus: %s/status.json\njunit:  %s\nrun:    %s\n", st->status_dir, st->junit_path, st->run_dir);
    fflush(stdout);
}

/* What `qfleet run` was asked for. */
struct run_args {
    runner_opts ro;
    int list, json, plain;
    const char *metrics_textfile;
    const char *store, *host_id;
    char **suites;
    int nsuites;
};

static int run_parse(int argc, char **argv, struct run_args *a)
{
    static const char P[] = "qfleet run";
    enum { O_JOBS, O_MEM, O_RETRIES, O_SHARD, O_STATUS, O_JUNIT, O_RUN_DIR, O_STATE, O_BOOT,
           O_LIST, O_JSON, O_PLAIN, O_QUIET, O_TEXTFILE, O_MAC_PREFIX,
           O_STORE, O_HOST_ID, O_CLUSTER_WIDE };
    cli_opt opts[] = {
        { "--jobs", 0, 1, NULL },         { "--mem-budget", 0, 1, NULL },
        { "--retries", 0, 1, NULL },      { "--shard", 0, 1, NULL },
        { "--status-dir", 0, 1, NULL },   { "--junit", 0, 1, NULL },
        { "--run-dir", 0, 1, NULL },      { "--state-dir", 0, 1, NULL },
        { "--boot-timeout", 0, 1, NULL }, { "--list", 0, 0, NULL },
        { "--json", 0, 0, NULL },         { "--plain", 0, 0, NULL },
        { "--quiet", 'q', 0, NULL },      { "--metrics-textfile", 0, 1, NULL },
        { "--mac-prefix", 0, 1, NULL },
        { "--store", 0, 1, NULL },        { "--host-id", 0, 1, NULL },
        { "--cluster-wide", 0, 1, NULL },
        { NULL, 0, 0, NULL },
    };
    cli_args ca;
    if (cli_parse(P, argc, argv, opts, -1, &ca))
        return 2;
    if (ca.help)
        return CLI_HELP;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    runner_opts *ro = &a->ro;
    *a = (struct run_args){ .ro = { .retries = 1, .jobs = ncpu > 2 ? (int)ncpu * 2 : 4 },
                            .list = !!opts[O_LIST].value, .json = !!opts[O_JSON].value,
                            .plain = !!opts[O_PLAIN].value, .suites = ca.pos, .nsuites = ca.npos };
    ro->status_dir = opts[O_STATUS].value;
    ro->junit_path = opts[O_JUNIT].value;
    ro->run_dir = opts[O_RUN_DIR].value;
    ro->state_dir = opts[O_STATE].value;
    ro->quiet = !!opts[O_QUIET].value;
    ro->mac_prefix = opts[O_MAC_PREFIX].value;
    a->metrics_textfile = opts[O_TEXTFILE].value;
    a->store = opts[O_STORE].value;
    a->host_id = opts[O_HOST_ID].value;
    char why[256];
    if (fleet_cluster_wide_parse(opts[O_CLUSTER_WIDE].value, &ro->cluster_wide, why, sizeof(why)) < 0)
        return cli_usage_error(P, "--cluster-wide: %s", why);
    if (cli_int(P, &opts[O_JOBS], 1, 100000, &ro->jobs) ||
        cli_number(P, &opts[O_MEM], 1, 1LL << 40, &ro->mem_budget_mb) ||
        cli_int(P, &opts[O_RETRIES], 0, 100, &ro->retries) ||
        cli_int(P, &opts[O_BOOT], 1, 86400, &ro->boot_timeout_s))
        return 2;
    const char *sh = opts[O_SHARD].value;
    if (sh && sched_shard_parse(sh, &ro->shard_k, &ro->shard_n) < 0)
        return cli_usage_error(P, "--shard takes K/N with 1 <= K <= N, not '%s'", sh);
    if (a->nsuites == 0)
        return cli_usage_error(P, "name at least one SUITE file");
    return 0;
}

/* Two suites of one name would share a run subdirectory and a junit
 * test suite. 0 or 2, said on stderr. */
static int check_names(struct suite **defs, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i; k++)
            if (!strcmp(defs[i]->name, defs[k]->name)) {
                fprintf(stderr,
                        "qfleet run: %s and %s are both suite '%s' (set 'name =' in [suite])\n",
                        defs[k]->path, defs[i]->path, defs[i]->name);
                return 2;
            }
    return 0;
}

/* Load every suite, then keep those of this shard in defs[0 .. *kept).
 * Every suite is loaded (and checked) on every shard: a broken suite fails
 * the whole matrix the same way, not only the host it lands on. Errors
 * name FILE:LINE:COL. 0, or 2 (nothing left to free) or 3. */
static int run_load(const struct run_args *a, struct suite ***out, int *kept)
{
    int n = a->nsuites, bad = 0;
    struct suite **defs = calloc((size_t)n, sizeof(*defs));
    if (!defs)
        return 3;
    char err[2048];
    for (int i = 0; i < n; i++)
        if (suite_load(a->suites[i], &defs[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "qfleet run: %s\n", err);
            defs[i] = NULL;
            bad = 1;
        }
    if (bad || check_names(defs, n)) {
        for (int i = 0; i < n; i++)
            suite_free(defs[i]);
        free(defs);
        return 2;
    }
    *kept = 0;
    for (int i = 0; i < n; i++) {
        struct suite *s = defs[i];
        if (a->ro.shard_n && sched_shard_of(s->name, a->ro.shard_n) != a->ro.shard_k - 1) {
            suite_free(s);
            continue;
        }
        for (int w = 0; !a->ro.quiet && !a->list && w < s->nwarnings; w++)
            fprintf(stderr, "%s\n", s->warnings[w]);
        defs[(*kept)++] = s;
    }
    *out = defs;
    return 0;
}

/* --list: the suites of this shard, as lines or as JSON. */
static int run_list(const struct run_args *a, struct suite **defs, int n)
{
    json_t *arr = a->json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        if (arr) {
            json_t *o = json_object();
            json_set_str(o, "name", defs[i]->name);
            json_set_str(o, "path", defs[i]->path);
            json_append(arr, o);
        } else {
            printf("%s\t%s\n", defs[i]->name, defs[i]->path);
        }
        suite_free(defs[i]);
    }
    free(defs);
    return arr && cli_print_json(arr) < 0 ? 3 : 0;
}

/* --metrics-textfile DIR: an existing directory, kept absolute. */
static int textfile_dir(const char *dir, st_run *st)
{
    char abs[PATH_MAX];
    struct stat sb;
    int ok = realpath(dir, abs) && stat(abs, &sb) == 0;
    if (ok && !S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "qfleet run: --metrics-textfile %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(st->metrics_textfile, sizeof(st->metrics_textfile), "%s", abs);
    return 0;
}

/* A runner with every suite added (it owns them from here). 0, or the
 * exit code with everything closed. */
static int run_start(uv_loop_t *loop, struct run_args *a, struct suite **defs, int n, struct run *u)
{
    char err[2048];
    a->ro.tty = !a->plain && !a->json && isatty(STDERR_FILENO) && getenv("TERM") &&
                strcmp(getenv("TERM"), "dumb");
    a->ro.cluster = u->cc.c;
    int rc = runner_new(loop, &a->ro, &u->r, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet run: %s\n", err);
        for (int i = 0; i < n; i++)
            suite_free(defs[i]);
        free(defs);
        cmd_session_close(&u->cc, NULL, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        return 3;
    }
    st_run *st = runner_status(u->r);
    st->cluster = u->cc.c;
    snprintf(st->cluster_store, sizeof(st->cluster_store), "%s", u->cc.store);
    u->cc.on_state = run_cluster_state;
    u->cc.on_conflict = run_cluster_conflict;
    if (a->metrics_textfile && textfile_dir(a->metrics_textfile, runner_status(u->r)) < 0)
        rc = -1;
    int code = 2; /* a suite the run cannot take; 3 when the host's set-up is why */
    for (int i = 0; i < n; i++) {
        int ra = rc == 0 ? runner_add(u->r, defs[i], err, sizeof(err)) : 0;
        if (ra < 0) {
            fprintf(stderr, "qfleet run: %s\n", err);
            rc = -1;
            code = ra == -ENAMETOOLONG ? 3 : 2;
        }
        if (rc < 0)
            suite_free(defs[i]);
    }
    free(defs);
    if (rc == 0)
        return 0;
    /* Nothing started: close what the runner opened and leave. */
    runner_interrupt(u->r, "a configuration error");
    runner_start(u->r, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    cmd_session_close(&u->cc, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    runner_free(u->r);
    uv_loop_close(loop);
    return code;
}

static void run_report(const struct run_args *a, runner_t *r)
{
    st_run *st = runner_status(r);
    if (a->json) {
        json_t *doc = status_json(st);
        char *s = json_dump_pretty(doc, NULL);
        json_free(doc);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else if (!a->ro.quiet) {
        summary(st);
    }
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    int rc = run_parse(argc, argv, &a), n;
    if (rc)
        return rc == CLI_HELP ? cli_help(run_usage) : rc;
    struct suite **defs;
    if ((rc = run_load(&a, &defs, &n)) != 0)
        return rc;
    if (a.list)
        return run_list(&a, defs, n);
    struct run u = { 0 };
    uv_loop_t *loop = uv_default_loop();
    u.cc.data = &u;
    if ((rc = cmd_session_open(loop, "qfleet run", a.store, a.host_id, &u.cc)) != 0) {
        for (int i = 0; i < n; i++)
            suite_free(defs[i]);
        free(defs);
        return rc;
    }
    if (!u.cc.c && u.cc.store[0] && !a.ro.state_dir)
        a.ro.state_dir = u.cc.store;
    if ((rc = run_start(loop, &a, defs, n, &u)) != 0)
        return rc;
    const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &u.sig[i]);
        u.sig[i].data = &u;
        uv_signal_start(&u.sig[i], on_signal, sigs[i]);
    }
    runner_start(u.r, on_done, &u);
    uv_run(loop, UV_RUN_DEFAULT);
    run_report(&a, u.r);
    int code = u.signo ? 128 + u.signo : runner_exit_code(u.r);
    runner_free(u.r);
    uv_loop_close(loop);
    return code;
}
