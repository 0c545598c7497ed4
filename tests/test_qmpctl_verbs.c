/* test_qmpctl_verbs.c - qmpctl ssh, vnc and hmp (issue 16), the real binary:
 * against a bare QEMU (hmp -s), against its own SSH_ASKPASS helper, and
 * against one real TCG guest started by the real `qfleet up` (ssh with a
 * command and interactively through a pty, vnc, hmp). The password of the
 * cfg must show up in no output and in no process's command line or
 * environment while ssh runs. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "qfleet_fx.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define QMPCTL QF_BINARY_DIR "/tools/qmpctl"
#define PASSWORD "tester"

static char dir[256], run_dir[300], state_dir[300];
static pid_t fleet_pid, qemu_pid;
static int nout;
static const char *child_cwd; /* set: children start there */

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "qmpctl-verbs"), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
    mkdir(state_dir, 0700);
    snprintf(run_dir, sizeof(run_dir), "%s/runs/fleet", state_dir);
}

static void teardown(void)
{
    qfx_reap(&qemu_pid, SIGKILL, 1000);
    qfx_reap(&fleet_pid, SIGTERM, 60000);
    tu_rmtree(dir);
}

TestSuite(qmpctl_verbs, .init = setup, .fini = teardown, .timeout = 400);

/* ---- running things ---- */

static pid_t spawn(char *const argv[], const char *out, const char *err, char *const *env)
{
    tu_child c = { .out = out, .err = err, .state_dir = state_dir, .cwd = child_cwd,
                   .env = (const char *const *)env };
    return tu_start((const char *const *)argv, &c);
}

static qfx_res run_env(char *const *env, const char *first, va_list ap)
{
    char *argv[32], out[320], err[320];
    qfx_argv(argv, 32, QMPCTL, first, ap, NULL);
    snprintf(out, sizeof(out), "%s/out.%d", dir, nout);
    snprintf(err, sizeof(err), "%s/err.%d", dir, nout++);
    qfx_res r = qfx_collect(spawn(argv, out, err, env), out, err, 120000);
    /* Nothing qmpctl prints ever holds the password. */
    cr_assert(!strstr(r.out, PASSWORD) && !strstr(r.err, PASSWORD), "qmpctl %s printed the password",
              first);
    return r;
}

/* qmpctl ARGS... (NULL-terminated). */
static qfx_res qmpctl(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    qfx_res r = run_env(NULL, first, ap);
    va_end(ap);
    return r;
}

/* ---- without a guest ---- */

Test(qmpctl_verbs, help_and_usage)
{
    QFX_EXPECT(0, "SSH_ASKPASS", 0, "ssh", "--help");
    QFX_EXPECT(0, "5900+N", 0, "vnc", "--help");
    QFX_EXPECT(0, "human-monitor-command", 0, "hmp", "--help");
    QFX_EXPECT(0, "ssh VM", 0, "--help");
    QFX_EXPECT(2, "needs a guest name", 1, "ssh");
    QFX_EXPECT(2, "needs a guest name", 1, "vnc");
    QFX_EXPECT(2, "unexpected argument 'extra'", 1, "vnc", "vm0", "extra");
    QFX_EXPECT(2, "needs a command", 1, "hmp", "vm0");
    QFX_EXPECT(2, "--json is not for it", 1, "ssh", "vm0", "--json");
    QFX_EXPECT(2, "-s works with qmp, hmp, events and status", 1, "ssh", "-s", "/nonexistent", "vm0");
    QFX_EXPECT(1, "no running qfleet run", 1, "--state-dir", "/nonexistent-qfleet", "vnc", "vm0");
}

