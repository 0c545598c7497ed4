/* fs.c - durable small-file operations. */
#include "base/fs.h"
#include "base/str.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, mode_t mode, int tighten)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0) {
        if (errno != EEXIST)
            return -errno;
        struct stat st;
        if (stat(buf, &st) < 0)
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        if (tighten && (st.st_mode & 07777) != mode) {
            if (st.st_uid != geteuid())
                return -EPERM; /* never chmod another user's directory */
            if (chmod(buf, mode) < 0)
                return -errno;
        }
    }
    return 0;
}

/* Split path into its directory (dir, "." if none) and last component. */
static int split_path(const char *path, char *dir, size_t dirlen, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!**base)
        return -EISDIR;
    int n = !slash ? snprintf(dir, dirlen, ".")
            : slash == path ? snprintf(dir, dirlen, "/")
                            : snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= dirlen ? -ENAMETOOLONG : 0;
}

int fs_dir_check(int dfd, const char *path, unsigned policy, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(dfd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    (void)policy; /* FS_DIR_PRIVATE is the only policy yet (see fs.h) */
    uid_t me = geteuid();
    if (st.st_uid == me && !(st.st_mode & (S_IWGRP | S_IWOTH)))
        return 0;
    char buf[1024], owner[64];
    struct passwd pw, *pwp = NULL;
    if (getpwuid_r(st.st_uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
        snprintf(owner, sizeof(owner), " (%s)", pw.pw_name);
    else
        owner[0] = '\0';
    snprintf(err, errlen,
             "%s is owned by uid %u%s with mode %04o: qfleet writes only in a directory owned "
             "by you (uid %u) that group and others cannot write; chown/chmod it or use "
             "another directory",
             path, (unsigned)st.st_uid, owner, (unsigned)(st.st_mode & 07777), (unsigned)me);
    return -EPERM;
}

int fs_dir_open(const char *path, mode_t mode, unsigned policy, char *err, size_t errlen)
{
    int rc = fs_mkdir_p(path, mode, 0);
    int dfd = rc < 0 ? rc : open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if ((rc = fs_dir_check(dfd, path, policy, err, errlen)) < 0) {
        close(dfd);
        return rc;
    }
    struct stat st;
    if ((policy & FS_DIR_TIGHTEN) && fstat(dfd, &st) == 0 && (st.st_mode & 07777) != mode &&
        fchmod(dfd, mode) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: chmod %04o: %s", path, (unsigned)mode, strerror(-rc));
        close(dfd);
        return rc;
    }
    return dfd;
}

int fs_openat(int dfd, const char *name, int flags, mode_t mode)
{
    int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode) && !((flags & O_DIRECTORY) && S_ISDIR(st.st_mode))) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

int fs_open_in(const char *path, int flags, mode_t mode, char *err, size_t errlen)
{
    char dir[4096];
    const char *base;
    int rc = split_path(path, dir, sizeof(dir), &base);
    int dfd = rc < 0 ? rc : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = fs_dir_check(dfd, dir, FS_DIR_PRIVATE, err, errlen);
    if (rc == 0 && (rc = fs_openat(dfd, base, flags, mode)) < 0)
        snprintf(err, errlen, "%s: %s", path, fs_strerror(rc));
    close(dfd);
    return rc;
}

const char *fs_strerror(int negerrno)
{
    if (negerrno == -ELOOP)
        return "is a symbolic link (qfleet does not follow links in its directories)";
    if (negerrno == -EINVAL)
        return "not a regular file";
    return strerror(-negerrno);
}

int fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    char *err, size_t errlen)
{
    char tmp[4096], dir[4096];
    const char *base;
    int rc = split_path(path, dir, sizeof(dir), &base);
    if (rc == 0 && snprintf(tmp, sizeof(tmp), "%s.tmp.%d", base, (int)getpid()) >= (int)sizeof(tmp))
        rc = -ENAMETOOLONG;
    int dfd = rc < 0 ? rc : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    /* A temp of ours a kill -9 left behind goes; a name planted again in
     * between makes O_EXCL fail: a temp file is never one we did not make. */
    unlinkat(dfd, tmp, 0);
    int fd = fs_openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, tmp, fs_strerror(fd));
        close(dfd);
        return fd;
    }
    rc = fs_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dfd, tmp, dfd, base) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        unlinkat(dfd, tmp, 0);
        close(dfd);
        return rc;
    }
    fsync(dfd); /* the rename itself must survive a crash */
    close(dfd);
    return 0;
}

char *fs_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = cap > max ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                int e = cap > max ? EFBIG : ENOMEM;
                free(buf);
                close(fd);
                errno = e;
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int fs_append_line(int fd, const char *line, size_t len)
{
    struct iovec iov[2] = { { (void *)line, len }, { "\n", 1 } };
    ssize_t n = writev(fd, iov, 2);
    if (n < 0)
        return -errno;
    return (size_t)n == len + 1 ? 0 : -EIO;
}

char *fs_tail(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return strdup("");
    off_t size = lseek(fd, 0, SEEK_END);
    off_t start = size > (off_t)max ? size - (off_t)max : 0;
    char *buf = malloc(max + 1);
    ssize_t n = buf ? pread(fd, buf, max, start) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        return strdup("");
    }
    buf[n] = '\0';
    char *p = buf;
    if (start > 0) {
        char *nl = strchr(buf, '\n');
        if (nl)
            p = nl + 1;
    }
    if (p != buf)
        memmove(buf, p, strlen(p) + 1);
    return buf;
}

char *fs_tail_text(const char *path, size_t max)
{
    char *t = fs_tail(path, max);
    if (!t)
        return NULL;
    char *out = str_escape_text(t, strlen(t), 0);
    free(t);
    return out;
}
