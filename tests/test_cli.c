/* test_cli.c - the qfleet and qmpctl command lines, through the real
 * binaries, booting nothing: usage errors (exit 2 and a message naming the
 * option), --help and --version, `cmdline` on the example cfg, the lease
 * store commands on a private state dir, `run` on broken suites and
 * `--list`, `down` and `qmpctl list` with no live run. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "src/cli/cmd.h"
#include "tests/testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define QMPCTL QF_BINARY_DIR "/tools/qmpctl"
#define GUEST_CFG QF_SOURCE_DIR "/cfg/examples/guest.cfg"

static char dir[256];   /* scratch: suites, cfgs, outputs */
static char state[300]; /* the private state dir, also $QFLEET_STATE_DIR */

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "cli"), 0);
    snprintf(state, sizeof(state), "%s/state", dir);
    cr_assert_eq(mkdir(state, 0700), 0);
    /* Nothing here may see or touch the host's real state. */
    setenv("QFLEET_STATE_DIR", state, 1);
}

static void teardown(void)
{
    tu_rmtree(dir);
}

TestSuite(cli, .init = setup, .fini = teardown);

struct res {
    int rc;
    char *out, *err;
};

static void res_free(struct res *r)
{
    free(r->out);
    free(r->err);
}

/* Run prog with args (NULL-terminated); stdout and stderr through files,
 * so no output size can block the child. */
static struct res run_argv(const char *prog, const char *const *args)
{
    const char *argv[40] = { prog };
    int n = 1;
    while (n < 39 && args[n - 1]) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    char out[400], err[400];
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(err, sizeof(err), "%s/err.txt", dir);
    tu_child c = { .out = out, .err = err, .cwd = dir };
    struct res r = { .rc = tu_wait_exit(tu_start(argv, &c), 60000) };
    r.out = tu_slurp(out);
    r.err = tu_slurp(err);
    return r;
}

#define RUN(prog, ...) run_argv(prog, (const char *const[]){ __VA_ARGS__, NULL })

/* prog ARGS... must exit with rc_, print want_out somewhere in stdout
 * (NULL: nothing at all) and want_err somewhere in stderr (NULL: nothing). */
