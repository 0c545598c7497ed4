/* proc.c - supervised children: fork/exec with a death signal, pidfd exit
 * notification, output to a log or through pipes, a timeout, and a
 * SIGTERM-then-SIGKILL stop. */
#include "base/proc.h"
#include "base/fs.h"

#include <errno.h>
#include <sched.h>
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

extern char **environ;

struct stream {
    uv_pipe_t pipe;
    int reading;
    char *buf;
    size_t len;
};

struct proc {
    uv_loop_t *loop;
    pid_t pid;
    int pidfd;
    int running;
    int reported;            /* the exit callback ran (or never will) */
    int closing;
    int pending_closes;
    int code, sig;
    int timed_out, truncated;
    int keep_group;
    int capturing;           /* the two pipes below exist */
    size_t capture_max;
    uv_poll_t poll;
    uv_timer_t kill_timer;   /* proc_stop's grace */
    uv_timer_t timer;        /* the timeout, then the drain */
    struct stream out[2];    /* stdout, stderr */
    proc_exit_cb exit_cb;
    void *data;
    proc_close_cb close_cb;
    void *close_data;
    char rbuf[16384];
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

/* ---- exit ----------------------------------------------------------------- */

/* The exit is known and the output read (or given up on): report, once. */
static void finish(proc_t *p)
{
    if (p->reported)
        return;
    p->reported = 1;
    uv_timer_stop(&p->timer);
    for (int i = 0; p->capturing && i < 2; i++) {
        if (p->out[i].reading)
            uv_read_stop((uv_stream_t *)&p->out[i].pipe);
        p->out[i].reading = 0;
    }
    if (p->exit_cb && !p->closing)
        p->exit_cb(p, p->code, p->sig, p->data);
}

static void on_drain(uv_timer_t *t) { finish(t->data); }

static void reap(proc_t *p)
{
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r != p->pid)
        return; /* pidfd readable means exited; a spurious wake is harmless */
    p->running = 0;
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->kill_timer);
    uv_timer_stop(&p->timer);
    p->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    p->sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    /* The group may still hold grandchildren the child started (helpers); end them. */
    if (!p->keep_group)
        kill(-p->pid, SIGKILL);
    if (p->capturing && (p->out[0].reading || p->out[1].reading)) {
        uv_update_time(p->loop);
        uv_timer_start(&p->timer, on_drain, PROC_DRAIN_MS, 0);
        return;
    }
    finish(p);
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    reap(h->data);
}

static void on_timeout(uv_timer_t *t)
{
    proc_t *p = t->data;
    p->timed_out = 1;
    proc_kill(p, SIGKILL);
}

/* ---- captured output ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    proc_t *p = h->data;
    (void)sz;
    *b = uv_buf_init(p->rbuf, sizeof(p->rbuf)); /* copied out at once in on_read */
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b)
{
    proc_t *p = h->data;
    struct stream *s = (uv_pipe_t *)h == &p->out[0].pipe ? &p->out[0] : &p->out[1];
    if (n < 0) {
        uv_read_stop(h);
        s->reading = 0;
        if (!p->running && !p->out[0].reading && !p->out[1].reading)
            finish(p);
        return;
    }
    size_t take = (size_t)n;
    if (s->len + take > p->capture_max) {
        take = p->capture_max - s->len;
        p->truncated = 1;
    }
    if (!take)
        return;
    char *nb = realloc(s->buf, s->len + take + 1);
    if (!nb)
        return;
    memcpy(nb + s->len, b->base, take);
    s->len += take;
    nb[s->len] = '\0';
    s->buf = nb;
}

char *proc_take_output(proc_t *p, int fd)
{
    if (fd != 1 && fd != 2)
        return NULL;
    struct stream *s = &p->out[fd - 1];
    char *r = s->buf ? s->buf : strdup("");
    s->buf = NULL;
    s->len = 0;
    return r;
}

/* ---- starting ------------------------------------------------------------------ */

/* The child's stdio: fds[0..2], and for captures the parent's read ends. */
struct stdio {
    int fds[3];
    int rd[2];
};

