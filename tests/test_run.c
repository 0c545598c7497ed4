/* test_run.c - `qfleet run` end to end: the real binary, real QEMU (TCG)
 * and the test guest from tools/mkguest. Suites in parallel within the
 * limits, every status.json rewrite checked against its schema as it
 * happens, junit.xml checked with xmllint, a failing expectation, a QEMU
 * killed mid-suite, sharding, and the errors that stop a run early. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/fs.h"
#include "src/status/status.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"

static char dir[256], state_dir[300];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "run"), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    char p[512];
    snprintf(p, sizeof(p), "%s/guest.cfg", dir);
    tu_guest_cfg(p, "vm0", NULL, NULL, "device =\n    driver=e1000,opt_id=pt_0;\nqga =\n    enable=yes;\n");
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(run, .init = setup, .fini = teardown, .timeout = 600);

static int xmllint(const char *xml)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "xmllint --noout --schema %s/tests/junit.xsd %s 2>&1", QF_SOURCE_DIR, xml);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* An event has a time, a kind and its run. */
static int event_ok(const json_t *e)
{
    return json_get_int(e, "ts_ms", 0) > 0 && json_get_str(e, "kind") && json_get_str(e, "run");
}

/* events.jsonl as an array. */
static json_t *events(const char *path) { return tu_read_jsonl(path, event_ok); }

/* The most guests alive at once (from allocating to stopped or failed). */
static int max_alive(const json_t *ev, int *instances)
{
    char alive[64][96];
    int n = 0, max = 0;
    *instances = 0;
    for (size_t i = 0; i < json_len(ev); i++) {
        const json_t *e = json_at(ev, i);
        if (strcmp(json_get_str(e, "kind"), "guest"))
            continue;
        const char *inst = json_get_str(e, "instance"), *st = json_get_str(e, "state");
        if (!strcmp(st, "allocating")) {
            cr_assert_lt(n, 64);
            snprintf(alive[n++], sizeof(alive[0]), "%s", inst);
            (*instances)++;
        } else if (!strcmp(st, "stopped") || !strcmp(st, "failed")) {
            for (int k = 0; k < n; k++)
                if (!strcmp(alive[k], inst)) {
                    memmove(alive[k], alive[k + 1], sizeof(alive[0]) * (size_t)(n - k - 1));
                    n--;
                    break;
                }
        }
        if (n > max)
            max = n;
    }
    return max;
}

static int count_events(const json_t *ev, const char *kind, const char *state)
{
    int n = 0;
    for (size_t i = 0; i < json_len(ev); i++)
        n += !strcmp(json_get_str(json_at(ev, i), "kind"), kind) &&
             !strcmp(json_get_str(json_at(ev, i), "state"), state);
    return n;
}

static int leases_left(void)
{
    const char *args[] = { "leases", "--json", "--state-dir", state_dir, NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "leases", args, 20000), 0);
    char *out = tu_slurp_in(dir, "leases.out");
    json_t *l = json_parse(out, strlen(out), NULL, 0);
    free(out);
    cr_assert(l);
    int n = (int)json_len(l);
    json_free(l);
    return n;
}

/* ---- the status.json watcher: every rewrite, checked as it lands ------------ */

struct watcher {
    pthread_t th;
    char dir[512];
    volatile int stop;
    int checked, broken;
    char first_error[512];
};

static void check_status_file(struct watcher *w)
{
    char p[600], err[512];
    snprintf(p, sizeof(p), "%s/status.json", w->dir);
    size_t n;
    char *s = fs_read_file(p, 1 << 26, &n);
    if (!s)
        return;
    json_t *doc = json_parse(s, n, err, sizeof(err));
    int rc = doc ? status_check(doc, err, sizeof(err)) : -EINVAL;
    if (rc < 0 && !w->broken++)
        snprintf(w->first_error, sizeof(w->first_error), "%s", err);
    w->checked++;
    json_free(doc);
    free(s);
}

