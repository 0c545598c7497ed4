/* host.c - what the lease store and the owners need to know about the
 * host: a process's start time (is the owner still the same process?) and
 * the default state dir and how it is opened (private, or shared by group
 * qfleet). Calls nothing of the module: lease.c and store.c
 * both use it, so the calls point one way. */
#include "src/alloc/alloc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

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

/* The state dir, made 0700 if missing. Never tighten an existing dir:
 * refuse one others could write in (a planted leases.tmp link would have
 * root overwrite any file), unless it is a store shared by group qfleet
 * (group-writable or setgid: then checked as FS_DIR_GROUP), whose runs/
 * is shared the same way so every member's run dirs fit in it. */
int alloc__state_dir_open(const char *dir, int *group, char *err, size_t errlen)
{
    int rc = fs_mkdir_p(dir, 0700, 0);
    int dfd = rc < 0 ? rc : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
        return rc;
    }
    rc = fs_dir_wants_group(dfd);
    *group = rc > 0;
    if (rc >= 0)
        rc = fs_dir_check(dfd, dir, *group ? FS_DIR_GROUP : FS_DIR_PRIVATE, err, errlen);
    else
        snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
    if (rc == 0 && *group && mkdirat(dfd, "runs", 02770) == 0) {
        int r = fs_openat(dfd, "runs", O_RDONLY | O_DIRECTORY, 0);
        if (r >= 0) { /* past the umask */
            fchmod(r, 02770);
            close(r);
        }
    }
    if (rc < 0) {
        close(dfd);
        return rc;
    }
    return dfd;
}

/* The lock file. In a shared store it is 0660 (made so past the umask by
 * whoever creates it) and must have no other hard link: root opens it. */
int alloc__lock_open(int dfd, const char *name, int group)
{
    mode_t mode = group ? 0660 : 0600;
    int fd = fs_openat(dfd, name, O_RDWR | O_CREAT | O_EXCL, mode);
    if (fd >= 0) {
        if (group)
            fchmod(fd, mode);
        return fd;
    }
    if (fd != -EEXIST || (fd = fs_openat(dfd, name, O_RDWR, 0)) < 0)
        return fd;
    struct stat st;
    if (group && (fstat(fd, &st) < 0 || st.st_nlink != 1)) {
        close(fd);
        return -EMLINK;
    }
    return fd;
}
