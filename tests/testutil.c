#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Like qfleet itself, tests treat a peer that went away mid-write as an
 * error on that connection: without this, a QEMU exiting while a client
 * writes would kill the test process with SIGPIPE. */
__attribute__((constructor)) static void tu_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}
