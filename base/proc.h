/* proc.h - a supervised child process on the libuv loop: the one way qfleet
 * runs a child (QEMU, a suite's host commands).
 *
 * The child gets its own process group, stdin from /dev/null, stdout and
 * stderr appended to a log file or captured through pipes, and
 * PR_SET_PDEATHSIG(SIGKILL): no child outlives a controller that was killed
 * with -9. Exit is noticed through a pidfd watched by uv_poll, so it is seen
 * at once without SIGCHLD games with libuv's own child reaping (which is why
 * nothing in the controller uses uv_spawn).
 *
 * Lifetime: a proc_t exists from a successful proc_start/proc_spawn until
 * proc_close, which frees it asynchronously (its callback runs exactly once,
 * after the last handle closed). The exit callback runs at most once and
 * never after proc_close was called. */
#ifndef QF_PROC_H
#define QF_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct proc proc_t;

/* Called once when the child has exited, was reaped and (when captured)
 * its output was read to the end or the drain time ran out. exit_status is
 * the exit code (or -1 if killed), term_signal the signal that killed it (0
 * if none). The proc stays valid until proc_close. */
typedef void (*proc_exit_cb)(proc_t *p, int exit_status, int term_signal, void *data);
typedef void (*proc_close_cb)(proc_t *p, void *data);

/* After the child exited, captured output is read until EOF for at most
 * this long: a background job it started may hold the pipes open. */
#define PROC_DRAIN_MS 1000

typedef struct proc_opts {
    char *const *argv;        /* argv[0] resolved with PATH in the parent, never through a shell */
    char *const *env;         /* NULL: the parent's environment */
    const char *cwd;          /* NULL: the parent's */
    /* Where stdout and stderr go: appended to log_path (O_APPEND|O_CREAT|
     * O_NOFOLLOW, 0600; a symlink there is an error) when set; else, when capture_max > 0, captured through pipes,
     * at most capture_max bytes of each kept (see proc_take_output); else
     * /dev/null. */
    const char *log_path;
    size_t capture_max;
    /* > 0: SIGKILL to the group after this many ms (proc_timed_out). */
    uint64_t timeout_ms;
    /* 0: when the child exits, the rest of its group (helpers it started)
     * is killed. 1: they are left alone (a host command's background jobs). */
    int keep_group;
    /* ncpus > 0: the child's CPU affinity, set before exec (DTS runs QEMU
     * under taskset: hugepage preallocation then runs there too). */
    const int *cpus;
    int ncpus;
} proc_opts;

/* Start a child as o says. The child runs with umask 0177: every file
 * and socket it creates is 0600. Returns 0 or -errno with a reason in err (a
 * missing program, a cwd or log that cannot be used, a failed exec). */
int proc_start(uv_loop_t *loop, const proc_opts *o, proc_exit_cb cb, void *data, proc_t **out,
               char *err, size_t errlen);

/* proc_start with argv, output appended to log_path, everything else default. */
int proc_spawn(uv_loop_t *loop, proc_t **out, char *const argv[], const char *log_path,
               proc_exit_cb cb, void *data, char *err, size_t errlen);

pid_t proc_pid(const proc_t *p);
int proc_running(const proc_t *p);
/* The timeout of proc_opts killed it. */
int proc_timed_out(const proc_t *p);
/* Captured output was cut at capture_max (either stream). */
int proc_truncated(const proc_t *p);
/* The captured output of fd 1 (stdout) or 2 (stderr), NUL-terminated, ""
 * when there was none; the caller frees it. Hands the buffer over: a second
 * call returns "". NULL on allocation failure. */
char *proc_take_output(proc_t *p, int fd);

/* Send sig to the child's whole process group. -ESRCH once it exited. */
int proc_kill(proc_t *p, int sig);

/* SIGTERM now, SIGKILL after grace_ms if still running. Idempotent. */
void proc_stop(proc_t *p, uint64_t grace_ms);

/* Release the proc. A still-running child is killed (SIGKILL to its group)
 * and reaped first; cb runs once all handles are closed. */
void proc_close(proc_t *p, proc_close_cb cb, void *data);

/* Resolve a program name against PATH like execvp would. 0 or -ENOENT. */
int proc_which(const char *name, char *out, size_t outlen);

#endif
