/* proc.h - a supervised child process (QEMU) on the libuv loop.
 *
 * The child gets its own process group, stdin from /dev/null, stdout and
 * stderr appended to a log file, and PR_SET_PDEATHSIG(SIGKILL): no QEMU
 * outlives a controller that was killed with -9. Exit is noticed through a
 * pidfd watched by uv_poll, so it is seen at once without SIGCHLD games
 * with libuv's own child reaping. */
#ifndef QF_PROC_H
#define QF_PROC_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef struct proc proc_t;

/* Called once when the child has exited and was reaped. exit_status is the
 * exit code (or -1 if killed), term_signal the signal that killed it (0 if
 * none). The proc stays valid until proc_close. */
typedef void (*proc_exit_cb)(proc_t *p, int exit_status, int term_signal, void *data);
typedef void (*proc_close_cb)(proc_t *p, void *data);

/* Start argv[0] (resolved with PATH in the parent, never through a shell).
 * log_path is opened O_APPEND|O_CREAT|O_NOFOLLOW 0600 for the child's
 * stdout/stderr (a symlink there is an error). The child runs with umask
 * 0177: every file and socket it creates is 0600.
 * Returns 0 or -errno with a reason in err. */
int proc_spawn(uv_loop_t *loop, proc_t **out, char *const argv[], const char *log_path,
               proc_exit_cb cb, void *data, char *err, size_t errlen);

pid_t proc_pid(const proc_t *p);
int proc_running(const proc_t *p);

/* Send sig to the child's whole process group. */
int proc_kill(proc_t *p, int sig);

/* SIGTERM now, SIGKILL after grace_ms if still running. Idempotent. */
void proc_stop(proc_t *p, uint64_t grace_ms);

/* Release the proc. A still-running child is killed (SIGKILL to its group)
 * and reaped first; cb runs once all handles are closed. */
void proc_close(proc_t *p, proc_close_cb cb, void *data);

/* Resolve a program name against PATH like execvp would. 0 or -ENOENT. */
int proc_which(const char *name, char *out, size_t outlen);

#endif