#define EXPECT(rc_, want_out, want_err, prog, ...)                                                \
    do {                                                                                      \
        struct res r_ = RUN(prog, __VA_ARGS__);                                               \
        const char *wo_ = (want_out), *we_ = (want_err);                                      \
        cr_assert_eq(r_.rc, rc_, "%s: exit %d, wanted %d\nstdout: %s\nstderr: %s",           \
                     #__VA_ARGS__, r_.rc, rc_, r_.out, r_.err);                               \
        cr_assert(wo_ ? strstr(r_.out, wo_) != NULL : r_.out[0] == '\0',                      \
                  "%s: stdout wanted '%s', got: %s", #__VA_ARGS__, wo_ ? wo_ : "", r_.out);   \
        cr_assert(we_ ? strstr(r_.err, we_) != NULL : r_.err[0] == '\0',                      \
                  "%s: stderr wanted '%s', got: %s", #__VA_ARGS__, we_ ? we_ : "", r_.err);   \
        res_free(&r_);                                                                        \
    } while (0)

static json_t *parse_json(const char *s)
{
    json_t *v = json_parse(s, strlen(s), NULL, 0);
    cr_assert(v, "not JSON: %s", s);
    return v;
}

/* ---- usage errors ---- */

Test(cli, usage_errors_name_the_option)
{
    EXPECT(2, NULL, "usage: qfleet COMMAND", QFLEET, NULL);
    EXPECT(2, NULL, "qfleet: unknown command 'launch'", QFLEET, "launch");
    EXPECT(2, NULL, "qfleet run: --jobs must be a number from 1 to 100000, not 'x'", QFLEET, "run",
           "--jobs", "x", "a.suite");
    EXPECT(2, NULL, "qfleet run: --retries must be a number from 0 to 100, not '101'", QFLEET,
           "run", "a.suite", "--retries", "101");
    EXPECT(2, NULL, "qfleet run: --shard takes K/N with 1 <= K <= N, not '3/2'", QFLEET, "run",
           "a.suite", "--shard", "3/2");
    EXPECT(2, NULL, "qfleet run: name at least one SUITE file", QFLEET, "run", "--jobs", "2");
    EXPECT(2, NULL, "qfleet run: option '--j' is ambiguous", QFLEET, "run", "--j", "2", "a.suite");
    EXPECT(2, NULL, "qfleet run: --boot-timeout needs a value", QFLEET, "run", "a.suite",
           "--boot-timeout");
    EXPECT(2, NULL, "qfleet up: unknown option '--bogus' (see 'qfleet up --help')", QFLEET, "up",
           "--bogus", GUEST_CFG);
    EXPECT(2, NULL, "qfleet up: --count must be a number from 1 to 999, not '0'", QFLEET, "up",
           GUEST_CFG, "--count", "0");
    EXPECT(2, NULL, "qfleet up: name the cfg file", QFLEET, "up", "-q");
    EXPECT(2, NULL, "qfleet up: unknown option '-x'", QFLEET, "up", "-qx", GUEST_CFG);
    EXPECT(2, NULL, "qfleet down: unexpected argument 'two'", QFLEET, "down", "one", "two");
    EXPECT(2, NULL, "qfleet down: --timeout must be a number from 1 to 86400, not '0'", QFLEET,
           "down", "--timeout=0");
    EXPECT(2, NULL, "qfleet cmdline: name the cfg file and the VM", QFLEET, "cmdline", GUEST_CFG);
    EXPECT(2, NULL, "qfleet cmdline: unexpected argument 'vm1'", QFLEET, "cmdline", GUEST_CFG,
           "vm0", "vm1");
    EXPECT(2, NULL, "qfleet cmdline: --defaults needs a value", QFLEET, "cmdline", GUEST_CFG,
           "vm0", "--defaults");
    EXPECT(2, NULL, "qfleet leases: --json takes no value", QFLEET, "leases", "--json=yes");
    EXPECT(2, NULL, "qfleet leases: unexpected argument 'extra'", QFLEET, "leases", "extra");
    EXPECT(2, NULL, "qfleet alloc: say what to allocate: mac, vnc or port", QFLEET, "alloc",
           "disk", "--owner", "x");
    EXPECT(2, NULL, "qfleet alloc: --owner NAME is required", QFLEET, "alloc", "mac");
    EXPECT(2, NULL, "qfleet alloc: --nic does not apply to vnc", QFLEET, "alloc", "vnc", "--owner",
           "x", "--nic", "1");
    EXPECT(2, NULL, "qfleet alloc: --nic must be a number from 0 to 9999, not 'one'", QFLEET,
           "alloc", "mac", "--owner", "x", "--nic", "one");
    EXPECT(2, NULL, "qfleet alloc: --range takes A-B with 1 <= A <= B <= 65535, not '9-1'", QFLEET,
           "alloc", "port", "--owner", "x", "--range", "9-1");
    EXPECT(2, NULL, "qfleet alloc: --hold and --pid exclude each other", QFLEET, "alloc", "mac",
           "--owner", "x", "--hold", "--pid", "1");
    EXPECT(2, NULL, "qfleet free: --owner NAME is required", QFLEET, "free");
    EXPECT(2, NULL, "qfleet free: --owner needs a value", QFLEET, "free", "--owner");

    EXPECT(2, NULL, "usage: qmpctl [options] COMMAND", QMPCTL, NULL);
    EXPECT(2, NULL, "qmpctl: --timeout must be a number from 1 to 86400, not 'soon'", QMPCTL,
           "--timeout", "soon", "list");
    EXPECT(2, NULL, "qmpctl: -n (--lines) needs a value", QMPCTL, "console", "vm0", "-n");
    EXPECT(2, NULL, "qmpctl: unknown option '--no-such-option'", QMPCTL, "--no-such-option");
    EXPECT(2, NULL, "qmpctl: --check is for pci", QMPCTL, "--check", "status", "vm0");
}

/* ---- --help and --version ---- */

Test(cli, every_command_has_help_on_stdout)
{
    static const char *const cmds[] = { "up", "down", "run", "leases", "alloc", "free", "cmdline" };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "usage: qfleet %s", cmds[i]);
        EXPECT(0, want, NULL, QFLEET, cmds[i], "--help");
        EXPECT(0, want, NULL, QFLEET, cmds[i], "-h");
        /* Help wins over a usage error elsewhere on the line. */
        EXPECT(0, want, NULL, QFLEET, cmds[i], "--no-such-option", "--help");
    }
    EXPECT(0, "--json", NULL, QFLEET, "down", "--help");
    EXPECT(0, "--list", NULL, QFLEET, "run", "--help");
    EXPECT(0, "commands:", NULL, QFLEET, "--help");
    EXPECT(0, "--version", NULL, QFLEET, "help");
    EXPECT(0, "commands:", NULL, QMPCTL, "--help");
    EXPECT(0, "usage: qmpctl [options] pci VM", NULL, QMPCTL, "pci", "-h");
    EXPECT(0, "--version", NULL, QMPCTL, "--help");
}

/* The version CMake configured: project(qfleet VERSION X.Y.Z ...). */
static void project_version(char *out, size_t outlen)
{
    char *top = tu_slurp(QF_SOURCE_DIR "/CMakeLists.txt");
    const char *p = strstr(top, "project(qfleet VERSION ");
    cr_assert(p, "no project(qfleet VERSION ...) in CMakeLists.txt");
    p += strlen("project(qfleet VERSION ");
    snprintf(out, outlen, "%.*s", (int)strcspn(p, " )"), p);
    free(top);
}

Test(cli, version)
{
    char v[32], want[64];
    project_version(v, sizeof(v));
    cr_assert_geq(strlen(v), 5, "%s", v);
    snprintf(want, sizeof(want), "qfleet %s", v);
    struct res r = RUN(QFLEET, "--version");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(strncmp(r.out, want, strlen(want)), 0, "%s", r.out);
    cr_assert_eq(strchr(r.out, '\n') - r.out + 1, (long)strlen(r.out), "one line: %s", r.out);
    cr_assert_str_empty(r.err);
    char line[128];
    snprintf(line, sizeof(line), "%s", r.out);
    res_free(&r);
    /* qmpctl belongs to the same build and says the same after its name. */
    r = RUN(QMPCTL, "--version");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out + strlen("qmpctl"), line + strlen("qfleet"), "%s vs %s", r.out, line);
    cr_assert_eq(strncmp(r.out, "qmpctl ", 7), 0);
    res_free(&r);
}

