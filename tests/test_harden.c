/* test_harden.c - the directories qfleet writes in (hardening issue 17).
 *
 * The hostile layouts are made the way an attacker would make them: as a
 * second user (a throwaway account, useradd'ed for each test and removed
 * after), then the real qfleet binary runs as root against them. Every
 * test also checks that a victim file outside the directory kept its
 * bytes. Tests of the hostile suite skip when not run as root. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "base/fs.h"
#include "base/proc.h"
#include "testutil.h"

#define QFLEET QF_BINARY_DIR "/src/qfleet"
#define PRECIOUS "precious: qfleet must never write here\n"

static char dir[256], victim[320], state[320], run_dir[320], cfg[320];
static char evil[64];
static uid_t evil_uid;
static gid_t evil_gid;

typedef struct {
    int status;
    char out[16384], err[16384];
} result;

static void spit(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(fs_write_all(fd, text, len), 0);
    close(fd);
}

static void slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    if (fd >= 0)
        close(fd);
}

static void victim_untouched(const char *path)
{
    char buf[256];
    slurp(path, buf, sizeof(buf));
    cr_assert_str_eq(buf, PRECIOUS, "victim %s was written", path);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

/* Run argv (NULL-terminated) under umask 022, as an operator's shell has it:
 * as root, or (uid set) as that user with only the supplementary group
 * extra (a member of group qfleet without editing /etc/group). */
static void run_argv_as(result *r, char *const argv[], uid_t uid, gid_t gid, gid_t extra)
{
    char o[320], e[320];
    snprintf(o, sizeof(o), "%s/stdout", dir);
    snprintf(e, sizeof(e), "%s/stderr", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        umask(022);
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fo, 1);
        dup2(fe, 2);
        unsetenv("QFLEET_STATE_DIR");
        if (uid && (setgroups(1, &extra) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    r->status = tu_wait_exit(pid, 300000);
    slurp(o, r->out, sizeof(r->out));
    slurp(e, r->err, sizeof(r->err));
}

static void run_argv(result *r, char *const argv[]) { run_argv_as(r, argv, 0, 0, 0); }

static void alloc_mac(result *r, const char *sdir, const char *owner)
{
    char *argv[] = { QFLEET, "alloc", "mac", "--owner", (char *)owner, "--hold",
                     "--state-dir", (char *)sdir, NULL };
    run_argv(r, argv);
}

static void leases(result *r, const char *sdir)
{
    char *argv[] = { QFLEET, "leases", "--state-dir", (char *)sdir, NULL };
    run_argv(r, argv);
}

static void up(result *r)
{
    char *argv[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--state-dir", state,
                     "--until-ready", "--no-ssh", NULL };
    run_argv(r, argv);
}

/* A VM whose kernel QEMU cannot load: QEMU starts, opens its chardevs and
 * logs, then fails. Everything qfleet opens in the run dir happens before. */
static void write_cfg(const char *net)
{
    char text[1024], kernel[PATH_MAX];
    snprintf(kernel, sizeof(kernel), "%s/not-a-vmlinuz", dir);
    spit(kernel, "not a kernel\n", 13);
    int n = snprintf(text, sizeof(text),
                     "[vm0]\ncpu =\n    model=qemu64,number=1;\nmem =\n    size=64;\n"
                     "kernel =\n    file=%s;\n%senable_kvm =\n    enable=no;\n",
                     kernel, net ? net : "");
    spit(cfg, text, (size_t)n);
}

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "harden"), 0);
    cr_assert_eq(chmod(dir, 0755), 0); /* the second user must reach in */
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
    snprintf(cfg, sizeof(cfg), "%s/vm.cfg", dir);
    spit(victim, PRECIOUS, strlen(PRECIOUS));
    write_cfg(NULL);
}

static void teardown(void) { tu_rmtree(dir); }

static void evil_setup(void)
{
    setup();
    if (geteuid() != 0)
        return;
    snprintf(evil, sizeof(evil), "qfleet-t-%d", (int)getpid());
    char *add[] = { "/usr/sbin/useradd", "-M", "-N", "-s", "/usr/sbin/nologin", evil, NULL };
    cr_assert_eq(tu_run_ms(add, 60000), 0, "useradd %s failed", evil);
    struct passwd *pw = getpwnam(evil);
    cr_assert(pw, "no user %s after useradd", evil);
    evil_uid = pw->pw_uid;
    evil_gid = pw->pw_gid;
}

