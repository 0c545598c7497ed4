/* test_status.c - the run's outputs from a made-up run model: status.json
 * against its schema (and the checker against broken documents), junit.xml
 * against tests/junit.xsd with xmllint, metrics.prom in the text format,
 * events.jsonl lines, the live table's width. */
#include <criterion/criterion.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "cfg/suite.h"
#include "src/run/runner.h"
#include "src/status/status.h"
#include "testutil.h"

static char dir[256];
static st_run run;
static st_suite sa, sb;
static st_case ca[5], cb[1];
static st_guest ga[2];
static double boots[3] = { 3.2, 12, 400 };
static st_suite *suites[2] = { &sa, &sb };

static json_t *guest_snap(void)
{
    json_t *g = json_object();
    json_set_str(g, "name", "vm0-1.2");
    json_set_str(g, "state", "ready");
    json_set(g, "reason", json_null());
    json_set_int(g, "pid", 4242);
    json_t *macs = json_array();
    json_append(macs, json_string("02:00:00:00:00:01"));
    json_set(g, "macs", macs);
    json_set_int(g, "vnc", 3);
    json_set_int(g, "ssh_port", 20001);
    json_set_str(g, "ip", "10.0.2.15");
    json_set(g, "pci", json_array());
    json_set_str(g, "serial", "vm0-1.2-serial.log");
    json_set_int(g, "started_ms", 1700000000000);
    json_t *t = json_object();
    json_set_int(t, "launching", 3);
    json_set_int(t, "ready", 9000);
    json_set(g, "timings_ms", t);
    return g;
}

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "status"), 0);
    memset(&run, 0, sizeof(run));
    snprintf(run.id, sizeof(run.id), "20240101-000000-1");
    snprintf(run.run_dir, sizeof(run.run_dir), "%s", dir);
    snprintf(run.status_dir, sizeof(run.status_dir), "%s", dir);
    snprintf(run.junit_path, sizeof(run.junit_path), "%s/junit.xml", dir);
    run.state = RUN_RUNNING;
    run.started_ms = 1700000000000;
    run.exit_code = -1;
    run.jobs = 4;
    run.retries = 1;
    run.suites = suites;
    run.nsuites = 2;
    run.boot_s = boots;
    run.nboot = 3;

    memset(ca, 0, sizeof(ca));
    const char *names[5] = { "ok", "bad", "infra", "skip", "later" };
    const st_result res[5] = { RES_PASSED, RES_FAILED, RES_ERROR, RES_SKIPPED, RES_PENDING };
    for (int i = 0; i < 5; i++) {
        ca[i].name = names[i];
        ca[i].result = res[i];
        ca[i].attempts = i < 3;
        ca[i].started_ms = i < 3 ? 1700000001000 : 0;
        ca[i].finished_ms = i < 3 ? 1700000002500 : 0;
    }
    /* What commands print is anything: control bytes, broken UTF-8, markup. */
    st_case_log(&ca[0], "--- t.suite:3: run vm0-1: uname  [ok]\nstdout:\nctl\x01\x1b[0m bad\xff\xfe utf8 \xc3\xa9 "
                        "<tag> & ]]> \"q\" 'a'\n");
    ca[1].message = strdup("t.suite:9: expected stdout ~ \"x\", got 'y'\nsecond line");
    ca[1].detail = strdup("--- t.suite:9: run vm0-1: echo y  [FAILED]\nstdout:\ny\n");
    st_case_log(&ca[1], "%s", ca[1].detail);
    ca[1].steps = calloc(1, sizeof(st_step));
    ca[1].steps[0] = (st_step){ strdup("run vm0-1: echo y"), 9, RES_FAILED, 12.5, strdup("expected ...") };
    ca[1].nsteps = ca[1].steps_cap = 1;
    ca[2].message = strdup("infrastructure error: guest vm0-1 failed: QEMU was killed by signal 9");
    ca[3].message = strdup("not run: case infra hit an infrastructure error");

    memset(&sa, 0, sizeof(sa));
    sa.name = "alpha";
    sa.file = "suites/alpha.suite";
    snprintf(sa.run_dir, sizeof(sa.run_dir), "%s/alpha", dir);
    sa.state = SS_RUNNING;
    sa.result = RES_RUNNING;
    sa.started_ms = 1700000000100;
    sa.current = 4;
    sa.cases = ca;
    sa.ncases = 5;
    memset(ga, 0, sizeof(ga));
    ga[0].name = "vm0-1";
    snprintf(ga[0].instance, sizeof(ga[0].instance), "vm0-1.2");
    ga[0].boots = 2;
    ga[0].snap = guest_snap();
    ga[1].name = "vm0-2";
    sa.guests = ga;
    sa.nguests = 2;
    sa.retries_used = 1;

    memset(cb, 0, sizeof(cb));
    cb[0].name = "waits";
    memset(&sb, 0, sizeof(sb));
    sb.name = "beta";
    sb.file = "beta.suite";
    sb.setup_each = 1;
    sb.state = SS_WAITING;
    sb.result = RES_PENDING;
    sb.reason = strdup("waiting for 2 guest slots (0 of 4 free)");
    sb.current = -1;
    sb.cases = cb;
    sb.ncases = 1;
}