/* ---- cmdline ---- */

Test(cli, cmdline_prints_the_argv_without_launching)
{
    struct res r = RUN(QFLEET, "cmdline", GUEST_CFG, "vm0", "--run-dir", "rd");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "# VM vm0 ([vm0] of " GUEST_CFG ")\n") == r.out, "%s", r.out);
    cr_assert(strstr(r.out, "# previews (the fleet leases real values at launch):"), "%s", r.out);
    cr_assert(strstr(r.out, "\nqemu-system-x86_64"), "%s", r.out);
    cr_assert(strstr(r.out, "-name"), "%s", r.out);
    cr_assert_null(strstr(r.out, "tester"), "the password never shows: %s", r.out);
    res_free(&r);

    r = RUN(QFLEET, "cmdline", "--json", GUEST_CFG, "vm0", "--run-dir", "rd");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *v = parse_json(r.out);
    const json_t *argv = json_get(v, "argv");
    cr_assert_eq(json_typeof(argv), JSON_ARRAY);
    cr_assert_str_eq(json_str(json_at(argv, 0)), "qemu-system-x86_64");
    int named = 0;
    for (size_t i = 0; i + 1 < json_len(argv); i++) {
        const char *a = json_str(json_at(argv, i));
        cr_assert(a, "argv[%zu] is a string", i);
        cr_assert_null(strstr(a, "tester"), "argv[%zu] = %s", i, a);
        named |= !strcmp(a, "-name") && !strcmp(json_str(json_at(argv, i + 1)), "vm0");
    }
    cr_assert(named, "-name vm0 in %s", r.out);
    cr_assert_eq(json_typeof(json_get(v, "vm")), JSON_OBJECT);
    cr_assert_eq(json_typeof(json_get(v, "warnings")), JSON_ARRAY);
    const json_t *pv = json_get(v, "preview");
    char rd[400];
    snprintf(rd, sizeof(rd), "%s/rd", dir);
    cr_assert_str_eq(json_get_str(pv, "run_dir"), rd, "a relative --run-dir is made absolute");
    cr_assert_eq(json_len(json_get(pv, "macs")), 2, "%s", r.out);
    cr_assert_str_eq(json_get_str(json_at(json_get(pv, "pci_slots"), 0), "for"), "device 0 pt_0");
    json_free(v);
    res_free(&r);
}

Test(cli, cmdline_cfg_errors_name_file_line)
{
    tu_write_in(dir, "bad.cfg", "[vm0]\nmem = lots\n");
    const char *want = "bad.cfg:2:7: error: expected OPTION=VALUE";
    EXPECT(2, NULL, want, QFLEET, "cmdline", "bad.cfg", "vm0");
    EXPECT(2, NULL, "no section [vm9] (sections: vm0)", QFLEET, "cmdline", GUEST_CFG, "vm9");
    EXPECT(2, NULL, "nonexistent.cfg", QFLEET, "cmdline", "nonexistent.cfg", "vm0");
    /* up loads the whole cfg before anything is created on the host. */
    EXPECT(2, NULL, want, QFLEET, "up", "bad.cfg", "--state-dir", state);
}

