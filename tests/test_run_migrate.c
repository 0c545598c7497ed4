/* test_run_migrate.c - a live migration inside a suite, end to end: the
 * real qfleet binary runs cfg/examples/migrate.suite (two guests of the
 * test image, `backup` parked awaiting the migration; one boot each) and
 * the guest's file written over SSH before the migrate step is read back
 * after it, in the destination's QEMU under the source's name. junit.xml
 * is checked with xmllint; both events.jsonl files for the migration. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define SUITE QF_SOURCE_DIR "/cfg/examples/migrate.suite"

static char dir[256], state_dir[300];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "runm"), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    /* migrate.cfg points at the worktree's build/guest. */
    cr_assert_eq(access(QF_SOURCE_DIR "/build/guest/vmlinux", R_OK), 0,
                 "no test guest in " QF_SOURCE_DIR "/build/guest: run tools/mkguest");
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(run_migrate, .init = setup, .fini = teardown, .timeout = 400);

static const char *gs(const json_t *o, const char *key)
{
    const char *s = json_get_str(o, key);
    return s ? s : "";
}

/* The lines of an events.jsonl whose key is "migration" (parsed; caller
 * frees each): the fleet's say "event", the run's "kind". */
static int migration_events(const char *path, const char *key, json_t **ev, int max)
{
    char *text = tu_slurp(path), *save = NULL;
    int n = 0;
    for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
        char e[256];
        json_t *j = json_parse(l, strlen(l), e, sizeof(e));
        cr_assert(j, "%s: bad line %s: %s", path, l, e);
        if (!strcmp(gs(j, key), "migration"))
            ev[n++] = j;
        else
            json_free(j);
    }
    free(text);
    return n;
}

Test(run_migrate, example_suite_migrates_and_keeps_the_guest)
{
    char run_dir[400], p[600], cmd[1200];
    snprintf(run_dir, sizeof(run_dir), "%s/r", dir);
    const char *args[] = { "run", SUITE, "--retries", "2", "--run-dir", run_dir, "--plain", NULL };
    /* Retries: another fleet on this host may take a leased port first (an
     * infrastructure error the runner recovers from on fresh guests). */
    int rc = tu_run_qfleet(dir, state_dir, "m", args, 300000);
    snprintf(p, sizeof(p), "%s/m.err", dir);
    char *err = tu_slurp(p);
    snprintf(p, sizeof(p), "%s/junit.xml", run_dir);
    char *x = tu_slurp(p);
    cr_assert_eq(rc, 0, "exit %d\n%s\n%s", rc, err, x);
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err);

    snprintf(cmd, sizeof(cmd), "xmllint --noout --schema %s/tests/junit.xsd %s 2>&1", QF_SOURCE_DIR, p);
    cr_assert_eq(system(cmd), 0, "junit.xml does not validate");
    cr_assert(strstr(x, "tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\""), "%s", x);
    const char *c = strstr(x, "<testcase name=\"live_migration\"");
    cr_assert(c, "%s", x);
    const char *ce = strstr(c, "</testcase>");
    cr_assert(ce);
    char *tc = strndup(c, (size_t)(ce - c));
    cr_assert_null(strstr(tc, "<failure"), "%s", tc);
    cr_assert_null(strstr(tc, "<error"), "%s", tc);
    /* The marker written before the migrate step, read back after it. */
    const char *mig = strstr(tc, "migrate host -&gt; backup");
    cr_assert(mig, "no migrate step in the log: %s", tc);
    const char *after = strstr(mig, "cat /tmp/marker");
    cr_assert(after, "%s", tc);
    char *rec = strndup(mig, (size_t)(after - mig)); /* the migrate step's report */
    cr_assert(strstr(rec, "  [ok, ") && strstr(rec, "\"result\": \"ok\"") &&
              strstr(rec, "\"downtime_ms\": ") && strstr(rec, "\"phase\": \"completed\""),
              "no migration record in the step's report: %s", rec);
    free(rec);
    cr_assert(strstr(after, "before-migration"), "marker not read back after migration: %s", tc);

    /* The fleet's events.jsonl: one line per phase, the last completed with
     * a downtime. */
    json_t *ev[64];
    snprintf(p, sizeof(p), "%s/migrate/events.jsonl", run_dir);
    int n = migration_events(p, "event", ev, 64);
    cr_assert_geq(n, 2, "%d migration events in %s", n, p);
    int active = 0, completed = 0;
    for (int i = 0; i < n; i++) {
        const char *ph = gs(ev[i], "phase");
        active |= !strcmp(ph, "active");
        completed |= !strcmp(ph, "completed");
        cr_assert(strstr(gs(ev[i], "source"), "host"), "source of line %d", i);
    }
    cr_assert(active && completed, "phases active and completed expected in %s", p);
    cr_assert_geq(json_get_int(ev[n - 1], "downtime_ms", -1), 0, "no downtime in the last line of %s", p);
    for (int i = 0; i < n; i++)
        json_free(ev[i]);

    /* The run's events.jsonl: the step's outcome, result ok with downtime. */
    snprintf(p, sizeof(p), "%s/events.jsonl", run_dir);
    n = migration_events(p, "kind", ev, 64);
    cr_assert_eq(n, 1, "%d migration events in %s", n, p);
    cr_assert_str_eq(gs(ev[0], "result"), "ok");
    cr_assert_str_eq(gs(ev[0], "phase"), "completed");
    cr_assert_str_eq(gs(ev[0], "case"), "live_migration");
    cr_assert_geq(json_get_int(ev[0], "downtime_ms", -1), 0);
    cr_assert_gt(json_get_int(ev[0], "total_ms", -1), 0);
    json_free(ev[0]);
    free(tc);
    free(x);
    free(err);
}

