/* test_report.c - report.html (src/status/report.c, `qfleet report`) and
 * the metrics of issue 16: a hand-made status dir that holds everything a
 * page must escape, the per-phase boot histograms, and the report of a
 * real `qfleet run` (two suites of real TCG guests, --jobs 1 so the second
 * waits) opened in headless Chromium: its DOM must show every case and the
 * timeline, and its screenshot is what docs/report.png shows. Without
 * Chromium that last part is skipped with a message (tools/setup installs
 * it). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "src/status/status.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
/* Where the screenshot of the real run is left (copied to docs/report.png). */
#define SHOT QF_BINARY_DIR "/tests/report.png"

static char dir[256];

static void setup(void) { cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "report"), 0); }
static void teardown(void) { tu_rmtree(dir); }

TestSuite(report, .init = setup, .fini = teardown, .timeout = 600);

static void put(const char *name, const char *text)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s: %s", p, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static int run(char *const argv[], const char *out, const char *err, int ms)
{
    tu_child c = { .out = out, .err = err };
    return tu_wait_exit(tu_start((const char *const *)argv, &c), ms);
}

/* ---- a hand-made status dir ---- */

static const char status_doc[] =
    "{\"version\":1,\"run\":{\"id\":\"r-1\",\"state\":\"finished\",\"started_ms\":1000000,"
    "\"finished_ms\":1060000,\"updated_ms\":1060000,\"elapsed_ms\":60000,\"exit_code\":1,"
    "\"junit\":null,\"limits\":{\"jobs\":1}},"
    "\"counts\":{\"cases\":{\"total\":2,\"passed\":1,\"failed\":1,\"error\":0,\"skipped\":0}},"
    "\"suites\":[{\"name\":\"s<1>\",\"file\":\"a&b.suite\",\"result\":\"failed\",\"reason\":null,"
    "\"elapsed_ms\":50000,"
    " \"cases\":[{\"name\":\"ok\",\"result\":\"passed\",\"elapsed_ms\":1200,\"message\":null,"
    "   \"steps\":[{\"line\":3,\"source\":\"run vm0: true\",\"result\":\"passed\",\"elapsed_ms\":5}]},"
    "  {\"name\":\"bad\\\"case\",\"result\":\"failed\",\"elapsed_ms\":300,"
    "   \"message\":\"x.suite:9: got '<img src=x onerror=alert(1)>'\",\"steps\":[]}],"
    " \"guests\":[{\"name\":\"vm0\",\"instance\":\"vm0\",\"state\":\"failed\",\"boots\":1,"
    "   \"reason\":\"vm0: serial: \\u001b[31m<script>boom()</script>\\nsecond line\","
    "   \"timings_ms\":{\"ready\":9000}}]}]}";

static const char events[] =
    "{\"ts_ms\":1000000,\"kind\":\"run\",\"state\":\"started\"}\n"
    "{\"ts_ms\":1000000,\"kind\":\"suite\",\"suite\":\"s<1>\",\"state\":\"waiting\"}\n"
    "{\"ts_ms\":1010000,\"kind\":\"suite\",\"suite\":\"s<1>\",\"state\":\"booting\"}\n"
    "{\"ts_ms\":1010000,\"kind\":\"guest\",\"suite\":\"s<1>\",\"instance\":\"vm0\",\"state\":\"allocating\"}\n"
    "not json at all\n"
    "{\"ts_ms\":1010100,\"kind\":\"guest\",\"suite\":\"s<1>\",\"instance\":\"vm0\",\"state\":\"launching\"}\n"
    "{\"ts_ms\":1019000,\"kind\":\"guest\",\"suite\":\"s<1>\",\"instance\":\"vm0\",\"state\":\"ready\"}\n"
    "{\"ts_ms\":1019000,\"kind\":\"suite\",\"suite\":\"s<1>\",\"state\":\"running\"}\n"
    "{\"ts_ms\":1050000,\"kind\":\"guest\",\"suite\":\"s<1>\",\"instance\":\"vm0\",\"state\":\"stopping\"}\n"
    "{\"ts_ms\":1052000,\"kind\":\"guest\",\"suite\":\"s<1>\",\"instance\":\"vm0\",\"state\":\"stopped\"}\n"
    "{\"ts_ms\":1060000,\"kind\":\"suite\",\"suite\":\"s<1>\",\"state\":\"done\"}\n";