static void *watch(void *arg)
{
    struct watcher *w = arg;
    int fd = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(fd, w->dir, IN_MOVED_TO | IN_CLOSE_WRITE);
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (!w->stop) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf));
        int hit = 0;
        for (char *p = buf; len > 0 && p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            hit |= ev->len && !strcmp(ev->name, "status.json");
            p += sizeof(*ev) + ev->len;
        }
        if (hit)
            check_status_file(w);
    }
    close(fd);
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

static const char alpha[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\n"
    "[case uname_over_ssh]\n"
    "run vm0-1: uname -m\n    expect stdout = x86_64\n"
    "[case interfaces_over_agent]\n"
    "qga vm0-2: guest-network-get-interfaces\n    expect *.name = host_connect\n"
    "run vm0-2 via agent: echo the password is tester\n    expect stdout ~ password\n"
    "[case pt_0_over_qmp]\n"
    "qmp vm0-1: query-pci\n    expect *.devices.*.qdev_id = pt_0\n    expect *.devices.*.qdev_id != pt_7\n"
    "[case file_round_trip]\n"
    "host: head -c 100000 /dev/urandom > ${tmp}/blob\n"
    "copy_to vm0-2: ${tmp}/blob /tmp/blob\n"
    "copy_from vm0-2: /tmp/blob ${tmp}/back\n"
    "host: cmp ${tmp}/blob ${tmp}/back\n";

static const char beta[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\nsetup = each\n"
    "[set_up_all]\n"
    "host: touch ${tmp}/set_up_all.${guest.vm0-1.name}\n"
    "[case arithmetic]\n"
    "run vm0-1: echo $((6 * 7))\n    expect stdout = 42\n"
    "run vm0-2 via agent: cat /proc/cpuinfo\n    expect stdout ~ processor\n"
    "[case status]\n"
    "qmp vm0-2: query-status\n    expect status = running\n";

static const char gamma_[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\n"
    "[case both_up]\n"
    "run vm0-1: grep -c ^processor /proc/cpuinfo\n    expect stdout = 1\n"
    "run vm0-2: test -d /proc/1\n";

Test(run, three_suites_in_parallel_within_limits)
{
    tu_write_in(dir, "alpha.suite", alpha);
    tu_write_in(dir, "beta.suite", beta);
    tu_write_in(dir, "gamma.suite", gamma_);
    struct watcher w = { 0 };
    snprintf(w.dir, sizeof(w.dir), "%s/status", dir);
    cr_assert_eq(mkdir(w.dir, 0755), 0);
    pthread_create(&w.th, NULL, watch, &w);
    char run_dir[400], junit[600];
    snprintf(run_dir, sizeof(run_dir), "%s/r", dir);
    snprintf(junit, sizeof(junit), "%s/junit.xml", w.dir);
    const char *args[] = { "run", "alpha.suite", "beta.suite", "gamma.suite", "--jobs", "4", "--retries", "0",
                           "--run-dir", run_dir, "--status-dir", w.dir, "--plain", NULL };
    double t0 = tu_now_ms();
    int rc = tu_run_qfleet(dir, state_dir, "three", args, 400000);
    double secs = (tu_now_ms() - t0) / 1000;
    w.stop = 1;
    pthread_join(w.th, NULL);
    char *err = tu_slurp_in(dir, "three.err"), *out = tu_slurp_in(dir, "three.out");
    cr_assert_eq(rc, 0, "exit %d after %.0fs\nstdout:\n%s\nstderr:\n%s", rc, secs, out, err);

    /* The schedule: never more than 4 guests between allocating and stopped. */
    char p[600];
    snprintf(p, sizeof(p), "%s/events.jsonl", w.dir);
    json_t *ev = events(p);
    int instances, max = max_alive(ev, &instances);
    cr_assert_leq(max, 4, "%d guests at once with --jobs 4", max);
    cr_assert_geq(max, 3, "suites did not run in parallel");
    cr_assert_eq(instances, 8, "2 + 2 x 2 (setup = each) + 2 boots, got %d", instances);
    cr_assert_geq(count_events(ev, "suite", "waiting"), 1, "the third suite never waited");
    cr_assert_eq(count_events(ev, "case", "passed"), 7);
    cr_assert_eq(count_events(ev, "run", "finished"), 1);
    json_free(ev);

    /* Every status.json rewrite matched the schema. */
    cr_assert_geq(w.checked, 10, "only %d rewrites seen", w.checked);
    cr_assert_eq(w.broken, 0, "%d of %d rewrites broken, first: %s", w.broken, w.checked, w.first_error);
    snprintf(p, sizeof(p), "%s/status.json", w.dir);
    size_t n;
    char *s = fs_read_file(p, 1 << 26, &n);
    json_t *doc = json_parse(s, n, NULL, 0);
    cr_assert_str_eq(json_get_str(json_get(doc, "run"), "state"), "finished");
    cr_assert_eq(json_get_int(json_get(doc, "run"), "exit_code", -1), 0);
    cr_assert_eq(json_get_int(json_get(json_get(doc, "counts"), "cases"), "passed", -1), 7);
    json_t *b = json_at(json_get(doc, "suites"), 1);
    cr_assert_str_eq(json_get_str(b, "name"), "beta");
    cr_assert_eq(json_get_int(json_at(json_get(b, "guests"), 0), "boots", 0), 2);
    json_free(doc);
    free(s);

    /* junit.xml as Jenkins and GitLab read it. */
    cr_assert_eq(xmllint(junit), 0, "junit.xml does not validate");
    char *x = fs_read_file(junit, 1 << 26, NULL);
    cr_assert(strstr(x, "tests=\"7\" failures=\"0\" errors=\"0\" skipped=\"0\""), "%.300s", x);
    cr_assert(strstr(x, "<testcase name=\"file_round_trip\" classname=\"alpha\""));
    cr_assert(strstr(x, "the password is ********"), "masked output missing");

    /* set_up_all ran once per generation of beta, on distinct instances. */
    snprintf(p, sizeof(p), "ls %s/beta/tmp | grep -c '^set_up_all\\.vm0-1' | grep -qx 2", run_dir);
    cr_assert_eq(system(p), 0, "set_up_all did not run once per generation");
    char *m = tu_slurp_in(dir, "status/metrics.prom");
    cr_assert(strstr(m, "qfleet_guest_boot_seconds_count 8\n"), "%s", m);
    cr_assert(strstr(m, "qfleet_cases{result=\"passed\"} 7\n"));

    /* No password anywhere, and every lease given back. */
    const char *files[] = { "status/status.json", "status/events.jsonl", "status/junit.xml",
                            "status/metrics.prom", "three.out", "three.err" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *t = tu_slurp_in(dir, files[i]);
        cr_assert_null(strstr(t, "tester"), "the password is in %s", files[i]);
        free(t);
    }
    cr_assert_eq(leases_left(), 0);
    cr_log_info("three suites, 8 guest boots: %.0f s", secs);
    free(m);
    free(x);
    free(err);
    free(out);
}

static const char fails[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0\n"
    "[tear_down]\nhost: touch ${tmp}/tore_down.${case}\n"
    "[case wrong_output]\n"
    "run vm0: echo hello from the guest\n    expect stdout ~ goodbye\n"
    "run vm0: echo never runs\n"
    "[case fine]\nrun vm0: true\n";

static const char killed[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0\n"
    "[case victim]\n"
    /* The fleet sees QEMU die while the sleep runs: the step is abandoned. */
    "host: kill -9 ${guest.vm0.pid} && sleep 5\n"
    "run vm0: true\n"
    "[case after]\nrun vm0: true\n";

Test(run, failure_and_killed_qemu)
{
    tu_write_in(dir, "fails.suite", fails);
    tu_write_in(dir, "killed.suite", killed);
    char rf[400], rk[400];
    snprintf(rf, sizeof(rf), "%s/rf", dir);
    snprintf(rk, sizeof(rk), "%s/rk", dir);
    const char *fa[] = { "run", "fails.suite", "--run-dir", rf, "--retries", "2", "--plain", NULL };
    const char *ka[] = { "run", "killed.suite", "--run-dir", rk, "--retries", "1", "--json", NULL };
    double t0 = tu_now_ms();
    pid_t pf = tu_start_qfleet(dir, state_dir, "fails", fa), pk = tu_start_qfleet(dir, state_dir, "killed", ka);
    int rcf = tu_wait_exit(pf, 300000), rck = tu_wait_exit(pk, 300000);
    double secs = (tu_now_ms() - t0) / 1000;
    char *ef = tu_slurp_in(dir, "fails.err"), *ek = tu_slurp_in(dir, "killed.err"), *ok = tu_slurp_in(dir, "killed.out");

    /* A failed expectation: failure, exit 1, never retried, output kept. */
    cr_assert_eq(rcf, 1, "exit %d\n%s", rcf, ef);
    char p[600];
    snprintf(p, sizeof(p), "%s/junit.xml", rf);
    cr_assert_eq(xmllint(p), 0);
    char *x = fs_read_file(p, 1 << 26, NULL);
    cr_assert(strstr(x, "tests=\"2\" failures=\"1\" errors=\"0\""), "%.400s", x);
    cr_assert(strstr(x, "<failure message=\"fails.suite:7: expected stdout ~ goodbye, got &apos;hello from "
                        "the guest\\n&apos;\" type=\"ExpectationFailed\">"), "%s", x);
    cr_assert(strstr(x, "stdout:\nhello from the guest\n"), "step output not in junit: %s", x);
    cr_assert_null(strstr(x, "never runs\n"), "the case went on after its failure");
    free(x);
    snprintf(p, sizeof(p), "%s/events.jsonl", rf);
    json_t *ev = events(p);
    cr_assert_eq(count_events(ev, "case", "retrying"), 0, "a failure was retried");
    cr_assert_eq(count_events(ev, "case", "failed"), 1);
    cr_assert_eq(count_events(ev, "case", "passed"), 1);
    json_free(ev);
    snprintf(p, sizeof(p), "%s/fails/tmp/tore_down.wrong_output", rf);
    cr_assert_eq(access(p, F_OK), 0, "tear_down did not run after the failure");

    /* A killed QEMU: retried on a fresh guest, then error, exit 3. */
    cr_assert_eq(rck, 3, "exit %d\n%s", rck, ek);
    json_t *doc = json_parse(ok, strlen(ok), NULL, 0);
    char e[512];
    cr_assert(doc, "--json printed no JSON: %s", ok);
    cr_assert_eq(status_check(doc, e, sizeof(e)), 0, "%s", e);
    json_t *s = json_at(json_get(doc, "suites"), 0);
    json_t *victim = json_at(json_get(s, "cases"), 0), *after = json_at(json_get(s, "cases"), 1);
    cr_assert_str_eq(json_get_str(victim, "result"), "error");
    cr_assert_eq(json_get_int(victim, "attempts", 0), 2);
    cr_assert(strstr(json_get_str(victim, "message"), "SIGKILL"), "%s", json_get_str(victim, "message"));
    cr_assert_str_eq(json_get_str(after, "result"), "skipped");
    cr_assert_eq(json_get_int(s, "retries_used", 0), 1);
    json_t *g = json_at(json_get(s, "guests"), 0);
    cr_assert_eq(json_get_int(g, "boots", 0), 2);
    cr_assert_str_eq(json_get_str(g, "instance"), "vm0.2");
    json_free(doc);
    snprintf(p, sizeof(p), "%s/junit.xml", rk);
    cr_assert_eq(xmllint(p), 0);
    x = fs_read_file(p, 1 << 26, NULL);
    cr_assert(strstr(x, "<error message=\"infrastructure error (retries used up): guest vm0 (vm0.2) failed"),
              "%s", x);
    cr_assert(strstr(x, "<skipped message=\"not run: case victim hit an infrastructure error\"/>"));
    free(x);
    snprintf(p, sizeof(p), "%s/events.jsonl", rk);
    ev = events(p);
    cr_assert_eq(count_events(ev, "case", "retrying"), 1);
    cr_assert_eq(count_events(ev, "guest", "failed"), 2);
    json_free(ev);
    cr_assert_eq(leases_left(), 0);
    cr_log_info("failure + killed QEMU: %.0f s", secs);
    free(ef);
    free(ek);
    free(ok);
}

Test(run, config_errors_exit_2_early)
{
    const char *none[] = { "run", NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "none", none, 10000), 2);
    tu_write_in(dir, "bad.suite", "[suite]\ncfg = guest.cfg\n[case a]\nrun vm0: true\n    expect stdout ~ (\n");
    const char *bad[] = { "run", "bad.suite", NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "bad", bad, 10000), 2);
    char *e = tu_slurp_in(dir, "bad.err");
    cr_assert(strstr(e, "bad.suite:5:21: error: bad regular expression"), "%s", e);
    free(e);
    const char *shard[] = { "run", "bad.suite", "--shard", "3/2", NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "shard", shard, 10000), 2);

    /* A suite that can never fit fails at once, without booting anything. */
    tu_write_in(dir, "big.suite", "[suite]\ncfg = guest.cfg\nvms = vm0 * 3\n[case a]\nrun vm0-1: true\n"
                            "[case b]\nrun vm0-2: true\n");
    tu_write_in(dir, "tiny.suite", "[suite]\ncfg = guest.cfg\nvms = vm0\n[case a]\nhost: true\n");
    char rd[400];
    snprintf(rd, sizeof(rd), "%s/rbig", dir);
    const char *big[] = { "run", "big.suite", "--jobs", "2", "--run-dir", rd, "--mem-budget", "100", NULL };
    double t0 = tu_now_ms();
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "big", big, 20000), 2);
    cr_assert_lt(tu_now_ms() - t0, 10000);
    e = tu_slurp_in(dir, "big.err");
    cr_assert(strstr(e, "big: can never fit: needs 3 guests at once, --jobs allows 2"), "%s", e);
    free(e);
    char p[600];
    snprintf(p, sizeof(p), "%s/junit.xml", rd);
    cr_assert_eq(xmllint(p), 0);
    char *x = fs_read_file(p, 1 << 20, NULL);
    cr_assert(strstr(x, "errors=\"2\""), "%s", x);
    free(x);
    snprintf(p, sizeof(p), "%s/events.jsonl", rd);
    json_t *ev = events(p);
    int inst;
    cr_assert_eq(max_alive(ev, &inst), 0);
    json_free(ev);
    /* Memory: the budget is below one guest plus its QEMU. */
    const char *mem[] = { "run", "tiny.suite", "--mem-budget", "100", "--run-dir", rd, NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "mem", mem, 20000), 2);
    e = tu_slurp_in(dir, "mem.err");
    cr_assert(strstr(e, "tiny: can never fit: needs 320 MiB"), "%s", e);
    free(e);
}

