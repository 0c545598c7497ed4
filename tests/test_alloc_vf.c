/* test_alloc_vf.c - SR-IOV VF pools.
 *
 * There is no SR-IOV hardware on the machines these tests run on, so every
 * test builds a FAKE sysfs tree in a temp dir (PF netdevs with virtfnN links,
 * VF PCI devices with their net/ dirs, VF netdevs with device links and
 * address files) and points the pool at it: the fake SR-IOV host of
 * tests/sriov_fx.h. Netlink requests do not reach a
 * kernel either: its recorder takes them, checks them byte by byte, and plays
 * the kernel's part by writing the new MAC into the fake VF's address file.
 * For VFs bound to vfio-pci (no netdev) the recorder also answers RTM_GETLINK
 * from a table of what the fake PF says about its VFs (IFLA_VF_MAC,
 * IFLA_VF_VLAN). These two - the fake sysfs tree and the netlink recorder -
 * are the only fakes here, and the only ones allowed: everything else (the
 * lease store, its notes, the request and reply bytes) is real. One test
 * sends the RTM_GETLINK request to the real kernel. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "src/alloc/vf.h"
#include "tests/sriov_fx.h"
#include "tests/testutil.h"

static char dir[512], root[600], state[600], err[512];

static void setup(void)
{
    cr_assert_eq(tu_mkdtemp(dir, sizeof(dir), "allocvf"), 0);
    snprintf(root, sizeof(root), "%s/sys", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(alloc_vf, .init = setup, .fini = teardown);

/* --- the fake SR-IOV host (tests/sriov_fx.h) ---------------------- */

/* PF pf with ifindex and nvf VFs at 0000:BUS:02.i, netdevs NAMEi with MAC
 * aa:00:00:00:BUS:i. */
static void fake_pf(const char *pf, int ifindex, int bus, int nvf, const char *vfname)
{
    sfx_pf(root, pf, ifindex, bus, nvf, vfname);
}

/* PF pf (PCI 0000:BUS:00.0) whose nvf VFs 0000:BUS:02.i are bound to
 * driver (vfio-pci: what QEMU needs) and so have no netdev; each links
 * back to its PF (physfn), as in sysfs. */
static void fake_bound(const char *pf, int ifindex, int bus, int nvf, const char *driver)
{
    sfx_pf(root, pf, ifindex, bus, nvf, NULL);
    for (int i = 0; i < nvf; i++)
        sfx_bind(root, bus, i, NULL, driver);
}

static void assert_req(const sfx_req *r, int ifindex, int vf, const char *mac)
{
    cr_assert_eq(r->ifindex, ifindex);
    cr_assert_eq(r->vf, vf);
    cr_assert_str_eq(r->mac, mac);
}

static alloc_store *store(void)
{
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    return s;
}

static alloc_vf_pool pool1(sfx_rec *rec, const char *pf)
{
    alloc_vf_pool p;
    const char *pfs[] = { pf };
    alloc_nl nl = sfx_nl(rec, rec->nview > 0);
    cr_assert_eq(alloc_vf_pool_init(&p, "net1", pfs, 1, root, &nl, err, sizeof(err)), 0, "%s", err);
    return p;
}

static alloc_owner owner(const char *name)
{
    alloc_owner o;
    cr_assert_eq(alloc_owner_init(&o, name, getpid(), err, sizeof(err)), 0);
    return o;
}

/* --- tests ---------------------------------------------------------- */