static const char junit[] =
    "<testsuites>\n<testsuite name=\"s&lt;1&gt;\">\n"
    "    <testcase name=\"ok\" classname=\"s&lt;1&gt;\" time=\"1.2\">\n"
    "      <system-out>$ true\n&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt; \xc3\xa9 done</system-out>\n"
    "    </testcase>\n"
    "    <testcase name=\"bad&quot;case\" classname=\"s&lt;1&gt;\" time=\"0.3\">\n"
    "      <failure message=\"m\" type=\"ExpectationFailed\">step report &amp; more</failure>\n"
    "    </testcase>\n</testsuite>\n</testsuites>\n";

Test(report, escapes_everything_and_draws_the_phases)
{
    put("status.json", status_doc);
    put("events.jsonl", events);
    put("junit.xml", junit);
    char err[512];
    char *h = status_report_render(dir, err, sizeof(err));
    cr_assert(h, "%s", err);
    /* Nothing from the run became markup: no script, no handler. */
    cr_assert_eq(count(h, "<script"), 0, "%s", h);
    cr_assert_eq(count(h, "<img"), 0);
    cr_assert_eq(count(h, "\x1b"), 0, "a control byte went through");
    cr_assert(strstr(h, "&lt;img src=x onerror=alert(1)&gt;"));
    cr_assert(strstr(h, "&lt;script&gt;boom()&lt;/script&gt;"));
    cr_assert(strstr(h, "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt; \xc3\xa9 done"),
              "the case log from junit.xml, unescaped then escaped for HTML");
    cr_assert(strstr(h, "step report &amp; more"), "the failure report from junit.xml");
    cr_assert(strstr(h, "data-case=\"bad&quot;case\""));
    cr_assert(strstr(h, "s&lt;1&gt;"));
    /* Self-contained: nothing is fetched. */
    cr_assert_eq(count(h, "http://") + count(h, "https://"),
                 count(h, "xmlns=\"http://www.w3.org/2000/svg\""));
    cr_assert(strstr(h, "Content-Security-Policy\" content=\"default-src 'none'"));
    /* The timeline: the suite waited, then booted; the guest's phases. */
    cr_assert(strstr(h, "<svg id=\"timeline\""));
    static const char *const phases[] = { "waiting", "booting", "allocating", "launching", "ready",
                                          "stopping" };
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "data-phase=\"%s\"", phases[i]);
        cr_assert_eq(count(h, want), 1, "no single bar %s in\n%s", phases[i], h);
    }
    cr_assert(strstr(h, "launching 8.9s"), "the launching phase lasted 8.9 s");
    cr_assert(strstr(h, "waiting 10.0s"), "the suite waited 10 s for a slot");
    free(h);

    /* qfleet report writes it; without a status.json it fails, naming it. */
    char out[400], o[400], e[400];
    snprintf(out, sizeof(out), "%s/r.html", dir);
    snprintf(o, sizeof(o), "%s/rep.out", dir);
    snprintf(e, sizeof(e), "%s/rep.err", dir);
    char *argv[] = { QFLEET, "report", dir, "-o", out, NULL };
    cr_assert_eq(run(argv, o, e, 60000), 0);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    unlink(out);
    char empty[400];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    mkdir(empty, 0700);
    char *bad[] = { QFLEET, "report", empty, NULL };
    cr_assert_eq(run(bad, o, e, 60000), 1);
    char *msg = tu_slurp(e);
    cr_assert(strstr(msg, "status.json"), "%s", msg);
    free(msg);
    char *usage[] = { QFLEET, "report", NULL };
    cr_assert_eq(run(usage, o, e, 60000), 2);
}

/* ---- metrics ---- */