static void evil_teardown(void)
{
    if (evil[0]) {
        char *del[] = { "/usr/sbin/userdel", evil, NULL };
        tu_run_ms(del, 60000);
    }
    teardown();
}

static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip("the hostile layouts are made by a second user: run as root to create one");
}

/* fork, become the second user, fn(arg), exit 0 if it returned 0. */
static pid_t as_evil(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(evil_gid) < 0 || setuid(evil_uid) < 0)
            _exit(126);
        _exit(fn(arg) == 0 ? 0 : 1);
    }
    return pid;
}

/* A directory the second user owns, mode 0755. */
static void evil_dir(const char *path)
{
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(chown(path, evil_uid, evil_gid), 0);
}

struct plant {
    const char *target, *link[2];
};

static int plant_links(void *arg)
{
    const struct plant *p = arg;
    for (int i = 0; i < 2 && p->link[i]; i++)
        if (symlink(p->target, p->link[i]) < 0)
            return -1;
    return 0;
}

static int plant_forever(void *arg)
{
    const struct plant *p = arg;
    for (;;)
        if (symlink(p->target, p->link[0]) < 0)
            sched_yield();
    return 0;
}

TestSuite(harden_user, .init = evil_setup, .fini = evil_teardown, .timeout = 300);
TestSuite(harden, .init = setup, .fini = teardown, .timeout = 300);

/* Item 1: the second user owns the state dir and keeps planting
 * leases.tmp -> victim. Root's lease operations refuse the directory. */
Test(harden_user, state_dir_of_another_user_is_refused)
{
    need_root();
    evil_dir(state);
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s/leases.tmp", state);
    struct plant p = { victim, { tmp, NULL } };
    pid_t planter = as_evil(plant_forever, &p);
    result r;
    for (int i = 0; i < 10; i++) {
        alloc_mac(&r, state, "harden-victim");
        if (r.status == 0)
            break;
    }
    kill(planter, SIGKILL);
    waitpid(planter, NULL, 0);
    cr_assert_eq(r.status, 1, "alloc in another user's state dir: exit %d\n%s", r.status, r.err);
    char want[128];
    snprintf(want, sizeof(want), "owned by uid %u (%s) with mode 0755", (unsigned)evil_uid, evil);
    cr_assert(strstr(r.err, want), "no owner and mode in: %s", r.err);
    cr_assert(strstr(r.err, state), "%s", r.err);
    victim_untouched(victim);
    char table[400];
    snprintf(table, sizeof(table), "%s/leases.json", state);
    cr_assert_neq(access(table, F_OK), 0, "a lease table was written in the refused dir");
}

/* Item 1: a world-writable (1777) state dir, with the second user's link
 * in place of the table, is refused before anything in it is read. */
Test(harden_user, world_writable_state_dir_is_refused)
{
    need_root();
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_assert_eq(chmod(state, 01777), 0);
    char table[400], lock[400];
    snprintf(table, sizeof(table), "%s/leases.json", state);
    snprintf(lock, sizeof(lock), "%s/leases.lock", state);
    struct plant p = { victim, { table, lock } };
    cr_assert_eq(tu_wait_exit(as_evil(plant_links, &p), 60000), 0);
    result r;
    leases(&r, state);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "with mode 1777"), "%s", r.err);
    alloc_mac(&r, state, "harden-victim");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "with mode 1777"), "%s", r.err);
    victim_untouched(victim);
}

/* Item 2: the second user owns a --run-dir with the guest's log names
 * linked to victims. qfleet up refuses it (exit 3, set-up error) and
 * neither chmods it nor writes through the links. */
