/* sriov_fx.c - the fake SR-IOV host of sriov_fx.h: fake sysfs, netlink
 * recorder, QEMU stand-in. */
#include "sriov_fx.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "testutil.h"

/* ---- files ---- */

static void vpath(char *out, size_t len, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, len, fmt, ap);
    cr_assert(n > 0 && (size_t)n < len);
}

#define PATHF(p, fmt)                                                                              \
    char p[1024];                                                                                  \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vpath(p, sizeof(p), fmt, ap);                                                              \
        va_end(ap);                                                                                \
    } while (0)

void sfx_mkdir_p(const char *fmt, ...)
{
    PATHF(p, fmt);
    cr_assert_eq(fs_mkdir_p(p, 0755, 0), 0, "%s", p);
}

void sfx_write(const char *text, int mode, const char *fmt, ...)
{
    PATHF(p, fmt);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(p, (mode_t)mode), 0, "%s", p);
}

void sfx_symlink(const char *target, const char *fmt, ...)
{
    PATHF(p, fmt);
    unlink(p);
    cr_assert_eq(symlink(target, p), 0, "%s", p);
}

char *sfx_read(const char *fmt, ...)
{
    PATHF(p, fmt);
    return fs_read_file(p, 1 << 20, NULL);
}

/* ---- the fake sysfs ---- */

void sfx_pf(const char *root, const char *pf, int ifindex, int bus, int nvf, const char *vfname)
{
    char t[256], addr[32];
    /* the PF itself has other entries under device/ too */
    sfx_mkdir_p("%s/class/net/%s/device/driver", root, pf);
    snprintf(t, sizeof(t), "%d\n", ifindex);
    sfx_write(t, 0644, "%s/class/net/%s/ifindex", root, pf);
    sfx_mkdir_p("%s/bus/pci/devices/0000:%02x:00.0/net/%s", root, bus, pf);
    for (int i = 0; i < nvf; i++) {
        snprintf(addr, sizeof(addr), "0000:%02x:02.%d", bus, i);
        snprintf(t, sizeof(t), "../%s", addr);
        sfx_symlink(t, "%s/class/net/%s/device/virtfn%d", root, pf, i);
        sfx_mkdir_p("%s/bus/pci/devices/%s", root, addr);
        snprintf(t, sizeof(t), "../0000:%02x:00.0", bus);
        sfx_symlink(t, "%s/bus/pci/devices/%s/physfn", root, addr);
        if (!vfname)
            continue;
        sfx_mkdir_p("%s/bus/pci/devices/%s/net/%s%d", root, addr, vfname, i);
        sfx_mkdir_p("%s/class/net/%s%d", root, vfname, i);
        snprintf(t, sizeof(t), "../../../bus/pci/devices/%s", addr);
        sfx_symlink(t, "%s/class/net/%s%d/device", root, vfname, i);
        snprintf(t, sizeof(t), "aa:00:00:00:%02x:%02x\n", bus, i);
        sfx_write(t, 0644, "%s/class/net/%s%d/address", root, vfname, i);
    }
}

void sfx_bind(const char *root, int bus, int i, const char *vfname, const char *driver)
{
    char p[1024], t[256];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:%02x:02.%d/net", root, bus, i);
    tu_rmtree(p);
    if (vfname) {
        snprintf(p, sizeof(p), "%s/class/net/%s%d", root, vfname, i);
        tu_rmtree(p);
    }
    sfx_mkdir_p("%s/bus/pci/drivers/%s", root, driver);
    snprintf(t, sizeof(t), "../../../bus/pci/drivers/%s", driver);
    sfx_symlink(t, "%s/bus/pci/devices/0000:%02x:02.%d/driver", root, bus, i);
}

/* ---- the netlink recorder ---- */

static sfx_req *next_req(sfx_rec *rc, const struct ifinfomsg *ifi, int vf)
{
    cr_assert_lt(rc->n, SFX_MAX_REQ);
    sfx_req *r = &rc->r[rc->n++];
    memset(r, 0, sizeof(*r));
    r->ifindex = ifi->ifi_index;
    r->vf = vf;
    return r;
}