static void bare_qemu(char *sock, size_t len)
{
    snprintf(sock, len, "%s/qmp.sock", dir);
    char chardev[400];
    snprintf(chardev, sizeof(chardev), "unix:%s,server=on,wait=off", sock);
    char *argv[] = { "qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                     "-qmp", chardev, NULL };
    qemu_pid = fork();
    cr_assert_geq(qemu_pid, 0);
    if (qemu_pid == 0) {
        int n = open("/dev/null", O_RDWR);
        dup2(n, 0);
        dup2(n, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    cr_assert_eq(tu_wait_path(sock, 20000), 0, "QEMU made no QMP socket");
}

Test(qmpctl_verbs, hmp_on_a_bare_qemu)
{
    char sock[300];
    bare_qemu(sock, sizeof(sock));
    qfx_res r = qmpctl("hmp", "-s", sock, "info", "version", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(r.out[0] >= '1' && r.out[0] <= '9' && strchr(r.out, '.'), "not a version: %s", r.out);
    cr_assert(!strchr(r.out, '\r'), "HMP's CR LF line ends are kept: %s", r.out);
    qfx_res_free(&r);
    r = qmpctl("hmp", "-s", sock, "--json", "info", "status", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *v = json_parse(r.out, strlen(r.out), NULL, 0);
    cr_assert(v, "not JSON: %s", r.out);
    cr_assert_str_eq(json_get_str(v, "command"), "info status");
    cr_assert(strstr(json_get_str(v, "output"), "VM status"), "%s", r.out);
    json_free(v);
    qfx_res_free(&r);
    QFX_EXPECT(1, "unknown command: 'info bogus'", 1, "hmp", "-s", sock, "info", "bogus");
    qfx_reap(&qemu_pid, SIGKILL, 5000);
    QFX_EXPECT(1, "qmp.sock", 1, "hmp", "-s", sock, "info", "version");
}

/* A stand-in for the qmpctl that started ssh: one connection, answered. */
static int askpass_server(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    return fd;
}

static int accepted(int lfd)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

Test(qmpctl_verbs, askpass_helper_answers_only_password_prompts)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/pw", dir);
    int lfd = askpass_server(path);
    char *env[] = { "QMPCTL_ASKPASS_SOCK", path, NULL };
    /* A host-key question is not answered, and the server is not asked. */
    char *argv[] = { QMPCTL, "Are you sure you want to continue connecting (yes/no)?", NULL };
    char out[320], err[320];
    snprintf(out, sizeof(out), "%s/ask.out", dir);
    snprintf(err, sizeof(err), "%s/ask.err", dir);
    cr_assert_eq(tu_wait_exit(spawn(argv, out, err, env), 30000), 1);
    cr_assert_not(accepted(lfd), "the helper asked for a password to answer a yes/no question");
    /* A password prompt is answered with what the server sends, and a line end. */
    argv[1] = "root@127.0.0.1's password: ";
    pid_t pid = spawn(argv, out, err, env);
    int c = accept(lfd, NULL, NULL);
    cr_assert_geq(c, 0);
    cr_assert_eq(write(c, "s3cret", 6), 6);
    close(c);
    cr_assert_eq(tu_wait_exit(pid, 30000), 0);
    char *o = tu_slurp(out);
    cr_assert_str_eq(o, "s3cret\n");
    free(o);
    close(lfd);
}

/* ---- one real guest ---- */

static void start_fleet(void)
{
    char cfg[320];
    snprintf(cfg, sizeof(cfg), "%s/guest.cfg", dir);
    tu_guest_cfg(cfg, "vm0", NULL, NULL, "device =\n    driver=e1000,opt_id=pt_0;\nqga =\n    enable=yes;\n");
    char out[320], err[320];
    snprintf(out, sizeof(out), "%s/fleet.out", dir);
    snprintf(err, sizeof(err), "%s/fleet.err", dir);
    /* A relative cfg, as people type it, from another directory than the
     * qmpctl ssh that must find its credentials later. */
    char *args[] = { QFLEET, "up", "guest.cfg", "--run-dir", run_dir, "-q", NULL };
    child_cwd = dir;
    fleet_pid = spawn(args, out, err, NULL);
    child_cwd = NULL;
    static const char *const settled[] = { "ready", "failed", NULL };
    json_t *reg = qfx_wait_state(run_dir, NULL, settled, 240000);
    cr_assert(reg, "the guest did not get to ready");
    char *e = tu_slurp(err);
    cr_assert_str_eq(qfx_state_of(reg, NULL), "ready", "the guest failed: %s", e);
    free(e);
    json_free(reg);
}

/* 1 if any process's command line or environment holds s. */
static int in_any_process(const char *s)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int hit = 0;
    while (d && !hit && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        static const char *const files[] = { "cmdline", "environ" };
        for (int i = 0; i < 2 && !hit; i++) {
            char p[300];
            snprintf(p, sizeof(p), "/proc/%s/%s", e->d_name, files[i]);
            int fd = open(p, O_RDONLY);
            char buf[65536];
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
            if (fd >= 0)
                close(fd);
            for (ssize_t k = 0; k < n; k++)
                buf[k] = buf[k] ? buf[k] : '\n';
            if (n > 0) {
                buf[n] = '\0';
                hit = strstr(buf, s) != NULL;
            }
        }
    }
    if (d)
        closedir(d);
    return hit;
}

/* Read the pty until want appears (or the time is up); what was read. */
static int pty_wait(int fd, char *buf, size_t len, size_t *have, const char *want, int ms)
{
    double end = tu_now_ms() + ms;
    while (!strstr(buf, want) && tu_now_ms() < end && *have + 1 < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)(end - tu_now_ms()) + 1) <= 0)
            continue;
        ssize_t n = read(fd, buf + *have, len - 1 - *have);
        if (n <= 0)
            break;
        *have += (size_t)n;
        buf[*have] = '\0';
    }
    return strstr(buf, want) != NULL;
}