Test(report, per_phase_boot_histograms)
{
    st_run r = { .exit_code = -1 };
    const char *t1 = "{\"allocating\":0,\"launching\":40,\"qmp-connected\":1540,\"running\":1600,"
                     "\"agent-connected\":9600,\"net-ready\":11000,\"ready\":11000}";
    const char *t2 = "{\"allocating\":0,\"launching\":200,\"qmp-connected\":700,\"running\":800,"
                     "\"agent-connected\":40800,\"ready\":41000}";
    json_t *a = json_parse(t1, strlen(t1), NULL, 0), *b = json_parse(t2, strlen(t2), NULL, 0);
    status_boot_phases(&r, a);
    status_boot_phases(&r, b);
    json_free(a);
    json_free(b);
    char *m = metrics_render(&r);
    cr_assert(m);
    cr_assert(strstr(m, "# TYPE qfleet_guest_phase_seconds histogram\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_count{phase=\"allocating\"} 2\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"allocating\",le=\"0.1\"} 1\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"allocating\",le=\"0.25\"} 2\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_sum{phase=\"allocating\"} 0.240\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_sum{phase=\"running\"} 48.000\n"), "%s", m);
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"running\",le=\"10\"} 1\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"running\",le=\"30\"} 1\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"running\",le=\"60\"} 2\n"));
    /* The second boot had no net-ready: agent-connected ran until ready. */
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_count{phase=\"net-ready\"} 1\n"));
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_sum{phase=\"agent-connected\"} 1.600\n"), "%s", m);
    cr_assert(strstr(m, "qfleet_guest_phase_seconds_bucket{phase=\"agent-connected\",le=\"+Inf\"} 2\n"));
    cr_assert_null(strstr(m, "phase=\"ssh-ready\""), "a phase no boot went through has no series");
    cr_assert_null(strstr(m, "phase=\"ready\""), "ready is the end of a boot, not a phase");
    free(m);
}

/* ---- a real run, in a real browser ---- */

static const char guest_cfg[] =
    "[vm0]\n"
    "cpu =\n    model=qemu64,number=1;\n"
    "mem =\n    size=256;\n"
    "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=console=ttyS0 quiet panic=-1;\n"
    "login =\n    user=root,password=tester;\n"
    "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
    "qga =\n    enable=yes;\n"
    "enable_kvm =\n    enable=no;\n";

