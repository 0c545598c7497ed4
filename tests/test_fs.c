/* test_fs.c - durable file writes, tails and line appends. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "testutil.h"

static char dir[256];

static void setup(void) { cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "fs"), 0); }
static void teardown(void) { tu_rmtree(dir); }

TestSuite(fsutil, .init = setup, .fini = teardown);

Test(fsutil, atomic_write_replaces_whole_file)
{
    char path[300], err[256];
    snprintf(path, sizeof(path), "%s/a.json", dir);
    cr_assert_eq(fs_write_atomic(path, "first", 5, 0600, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(fs_write_atomic(path, "second!", 7, 0600, err, sizeof(err)), 0, "%s", err);
    size_t n;
    char *s = fs_read_file(path, 1 << 20, &n);
    cr_assert_str_eq(s, "second!");
    cr_assert_eq(n, 7);
    free(s);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(fsutil, failed_write_keeps_old_content)
{
    /* A file size limit makes write(2) fail like a full disk does. */
    char path[300], err[256];
    snprintf(path, sizeof(path), "%s/b.json", dir);
    cr_assert_eq(fs_write_atomic(path, "old", 3, 0600, err, sizeof(err)), 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { 1024, 1024 };
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    char big[8192];
    memset(big, 'x', sizeof(big));
    int rc = fs_write_atomic(path, big, sizeof(big), 0600, err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, "b.json"), "%s", err);
    char *s = fs_read_file(path, 1 << 20, NULL);
    cr_assert_str_eq(s, "old");
    free(s);
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    cr_assert_neq(access(tmp, F_OK), 0, "temp file left behind");
}

Test(fsutil, mkdir_p_tightens_mode)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/x/y/z", dir);
    cr_assert_eq(fs_mkdir_p(path, 0700, 1), 0);
    chmod(path, 0755);
    cr_assert_eq(fs_mkdir_p(path, 0700, 1), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
}

Test(fsutil, read_file_limits_size)
{
    char path[300], err[256];
    snprintf(path, sizeof(path), "%s/big", dir);
    char big[10000];
    memset(big, 'y', sizeof(big));
    cr_assert_eq(fs_write_atomic(path, big, sizeof(big), 0600, err, sizeof(err)), 0);
    errno = 0;
    cr_assert_null(fs_read_file(path, 100, NULL));
    cr_assert_eq(errno, EFBIG);
    cr_assert_null(fs_read_file("/nonexistent/file", 100, NULL));
    cr_assert_eq(errno, ENOENT);
}

Test(fsutil, tail_starts_at_a_line)
{
    char path[300], err[256];
    snprintf(path, sizeof(path), "%s/log", dir);
    const char *text = "line one\nline two\nline three\n";
    cr_assert_eq(fs_write_atomic(path, text, strlen(text), 0600, err, sizeof(err)), 0);
    char *t = fs_tail(path, 16);
    cr_assert_str_eq(t, "line three\n");
    free(t);
    t = fs_tail("/nonexistent", 16);
    cr_assert_str_eq(t, "");
    free(t);
}

Test(fsutil, append_line_is_one_write)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/ev.jsonl", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fs_append_line(fd, "{\"a\":1}", 7), 0);
    cr_assert_eq(fs_append_line(fd, "{\"b\":2}", 7), 0);
    close(fd);
    char *s = fs_read_file(path, 1024, NULL);
    cr_assert_str_eq(s, "{\"a\":1}\n{\"b\":2}\n");
    free(s);
}

/* dir/NAME with owner, group and mode; checked with policy. */
static int check(const char *name, uid_t uid, gid_t gid, mode_t mode, unsigned policy, char *err,
                 size_t errlen)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    cr_assert_eq(mkdir(p, 0700), 0, "%s", p);
    cr_assert_eq(chown(p, uid, gid), 0);
    cr_assert_eq(chmod(p, mode), 0);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    if (policy == FS_DIR_GROUP)
        cr_assert_eq(fs_dir_wants_group(fd), (mode & (S_IWGRP | S_ISGID)) != 0);
    int rc = fs_dir_check(fd, p, policy, err, errlen);
    close(fd);
    return rc;
}

/* FS_DIR_GROUP: root's (or mine), group qfleet, setgid, never o+w. */
Test(fsutil, group_dir_policy)
{
    if (geteuid() != 0)
        cr_skip("makes directories of root and of another user, group qfleet: run as root");
    gid_t g = tu_qfleet_gid();
    char err[512];
    cr_assert_eq(check("ok", 0, g, 02770, FS_DIR_GROUP, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(check("ok-private", 0, g, 02770, FS_DIR_PRIVATE, err, sizeof(err)), -EPERM,
                 "a group dir is not private");
    cr_assert_eq(check("private", 0, 0, 0700, FS_DIR_GROUP, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "not " FS_GROUP_NAME), "%s", err);
    cr_assert_eq(check("world", 0, g, 02777, FS_DIR_GROUP, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "is world-writable, with mode 2777"), "%s", err);
    cr_assert_eq(check("nosgid", 0, g, 0770, FS_DIR_GROUP, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "has no setgid bit"), "%s", err);
    cr_assert_eq(check("rootgrp", 0, 0, 02770, FS_DIR_GROUP, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "by group root (gid 0), not " FS_GROUP_NAME), "%s", err);
    cr_assert_eq(check("nobody", 65534, g, 02770, FS_DIR_GROUP, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "is owned by uid 65534"), "%s", err);
    cr_assert(strstr(err, "must be owned by root or by you"), "%s", err);
}
