/* fs.h - the few file operations whose crash behaviour matters. */
#ifndef QF_FSUTIL_H
#define QF_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with mode for every created component; an existing final
 * directory is tightened to mode when tighten is set. 0 or -errno. */
int fs_mkdir_p(const char *path, mode_t mode, int tighten);

/* write(2) all of buf, retrying short writes and EINTR. 0 or -errno. */
int fs_write_all(int fd, const void *buf, size_t len);

/* Replace path with data so that readers see the old or the new content,
 * never a mix, even across kill -9 or power loss: write a temp file in the
 * same directory, fsync, rename, fsync the directory. A failed write (full
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
 * "" if missing. Caller frees. */
char *fs_tail(const char *path, size_t max);

#endif
