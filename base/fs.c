/* fs.c - durable small-file operations. */
#include "base/fs.h"
#include "base/str.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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

static void owner_name(uid_t uid, char *out, size_t len)
{
    char buf[1024];
    struct passwd pw, *pwp = NULL;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
        snprintf(out, len, " (%s)", pw.pw_name);
    else
        out[0] = '\0';
}

int fs_dir_wants_group(int dfd)
{
    struct stat st;
    if (fstat(dfd, &st) < 0)
        return -errno;
    return (st.st_mode & (S_IWGRP | S_ISGID)) != 0;
}

static int in_group(gid_t gid)
{
    if (getegid() == gid)
        return 1;
    gid_t g[256];
    int n = getgroups(256, g);
    for (int i = 0; i < n; i++)
        if (g[i] == gid)
            return 1;
    return 0;
}

/* FS_DIR_GROUP (fs.h): why st is not a good group dir, or NULL. */
static const char *group_fault(const struct stat *st, char *buf, size_t len)
{
    uid_t me = geteuid();
    char gbuf[4096], owner[64];
    struct group gr, *grp = NULL;
    if (st->st_uid != 0 && st->st_uid != me) {
        owner_name(st->st_uid, owner, sizeof(owner));
        snprintf(buf, len, "is owned by uid %u%s: a shared store must be owned by root or by "
                 "you (uid %u)", (unsigned)st->st_uid, owner, (unsigned)me);
    } else if (st->st_mode & S_IWOTH) {
        snprintf(buf, len, "is world-writable, with mode %04o: a shared store is writable by "
                 "group " FS_GROUP_NAME " only (chmod 2770)", (unsigned)(st->st_mode & 07777));
    } else if (getgrnam_r(FS_GROUP_NAME, &gr, gbuf, sizeof(gbuf), &grp) != 0 || !grp) {
        snprintf(buf, len, "is group-writable but this host has no group " FS_GROUP_NAME
                 " (tools/quickstart, run as root, creates it)");
    } else if (st->st_gid != grp->gr_gid) {
        struct group g2, *g2p = NULL;
        char b2[4096];
        snprintf(buf, len, "is group-writable by group %s (gid %u), not " FS_GROUP_NAME
                 " (gid %u): chgrp " FS_GROUP_NAME " it, or make it private (chmod 0700)",
                 getgrgid_r(st->st_gid, &g2, b2, sizeof(b2), &g2p) == 0 && g2p ? g2.gr_name : "?",
                 (unsigned)st->st_gid, (unsigned)grp->gr_gid);
    } else if (!(st->st_mode & S_ISGID)) {
        snprintf(buf, len, "has no setgid bit (mode %04o): files made in it would not get group "
                 FS_GROUP_NAME " (chmod 2770)", (unsigned)(st->st_mode & 07777));
    } else if (me != 0 && !in_group(grp->gr_gid)) {
        snprintf(buf, len, "is shared by group " FS_GROUP_NAME ", which you (uid %u) are not in "
                 "(usermod -aG " FS_GROUP_NAME ", then log in again)", (unsigned)me);
    } else {
        return NULL;
    }
    return buf;
}

int fs_dir_check(int dfd, const char *path, unsigned policy, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(dfd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    uid_t me = geteuid();
    char why[512];
    if (FS_DIR_POLICY(policy) == FS_DIR_GROUP) {
        if (!group_fault(&st, why, sizeof(why)))
            return 0;
        snprintf(err, errlen, "%s %s", path, why);
        return -EPERM;
    }
    if (st.st_uid == me && !(st.st_mode & (S_IWGRP | S_IWOTH)))
        return 0;
    char owner[64];
    owner_name(st.st_uid, owner, sizeof(owner));
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
