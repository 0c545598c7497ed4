/* cmd_run.c - `qfleet run`: test suites (cfg/SUITES.md) in parallel on one
 * loop, with status output for dashboards (docs/status.md). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg/suite.h"
#include "src/cli/cmd.h"
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
    "kept up to date in the status dir.\n"
    "\n"
    "options:\n"
    "  --jobs J           guests at once over all suites (default: 2 per CPU, at least 4)\n"
    "  --mem-budget MiB   memory for guests and QEMU (default: MemAvailable)\n"
    "  --retries R        reruns of a case after an infrastructure error (default 1)\n"
    "  --shard K/N        run only slice K of N of the suites (stable by suite name)\n"
    "  --status-dir DIR   status.json, events.jsonl, metrics.prom, junit.xml (default: run dir)\n"
    "  --junit FILE       write junit.xml here instead\n"
    "  --run-dir DIR      run directory (default STATE/runs/RUN); suite SUITE uses DIR/SUITE\n"
    "  --state-dir DIR    host state dir (default $QFLEET_STATE_DIR, /var/lib/qfleet)\n"
    "  --boot-timeout S   seconds from start to agent, for every suite\n"
    "  --list             print the suites this shard would run and exit\n"
    "  --json             print the final status.json on stdout instead of a summary\n"
    "  --plain            plain progress lines even on a terminal\n"
    "  -q, --quiet        no progress output\n"
    "\n"
    "exit: 0 all passed, 1 a case failed, 2 usage or config error (also a suite\n"
    "      that can never fit), 3 infrastructure errors, 128+N stopped by signal N\n";

struct run {
    runner_t *r;
    uv_signal_t sig[3];
    int signo;
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

static void on_done(runner_t *r, void *data)
{
    struct run *u = data;
    (void)r;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&u->sig[i], NULL);
}

static int parse_num(const char *s, const char *what, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "qfleet run: %s must be a number from %lld to %lld, not '%s'\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
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

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "jobs", required_argument, 0, 'j' },       { "mem-budget", required_argument, 0, 'm' },
        { "retries", required_argument, 0, 'r' },    { "shard", required_argument, 0, 'S' },
        { "status-dir", required_argument, 0, 'o' }, { "junit", required_argument, 0, 'x' },
        { "run-dir", required_argument, 0, 'R' },    { "state-dir", required_argument, 0, 's' },
        { "boot-timeout", required_argument, 0, 'b' }, { "list", no_argument, 0, 'l' },
        { "json", no_argument, 0, 'J' },             { "plain", no_argument, 0, 'p' },
        { "quiet", no_argument, 0, 'q' },            { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    runner_opts ro = { .retries = 1 };
    long long v;
    int c, list = 0, json = 0, plain = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ro.jobs = ncpu > 2 ? (int)ncpu * 2 : 4;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': if (parse_num(optarg, "--jobs", 1, 100000, &v) < 0) return 2; ro.jobs = (int)v; break;
        case 'm': if (parse_num(optarg, "--mem-budget", 1, 1LL << 40, &v) < 0) return 2; ro.mem_budget_mb = v; break;
        case 'r': if (parse_num(optarg, "--retries", 0, 100, &v) < 0) return 2; ro.retries = (int)v; break;
        case 'b': if (parse_num(optarg, "--boot-timeout", 1, 86400, &v) < 0) return 2; ro.boot_timeout_s = (int)v; break;
        case 'S':
            if (sched_shard_parse(optarg, &ro.shard_k, &ro.shard_n) < 0) {
                fprintf(stderr, "qfleet run: --shard takes K/N with 1 <= K <= N, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'o': ro.status_dir = optarg; break;
        case 'x': ro.junit_path = optarg; break;
        case 'R': ro.run_dir = optarg; break;
        case 's': ro.state_dir = optarg; break;
        case 'l': list = 1; break;
        case 'J': json = 1; break;
        case 'p': plain = 1; break;
        case 'q': ro.quiet = 1; break;
        case 'h': fputs(run_usage, stdout); return 0;
        default: fputs(run_usage, stderr); return 2;
        }
    }
    if (optind >= argc) {
        fputs(run_usage, stderr);
        return 2;
    }
    /* Every suite is loaded (and checked) on every shard: a broken suite
     * fails the whole matrix the same way, not only the host it lands on. */
    int n = argc - optind, bad = 0, kept = 0;
    struct suite **defs = calloc((size_t)n, sizeof(*defs));
    if (!defs)
        return 3;
    char err[2048];
    for (int i = 0; i < n; i++) {
        if (suite_load(argv[optind + i], &defs[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "qfleet run: %s\n", err);
            defs[i] = NULL;
            bad = 1;
        }
    }
    /* Names are run subdirectories and junit test suites: unique. */
    for (int i = 0; i < n && !bad; i++)
        for (int k = 0; k < i && !bad; k++)
            if (!strcmp(defs[i]->name, defs[k]->name)) {
                fprintf(stderr, "qfleet run: %s and %s are both suite '%s' (set 'name =' in [suite])\n",
                        defs[k]->path, defs[i]->path, defs[i]->name);
                bad = 1;
            }
    for (int i = 0; i < n && !bad; i++) {
        struct suite *s = defs[i];
        if (ro.shard_n && sched_shard_of(s->name, ro.shard_n) != ro.shard_k - 1) {
            suite_free(s);
            defs[i] = NULL;
            continue;
        }
        for (int w = 0; !ro.quiet && !list && w < s->nwarnings; w++)
            fprintf(stderr, "%s\n", s->warnings[w]);
        defs[kept++] = s;
    }
    if (bad || list) {
        for (int i = 0; i < (bad ? n : kept); i++) {
            if (list && defs[i])
                printf("%s\t%s\n", defs[i]->name, defs[i]->path);
            suite_free(defs[i]);
        }
        free(defs);
        return bad ? 2 : 0;
    }

    struct run u = { 0 };
    uv_loop_t *loop = uv_default_loop();
    ro.tty = !plain && !json && isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
    int rc = runner_new(loop, &ro, &u.r, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qfleet run: %s\n", err);
        for (int i = 0; i < kept; i++)
            suite_free(defs[i]);
        free(defs);
        return 3;
    }
    for (int i = 0; i < kept; i++) {
        if (rc == 0 && runner_add(u.r, defs[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "qfleet run: %s\n", err);
            rc = -1;
        }
        if (rc < 0)
            suite_free(defs[i]);
    }
    free(defs);
    if (rc < 0) {
        /* Nothing started: close what the runner opened and leave. */
        runner_interrupt(u.r, "a configuration error");
        runner_start(u.r, NULL, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        runner_free(u.r);
        uv_loop_close(loop);
        return 2;
    }
    const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &u.sig[i]);
        u.sig[i].data = &u;
        uv_signal_start(&u.sig[i], on_signal, sigs[i]);
    }
    runner_start(u.r, on_done, &u);
    uv_run(loop, UV_RUN_DEFAULT);
    st_run *st = runner_status(u.r);
    if (json) {
        json_t *doc = status_json(st);
        char *s = json_dump_pretty(doc, NULL);
        json_free(doc);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else if (!ro.quiet) {
        summary(st);
    }
    int code = u.signo ? 128 + u.signo : runner_exit_code(u.r);
    runner_free(u.r);
    uv_loop_close(loop);
    return code;
}
