/* fs.h - the few file operations whose crash behaviour matters. */
#ifndef QF_FSUTIL_H
#define QF_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with mode for every created component; an existing final
 * directory is tightened to mode when tighten is set and it is ours (one of
 * another user is -EPERM, and left as it is). 0 or -errno. */
int fs_mkdir_p(const char *path, mode_t mode, int tighten);

/* A directory qfleet writes in (state dir, run dir, status dir).
 *
 * Like OpenSSH's StrictModes and systemd's RuntimeDirectory: the directory
 * must be owned by the effective user and not writable by group or others,
 * so nobody else can plant a file or a symlink in it. Every file qfleet
 * creates in one is then opened relative to the directory's fd with
 * O_NOFOLLOW (fs_openat), temporaries also with O_EXCL: no name qfleet
 * opens can be redirected elsewhere.
 *
 * FS_DIR_GROUP is the host-wide store shared by the users of one host
 * (issue 19): owned by root or the effective user, its group the group
 * FS_GROUP_NAME (looked up by name), never writable by others, with the
 * setgid bit so every file made in it gets that group; group write is
 * what it is for. A caller who is not root must be in the group. Members
 * of the group trust each other with what is in it. FS_DIR_TIGHTEN may be
 * or'ed into either policy. */
#define FS_GROUP_NAME "qfleet"
enum {
    FS_DIR_PRIVATE = 0,      /* owned by geteuid(), no group/other write */
    FS_DIR_GROUP = 1,        /* root's or mine, group qfleet, setgid, not o+w */
    FS_DIR_TIGHTEN = 1 << 8, /* an existing dir of ours gets mode (fchmod) */
};
#define FS_DIR_POLICY(p) ((p) & 0xffu)

/* 1 if the directory open as dfd asks to be a group dir (group-writable or
 * setgid): the lease store then checks it with FS_DIR_GROUP, else with
 * FS_DIR_PRIVATE. 0 if not, -errno if it cannot be stat'ed. */
int fs_dir_wants_group(int dfd);

/* Check the directory open as dfd (path only names it in err). 0, or
 * -EPERM with a reason naming the owner and mode in err. */
int fs_dir_check(int dfd, const char *path, unsigned policy, char *err, size_t errlen);

/* mkdir -p path (created components get mode), open it and check it with
 * fs_dir_check. Returns an O_DIRECTORY|O_CLOEXEC fd, or -errno with a
 * reason in err ("PATH: ..."). */
int fs_dir_open(const char *path, mode_t mode, unsigned policy, char *err, size_t errlen);

/* openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode): a symlink at
 * name is -ELOOP, never followed. Only a plain file or a directory that
 * flags ask for (O_DIRECTORY) is accepted: anything else is -EINVAL. Returns
 * the fd or -errno. */
int fs_openat(int dfd, const char *name, int flags, mode_t mode);

/* fs_openat for a caller that holds a path: opens path's directory, checks
 * it with fs_dir_check(FS_DIR_PRIVATE) and opens the last component. Returns
 * the fd or -errno with a reason in err ("PATH: ..."). */
int fs_open_in(const char *path, int flags, mode_t mode, char *err, size_t errlen);

/* The text of an fs_openat (or O_NOFOLLOW open) error: strerror, but
 * -ELOOP reads as a symlink and -EINVAL as not a regular file. */
const char *fs_strerror(int negerrno);

/* write(2) all of buf, retrying short writes and EINTR. 0 or -errno. */
int fs_write_all(int fd, const void *buf, size_t len);

/* Replace path with data so that readers see the old or the new content,
 * never a mix, even across kill -9 or power loss: write a temp file in the
 * same directory (created O_EXCL|O_NOFOLLOW: a planted one is refused, never
 * followed), fsync, rename, fsync the directory. A failed write (full
 * disk) leaves the old file untouched. 0 or -errno, reason in err. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    char *err, size_t errlen);

/* Read a whole file (NUL-terminated, *len without the NUL). NULL with errno
 * set on failure; files over max bytes fail with EFBIG. */
char *fs_read_file(const char *path, size_t max, size_t *len);

/* Append one line (a '\n' is added) with a single write(2) on an O_APPEND
 * fd, so concurrent writers never interleave within a line. */
int fs_append_line(int fd, const char *line, size_t len);

/* Last max bytes of a file, starting at a line boundary where possible;
 * "" if missing or a symlink. Caller frees. */
char *fs_tail(const char *path, size_t max);

/* fs_tail as text safe to show on a terminal: what a guest wrote (escape
 * sequences such as ESC [6n, other control bytes, invalid UTF-8) becomes
 * "\xNN"; newline and tab stay, a CR before LF is dropped. Caller frees. */
char *fs_tail_text(const char *path, size_t max);

#endif
