/* test_proc.c - supervised children: real processes, real signals. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/proc.h"
#include "testutil.h"

struct outcome {
    int exited;
    int code;
    int sig;
    double at_ms;
    int closed;
};

static void on_exit_cb(proc_t *p, int code, int sig, void *data)
{
    struct outcome *o = data;
    o->exited = 1;
    o->code = code;
    o->sig = sig;
    o->at_ms = tu_now_ms();
    uv_stop(uv_default_loop());
}

static void on_closed(proc_t *p, void *data)
{
    ((struct outcome *)data)->closed = 1;
}

static void run_until_exit(struct outcome *o)
{
    while (!o->exited)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
}

static void close_and_drain(proc_t *p, struct outcome *o)
{
    proc_close(p, on_closed, o);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    cr_assert(o->closed);
}

Test(proc, exit_code_and_log)
{
    char dir[256], log[300], err[256];
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "proc"), 0);
    snprintf(log, sizeof(log), "%s/out.log", dir);
    char *argv[] = { "printf", "hello %s", "log", NULL };
    struct outcome o = { 0 };
    proc_t *p;
    cr_assert_eq(proc_spawn(uv_default_loop(), &p, argv, log, on_exit_cb, &o, err, sizeof(err)), 0, "%s", err);
    run_until_exit(&o);
    cr_assert_eq(o.code, 0);
    cr_assert_eq(o.sig, 0);
    FILE *f = fopen(log, "r");
    char buf[64] = { 0 };
    cr_assert(f);
    cr_assert(fgets(buf, sizeof(buf), f));
    fclose(f);
    cr_assert_str_eq(buf, "hello log");
    close_and_drain(p, &o);
    tu_rmtree(dir);
}

Test(proc, missing_program_is_a_clear_error)
{
    char err[256];
    char *argv[] = { "qfleet-no-such-program", NULL };
    proc_t *p;
    struct outcome o = { 0 };
    int rc = proc_spawn(uv_default_loop(), &p, argv, "/dev/null", on_exit_cb, &o, err, sizeof(err));
    cr_assert_eq(rc, -ENOENT);
    cr_assert(strstr(err, "qfleet-no-such-program"), "%s", err);
}

Test(proc, unwritable_log_is_a_clear_error)
{
    char err[256];
    char *argv[] = { "true", NULL };
    proc_t *p;
    struct outcome o = { 0 };
    int rc = proc_spawn(uv_default_loop(), &p, argv, "/nonexistent-dir/x.log", on_exit_cb, &o, err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "/nonexistent-dir/x.log"), "%s", err);
}

Test(proc, stop_sends_sigterm_then_sigkill)
{
    char err[256];
    struct outcome o = { 0 };
    proc_t *p;
    /* sleep dies of SIGTERM: the first step is enough. */
    char *argv[] = { "sleep", "30", NULL };
    cr_assert_eq(proc_spawn(uv_default_loop(), &p, argv, "/dev/null", on_exit_cb, &o, err, sizeof(err)), 0);
    proc_stop(p, 5000);
    run_until_exit(&o);
    cr_assert_eq(o.sig, SIGTERM);
    close_and_drain(p, &o);

    /* A child that ignores SIGTERM is killed when the grace period ends.
     * setsid-free: 'timeout' ignores nothing, so use a program that traps:
     * 'sh' is only the test's payload here, never between qfleet and QEMU. */
    struct outcome o2 = { 0 };
    int armed[2];
    cr_assert_eq(pipe(armed), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "trap '' TERM; echo armed >/dev/fd/%d; exec sleep 30", armed[1]);
    char *argv2[] = { "sh", "-c", cmd, NULL };
    cr_assert_eq(proc_spawn(uv_default_loop(), &p, argv2, "/dev/null", on_exit_cb, &o2, err, sizeof(err)), 0);
    close(armed[1]);
    /* sh says when its trap is installed (EOF instead if it died). */
    char line[16] = { 0 };
    cr_assert_gt(read(armed[0], line, sizeof(line) - 1), 0);
    cr_assert_str_eq(line, "armed\n");
    close(armed[0]);
    double t0 = tu_now_ms();
    proc_stop(p, 300);
    run_until_exit(&o2);
    cr_assert_eq(o2.sig, SIGKILL);
    cr_assert_geq(o2.at_ms - t0, 250);
    close_and_drain(p, &o2);
}

Test(proc, exit_is_noticed_promptly)
{
    char err[256];
    struct outcome o = { 0 };
    proc_t *p;
    char *argv[] = { "sleep", "30", NULL };
    cr_assert_eq(proc_spawn(uv_default_loop(), &p, argv, "/dev/null", on_exit_cb, &o, err, sizeof(err)), 0);
    /* Killed from outside, as by an OOM killer or a user. */
    kill(proc_pid(p), SIGKILL);
    run_until_exit(&o);
    cr_assert_eq(o.sig, SIGKILL);
    cr_assert_eq(o.code, -1);
    cr_assert_not(proc_running(p));
    close_and_drain(p, &o);
}