static void check_interactive(void)
{
    int m;
    pid_t pid = forkpty(&m, NULL, NULL, NULL);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("QFLEET_STATE_DIR", state_dir, 1);
        execl(QMPCTL, QMPCTL, "ssh", "vm0", NULL);
        _exit(127);
    }
    static char buf[65536];
    size_t have = 0;
    buf[0] = '\0';
    /* The shell expands it: the 42 cannot be the terminal's echo. */
    cr_assert(write(m, "echo ready-$((6*7))\n", 20) == 20);
    cr_assert(pty_wait(m, buf, sizeof(buf), &have, "ready-42", 60000), "no shell: %s", buf);
    cr_assert_not(in_any_process(PASSWORD), "the password is in a command line or environment");
    cr_assert(write(m, "echo hi; exit\n", 14) == 14);
    pty_wait(m, buf, sizeof(buf), &have, "\nhi\r\n", 30000);
    cr_assert(strstr(buf, "\nhi\r\n"), "no 'hi' line: %s", buf);
    cr_assert_eq(tu_wait_exit(pid, 30000), 0, "%s", buf);
    cr_assert_not(strstr(buf, PASSWORD), "the session printed the password: %s", buf);
    close(m);
}

/* The VNC server answers at the printed address with its RFB greeting. */
static void check_vnc(const json_t *g)
{
    long long disp = json_get_int(g, "vnc", -1);
    cr_assert_geq(disp, 0);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%lld\n", 5900 + disp);
    qfx_res r = qmpctl("vnc", "vm0", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, want);
    qfx_res_free(&r);
    r = qmpctl("vnc", "vm0", "--json", NULL);
    json_t *v = json_parse(r.out, strlen(r.out), NULL, 0);
    cr_assert(v, "%s", r.out);
    cr_assert_eq(json_get_int(v, "port", 0), 5900 + disp);
    cr_assert_eq(json_get_int(v, "display", -1), disp);
    json_free(v);
    qfx_res_free(&r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(5900 + disp)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    char banner[13] = { 0 };
    cr_assert_eq(read(fd, banner, 12), 12);
    cr_assert(!strncmp(banner, "RFB ", 4), "not VNC: %s", banner);
    close(fd);
}

Test(qmpctl_verbs, ssh_vnc_hmp_on_a_real_guest)
{
    start_fleet();
    /* The kernel the guest runs, as its agent reports it. */
    qfx_res r = qmpctl("qga", "vm0", "guest-get-osinfo", "--json", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *os = json_parse(r.out, strlen(r.out), NULL, 0);
    const char *rel = json_get_str(os, "kernel-release");
    cr_assert(rel && *rel, "%s", r.out);
    char want[256];
    snprintf(want, sizeof(want), "%s\n", rel);
    json_free(os);
    qfx_res_free(&r);

    r = qmpctl("ssh", "vm0", "uname", "-r", NULL);
    cr_assert_eq(r.rc, 2, "a CMD option without -- is qmpctl's: %s", r.err);
    qfx_res_free(&r);
    r = qmpctl("ssh", "--timeout", "60", "vm0", "--", "uname", "-r", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, want);
    qfx_res_free(&r);
    r = qmpctl("ssh", "vm0", "--", "sh", "-c", "'echo to-stderr >&2; exit 7'", NULL);
    cr_assert_eq(r.rc, 7, "the command's exit status: %d %s", r.rc, r.err);
    cr_assert(strstr(r.err, "to-stderr"), "%s", r.err);
    qfx_res_free(&r);
    check_interactive();

    QFX_EXPECT(0, "Ethernet controller", 0, "hmp", "vm0", "info pci");
    QFX_EXPECT(0, "id \"pt_0\"", 0, "hmp", "vm0", "info", "pci");
    json_t *reg = qfx_registry(run_dir);
    cr_assert(reg);
    check_vnc(json_at(json_get(reg, "guests"), 0));
    json_free(reg);
    QFX_EXPECT(1, "no guest 'vm1'", 1, "ssh", "vm1");

    char *down[] = { QFLEET, "down", run_dir, NULL };
    char out[320], err[320];
    snprintf(out, sizeof(out), "%s/down.out", dir);
    snprintf(err, sizeof(err), "%s/down.err", dir);
    cr_assert_eq(tu_wait_exit(spawn(down, out, err, NULL), 120000), 0);
    cr_assert_eq(tu_wait_exit(fleet_pid, 60000), 0);
    fleet_pid = 0;
    QFX_EXPECT(1, "has finished", 1, "--run-dir", run_dir, "ssh", "vm0", "--", "true");
}