Test(alloc_vf, scan_two_pfs)
{
    fake_pf("ens1f0", 7, 0x3b, 3, "ens1f0v");
    fake_pf("ens1f1", 8, 0x3c, 1, "ens1f1v");
    alloc_vf_pool p;
    const char *pfs[] = { "ens1f0", "ens1f1" };
    cr_assert_eq(alloc_vf_pool_init(&p, "net", pfs, 2, root, NULL, err, sizeof(err)), 0);
    alloc_vf *v;
    size_t n;
    cr_assert_eq(alloc_vf_scan(&p, &v, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(v[0].pci, "0000:3b:02.0");
    cr_assert_str_eq(v[2].pci, "0000:3b:02.2");
    cr_assert_eq(v[2].vf, 2);
    cr_assert_str_eq(v[2].netdev, "ens1f0v2");
    cr_assert_eq(v[2].pf_ifindex, 7);
    cr_assert_str_eq(v[3].pf, "ens1f1");
    cr_assert_str_eq(v[3].pci, "0000:3c:02.0");
    cr_assert_eq(v[3].pf_ifindex, 8);
    free(v);
    const char *missing[] = { "nope0" };
    cr_assert_eq(alloc_vf_pool_init(&p, "net", missing, 1, root, NULL, err, sizeof(err)), 0);
    cr_assert_lt(alloc_vf_scan(&p, &v, &n, err, sizeof(err)), 0);
    cr_assert(strstr(err, "nope0"), "%s", err);
    const char *bad[] = { "../x" };
    cr_assert_eq(alloc_vf_pool_init(&p, "net", bad, 1, root, NULL, err, sizeof(err)), -EINVAL);
}

Test(alloc_vf, take_set_mac_restore)
{
    fake_pf("pf0", 7, 0x3b, 2, "vf");
    sfx_rec rec = { .root = root, .vfname = "vf" };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A"), b = owner("run/B"), c = owner("run/C");
    alloc_vf va, vb, vc;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &va, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(va.pci, "0000:3b:02.0"); /* for -device vfio-pci,host=... */
    cr_assert_str_eq(va.netdev, "vf0");
    cr_assert_str_eq(va.saved_mac, "aa:00:00:00:3b:00");
    cr_assert_str_eq(va.mac, "02:00:00:00:aa:01");
    cr_assert_eq(rec.n, 1);
    assert_req(&rec.r[0], 7, 0, "02:00:00:00:aa:01");

    cr_assert_eq(alloc_vf_take(s, &p, &b, 0, "02:00:00:00:bb:01", &vb, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(vb.pci, "0000:3b:02.1");
    assert_req(&rec.r[1], 7, 1, "02:00:00:00:bb:01");
    cr_assert_eq(alloc_vf_take(s, &p, &c, 0, "02:00:00:00:cc:01", &vc, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "all 2 VFs"), "%s", err);
    cr_assert_eq(rec.n, 2);

    /* the same NIC asking again keeps its VF; a new MAC is set on it */
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &va, err, sizeof(err)), 0);
    cr_assert_str_eq(va.pci, "0000:3b:02.0");
    cr_assert_str_eq(va.saved_mac, "aa:00:00:00:3b:00");
    cr_assert_eq(rec.n, 2, "nothing to change");
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:02", &va, err, sizeof(err)), 0);
    assert_req(&rec.r[2], 7, 0, "02:00:00:00:aa:02");

    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), 0);
    cr_assert_str_eq(l.owner, "run/A/nic0");

    /* release restores the saved MAC and frees the VF */
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rec.n, 4);
    assert_req(&rec.r[3], 7, 0, "aa:00:00:00:3b:00");
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 0, err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_vf_take(s, &p, &c, 0, "02:00:00:00:cc:01", &vc, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(vc.pci, "0000:3b:02.0");
    cr_assert_str_eq(vc.saved_mac, "aa:00:00:00:3b:00");
    cr_assert_eq(alloc_vf_take(s, &p, &c, 1, "01:00:00:00:cc:01", &vc, err, sizeof(err)), -EINVAL);
    alloc_store_close(s);
}

Test(alloc_vf, netdev_and_pci_disagree)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    /* vf0 claims to be another PCI device than the one listing it */
    sfx_symlink("../../../bus/pci/devices/0000:3b:09.7", "%s/class/net/vf0/device", root);
    sfx_rec rec = { .root = root };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "0000:3b:02.0") && strstr(err, "vf0") && strstr(err, "0000:3b:09.7"),
              "%s", err);
    cr_assert_eq(rec.n, 0, "no MAC set on a VF we cannot vouch for");
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), -ENOENT);
    alloc_store_close(s);
}