static const char alpha[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0\n"
    "[case uname]\nrun vm0: uname -m\n    expect stdout = x86_64\n"
    "[case guest_prints_html]\n"
    "run vm0: echo '<script>alert(1)</script> & <b>bold</b>'\n    expect stdout ~ never-printed\n";

static const char beta[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0\n"
    "[case status]\nqmp vm0: query-status\n    expect status = running\n";

static char *chromium(void)
{
    static const char *const names[] = { "chromium", "chromium-browser", NULL };
    const char *path = getenv("PATH");
    for (int i = 0; names[i]; i++) {
        char *p = strdup(path ? path : "/usr/bin"), *save = NULL;
        for (char *d = strtok_r(p, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char full[512];
            snprintf(full, sizeof(full), "%s/%s", d, names[i]);
            if (access(full, X_OK) == 0) {
                free(p);
                return strdup(full);
            }
        }
        free(p);
    }
    return NULL;
}

static void real_run(char *status)
{
    char k[512], cfg[4096];
    snprintf(k, sizeof(k), "%s/vmlinux", tu_guest_dir());
    cr_assert_eq(access(k, R_OK), 0, "no test guest in %s: run tools/mkguest", tu_guest_dir());
    snprintf(cfg, sizeof(cfg), guest_cfg, tu_guest_dir(), tu_guest_dir());
    put("guest.cfg", cfg);
    put("alpha.suite", alpha);
    put("beta.suite", beta);
    char sa[400], sb[400], rd[400], sd[400], tf[400], o[400], e[400];
    snprintf(sa, sizeof(sa), "%s/alpha.suite", dir);
    snprintf(sb, sizeof(sb), "%s/beta.suite", dir);
    snprintf(rd, sizeof(rd), "%s/run", dir);
    snprintf(sd, sizeof(sd), "%s/state", dir);
    snprintf(tf, sizeof(tf), "%s/textfile", dir);
    snprintf(o, sizeof(o), "%s/run.out", dir);
    snprintf(e, sizeof(e), "%s/run.err", dir);
    mkdir(tf, 0755);
    char *argv[] = { QFLEET, "run", sa, sb, "--jobs", "1", "--retries", "0", "--run-dir", rd,
                     "--state-dir", sd, "--status-dir", status, "--metrics-textfile", tf, "--plain", NULL };
    int rc = run(argv, o, e, 500000);
    char *err = tu_slurp(e);
    cr_assert_eq(rc, 1, "qfleet run: exit %d (one case fails on purpose):\n%s", rc, err);
    free(err);
    /* --metrics-textfile: the same text as metrics.prom, with phase histograms. */
    char p1[500], p2[500];
    snprintf(p1, sizeof(p1), "%s/qfleet.prom", tf);
    snprintf(p2, sizeof(p2), "%s/metrics.prom", status);
    char *m1 = tu_slurp(p1), *m2 = tu_slurp(p2);
    cr_assert_str_eq(m1, m2);
    cr_assert(strstr(m1, "qfleet_guest_phase_seconds_count{phase=\"launching\"} 2\n"), "%s", m1);
    cr_assert(strstr(m1, "qfleet_guest_boot_seconds_count 2\n"));
    free(m1);
    free(m2);
}

Test(report, real_run_in_a_real_browser)
{
    char status[400], html[400], o[400], e[400];
    snprintf(status, sizeof(status), "%s/status", dir);
    real_run(status);
    snprintf(html, sizeof(html), "%s/report.html", status);
    snprintf(o, sizeof(o), "%s/rep.out", dir);
    snprintf(e, sizeof(e), "%s/rep.err", dir);
    char *argv[] = { QFLEET, "report", status, NULL };
    cr_assert_eq(run(argv, o, e, 60000), 0);
    char *h = tu_slurp(html);
    cr_assert_eq(count(h, "<script"), 0, "guest output became markup");
    cr_assert(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    free(h);

    char *chrome = chromium();
    if (!chrome)
        cr_skip_test("chromium is not installed (tools/setup installs Debian's chromium): the report "
                     "was checked as text only");
    char url[500], prof[400], shot[500];
    snprintf(url, sizeof(url), "file://%s", html);
    snprintf(prof, sizeof(prof), "--user-data-dir=%s/chrome", dir);
    snprintf(shot, sizeof(shot), "--screenshot=%s", SHOT);
    char *dom[] = { chrome, "--headless", "--no-sandbox", "--disable-gpu", prof, "--dump-dom", url, NULL };
    snprintf(o, sizeof(o), "%s/dom.html", dir);
    cr_assert_eq(run(dom, o, e, 180000), 0, "chromium --dump-dom failed");
    char *d = tu_slurp(o);
    /* What the browser built: every case, the guests' phases, no script. */
    static const char *const want[] = {
        "data-case=\"uname\"", "data-case=\"guest_prints_html\"", "data-case=\"status\"",
        "<svg id=\"timeline\"", "data-row=\"alpha/vm0\"", "data-row=\"beta/vm0", "data-phase=\"waiting\"",
        "data-phase=\"allocating\"", "data-phase=\"launching\"", "data-phase=\"ready\"",
        "data-phase=\"stopping\"", "data-result=\"failed\"", "data-result=\"passed\"",
        "<details><summary>log</summary>",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(d, want[i]), "the DOM lacks %s", want[i]);
    cr_assert_eq(count(d, "<script"), 0, "the browser found a script element");
    cr_assert_eq(count(d, "<b>bold"), 0, "guest output became an element");
    free(d);

    unlink(SHOT);
    char *png[] = { chrome, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", prof,
                    "--window-size=1200,900", shot, url, NULL };
    cr_assert_eq(run(png, o, e, 180000), 0, "chromium --screenshot failed");
    char *p = tu_slurp(SHOT);
    cr_assert(!memcmp(p, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", SHOT);
    /* 1200 x 900, big-endian in the IHDR chunk */
    cr_assert(!memcmp(p + 16, "\0\0\x04\xb0\0\0\x03\x84", 8), "not 1200x900");
    free(p);
    free(chrome);
    cr_log_info("screenshot of the report: %s", SHOT);
}
