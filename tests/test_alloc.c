/* test_alloc.c - the lease store, MACs, VNC displays, ports, CPUs and the
 * leases/alloc/free commands. Everything runs against a fresh state dir in
 * a temp dir; processes are real (fork), ports are real (bind). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "src/alloc/alloc.h"
#include "tests/testutil.h"

static char dir[512];
static char err[512];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "alloc"), 0);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(alloc, .init = setup, .fini = teardown);

static alloc_store *open_opts(const alloc_opts *opts)
{
    alloc_store *s = NULL;
    int rc = alloc_store_open(&s, dir, opts, err, sizeof(err));
    cr_assert_eq(rc, 0, "open: %s", err);
    return s;
}

static alloc_store *open_dir(void) { return open_opts(NULL); }

static alloc_owner owner(const char *name, pid_t pid)
{
    alloc_owner o;
    cr_assert_eq(alloc_owner_init(&o, name, pid, err, sizeof(err)), 0, "%s", err);
    return o;
}

static size_t count(alloc_store *s)
{
    alloc_lease *v;
    size_t n;
    cr_assert_eq(alloc_list(s, &v, &n, err, sizeof(err)), 0, "list: %s", err);
    free(v);
    return n;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* --- store ---------------------------------------------------------- */

Test(alloc, state_dir_created_0700)
{
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/a/b/state", dir);
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, sub, NULL, err, sizeof(err)), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(sub, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_str_eq(alloc_store_dir(s), sub);
    alloc_store_close(s);
}

Test(alloc, state_dir_default_env)
{
    char out[600];
    setenv("QFLEET_STATE_DIR", "/x/y", 1);
    cr_assert_eq(alloc_state_dir_default(out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/x/y");
    unsetenv("QFLEET_STATE_DIR");
    cr_assert_eq(alloc_state_dir_default(out, sizeof(out)), 0);
    if (geteuid() == 0)
        cr_assert_str_eq(out, "/var/lib/qfleet");
}

Test(alloc, take_lookup_release)
{
    alloc_store *s = open_dir();
    alloc_owner a = owner("run/a", getpid()), b = owner("run/b", getpid());
    cr_assert_eq(alloc_take(s, &a, "pci", "0000:00:04.0", 0, NULL, err, sizeof(err)), 0, "%s", err);
    /* taking what one holds is fine, another owner gets -EEXIST naming a */
    cr_assert_eq(alloc_take(s, &a, "pci", "0000:00:04.0", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &b, "pci", "0000:00:04.0", 0, NULL, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "run/a"), "%s", err);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "pci", "0000:00:04.0", &l, err, sizeof(err)), 0);
    cr_assert_str_eq(l.owner, "run/a");
    cr_assert_eq(l.pid, getpid());
    cr_assert_eq(count(s), 1);
    cr_assert_eq(alloc_release(s, "run/b", "pci", "0000:00:04.0", err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_release(s, "run/a", "pci", "0000:00:04.0", err, sizeof(err)), 0);
    cr_assert_eq(alloc_lookup(s, "pci", "0000:00:04.0", &l, err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_take(s, &a, "BAD KIND", "x", 0, NULL, err, sizeof(err)), -EINVAL);
    alloc_store_close(s);
}

Test(alloc, owner_names)
{
    alloc_owner o;
    cr_assert_eq(alloc_owner_init(&o, "", 0, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_owner_init(&o, "a b", 0, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_owner_init(&o, "/a", 0, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_owner_init(&o, "a//b", 0, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_owner_init(&o, "run-1/vm0", 0, err, sizeof(err)), 0);
    cr_assert_eq(o.pid, 0);
    cr_assert_eq(alloc_owner_init(&o, "x", getpid(), err, sizeof(err)), 0);
    unsigned long long st;
    cr_assert_eq(alloc_proc_start(getpid(), &st), 0);
    cr_assert_eq(o.start, st);
}

/* A child takes a lease and exits: the next operation reclaims it, also
 * while the child is still an unreaped zombie. */
Test(alloc, dead_owner_reclaimed)
{
    alloc_store *s = open_dir();
    alloc_owner me = owner("keep/me", getpid()), hold = owner("keep/hold", 0);
    cr_assert_eq(alloc_take(s, &me, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &hold, "cpu", "2", 0, NULL, err, sizeof(err)), 0);
    pid_t pid = fork();
    if (pid == 0) {
        alloc_store *c;
        alloc_owner o;
        if (alloc_store_open(&c, dir, NULL, NULL, 0) || alloc_owner_init(&o, "child", getpid(), NULL, 0) ||
            alloc_take(c, &o, "cpu", "3", 0, NULL, NULL, 0))
            _exit(1);
        _exit(0);
    }
    /* Wait for the exit without reaping: a zombie holds nothing. */
    siginfo_t si;
    cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    cr_assert_eq(si.si_status, 0);
    unsigned long long st;
    cr_assert_eq(alloc_proc_start(pid, &st), -ESRCH);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "cpu", "3", &l, err, sizeof(err)), -ENOENT);
    cr_assert_eq(count(s), 2);
    waitpid(pid, NULL, 0);
    alloc_store_close(s);
}

Test(alloc, reused_pid_reclaimed)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("reuse", getpid());
    o.start += 1; /* as if our pid had belonged to an earlier process */
    cr_assert_eq(alloc_take(s, &o, "port", "1234", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(count(s), 0);
    alloc_store_close(s);
}

Test(alloc, hold_and_release_owner_tree)
{
    alloc_store *s = open_dir();
    alloc_owner vm = owner("r1/vm", 0), vm2 = owner("r1/vm2", 0), other = owner("r2/vm", 0);
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &vm, 0, "02:00:00:", 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_mac(s, &vm, 1, "02:00:00:", 0, mac, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &vm, "cpu", "5", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &vm2, "cpu", "6", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &other, "cpu", "7", 0, NULL, err, sizeof(err)), 0);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "cpu", "5", &l, err, sizeof(err)), 0);
    cr_assert(l.flags & ALLOC_HOLD);
    cr_assert_eq(l.pid, 0);
    /* "r1/vm" covers r1/vm/nic0 and r1/vm/nic1, not r1/vm2 */
    cr_assert_eq(alloc_release_owner(s, "r1/vm", err, sizeof(err)), 3);
    cr_assert_eq(count(s), 2);
    cr_assert_eq(alloc_release_owner(s, "r1", err, sizeof(err)), 1);
    cr_assert_eq(alloc_release_owner(s, "r1", err, sizeof(err)), 0);
    cr_assert_eq(count(s), 1);
    alloc_store_close(s);
}

Test(alloc, adopt_moves_leases_to_pid)
{
    alloc_store *s = open_dir();
    alloc_owner vm = owner("run/vm", getpid());
    cr_assert_eq(alloc_take(s, &vm, "cpu", "4", 0, NULL, err, sizeof(err)), 0);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        (void)!read(go[0], &c, 1); /* live until the parent closes the pipe */
        _exit(0);
    }
    close(go[0]);
    cr_assert_eq(alloc_adopt(s, "run", pid, err, sizeof(err)), 1, "%s", err);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "cpu", "4", &l, err, sizeof(err)), 0);
    cr_assert_eq(l.pid, pid);
    close(go[1]);
    waitpid(pid, NULL, 0);
    cr_assert_eq(count(s), 0);
    alloc_store_close(s);
}

