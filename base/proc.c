/* proc.c - supervised children: fork/exec with a death signal, pidfd exit
 * notification, SIGTERM-then-SIGKILL stop. */
#include "base/proc.h"
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct proc {
    uv_loop_t *loop;
    pid_t pid;
    int pidfd;
    int running;
    int closing;
    int pending_closes;
    uv_poll_t poll;
    uv_timer_t kill_timer;
    proc_exit_cb exit_cb;
    void *data;
    proc_close_cb close_cb;
    void *close_data;
};

int proc_which(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/')) {
        if ((size_t)snprintf(out, outlen, "%s", name) >= outlen)
            return -ENAMETOOLONG;
        return access(out, X_OK) == 0 ? 0 : -errno;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path, name) < outlen &&
            access(out, X_OK) == 0)
            return 0;
        path += n + (colon ? 1 : 0);
    }
    return -ENOENT;
}

static void on_exit_ready(uv_poll_t *h, int status, int events);

static void reap(proc_t *p)
{
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r != p->pid)
        return; /* pidfd readable means exited; a spurious wake is harmless */
    p->running = 0;
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->kill_timer);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    /* The group may still hold grandchildren QEMU started (helpers); end them. */
    kill(-p->pid, SIGKILL);
    if (p->exit_cb && !p->closing)
        p->exit_cb(p, code, sig, p->data);
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    reap(h->data);
}

int proc_spawn(uv_loop_t *loop, proc_t **out, char *const argv[], const char *log_path,
               proc_exit_cb cb, void *data, char *err, size_t errlen)
{
    char exe[4096];
    int rc = proc_which(argv[0], exe, sizeof(exe));
    if (rc < 0) {
        if (strchr(argv[0], '/'))
            snprintf(err, errlen, "%s: %s", argv[0], strerror(-rc));
        else
            snprintf(err, errlen, "%s: not found in PATH", argv[0]);
        return rc;
    }
    /* The log is in a run dir: a planted symlink is refused, not followed. */
    int logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (logfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", log_path, fs_strerror(rc));
        return rc;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* A pipe tells the parent whether exec worked: it closes on exec
     * (CLOEXEC) or carries the child's errno. */
    int ep[2];
    if (nullfd < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(err, errlen, "spawn %s: %s", argv[0], strerror(errno));
        close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        return rc;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(logfd);
        close(nullfd);
        close(ep[0]);
        close(ep[1]);
        return rc;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only until exec. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* parent died before prctl took effect */
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Ignored signals survive exec; QEMU gets default dispositions. */
        signal(SIGPIPE, SIG_DFL);
        /* Sockets, logs and files QEMU creates (QMP, agent, serial) are
         * born 0600, whatever the controller's umask. */
        umask(0177);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(exe, argv);
        int e = errno;
        (void)!write(ep[1], &e, sizeof(e));
        _exit(127);
    }
    close(ep[1]);
    close(logfd);
    close(nullfd);
    setpgid(pid, pid); /* also in the parent: no window where kill(-pid) misses */
    int child_errno = 0;
    ssize_t n;
    do
        n = read(ep[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "exec %s: %s", exe, strerror(child_errno));
        return -child_errno;
    }

    proc_t *p = calloc(1, sizeof(*p));
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (!p || pidfd < 0) {
        rc = p ? -errno : -ENOMEM;
        snprintf(err, errlen, "pidfd_open: %s", strerror(-rc));
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        free(p);
        return rc;
    }
    p->loop = loop;
    p->pid = pid;
    p->pidfd = pidfd;
    p->running = 1;
    p->exit_cb = cb;
    p->data = data;
    uv_poll_init(loop, &p->poll, pidfd);
    uv_timer_init(loop, &p->kill_timer);
    p->poll.data = p;
    p->kill_timer.data = p;
    uv_poll_start(&p->poll, UV_READABLE, on_exit_ready);
    *out = p;
    return 0;
}

pid_t proc_pid(const proc_t *p) { return p->pid; }
int proc_running(const proc_t *p) { return p->running; }

int proc_kill(proc_t *p, int sig)
{
    if (!p->running)
        return -ESRCH;
    return kill(-p->pid, sig) == 0 ? 0 : -errno;
}

static void on_kill_timer(uv_timer_t *t)
{
    proc_t *p = t->data;
    proc_kill(p, SIGKILL);
}

void proc_stop(proc_t *p, uint64_t grace_ms)
{
    if (!p->running || uv_is_active((uv_handle_t *)&p->kill_timer))
        return;
    proc_kill(p, SIGTERM);
    /* The loop's cached time may be stale if the caller did slow work. */
    uv_update_time(p->loop);
    uv_timer_start(&p->kill_timer, on_kill_timer, grace_ms, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    proc_t *p = h->data;
    if (--p->pending_closes)
        return;
    close(p->pidfd);
    if (p->close_cb)
        p->close_cb(p, p->close_data);
    free(p);
}

void proc_close(proc_t *p, proc_close_cb cb, void *data)
{
    if (p->closing)
        return;
    p->closing = 1;
    p->close_cb = cb;
    p->close_data = data;
    if (p->running) {
        /* Closing means we no longer supervise it: nothing may outlive us. */
        kill(-p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->running = 0;
    }
    p->pending_closes = 2;
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
}
