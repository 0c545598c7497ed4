/* test_alloc_vf.c - SR-IOV VF pools.
 *
 * There is no SR-IOV hardware on the machines these tests run on, so every
 * test builds a FAKE sysfs tree in a temp dir (PF netdevs with virtfnN links,
 * VF PCI devices with their net/ dirs, VF netdevs with device links and
 * address files) and points the pool at it. Netlink requests do not reach a
 * kernel either: a recorder takes them, checks them byte by byte, and plays
 * the kernel's part by writing the new MAC into the fake VF's address file.
 * For VFs bound to vfio-pci (no netdev) the recorder also answers RTM_GETLINK
 * from a table of what the fake PF says about its VFs (IFLA_VF_MAC,
 * IFLA_VF_VLAN). These two - the fake sysfs tree and the netlink recorder -
 * are the only fakes here, and the only ones allowed: everything else (the
 * lease store, its notes, the request and reply bytes) is real. One test
 * sends the RTM_GETLINK request to the real kernel. */
#include <criterion/criterion.h>

#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#include "src/alloc/alloc.h"
#include "src/alloc/vf.h"
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

/* --- the fake sysfs ------------------------------------------------- */

static void mkdirs(const char *path)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
}

static void put(const char *text, const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void link_to(const char *target, const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    unlink(path);
    cr_assert_eq(symlink(target, path), 0, "%s", path);
}

/* PF pf with ifindex and nvf VFs at 0000:BUS:02.i, netdevs NAMEi with MAC
 * aa:00:00:00:BUS:i. */
static void fake_pf(const char *pf, int ifindex, int bus, int nvf, const char *vfname)
{
    char p[1024], t[256], addr[32];
    snprintf(p, sizeof(p), "%s/class/net/%s/device", root, pf);
    mkdirs(p);
    snprintf(t, sizeof(t), "%d\n", ifindex);
    put(t, "%s/class/net/%s/ifindex", root, pf);
    for (int i = 0; i < nvf; i++) {
        snprintf(addr, sizeof(addr), "0000:%02x:02.%d", bus, i);
        snprintf(t, sizeof(t), "../%s", addr);
        link_to(t, "%s/class/net/%s/device/virtfn%d", root, pf, i);
        snprintf(p, sizeof(p), "%s/bus/pci/devices/%s/net/%s%d", root, addr, vfname, i);
        mkdirs(p);
        snprintf(p, sizeof(p), "%s/class/net/%s%d", root, vfname, i);
        mkdirs(p);
        snprintf(t, sizeof(t), "../../../bus/pci/devices/%s", addr);
        link_to(t, "%s/class/net/%s%d/device", root, vfname, i);
        snprintf(t, sizeof(t), "aa:00:00:00:%02x:%02x\n", bus, i);
        put(t, "%s/class/net/%s%d/address", root, vfname, i);
    }
    /* the PF itself has other entries under device/ too */
    snprintf(p, sizeof(p), "%s/class/net/%s/device/driver", root, pf);
    mkdirs(p);
}

/* PF pf (PCI 0000:BUS:00.0) whose nvf VFs 0000:BUS:02.i are bound to
 * driver (vfio-pci: what QEMU needs) and so have no netdev; each links
 * back to its PF (physfn), as in sysfs. */
static void fake_bound(const char *pf, int ifindex, int bus, int nvf, const char *driver)
{
    char p[1024], t[256], addr[32], pfaddr[32];
    snprintf(pfaddr, sizeof(pfaddr), "0000:%02x:00.0", bus);
    snprintf(p, sizeof(p), "%s/class/net/%s/device", root, pf);
    mkdirs(p);
    snprintf(t, sizeof(t), "%d\n", ifindex);
    put(t, "%s/class/net/%s/ifindex", root, pf);
    snprintf(p, sizeof(p), "%s/bus/pci/devices/%s/net/%s", root, pfaddr, pf);
    mkdirs(p);
    snprintf(p, sizeof(p), "%s/bus/pci/drivers/%s", root, driver);
    mkdirs(p);
    for (int i = 0; i < nvf; i++) {
        snprintf(addr, sizeof(addr), "0000:%02x:02.%d", bus, i);
        snprintf(t, sizeof(t), "../%s", addr);
        link_to(t, "%s/class/net/%s/device/virtfn%d", root, pf, i);
        snprintf(p, sizeof(p), "%s/bus/pci/devices/%s", root, addr);
        mkdirs(p);
        snprintf(t, sizeof(t), "../../../bus/pci/drivers/%s", driver);
        link_to(t, "%s/bus/pci/devices/%s/driver", root, addr);
        snprintf(t, sizeof(t), "../%s", pfaddr);
        link_to(t, "%s/bus/pci/devices/%s/physfn", root, addr);
    }
}

/* --- the netlink recorder ------------------------------------------- */

typedef struct req {
    int ifindex, vf;
    unsigned char mac[6];
    int vlan; /* an IFLA_VF_VLAN request: the VLAN; -1 for IFLA_VF_MAC */
} req;

/* What the fake PF (any ifindex) says about VF i over RTM_GETLINK. */
typedef struct pfview {
    char mac[MAC_STRLEN];
    int vlan;
} pfview;

typedef struct recorder {
    req r[32];
    int n;
    pfview pf[8];      /* with nview > 0, answers RTM_GETLINK */
    int nview;
    int gets;          /* RTM_GETLINK requests seen */
    int fail_vlan;     /* -errno for IFLA_VF_VLAN requests */
    int fail;         /* -errno to answer instead of the ack */
    int fail_next;    /* ... for this many requests only, when fail is 0 */
    const char *vfname; /* netdev prefix of the PF's VFs, to play the kernel */
} recorder;

static int record_vlan(recorder *rc, const struct ifinfomsg *ifi, const struct rtattr *a)
{
    cr_assert_eq(a->rta_len, RTA_LENGTH(sizeof(struct ifla_vf_vlan)));
    const struct ifla_vf_vlan *v = RTA_DATA(a);
    cr_assert_lt(rc->n, 32);
    cr_assert_eq(v->qos, 0);
    req *r = &rc->r[rc->n++];
    memset(r, 0, sizeof(*r));
    r->ifindex = ifi->ifi_index;
    r->vf = (int)v->vf;
    r->vlan = (int)v->vlan;
    if (rc->fail_vlan)
        return rc->fail_vlan;
    if (r->vf < rc->nview)
        rc->pf[r->vf].vlan = r->vlan;
    return 0;
}

static void add_attr(char *msg, size_t *len, unsigned short type, const void *data, size_t n)
{
    struct rtattr *a = (struct rtattr *)(msg + *len);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(n);
    memcpy(RTA_DATA(a), data, n);
    *len += RTA_ALIGN(a->rta_len);
}

/* RTM_GETLINK { ifinfomsg, IFLA_EXT_MASK = RTEXT_FILTER_VF }: answer
 * RTM_NEWLINK with IFLA_VFINFO_LIST, one IFLA_VF_INFO per fake VF, as a
 * PF's driver does (IFLA_VF_MAC, IFLA_VF_VLAN and one attribute the
 * parser must skip). */
static int answer(void *ctx, const void *buf, size_t len, void *reply, size_t replylen)
{
    recorder *rc = ctx;
    const struct nlmsghdr *h = buf;
    cr_assert_eq(h->nlmsg_len, len);
    cr_assert_eq(h->nlmsg_type, RTM_GETLINK);
    cr_assert_eq(h->nlmsg_flags, NLM_F_REQUEST);
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    const struct rtattr *m = (const struct rtattr *)((const char *)ifi + NLMSG_ALIGN(sizeof(*ifi)));
    cr_assert_eq(m->rta_type, IFLA_EXT_MASK);
    cr_assert_eq(*(const uint32_t *)RTA_DATA(m), RTEXT_FILTER_VF);
    rc->gets++;
    char *out = reply;
    cr_assert_geq(replylen, 4096);
    memset(out, 0, 4096);
    struct nlmsghdr *rh = reply;
    rh->nlmsg_type = RTM_NEWLINK;
    rh->nlmsg_seq = h->nlmsg_seq;
    struct ifinfomsg *ri = NLMSG_DATA(rh);
    ri->ifi_index = ifi->ifi_index;
    size_t n = NLMSG_ALIGN(NLMSG_LENGTH(sizeof(*ri)));
    add_attr(out, &n, IFLA_MTU, &(uint32_t){ 1500 }, 4);
    struct rtattr *list = (struct rtattr *)(out + n);
    list->rta_type = IFLA_VFINFO_LIST | NLA_F_NESTED;
    n += RTA_LENGTH(0);
    for (int i = 0; i < rc->nview; i++) {
        struct rtattr *info = (struct rtattr *)(out + n);
        info->rta_type = IFLA_VF_INFO | NLA_F_NESTED;
        n += RTA_LENGTH(0);
        struct ifla_vf_mac vm = { .vf = (unsigned)i };
        cr_assert_eq(mac_parse(rc->pf[i].mac, vm.mac), 0);
        struct ifla_vf_tx_rate tx = { .vf = (unsigned)i };
        add_attr(out, &n, IFLA_VF_TX_RATE, &tx, sizeof(tx));
        add_attr(out, &n, IFLA_VF_MAC, &vm, sizeof(vm));
        struct ifla_vf_vlan vv = { .vf = (unsigned)i, .vlan = (unsigned)rc->pf[i].vlan };
        add_attr(out, &n, IFLA_VF_VLAN, &vv, sizeof(vv));
        info->rta_len = (unsigned short)(out + n - (char *)info);
    }
    list->rta_len = (unsigned short)(out + n - (char *)list);
    rh->nlmsg_len = (unsigned)n;
    return (int)n;
}

/* Decode one RTM_SETLINK request and check every byte that matters. */
static int record(void *ctx, const void *buf, size_t len)
{
    recorder *rc = ctx;
    const struct nlmsghdr *h = buf;
    cr_assert_geq(len, NLMSG_LENGTH(sizeof(struct ifinfomsg)));
    cr_assert_eq(h->nlmsg_len, len);
    cr_assert_eq(h->nlmsg_type, RTM_SETLINK);
    cr_assert_eq(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    cr_assert_eq(ifi->ifi_family, AF_UNSPEC);
    const struct rtattr *list =
        (const struct rtattr *)((const char *)ifi + NLMSG_ALIGN(sizeof(*ifi)));
    cr_assert_eq(list->rta_type & NLA_TYPE_MASK, IFLA_VFINFO_LIST);
    cr_assert_eq((const char *)list + list->rta_len, (const char *)buf + len);
    const struct rtattr *info = RTA_DATA(list);
    cr_assert_eq(info->rta_type & NLA_TYPE_MASK, IFLA_VF_INFO);
    cr_assert_eq(info->rta_len, list->rta_len - RTA_LENGTH(0));
    const struct rtattr *mac = RTA_DATA(info);
    if (mac->rta_type == IFLA_VF_VLAN)
        return record_vlan(rc, ifi, mac);
    cr_assert_eq(mac->rta_type, IFLA_VF_MAC);
    cr_assert_eq(mac->rta_len, RTA_LENGTH(sizeof(struct ifla_vf_mac)));
    const struct ifla_vf_mac *vm = RTA_DATA(mac);
    cr_assert_lt(rc->n, 32);
    req *r = &rc->r[rc->n++];
    r->ifindex = ifi->ifi_index;
    r->vf = (int)vm->vf;
    r->vlan = -1;
    memcpy(r->mac, vm->mac, 6);
    for (int i = 6; i < 32; i++)
        cr_assert_eq(vm->mac[i], 0);
    if (rc->fail)
        return rc->fail;
    if (rc->fail_next > 0) {
        rc->fail_next--;
        return -EAGAIN;
    }
    if (r->vf < rc->nview)
        mac_format(r->mac, rc->pf[r->vf].mac);
    if (rc->vfname) {
        char t[32];
        snprintf(t, sizeof(t), "%02x:%02x:%02x:%02x:%02x:%02x\n", r->mac[0], r->mac[1], r->mac[2],
                 r->mac[3], r->mac[4], r->mac[5]);
        put(t, "%s/class/net/%s%d/address", root, rc->vfname, r->vf);
    }
    return 0;
}

static void assert_req(const req *r, int ifindex, int vf, const char *mac)
{
    char text[MAC_STRLEN];
    mac_format(r->mac, text);
    cr_assert_eq(r->ifindex, ifindex);
    cr_assert_eq(r->vf, vf);
    cr_assert_str_eq(text, mac);
}

static alloc_store *store(void)
{
    alloc_store *s;
    cr_assert_eq(alloc_store_open(&s, state, NULL, err, sizeof(err)), 0, "%s", err);
    return s;
}

static alloc_vf_pool pool1(recorder *rec, const char *pf)
{
    alloc_vf_pool p;
    const char *pfs[] = { pf };
    alloc_nl nl = { .send = record, .ctx = rec, .get = rec->nview ? answer : NULL };
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
    recorder rec = { .vfname = "vf" };
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
    link_to("../../../bus/pci/devices/0000:3b:09.7", "%s/class/net/vf0/device", root);
    recorder rec = { 0 };
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
    recorder rec = { .fail = -EPERM, .vfname = "vf" };
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

/* The owner dies holding the VF (kill -9 of the controller): the next pool
 * operation puts the original MAC back before anyone reuses the VF. */
Test(alloc_vf, dead_owner_mac_restored)
{
    fake_pf("pf0", 7, 0x3b, 1, "vf");
    pid_t pid = fork();
    if (pid == 0) {
        recorder crec = { .vfname = "vf" };
        alloc_vf_pool cp;
        const char *pfs[] = { "pf0" };
        alloc_nl nl = { .send = record, .ctx = &crec };
        alloc_store *cs;
        alloc_owner co;
        alloc_vf v;
        if (alloc_vf_pool_init(&cp, "net1", pfs, 1, root, &nl, NULL, 0) ||
            alloc_store_open(&cs, state, NULL, NULL, 0) || alloc_owner_init(&co, "dead/vm", getpid(), NULL, 0) ||
            alloc_vf_take(cs, &cp, &co, 0, "02:de:ad:00:00:01", &v, NULL, 0))
            _exit(1);
        _exit(0); /* no release */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
    FILE *f;
    char now[64] = "";
    char path[700];
    snprintf(path, sizeof(path), "%s/class/net/vf0/address", root);
    f = fopen(path, "r");
    cr_assert(f && fgets(now, sizeof(now), f));
    fclose(f);
    cr_assert_str_eq(now, "02:de:ad:00:00:01\n", "the child set the guest MAC");

    recorder rec = { .vfname = "vf" };
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
    recorder rec = { .vfname = "vf" };
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
    pid_t pid = fork();
    if (pid == 0) {
        recorder crec = { .vfname = "vf" };
        alloc_vf_pool cp;
        const char *pfs[] = { "pf0" };
        alloc_nl nl = { .send = record, .ctx = &crec };
        alloc_store *cs;
        alloc_owner co;
        alloc_vf v;
        if (alloc_vf_pool_init(&cp, "net1", pfs, 1, root, &nl, NULL, 0) ||
            alloc_store_open(&cs, state, NULL, NULL, 0) || alloc_owner_init(&co, "dead/vm", getpid(), NULL, 0) ||
            alloc_vf_take(cs, &cp, &co, 0, "02:de:ad:00:00:01", &v, NULL, 0))
            _exit(1);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
    recorder rec = { .vfname = "vf", .fail_next = 1 };
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

static recorder *view(recorder *rec, int n, const char *fmt)
{
    rec->nview = n;
    for (int i = 0; i < n; i++)
        snprintf(rec->pf[i].mac, MAC_STRLEN, fmt, i);
    return rec;
}

/* Item 2: a VF bound to vfio-pci has no netdev. Its MAC is read through
 * the PF before the guest's goes on, and put back at release; before, the
 * saved MAC was empty and nothing was restored. */
Test(alloc_vf, vfio_vf_mac_read_through_pf_and_restored)
{
    fake_bound("pf0", 7, 0x3b, 2, "vfio-pci");
    recorder rec = { 0 };
    view(&rec, 2, "52:00:00:00:3b:%02x");
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
    pid_t pid = fork();
    if (pid == 0) {
        recorder crec = { 0 };
        view(&crec, 1, "52:00:00:00:3b:%02x");
        alloc_vf_pool cp;
        const char *pfs[] = { "pf0" };
        alloc_nl nl = { .send = record, .ctx = &crec, .get = answer };
        alloc_store *cs;
        alloc_owner co;
        alloc_vf v;
        if (alloc_vf_pool_init(&cp, "net1", pfs, 1, root, &nl, NULL, 0) ||
            alloc_store_open(&cs, state, NULL, NULL, 0) ||
            alloc_owner_init(&co, "dead/vm", getpid(), NULL, 0) ||
            alloc_vf_take(cs, &cp, &co, 0, "02:de:ad:00:00:01", &v, NULL, 0) ||
            strcmp(v.saved_mac, "52:00:00:00:3b:00"))
            _exit(1);
        _exit(0); /* killed: no release */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
    recorder rec = { 0 };
    view(&rec, 1, "02:de:ad:00:00:%02x"); /* what the dead guest left: 01 */
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
    recorder rec = { 0 };
    view(&rec, 1, "52:00:00:00:3b:%02x");
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
    recorder rec = { .vfname = "vf" };
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
    recorder rec = { 0 };
    view(&rec, 1, "52:00:00:00:3b:%02x");
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
    recorder rec = { 0 };
    view(&rec, 3, "52:00:00:00:3b:%02x");
    alloc_nl nl = { .send = record, .ctx = &rec, .get = answer };
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