Test(harden_user, run_dir_of_another_user_is_refused)
{
    need_root();
    evil_dir(run_dir);
    char qlog[400], slog[400], victim2[400];
    snprintf(qlog, sizeof(qlog), "%s/vm0-qemu.log", run_dir);
    snprintf(slog, sizeof(slog), "%s/vm0-serial.log", run_dir);
    snprintf(victim2, sizeof(victim2), "%s/victim2", dir);
    spit(victim2, PRECIOUS, strlen(PRECIOUS));
    struct plant p = { victim, { qlog, NULL } }, p2 = { victim2, { slog, NULL } };
    cr_assert_eq(tu_wait_exit(as_evil(plant_links, &p), 60000), 0);
    cr_assert_eq(tu_wait_exit(as_evil(plant_links, &p2), 60000), 0);
    result r;
    up(&r);
    cr_assert_eq(r.status, 3, "exit %d\n%s%s", r.status, r.out, r.err);
    char want[128];
    snprintf(want, sizeof(want), "owned by uid %u (%s) with mode 0755", (unsigned)evil_uid, evil);
    cr_assert(strstr(r.err, want), "%s", r.err);
    cr_assert_eq(mode_of(run_dir), 0755, "another user's run dir was chmodded");
    victim_untouched(victim);
    victim_untouched(victim2);
}

/* Item 1: qfleet up refuses another user's state dir before it makes its
 * default run dir (or anything else) in it. */
Test(harden_user, up_refuses_state_dir_of_another_user)
{
    need_root();
    evil_dir(state);
    char *argv[] = { QFLEET, "up", cfg, "--state-dir", state, "--until-ready", "--no-ssh", NULL };
    result r;
    run_argv(&r, argv);
    cr_assert_eq(r.status, 3, "exit %d\n%s%s", r.status, r.out, r.err);
    char want[512];
    snprintf(want, sizeof(want), "state dir %s is owned by uid %u (%s) with mode 0755", state,
             (unsigned)evil_uid, evil);
    cr_assert(strstr(r.err, want), "%s", r.err);
    char runs[400];
    snprintf(runs, sizeof(runs), "%s/runs", state);
    cr_assert_neq(access(runs, F_OK), 0, "a run dir was made in the refused state dir");
}