Test(alloc_vf, netlink_failure_takes_nothing)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    sfx_rec rec = { .root = root, .fail = -EPERM, .vfname = "vf" };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "0000:3b:02.0"), "%s", err);
    alloc_lease *all;
    size_t n;
    cr_assert_eq(alloc_list(s, &all, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 0);
    free(all);
    /* inside a batch the same */
    cr_assert_eq(alloc_begin(s, err, sizeof(err)), 0);
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), -EPERM);
    rec.fail = 0;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_commit(s, err, sizeof(err)), 0);
    cr_assert_str_eq(v.saved_mac, "aa:00:00:00:3b:00");
    alloc_store_close(s);
}

/* A controller that dies holding VF 0 of pf0: a child takes it for
 * "dead/vm" with MAC 02:de:ad:00:00:01 and exits without a release. With
 * pf_says, the VF is read through its PF (which says printf(pf_says, 0))
 * and the child fails unless that is the MAC it saved. */
static void die_holding_vf0(const char *vfname, const char *pf_says)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sfx_rec crec = { .root = root, .vfname = vfname };
        char want[MAC_STRLEN] = "";
        if (pf_says) {
            sfx_view(&crec, 1, pf_says);
            snprintf(want, sizeof(want), "%s", crec.pf[0].mac);
        }
        alloc_vf_pool cp;
        const char *pfs[] = { "pf0" };
        alloc_nl nl = sfx_nl(&crec, pf_says != NULL);
        alloc_store *cs;
        alloc_owner co;
        alloc_vf v;
        if (alloc_vf_pool_init(&cp, "net1", pfs, 1, root, &nl, NULL, 0) ||
            alloc_store_open(&cs, state, NULL, NULL, 0) ||
            alloc_owner_init(&co, "dead/vm", getpid(), NULL, 0) ||
            alloc_vf_take(cs, &cp, &co, 0, "02:de:ad:00:00:01", &v, NULL, 0) ||
            (pf_says && strcmp(v.saved_mac, want)))
            _exit(1);
        _exit(0); /* killed: no release */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
}

/* The owner dies holding the VF (kill -9 of the controller): the next pool
 * operation puts the original MAC back before anyone reuses the VF. */
Test(alloc_vf, dead_owner_mac_restored)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    die_holding_vf0("vf", NULL);
    FILE *f;
    char now[64] = "";
    char path[700];
    snprintf(path, sizeof(path), "%s/class/net/vf0/address", root);
    f = fopen(path, "r");
    cr_assert(f && fgets(now, sizeof(now), f));
    fclose(f);
    cr_assert_str_eq(now, "02:de:ad:00:00:01\n", "the child set the guest MAC");

    sfx_rec rec = { .root = root, .vfname = "vf" };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("next/vm");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rec.n, 2);
    assert_req(&rec.r[0], 7, 0, "aa:00:00:00:3b:00"); /* restored first */
    assert_req(&rec.r[1], 7, 0, "02:00:00:00:aa:01");
    cr_assert_str_eq(v.saved_mac, "aa:00:00:00:3b:00", "the original, not the dead guest's");
    cr_assert_eq(alloc_vf_release(s, &p, "next/vm", 0, err, sizeof(err)), 0);
    assert_req(&rec.r[2], 7, 0, "aa:00:00:00:3b:00");
    cr_assert_eq(alloc_vf_recover(s, &p, err, sizeof(err)), 0, "nothing left to restore");
    alloc_store_close(s);
}

/* A failed restore at release keeps the saved MAC for a later retry. */
Test(alloc_vf, failed_restore_retried)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    sfx_rec rec = { .root = root, .vfname = "vf" };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    rec.fail = -EBUSY;
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 0, err, sizeof(err)), -EBUSY);
    cr_assert(strstr(err, "retry"), "%s", err);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), -ENOENT);
    rec.fail = 0;
    cr_assert_eq(alloc_vf_recover(s, &p, err, sizeof(err)), 1, "%s", err);
    assert_req(&rec.r[rec.n - 1], 7, 0, "aa:00:00:00:3b:00");
    alloc_store_close(s);
}

