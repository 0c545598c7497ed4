/* test_proc.c - supervised children: real processes, real signals. */
#include <criterion/criterion.h>

#include <errno.h>
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
    char *argv2[] = { "sh", "-c", "trap '' TERM; sleep 30", NULL };
    cr_assert_eq(proc_spawn(uv_default_loop(), &p, argv2, "/dev/null", on_exit_cb, &o2, err, sizeof(err)), 0);
    usleep(200000); /* let sh install its trap */
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