static void teardown(void)
{
    for (int i = 0; i < 5; i++) {
        st_case_reset(&ca[i]);
        free(ca[i].log);
    }
    json_free(ga[0].snap);
    free(sb.reason);
    tu_rmtree(dir);
}

TestSuite(status, .init = setup, .fini = teardown);

Test(status, document_matches_its_schema)
{
    json_t *doc = status_json(&run);
    char err[512];
    cr_assert_eq(status_check(doc, err, sizeof(err)), 0, "%s", err);
    json_t *counts = json_get(doc, "counts");
    cr_assert_eq(json_get_int(json_get(counts, "cases"), "total", -1), 6);
    cr_assert_eq(json_get_int(json_get(counts, "cases"), "failed", -1), 1);
    cr_assert_eq(json_get_int(json_get(counts, "guests"), "ready", -1), 1);
    cr_assert_eq(json_get_int(json_get(counts, "guests"), "pending", -1), 1);
    /* Every suite state is counted under its one name, zeros included. */
    const json_t *sc = json_get(counts, "suites");
    cr_assert_eq(json_len(sc), 1 + SS_COUNT, "total and one count per state");
    cr_assert_eq(json_get_int(sc, "running", -1), 1);
    cr_assert_eq(json_get_int(sc, "waiting", -1), 1);
    cr_assert_eq(json_get_int(sc, "queued", -1), 0);
    cr_assert_str_eq(json_get_str(json_at(json_get(doc, "suites"), 1), "state"), "waiting");
    cr_assert_str_eq(json_get_str(json_get(doc, "run"), "state"), "running");
    json_t *g = json_at(json_get(json_at(json_get(doc, "suites"), 0), "guests"), 0);
    cr_assert_str_eq(json_get_str(g, "mac"), "02:00:00:00:00:01");
    cr_assert_str_eq(json_get_str(g, "instance"), "vm0-1.2");
    char want[400];
    snprintf(want, sizeof(want), "%s/alpha/vm0-1.2-serial.log", dir);
    cr_assert_str_eq(json_get_str(g, "serial"), want);
    cr_assert_str_eq(json_get_str(json_at(json_get(doc, "suites"), 0), "current_case"), "later");
    json_free(doc);
}