/* Item 2: a sticky world-writable run dir is refused the same way. */
Test(harden_user, world_writable_run_dir_is_refused)
{
    need_root();
    cr_assert_eq(mkdir(run_dir, 0700), 0);
    cr_assert_eq(chmod(run_dir, 01777), 0);
    char qlog[400];
    snprintf(qlog, sizeof(qlog), "%s/vm0-qemu.log", run_dir);
    struct plant p = { victim, { qlog, NULL } };
    cr_assert_eq(tu_wait_exit(as_evil(plant_links, &p), 60000), 0);
    result r;
    up(&r);
    cr_assert_eq(r.status, 3, "exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.err, "with mode 1777"), "%s", r.err);
    victim_untouched(victim);
}

/* A status dir (qfleet run --status-dir) is a directory qfleet writes in
 * too: a world-writable one with events.jsonl linked away is refused. */
Test(harden_user, world_writable_status_dir_is_refused)
{
    need_root();
    char sdir[400], events[480], suite[400];
    snprintf(sdir, sizeof(sdir), "%s/status", dir);
    snprintf(events, sizeof(events), "%s/events.jsonl", sdir);
    snprintf(suite, sizeof(suite), "%s/one.suite", dir);
    cr_assert_eq(mkdir(sdir, 0700), 0);
    cr_assert_eq(chmod(sdir, 01777), 0);
    struct plant p = { victim, { events, NULL } };
    cr_assert_eq(tu_wait_exit(as_evil(plant_links, &p), 60000), 0);
    const char text[] = "[suite]\ncfg = vm.cfg\nvms = vm0\nsetup = all\n\n[case one]\nrun vm0: true\n";
    spit(suite, text, sizeof(text) - 1);
    char *argv[] = { QFLEET, "run", suite, "--status-dir", sdir, "--state-dir", state,
                     "--run-dir", run_dir, NULL };
    result r;
    run_argv(&r, argv);
    cr_assert_eq(r.status, 3, "exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.err, "with mode 1777"), "%s", r.err);
    victim_untouched(victim);
}

/* Items 1 and 2, defence in depth: links left in a directory of our own
 * are refused as links, never followed. */
Test(harden, links_in_own_state_dir_are_not_followed)
{
    result r;
    alloc_mac(&r, state, "first");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char table[400], tmp[400];
    snprintf(table, sizeof(table), "%s/leases.json", state);
    snprintf(tmp, sizeof(tmp), "%s/leases.tmp", state);
    char saved[8192];
    slurp(table, saved, sizeof(saved));
    cr_assert_eq(unlink(table), 0);
    cr_assert_eq(symlink(victim, table), 0);
    leases(&r, state);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(strstr(r.err, "leases.json: is a symbolic link"), "%s", r.err);
    cr_assert_eq(unlink(table), 0);
    spit(table, saved, strlen(saved));
    /* a leftover leases.tmp link is removed, never written through */
    cr_assert_eq(symlink(victim, tmp), 0);
    alloc_mac(&r, state, "second");
    cr_assert_eq(r.status, 0, "%s", r.err);
    victim_untouched(victim);
    struct stat st;
    cr_assert_eq(lstat(table, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    leases(&r, state);
    cr_assert(strstr(r.out, "first") && strstr(r.out, "second"), "%s", r.out);
}

/* Item 2: links left in our own run dir: the serial log, then QEMU's. */
Test(harden, links_in_own_run_dir_are_not_followed)
{
    const char *names[] = { "vm0-serial.log", "vm0-qemu.log" };
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(fs_mkdir_p(run_dir, 0700, 0), 0);
        cr_assert_eq(chmod(run_dir, 0755), 0); /* ours and looser: tightened */
        char link[400];
        snprintf(link, sizeof(link), "%s/%s", run_dir, names[i]);
        cr_assert_eq(symlink(victim, link), 0);
        result r;
        up(&r);
        cr_assert_eq(r.status, 1, "exit %d\n%s%s", r.status, r.out, r.err);
        char want[128];
        snprintf(want, sizeof(want), "%s: is a symbolic link", names[i]);
        cr_assert(strstr(r.out, want), "%s", r.out);
        victim_untouched(victim);
        cr_assert_eq(mode_of(run_dir), 0700);
        tu_rmtree(run_dir);
    }
}

/* The README's promise: run dir 0700, every file and socket in it 0600,
 * whatever the operator's umask (022 here). */
Test(harden, run_dir_files_and_sockets_are_private)
{
    result r;
    up(&r);
    cr_assert_eq(r.status, 1, "exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert_eq(mode_of(run_dir), 0700);
    const char *names[] = { "vm0-serial.log", "vm0-qemu.log", "events.jsonl", "guests.json",
                            "controller.json", "vm0-qmp.sock", "vm0-qga.sock" };
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", run_dir, names[i]);
        cr_assert_eq(mode_of(p), 0600, "%s is %04o", names[i], (unsigned)mode_of(p));
    }
}

/* With a guest that boots to SSH: known_hosts, written by libssh, is 0600
 * like everything else in the run dir (operator umask 022). */
Test(harden, guest_run_dir_is_private, .timeout = 600)
{
    char k[512];
    snprintf(k, sizeof(k), "%s/vmlinux", tu_guest_dir());
    if (access(k, R_OK) < 0)
        cr_skip("no test guest in %s: run tools/mkguest", tu_guest_dir());
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "[vm0]\ncpu =\n    model=qemu64,number=1;\nmem =\n    size=256;\n"
                     "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,"
                     "append=console=ttyS0 quiet panic=-1;\n"
                     "login =\n    user=root,password=tester;\n"
                     "net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n"
                     "enable_kvm =\n    enable=no;\n",
                     tu_guest_dir(), tu_guest_dir());
    spit(cfg, text, (size_t)n);
    char *argv[] = { QFLEET, "up", cfg, "--run-dir", run_dir, "--state-dir", state,
                     "--until-ready", NULL };
    result r;
    run_argv(&r, argv);
    cr_assert_eq(r.status, 0, "exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert_eq(mode_of(run_dir), 0700);
    const char *names[] = { "vm0-known_hosts", "vm0-serial.log", "vm0-qemu.log", "events.jsonl",
                            "guests.json" };
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", run_dir, names[i]);
        cr_assert_eq(mode_of(p), 0600, "%s is %04o", names[i], (unsigned)mode_of(p));
    }
    char kh[400], buf[4096];
    snprintf(kh, sizeof(kh), "%s/vm0-known_hosts", run_dir);
    slurp(kh, buf, sizeof(buf));
    cr_assert(strstr(buf, "[127.0.0.1]:"), "no host key was recorded: '%s'", buf);
}

static void on_exit_ignored(proc_t *p, int code, int sig, void *data)
{
    (void)p, (void)code, (void)sig, (void)data;
}

/* The sockets QEMU makes itself are 0600 whatever the controller's umask. */
Test(harden, qemu_sockets_are_0600)
{
    char sock[400], chr[400], log[400], qmp[480], chardev[480], err[512];
    snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
    snprintf(chr, sizeof(chr), "%s/chr.sock", dir);
    snprintf(log, sizeof(log), "%s/qemu.log", dir);
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", sock);
    snprintf(chardev, sizeof(chardev), "socket,id=c0,path=%s,server=on,wait=off", chr);
    char *argv[] = { "qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                     "-qmp", qmp, "-chardev", chardev, NULL };
    mode_t old = umask(022);
    proc_t *p;
    int rc = proc_spawn(uv_default_loop(), &p, argv, log, on_exit_ignored, NULL, err, sizeof(err));
    umask(old);
    cr_assert_eq(rc, 0, "%s", err);
    int up1 = tu_wait_path(sock, 60000), up2 = tu_wait_path(chr, 60000);
    proc_close(p, NULL, NULL);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    cr_assert_eq(up1, 0, "QEMU made no QMP socket");
    cr_assert_eq(up2, 0, "QEMU made no chardev socket");
    cr_assert_eq(mode_of(sock), 0600, "QMP socket %04o", (unsigned)mode_of(sock));
    cr_assert_eq(mode_of(chr), 0600, "chardev socket %04o", (unsigned)mode_of(chr));
    cr_assert_eq(mode_of(log), 0600);
}

/* fs_write_atomic's temp name is predictable: one planted as a link is
 * replaced, never written through. */
Test(harden, atomic_write_never_writes_through_a_planted_temp)
{
    char path[400], tmp[480], err[256];
    snprintf(path, sizeof(path), "%s/status.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    cr_assert_eq(symlink(victim, tmp), 0);
    cr_assert_eq(fs_write_atomic(path, "{}", 2, 0600, err, sizeof(err)), 0, "%s", err);
    victim_untouched(victim);
    char buf[16];
    slurp(path, buf, sizeof(buf));
    cr_assert_str_eq(buf, "{}");
    cr_assert_eq(mode_of(path), 0600);
}

/* fs_mkdir_p's tighten never chmods a directory of another user. */
Test(harden, mkdir_p_leaves_another_users_dir_alone)
{
    if (geteuid() != 0)
        cr_skip("needs root to chown a directory to nobody");
    char sub[400];
    snprintf(sub, sizeof(sub), "%s/theirs", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(chown(sub, 65534, 65534), 0);
    cr_assert_eq(fs_mkdir_p(sub, 0700, 1), -EPERM);
    cr_assert_eq(mode_of(sub), 0755);
}

/* Item 5: an empty table is not an empty table. */
Test(harden, empty_lease_table_is_refused)
{
    result r;
    alloc_mac(&r, state, "held");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char table[400];
    snprintf(table, sizeof(table), "%s/leases.json", state);
    cr_assert_eq(truncate(table, 0), 0);
    alloc_mac(&r, state, "again");
    cr_assert_eq(r.status, 1, "an empty table was taken as empty: %s", r.out);
    cr_assert(strstr(r.err, "is empty"), "%s", r.err);
    char mv[1024];
    snprintf(mv, sizeof(mv), "mv %s %s.bad", table, table);
    cr_assert(strstr(r.err, mv), "no recovery command in: %s", r.err);
    leases(&r, state);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(strstr(r.err, "is empty"), "%s", r.err);
    struct stat st;
    cr_assert_eq(stat(table, &st), 0);
    cr_assert_eq(st.st_size, 0, "the empty table was replaced");
}

/* Item 5: a truncated table says where it ends. */
Test(harden, truncated_table_reports_its_end)
{
    result r;
    const char *owners[] = { "a", "b", "c", "d" };
    for (int i = 0; i < 4; i++) {
        alloc_mac(&r, state, owners[i]);
        cr_assert_eq(r.status, 0, "%s", r.err);
    }
    char table[400];
    snprintf(table, sizeof(table), "%s/leases.json", state);
    struct stat st;
    cr_assert_eq(stat(table, &st), 0);
    cr_assert_gt(st.st_size, 400);
    cr_assert_eq(truncate(table, 400), 0);
    leases(&r, state);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(strstr(r.err, "invalid JSON at byte 400:"), "%s", r.err);
}

/* Item 12: a lock file problem names the lock file. */
Test(harden, lock_problem_names_the_lock)
{
    char lock[400];
    snprintf(lock, sizeof(lock), "%s/leases.lock", state);
    cr_assert_eq(fs_mkdir_p(lock, 0700, 0), 0);
    result r;
    leases(&r, state);
    cr_assert_eq(r.status, 1, "%s", r.out);
    char want[512];
    snprintf(want, sizeof(want), "state dir %s: leases.lock: Is a directory", state);
    cr_assert(strstr(r.err, want), "%s", r.err);
}

/* Item 12: an absolute QEMU path that does not exist is not a PATH search. */
Test(harden, missing_absolute_program_is_not_a_path_search)
{
    char err[512], log[400];
    snprintf(log, sizeof(log), "%s/x.log", dir);
    char *argv[] = { "/nonexistent/qemu-system-x86_64", NULL };
    proc_t *p = NULL;
    int rc = proc_spawn(uv_default_loop(), &p, argv, log, on_exit_ignored, NULL, err, sizeof(err));
    cr_assert_eq(rc, -ENOENT);
    cr_assert_str_eq(err, "/nonexistent/qemu-system-x86_64: No such file or directory");
}

/* Item 13: what the guest (here: a log's earlier contents) wrote reaches
 * the terminal with its control characters shown, not obeyed. */
Test(harden, failure_reason_shows_control_characters)
{
    cr_assert_eq(fs_mkdir_p(run_dir, 0700, 0), 0);
    char qlog[400];
    snprintf(qlog, sizeof(qlog), "%s/vm0-qemu.log", run_dir);
    const char junk[] = "guest says \x1b[6n\x1b]0;owned\x07 and \xc2\x9b" "2J bye\r\n";
    spit(qlog, junk, sizeof(junk) - 1);
    result r;
    up(&r);
    cr_assert_eq(r.status, 1, "exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "guest says \\x1b[6n\\x1b]0;owned\\x07 and \\xc2\\x9b2J bye\n"), "%s",
              r.out);
    for (const char *s = r.out; *s; s++)
        cr_assert(*s == '\n' || *s == '\t' || (unsigned char)*s >= 0x20,
                  "raw control byte 0x%02x on stdout", (unsigned char)*s);
    for (const char *s = r.err; *s; s++)
        cr_assert(*s == '\n' || *s == '\t' || (unsigned char)*s >= 0x20,
                  "raw control byte 0x%02x on stderr", (unsigned char)*s);
}

Test(harden, tail_text_keeps_utf8_and_escapes_the_rest)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/t.log", dir);
    const char text[] = "caf\xc3\xa9 \x01\x7f\xff\tok\r\n";
    spit(p, text, sizeof(text) - 1);
    char *t = fs_tail_text(p, 4096);
    cr_assert_str_eq(t, "caf\xc3\xa9 \\x01\\x7f\\xff\tok\n");
    free(t);
}

/* Item 14: a forward on every interface is said out loud. */
Test(harden, hostfwd_beyond_loopback_warns)
{
    write_cfg("net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n"
              "    type=user,opt_hostfwd=tcp:0.0.0.0:2222-:22;\n");
    char *argv[] = { QFLEET, "cmdline", cfg, "vm0", NULL };
    result r;
    run_argv(&r, argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "warning: net: opt_hostfwd listens on 0.0.0.0, not 127.0.0.1"), "%s",
              r.err);
    write_cfg("net =\n    type=nic,opt_model=e1000,opt_addr=1f;\n"
              "    type=user,opt_hostfwd=tcp:127.0.0.1:2222-:22;\n");
    run_argv(&r, argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_null(strstr(r.err, "opt_hostfwd"), "%s", r.err);
}

/* --- issue 19 item 7: one store for every user of a host ---------------- */

static void shared_dir(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(chown(path, uid, gid), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

/* Root and the second user, both in group qfleet, take MACs in turn from
 * one root:qfleet 2770 store: every MAC differs, each sees the other's
 * leases, and the files are 0660 group qfleet so the next one can write. */
Test(harden_user, group_store_is_shared_by_root_and_a_member)
{
    need_root();
    gid_t g = tu_qfleet_gid();
    shared_dir(state, 0, g, 02770);
    char macs[6][32];
    result r;
    for (int i = 0; i < 6; i++) {
        char owner[64];
        snprintf(owner, sizeof(owner), "%s-%d/vm", i % 2 ? "user" : "root", i);
        char *argv[] = { QFLEET, "alloc", "mac", "--owner", owner, "--hold", "--state-dir", state,
                         NULL };
        run_argv_as(&r, argv, i % 2 ? evil_uid : 0, evil_gid, g);
        cr_assert_eq(r.status, 0, "%s: exit %d\n%s", owner, r.status, r.err);
        cr_assert_eq(sscanf(r.out, "%31s", macs[i]), 1, "%s", r.out);
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(macs[k], macs[i], "one MAC for two holders");
    }
    char *ls[] = { QFLEET, "leases", "--state-dir", state, NULL };
    run_argv_as(&r, ls, evil_uid, evil_gid, g);
    cr_assert_eq(r.status, 0, "%s", r.err);
    for (int i = 0; i < 6; i++)
        cr_assert(strstr(r.out, macs[i]), "the member does not see %s:\n%s", macs[i], r.out);
    const char *files[] = { "leases.json", "leases.lock" };
    for (int i = 0; i < 2; i++) {
        char p[400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", state, files[i]);
        cr_assert_eq(lstat(p, &st), 0, "%s", p);
        cr_assert_eq(st.st_mode & 07777, 0660, "%s: %04o", p, st.st_mode & 07777);
        cr_assert_eq(st.st_gid, g, "%s: group %u", p, (unsigned)st.st_gid);
    }
}

/* A shared store must be root's or the caller's, group qfleet, never
 * world-writable: anything else is refused before anything in it is used. */
Test(harden_user, bad_group_stores_are_refused)
{
    need_root();
    gid_t g = tu_qfleet_gid();
    char *ls[] = { QFLEET, "leases", "--state-dir", state, NULL };
    result r;
    shared_dir(state, 0, g, 02777);
    run_argv(&r, ls);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "is world-writable, with mode 2777"), "%s", r.err);
    cr_assert_eq(rmdir(state), 0);

    /* Owned by the second user: refused to root, and to a third user (the
     * check does not depend on who asks, only "root or me"). */
    shared_dir(state, evil_uid, g, 02770);
    char want[128];
    snprintf(want, sizeof(want), "is owned by uid %u (%s): a shared store must be owned by root",
             (unsigned)evil_uid, evil);
    run_argv(&r, ls);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, want), "%s", r.err);
    run_argv_as(&r, ls, 65534, 65534, g); /* nobody, in group qfleet */
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "must be owned by root or by you"), "%s", r.err);
    cr_assert_eq(rmdir(state), 0);

    shared_dir(state, 0, 0, 02770);
    run_argv(&r, ls);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "not " FS_GROUP_NAME), "%s", r.err);
    char table[400];
    snprintf(table, sizeof(table), "%s/leases.lock", state);
    cr_assert_neq(access(table, F_OK), 0, "a lock file was made in the refused dir");
}