/* A migration that cannot finish in time (1 KiB/s) is cancelled: the step
 * fails naming the phase, the destination's exit is no infrastructure
 * error, and the guest runs on in its source. */
Test(run_migrate, cancelled_migration_fails_the_step_and_the_source_lives_on)
{
    char p[600], run_dir[400];
    snprintf(p, sizeof(p), "%s/c.suite", dir);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fprintf(f, "[suite]\ncfg = %s/cfg/examples/migrate.cfg\nvms = host, backup\ntimeout = 60s\n"
               "[case cancelled]\n"
               "run host: echo kept > /tmp/marker\n"
               "migrate host -> backup\n    timeout 2s\n    max-bandwidth 1K\n"  /* line 7 */
               "[case source_lives_on]\n"
               "run host: cat /tmp/marker\n    expect stdout = kept\n", QF_SOURCE_DIR);
    fclose(f);
    snprintf(run_dir, sizeof(run_dir), "%s/r", dir);
    const char *args[] = { "run", "c.suite", "--retries", "2", "--run-dir", run_dir, "--plain", NULL };
    int rc = tu_run_qfleet(dir, state_dir, "c", args, 300000);
    snprintf(p, sizeof(p), "%s/c.err", dir);
    char *err = tu_slurp(p);
    snprintf(p, sizeof(p), "%s/junit.xml", run_dir);
    char *x = tu_slurp(p);
    cr_assert_eq(rc, 1, "exit %d (one case fails)\n%s\n%s", rc, err, x);
    cr_assert(!strstr(err, "Sanitizer") && !strstr(err, "runtime error:"), "%s", err);
    cr_assert(strstr(x, "tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\""), "%s", x);
    cr_assert(strstr(x, "<failure message=\"c.suite:7: migration host -&gt; backup timed out and was "
                        "cancelled in phase active"), "%s", x);
    const char *ok = strstr(x, "<testcase name=\"source_lives_on\"");
    cr_assert(ok && strstr(ok, "stdout:\nkept\n") && !strstr(ok, "<failure"), "%s", x);
    free(x);
    free(err);
}