/* ---- the lease store ---- */

Test(cli, leases_alloc_free_on_a_private_state_dir)
{
    /* A set prefix: a derived one warns on hosts with a locally
     * administered NIC (test_alloc_cloned tests that warning). */
    setenv("QFLEET_MAC_PREFIX", "02:00:00:ab", 1);
    char want[400];
    snprintf(want, sizeof(want), "no leases held in %s", state);
    EXPECT(0, want, NULL, QFLEET, "leases", "--state-dir", state);

    struct res r = RUN(QFLEET, "alloc", "port", "--owner", "job/vm", "--hold", "--range",
                       "34000-34999", "--json", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *v = parse_json(r.out);
    cr_assert_str_eq(json_get_str(v, "kind"), "port");
    cr_assert_str_eq(json_get_str(v, "owner"), "job/vm");
    cr_assert(json_get_bool(v, "hold", 0));
    int port = atoi(json_get_str(v, "value"));
    cr_assert(port >= 34000 && port <= 34999, "%s", r.out);
    json_free(v);
    res_free(&r);

    /* Options may be shortened to a unique prefix, as with getopt before. */
    r = RUN(QFLEET, "alloc", "mac", "--own", "job/vm", "--prefix=02:cd:", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(strlen(r.out), 18, "one MAC and a newline: %s", r.out);
    cr_assert_eq(strncmp(r.out, "02:cd:", 6), 0, "%s", r.out);
    res_free(&r);

    r = RUN(QFLEET, "leases", "--json", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    v = parse_json(r.out);
    cr_assert_eq(json_len(v), 2, "%s", r.out);
    int mac = !strcmp(json_get_str(json_at(v, 0), "kind"), "port");
    cr_assert_str_eq(json_get_str(json_at(v, mac), "owner"), "job/vm/nic0", "%s", r.out);
    cr_assert_eq(json_get_int(json_at(v, mac), "pid", 0), getpid(), "the caller's lease");
    cr_assert_str_eq(json_get_str(json_at(v, !mac), "kind"), "port");
    cr_assert_eq(json_get_int(json_at(v, !mac), "pid", -1), 0, "--hold");
    json_free(v);
    res_free(&r);

    EXPECT(0, "released 2 leases of job", NULL, QFLEET, "free", "--owner", "job", "--state-dir",
           state);
    r = RUN(QFLEET, "free", "--owner", "job", "--json", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    v = parse_json(r.out);
    cr_assert_eq(json_get_int(v, "released", -1), 0);
    cr_assert_str_eq(json_get_str(v, "owner"), "job");
    json_free(v);
    res_free(&r);
    EXPECT(0, want, NULL, QFLEET, "leases", "--state-dir", state);
}

/* ---- run ---- */

Test(cli, run_config_errors_exit_2_with_file_line)
{
    tu_write_in(dir, "bad.suite", "[suite]\ncfg = " GUEST_CFG "\n[case a]\nrun vm0: true\n"
                            "    expect stdout ~ (\n");
    EXPECT(2, NULL, "qfleet run: bad.suite:5:21: error: bad regular expression", QFLEET, "run",
           "bad.suite", "--state-dir", state);
    tu_write_in(dir, "one.suite", "[suite]\nname = same\ncfg = " GUEST_CFG "\n[case a]\nhost: true\n");
    tu_write_in(dir, "two.suite", "[suite]\nname = same\ncfg = " GUEST_CFG "\n[case a]\nhost: true\n");
    EXPECT(2, NULL, "are both suite 'same'", QFLEET, "run", "one.suite", "two.suite",
           "--state-dir", state);
    EXPECT(2, NULL, "nosuch.suite", QFLEET, "run", "nosuch.suite", "--state-dir", state);
}

Test(cli, run_list_boots_nothing)
{
    tu_write_in(dir, "a.suite", "[suite]\ncfg = " GUEST_CFG "\n[case a]\nhost: true\n");
    tu_write_in(dir, "b.suite", "[suite]\ncfg = " GUEST_CFG "\n[case b]\nhost: true\n");
    struct res r = RUN(QFLEET, "run", "--list", "a.suite", "b.suite", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "a\ta.suite\nb\tb.suite\n");
    res_free(&r);
    r = RUN(QFLEET, "run", "--list", "--json", "a.suite", "b.suite", "--state-dir", state);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *v = parse_json(r.out);
    cr_assert_eq(json_len(v), 2);
    cr_assert_str_eq(json_get_str(json_at(v, 1), "name"), "b");
    cr_assert_str_eq(json_get_str(json_at(v, 1), "path"), "b.suite");
    json_free(v);
    res_free(&r);
    /* "--" ends the options: a suite file may start with a dash. */
    tu_write_in(dir, "-c.suite", "[suite]\ncfg = " GUEST_CFG "\n[case c]\nhost: true\n");
    EXPECT(0, "-c\t", NULL, QFLEET, "run", "--list", "--", "-c.suite");
}

/* ---- no live run ---- */

Test(cli, down_and_qmpctl_without_a_live_run)
{
    EXPECT(1, NULL, "qfleet down: no running qfleet run on this host (start one with 'qfleet up')",
           QFLEET, "down", "--state-dir", state);
    EXPECT(1, NULL, "qfleet down: no running qfleet run on this host", QFLEET, "down");
    char want[400];
    snprintf(want, sizeof(want), "qfleet down: no run 'no-such-run' in %s/runs\n", state);
    EXPECT(1, NULL, want, QFLEET, "down", "no-such-run", "--state-dir", state);
    EXPECT(1, NULL, "qmpctl: no running qfleet run on this host", QMPCTL, "list");
    EXPECT(0, "[]", NULL, QMPCTL, "list", "--all", "--json");
}

/* ---- the parser itself ---- */

Test(cli, parser_forms)
{
    cli_opt opts[] = { { "--state-dir", 0, 1, NULL }, { "--socket", 's', 1, NULL },
                       { "--follow", 'f', 0, NULL },   { "--lines", 'n', 1, NULL },
                       { "--json", 0, 0, NULL },       { NULL, 0, 0, NULL } };
    char *argv[] = { "prog", "a", "--state=/st", "-fn5", "b", "-s", "SOCK", "--json", "--",
                     "--follow", NULL };
    cli_args ca;
    cr_assert_eq(cli_parse("prog", 10, argv, opts, -1, &ca), 0);
    cr_assert_not(ca.help);
    cr_assert_eq(ca.npos, 3);
    cr_assert_str_eq(ca.pos[0], "a");
    cr_assert_str_eq(ca.pos[1], "b");
    cr_assert_str_eq(ca.pos[2], "--follow", "after --, options are arguments");
    cr_assert_str_eq(opts[0].value, "/st");
    cr_assert_str_eq(opts[1].value, "SOCK");
    cr_assert_str_eq(opts[2].value, "");
    cr_assert_str_eq(opts[3].value, "5");
    cr_assert_str_eq(opts[4].value, "");
    long long n = 0;
    cr_assert_eq(cli_number("prog", &opts[3], 0, 9, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_eq(cli_number("prog", &opts[3], 6, 9, &n), 2, "5 is out of 6..9");
    cr_assert_eq(n, 5, "left alone on an error");
    opts[3].value = NULL;
    n = 42;
    cr_assert_eq(cli_number("prog", &opts[3], 0, 9, &n), 0, "absent: nothing to check");
    cr_assert_eq(n, 42);
}

Test(cli, parser_errors_and_help)
{
    cli_opt opts[] = { { "--jobs", 0, 1, NULL }, { "--json", 0, 0, NULL }, { NULL, 0, 0, NULL } };
    cli_args ca;
    char *amb[] = { "prog", "--j", "1", NULL };
    cr_assert_eq(cli_parse("prog", 3, amb, opts, -1, &ca), 2);
    char *flagval[] = { "prog", "--json=1", NULL };
    cr_assert_eq(cli_parse("prog", 2, flagval, opts, -1, &ca), 2);
    char *many[] = { "prog", "x", "y", NULL };
    cr_assert_eq(cli_parse("prog", 3, many, opts, 1, &ca), 2);
    char *help[] = { "prog", "x", "y", "--bogus", "-h", NULL };
    cr_assert_eq(cli_parse("prog", 5, help, opts, 1, &ca), 0, "help wins");
    cr_assert(ca.help);
    opts[0].value = NULL;
    char *prefix[] = { "prog", "--jo", "3", NULL };
    cr_assert_eq(cli_parse("prog", 3, prefix, opts, 0, &ca), 0, "--jo: only --jobs");
    cr_assert_str_eq(opts[0].value, "3");
    cr_assert_eq(ca.npos, 0);
    char *missing[] = { "prog", "--jobs", NULL };
    cr_assert_eq(cli_parse("prog", 2, missing, opts, 0, &ca), 2);
}