/* The checker finds what is wrong, and where. */
Test(status, checker_rejects_broken_documents)
{
    char err[512];
    struct { const char *path, *key; json_t *val; const char *want; } cases[] = {
        { "", "version", json_int(2), "status.version" },
        { "run", "state", json_string("paused"), "run.state: 'paused'" },
        { "run", "started_ms", json_string("now"), "run.started_ms: expected an integer" },
        { "run", "exit_code", json_string("0"), "run.exit_code: expected an integer or null" },
        { "suite", "result", json_string("green"), "suites[0].result" },
        { "suite", "cases", json_object(), "suites[0].cases: expected an array" },
        { "case", "attempts", json_null(), "suites[0].cases[0].attempts" },
        { "guest", "state", json_string("zombie"), "suites[0].guests[0].state" },
        { "counts", "total", json_int(7), "counts.cases" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = status_json(&run);
        json_t *s0 = json_at(json_get(doc, "suites"), 0);
        json_t *at = !*cases[i].path ? doc : !strcmp(cases[i].path, "run") ? json_get(doc, "run")
                   : !strcmp(cases[i].path, "suite") ? s0
                   : !strcmp(cases[i].path, "case") ? json_at(json_get(s0, "cases"), 0)
                   : !strcmp(cases[i].path, "guest") ? json_at(json_get(s0, "guests"), 0)
                   : json_get(json_get(doc, "counts"), "cases");
        json_set(at, cases[i].key, cases[i].val);
        cr_assert_lt(status_check(doc, err, sizeof(err)), 0, "accepted a broken %s", cases[i].key);
        cr_assert(strstr(err, cases[i].want), "wanted '%s' in: %s", cases[i].want, err);
        json_free(doc);
    }
    json_t *doc = status_json(&run);
    json_free(json_take(json_get(doc, "run"), "id"));
    cr_assert_lt(status_check(doc, err, sizeof(err)), 0);
    cr_assert(strstr(err, "run.id: missing"), "%s", err);
    json_free(doc);
}

static int xmllint(const char *xml)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("xmllint", "xmllint", "--noout", "--schema", QF_SOURCE_DIR "/tests/junit.xsd", xml, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(status, junit_validates_and_escapes)
{
    char err[512];
    cr_assert_eq(junit_write(&run, run.junit_path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(xmllint(run.junit_path), 0, "junit.xml does not validate against tests/junit.xsd");
    char *x = fs_read_file(run.junit_path, 1 << 20, NULL);
    cr_assert(x);
    cr_assert(strstr(x, "<testsuites name=\"qfleet run 20240101-000000-1\" tests=\"6\" failures=\"1\" "
                        "errors=\"1\" skipped=\"3\""), "%.400s", x);
    cr_assert(strstr(x, "<testsuite name=\"alpha\" tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"2\" "
                        "time=\"4.500\""), "%.600s", x);
    cr_assert(strstr(x, "<testcase name=\"bad\" classname=\"alpha\" time=\"1.500\">"));
    cr_assert(strstr(x, "<failure message=\"t.suite:9: expected stdout ~ &quot;x&quot;, got &apos;y&apos;&#10;"
                        "second line\" type=\"ExpectationFailed\">--- t.suite:9"), "%s", x);
    cr_assert(strstr(x, "<error message=\"infrastructure error: guest vm0-1 failed"));
    cr_assert(strstr(x, "type=\"InfrastructureError\"/>"));
    cr_assert(strstr(x, "<skipped message=\"not run: case infra hit"));
    cr_assert(strstr(x, "ctl??[0m bad?? utf8 \xc3\xa9 &lt;tag&gt; &amp; ]]&gt; \"q\" 'a'"), "%s", x);
    cr_assert(strstr(x, "<property name=\"reason\" value=\"waiting for 2 guest slots"));
    free(x);
}

Test(status, metrics_in_text_format)
{
    char *m = metrics_render(&run);
    cr_assert(m);
    regex_t line;
    cr_assert_eq(regcomp(&line, "^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
                                "([0-9.e+-]+|\\+Inf|NaN))$", REG_EXTENDED | REG_NOSUB), 0);
    long long last = -1;
    int buckets = 0;
    for (char *save, *l = strtok_r(m, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cr_assert_eq(regexec(&line, l, 0, NULL, 0), 0, "not the text format: '%s'", l);
        long long v;
        if (sscanf(l, "qfleet_guest_boot_seconds_bucket{le=\"%*[^\"]\"} %lld", &v) == 1) {
            cr_assert_geq(v, last, "buckets are cumulative: %s", l);
            last = v;
            buckets++;
        }
    }
    regfree(&line);
    free(m);
    m = metrics_render(&run);
    cr_assert_gt(buckets, 5);
    cr_assert_eq(last, 3, "+Inf holds every boot");
    cr_assert(strstr(m, "qfleet_guest_boot_seconds_bucket{le=\"5\"} 1\n"));
    cr_assert(strstr(m, "qfleet_guest_boot_seconds_bucket{le=\"15\"} 2\n"));
    cr_assert(strstr(m, "qfleet_guest_boot_seconds_count 3\n"));
    cr_assert(strstr(m, "qfleet_guest_boot_seconds_sum 415.200\n"));
    cr_assert(strstr(m, "qfleet_guests{state=\"ready\"} 1\n"));
    cr_assert(strstr(m, "qfleet_cases{result=\"error\"} 1\n"));
    cr_assert(strstr(m, "# TYPE qfleet_guest_boot_seconds histogram\n"));
    free(m);
}

Test(status, table_fits_the_terminal)
{
    char *t = status_table(&run, 60);
    cr_assert(t);
    int lines = 0;
    for (char *save, *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save), lines++)
        cr_assert_lt(strlen(l), 60, "'%s' would wrap", l);
    cr_assert_eq(lines, 4, "header, column names, one line per suite");
    free(t);
    t = status_table(&run, 200);
    cr_assert(strstr(t, "alpha") && strstr(t, "beta") && strstr(t, "waiting for 2 guest slots"), "%s", t);
    cr_assert(strstr(t, "1 pending, 1 ready"), "%s", t);
    free(t);
}

static void closed(status_t *st, void *data)
{
    (void)st;
    ++*(int *)data;
}

static void on_tick(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

Test(status, events_and_files)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    status_t *st = NULL;
    cr_assert_eq(status_open(&run, &loop, 0, 1, &st, err, sizeof(err)), 0, "%s", err);
    json_t *e = json_object();
    json_set_str(e, "suite", "alpha");
    json_set_str(e, "state", "running");
    status_event(st, "suite", e);
    status_event(st, "run", json_object());
    status_changed(st, 1);
    /* The prepare handle writes the files before the loop waits again. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    int nclosed = 0;
    status_close(st, closed, &nclosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(nclosed, 1, "the close callback runs exactly once");
    cr_assert_eq(uv_loop_close(&loop), 0);
    char p[400];
    snprintf(p, sizeof(p), "%s/events.jsonl", dir);
    char *ev = fs_read_file(p, 1 << 20, NULL);
    cr_assert(ev);
    char *nl = strchr(ev, '\n');
    cr_assert(nl);
    json_t *first = json_parse(ev, (size_t)(nl - ev), NULL, 0);
    cr_assert_str_eq(json_get_str(first, "kind"), "suite");
    cr_assert_str_eq(json_get_str(first, "run"), "20240101-000000-1");
    cr_assert_gt(json_get_int(first, "ts_ms", 0), 0);
    cr_assert_str_eq(json_get_str(first, "suite"), "alpha");
    json_free(first);
    free(ev);
    const char *files[] = { "status.json", "metrics.prom", "junit.xml" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        cr_assert_eq(access(p, R_OK), 0, "%s was not written", files[i]);
    }
    snprintf(p, sizeof(p), "%s/status.json", dir);
    size_t n;
    char *s = fs_read_file(p, 1 << 20, &n);
    json_t *doc = json_parse(s, n, err, sizeof(err));
    cr_assert(doc, "%s", err);
    cr_assert_eq(status_check(doc, err, sizeof(err)), 0, "%s", err);
    json_free(doc);
    free(s);
}

/* The setup mode as the suite file says it: all, each, or clone (warm
 * clones: fresh guests per case, so setup_each is set too). */
Test(status, setup_mode_names_clone)
{
    char err[512];
    const char *want[3] = { "all", "each", "clone" };
    for (int mode = 0; mode < 3; mode++) {
        sb.setup_each = mode >= 1;
        sb.setup_clone = mode == 2;
        json_t *doc = status_json(&run);
        cr_assert_str_eq(json_get_str(json_at(json_get(doc, "suites"), 1), "setup"), want[mode]);
        cr_assert_eq(status_check(doc, err, sizeof(err)), 0, "%s: %s", want[mode], err);
        json_free(doc);
        char *x = junit_render(&run);
        char prop[96];
        snprintf(prop, sizeof(prop), "<property name=\"setup\" value=\"%s\"/>", want[mode]);
        cr_assert(strstr(x, prop), "%s not in %.2000s", prop, x);
        free(x);
    }
    json_t *doc = status_json(&run);
    json_set_str(json_at(json_get(doc, "suites"), 1), "setup", "warm");
    cr_assert_eq(status_check(doc, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "suites[1].setup: 'warm'"), "%s", err);
    json_free(doc);
}

static void on_run_done(runner_t *r, void *data)
{
    (void)r;
    *(int *)data = 1;
}

/* The runner carries a suite's `setup = clone` into status.json (a suite
 * that can never fit: the run ends without booting anything). */
Test(status, runner_reports_setup_clone)
{
    char p[512], err[2048];
    snprintf(p, sizeof(p), "%s/guest.cfg", dir);
    tu_guest_cfg(p, "vm0", NULL, NULL, NULL);
    tu_write_in(dir, "warm.suite", "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\nsetup = clone\n"
                                   "[case a]\nrun vm0-1: true\n");
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char state[400], rd[400];
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(rd, sizeof(rd), "%s/r", dir);
    runner_opts ro = { .state_dir = state, .run_dir = rd, .jobs = 1, .quiet = 1 };
    runner_t *r;
    cr_assert_eq(runner_new(&loop, &ro, &r, err, sizeof(err)), 0, "%s", err);
    struct suite *s;
    snprintf(p, sizeof(p), "%s/warm.suite", dir);
    cr_assert_eq(suite_load(p, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert(s->setup_each && s->setup_clone);
    cr_assert_eq(runner_add(r, s, err, sizeof(err)), 0, "%s", err);
    int done = 0;
    runner_start(r, on_run_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(done);
    runner_free(r);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open");
    snprintf(p, sizeof(p), "%s/status.json", rd);
    size_t n;
    char *text = fs_read_file(p, 1 << 20, &n);
    cr_assert(text, "%s", p);
    json_t *doc = json_parse(text, n, err, sizeof(err));
    cr_assert(doc, "%s", err);
    cr_assert_eq(status_check(doc, err, sizeof(err)), 0, "%s", err);
    const json_t *su = json_at(json_get(doc, "suites"), 0);
    cr_assert_str_eq(json_get_str(su, "state"), "done", "the suite never fits --jobs 1");
    cr_assert_str_eq(json_get_str(su, "setup"), "clone");
    json_free(doc);
    free(text);
}

/* What changes without an event: the model's owner brings it in through
 * st_run.refresh, and the publisher rewrites status.json (nobody called
 * status_changed). Here a queued guest starts to wait, as the runner's
 * refresh copies fguest_json when only the guest's reason changed. */
static int waits(st_run *m, void *data)
{
    (void)m;
    int *calls = data;
    if ((*calls)++)
        return 0;
    json_t *g = json_object();
    json_set_str(g, "name", "vm0-2");
    json_set_str(g, "state", "queued");
    json_set_str(g, "reason", "waiting: etcd unreachable since 12:01:02, lease proven until 12:01:07: x");
    ga[1].snap = g;
    snprintf(ga[1].instance, sizeof(ga[1].instance), "vm0-2");
    return 1;
}

Test(status, refresh_brings_a_waiting_guests_reason)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    int calls = 0;
    run.refresh = waits;
    run.refresh_data = &calls;
    status_t *st = NULL;
    cr_assert_eq(status_open(&run, &loop, 0, 1, &st, err, sizeof(err)), 0, "%s", err);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    int nclosed = 0;
    status_close(st, closed, &nclosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_geq(calls, 1, "the publisher never asked for a refresh");
    char p[400];
    snprintf(p, sizeof(p), "%s/status.json", dir);
    size_t n;
    char *s = fs_read_file(p, 1 << 20, &n);
    cr_assert(s, "status.json was not written after a refresh that changed the model");
    json_t *doc = json_parse(s, n, err, sizeof(err));
    cr_assert(doc, "%s", err);
    cr_assert_eq(status_check(doc, err, sizeof(err)), 0, "%s", err);
    const json_t *g = json_at(json_get(json_at(json_get(doc, "suites"), 0), "guests"), 1);
    cr_assert_str_eq(json_get_str(g, "state"), "queued");
    cr_assert_str_eq(json_get_str(g, "reason"),
                     "waiting: etcd unreachable since 12:01:02, lease proven until 12:01:07: x");
    json_free(doc);
    free(s);
    json_free(ga[1].snap);
    ga[1].snap = NULL;
}

Test(status, case_log_is_capped)
{
    st_case c = { .name = "big" };
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk) - 1);
    chunk[sizeof(chunk) - 1] = '\0';
    for (int i = 0; i < 400; i++)
        st_case_log(&c, "%s\n", chunk);
    cr_assert_lt(c.log_len, 600 * 1024);
    cr_assert(strstr(c.log, "[log truncated]"));
    free(c.log);
}

/* One name per state, none missing or shared: status.json, events and the
 * table all spell states through these. */
Test(status, state_names_are_complete)
{
    for (int k = 0; k < SS_COUNT; k++) {
        cr_assert(st_suite_state_name(k) && strcmp(st_suite_state_name(k), "?"), "suite state %d", k);
        for (int j = 0; j < k; j++)
            cr_assert_str_neq(st_suite_state_name(k), st_suite_state_name(j));
    }
    for (int k = 0; k < RUN_STATE_COUNT; k++)
        cr_assert(st_run_state_name(k) && strcmp(st_run_state_name(k), "?"), "run state %d", k);
    cr_assert_str_eq(st_suite_state_name(SS_WAITING), "waiting");
    cr_assert_str_eq(st_suite_state_name(SS_COUNT), "?");
    cr_assert_str_eq(st_run_state_name(RUN_INTERRUPTED), "interrupted");
}