Test(proc, child_dies_with_a_killed_controller)
{
    /* A stand-in controller spawns a child, reports its pid, then is
     * killed with SIGKILL: the death signal must take the child along. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t ctl = fork();
    if (ctl == 0) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        char err[256];
        proc_t *p;
        struct outcome o = { 0 };
        char *argv[] = { "sleep", "60", NULL };
        if (proc_spawn(&loop, &p, argv, "/dev/null", on_exit_cb, &o, err, sizeof(err)) < 0)
            _exit(1);
        pid_t child = proc_pid(p);
        (void)!write(fds[1], &child, sizeof(child));
        for (;;)
            pause();
    }
    pid_t child = 0;
    cr_assert_eq(read(fds[0], &child, sizeof(child)), (ssize_t)sizeof(child));
    cr_assert_eq(kill(child, 0), 0);
    kill(ctl, SIGKILL);
    waitpid(ctl, NULL, 0);
    /* The child is not ours to reap; it is reparented and reaped by init
     * (or a subreaper). Wait for it to disappear. */
    double end = tu_now_ms() + 5000;
    int gone = 0;
    while (tu_now_ms() < end) {
        char path[64], state = 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
        FILE *f = fopen(path, "r");
        if (!f) {
            gone = 1;
            break;
        }
        if (fscanf(f, "%*d %*s %c", &state) == 1 && state == 'Z')
            gone = 1;
        fclose(f);
        if (gone)
            break;
        usleep(10000);
    }
    cr_assert(gone, "child %d outlived its killed controller", (int)child);
    close(fds[0]);
    close(fds[1]);
}

/* ---- host commands: env, cwd, captured output, timeout, the group ---------- */

struct captured {
    struct outcome o;
    char *out, *err;
    int timed_out, truncated;
};

static void on_captured(proc_t *p, int code, int sig, void *data)
{
    struct captured *c = data;
    c->out = proc_take_output(p, 1);
    c->err = proc_take_output(p, 2);
    c->timed_out = proc_timed_out(p);
    c->truncated = proc_truncated(p);
    on_exit_cb(p, code, sig, &c->o);
}

static proc_t *start_sh(const char *script, proc_opts *o, struct captured *c)
{
    char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
    char err[256];
    proc_t *p = NULL;
    o->argv = argv;
    int rc = proc_start(uv_default_loop(), o, on_captured, c, &p, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return p;
}

static void captured_free(proc_t *p, struct captured *c)
{
    close_and_drain(p, &c->o);
    free(c->out);
    free(c->err);
}

Test(proc, captures_stdout_and_stderr_with_env_and_cwd)
{
    char dir[256], real[PATH_MAX];
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "proc"), 0);
    cr_assert(realpath(dir, real));
    char *env[] = { "QF_TEST_VAR=forty two", "PATH=/usr/bin:/bin", NULL };
    proc_opts o = { .env = env, .cwd = dir, .capture_max = 4096 };
    struct captured c = { 0 };
    proc_t *p = start_sh("echo \"out $QF_TEST_VAR\"; pwd -P; echo oops >&2; "
                         "test -z \"$HOME\" && echo no-home; exit 3", &o, &c);
    run_until_exit(&c.o);
    cr_assert_eq(c.o.code, 3);
    cr_assert_eq(c.o.sig, 0);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "out forty two\n%s\nno-home\n", real);
    cr_assert_str_eq(c.out, want, "the env replaces the parent's, the cwd is the one given");
    cr_assert_str_eq(c.err, "oops\n");
    cr_assert_not(c.timed_out);
    cr_assert_not(c.truncated);
    /* The output was handed over: a second take is empty. */
    char *again = proc_take_output(p, 1);
    cr_assert_str_eq(again, "");
    free(again);
    captured_free(p, &c);
    tu_rmtree(dir);
}

Test(proc, capture_is_capped_and_says_so)
{
    proc_opts o = { .capture_max = 1000 };
    struct captured c = { 0 };
    proc_t *p = start_sh("head -c 300000 /dev/zero | tr '\\0' x; echo short >&2", &o, &c);
    run_until_exit(&c.o);
    cr_assert_eq(c.o.code, 0);
    cr_assert_eq(strlen(c.out), 1000);
    cr_assert_eq(strspn(c.out, "x"), 1000);
    cr_assert_str_eq(c.err, "short\n");
    cr_assert(c.truncated);
    captured_free(p, &c);
}