/* The dead owner's VF could not be restored at first (the PF said no): the
 * next guest still records the VF's original MAC, not the dead guest's. */
Test(alloc_vf, unrestored_vf_keeps_original_mac)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    die_holding_vf0("vf", NULL);
    sfx_rec rec = { .root = root, .vfname = "vf", .fail_next = 1 };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("next/vm");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rec.n, 2, "a failed restore, then the new MAC");
    cr_assert_str_eq(v.saved_mac, "aa:00:00:00:3b:00");
    cr_assert_eq(alloc_vf_release(s, &p, "next/vm", 0, err, sizeof(err)), 0, "%s", err);
    assert_req(&rec.r[2], 7, 0, "aa:00:00:00:3b:00");
    alloc_store_close(s);
}

/* The one request that does reach the real kernel: VF MAC on lo (ifindex
 * 1), which has no VFs. A well-formed request is parsed and refused with
 * EOPNOTSUPP; a malformed one would come back EINVAL. */
Test(alloc_vf, kernel_parses_request)
{
    fake_pf("lo", 1, 0x3b, 1, "vf");
    alloc_vf_pool p;
    const char *pfs[] = { "lo" };
    cr_assert_eq(alloc_vf_pool_init(&p, "kernel", pfs, 1, root, NULL, err, sizeof(err)), 0);
    alloc_store *s = store();
    alloc_owner a = owner("k/vm");
    alloc_vf v;
    int rc = alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err));
    alloc_store_close(s);
    if (rc == -EPERM)
        cr_skip_test("no CAP_NET_ADMIN");
    cr_assert_eq(rc, -EOPNOTSUPP, "%s", err);
}

/* --- issue 19 ------------------------------------------------------------ */


/* Item 2: a VF bound to vfio-pci has no netdev. Its MAC is read through
 * the PF before the guest's goes on, and put back at release; before, the
 * saved MAC was empty and nothing was restored. */
Test(alloc_vf, vfio_vf_mac_read_through_pf_and_restored)
{
    fake_bound("pf0", 7, 0x3b, 2, "vfio-pci");
    sfx_rec rec = { .root = root };
    sfx_view(&rec, 2, "52:00:00:00:3b:%02x");
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(v.pci, "0000:3b:02.0");
    cr_assert_str_eq(v.netdev, "");
    cr_assert_eq(rec.gets, 1);
    cr_assert_str_eq(v.saved_mac, "52:00:00:00:3b:00");
    cr_assert_eq(rec.n, 1);
    assert_req(&rec.r[0], 7, 0, "02:00:00:00:aa:01");
    cr_assert_str_eq(rec.pf[0].mac, "02:00:00:00:aa:01");
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rec.n, 2);
    assert_req(&rec.r[1], 7, 0, "52:00:00:00:3b:00");
    cr_assert_str_eq(rec.pf[0].mac, "52:00:00:00:3b:00");
    alloc_store_close(s);
}

/* Item 2, crash recovery: the controller dies holding a vfio-pci VF; the
 * next take on the pool restores the MAC the PF reported before. */
