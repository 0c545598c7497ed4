/* host.c - what the lease store and the owners need to know about the
 * host: a process's start time (is the owner still the same process?) and
 * the default state dir. Calls nothing of the module: lease.c and store.c
 * both use it, so the calls point one way. */
#include "src/alloc/alloc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- processes ------------------------------------------------------ */

int alloc_proc_start(pid_t pid, unsigned long long *start)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -EINVAL;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    int e = errno;
    close(fd);
    if (r < 0)
        return e == ESRCH ? -ESRCH : -e;
    buf[r] = '\0';
    /* comm (field 2) may hold spaces and parentheses: count from the last
     * ')'. Field 3 is the state, field 22 the start time in clock ticks. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    char state = *p;
    if (state == 'Z' || state == 'X')
        return -ESRCH; /* a zombie holds nothing any more */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p)
        return -EIO;
    *start = v;
    return 0;
}

/* --- state dir ------------------------------------------------------ */

int alloc_state_dir_default(char *out, size_t outlen)
{
    const char *env = getenv("QFLEET_STATE_DIR");
    int n;
    if (env && *env)
        n = snprintf(out, outlen, "%s", env);
    else if (geteuid() == 0)
        n = snprintf(out, outlen, "/var/lib/qfleet");
    else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
        n = snprintf(out, outlen, "%s/qfleet", env);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}
