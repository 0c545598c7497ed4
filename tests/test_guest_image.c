/* test_guest_image.c - tools/guest-verify on the real initrd of tools/mkguest:
 * the built image must be self-contained, and the verifier must notice, by
 * name, a library, a symlink target or the ELF loader missing from an
 * unpacked copy of it.
 *
 * Every file removed below also exists on a host that ran tools/setup (which
 * installs qemu-guest-agent and with it qemu-ga's libraries; glibc's loader;
 * this source tree). So these tests fail if the verifier ever looks at the
 * host's files instead of the image's: the class of bug behind
 * "mkguest: error: busybox has no init applet" on hosts without busybox. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define VERIFY QF_SOURCE_DIR "/tools/guest-verify"

static char tmp[256];      /* per test: the unpacked image lives in tmp/root */
static char root[300];
static char out[16384];    /* combined stdout+stderr of the last run() */

static void cleanup(void)
{
    if (tmp[0])
        tu_rmtree(tmp);
    tmp[0] = '\0';
}

TestSuite(guest_image, .fini = cleanup, .timeout = 300);

/* Run argv with stdout and stderr captured into out; its exit status. */
static int run(char *const argv[])
{
    int p[2];
    cr_assert(pipe(p) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(126);
        close(p[0]);
        close(p[1]);
        execvp(argv[0], argv);
        dprintf(2, "execvp %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(p[0], out + used, sizeof out - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == sizeof out - 1)
            break;
    }
    out[used] = '\0';
    close(p[0]);
    int st = tu_wait_exit(pid, 120000);
    cr_assert(st >= 0, "%s did not finish in 120 s: %s", argv[0], out);
    return st;
}

static const char *initrd(void)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/initrd.img", tu_guest_dir());
    cr_assert(access(path, R_OK) == 0, "%s missing: run tools/mkguest (QFLEET_GUEST_DIR=%s)", path,
              tu_guest_dir());
    return path;
}

static int verify(const char *what)
{
    char *argv[] = { VERIFY, (char *)what, NULL };
    return run(argv);
}

/* Unpack the built initrd into tmp/root and check that copy passes, so a
 * failure after a change is that change's doing. */
static void unpack(void)
{
    cr_assert(tu_mkdtemp(tmp, sizeof tmp, "guestimg") == 0, "mkdtemp failed");
    snprintf(root, sizeof root, "%s/root", tmp);
    char *argv[] = { VERIFY, "--unpack", (char *)initrd(), root, NULL };
    cr_assert_eq(run(argv), 0, "guest-verify --unpack failed: %s", out);
    cr_assert_eq(verify(root), 0, "the unpacked image fails before any change: %s", out);
}

/* path inside the unpacked root; it must exist (as a file or a link). */
static const char *in_root(const char *path)
{
    static char p[600];
    snprintf(p, sizeof p, "%s%s", root, path);
    return p;
}

static void remove_in_root(const char *path)
{
    cr_assert(unlink(in_root(path)) == 0, "unlink %s: %s", in_root(path), strerror(errno));
}

/* Verify the changed root: it must fail (exit 1); its report stays in out. */
static void assert_fails(void)
{
    int st = verify(root);
    cr_assert_eq(st, 1, "guest-verify should exit 1, got %d; output:\n%s", st, out);
}

static void assert_reported(const char *line)
{
    cr_assert(strstr(out, line), "guest-verify output lacks \"%s\":\n%s", line, out);
}

/* The first DT_NEEDED library of the image's qemu-ga, read with readelf. */
static void first_needed(const char *elf, char *lib, size_t liblen)
{
    char *argv[] = { "readelf", "-dW", (char *)elf, NULL };
    cr_assert_eq(run(argv), 0, "readelf -dW %s failed: %s", elf, out);
    const char *p = strstr(out, "(NEEDED)");
    cr_assert(p, "%s has no DT_NEEDED entry: %s", elf, out);
    p = strchr(p, '[');
    const char *e = p ? strchr(p, ']') : NULL;
    cr_assert(p && e && (size_t)(e - p - 1) < liblen, "cannot parse readelf output: %s", out);
    snprintf(lib, liblen, "%.*s", (int)(e - p - 1), p + 1);
}

Test(guest_image, built_initrd_is_self_contained)
{
    int st = verify(initrd());
    cr_assert_eq(st, 0, "the built guest is not self-contained (exit %d):\n%s", st, out);
    cr_assert(strstr(out, "is self-contained"), "%s", out);
}

Test(guest_image, missing_library_of_qemu_ga_is_named)
{
    char lib[128], path[300], msg[300];
    unpack();
    first_needed(in_root("/usr/sbin/qemu-ga"), lib, sizeof lib);
    /* mkguest keeps each library in its package's directory. */
    snprintf(path, sizeof path, "/lib/x86_64-linux-gnu/%s", lib);
    if (access(in_root(path), F_OK) != 0)
        snprintf(path, sizeof path, "/usr/lib/x86_64-linux-gnu/%s", lib);
    remove_in_root(path);
    assert_fails();
    snprintf(msg, sizeof msg, "/usr/sbin/qemu-ga: needs %s, found in none of", lib);
    assert_reported(msg);
}

/* The bug of issue 12: the applet links point at /bin/busybox. */
Test(guest_image, applet_links_without_busybox_are_named)
{
    unpack();
    remove_in_root("/bin/busybox");
    assert_fails();
    assert_reported("/sbin/init: symlink to /bin/busybox: missing /bin/busybox");
    assert_reported("/bin/sh: symlink to /bin/busybox: missing /bin/busybox");
    /* /init and the guest's scripts start with #!/bin/sh */
    assert_reported("/init: script interpreter /bin/sh: missing /bin/busybox");
}

/* An absolute link is resolved in the image even where the host has the
 * target: this test's own verifier script exists on the host, not in the
 * guest. */
Test(guest_image, symlink_to_a_host_only_file_is_named)
{
    unpack();
    remove_in_root("/sbin/init");
    cr_assert(symlink(VERIFY, in_root("/sbin/init")) == 0, "symlink: %s", strerror(errno));
    assert_fails();
    assert_reported("/sbin/init: symlink to " VERIFY ": missing /");
}

Test(guest_image, missing_elf_loader_is_named)
{
    unpack();
    remove_in_root("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    assert_fails();
    assert_reported("/usr/sbin/qemu-ga: ELF interpreter /lib64/ld-linux-x86-64.so.2: "
                    "missing /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    assert_reported("/lib64/ld-linux-x86-64.so.2: symlink to ../lib/x86_64-linux-gnu/");
}
