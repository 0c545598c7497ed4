/* test_suite.c - the suite file grammar (cfg/suite.h, cfg/SUITES.md):
 * what parses into what, and that every mistake names file:line:col. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/suite.h"
#include "testutil.h"

static char dir[256];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "suite"), 0);
    char p[400];
    snprintf(p, sizeof(p), "%s/guest.cfg", dir);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fprintf(f,
            "[vm0]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=256;\n"
            "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=console=ttyS0;\n"
            "login =\n    user=root,password=tester;\n"
            "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
            "qga =\n    enable=yes;\n"
            "[noagent]\n"
            "mem =\n    size=128;\n"
            "kernel =\n    file=%s/vmlinux;\n"
            "qga =\n    enable=no;\n",
            tu_guest_dir(), tu_guest_dir(), tu_guest_dir());
    fclose(f);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(suite, .init = setup, .fini = teardown);

/* Write text as DIR/name and load it; returns rc, err filled. */
static int load(const char *name, const char *text, struct suite **out, char *err, size_t errlen)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    struct suite *s = NULL;
    err[0] = '\0';
    int rc = suite_load(p, &s, err, errlen);
    if (out)
        *out = s;
    else
        suite_free(s);
    return rc;
}

/* The error of text must start at "t.suite:LINE:COL: error: " and contain what. */
static void expect_error(const char *text, int line, int col, const char *what)
{
    char err[1024], want[64];
    cr_assert_lt(load("t.suite", text, NULL, err, sizeof(err)), 0, "accepted:\n%s", text);
    snprintf(want, sizeof(want), "t.suite:%d:%d: error: ", line, col);
    cr_assert(strstr(err, want), "wanted %s... got: %s", want, err);
    cr_assert(strstr(err, what), "wanted '%s' in: %s", what, err);
}

static const char good[] =
    "# a comment\n"
    "[suite]\n"
    "name = demo\n"
    "cfg = guest.cfg\n"
    "vms = vm0 * 3, noagent\n"
    "setup = each\n"
    "timeout = 1.5s\n"
    "transport = ssh\n"
    "\n"
    "[set_up_all]\n"
    "host: mkdir -p ${tmp}/x\n"
    "[set_up]\n"
    "run vm0-1: true\n"
    "[tear_down]\n"
    "sleep 200ms\n"
    "\n"
    "[case first]\n"
    "run vm0-2 via agent: echo a; \\\n"
    "  echo b\n"
    "    expect stdout ~ ^a$\n"
    "    expect exit != 3\n"
    "    timeout 2m\n"
    "qmp vm0-3: query-status {\"x\": ${guest.vm0-1.pid}}\n"
    "    expect status = running\n"
    "    expect *.devices.*.qdev_id != pt_9\n"
    "qga vm0-1: guest-ping\n"
    "    expect error ~ ^$\n"
    "copy_to vm0-1: \"${tmp}/a file\" /tmp/b\n"
    "copy_from vm0-1 via ssh: /tmp/b back\n"
    "[case second]\n"
    "host: echo $${not_a_var} ${guest.vm0-3.ip}\n";