static void stdio_close(struct stdio *io)
{
    for (int i = 0; i < 3; i++)
        if (io->fds[i] >= 0 && (i == 0 || io->fds[i] != io->fds[i - 1]))
            close(io->fds[i]);
    for (int i = 0; i < 2; i++)
        if (io->rd[i] >= 0)
            close(io->rd[i]);
    io->fds[0] = io->fds[1] = io->fds[2] = io->rd[0] = io->rd[1] = -1;
}

static int stdio_open(const proc_opts *o, struct stdio *io, char *err, size_t errlen)
{
    io->fds[0] = io->fds[1] = io->fds[2] = io->rd[0] = io->rd[1] = -1;
    io->fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (io->fds[0] < 0)
        goto fail;
    if (o->log_path) {
        /* The log is in a run dir: a planted symlink is refused, not followed. */
        io->fds[1] = open(o->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (io->fds[1] < 0) {
            int e = errno;
            snprintf(err, errlen, "%s: %s", o->log_path, fs_strerror(-e));
            stdio_close(io);
            return -e;
        }
        io->fds[2] = io->fds[1];
    } else if (o->capture_max > 0) {
        for (int i = 0; i < 2; i++) {
            int pp[2];
            if (pipe2(pp, O_CLOEXEC) < 0)
                goto fail;
            io->rd[i] = pp[0];
            io->fds[i + 1] = pp[1];
        }
    } else {
        io->fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (io->fds[1] < 0)
            goto fail;
        io->fds[2] = io->fds[1];
    }
    return 0;
fail:;
    int e = errno;
    snprintf(err, errlen, "spawn %s: %s", o->argv[0], strerror(e));
    stdio_close(io);
    return -e;
}

/* In the child: async-signal-safe calls only until exec. Failures go to
 * the parent through ep as an errno. */
static void child(const proc_opts *o, const char *exe, const struct stdio *io, int ep, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* parent died before prctl took effect */
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ignored signals survive exec; the child gets default dispositions. */
    signal(SIGPIPE, SIG_DFL);
    /* Sockets, logs and files the child creates (QEMU's QMP, agent,
     * serial) are born 0600, whatever the controller's umask. */
    umask(0177);
    if (o->ncpus > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int i = 0; i < o->ncpus; i++)
            if (o->cpus[i] >= 0 && o->cpus[i] < CPU_SETSIZE)
                CPU_SET(o->cpus[i], &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
            int e[2] = { 2, errno };
            (void)!write(ep, e, sizeof(e));
            _exit(127);
        }
    }
    for (int i = 0; i < 3; i++)
        dup2(io->fds[i], i);
    int e[2] = { 0, 0 }; /* what failed (0 chdir, 1 exec, 2 affinity), errno */
    if (o->cwd && chdir(o->cwd) < 0) {
        e[1] = errno;
    } else {
        execve(exe, o->argv, o->env ? o->env : environ);
        e[0] = 1;
        e[1] = errno;
    }
    (void)!write(ep, e, sizeof(e));
    _exit(127);
}

/* Fork and exec; 0 and *pid, or -errno with err. */
static int fork_exec(const proc_opts *o, const char *exe, struct stdio *io, pid_t *pid, char *err,
                     size_t errlen)
{
    /* A pipe tells the parent whether exec worked: it closes on exec
     * (CLOEXEC) or carries the child's errno. */
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(err, errlen, "spawn %s: %s", o->argv[0], strerror(e));
        return -e;
    }
    pid_t parent = getpid();
    pid_t c = fork();
    if (c < 0) {
        int e = errno;
        snprintf(err, errlen, "fork: %s", strerror(e));
        close(ep[0]);
        close(ep[1]);
        return -e;
    }
    if (c == 0)
        child(o, exe, io, ep[1], parent);
    close(ep[1]);
    setpgid(c, c); /* also in the parent: no window where kill(-pid) misses */
    int e[2] = { 0, 0 };
    ssize_t n;
    do
        n = read(ep[0], e, sizeof(e));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof(e)) {
        waitpid(c, NULL, 0);
        if (e[0] == 0)
            snprintf(err, errlen, "cwd %s: %s", o->cwd, strerror(e[1]));
        else if (e[0] == 2)
            snprintf(err, errlen, "CPU affinity for %s: %s", exe, strerror(e[1]));
        else
            snprintf(err, errlen, "exec %s: %s", exe, strerror(e[1]));
        return -e[1];
    }
    *pid = c;
    return 0;
}