Test(run, shards_split_a_suite_list)
{
    const char *args[24] = { "run", "--list" };
    char names[12][32];
    int na = 2;
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof(names[i]), "s%02d.suite", i);
        tu_write_in(dir, names[i], "[suite]\ncfg = guest.cfg\n[case a]\nhost: true\n");
        args[na++] = names[i];
    }
    args[na] = NULL;
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "all", args, 20000), 0);
    char *all = tu_slurp_in(dir, "all.out");
    int seen[12] = { 0 };
    for (int k = 1; k <= 3; k++) {
        char sh[16], tag[16];
        snprintf(sh, sizeof(sh), "%d/3", k);
        snprintf(tag, sizeof(tag), "shard%d", k);
        args[na] = "--shard";
        args[na + 1] = sh;
        args[na + 2] = NULL;
        cr_assert_eq(tu_run_qfleet(dir, state_dir, tag, args, 20000), 0);
        char fn[32];
        snprintf(fn, sizeof(fn), "%s.out", tag);
        char *o = tu_slurp_in(dir, fn);
        for (int i = 0; i < 12; i++) {
            char line[48];
            snprintf(line, sizeof(line), "s%02d\t", i);
            if (strstr(o, line))
                seen[i]++;
        }
        free(o);
    }
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(seen[i], 1, "%s is in %d shards", names[i], seen[i]);
        char line[48];
        snprintf(line, sizeof(line), "s%02d\t", i);
        cr_assert(strstr(all, line));
    }
    free(all);
}

