#include "testutil.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"

int tu_mkdtemp(char *out, size_t outlen, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if ((size_t)snprintf(out, outlen, "%s/qf-%s-XXXXXX", tmp, tag) >= outlen)
        return -ENAMETOOLONG;
    return mkdtemp(out) ? 0 : -errno; /* mkdtemp creates mode 0700 */
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    if (path && *path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_guest_dir(void)
{
    const char *d = getenv("QFLEET_GUEST_DIR");
    return d && *d ? d : QF_GUEST_DIR;
}

double tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int tu_wait_exit(pid_t pid, int ms)
{
    double end = tu_now_ms() + ms;
    int st;
    while (tu_now_ms() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

int tu_alive(long long pid)
{
    char p[64], state = 0;
    snprintf(p, sizeof(p), "/proc/%lld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int ok = fscanf(f, "%*d %*s %c", &state) == 1 && state != 'Z';
    fclose(f);
    return ok;
}

int tu_wait_path(const char *path, int ms)
{
    double end = tu_now_ms() + ms;
    while (access(path, F_OK) != 0) {
        if (tu_now_ms() > end)
            return -ETIMEDOUT;
        usleep(10000);
    }
    return 0;
}

int tu_run(char *const argv[]) { return tu_run_ms(argv, 10000); }

int tu_run_ms(char *const argv[], int ms)
{
    tu_child c = { .out = "/dev/null", .err = "/dev/null" };
    return tu_wait_exit(tu_start((const char *const *)argv, &c), ms);
}

gid_t tu_qfleet_gid(void)
{
    char *add[] = { "/usr/sbin/groupadd", "-f", FS_GROUP_NAME, NULL };
    cr_assert_eq(tu_run(add), 0, "groupadd -f " FS_GROUP_NAME);
    struct group *g = getgrnam(FS_GROUP_NAME);
    cr_assert(g, "no group " FS_GROUP_NAME);
    return g->gr_gid;
}

static void child_setup(const tu_child *c)
{
    int n = open("/dev/null", O_RDONLY);
    int o = c && c->out ? open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0600) : 1;
    int e = c && c->err ? open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0600) : 2;
    if (n < 0 || o < 0 || e < 0 || dup2(n, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
        _exit(126);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!c)
        return;
    if (c->state_dir)
        setenv("QFLEET_STATE_DIR", c->state_dir, 1);
    for (int i = 0; c->env && c->env[i] && c->env[i + 1]; i += 2)
        setenv(c->env[i], c->env[i + 1], 1);
    struct rlimit st = { c->stack, c->stack }, nf = { c->nofile, c->nofile };
    if ((c->cwd && chdir(c->cwd) < 0) || (c->stack && setrlimit(RLIMIT_STACK, &st) < 0) ||
        (c->nofile && setrlimit(RLIMIT_NOFILE, &nf) < 0))
        _exit(126);
    if (c->as_nobody && geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
        _exit(126);
}

pid_t tu_start(const char *const argv[], const tu_child *c)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        child_setup(c);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t tu_start_qfleet(const char *dir, const char *state_dir, const char *tag,
                      const char *const args[])
{
    char out[4096], err[4096];
    snprintf(out, sizeof(out), "%s/%s.out", dir, tag);
    snprintf(err, sizeof(err), "%s/%s.err", dir, tag);
    const char *argv[64] = { QF_BINARY_DIR "/src/qfleet" };
    for (int i = 0; args[i]; i++) {
        cr_assert_lt(i, 62, "too many arguments");
        argv[i + 1] = args[i];
    }
    tu_child c = { .out = out, .err = err, .state_dir = state_dir, .cwd = dir };
    return tu_start(argv, &c);
}

int tu_run_qfleet(const char *dir, const char *state_dir, const char *tag,
                  const char *const args[], int ms)
{
    return tu_wait_exit(tu_start_qfleet(dir, state_dir, tag, args), ms);
}

/* ---- host resources private to one test ---- */

static int why_errno(char *why, size_t whylen, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    if (e && n >= 0 && (size_t)n < whylen)
        snprintf(why + n, whylen - (size_t)n, ": %s", strerror(e));
    return e ? -e : -EPERM;
}

int tu_private_mounts(char *why, size_t whylen)
{
    if (geteuid() != 0)
        return why_errno(why, whylen, 0, "needs root (a private mount namespace)");
    if (unshare(CLONE_NEWNS) < 0)
        return why_errno(why, whylen, errno, "unshare(CLONE_NEWNS)");
    /* Without this a mount made here would propagate back to the host's
     * shared mounts. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return why_errno(why, whylen, errno, "making / private");
    return 0;
}

int tu_private_net(char *why, size_t whylen)
{
    if (geteuid() != 0)
        return why_errno(why, whylen, 0, "needs root (a private network namespace)");
    if (unshare(CLONE_NEWNET) < 0)
        return why_errno(why, whylen, errno, "unshare(CLONE_NEWNET)");
    char *up[] = { "ip", "link", "set", "lo", "up", NULL };
    if (tu_run(up) != 0)
        return why_errno(why, whylen, 0, "ip link set lo up failed in the new namespace");
    return 0;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int write_long(const char *path, long v)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    int ok = fprintf(f, "%ld\n", v) > 0;
    return fclose(f) == 0 && ok ? 0 : -EIO;
}

#define TU_OVERCOMMIT "/proc/sys/vm/nr_overcommit_hugepages"

int tu_hugetlbfs(tu_huge *h, int mb, char *why, size_t whylen)
{
    memset(h, 0, sizeof(*h));
    h->old_overcommit = -1;
    h->lock_fd = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        sscanf(line, "Hugepagesize: %ld kB", &h->page_kb);
    if (f)
        fclose(f);
    if (h->page_kb <= 0)
        return why_errno(why, whylen, ENOSYS, "no huge pages in /proc/meminfo");
    int r = tu_private_mounts(why, whylen);
    if (r < 0)
        return r;
    /* One test at a time raises and restores the host-wide limit. */
    h->lock_fd = open("/run/lock/qfleet-test-hugepages", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (h->lock_fd < 0 || flock(h->lock_fd, LOCK_EX) < 0)
        return why_errno(why, whylen, errno, "locking /run/lock/qfleet-test-hugepages");
    long need = (long)mb * 1024 / h->page_kb, old = read_long(TU_OVERCOMMIT);
    if (old < 0)
        return why_errno(why, whylen, ENOENT, "reading " TU_OVERCOMMIT);
    if (old < need) {
        if ((r = write_long(TU_OVERCOMMIT, need)) < 0)
            return why_errno(why, whylen, -r, "raising " TU_OVERCOMMIT);
        h->old_overcommit = old;
    }
    if ((r = tu_mkdtemp(h->dir, sizeof(h->dir), "huge")) < 0)
        return why_errno(why, whylen, -r, "mkdtemp");
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%dM,mode=0700", mb);
    if (mount("none", h->dir, "hugetlbfs", MS_NOSUID | MS_NODEV, opts) < 0) {
        r = errno;
        rmdir(h->dir);
        h->dir[0] = '\0';
        return why_errno(why, whylen, r, "mount -t hugetlbfs -o %s", opts);
    }
    return 0;
}

long tu_hugetlbfs_used(const tu_huge *h)
{
    struct statfs s;
    if (!h->dir[0] || statfs(h->dir, &s) < 0)
        return -1;
    return (long)(s.f_blocks - s.f_bfree);
}

void tu_hugetlbfs_release(tu_huge *h)
{
    if (h->dir[0]) {
        umount2(h->dir, MNT_DETACH);
        rmdir(h->dir);
        h->dir[0] = '\0';
    }
    if (h->old_overcommit >= 0) {
        write_long(TU_OVERCOMMIT, h->old_overcommit);
        h->old_overcommit = -1;
    }
    if (h->lock_fd >= 0) {
        close(h->lock_fd);
        h->lock_fd = -1;
    }
}

/* Like qfleet itself, tests treat a peer that went away mid-write as an
 * error on that connection: without this, a QEMU exiting while a client
 * writes would kill the test process with SIGPIPE. */
__attribute__((constructor)) static void tu_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---- one libuv client under test ---- */

static void tu_on_tick(uv_timer_t *t) { (void)t; }

void tu_loop_init(tu_loop *l)
{
    memset(l, 0, sizeof(*l));
    cr_assert_eq(uv_loop_init(&l->loop), 0);
    uv_timer_init(&l->loop, &l->tick);
    uv_timer_start(&l->tick, tu_on_tick, 5, 5);
}

int tu_run_until(tu_loop *l, const int *flag, int ms)
{
    double end = tu_now_ms() + ms;
    while (!*flag && tu_now_ms() < end)
        uv_run(&l->loop, UV_RUN_ONCE);
    return *flag;
}

int tu_run_until_n(tu_loop *l, const int *counter, int n, int ms)
{
    double end = tu_now_ms() + ms;
    while (*counter < n && tu_now_ms() < end)
        uv_run(&l->loop, UV_RUN_ONCE);
    return *counter >= n;
}

void tu_spin(tu_loop *l, int ms)
{
    int never = 0;
    tu_run_until(l, &never, ms);
}

double tu_clock_start(tu_loop *l)
{
    uv_update_time(&l->loop);
    return tu_now_ms();
}

static void tu_on_exit(uv_process_t *p, int64_t status, int sig)
{
    tu_loop *l = p->data;
    l->proc_exited = 1;
    l->proc_status = status;
    l->proc_signal = sig;
}

void tu_spawn(tu_loop *l, char *const argv[])
{
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE }, { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 } };
    uv_process_options_t o = { .exit_cb = tu_on_exit, .file = argv[0], .args = (char **)argv,
                               .stdio_count = 3, .stdio = stdio };
    l->proc.data = l;
    int rc = uv_spawn(&l->loop, &l->proc, &o);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], uv_strerror(rc));
    l->proc_spawned = 1;
}

/* Close the client and every handle of the fixture, then run the loop
 * until nothing is left on it (bounded: a leaked active handle must not
 * hang the test). 0, or what uv_loop_close said. */
static int tu_loop_finish(tu_loop *l, tu_close_fn close_client)
{
    if (!l->closed && close_client) {
        close_client();
        close_client(); /* idempotent: no second callback, no crash */
    }
    if (l->proc_spawned && !l->proc_exited) {
        uv_process_kill(&l->proc, SIGKILL);
        tu_run_until(l, &l->proc_exited, 5000);
    }
    if (l->proc_spawned && !uv_is_closing((uv_handle_t *)&l->proc))
        uv_close((uv_handle_t *)&l->proc, NULL);
    if (!uv_is_closing((uv_handle_t *)&l->tick))
        uv_close((uv_handle_t *)&l->tick, NULL);
    double end = tu_now_ms() + 10000;
    while (uv_loop_alive(&l->loop) && tu_now_ms() < end)
        uv_run(&l->loop, UV_RUN_ONCE);
    return uv_loop_close(&l->loop);
}

void tu_loop_down(tu_loop *l, tu_close_fn close_client)
{
    l->down = 1;
    int rc = tu_loop_finish(l, close_client);
    cr_assert_eq(l->closed, 1, "the client's close callback ran %d times, not once", l->closed);
    cr_assert_eq(rc, 0, "handles left open on the loop: %s", uv_strerror(rc));
}

void tu_loop_cleanup(tu_loop *l, tu_close_fn close_client)
{
    if (l->down)
        return;
    fprintf(stderr, "testutil: the test did not reach tu_loop_down() (it failed first, or lacks "
                    "the call): cleaning up without its close checks\n");
    tu_loop_finish(l, close_client);
}

void tu_guest_cfg(const char *path, const char *name, const char *append, const char *net,
                  const char *extra)
{
    char k[600];
    snprintf(k, sizeof(k), "%s/vmlinux", tu_guest_dir());
    cr_assert_eq(access(k, R_OK), 0, "no test guest in %s: run tools/mkguest", tu_guest_dir());
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fprintf(f,
            "[%s]\n"
            "cpu =\n    model=qemu64,number=1;\n"
            "mem =\n    size=256;\n"
            "kernel =\n    file=%s/vmlinux,initrd=%s/initrd.img,append=%s;\n"
            "login =\n    user=root,password=tester;\n"
            "net =\n%s"
            "%s"
            "enable_kvm =\n    enable=no;\n",
            name, tu_guest_dir(), tu_guest_dir(), append ? append : "console=ttyS0 quiet panic=-1",
            net ? net : "    type=nic,opt_model=e1000,opt_addr=1f;\n    type=user;\n",
            extra ? extra : "");
    cr_assert_eq(fclose(f), 0);
}

char *tu_slurp(const char *path)
{
    char *s = fs_read_file(path, 64u << 20, NULL);
    if (!s)
        s = strdup("");
    cr_assert(s);
    return s;
}

char *tu_slurp_in(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return tu_slurp(p);
}

void tu_write_in(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s: %s", p, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0, "%s: %s", p, strerror(errno));
}

int tu_peer_pair(int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *peer = sv[0];
    fcntl(*peer, F_SETFL, O_NONBLOCK);
    return sv[1];
}

void tu_peer_write(tu_loop *l, int peer, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(peer, p, len);
        if (n < 0 && errno == EAGAIN) {
            tu_spin(l, 1);
            continue;
        }
        cr_assert_gt(n, 0, "peer write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

json_t *tu_take_json_line(void *buf, size_t *len)
{
    char *b = buf, *nl = memchr(b, '\n', *len);
    if (!nl)
        return NULL;
    size_t n = (size_t)(nl - b);
    json_t *v = json_parse(b, n, NULL, 0);
    cr_assert(v, "client wrote invalid JSON: %.*s", (int)n, b);
    memmove(b, nl + 1, *len - n - 1);
    *len -= n + 1;
    return v;
}

json_t *tu_read_jsonl(const char *path, int (*ok)(const json_t *e))
{
    char *s = fs_read_file(path, 1 << 26, NULL);
    cr_assert(s, "no %s", path);
    json_t *arr = json_array();
    for (char *save, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *e = json_parse(l, strlen(l), NULL, 0);
        cr_assert(e, "not JSON: %s", l);
        cr_assert(!ok || ok(e), "%s", l);
        json_append(arr, e);
    }
    free(s);
    return arr;
}