Test(alloc_vf, vfio_vf_dead_owner_mac_restored)
{
    fake_bound("pf0", 7, 0x3b, 1, "vfio-pci");
    die_holding_vf0(NULL, "52:00:00:00:3b:%02x");
    sfx_rec rec = { .root = root };
    sfx_view(&rec, 1, "02:de:ad:00:00:%02x"); /* what the dead guest left: 01 */
    rec.pf[0].mac[16] = '1';
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    cr_assert_eq(alloc_vf_recover(s, &p, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(rec.n, 1);
    assert_req(&rec.r[0], 7, 0, "52:00:00:00:3b:00");
    cr_assert_eq(alloc_vf_recover(s, &p, err, sizeof(err)), 0);
    alloc_store_close(s);
}

/* Item 2: a VF QEMU cannot open is refused at take, saying how to bind it
 * or leave it out, instead of QEMU failing at launch. */
Test(alloc_vf, vf_not_bound_to_vfio_is_refused_with_how_to_bind)
{
    fake_bound("pf0", 7, 0x3b, 1, "iavf");
    sfx_rec rec = { .root = root };
    sfx_view(&rec, 1, "52:00:00:00:3b:%02x");
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), -EBUSY);
    cr_assert(strstr(err, "VF 0 of pf0 (0000:3b:02.0) is bound to iavf, not vfio-pci"), "%s", err);
    cr_assert(strstr(err, "echo vfio-pci > ") && strstr(err, "/bus/pci/devices/0000:3b:02.0/driver_override"),
              "%s", err);
    cr_assert(strstr(err, "/bus/pci/drivers/iavf/unbind"), "%s", err);
    cr_assert(strstr(err, "vf_pool exclude=0000:3b:02.0"), "%s", err);
    cr_assert_eq(rec.n, 0);
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), -ENOENT);
    /* unbound: no driver link, no netdev */
    char path[1024];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/0000:3b:02.0/driver", root);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), -EBUSY);
    cr_assert(strstr(err, "is bound to no driver, not vfio-pci"), "%s", err);
    alloc_store_close(s);
}

/* Item 3: a pool leaves out VFs the host uses (exclude) or names its VFs
 * (only); alloc_vf_count_free counts what a scheduler can wait for. */