static void handles_init(proc_t *p, struct stdio *io)
{
    uv_poll_init(p->loop, &p->poll, p->pidfd);
    uv_timer_init(p->loop, &p->kill_timer);
    uv_timer_init(p->loop, &p->timer);
    p->poll.data = p->kill_timer.data = p->timer.data = p;
    for (int i = 0; p->capturing && i < 2; i++) {
        uv_pipe_init(p->loop, &p->out[i].pipe, 0);
        p->out[i].pipe.data = p;
        if (uv_pipe_open(&p->out[i].pipe, io->rd[i]) < 0)
            close(io->rd[i]); /* read as at EOF: the output is lost, the exit is not */
        else if (uv_read_start((uv_stream_t *)&p->out[i].pipe, on_alloc, on_read) == 0)
            p->out[i].reading = 1;
        io->rd[i] = -1; /* the handle owns it now */
    }
    uv_poll_start(&p->poll, UV_READABLE, on_exit_ready);
}

int proc_start(uv_loop_t *loop, const proc_opts *o, proc_exit_cb cb, void *data, proc_t **out,
               char *err, size_t errlen)
{
    char exe[4096];
    int rc = proc_which(o->argv[0], exe, sizeof(exe));
    if (rc < 0) {
        if (strchr(o->argv[0], '/'))
            snprintf(err, errlen, "%s: %s", o->argv[0], strerror(-rc));
        else
            snprintf(err, errlen, "%s: not found in PATH", o->argv[0]);
        return rc;
    }
    proc_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct stdio io;
    if ((rc = stdio_open(o, &io, err, errlen)) < 0) {
        free(p);
        return rc;
    }
    pid_t pid = -1;
    rc = fork_exec(o, exe, &io, &pid, err, errlen);
    /* The child has its copies; the parent keeps only the read ends. */
    for (int i = 0; i < 3; i++)
        if (io.fds[i] >= 0 && (i == 0 || io.fds[i] != io.fds[i - 1]))
            close(io.fds[i]);
    io.fds[0] = io.fds[1] = io.fds[2] = -1;
    int pidfd = rc < 0 ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    if (rc == 0 && pidfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "pidfd_open: %s", strerror(-rc));
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (rc < 0) {
        stdio_close(&io);
        free(p);
        return rc;
    }
    p->loop = loop;
    p->pid = pid;
    p->pidfd = pidfd;
    p->running = 1;
    p->exit_cb = cb;
    p->data = data;
    p->keep_group = o->keep_group;
    p->capture_max = o->capture_max;
    p->capturing = !o->log_path && o->capture_max > 0;
    handles_init(p, &io);
    if (o->timeout_ms > 0) {
        uv_update_time(loop);
        uv_timer_start(&p->timer, on_timeout, o->timeout_ms, 0);
    }
    *out = p;
    return 0;
}

int proc_spawn(uv_loop_t *loop, proc_t **out, char *const argv[], const char *log_path,
               proc_exit_cb cb, void *data, char *err, size_t errlen)
{
    proc_opts o = { .argv = argv, .log_path = log_path };
    return proc_start(loop, &o, cb, data, out, err, errlen);
}

pid_t proc_pid(const proc_t *p) { return p->pid; }
int proc_running(const proc_t *p) { return p->running; }
int proc_timed_out(const proc_t *p) { return p->timed_out; }
int proc_truncated(const proc_t *p) { return p->truncated; }

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
    free(p->out[0].buf);
    free(p->out[1].buf);
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
    p->pending_closes = 3 + (p->capturing ? 2 : 0);
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    for (int i = 0; p->capturing && i < 2; i++)
        uv_close((uv_handle_t *)&p->out[i].pipe, on_handle_closed);
}
