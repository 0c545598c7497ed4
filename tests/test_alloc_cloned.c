/* test_alloc_cloned.c - the warning about a MAC prefix derived from a
 * locally administered NIC MAC (a VM cloned from an image: every clone
 * derives the same prefix; issue 18). The NIC is a fake sysfs tree, as
 * the host's own NIC cannot be chosen by a test. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "tests/testutil.h"

static char dir[256];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "cloned"), 0);
}

static void teardown(void)
{
    tu_rmtree(dir);
}

TestSuite(alloc_cloned, .init = setup, .fini = teardown, .timeout = 30);

/* A fake ROOT/class/net/NAME with address and a device link. */
static void fake_nic(const char *root, const char *name, const char *mac)
{
    char p[600];
    snprintf(p, sizeof(p), "%s", root);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/class", root);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/class/net", root);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/class/net/%s", root, name);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/class/net/%s/device", root, name);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/class/net/%s/address", root, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fprintf(f, "%s\n", mac);
    fclose(f);
}

/* Run fn with stderr going to a file; what it wrote comes back in out. */
static void capture_stderr(void (*fn)(const char *root), const char *root, char *out, size_t n)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(2);
    cr_assert(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    fn(root);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    FILE *f = fopen(path, "r");
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    fclose(f);
}

static char pfx[32];
static const char *from;

static void derive(const char *root)
{
    char err[256];
    unsetenv(ALLOC_MAC_PREFIX_ENV);
    cr_assert_eq(alloc_mac_default_prefix(root, pfx, sizeof(pfx), &from, err, sizeof(err)), 0,
                 "%s", err);
}

Test(alloc_cloned, locally_administered_nic_warns_once)
{
    char root[300], out[2048];
    snprintf(root, sizeof(root), "%s/sys", dir);
    fake_nic(root, "eth0", "02:fc:00:00:00:01"); /* what this CI host has */
    capture_stderr(derive, root, out, sizeof(out));
    cr_assert_str_eq(pfx, "02:00:00:01:");
    cr_assert_str_eq(from, ALLOC_MAC_FROM_LOCAL);
    cr_assert(strstr(out, "warning") && strstr(out, "02:00:00:01:") && strstr(out, "eth0") &&
                  strstr(out, "02:fc:00:00:00:01") && strstr(out, "cloned") &&
                  strstr(out, "--store etcd://") && strstr(out, "mac_prefix"),
              "warning: %s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
    capture_stderr(derive, root, out, sizeof(out));
    cr_assert_str_eq(out, "", "warned a second time: %s", out);
    cr_assert_str_eq(from, ALLOC_MAC_FROM_LOCAL, "still said in from");
}

Test(alloc_cloned, burnt_in_nic_does_not_warn)
{
    char root[300], out[2048];
    snprintf(root, sizeof(root), "%s/sys", dir);
    fake_nic(root, "eno1", "a4:bf:01:12:34:56");
    capture_stderr(derive, root, out, sizeof(out));
    cr_assert_str_eq(pfx, "a6:12:34:56:");
    cr_assert_str_eq(from, ALLOC_MAC_FROM_NIC);
    cr_assert_str_eq(out, "", "%s", out);
}

static void alloc_through_store(const char *root)
{
    char err[256], sdir[300], mac[18];
    snprintf(sdir, sizeof(sdir), "%s/state", dir);
    unsetenv(ALLOC_MAC_PREFIX_ENV);
    alloc_opts o = { .sysfs_root = root };
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, sdir, &o, err, sizeof(err)), 0, "%s", err);
    alloc_owner ow;
    cr_assert_eq(alloc_owner_init(&ow, "r/vm", getpid(), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_mac(s, &ow, 0, NULL, 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(strncmp(mac, "02:00:00:01:", 12), 0, "%s", mac);
    alloc_store_close(s);
}

Test(alloc_cloned, a_derived_mac_of_the_store_warns)
{
    char root[300], out[2048];
    snprintf(root, sizeof(root), "%s/sys", dir);
    fake_nic(root, "eth0", "02:fc:00:00:00:01");
    capture_stderr(alloc_through_store, root, out, sizeof(out));
    cr_assert(strstr(out, "locally administered"), "no warning from alloc_mac: '%s'", out);
}