Test(alloc_vf, pool_limits_and_free_count)
{
    fake_pf("pf0", 7, 0x3b, 4, "vf");
    sfx_rec rec = { .root = root, .vfname = "vf" };
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    size_t total;
    cr_assert_eq(alloc_vf_count_free(s, &p, &total, err, sizeof(err)), 4, "%s", err);
    cr_assert_eq(total, 4);
    const char *ex[] = { "pf0:0", "3B:02.2" };
    cr_assert_eq(alloc_vf_pool_limit(&p, NULL, 0, ex, 2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_vf_count_free(s, &p, &total, err, sizeof(err)), 2);
    cr_assert_eq(total, 2);
    alloc_owner a = owner("run/A"), b = owner("run/B"), c = owner("run/C");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 0, "02:00:00:00:aa:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(v.pci, "0000:3b:02.1");
    cr_assert_eq(alloc_vf_count_free(s, &p, &total, err, sizeof(err)), 1);
    cr_assert_eq(alloc_vf_take(s, &p, &b, 0, "02:00:00:00:bb:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(v.pci, "0000:3b:02.3");
    cr_assert_eq(alloc_vf_take(s, &p, &c, 0, "02:00:00:00:cc:01", &v, err, sizeof(err)), -ENOSPC);
    cr_assert(strstr(err, "all 2 VFs"), "%s", err);
    cr_assert_eq(alloc_vf_count_free(s, &p, &total, err, sizeof(err)), 0);
    /* the excluded VFs were never touched */
    for (int i = 0; i < rec.n; i++)
        cr_assert(rec.r[i].vf == 1 || rec.r[i].vf == 3, "request for VF %d", rec.r[i].vf);

    const char *only[] = { "0000:3b:02.0" };
    cr_assert_eq(alloc_vf_pool_limit(&p, only, 1, NULL, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(alloc_vf_take(s, &p, &c, 0, "02:00:00:00:cc:01", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(v.pci, "0000:3b:02.0");
    const char *bad[] = { "pf9:1" };
    cr_assert_eq(alloc_vf_pool_limit(&p, bad, 1, NULL, 0, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "'pf9:1'"), "%s", err);
    const char *bad2[] = { "0000:3b:02" };
    cr_assert_eq(alloc_vf_pool_limit(&p, NULL, 0, bad2, 1, err, sizeof(err)), -EINVAL);
    alloc_store_close(s);
}

/* Item 4: a VLAN on a VF (IFLA_VF_VLAN), set after the MAC and taken off
 * again at release (the VLAN it had before is in the saved note). */
Test(alloc_vf, vlan_set_and_restored)
{
    fake_bound("pf0", 7, 0x3b, 1, "vfio-pci");
    sfx_rec rec = { .root = root };
    sfx_view(&rec, 1, "52:00:00:00:3b:%02x");
    alloc_vf_pool p = pool1(&rec, "pf0");
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take_vlan(s, &p, &a, 0, "02:00:00:00:aa:01", 100, &v, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(v.vlan, 100);
    cr_assert_eq(rec.n, 2);
    assert_req(&rec.r[0], 7, 0, "02:00:00:00:aa:01");
    cr_assert_eq(rec.r[1].vlan, 100);
    cr_assert_eq(rec.pf[0].vlan, 100);
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rec.n, 4);
    cr_assert_eq(rec.r[2].vlan, 0, "the VLAN comes off");
    assert_req(&rec.r[3], 7, 0, "52:00:00:00:3b:00");

    /* a PF that refuses the VLAN: the VF is not taken, its MAC goes back */
    rec.fail_vlan = -EOPNOTSUPP;
    cr_assert_eq(alloc_vf_take_vlan(s, &p, &a, 0, "02:00:00:00:aa:01", 7, &v, err, sizeof(err)),
                 -EOPNOTSUPP);
    cr_assert(strstr(err, "set VLAN 7 on VF 0 of pf0"), "%s", err);
    cr_assert_str_eq(rec.pf[0].mac, "52:00:00:00:3b:00");
    alloc_lease l;
    cr_assert_eq(alloc_lookup(s, "vf", "0000:3b:02.0", &l, err, sizeof(err)), -ENOENT);
    cr_assert_eq(alloc_vf_take_vlan(s, &p, &a, 0, "02:00:00:00:aa:01", 4096, &v, err, sizeof(err)),
                 -EINVAL);
    alloc_store_close(s);
}

/* Item 4: a hand-picked VF (opt_host) is a one-VF pool found through its
 * physfn link, so a fixed MAC can go on it and come off at release. */
Test(alloc_vf, hand_picked_vf_pool_of_pci)
{
    fake_bound("pf0", 7, 0x3b, 3, "vfio-pci");
    sfx_rec rec = { .root = root };
    sfx_view(&rec, 3, "52:00:00:00:3b:%02x");
    alloc_nl nl = sfx_nl(&rec, 1);
    alloc_vf_pool p;
    cr_assert_eq(alloc_vf_pool_of_pci(&p, "0000:3b:02.2", root, &nl, err, sizeof(err)), 0, "%s", err);
    alloc_store *s = store();
    alloc_owner a = owner("run/A");
    alloc_vf v;
    cr_assert_eq(alloc_vf_take(s, &p, &a, 100, "02:00:00:00:aa:42", &v, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(v.pci, "0000:3b:02.2");
    cr_assert_str_eq(v.saved_mac, "52:00:00:00:3b:02");
    assert_req(&rec.r[0], 7, 2, "02:00:00:00:aa:42");
    alloc_owner b = owner("run/B");
    cr_assert_eq(alloc_vf_take(s, &p, &b, 100, "02:00:00:00:bb:42", &v, err, sizeof(err)), -ENOSPC);
    cr_assert_eq(alloc_vf_release(s, &p, "run/A", 100, err, sizeof(err)), 0, "%s", err);
    assert_req(&rec.r[1], 7, 2, "52:00:00:00:3b:02");
    alloc_store_close(s);
    cr_assert_eq(alloc_vf_pool_of_pci(&p, "0000:3b:00.0", root, &nl, err, sizeof(err)), -ENODEV);
    cr_assert(strstr(err, "not an SR-IOV VF"), "%s", err);
}

/* The RTM_GETLINK request reaches the real kernel: lo (ifindex 1) is
 * described, it lists no VFs, so VF 0 is not found (a malformed request
 * would come back as an error instead). No privilege needed. */
Test(alloc_vf, kernel_answers_getlink)
{
    char mac[MAC_STRLEN];
    int vlan;
    cr_assert_eq(alloc_vf_query(NULL, 1, 0, mac, &vlan), -ENOENT);
    cr_assert_eq(alloc_vf_query(NULL, 0x7ffffff0, 0, mac, &vlan), -ENODEV);
}