Test(suite, parses_everything)
{
    struct suite *s;
    char err[1024];
    cr_assert_eq(load("good.suite", good, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s->name, "demo");
    cr_assert(strstr(s->cfg, "/guest.cfg") && s->cfg[0] == '/');
    cr_assert_eq(s->setup_each, 1);
    cr_assert_eq(s->timeout_ms, 1500);
    cr_assert_eq(s->transport, ST_SSH);
    cr_assert_eq(s->nguests, 4);
    cr_assert_str_eq(s->guests[0].name, "vm0-1");
    cr_assert_str_eq(s->guests[2].name, "vm0-3");
    cr_assert_str_eq(s->guests[3].name, "noagent");
    cr_assert_eq(s->guests[0].mem_mb, 256);
    cr_assert_eq(s->guests[3].mem_mb, 128);
    cr_assert(s->guests[0].has_login && s->guests[0].has_agent);
    cr_assert(!s->guests[3].has_login && !s->guests[3].has_agent);
    cr_assert_eq(s->set_up_all.nsteps, 1);
    cr_assert_eq(s->tear_down.steps[0].verb, SV_SLEEP);
    cr_assert_eq(s->tear_down.steps[0].timeout_ms, 200);
    cr_assert_eq(s->ncases, 2);
    const struct suite_case *c = &s->cases[0];
    cr_assert_str_eq(c->name, "first");
    cr_assert_eq(c->loc.line, 17);
    cr_assert_eq(c->nsteps, 5);
    const struct suite_step *st = &c->steps[0];
    cr_assert_eq(st->verb, SV_RUN);
    cr_assert_str_eq(st->guest, "vm0-2");
    cr_assert_eq(st->via, ST_AGENT);
    cr_assert_str_eq(st->text, "echo a;   echo b", "continuation: '%s'", st->text);
    cr_assert_eq(st->loc.line, 18);
    cr_assert_eq(st->nex, 2);
    cr_assert_eq(st->ex[0].subject, SX_STDOUT);
    cr_assert_eq(st->ex[0].op, SO_MATCH);
    cr_assert_str_eq(st->ex[0].value, "^a$");
    cr_assert_eq(st->ex[1].subject, SX_EXIT);
    cr_assert_eq(st->ex[1].op, SO_NE);
    cr_assert_eq(st->has_exit, 1);
    cr_assert_eq(st->timeout_ms, 120000);
    st = &c->steps[1];
    cr_assert_eq(st->verb, SV_QMP);
    cr_assert_str_eq(st->text, "query-status");
    cr_assert_str_eq(st->arg, "{\"x\": ${guest.vm0-1.pid}}");
    cr_assert_eq(st->ex[0].subject, SX_PATH);
    cr_assert_str_eq(st->ex[0].path, "status");
    cr_assert_str_eq(st->ex[1].path, "*.devices.*.qdev_id");
    cr_assert_eq(c->steps[2].ex[0].subject, SX_ERROR);
    st = &c->steps[3];
    cr_assert_eq(st->verb, SV_COPY_TO);
    cr_assert_str_eq(st->text, "${tmp}/a file");
    cr_assert_str_eq(st->arg, "/tmp/b");
    cr_assert_eq(c->steps[4].verb, SV_COPY_FROM);
    cr_assert_eq(suite_step_transport(s, &c->steps[4], 1), ST_SSH);
    cr_assert_eq(s->cases[1].steps[0].verb, SV_HOST);
    suite_free(s);
}

static const char *var_of(const char *name, void *data)
{
    (void)data;
    return !strcmp(name, "tmp") ? "/t" : !strcmp(name, "guest.vm0-1.pid") ? "42" : NULL;
}

Test(suite, expands_variables)
{
    char err[256];
    char *s = suite_expand("kill ${guest.vm0-1.pid}; ls ${tmp}/x $${HOME} $$", var_of, NULL, err,
                           sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_str_eq(s, "kill 42; ls /t/x ${HOME} $$");
    free(s);
    cr_assert_null(suite_expand("${nope}", var_of, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "${nope}"), "%s", err);
}

Test(suite, default_name_transport_and_all_sections)
{
    struct suite *s;
    char err[1024];
    cr_assert_eq(load("my_net-1.suite", "[suite]\ncfg = guest.cfg\n[case a]\nrun vm0: true\n", &s, err,
                      sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s->name, "my_net-1");
    cr_assert_eq(s->nguests, 2, "every section once");
    cr_assert_str_eq(s->guests[0].name, "vm0");
    cr_assert_eq(s->setup_each, 0);
    cr_assert_eq(s->timeout_ms, SUITE_TIMEOUT_DEFAULT_MS);
    cr_assert_eq(suite_step_transport(s, &s->cases[0].steps[0], 1), ST_SSH);
    cr_assert_eq(suite_step_transport(s, &s->cases[0].steps[0], 0), ST_AGENT);
    suite_free(s);
}

Test(suite, examples_load)
{
    struct suite *s;
    char err[1024];
    cr_assert_eq(suite_load(QF_SOURCE_DIR "/cfg/examples/smoke.suite", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s->name, "smoke");
    cr_assert_eq(s->nguests, 4);
    cr_assert_geq(s->ncases, 4);
    suite_free(s);
    cr_assert_eq(suite_load(QF_SOURCE_DIR "/cfg/examples/lifecycle.suite", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s->setup_each, 1);
    cr_assert_eq(s->transport, ST_AGENT);
    suite_free(s);
    cr_assert_eq(suite_load(QF_SOURCE_DIR "/cfg/examples/interactive.suite", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s->cases[0].ncloses, 1);
    cr_assert_eq(s->tear_down_all.nsteps, 1);
    suite_free(s);
}

#define HDR "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\n"

Test(suite, syntax_errors_name_line_and_column)
{
    expect_error("[suite]\ncfg = guest.cfg\n[case a]\nrum vm0-1: true\n", 4, 1, "unknown step 'rum'");
    expect_error(HDR "[case a]\nrun vm0-1 true\n", 5, 11, "expected ':'");
    expect_error(HDR "[case a]\nrun vm0-1:   \n", 5, 14, "nothing after ':'");
    expect_error("[suite]\ncfg = guest.cfg\ncolour = red\n[case a]\nhost: true\n", 3, 1, "unknown key 'colour'");
    expect_error("[suite]\ncfg = a.cfg\ncfg = guest.cfg\n[case a]\nhost: true\n", 3, 1, "given twice");
    expect_error(HDR "[case a]\nhost: true\n[case a]\nhost: true\n", 6, 7, "defined twice");
    expect_error(HDR "[case a]\nhost: true\n    expect stdout ~ (unclosed\n", 6, 21, "bad regular expression");
    expect_error(HDR "[case a]\nqmp vm0-1: query-status {\"a\": }\n", 5, 25, "one JSON object");
    expect_error(HDR "[case a]\nqmp vm0-1: query-status [1]\n", 5, 25, "one JSON object");
    expect_error(HDR "[case a]\nhost: echo ${guest.vm0-1.password}\n", 5, 12, "unknown variable");
    expect_error(HDR "[case a]\nhost: echo ${tmp\n", 5, 12, "unterminated");
    expect_error(HDR "[case a]\n    expect exit = 0\nhost: true\n", 5, 5, "before any step");
    expect_error(HDR "[case a]\ncopy_to vm0-1: a b\n    expect exit = 0\n", 6, 5, "no expect clauses");
    expect_error(HDR "[case a]\ncopy_to vm0-1: only_one\n", 5, 24, "two paths");
    expect_error(HDR "[case a]\nhost: true\n    timeout soon\n", 6, 13, "timeout 'soon'");
    expect_error(HDR "[case a]\nhost: true\n    expect exit = x\n", 6, 19, "exit status 'x'");
    expect_error(HDR "[case a]\nhost: true\n    expect stdout ~= x\n", 6, 19, "expected an operator");
    expect_error(HDR "[case a]\nhost: true\n    expect return.x = 1\n", 6, 12, "unknown subject");
    expect_error(HDR "[case a]\nqga vm0-1 via ssh: guest-ping\n", 5, 11, "'via' is for");
    expect_error(HDR "[case a]\nrun vm0-1 via telnet: true\n", 5, 15, "expected ssh or agent");
    expect_error(HDR "[case bad name]\nhost: true\n", 4, 7, "case name 'bad name'");
    expect_error(HDR "[cases]\nhost: true\n", 4, 2, "unknown section [cases]");
    expect_error(HDR "[case a\nhost: true\n", 4, 1, "expected ']'");
    expect_error("host: true\n[suite]\ncfg = guest.cfg\n", 1, 1, "outside a section");
    expect_error("[suite]\ncfg = guest.cfg\nvms = vm0 * 0\n[case a]\nhost: true\n", 3, 13, "count from 1");
    expect_error("[suite]\ncfg = guest.cfg\nvms = vm0 vm1\n[case a]\nhost: true\n", 3, 11, "expected ','");
    expect_error("[suite]\ncfg = guest.cfg\nsetup = sometimes\n[case a]\nhost: true\n", 3, 9, "expected all");
    expect_error("[suite]\ncfg = guest.cfg\n[suite]\n", 3, 2, "a second [suite]");
    expect_error("[suite]\nvms = vm0\n[case a]\nhost: true\n", 1, 1, "no 'cfg = FILE'");
    expect_error("[case a]\nhost: true\n", 1, 1, "no [suite] section");
    expect_error("[suite]\ncfg = guest.cfg\n", 1, 1, "no [case NAME]");
    expect_error(HDR "[case a]\nsleep forever\n", 5, 7, "sleep 'forever'");
}

Test(suite, reference_errors_name_line_and_column)
{
    expect_error("[suite]\ncfg = missing.cfg\n[case a]\nhost: true\n", 2, 7, "cfg:");
    expect_error("[suite]\ncfg = guest.cfg\nvms = vm0, vm9 * 2\n[case a]\nhost: true\n", 3, 12,
                 "no section [vm9]");
    expect_error(HDR "[case a]\nrun vm0-3: true\n", 5, 1, "no guest 'vm0-3' in this suite (its guests: "
                 "vm0-1, vm0-2)");
    expect_error(HDR "[case a]\nhost: kill ${guest.vm0.pid}\n", 5, 1, "no guest 'vm0'");
    expect_error(HDR "[case a]\nhost: true\n    expect stdout = ${guest.x.ip}\n", 6, 12, "no guest 'x'");
    expect_error("[suite]\ncfg = guest.cfg\nvms = noagent\n[case a]\nqga noagent: guest-ping\n", 5, 1,
                 "no guest agent");
    expect_error("[suite]\ncfg = guest.cfg\nvms = noagent\n[case a]\nrun noagent: true\n", 5, 1,
                 "no guest agent");
    expect_error("[suite]\ncfg = guest.cfg\nvms = noagent\n[case a]\nrun noagent via ssh: true\n", 5, 1,
                 "no SSH login");
    /* A cfg error keeps the cfg's own file:line:col. */
    char p[400];
    snprintf(p, sizeof(p), "%s/broken.cfg", dir);
    FILE *f = fopen(p, "w");
    fputs("[vm0]\nnet =\n    type=nic,opt_macaddr=zz:00:00:00:00:01;\n", f);
    fclose(f);
    char err[1024];
    cr_assert_lt(load("t.suite", "[suite]\ncfg = broken.cfg\n[case a]\nhost: true\n", NULL, err, sizeof(err)), 0);
    cr_assert(strstr(err, "broken.cfg:3:"), "%s", err);
}

Test(suite, parse_without_a_cfg_and_crlf)
{
    static const char text[] = "[suite]\r\ncfg = nowhere.cfg\r\n[case a]\r\nhost: true\r\n    expect stdout = \r\n";
    struct suite *s;
    char err[512];
    cr_assert_eq(suite_parse("x/y.suite", text, sizeof(text) - 1, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s->name, "y");
    cr_assert_str_eq(s->cases[0].steps[0].text, "true");
    cr_assert_str_eq(s->cases[0].steps[0].ex[0].value, "");
    suite_free(s);
    cr_assert_lt(suite_parse("n.suite", "[suite]\n\0", 9, &s, err, sizeof(err)), 0);
    cr_assert(strstr(err, "n.suite:2:1: error: NUL byte"), "%s", err);
}

static const char interactive[] =
    "[suite]\ncfg = guest.cfg\nvms = vm0 * 2\ntransport = agent\n"
    "[set_up]\n"
    "spawn vm0-1 as pmd: testpmd -i --nb-cores=${guest.vm0-2.pid}\n"       /* 6 */
    "    timeout 20s\n"
    "expect pmd: testpmd> $\n"
    "[tear_down]\n"
    "send pmd: quit\n"                                                    /* 10 */
    "[tear_down_all]\n"
    "spawn vm0-2: sh\n"
    "send vm0-2:\n"
    "expect vm0-2: [#$] \n"
    "[case a]\n"                                                          /* 15 */
    "send pmd: show port info all\n"
    "expect pmd: Link status: (up|down)\n"
    "    timeout 500ms\n"
    "    expect exit = 0\n";

Test(suite, interactive_sessions)
{
    struct suite *s;
    char err[1024];
    /* "expect exit = 0" at line 19 is a clause, and session steps take none. */
    cr_assert_lt(load("i.suite", interactive, &s, err, sizeof(err)), 0);
    cr_assert(strstr(err, "i.suite:19:5: error: expect steps take no expect clauses"), "%s", err);
    size_t n = strlen(interactive) - strlen("    expect exit = 0\n");
    char text[sizeof(interactive) + 128];
    snprintf(text, sizeof(text), "%.*s[case b]\nspawn vm0-2 via ssh: top\nclose vm0-2\nspawn vm0-2: top\n",
             (int)n, interactive);
    cr_assert_eq(load("i.suite", text, &s, err, sizeof(err)), 0, "%s", err);
    const struct suite_step *st = &s->set_up.steps[0];
    cr_assert_eq(st->verb, SV_SPAWN);
    cr_assert_str_eq(st->guest, "vm0-1");
    cr_assert_str_eq(st->session, "pmd");
    cr_assert_str_eq(st->text, "testpmd -i --nb-cores=${guest.vm0-2.pid}");
    cr_assert_eq(st->timeout_ms, 20000);
    cr_assert_eq(suite_step_transport(s, st, 1), ST_AGENT, "the suite's; spawn itself always uses ssh");
    st = &s->set_up.steps[1];
    cr_assert_eq(st->verb, SV_EXPECT);
    cr_assert_null(st->guest);
    cr_assert_str_eq(st->session, "pmd");
    cr_assert_str_eq(st->text, "testpmd> $");
    cr_assert_eq(s->tear_down.steps[0].verb, SV_SEND);
    cr_assert_str_eq(s->tear_down.steps[0].text, "quit");
    cr_assert_str_eq(s->tear_down_all.steps[0].session, "vm0-2", "keyed by the guest");
    cr_assert_str_eq(s->tear_down_all.steps[1].text, "", "send of an empty line");
    cr_assert_eq(s->tear_down_all.ncloses, 1);
    cr_assert_str_eq(s->tear_down_all.closes[0].session, "vm0-2");
    const struct suite_case *c = &s->cases[0];
    cr_assert_eq(c->steps[1].timeout_ms, 500);
    cr_assert_eq(c->ncloses, 1, "set_up's pmd, closed at the end of the case");
    cr_assert_eq(c->closes[0].verb, SV_CLOSE);
    cr_assert(c->closes[0].implicit);
    cr_assert_str_eq(c->closes[0].source, "close pmd (end of case)");
    c = &s->cases[1];
    cr_assert_eq(c->steps[0].via, ST_SSH);
    cr_assert_eq(c->steps[1].verb, SV_CLOSE);
    cr_assert_str_eq(c->steps[1].session, "vm0-2");
    cr_assert_eq(c->ncloses, 2, "pmd and vm0-2 once each");
    cr_assert_str_eq(c->closes[1].session, "vm0-2");
    suite_free(s);
}

Test(suite, migrate_and_tear_down_all)
{
    struct suite *s;
    char err[1024];
    cr_assert_eq(load("m.suite", HDR "[case m]\nmigrate vm0-1 -> vm0-2\n    timeout 5m\n"
                      "    downtime-limit 300ms\n    max-bandwidth 1.5G\n"
                      "[tear_down_all]\nhost: rm -rf ${tmp}/x\nrun vm0-2: true\n",
                      &s, err, sizeof(err)), 0, "%s", err);
    const struct suite_step *st = &s->cases[0].steps[0];
    cr_assert_eq(st->verb, SV_MIGRATE);
    cr_assert_str_eq(st->guest, "vm0-1");
    cr_assert_str_eq(st->dest, "vm0-2");
    cr_assert_eq(st->timeout_ms, 300000);
    cr_assert_eq(st->downtime_ms, 300);
    cr_assert_eq(st->bandwidth, 1610612736LL);
    cr_assert_str_eq(suite_verb_name(st->verb), "migrate");
    cr_assert_eq(s->tear_down_all.nsteps, 2);
    cr_assert_eq(s->tear_down_all.ncloses, 0);
    cr_assert_eq(s->cases[0].ncloses, 0);
    suite_free(s);
}

Test(suite, interactive_and_migrate_errors_name_line_and_column)
{
    expect_error(HDR "[case a]\nspawn vm0-1 via agent: sh\n", 5, 17, "spawn needs ssh");
    expect_error(HDR "[case a]\nspawn vm0-1 as: sh\n", 5, 15, "expected the session");
    expect_error(HDR "[case a]\nspawn vm0-1 sh\n", 5, 13, "expected ':' before the command");
    expect_error(HDR "[case a]\nspawn vm0-1:\n", 5, 13, "nothing after ':'");
    expect_error(HDR "[case a]\nexpect : x\n", 5, 8, "expected the session after 'expect'");
    expect_error(HDR "[case a]\nspawn vm0-1: sh\nexpect vm0-1: (open\n", 6, 15, "bad regular expression");
    expect_error(HDR "[case a]\nspawn vm0-1: sh\nexpect vm0-1: ${nope}\n", 6, 15, "unknown variable");
    expect_error(HDR "[case a]\nspawn vm0-1: sh\nclose vm0-1 now\n", 6, 13, "unexpected text after the session");
    expect_error(HDR "[case a]\nspawn vm0-1: sh\n    expect stdout ~ x\n", 6, 5, "spawn steps take no expect");
    expect_error(HDR "[case a]\nmigrate vm0-1 vm0-2\n", 5, 15, "expected '->'");
    expect_error(HDR "[case a]\nmigrate vm0-1 ->\n", 5, 17, "expected the destination guest");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-1\n", 5, 18, "cannot migrate into itself");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-2: fast\n", 5, 23, "unexpected text after the destination");
    expect_error(HDR "[case a]\nmigrate vm0-1 via ssh -> vm0-2\n", 5, 15, "'via' is for");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-2\n    downtime-limit soon\n", 6, 20, "downtime-limit 'soon'");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-2\n    max-bandwidth 3T\n", 6, 19, "max-bandwidth '3T'");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-2\n    expect status = completed\n", 6, 5,
                 "migration fails");
    expect_error(HDR "[case a]\nhost: true\n    max-bandwidth 1M\n", 6, 5, "an option of migrate steps");
    expect_error(HDR "[tear_down_all]\nhost: true\n[tear_down_all]\n", 6, 2, "a second [tear_down_all]");
}

Test(suite, session_reference_errors_name_line_and_column)
{
    expect_error(HDR "[case a]\nsend pmd: quit\n", 5, 1, "no session 'pmd' here");
    expect_error(HDR "[case a]\nspawn vm0-1: sh\nspawn vm0-1: top\n", 6, 1,
                 "session 'vm0-1' is already open (spawned at line 5)");
    expect_error(HDR "[case a]\nspawn vm0-1 as p: sh\n[case b]\nexpect p: x\n", 7, 1, "no session 'p' here");
    expect_error(HDR "[case a]\nspawn vm0-1 as vm0-2: sh\n", 5, 1, "another guest's name");
    expect_error(HDR "[case a]\nspawn vm0-3: sh\n", 5, 1, "no guest 'vm0-3'");
    expect_error(HDR "[case a]\nmigrate vm0-1 -> vm0-9\n", 5, 1, "no guest 'vm0-9'");
    expect_error(HDR "[set_up_all]\nspawn vm0-1: sh\n[case a]\nhost: true\n", 5, 1,
                 "spawn in [set_up_all]: interactive sessions live within one case");
    expect_error(HDR "[tear_down_all]\nclose p\n[case a]\nspawn vm0-1 as p: sh\n", 5, 1, "no session 'p' here");
    expect_error("[suite]\ncfg = guest.cfg\nvms = noagent\n[case a]\nspawn noagent: sh\n", 5, 1,
                 "spawn needs one");
    /* [tear_down] may close what any case spawned (a no-op where it is not open). */
    struct suite *s;
    char err[1024];
    cr_assert_eq(load("t.suite", HDR "[tear_down]\nclose p\n[case a]\nspawn vm0-1 as p: sh\n[case b]\n"
                      "host: true\n", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s->cases[1].ncloses, 0);
    suite_free(s);
}
