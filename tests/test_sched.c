/* test_sched.c - suite admission bookkeeping and sharding (src/sched.h). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "src/run/sched.h"

static sched_limits limits(int jobs, long long mem, int ncpus)
{
    sched_limits l = { .jobs = jobs, .mem_mb = mem, .vnc_pool = SCHED_VNC_MAX };
    for (int c = 0; c < ncpus; c++)
        sched_cpu_set(&l.host_cpus, c);
    return l;
}

/* n guests of mem MiB, allocated VNC, no pinning. */
static sched_need plain(int n, int mem)
{
    sched_need need = { 0 };
    char why[256];
    for (int i = 0; i < n; i++)
        cr_assert_eq(sched_need_add(&need, "g", mem, NULL, 0, -2, why, sizeof(why)), 0);
    return need;
}

Test(sched, guests_limit_waits_and_never_fits)
{
    sched_limits l = limits(4, 0, 2);
    sched_use u = { 0 };
    char why[256];
    sched_need two = plain(2, 256), five = plain(5, 256);
    cr_assert(sched_never_fits(&l, &five, why, sizeof(why)));
    cr_assert(strstr(why, "needs 5 guests at once, --jobs allows 4"), "%s", why);
    cr_assert_not(sched_never_fits(&l, &two, why, sizeof(why)));
    cr_assert(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    sched_take(&u, &two);
    cr_assert(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    sched_take(&u, &two);
    cr_assert_eq(u.guests, 4);
    cr_assert_not(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    cr_assert(strstr(why, "waiting for 2 guest slots (0 of 4 free)"), "%s", why);
    sched_release(&u, &two);
    cr_assert(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    sched_release(&u, &two);
    cr_assert_eq(u.guests, 0);
    cr_assert_eq(u.mem_mb, 0);
    cr_assert_eq(u.vnc_auto, 0);
}

Test(sched, memory_budget_counts_qemu_overhead)
{
    sched_need one = plain(1, 1024);
    cr_assert_eq(one.mem_mb, 1024 + SCHED_QEMU_OVERHEAD_MB);
    sched_limits l = limits(0, 3000, 1);
    sched_use u = { 0 };
    char why[256];
    sched_need three = plain(3, 1024);
    cr_assert(sched_never_fits(&l, &three, why, sizeof(why)));
    cr_assert(strstr(why, "MiB"), "%s", why);
    sched_take(&u, &one);
    sched_take(&u, &one);
    cr_assert_not(sched_fits_now(&l, &u, &one, why, sizeof(why)));
    cr_assert(strstr(why, "memory"), "%s", why);
}

Test(sched, pinned_cpus)
{
    sched_limits l = limits(0, 0, 4);
    sched_use u = { 0 };
    char why[256];
    int a[] = { 1, 2 }, b[] = { 2, 3 }, c[] = { 3 }, far[] = { 9 };
    sched_need na = { 0 }, nb = { 0 }, nc = { 0 }, nfar = { 0 }, both = { 0 };
    cr_assert_eq(sched_need_add(&na, "a", 64, a, 2, -1, why, sizeof(why)), 0);
    cr_assert_eq(sched_need_add(&nb, "b", 64, b, 2, -1, why, sizeof(why)), 0);
    cr_assert_eq(sched_need_add(&nc, "c", 64, c, 1, -1, why, sizeof(why)), 0);
    cr_assert_eq(sched_need_add(&nfar, "f", 64, far, 1, -1, why, sizeof(why)), 0);
    /* Two guests of one suite on the same CPU can never both get it. */
    cr_assert_eq(sched_need_add(&both, "x", 64, a, 2, -1, why, sizeof(why)), 0);
    cr_assert_lt(sched_need_add(&both, "y", 64, b, 2, -1, why, sizeof(why)), 0);
    cr_assert(strstr(why, "y pins CPU 2"), "%s", why);
    cr_assert(sched_never_fits(&l, &nfar, why, sizeof(why)));
    cr_assert(strstr(why, "CPU 9"), "%s", why);
    sched_take(&u, &na);
    cr_assert_not(sched_fits_now(&l, &u, &nb, why, sizeof(why)));
    cr_assert(strstr(why, "pinned CPU 2"), "%s", why);
    cr_assert(sched_fits_now(&l, &u, &nc, why, sizeof(why)));
    sched_take(&u, &nc);
    sched_release(&u, &na);
    cr_assert_not(sched_fits_now(&l, &u, &nb, why, sizeof(why)), "CPU 3 is still c's");
    sched_release(&u, &nc);
    cr_assert(sched_fits_now(&l, &u, &nb, why, sizeof(why)));
}

Test(sched, vnc_displays)
{
    sched_limits l = limits(0, 0, 1);
    l.vnc_pool = 3;
    sched_use u = { 0 };
    char why[256];
    sched_need fixed = { 0 }, dup = { 0 }, autos = plain(3, 64), four = plain(4, 64);
    cr_assert_eq(sched_need_add(&fixed, "f", 64, NULL, 0, 5, why, sizeof(why)), 0);
    cr_assert_eq(sched_need_add(&dup, "d", 64, NULL, 0, 5, why, sizeof(why)), 0);
    cr_assert_lt(sched_need_add(&dup, "e", 64, NULL, 0, 5, why, sizeof(why)), 0);
    cr_assert(strstr(why, "VNC display 5"), "%s", why);
    cr_assert(sched_never_fits(&l, &four, why, sizeof(why)));
    cr_assert(strstr(why, "VNC"), "%s", why);
    sched_take(&u, &fixed);
    cr_assert_not(sched_fits_now(&l, &u, &fixed, why, sizeof(why)));
    cr_assert(strstr(why, "VNC display 5"), "%s", why);
    cr_assert_not(sched_fits_now(&l, &u, &autos, why, sizeof(why)), "pool of 3, one taken");
    sched_release(&u, &fixed);
    cr_assert(sched_fits_now(&l, &u, &autos, why, sizeof(why)));
}

/* --- SR-IOV VFs --------------------------------------------------------- */

/* VFs 0000:3b:02.0 .. 02.(n-1) of a PF ("3b") or another bus. */
static int pool(sched_limits *l, unsigned long long key, const char *name, const char *bus, int from,
                int n)
{
    char addr[16][16];
    const char *pci[16];
    for (int i = 0; i < n; i++) {
        snprintf(addr[i], sizeof(addr[i]), "0000:%s:02.%d", bus, from + i);
        pci[i] = addr[i];
    }
    char why[256];
    int p = sched_vf_pool_add(l, key, name, pci, n, why, sizeof(why));
    cr_assert_geq(p, 0, "%s", why);
    return p;
}

static sched_need vfs(int p, int count)
{
    sched_need n = plain(1, 64);
    sched_need_vfs(&n, p, count);
    return n;
}

Test(sched, vf_pool_waits_and_never_fits)
{
    sched_limits l = limits(0, 0, 1);
    sched_use u = { 0 };
    char why[512];
    int p = pool(&l, 1, "net1", "3b", 0, 3);
    cr_assert_eq(l.vf_pool[p].nvf, 3);
    cr_assert_eq(pool(&l, 1, "net1", "3b", 0, 3), p, "one pool, registered once");
    sched_need two = vfs(p, 2), four = vfs(p, 4);
    cr_assert(sched_never_fits(&l, &four, why, sizeof(why)));
    cr_assert(strstr(why, "needs 4 VF(s) of pool net1, the pool has 3 usable"), "%s", why);
    cr_assert_not(sched_never_fits(&l, &two, why, sizeof(why)));
    cr_assert(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    sched_take(&u, &two);
    cr_assert_not(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    cr_assert(strstr(why, "waiting for 2 VF(s) of pool net1 (1 of 3 free)"), "%s", why);
    sched_need one = vfs(p, 1);
    cr_assert(sched_fits_now(&l, &u, &one, why, sizeof(why)), "the third VF is free");
    sched_release(&u, &two);
    cr_assert_eq(u.vf[p], 0);
    cr_assert(sched_fits_now(&l, &u, &two, why, sizeof(why)));
    /* A pool with no usable VF (all leased elsewhere): never. */
    int empty = pool(&l, 2, "gone", "5e", 0, 0);
    sched_need e = vfs(empty, 1);
    cr_assert(sched_never_fits(&l, &e, why, sizeof(why)));
    cr_assert(strstr(why, "pool gone, the pool has 0"), "%s", why);
}

/* Two pools over one PF compete for the same VFs; a pool on another PF
 * does not. */
Test(sched, vf_pools_sharing_a_pf_add_up)
{
    sched_limits l = limits(0, 0, 1);
    sched_use u = { 0 };
    char why[512];
    int a = pool(&l, 1, "fast", "3b", 0, 3), b = pool(&l, 2, "slow", "3b", 0, 3);
    int c = pool(&l, 3, "other", "5e", 0, 2);
    cr_assert_neq(a, b);
    sched_need a2 = vfs(a, 2), b2 = vfs(b, 2), c2 = vfs(c, 2), b1 = vfs(b, 1);
    /* One suite wanting 2 of each: 4 of the PF's 3. */
    sched_need both = vfs(a, 2);
    sched_need_vfs(&both, b, 2);
    cr_assert(sched_never_fits(&l, &both, why, sizeof(why)));
    cr_assert(strstr(why, "needs 2 VF(s) of pool fast and 2 of pool(s) sharing its VFs (slow), "
                     "the pool has 3"), "%s", why);
    sched_take(&u, &a2);
    cr_assert_not(sched_fits_now(&l, &u, &b2, why, sizeof(why)), "2 + 2 of one PF's 3");
    cr_assert(strstr(why, "waiting for 2 VF(s) of pool slow (1 of 3 free)"), "%s", why);
    cr_assert(sched_fits_now(&l, &u, &b1, why, sizeof(why)));
    cr_assert(sched_fits_now(&l, &u, &c2, why, sizeof(why)), "another PF's VFs are its own");
    sched_take(&u, &c2);
    sched_release(&u, &a2);
    cr_assert(sched_fits_now(&l, &u, &b2, why, sizeof(why)));

    /* Pools overlapping in part (a VF list of one PF and the whole PF):
     * conservative. "head" is VFs 0-1, "all" VFs 0-3: 1 of head and 2 of
     * all would fit by hand (head takes VF 0, all VFs 2 and 3), but the
     * fleet takes the first free VF in launch order, so all's guests might
     * take both of head's first: it waits. 1 of all fits any order. */
    sched_limits m = limits(0, 0, 1);
    sched_use v = { 0 };
    int head = pool(&m, 1, "head", "3b", 0, 2), all = pool(&m, 2, "all", "3b", 0, 4);
    sched_need h1 = vfs(head, 1), all1 = vfs(all, 1), all2 = vfs(all, 2);
    sched_take(&v, &h1);
    cr_assert_not(sched_fits_now(&m, &v, &all2, why, sizeof(why)));
    cr_assert(strstr(why, "waiting for 2 VF(s) of pool all, which shares VFs with pool head (1 of 2 "
                     "free)"), "%s", why);
    cr_assert(sched_fits_now(&m, &v, &all1, why, sizeof(why)));
}

Test(sched, shard_parse)
{
    int k, n;
    cr_assert_eq(sched_shard_parse("2/3", &k, &n), 0);
    cr_assert_eq(k, 2);
    cr_assert_eq(n, 3);
    const char *bad[] = { "0/3", "4/3", "1/0", "1", "/3", "1/", "a/b", "1/3x", "-1/3", "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_lt(sched_shard_parse(bad[i], &k, &n), 0, "accepted '%s'", bad[i]);
}

/* K/N slices of a suite list are disjoint and cover it, for any N; the
 * slice of a suite does not depend on the list it is in. */
Test(sched, shards_are_disjoint_and_cover)
{
    char names[300][32];
    for (int i = 0; i < 300; i++)
        snprintf(names[i], sizeof(names[i]), i % 3 ? "suite_%d" : "vf_pmd_%d.bonded", i);
    for (int n = 1; n <= 9; n++) {
        int seen[300] = { 0 }, per[9] = { 0 };
        for (int k = 0; k < n; k++)
            for (int i = 0; i < 300; i++)
                if (sched_shard_of(names[i], n) == k) {
                    seen[i]++;
                    per[k]++;
                }
        for (int i = 0; i < 300; i++)
            cr_assert_eq(seen[i], 1, "%s is in %d slices of %d", names[i], seen[i], n);
        /* Spread, not all in one slice. */
        for (int k = 0; k < n; k++)
            cr_assert_gt(per[k], 300 / n / 3, "slice %d/%d has only %d suites", k + 1, n, per[k]);
    }
    /* Stable across builds and hosts: FNV-1a 64 of the name (its test vector for "a"). */
    cr_assert_eq(sched_shard_of("a", 1 << 30), (int)(0xaf63dc4c8601ec8cull % (1u << 30)));
}