/* On a terminal the table is redrawn in place. */
Test(run, live_table_on_a_tty)
{
    tu_write_in(dir, "big.suite", "[suite]\ncfg = guest.cfg\nvms = vm0 * 3\n[case a]\nrun vm0-1: true\n");
    char rd[400];
    snprintf(rd, sizeof(rd), "%s/rtty", dir);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (chdir(dir) < 0)
            _exit(126);
        setenv("TERM", "xterm", 1);
        setenv("QFLEET_STATE_DIR", state_dir, 1);
        execl(QFLEET, QFLEET, "run", "big.suite", "--jobs", "2", "--run-dir", rd, (char *)NULL);
        _exit(127);
    }
    char buf[65536];
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = { .fd = master, .events = POLLIN };
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t n = read(master, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(master);
    cr_assert_eq(tu_wait_exit(pid, 10000), 2);
    cr_assert(strstr(buf, "\033[J"), "no redraw in: %s", buf);
    cr_assert(strstr(buf, "SUITE") && strstr(buf, "big"), "%s", buf);
}

/* A run dir QEMU's sockets do not fit in is a set-up error: exit 3 before
 * anything starts when no guest fits, and no retry when only a later
 * generation's instance name ("vm0.2") tips it over (issue 17). */
static const char each[] =
    "[suite]\nname = long\ncfg = guest.cfg\nvms = vm0\nsetup = each\n"
    "[case first]\nrun vm0: true\n"
    "[case second]\nrun vm0: true\n";

