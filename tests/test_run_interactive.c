/* test_run_interactive.c - interactive sessions and tear-downs end to end:
 * the real qfleet binary runs a suite on the test guest (one boot) that
 * drives busybox sh by spawn/send/expect, has an expect time out, and
 * tears down per case and once after all cases; junit.xml is checked with
 * xmllint and for what each part must show. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "src/status/status.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char dir[256], state_dir[300];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "runi"), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    char p[512];
    snprintf(p, sizeof(p), "%s/guest.cfg", dir);
    tu_guest_cfg(p, "vm0", NULL, NULL, "qga =\n    enable=yes;\n");
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(run_interactive, .init = setup, .fini = teardown, .timeout = 400);

/* The <testcase name="NAME" ...> element of junit text x (malloc'd). */
static char *testcase(const char *x, const char *name)
{
    char head[128];
    snprintf(head, sizeof(head), "<testcase name=\"%s\"", name);
    const char *a = strstr(x, head), *b = a ? strstr(a, "</testcase>") : NULL;
    cr_assert(b, "no testcase %s in:\n%s", name, x);
    return strndup(a, (size_t)(b - a));
}

static const char sessions[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0\ntimeout = 30s\n"
    "[tear_down]\n"
    "host: touch ${tmp}/tore_down.${case}\n"
    "host: test ${case} != expect_times_out\n"
    "[tear_down_all]\n"
    "host: touch ${tmp}/tore_down_all\n"
    "spawn vm0 as last: sh\n"
    "send last: echo bye-$((40 + 2))\n"
    "expect last: bye-42\n"
    "host: exit 3\n"                                                  /* line 13 */
    "[case busybox_sh]\n"
    "spawn vm0 as shell: sh\n"
    "send shell: echo ready-$((6 * 7))\n"
    "expect shell: ready-42\n"
    "send shell: read name; echo hello-$name\n"
    "send shell: world\n"
    "expect shell: hello-world\n"
    "close shell\n"
    "[case expect_times_out]\n"
    "spawn vm0: sh\n"
    "send vm0: printf 'tick\\001tock\\n'\n"
    "expect vm0: never-printed\n"                                   /* line 25 */
    "    timeout 2s\n"
    "send vm0: echo not reached\n";

Test(run_interactive, spawn_send_expect_and_tear_downs)
{
    tu_write_in(dir, "t.suite", sessions);
    char run_dir[400], p[600];
    snprintf(run_dir, sizeof(run_dir), "%s/r", dir);
    /* With the documented example (cfg/examples/interactive.suite), in parallel. */
    const char *args[] = { "run", "t.suite", QF_SOURCE_DIR "/cfg/examples/interactive.suite", "--jobs", "2",
                           "--retries", "0", "--run-dir", run_dir, "--plain", NULL };
    int rc = tu_run_qfleet(dir, state_dir, "t", args, 300000);
    snprintf(p, sizeof(p), "%s/t.err", dir);
    char *err = tu_slurp(p);
    cr_assert_eq(rc, 1, "exit %d (one case fails)\n%s", rc, err);
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err); /* ASan exits 1 too */
    snprintf(p, sizeof(p), "%s/junit.xml", run_dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "xmllint --noout --schema %s/tests/junit.xsd %s 2>&1", QF_SOURCE_DIR, p);
    cr_assert_eq(system(cmd), 0, "junit.xml does not validate");
    char *x = tu_slurp(p);
    cr_assert(strstr(x, "tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"0\""), "%s", x);
    cr_assert(strstr(x, "<testsuite name=\"t\" tests=\"2\" failures=\"1\""), "%s", x);

    /* A real interactive program: the shell computed, read a line, answered. */
    char *ok = testcase(x, "busybox_sh");
    cr_assert_null(strstr(ok, "<failure"), "%s", ok);
    cr_assert(strstr(ok, "session shell at +"), "no timings: %s", ok);
    cr_assert(strstr(ok, "ready-42"), "%s", ok);
    cr_assert(strstr(ok, "hello-world"), "%s", ok);
    cr_assert(strstr(ok, "=== tear_down: passed ==="), "%s", ok);

    /* The timed-out expect: the tail of the session, control bytes escaped;
     * tear_down failed too, shown in system-out without hiding the failure. */
    char *bad = testcase(x, "expect_times_out");
    cr_assert(strstr(bad, "<failure message=\"t.suite:25: session vm0: no match for /never-printed/ within "
                          "2.0s; last output: "), "%s", bad);
    cr_assert(strstr(bad, "tick\\x01tock"), "unescaped or missing tail: %s", bad);
    cr_assert_null(strstr(bad, "not reached\n"), "the case went on after its failure: %s", bad);
    cr_assert(strstr(bad, "=== tear_down (runs also after a failure) ==="), "%s", bad);
    cr_assert(strstr(bad, "=== tear_down: FAILED ==="), "%s", bad);
    cr_assert(strstr(bad, "close vm0 (end of case)"), "no implicit close: %s", bad);
    cr_assert_null(strstr(bad, "tear_down: t.suite"), "tear_down hid the case's failure: %s", bad);

    /* tear_down_all ran once, with a session of its own, as the suite's
     * system-out; its failure is the suite's reason, no case's result. */
    const char *tda = strstr(x, "</testcase>\n    <system-out>=== tear_down_all");
    cr_assert(tda, "no suite-level system-out: %s", x);
    cr_assert(strstr(tda, "bye-42") && strstr(tda, "=== tear_down_all: FAILED ===\n</system-out>"), "%s", tda);
    cr_assert(strstr(x, "<property name=\"reason\" value=\"tear_down_all: t.suite:13: exit status 3 "
                        "(expected 0)\"/>"), "%s", x);
    cr_assert(strstr(err, "t: tear_down_all: t.suite:13: exit status 3"), "%s", err);
    snprintf(cmd, sizeof(cmd), "test -e %s/t/tmp/tore_down.busybox_sh && test -e %s/t/tmp/tore_down_all",
             run_dir, run_dir);
    cr_assert_eq(system(cmd), 0, "tear_down or tear_down_all did not run");
    snprintf(p, sizeof(p), "%s/status.json", run_dir);
    char *st = tu_slurp(p), e[512];
    json_t *doc = json_parse(st, strlen(st), e, sizeof(e));
    cr_assert(doc, "status.json: %s", e);
    cr_assert_eq(status_check(doc, e, sizeof(e)), 0, "%s", e);
    json_t *t = json_at(json_get(doc, "suites"), 0);
    cr_assert_str_eq(json_get_str(t, "result"), "failed");
    cr_assert(strstr(json_get_str(t, "reason"), "tear_down_all: t.suite:13"), "%s", json_get_str(t, "reason"));
    json_free(doc);
    free(st);
    free(ok);
    free(bad);
    free(x);
    free(err);
}