Test(proc, timeout_kills_the_whole_group)
{
    /* The background sleep inherits the write end of gone: EOF on its
     * read end means every process of the group is dead. */
    int gone[2];
    cr_assert_eq(pipe(gone), 0);
    proc_opts o = { .capture_max = 4096, .timeout_ms = 200, .keep_group = 1 };
    struct captured c = { 0 };
    double t0 = tu_now_ms();
    proc_t *p = start_sh("sleep 30 & echo started; wait", &o, &c);
    close(gone[1]);
    run_until_exit(&c.o);
    cr_assert(c.timed_out);
    cr_assert_eq(c.o.sig, SIGKILL);
    cr_assert_eq(c.o.code, -1);
    cr_assert_geq(c.o.at_ms - t0, 190);
    cr_assert_str_eq(c.out, "started\n");
    struct pollfd pf = { .fd = gone[0], .events = POLLIN };
    char b;
    /* The bound only keeps a failing test from hanging: EOF comes with the kill. */
    cr_assert_eq(poll(&pf, 1, 10000), 1, "the background sleep survived the timeout");
    cr_assert_eq(read(gone[0], &b, 1), 0);
    close(gone[0]);
    captured_free(p, &c);
}

/* What a command leaves running in the background: killed with the child
 * by default (QEMU's helpers), left alone with keep_group (host steps). */
Test(proc, the_group_at_exit)
{
    for (int keep = 0; keep < 2; keep++) {
        int gone[2];
        cr_assert_eq(pipe(gone), 0);
        proc_opts o = { .capture_max = 4096, .keep_group = keep };
        struct captured c = { 0 };
        proc_t *p = start_sh("sleep 30 >/dev/null 2>&1 & echo $!", &o, &c);
        close(gone[1]);
        run_until_exit(&c.o);
        cr_assert_eq(c.o.code, 0);
        long long bg = atoll(c.out);
        cr_assert_gt(bg, 0, "%s", c.out);
        struct pollfd pf = { .fd = gone[0], .events = POLLIN };
        if (keep) {
            cr_assert(tu_alive(bg), "keep_group: the background job was killed");
            cr_assert_eq(poll(&pf, 1, 0), 0);
            kill((pid_t)bg, SIGKILL);
        }
        cr_assert_eq(poll(&pf, 1, 10000), 1, "the background job survived");
        close(gone[0]);
        captured_free(p, &c);
    }
}

Test(proc, output_held_by_a_background_job_is_drained_for_a_while)
{
    /* The background sleep keeps stdout open: the exit is reported after
     * the drain time with what was read, not after the sleep. */
    proc_opts o = { .capture_max = 4096, .keep_group = 1 };
    struct captured c = { 0 };
    double t0 = tu_now_ms();
    proc_t *p = start_sh("echo before; sleep 30 & echo $! >&2", &o, &c);
    run_until_exit(&c.o);
    cr_assert_eq(c.o.code, 0);
    cr_assert_str_eq(c.out, "before\n");
    cr_assert_geq(c.o.at_ms - t0, PROC_DRAIN_MS - 10);
    long long bg = atoll(c.err);
    cr_assert_gt(bg, 0);
    kill((pid_t)bg, SIGKILL);
    captured_free(p, &c);
}

Test(proc, bad_cwd_is_a_clear_error)
{
    char *argv[] = { "true", NULL };
    proc_opts o = { .argv = argv, .cwd = "/nonexistent-dir", .capture_max = 64 };
    char err[256];
    proc_t *p;
    struct captured c = { 0 };
    int rc = proc_start(uv_default_loop(), &o, on_captured, &c, &p, err, sizeof(err));
    cr_assert_eq(rc, -ENOENT);
    cr_assert(strstr(err, "cwd /nonexistent-dir"), "%s", err);
}

/* The affinity is the child's before exec: what it reads of itself at its
 * first instruction is the set given (DTS's taskset -c). */
Test(proc, cpu_affinity_is_set_before_exec)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int cpus[1] = { (int)ncpu - 1 };
    proc_opts o = { .capture_max = 4096, .cpus = cpus, .ncpus = 1 };
    struct captured c = { 0 };
    proc_t *p = start_sh("grep Cpus_allowed_list /proc/self/status", &o, &c);
    run_until_exit(&c.o);
    cr_assert_eq(c.o.code, 0, "%s", c.err);
    char want[64];
    snprintf(want, sizeof(want), "Cpus_allowed_list:\t%d\n", cpus[0]);
    cr_assert_str_eq(c.out, want);
    captured_free(p, &c);
}

Test(proc, impossible_cpu_affinity_is_a_clear_error)
{
    char *argv[] = { "true", NULL };
    int cpus[1] = { 1000 }; /* no such CPU here */
    proc_opts o = { .argv = argv, .cpus = cpus, .ncpus = 1 };
    char err[256];
    proc_t *p;
    struct captured c = { 0 };
    int rc = proc_start(uv_default_loop(), &o, on_captured, &c, &p, err, sizeof(err));
    cr_assert_eq(rc, -EINVAL);
    cr_assert(strstr(err, "CPU affinity"), "%s", err);
}