/* DIR/PAD.../long is n bytes long, PAD of 'x's, created. */
static void long_run_dir(char *out, size_t outlen, size_t n)
{
    char base[PATH_MAX];
    cr_assert(realpath(dir, base));
    size_t pad = n - strlen(base) - strlen("//long");
    cr_assert_lt(pad, 200);
    snprintf(out, outlen, "%s/%.*s", base, (int)pad,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    cr_assert_eq(strlen(out) + strlen("/long"), n);
}

Test(run, run_dir_too_long_is_setup_error)
{
    tu_write_in(dir, "long.suite", each);
    /* sun_path: RUN/long + "/" + NAME + "-qmp-inspect.sock" within 107 bytes. */
    char rd[PATH_MAX];
    long_run_dir(rd, sizeof(rd), 100);
    const char *a[] = { "run", "long.suite", "--run-dir", rd, "--retries", "2", "--plain", NULL };
    int rc = tu_run_qfleet(dir, state_dir, "toolong", a, 60000);
    char *e = tu_slurp_in(dir, "toolong.err");
    cr_assert_eq(rc, 3, "exit %d\n%s", rc, e);
    cr_assert(strstr(e, "suite long: run dir '") && strstr(e, "too long for the Unix socket paths of guest vm0"),
              "%s", e);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/long/vm0-qmp.sock", rd);
    cr_assert_neq(access(p, F_OK), 0, "a guest was started");
    free(e);

    /* 86 bytes: "vm0" fits exactly, "vm0.2" (the second case's fresh guest) does not. */
    long_run_dir(rd, sizeof(rd), 86);
    const char *b[] = { "run", "long.suite", "--run-dir", rd, "--retries", "2", "--json", NULL };
    rc = tu_run_qfleet(dir, state_dir, "tips", b, 300000);
    e = tu_slurp_in(dir, "tips.err");
    cr_assert_eq(rc, 3, "exit %d\n%s", rc, e);
    snprintf(p, sizeof(p), "%s/events.jsonl", rd);
    json_t *ev = events(p);
    cr_assert_eq(count_events(ev, "case", "passed"), 1, "%s", e);
    cr_assert_eq(count_events(ev, "case", "retrying"), 0, "a set-up error was retried");
    cr_assert_eq(count_events(ev, "case", "error"), 1);
    json_free(ev);
    char *out = tu_slurp_in(dir, "tips.out");
    cr_assert(strstr(out, "set-up error: run dir '") && strstr(out, "guest vm0.2"), "%s", out);
    cr_assert_null(strstr(out, "retries used up"), "%s", out);
    free(out);
    free(e);
}

/* --mac-prefix: every VM of every suite takes its MACs under the prefix
 * (as `qfleet up --mac-prefix`); a prefix a VM refuses is a usage error
 * before anything boots. The VM has no kernel or disk: QEMU (TCG) runs its
 * firmware, which is all this needs (ready = QMP and the PCI map). */
Test(run, mac_prefix_applies_to_every_vm)
{
    tu_write_in(dir, "bare.cfg", "[vm0]\nenable_kvm = enable=no\nqga = enable=no\nvnc = disable=yes\n"
                           "mem = size=64\n");
    tu_write_in(dir, "mac.suite", "[suite]\ncfg = bare.cfg\nvms = vm0 * 2\n[case prefixed]\n"
                            "host: echo ${guest.vm0-1.mac} ${guest.vm0-2.mac}\n"
                            "    expect stdout ~ ^02:5a:5b:[0-9a-f:]{8} 02:5a:5b:[0-9a-f:]{8}$\n");
    char rd[400];
    snprintf(rd, sizeof(rd), "%s/rmac", dir);
    const char *args[] = { "run", "mac.suite", "--mac-prefix", "02:5a:5b", "--run-dir", rd,
                           "--retries", "0", "--plain", NULL };
    int rc = tu_run_qfleet(dir, state_dir, "mac", args, 120000);
    char *e = tu_slurp_in(dir, "mac.err"), *o = tu_slurp_in(dir, "mac.out");
    cr_assert_eq(rc, 0, "exit %d\n%s\n%s", rc, o, e);
    free(e);
    free(o);
    const char *bad[] = { "run", "mac.suite", "--mac-prefix", "01:00:", "--run-dir", rd, NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "badmac", bad, 20000), 2);
    e = tu_slurp_in(dir, "badmac.err");
    cr_assert(strstr(e, "mac.suite: --mac-prefix 01:00:: "), "%s", e);
    free(e);

    /* `qfleet leases --json --with-prefix`: the prefix new MACs get here,
     * where it comes from, and the leases (all given back by now). */
    setenv("QFLEET_MAC_PREFIX", "02:77:", 1);
    const char *ls[] = { "leases", "--json", "--with-prefix", NULL };
    rc = tu_run_qfleet(dir, state_dir, "lsp", ls, 20000);
    unsetenv("QFLEET_MAC_PREFIX");
    char *out = tu_slurp_in(dir, "lsp.out");
    cr_assert_eq(rc, 0, "%s", out);
    json_t *j = json_parse(out, strlen(out), NULL, 0);
    cr_assert(j, "%s", out);
    cr_assert_str_eq(json_get_str(j, "prefix"), "02:77:");
    cr_assert_str_eq(json_get_str(j, "prefix_from"), "QFLEET_MAC_PREFIX");
    cr_assert_eq(json_len(json_get(j, "leases")), 0, "%s", out);
    json_free(j);
    free(out);
    const char *ls_text[] = { "leases", "--with-prefix", NULL };
    cr_assert_eq(tu_run_qfleet(dir, state_dir, "lsp2", ls_text, 20000), 2);
}