static int record_vlan(sfx_rec *rc, const struct ifinfomsg *ifi, const struct rtattr *a)
{
    cr_assert_eq(a->rta_len, RTA_LENGTH(sizeof(struct ifla_vf_vlan)));
    const struct ifla_vf_vlan *v = RTA_DATA(a);
    cr_assert_eq(v->qos, 0);
    sfx_req *r = next_req(rc, ifi, (int)v->vf);
    r->vlan = (int)v->vlan;
    if (rc->check)
        rc->check(r, rc->check_data);
    if (rc->fail_vlan)
        return rc->fail_vlan;
    if (r->vf < rc->nview)
        rc->pf[r->vf].vlan = r->vlan;
    return 0;
}

static int record_mac(sfx_rec *rc, const struct ifinfomsg *ifi, const struct rtattr *a)
{
    cr_assert_eq(a->rta_type, IFLA_VF_MAC);
    cr_assert_eq(a->rta_len, RTA_LENGTH(sizeof(struct ifla_vf_mac)));
    const struct ifla_vf_mac *vm = RTA_DATA(a);
    for (int i = 6; i < 32; i++)
        cr_assert_eq(vm->mac[i], 0);
    sfx_req *r = next_req(rc, ifi, (int)vm->vf);
    r->vlan = -1;
    mac_format(vm->mac, r->mac);
    if (rc->check)
        rc->check(r, rc->check_data);
    if (rc->fail)
        return rc->fail;
    if (rc->fail_next > 0) {
        rc->fail_next--;
        return -EAGAIN;
    }
    if (r->vf < rc->nview)
        snprintf(rc->pf[r->vf].mac, MAC_STRLEN, "%s", r->mac);
    char t[1024];
    snprintf(t, sizeof(t), "%s/class/net/%s%d", rc->root, rc->vfname ? rc->vfname : "", r->vf);
    if (rc->vfname && access(t, F_OK) == 0) { /* a VF with a netdev shows its MAC there */
        snprintf(t, sizeof(t), "%s\n", r->mac);
        sfx_write(t, 0644, "%s/class/net/%s%d/address", rc->root, rc->vfname, r->vf);
    }
    return 0;
}

/* Decode RTM_SETLINK { ifinfomsg, IFLA_VFINFO_LIST { IFLA_VF_INFO {
 * IFLA_VF_MAC or IFLA_VF_VLAN } } }, checking every byte that matters. */
static int record(void *ctx, const void *buf, size_t len)
{
    sfx_rec *rc = ctx;
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
    const struct rtattr *a = RTA_DATA(info);
    if (a->rta_type == IFLA_VF_VLAN)
        return record_vlan(rc, ifi, a);
    return record_mac(rc, ifi, a);
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
    sfx_rec *rc = ctx;
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

alloc_nl sfx_nl(sfx_rec *rec, int with_get)
{
    return (alloc_nl){ .send = record, .ctx = rec, .get = with_get ? answer : NULL };
}

sfx_rec *sfx_view(sfx_rec *rec, int n, const char *fmt)
{
    cr_assert_leq(n, SFX_MAX_VIEW);
    rec->nview = n;
    for (int i = 0; i < n; i++)
        snprintf(rec->pf[i].mac, MAC_STRLEN, fmt, i);
    return rec;
}

/* ---- the QEMU stand-in ---- */

void sfx_qemu(const char *dir, const char *name, sfx_qemu_mode mode)
{
    static const char *const tail[] = {
        [SFX_QEMU_STAYS] = "exec sleep 600\n",
        [SFX_QEMU_FAILS] = "echo 'stand-in: no VF here' >&2; exit 1\n",
        [SFX_QEMU_REAL] = "# each VF becomes an e1000 with the same id and guest address\n"
                          "for a; do\n"
                          "  shift\n"
                          "  case \"$a\" in vfio-pci,host=*) a=\"e1000,${a#vfio-pci,host=*,}\";; esac\n"
                          "  set -- \"$@\" \"$a\"\n"
                          "done\n"
                          "exec qemu-system-x86_64 \"$@\"\n",
    };
    char s[1024];
    snprintf(s, sizeof(s),
             "#!/bin/sh\n"
             "# stand-in for QEMU: there is no SR-IOV hardware here for vfio-pci to open\n"
             "out=\"$(dirname \"$0\")/argv-$2\"\n"
             "printf '%%s\\n' \"$@\" > \"$out.tmp\" && mv \"$out.tmp\" \"$out\"\n"
             "%s",
             tail[mode]);
    sfx_write(s, 0755, "%s/%s", dir, name);
}