Test(alloc, batch_commit_and_abort)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("batch", getpid()), x = owner("x", getpid());
    cr_assert_eq(alloc_take(s, &x, "cpu", "9", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_begin(s, err, sizeof(err)), 0);
    cr_assert_eq(alloc_begin(s, err, sizeof(err)), -EBUSY);
    cr_assert_eq(alloc_take(s, &o, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &o, "cpu", "2", 0, NULL, err, sizeof(err)), 0);
    alloc_abort(s);
    cr_assert_eq(count(s), 1);

    cr_assert_eq(alloc_begin(s, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &o, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    /* a failed call inside a batch changes nothing: the batch goes on */
    int cpus[] = { 3, 9 };
    cr_assert_eq(alloc_cpus(s, &o, cpus, 2, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "CPU 9 is held by x"), "%s", err);
    cr_assert_eq(alloc_take(s, &o, "cpu", "2", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_commit(s, err, sizeof(err)), 0);
    cr_assert_eq(alloc_commit(s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(count(s), 3);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "cpu", "3", &l, err, sizeof(err)), -ENOENT);
    alloc_store_close(s);
}

Test(alloc, leftover_tmp_and_corrupt_table)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("t", 0);
    cr_assert_eq(alloc_take(s, &o, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    char tmp[600], table[600];
    snprintf(tmp, sizeof(tmp), "%s/leases.tmp", dir);
    snprintf(table, sizeof(table), "%s/leases.json", dir);
    /* a writer killed before its rename leaves a partial tmp file */
    spit(tmp, "{\"version\":1,\"leases\":[{\"ki");
    cr_assert_eq(count(s), 1);
    cr_assert_eq(access(tmp, F_OK), -1, "leftover tmp file was not removed");
    /* a damaged table is refused, not silently emptied */
    char *good = tu_slurp(table);
    spit(table, "{\"version\":1,\"leases\":[{\"kind\"");
    alloc_lease *v;
    size_t n;
    cr_assert_lt(alloc_list(s, &v, &n, err, sizeof(err)), 0);
    cr_assert(strstr(err, "unreadable"), "%s", err);
    spit(table, good);
    free(good);
    cr_assert_eq(count(s), 1);
    alloc_store_close(s);
}

/* A table left unreadable by a power cut is from before this boot and held
 * nothing durable (tables with hold leases are synced): set aside, start
 * afresh. */
Test(alloc, mangled_table_from_before_boot_set_aside)
{
    alloc_store *s = open_dir();
    char table[600], bad[600];
    snprintf(table, sizeof(table), "%s/leases.json", dir);
    snprintf(bad, sizeof(bad), "%s/leases.json.bad", dir);
    spit(table, "{\"version\":1,\"lea");
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    cr_assert_eq(utimensat(AT_FDCWD, table, old, 0), 0);
    alloc_owner o = owner("after", getpid());
    cr_assert_eq(alloc_take(s, &o, "cpu", "1", 0, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(access(bad, F_OK), 0, "the mangled table was not kept");
    cr_assert_eq(count(s), 1);
    alloc_store_close(s);
}

Test(alloc, other_boot_drops_process_leases)
{
    alloc_store *s = open_dir();
    alloc_owner live = owner("live", getpid()), hold = owner("hold", 0);
    cr_assert_eq(alloc_take(s, &live, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    cr_assert_eq(alloc_take(s, &hold, "cpu", "2", 0, NULL, err, sizeof(err)), 0);
    char table[600];
    snprintf(table, sizeof(table), "%s/leases.json", dir);
    char *text = tu_slurp(table), *b = strstr(text, "\"boot_id\":\"");
    cr_assert(b);
    b[11] = b[11] == '0' ? '1' : '0'; /* another boot: every pid is stale */
    spit(table, text);
    free(text);
    cr_assert_eq(count(s), 1);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "cpu", "2", &l, err, sizeof(err)), 0);
    alloc_store_close(s);
}

/* A full disk (here: RLIMIT_FSIZE) fails the commit cleanly and leaves the
 * old table as it was. */
Test(alloc, write_error_keeps_old_table)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("before", 0);
    cr_assert_eq(alloc_take(s, &o, "cpu", "1", 0, NULL, err, sizeof(err)), 0);
    char table[600];
    snprintf(table, sizeof(table), "%s/leases.json", dir);
    char *before = tu_slurp(table);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { 200, 200 };
        setrlimit(RLIMIT_FSIZE, &rl);
        alloc_store *c;
        alloc_owner w;
        char e[512] = "";
        if (alloc_store_open(&c, dir, NULL, e, sizeof(e)) || alloc_owner_init(&w, "w", 0, e, sizeof(e)))
            _exit(3);
        alloc_begin(c, e, sizeof(e));
        for (int i = 10; i < 40; i++) {
            char v[16];
            snprintf(v, sizeof(v), "%d", i);
            alloc_take(c, &w, "cpu", v, 0, NULL, e, sizeof(e));
        }
        int rc = alloc_commit(c, e, sizeof(e));
        _exit(rc == -EFBIG && strstr(e, "left unchanged") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "commit did not fail cleanly");
    char *after = tu_slurp(table);
    cr_assert_str_eq(after, before);
    free(after);
    free(before);
    cr_assert_eq(count(s), 1);
    alloc_store_close(s);
}

Test(alloc, forked_handle_refused)
{
    alloc_store *s = open_dir();
    pid_t pid = fork();
    if (pid == 0) {
        alloc_owner o;
        alloc_owner_init(&o, "f", 0, NULL, 0);
        _exit(alloc_take(s, &o, "cpu", "1", 0, NULL, NULL, 0) == -ECHILD ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
    alloc_store_close(s);
}

/* --- MACs ----------------------------------------------------------- */

static void mkfile(const char *root, const char *rel, const char *text)
{
    char path[1024], *p;
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (p = path + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    if (text)
        spit(path, text);
    else
        mkdir(path, 0755);
}

Test(alloc, mac_host_prefix)
{
    char root[600], pfx[32];
    snprintf(root, sizeof(root), "%s/sys", dir);
    mkfile(root, "class/net/lo/address", "00:00:00:00:00:00\n");
    mkfile(root, "class/net/a0/address", "00:00:00:00:00:00\n"); /* all zero: skipped */
    mkfile(root, "class/net/b1/address", "01:1b:21:3c:4d:5e\n");
    cr_assert_eq(alloc_mac_host_prefix(root, pfx, sizeof(pfx), err, sizeof(err)), 0, "%s", err);
    /* multicast bit cleared, locally administered bit set, last 3 octets */
    cr_assert_str_eq(pfx, "02:3c:4d:5e:");
    /* a NIC backed by a device wins over virtual ones, whatever its name */
    mkfile(root, "class/net/z9/address", "a4:bf:01:12:34:56\n");
    mkfile(root, "class/net/z9/device", NULL);
    cr_assert_eq(alloc_mac_host_prefix(root, pfx, sizeof(pfx), err, sizeof(err)), 0);
    cr_assert_str_eq(pfx, "a6:12:34:56:");

    /* the store derives it when the cfg gives no prefix */
    alloc_opts opts = { .sysfs_root = root };
    alloc_store *s = open_opts(&opts);
    alloc_owner o = owner("p/vm", getpid());
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &o, 0, NULL, 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(strncmp(mac, "a6:12:34:56:", 12), 0, "%s", mac);
    alloc_store_close(s);

    char empty[600];
    snprintf(empty, sizeof(empty), "%s/nosys", dir);
    mkfile(empty, "class/net/lo/address", "00:00:00:00:00:00\n");
    cr_assert_eq(alloc_mac_host_prefix(empty, pfx, sizeof(pfx), err, sizeof(err)), -ENODEV);
    cr_assert(strstr(err, "mac_prefix"), "%s", err);
}

Test(alloc, mac_same_owner_nic_same_mac)
{
    alloc_store *s = open_dir();
    alloc_owner a = owner("r/vmA", getpid()), b = owner("r/vmB", getpid());
    char m0[MAC_STRLEN], m0b[MAC_STRLEN], m1[MAC_STRLEN], mb[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &a, 0, "02:aa:", 0, m0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_mac(s, &a, 0, "02:aa:", 0, m0b, err, sizeof(err)), 0);
    cr_assert_str_eq(m0, m0b);
    cr_assert_eq(alloc_mac(s, &a, 1, "02:aa:", 0, m1, err, sizeof(err)), 0);
    cr_assert_eq(alloc_mac(s, &b, 0, "02:aa:", 0, mb, err, sizeof(err)), 0);
    cr_assert_str_neq(m0, m1);
    cr_assert_str_neq(m0, mb);
    cr_assert_eq(strncmp(m0, "02:aa:", 6), 0);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "mac", m1, &l, err, sizeof(err)), 0);
    cr_assert_str_eq(l.owner, "r/vmA/nic1");
    cr_assert_eq(count(s), 3);
    alloc_store_close(s);
}

Test(alloc, mac_random_bits)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("bits", getpid());
    for (int i = 0; i < 50; i++) {
        char mac[MAC_STRLEN];
        unsigned char m[6];
        cr_assert_eq(alloc_mac(s, &o, i, "", 0, mac, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(mac_parse(mac, m), 0);
        cr_assert_eq(m[0] & 0x01, 0, "multicast %s", mac);
        cr_assert_eq(m[0] & 0x02, 0x02, "not locally administered %s", mac);
    }
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &o, 99, "03:00:", 0, mac, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "multicast"), "%s", err);
    cr_assert_eq(alloc_mac(s, &o, 99, "02:00:00:00:00:00", 0, mac, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_mac(s, &o, 99, "zz:", 0, mac, err, sizeof(err)), -EINVAL);
    alloc_store_close(s);
}

Test(alloc, mac_explicit_clash_names_owner)
{
    alloc_store *s = open_dir();
    alloc_owner a = owner("run1/vmA", getpid()), b = owner("run2/vmB", getpid());
    cr_assert_eq(alloc_reserve_mac(s, &a, 0, "02:00:00:00:00:01", 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &b, 2, "02:00:00:00:00:01", 0, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "run1/vmA/nic0"), "%s", err);
    /* upper case and '-' spell the same MAC */
    cr_assert_eq(alloc_reserve_mac(s, &b, 2, "02-00-00-00-00-01", 0, err, sizeof(err)), -EEXIST);
    /* reserving another MAC for the same NIC replaces the old one */
    cr_assert_eq(alloc_reserve_mac(s, &a, 0, "02:00:00:00:00:0A", 0, err, sizeof(err)), 0);
    cr_assert_eq(count(s), 1);
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &a, 0, NULL, 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(mac, "02:00:00:00:00:0a");
    cr_assert_eq(alloc_reserve_mac(s, &b, 2, "02:00:00:00:00:01", 0, err, sizeof(err)), 0);
    cr_assert_eq(alloc_reserve_mac(s, &b, 2, "01:00:00:00:00:01", 0, err, sizeof(err)), -EINVAL);
    cr_assert_eq(alloc_reserve_mac(s, &b, 2, "02:00:00:00:00", 0, err, sizeof(err)), -EINVAL);
    alloc_store_close(s);
}

/* Migration: source and destination carry one MAC when both say so. */
Test(alloc, mac_shareable)
{
    alloc_store *s = open_dir();
    alloc_owner src = owner("mig/src", getpid()), dst = owner("mig/dst", getpid()),
                third = owner("mig/other", getpid());
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &src, 0, "02:bb:", 0, mac, err, sizeof(err)), 0);
    /* not shareable yet on the source side */
    cr_assert_eq(alloc_reserve_mac(s, &dst, 0, mac, ALLOC_SHARED, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "mig/src/nic0") && strstr(err, "does not share"), "%s", err);
    /* the source marks its own MAC shareable, then the destination joins */
    cr_assert_eq(alloc_reserve_mac(s, &src, 0, mac, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &dst, 0, mac, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(count(s), 2);
    /* an owner that does not ask to share is still refused */
    cr_assert_eq(alloc_reserve_mac(s, &third, 0, mac, 0, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "shareable"), "%s", err);
    /* random allocation never hands out a held MAC, shared or not */
    for (int i = 0; i < 20; i++) {
        char m[MAC_STRLEN];
        cr_assert_eq(alloc_mac(s, &third, i, "02:bb:", 0, m, err, sizeof(err)), 0);
        cr_assert_str_neq(m, mac);
    }
    alloc_store_close(s);
}

Test(alloc, mac_exhausted)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("fill", getpid());
    char seen[256] = { 0 };
    cr_assert_eq(alloc_begin(s, err, sizeof(err)), 0);
    for (int i = 0; i < 256; i++) {
        char mac[MAC_STRLEN];
        unsigned char m[6];
        cr_assert_eq(alloc_mac(s, &o, i, "02:11:22:33:44:", 0, mac, err, sizeof(err)), 0,
                     "nic %d: %s", i, err);
        cr_assert_eq(mac_parse(mac, m), 0);
        cr_assert_eq(seen[m[5]], 0, "%s handed out twice", mac);
        seen[m[5]] = 1;
    }
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_mac(s, &o, 256, "02:11:22:33:44:", 0, mac, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "all 256"), "%s", err);
    cr_assert_eq(alloc_commit(s, err, sizeof(err)), 0, "%s", err);
    /* one freed address is found again, however unlucky the random tries */
    cr_assert_eq(alloc_release_owner(s, "fill/nic77", err, sizeof(err)), 1);
    cr_assert_eq(alloc_mac(s, &o, 300, "02:11:22:33:44:", 0, mac, err, sizeof(err)), 0, "%s", err);
    alloc_store_close(s);
}

/* Issue 19 item 8: the exhausted prefix is named as the cfg writes it
 * ("02:11:22:33:44", not "...44::"); a shared MAC has two holders at most. */
Test(alloc, mac_exhausted_names_prefix_and_shared_has_two_holders)
{
    alloc_store *s = open_dir();
    alloc_owner o = owner("fill", getpid());
    char mac[MAC_STRLEN];
    cr_assert_eq(alloc_begin(s, err, sizeof(err)), 0);
    for (int i = 0; i < 256; i++)
        cr_assert_eq(alloc_mac(s, &o, i, "02:11:22:33:44", 0, mac, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_mac(s, &o, 256, "02:11:22:33:44:", 0, mac, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "prefix 02:11:22:33:44 (all 256 are leased)"), "%s", err);
    cr_assert_null(strstr(err, "::"), "%s", err);
    alloc_abort(s);

    alloc_owner a = owner("mig/a", getpid()), b = owner("mig/b", getpid()),
                c = owner("mig/c", getpid());
    const char *m = "02:bb:00:00:00:01";
    cr_assert_eq(alloc_reserve_mac(s, &a, 0, m, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &b, 0, m, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_reserve_mac(s, &c, 0, m, ALLOC_SHARED, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "mig/a/nic0") && strstr(err, "mig/b/nic0") && strstr(err, "at most 2"),
              "%s", err);
    cr_assert_eq(count(s), 2);
    /* a holder asking again is not a third one */
    cr_assert_eq(alloc_reserve_mac(s, &b, 0, m, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    /* once one leaves, another may join */
    cr_assert_eq(alloc_release_owner(s, "mig/a", err, sizeof(err)), 1);
    cr_assert_eq(alloc_reserve_mac(s, &c, 0, m, ALLOC_SHARED, err, sizeof(err)), 0, "%s", err);
    alloc_store_close(s);
}

/* --- VNC displays and ports ------------------------------------------ */

/* A listening socket on 127.0.0.1:port, as a process outside qfleet. */
static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %d: %s", port, strerror(errno));
    cr_assert_eq(listen(fd, 1), 0);
    return fd;
}

/* First base >= from where ports base..base+n-1 all bind now. */
static int free_run(int from, int to, int n)
{
    for (int b = from; b + n - 1 <= to; b++) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = alloc_port_bindable("127.0.0.1", b + i);
        if (ok)
            return b;
    }
    cr_assert_fail("no run of %d free ports in %d-%d", n, from, to);
    return -1;
}

Test(alloc, vnc_skips_foreign_listener)
{
    /* displays d..d+7 whose VNC ports are free on this host right now */
    int d = free_run(ALLOC_VNC_PORT_BASE + 40, ALLOC_VNC_PORT_BASE + 400, 8) - ALLOC_VNC_PORT_BASE;
    alloc_opts opts = { .vnc_first = d, .vnc_last = d + 7 };
    alloc_store *s = open_opts(&opts);
    int fd = listen_on(ALLOC_VNC_PORT_BASE + d);
    cr_assert_eq(alloc_port_bindable("127.0.0.1", ALLOC_VNC_PORT_BASE + d), 0);
    alloc_owner a = owner("v/a", getpid()), b = owner("v/b", getpid());
    int da, db, again;
    cr_assert_eq(alloc_vnc(s, &a, 0, &da, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(da, d + 1, "display %d taken although a process listens on it", d);
    cr_assert_eq(alloc_vnc(s, &a, 0, &again, err, sizeof(err)), 0);
    cr_assert_eq(again, da, "one display per owner");
    cr_assert_eq(alloc_vnc(s, &b, 0, &db, err, sizeof(err)), 0);
    cr_assert_eq(db, d + 2);
    /* its port is leased too */
    alloc_lease l;
    char v[16];
    snprintf(v, sizeof(v), "%d", ALLOC_VNC_PORT_BASE + da);
    cr_assert_eq(alloc_lookup(s, "port", v, &l, err, sizeof(err)), 0);
    cr_assert_str_eq(l.owner, "v/a");
    /* explicit displays: a clash names the holder, a foreign port is refused */
    alloc_owner c = owner("v/c", getpid());
    cr_assert_eq(alloc_reserve_vnc(s, &c, da, 0, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "v/a"), "%s", err);
    cr_assert_eq(alloc_reserve_vnc(s, &c, d, 0, err, sizeof(err)), -EADDRINUSE);
    cr_assert_eq(alloc_reserve_vnc(s, &c, d + 5, ALLOC_WEBSOCKET, err, sizeof(err)), 0, "%s", err);
    snprintf(v, sizeof(v), "%d", ALLOC_WS_PORT_BASE + d + 5);
    cr_assert_eq(alloc_lookup(s, "port", v, &l, err, sizeof(err)), 0);
    /* reserving another display moves the owner: old display and ports go */
    cr_assert_eq(alloc_reserve_vnc(s, &c, d + 6, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_lookup(s, "port", v, &l, err, sizeof(err)), -ENOENT);
    snprintf(v, sizeof(v), "%d", d + 5);
    cr_assert_eq(alloc_lookup(s, "vnc", v, &l, err, sizeof(err)), -ENOENT);
    close(fd);
    alloc_store_close(s);
}

Test(alloc, vnc_range_exhausted)
{
    int d = free_run(ALLOC_VNC_PORT_BASE + 40, ALLOC_VNC_PORT_BASE + 400, 2) - ALLOC_VNC_PORT_BASE;
    alloc_opts opts = { .vnc_first = d, .vnc_last = d + 1 };
    alloc_store *s = open_opts(&opts);
    alloc_owner a = owner("x/a", getpid()), b = owner("x/b", getpid()), c = owner("x/c", getpid());
    int n;
    cr_assert_eq(alloc_vnc(s, &a, 0, &n, err, sizeof(err)), 0);
    cr_assert_eq(alloc_vnc(s, &b, 0, &n, err, sizeof(err)), 0);
    cr_assert_eq(alloc_vnc(s, &c, 0, &n, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "no free VNC display"), "%s", err);
    alloc_store_close(s);
}

Test(alloc, ports_skip_foreign_and_leased)
{
    int base = free_run(31000, 39000, 6);
    alloc_store *s = open_dir();
    int fd = listen_on(base);
    alloc_owner a = owner("p/a", getpid()), b = owner("p/b", getpid());
    int p1, p2, p3;
    cr_assert_eq(alloc_port(s, &a, base, base + 2, &p1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(p1, base + 1);
    cr_assert_eq(alloc_port(s, &a, base, base + 2, &p2, err, sizeof(err)), 0);
    cr_assert_eq(p2, base + 2, "each call takes another port");
    cr_assert_eq(alloc_port(s, &b, base, base + 2, &p3, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "no free port"), "%s", err);
    cr_assert_eq(alloc_reserve_port(s, &b, base + 1, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "p/a"), "%s", err);
    cr_assert_eq(alloc_reserve_port(s, &b, base, err, sizeof(err)), -EADDRINUSE);
    cr_assert_eq(alloc_reserve_port(s, &b, base + 4, err, sizeof(err)), 0);
    cr_assert_eq(alloc_reserve_port(s, &b, base + 4, err, sizeof(err)), 0, "reserving one's own");
    cr_assert_eq(alloc_port(s, &b, 0, 10, &p3, err, sizeof(err)), -EINVAL);
    close(fd);
    /* the listener is gone: base is free again */
    cr_assert_eq(alloc_port(s, &b, base, base + 2, &p3, err, sizeof(err)), 0);
    cr_assert_eq(p3, base);
    alloc_store_close(s);
}

/* --- CPUs ----------------------------------------------------------- */

Test(alloc, cpus_all_or_nothing)
{
    alloc_store *s = open_dir();
    alloc_owner a = owner("c/a", getpid()), b = owner("c/b", getpid());
    int sa[] = { 0, 1 }, sb[] = { 2, 1, 3 };
    cr_assert_eq(alloc_cpus(s, &a, sa, 2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_cpus(s, &b, sb, 3, err, sizeof(err)), -EEXIST);
    cr_assert(strstr(err, "CPU 1 is held by c/a"), "%s", err);
    cr_assert_eq(count(s), 2, "a refused set takes nothing");
    cr_assert_eq(alloc_cpus(s, &a, sa, 2, err, sizeof(err)), 0, "taking one's own again");
    int bad = -1;
    cr_assert_eq(alloc_cpus(s, &b, &bad, 1, err, sizeof(err)), -EINVAL);
    cpu_set_t set;
    sched_getaffinity(0, sizeof(set), &set);
    int ncpu = CPU_COUNT(&set), got[1024];
    alloc_owner c = owner("c/c", getpid());
    int rc = alloc_cpus_any(s, &c, (size_t)ncpu, got, err, sizeof(err));
    cr_assert_eq(rc, -ENOSPC, "%d usable CPUs, 2 leased", ncpu);
    cr_assert_eq(count(s), 2);
    alloc_store_close(s);
}

/* --- the commands --------------------------------------------------- */

typedef struct run {
    int status;
    char out[8192], err[4096];
} run;

static void drain(int fd, char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
}

/* Run the built qfleet with args (NULL-terminated after argv[0]). */
static run *qfleet(const char *a0, ...)
{
    static run r;
    const char *argv[32] = { QF_BINARY_DIR "/src/qfleet", a0 };
    va_list ap;
    va_start(ap, a0);
    int n = 2;
    while (n < 31 && (argv[n] = va_arg(ap, const char *)))
        n++;
    va_end(ap);
    argv[n] = NULL;
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    drain(pe[0], r.err, sizeof(r.err)); /* small: cannot block the child */
    drain(po[0], r.out, sizeof(r.out));
    int st;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return &r;
}

Test(alloc, cli_alloc_leases_free)
{
    run *r = qfleet("alloc", "mac", "--owner", "cli/vm", "--prefix", "02:cc:", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "stderr: %s", r->err);
    unsigned char m[6];
    char mac[32];
    snprintf(mac, sizeof(mac), "%.17s", r->out);
    cr_assert_eq(mac_parse(mac, m), 0, "output: %s", r->out);
    cr_assert_eq(strncmp(mac, "02:cc:", 6), 0);
    /* the same owner and NIC get the same MAC */
    r = qfleet("alloc", "mac", "--owner", "cli/vm", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_eq(strncmp(r->out, mac, 17), 0);

    r = qfleet("alloc", "port", "--owner", "cli/vm", "--hold", "--range", "33000-33999", "--json",
               "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    json_t *j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert(j, "not JSON: %s", r->out);
    cr_assert_str_eq(json_get_str(j, "kind"), "port");
    cr_assert(json_get_bool(j, "hold", 0));
    json_free(j);

    /* without --hold the lease belongs to the caller's parent: this test */
    r = qfleet("leases", "--json", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert(j && json_typeof(j) == JSON_ARRAY && json_len(j) == 2, "%s", r->out);
    const json_t *l0 = json_at(j, 0), *l1 = json_at(j, 1);
    cr_assert_str_eq(json_get_str(l0, "kind"), "mac");
    cr_assert_str_eq(json_get_str(l0, "owner"), "cli/vm/nic0");
    cr_assert_str_eq(json_get_str(l0, "run"), "cli");
    cr_assert_str_eq(json_get_str(l0, "vm"), "vm");
    cr_assert_eq(json_get_int(l0, "nic", -1), 0);
    cr_assert_eq(json_get_int(l0, "pid", 0), getpid());
    cr_assert_eq(json_get_int(l1, "pid", -1), 0);
    json_free(j);

    r = qfleet("leases", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0);
    cr_assert(strstr(r->out, "KIND") && strstr(r->out, "cli/vm/nic0") && strstr(r->out, "hold"),
              "%s", r->out);

    r = qfleet("free", "--owner", "cli", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert(strstr(r->out, "released 2 leases"), "%s", r->out);
    r = qfleet("leases", "--state-dir", dir, NULL);
    cr_assert(strstr(r->out, "no leases"), "%s", r->out);
}

Test(alloc, cli_vnc_and_clash)
{
    int d = free_run(ALLOC_VNC_PORT_BASE + 40, ALLOC_VNC_PORT_BASE + 400, 1) - ALLOC_VNC_PORT_BASE;
    char disp[16];
    snprintf(disp, sizeof(disp), "%d", d);
    run *r = qfleet("alloc", "vnc", "--owner", "a", "--display", disp, "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_eq(atoi(r->out), d);
    r = qfleet("alloc", "vnc", "--owner", "b", "--display", disp, "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 1);
    cr_assert(strstr(r->err, "held by a"), "%s", r->err);
    r = qfleet("alloc", "mac", "--owner", "a", "--mac", "02:00:00:00:00:07", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_str_eq(r->out, "02:00:00:00:00:07\n");
    r = qfleet("alloc", "mac", "--owner", "b", "--mac", "02:00:00:00:00:07", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 1);
    cr_assert(strstr(r->err, "a/nic0"), "%s", r->err);
    r = qfleet("free", "--owner", "a", "--json", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0);
    json_t *j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert_eq(json_get_int(j, "released", -1), 3, "vnc, its port, mac: %s", r->out);
    json_free(j);
}

Test(alloc, cli_usage_errors)
{
    run *r = qfleet("alloc", NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("alloc", "disk", "--owner", "x", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    cr_assert(strstr(r->err, "mac, vnc or port"), "%s", r->err);
    r = qfleet("alloc", "mac", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    cr_assert(strstr(r->err, "--owner"), "%s", r->err);
    r = qfleet("alloc", "mac", "--owner", "x", "--range", "1-2", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("alloc", "port", "--owner", "x", "--range", "9-1", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("alloc", "mac", "--owner", "bad name", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("alloc", "mac", "--owner", "x", "--hold", "--pid", "1", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("leases", "--bogus", NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("leases", "extra", NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("free", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("free", "--owner", NULL);
    cr_assert_eq(r->status, 2);
    r = qfleet("alloc", "--help", NULL);
    cr_assert_eq(r->status, 0);
    cr_assert(strstr(r->out, "PARENT"), "the owner choice is documented");
    r = qfleet("leases", "--help", NULL);
    cr_assert_eq(r->status, 0);
    r = qfleet("free", "--help", NULL);
    cr_assert_eq(r->status, 0);
    r = qfleet("--help", NULL);
    cr_assert(strstr(r->out, "leases") && strstr(r->out, "alloc") && strstr(r->out, "free"));
}

/* Issue 19 item 8: `alloc --json` names the lease's owner as `leases` does. */
Test(alloc, cli_alloc_json_owner_has_nic)
{
    run *r = qfleet("alloc", "mac", "--owner", "cli/vm", "--nic", "3", "--hold", "--json",
                    "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    json_t *j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert(j, "not JSON: %s", r->out);
    cr_assert_str_eq(json_get_str(j, "owner"), "cli/vm/nic3");
    json_free(j);
    r = qfleet("alloc", "port", "--owner", "cli/vm", "--hold", "--json", "--range", "33000-33999",
               "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert_str_eq(json_get_str(j, "owner"), "cli/vm");
    json_free(j);
}

/* Issue 19 item 1: QFLEET_MAC_PREFIX is the host's default prefix (over
 * the derived one), shown by `leases`; `cmdline` shows the VM's prefix
 * and where it comes from: --mac-prefix over the cfg's mac_prefix over
 * the environment. */
Test(alloc, cli_mac_prefix_env_option_and_cfg)
{
    setenv("QFLEET_MAC_PREFIX", "02:77:", 1);
    run *r = qfleet("alloc", "mac", "--owner", "p/vm", "--hold", "--state-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert(!strncmp(r->out, "02:77:", 6), "%s", r->out);
    r = qfleet("leases", "--state-dir", dir, NULL);
    cr_assert(strstr(r->out, "MAC prefix for new MACs: 02:77: (QFLEET_MAC_PREFIX"), "%s", r->out);

    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s/p.cfg", dir);
    spit(cfg, "[vm0]\nmem = size=128\n[vm1]\nmac_prefix = 02:ab\nmem = size=128\n");
    r = qfleet("cmdline", cfg, "vm0", "--run-dir", dir, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert(strstr(r->out, "# mac prefix 02:77: (QFLEET_MAC_PREFIX)\n"), "%s", r->out);
    r = qfleet("cmdline", cfg, "vm1", "--run-dir", dir, NULL);
    cr_assert(strstr(r->out, "# mac prefix 02:ab: (the cfg's mac_prefix)\n"), "%s", r->out);
    cr_assert(strstr(r->out, "mac=02:ab:"), "the preview MACs use it: %s", r->out);
    r = qfleet("cmdline", cfg, "vm1", "--run-dir", dir, "--mac-prefix", "0a:0b:0c", "--json", NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    json_t *j = json_parse(r->out, strlen(r->out), NULL, 0);
    cr_assert(j, "%s", r->out);
    const json_t *mp = json_get(json_get(j, "preview"), "mac_prefix");
    cr_assert_str_eq(json_get_str(mp, "value"), "0a:0b:0c:");
    cr_assert_str_eq(json_get_str(mp, "from"), "--mac-prefix");
    cr_assert_str_eq(json_get_str(json_get(j, "vm"), "mac_prefix"), "0a:0b:0c:");
    json_free(j);
    r = qfleet("cmdline", cfg, "vm1", "--run-dir", dir, "--mac-prefix", "01:00", NULL);
    cr_assert_eq(r->status, 2);
    cr_assert(strstr(r->err, "--mac-prefix") && strstr(r->err, "multicast"), "%s", r->err);
    /* `qfleet up` takes it too, checked before anything starts */
    r = qfleet("up", cfg, "vm1", "--state-dir", dir, "--mac-prefix", "01:00", NULL);
    cr_assert_eq(r->status, 2, "%s", r->err);
    cr_assert(strstr(r->err, "qfleet up: --mac-prefix") && strstr(r->err, "multicast"), "%s",
              r->err);
}