/* tools/shared-store (what quickstart runs as root) turns a store that was
 * root's alone into a shared one, idempotently; a member can then use it. */
Test(harden_user, shared_store_tool_converts_a_root_store)
{
    need_root();
    gid_t g = tu_qfleet_gid();
    result r;
    alloc_mac(&r, state, "root-before/vm");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *tool[] = { QF_SOURCE_DIR "/tools/shared-store", state, NULL };
    for (int i = 0; i < 2; i++) {
        run_argv(&r, tool);
        cr_assert_eq(r.status, 0, "run %d: %s", i + 1, r.err);
        struct stat st;
        cr_assert_eq(stat(state, &st), 0);
        cr_assert(st.st_uid == 0 && st.st_gid == g && (st.st_mode & 07777) == 02770,
                  "%u:%u %04o", (unsigned)st.st_uid, (unsigned)st.st_gid, st.st_mode & 07777);
    }
    char *argv[] = { QFLEET, "alloc", "mac", "--owner", "user-after/vm", "--hold", "--state-dir",
                     state, NULL };
    run_argv_as(&r, argv, evil_uid, evil_gid, g);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *ls[] = { QFLEET, "leases", "--state-dir", state, NULL };
    run_argv(&r, ls);
    cr_assert(strstr(r.out, "root-before/vm") && strstr(r.out, "user-after/vm"), "%s", r.out);
}
