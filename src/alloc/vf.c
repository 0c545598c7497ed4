/* alloc_vf.c - SR-IOV VF pools: sysfs discovery, VF MACs over netlink. */
#include "src/alloc/vf.h"
#include "src/alloc/alloc_int.h"

#include <dirent.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NOTE_PREFIX "vfmac:"

/* --- netlink -------------------------------------------------------- */

int alloc_nl_kernel(void *ctx, const void *req, size_t len)
{
    (void)ctx;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    /* A kernel that never answers must not hang the controller. */
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    const struct nlmsghdr *rq = req;
    int rc = -EIO;
    if (sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        union {
            char buf[8192];
            struct nlmsghdr align;
        } u;
        ssize_t n = recv(fd, u.buf, sizeof(u.buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
            goto out;
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = &u.align; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != rq->nlmsg_seq || h->nlmsg_type != NLMSG_ERROR)
                continue;
            const struct nlmsgerr *e = NLMSG_DATA(h);
            rc = e->error; /* 0 is the ack, else -errno */
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

static struct rtattr *nest(char *msg, size_t *len, unsigned short type)
{
    struct rtattr *a = (struct rtattr *)(msg + *len);
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(0);
    *len += RTA_ALIGN(a->rta_len);
    return a;
}

/* RTM_SETLINK on the PF: IFLA_VFINFO_LIST { IFLA_VF_INFO { IFLA_VF_MAC
 * struct ifla_vf_mac { vf, mac } } }. Returns the request's length. */
static size_t setmac_msg(void *buf, int pf_ifindex, int vf, const unsigned char mac[6])
{
    static unsigned seq;
    char *msg = buf;
    struct nlmsghdr *h = buf;
    size_t len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    memset(buf, 0, 256);
    h->nlmsg_type = RTM_SETLINK;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = ++seq;
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = pf_ifindex;
    len = NLMSG_ALIGN(len);
    struct rtattr *list = nest(msg, &len, IFLA_VFINFO_LIST);
    struct rtattr *info = nest(msg, &len, IFLA_VF_INFO);
    struct rtattr *m = (struct rtattr *)(msg + len);
    m->rta_type = IFLA_VF_MAC;
    m->rta_len = RTA_LENGTH(sizeof(struct ifla_vf_mac));
    struct ifla_vf_mac vm = { .vf = (unsigned)vf };
    memcpy(vm.mac, mac, 6);
    memcpy(RTA_DATA(m), &vm, sizeof(vm));
    len += RTA_ALIGN(m->rta_len);
    info->rta_len = (unsigned short)(msg + len - (char *)info);
    list->rta_len = (unsigned short)(msg + len - (char *)list);
    h->nlmsg_len = (unsigned)len;
    return len;
}

static int set_vf_mac(alloc_vf_pool *p, int pf_ifindex, int vf, const char *mac)
{
    unsigned char m[6];
    union {
        char buf[256];
        struct nlmsghdr align;
    } u;
    if (mac_parse(mac, m) < 0)
        return -EINVAL;
    size_t len = setmac_msg(u.buf, pf_ifindex, vf, m);
    return p->nl.send ? p->nl.send(p->nl.ctx, u.buf, len) : alloc_nl_kernel(NULL, u.buf, len);
}

/* --- sysfs ---------------------------------------------------------- */

static int read_str(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int rc = fgets(out, (int)len, f) ? 0 : -EIO;
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return rc;
}

/* "dddd:bb:ss.f", hex, as sysfs names PCI devices. */
static int pci_addr_ok(const char *a)
{
    static const char shape[] = "xxxx:xx:xx.x";
    if (strlen(a) != sizeof(shape) - 1)
        return 0;
    for (size_t i = 0; shape[i]; i++) {
        char c = a[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        if (shape[i] == 'x' ? !hex : c != shape[i])
            return 0;
    }
    return a[11] <= '7';
}

/* The last part of the target of symlink path. */
static int link_base(const char *path, char *out, size_t len)
{
    char t[PATH_MAX];
    ssize_t n = readlink(path, t, sizeof(t) - 1);
    if (n < 0)
        return -errno;
    t[n] = '\0';
    const char *b = strrchr(t, '/');
    b = b ? b + 1 : t;
    if (strlen(b) >= len)
        return -ENAMETOOLONG;
    strcpy(out, b);
    return 0;
}

/* The netdev of PCI device addr: the one entry of .../ADDR/net/. */
static void vf_netdev(const char *root, const char *addr, char *out, size_t len)
{
    char path[PATH_MAX + 64];
    out[0] = '\0';
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/net", root, addr);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strlen(e->d_name) < len) {
            strcpy(out, e->d_name);
            break;
        }
    closedir(d);
}

/* sel names f: its PCI address, or "PF:N". */
static int sel_is(const char *sel, const alloc_vf *f)
{
    char pfn[ALLOC_VF_SEL_LEN];
    snprintf(pfn, sizeof(pfn), "%s:%d", f->pf, f->vf);
    return !strcmp(sel, f->pci) || !strcmp(sel, pfn);
}

/* alloc_vf_pool_limit's choice: f is one of the pool's VFs. */
static int vf_in_pool(const alloc_vf_pool *p, const alloc_vf *f)
{
    int in = p->nonly == 0;
    for (size_t i = 0; i < p->nonly && !in; i++)
        in = sel_is(p->only[i], f);
    for (size_t i = 0; i < p->nexclude && in; i++)
        in = !sel_is(p->exclude[i], f);
    return in;
}

static int cmp_vf(const void *a, const void *b)
{
    const alloc_vf *x = a, *y = b;
    return x->vf - y->vf;
}

/* Append the VFs of one PF to *v. */
static int scan_pf(const alloc_vf_pool *p, const char *pf, alloc_vf **v, size_t *n, char *err,
                   size_t errlen)
{
    char path[PATH_MAX + 320], line[32];
    snprintf(path, sizeof(path), "%s/class/net/%s/ifindex", p->root, pf);
    int rc = read_str(path, line, sizeof(line));
    int ifindex = rc == 0 ? atoi(line) : 0;
    if (ifindex <= 0)
        return alloc__errf(err, errlen, rc < 0 ? rc : -EINVAL, "PF %s of pool %s: no ifindex in %s",
                          pf, p->name, path);
    snprintf(path, sizeof(path), "%s/class/net/%s/device", p->root, pf);
    DIR *d = opendir(path);
    if (!d)
        return alloc__errf(err, errlen, -errno, "PF %s of pool %s: %s: %s", pf, p->name, path,
                          strerror(errno));
    size_t first = *n;
    struct dirent *e;
    rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "virtfn", 6) || !e->d_name[6])
            continue;
        long idx = strtol(e->d_name + 6, &end, 10);
        if (*end || idx < 0 || idx > 65535)
            continue;
        alloc_vf *nv = realloc(*v, (*n + 1) * sizeof(**v));
        if (!nv) {
            rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
            break;
        }
        *v = nv;
        alloc_vf *f = &nv[*n];
        memset(f, 0, sizeof(*f));
        snprintf(path, sizeof(path), "%s/class/net/%s/device/%s", p->root, pf, e->d_name);
        if (link_base(path, f->pci, sizeof(f->pci)) < 0 || !pci_addr_ok(f->pci)) {
            rc = alloc__errf(err, errlen, -EINVAL, "%s does not link to a PCI device", path);
            break;
        }
        snprintf(f->pf, sizeof(f->pf), "%s", pf);
        f->pf_ifindex = ifindex;
        f->vf = (int)idx;
        vf_netdev(p->root, f->pci, f->netdev, sizeof(f->netdev));
        if (vf_in_pool(p, f))
            (*n)++;
    }
    closedir(d);
    qsort(*v + first, *n - first, sizeof(**v), cmp_vf);
    return rc;
}

int alloc_vf_scan(const alloc_vf_pool *p, alloc_vf **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < p->npf; i++) {
        int rc = scan_pf(p, p->pf[i], out, n, err, errlen);
        if (rc < 0) {
            free(*out);
            *out = NULL;
            *n = 0;
            return rc;
        }
    }
    return 0;
}

/* QEMU opens a VF through vfio-pci only: a VF another driver has (the
 * host uses it) or none has is refused here, saying what to do, rather
 * than by QEMU at launch. No driver link but a netdev: a tree that does
 * not show drivers; QEMU has the last word then. */
static int vf_driver_check(const alloc_vf_pool *p, const alloc_vf *f, char *err, size_t errlen)
{
    char path[PATH_MAX + 64], drv[64];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", p->root, f->pci);
    int rc = link_base(path, drv, sizeof(drv));
    if (rc == 0 && !strcmp(drv, "vfio-pci"))
        return 0;
    if (rc < 0 && f->netdev[0])
        return 0;
    char unbind[PATH_MAX + 128] = "";
    if (rc == 0)
        snprintf(unbind, sizeof(unbind), "echo %s > %s/bus/pci/drivers/%s/unbind; ", f->pci,
                 p->root, drv);
    return alloc__errf(err, errlen, -EBUSY,
                      "VF %d of %s (%s) is bound to %s, not vfio-pci, so QEMU cannot pass it "
                      "through. Bind it: modprobe vfio-pci; echo vfio-pci > "
                      "%s/bus/pci/devices/%s/driver_override; %secho %s > "
                      "%s/bus/pci/drivers_probe. Or, if the host uses it, leave it out of pool "
                      "%s (vf_pool exclude=%s)",
                      f->vf, f->pf, f->pci, rc == 0 ? drv : "no driver", p->root, f->pci, unbind,
                      f->pci, p->root, p->name, f->pci);
}

/* The VF's netdev must lead back to the same PCI address; then read its
 * MAC. A VF bound to vfio-pci has no netdev: its PF tells its MAC. */
static int vf_resolve(const alloc_vf_pool *p, alloc_vf *f, char *err, size_t errlen)
{
    char path[PATH_MAX + 64], back[64];
    f->saved_mac[0] = '\0';
    int rc = vf_driver_check(p, f, err, errlen);
    if (rc < 0)
        return rc;
    if (!f->netdev[0]) {
        /* vfio-pci: no netdev, but the PF knows the VF's MAC */
        char mac[MAC_STRLEN];
        int vlan = 0;
        if (alloc_vf_query(&p->nl, f->pf_ifindex, f->vf, mac, &vlan) == 0) {
            snprintf(f->saved_mac, sizeof(f->saved_mac), "%s", mac);
            f->saved_vlan = vlan;
        }
        return 0;
    }
    snprintf(path, sizeof(path), "%s/class/net/%s/device", p->root, f->netdev);
    rc = link_base(path, back, sizeof(back));
    if (rc < 0 || strcmp(back, f->pci))
        return alloc__errf(err, errlen, -EINVAL,
                          "VF %d of %s: PCI device %s lists netdev %s, but %s belongs to %s",
                          f->vf, f->pf, f->pci, f->netdev, f->netdev, rc < 0 ? "no PCI device" : back);
    char mac[64];
    unsigned char m[6];
    snprintf(path, sizeof(path), "%s/class/net/%s/address", p->root, f->netdev);
    if (read_str(path, mac, sizeof(mac)) == 0 && mac_parse(mac, m) == 0)
        mac_format(m, f->saved_mac);
    return 0;
}

/* --- pools ---------------------------------------------------------- */

int alloc_vf_pool_init(alloc_vf_pool *p, const char *name, const char *const *pfs, size_t n,
                       const char *sysfs_root, const alloc_nl *nl, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (!name || !*name || strlen(name) >= sizeof(p->name))
        return alloc__errf(err, errlen, -EINVAL, "bad VF pool name");
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (n == 0 || n > ALLOC_VF_MAX_PF)
        return alloc__errf(err, errlen, -EINVAL, "VF pool %s: want 1-%d PFs", name,
                          ALLOC_VF_MAX_PF);
    for (size_t i = 0; i < n; i++) {
        if (!pfs[i] || !*pfs[i] || strlen(pfs[i]) >= IFNAMSIZ || strchr(pfs[i], '/') ||
            pfs[i][0] == '.')
            return alloc__errf(err, errlen, -EINVAL, "VF pool %s: bad PF name '%s'", name,
                              pfs[i] ? pfs[i] : "");
        strcpy(p->pf[i], pfs[i]);
    }
    p->npf = n;
    const char *root = sysfs_root ? sysfs_root : "/sys";
    if (strlen(root) >= sizeof(p->root))
        return alloc__errf(err, errlen, -ENAMETOOLONG, "sysfs root too long");
    strcpy(p->root, root);
    if (nl)
        p->nl = *nl;
    return 0;
}

/* Note value: "SAVED_MAC PF VF" ("-" for an unknown MAC). The PF's
 * ifindex is looked up again at restore time: notes outlive reboots. */
static int note_key(const char *pci, char *key, size_t len)
{
    return snprintf(key, len, NOTE_PREFIX "%s", pci) < (int)len ? 0 : -ENAMETOOLONG;
}

static int restore_note(alloc_store *s, alloc_vf_pool *p, const alloc_vf *f, const char *note)
{
    char mac[32], pf[IFNAMSIZ + 8], key[64];
    int vf, vlan = -1;
    int k = sscanf(note, "%31s %23s %d %d", mac, pf, &vf, &vlan);
    if (k < 3)
        return -EINVAL;
    int rc = 0;
    if (k == 4) /* a VLAN was set: its old one back first */
        rc = alloc_vf_set_vlan(&p->nl, f->pf_ifindex, vf, vlan);
    if (rc == 0 && strcmp(mac, "-")) /* unknown: nothing to put back */
        rc = set_vf_mac(p, f->pf_ifindex, vf, mac);
    if (rc == 0 && note_key(f->pci, key, sizeof(key)) == 0)
        alloc__note_del(s, key);
    return rc;
}

/* Under the lock: restore the VFs of vfs[] that have a note and no lease. */
static int recover(alloc_store *s, alloc_vf_pool *p, const alloc_vf *vfs, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char key[64];
        const char *note;
        if (note_key(vfs[i].pci, key, sizeof(key)) < 0 || !(note = alloc__note_get(s, key)) ||
            alloc__find(s, "vf", vfs[i].pci))
            continue;
        char copy[128];
        snprintf(copy, sizeof(copy), "%s", note);
        if (restore_note(s, p, &vfs[i], copy) == 0)
            count++;
    }
    return count;
}

int alloc_vf_recover(alloc_store *s, alloc_vf_pool *p, char *err, size_t errlen)
{
    alloc_vf *vfs;
    size_t n;
    int rc = alloc_vf_scan(p, &vfs, &n, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = alloc__enter(s, err, errlen)) == 0)
        rc = alloc__leave(s, recover(s, p, vfs, n), err, errlen);
    free(vfs);
    return rc;
}

static int nic_owner(const char *owner, int nic, char *out, char *err, size_t errlen)
{
    if (nic < 0 || nic > 9999)
        return alloc__errf(err, errlen, -EINVAL, "bad NIC index %d", nic);
    if (snprintf(out, ALLOC_OWNER_MAX, "%s/nic%d", owner, nic) >= ALLOC_OWNER_MAX)
        return alloc__errf(err, errlen, -ENAMETOOLONG, "owner name too long");
    return 0;
}

static const alloc_vf *vf_by_pci(const alloc_vf *vfs, size_t n, const char *pci)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(vfs[i].pci, pci))
            return &vfs[i];
    return NULL;
}

/* Drop the lease (and the note when it was ours) of a take whose MAC could
 * not be set. */
static void undo_take(alloc_store *s, const char *owner, const char *pci, int made_note)
{
    for (size_t i = 0; i < alloc__count(s); i++) {
        const alloc_lease *l = alloc__at(s, i);
        if (!strcmp(l->kind, "vf") && !strcmp(l->value, pci) && !strcmp(l->owner, owner)) {
            alloc__remove_at(s, i);
            break;
        }
    }
    char key[64];
    if (made_note && note_key(pci, key, sizeof(key)) == 0)
        alloc__note_del(s, key);
}

/* MAC, then VLAN (vlan > 0) on a VF just taken; on a VLAN failure the
 * saved MAC goes back. "" or the failure in why. */
static int set_vf(alloc_vf_pool *p, const alloc_vf *f, const char *gmac, int vlan, char *why,
                  size_t whylen)
{
    int rc = set_vf_mac(p, f->pf_ifindex, f->vf, gmac);
    if (rc < 0) {
        snprintf(why, whylen, "set MAC %s on VF %d of %s (%s): %s", gmac, f->vf, f->pf, f->pci,
                 strerror(-rc));
        return rc;
    }
    if (vlan > 0 && (rc = alloc_vf_set_vlan(&p->nl, f->pf_ifindex, f->vf, vlan)) < 0) {
        snprintf(why, whylen, "set VLAN %d on VF %d of %s (%s): %s", vlan, f->vf, f->pf, f->pci,
                 strerror(-rc));
        if (f->saved_mac[0])
            set_vf_mac(p, f->pf_ifindex, f->vf, f->saved_mac);
    }
    return rc;
}

static int take_vf(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                   const char *mac, int vlan, alloc_vf *out, char *err, size_t errlen);

int alloc_vf_take(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                  const char *mac, alloc_vf *out, char *err, size_t errlen)
{
    return take_vf(s, p, o, nic, mac, 0, out, err, errlen);
}

int alloc_vf_take_vlan(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                       const char *mac, int vlan, alloc_vf *out, char *err, size_t errlen)
{
    if (vlan < 0 || vlan > 4095)
        return alloc__errf(err, errlen, -EINVAL, "bad VLAN %d for a VF: want 0-4095", vlan);
    return take_vf(s, p, o, nic, mac, vlan, out, err, errlen);
}

static int take_vf(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                   const char *mac, int vlan, alloc_vf *out, char *err, size_t errlen)
{
    char owner[ALLOC_OWNER_MAX], key[64], note[128], gmac[MAC_STRLEN];
    unsigned char m[6];
    int rc = nic_owner(o->name, nic, owner, err, errlen);
    if (rc < 0)
        return rc;
    if (mac_parse(mac, m) < 0 || (m[0] & 1))
        return alloc__errf(err, errlen, -EINVAL, "bad guest MAC '%s' for a VF", mac ? mac : "");
    mac_format(m, gmac);
    alloc_vf *vfs;
    size_t n;
    if ((rc = alloc_vf_scan(p, &vfs, &n, err, errlen)) < 0)
        return rc;
    if ((rc = alloc__enter(s, err, errlen)) < 0) {
        free(vfs);
        return rc;
    }
    recover(s, p, vfs, n);
    alloc_vf pick;
    alloc_lease *have = alloc__find_owned(s, "vf", owner);
    const alloc_vf *f = have ? vf_by_pci(vfs, n, have->value) : NULL;
    if (have && !f) {
        rc = alloc__errf(err, errlen, -ENODEV, "%s holds VF %s, which is not in pool %s", owner,
                        have->value, p->name);
        goto leave;
    }
    if (have) {
        /* Taken before: same VF; follow a new guest MAC if there is one. */
        pick = *f;
        snprintf(pick.mac, sizeof(pick.mac), "%.17s", have->data);
        if (strcmp(pick.mac, gmac)) {
            if ((rc = set_vf_mac(p, f->pf_ifindex, f->vf, gmac)) < 0) {
                alloc__errf(err, errlen, rc, "set MAC of VF %s: %s", f->pci, strerror(-rc));
                goto leave;
            }
            snprintf(have->data, sizeof(have->data), "%s", gmac);
            alloc__touch(s);
        }
        if (vlan > 0 && (rc = alloc_vf_set_vlan(&p->nl, f->pf_ifindex, f->vf, vlan)) < 0) {
            alloc__errf(err, errlen, rc, "set VLAN %d on VF %s: %s", vlan, f->pci, strerror(-rc));
            goto leave;
        }
        pick.vlan = vlan;
        if (note_key(f->pci, key, sizeof(key)) == 0 && alloc__note_get(s, key))
            sscanf(alloc__note_get(s, key), "%17s", pick.saved_mac);
        if (!strcmp(pick.saved_mac, "-"))
            pick.saved_mac[0] = '\0';
        goto done;
    }
    for (size_t i = 0; i < n && !f; i++)
        if (!alloc__find(s, "vf", vfs[i].pci))
            f = &vfs[i];
    if (!f) {
        rc = alloc__errf(err, errlen, -ENOSPC, "VF pool %s: all %zu VFs are leased", p->name, n);
        goto leave;
    }
    pick = *f;
    if ((rc = vf_resolve(p, &pick, err, errlen)) < 0)
        goto leave;
    if (vlan > 0 && pick.netdev[0]) { /* the netdev showed the MAC, not the VLAN */
        char cur[MAC_STRLEN];
        if (alloc_vf_query(&p->nl, pick.pf_ifindex, pick.vf, cur, &pick.saved_vlan) < 0)
            pick.saved_vlan = 0;
    }
    /* A note left by a dead owner whose restore failed still holds the
     * VF's original MAC: keep it rather than the MAC the VF has now. */
    note_key(pick.pci, key, sizeof(key));
    const char *left = alloc__note_get(s, key);
    int made_note = !left;
    if (left && sscanf(left, "%17s", pick.saved_mac) == 1 && !strcmp(pick.saved_mac, "-"))
        pick.saved_mac[0] = '\0';
    snprintf(note, sizeof(note), "%s %s %d", pick.saved_mac[0] ? pick.saved_mac : "-", pick.pf,
             pick.vf);
    int write_note = made_note;
    if (vlan > 0) { /* the VLAN to put back too, once one is set */
        int k = left ? sscanf(left, "%*s %*s %*d %d", &pick.saved_vlan) : 0;
        if (left && k != 1)
            snprintf(note, sizeof(note), "%s", left);
        if (!left || k != 1) {
            write_note = 1;
            snprintf(note + strlen(note), sizeof(note) - strlen(note), " %d", pick.saved_vlan);
        }
    }
    if (alloc__reserve(s, 1) < 0 || (write_note && alloc__note_set(s, key, note) < 0)) {
        rc = alloc__errf(err, errlen, -ENOMEM, "out of memory");
        goto leave;
    }
    alloc__add(s, o, owner, "vf", pick.pci, 0, gmac);
    /* Outside a batch, make the lease and the saved MAC durable before the
     * VF changes: a crash in between then leaves a note to restore from. */
    int two_phase = !alloc__in_batch(s);
    if (two_phase && (rc = alloc__leave(s, 0, err, errlen)) < 0) {
        free(vfs);
        return rc;
    }
    char why[192];
    rc = set_vf(p, &pick, gmac, vlan, why, sizeof(why));
    if (rc < 0) {
        if (!two_phase || alloc__enter(s, NULL, 0) == 0) {
            undo_take(s, owner, pick.pci, made_note);
            if (two_phase)
                alloc__leave(s, 0, NULL, 0);
        }
        free(vfs);
        return alloc__errf(err, errlen, rc, "%s", why);
    }
    snprintf(pick.mac, sizeof(pick.mac), "%s", gmac);
    pick.vlan = vlan;
    if (two_phase) {
        *out = pick;
        free(vfs);
        return 0;
    }
done:
    *out = pick;
leave:
    free(vfs);
    return alloc__leave(s, rc, err, errlen);
}

int alloc_vf_release(alloc_store *s, alloc_vf_pool *p, const char *owner, int nic, char *err,
                     size_t errlen)
{
    char name[ALLOC_OWNER_MAX], key[64], note[128] = "";
    int rc = nic_owner(owner, nic, name, err, errlen);
    if (rc < 0)
        return rc;
    alloc_vf *vfs;
    size_t n;
    if ((rc = alloc_vf_scan(p, &vfs, &n, err, errlen)) < 0)
        return rc;
    if ((rc = alloc__enter(s, err, errlen)) < 0) {
        free(vfs);
        return rc;
    }
    const alloc_lease *l = alloc__find_owned(s, "vf", name);
    if (!l) {
        rc = alloc__errf(err, errlen, -ENOENT, "%s holds no VF", name);
    } else {
        const alloc_vf *f = vf_by_pci(vfs, n, l->value);
        char pci[ALLOC_PCI_ADDR_LEN];
        snprintf(pci, sizeof(pci), "%.12s", l->value);
        alloc__remove_at(s, (size_t)(l - alloc__at(s, 0)));
        const char *saved = note_key(pci, key, sizeof(key)) == 0 ? alloc__note_get(s, key) : NULL;
        if (saved)
            snprintf(note, sizeof(note), "%s", saved);
        int restore = !f ? -ENODEV : saved ? restore_note(s, p, f, note) : 0;
        if (restore < 0)
            alloc__errf(err, errlen, restore,
                       "VF %s released, but its MAC was not restored: %s (will retry)", pci,
                       strerror(-restore));
        rc = alloc__leave(s, 0, err, errlen);
        free(vfs);
        return rc < 0 ? rc : restore;
    }
    free(vfs);
    return alloc__leave(s, rc, err, errlen);
}

/* --- pool limits and counts ------------------------------------------ */

/* One only/exclude entry in canonical form: "0000:bb:ss.f" or "PF:N". */
static int sel_norm(const alloc_vf_pool *p, const char *in, char out[ALLOC_VF_SEL_LEN])
{
    char pci[32];
    size_t n = in ? strlen(in) : 0;
    if (n == 0 || n >= ALLOC_VF_SEL_LEN)
        return -EINVAL;
    snprintf(pci, sizeof(pci), "%s%s", n == 7 ? "0000:" : "", in);
    for (char *c = pci; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    if (pci_addr_ok(pci)) {
        snprintf(out, ALLOC_VF_SEL_LEN, "%s", pci);
        return 0;
    }
    const char *colon = strrchr(in, ':');
    char *end;
    long vf = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !colon[1] || *end || vf < 0 || vf > 65535)
        return -EINVAL;
    for (size_t i = 0; i < p->npf; i++)
        if (strlen(p->pf[i]) == (size_t)(colon - in) && !strncmp(p->pf[i], in, (size_t)(colon - in))) {
            snprintf(out, ALLOC_VF_SEL_LEN, "%s:%ld", p->pf[i], vf);
            return 0;
        }
    return -ENOENT;
}

static int sel_list(const alloc_vf_pool *p, const char *what, const char *const *in, size_t n,
                    char (*out)[ALLOC_VF_SEL_LEN], size_t *nout, char *err, size_t errlen)
{
    if (n > ALLOC_VF_MAX_SEL)
        return alloc__errf(err, errlen, -EINVAL, "VF pool %s: more than %d %s entries", p->name,
                          ALLOC_VF_MAX_SEL, what);
    for (size_t i = 0; i < n; i++) {
        int rc = sel_norm(p, in[i], out[i]);
        if (rc < 0)
            return alloc__errf(err, errlen, -EINVAL,
                              "VF pool %s: %s entry '%s' is neither a VF's PCI address (3b:02.1) "
                              "nor PF:N with PF one of the pool's",
                              p->name, what, in[i] ? in[i] : "");
    }
    *nout = n;
    return 0;
}

int alloc_vf_pool_limit(alloc_vf_pool *p, const char *const *only, size_t n_only,
                        const char *const *exclude, size_t n_exclude, char *err, size_t errlen)
{
    p->nonly = p->nexclude = 0;
    int rc = sel_list(p, "vfs", only, n_only, p->only, &p->nonly, err, errlen);
    if (rc == 0)
        rc = sel_list(p, "exclude", exclude, n_exclude, p->exclude, &p->nexclude, err, errlen);
    if (rc < 0)
        p->nonly = p->nexclude = 0;
    return rc;
}

int alloc_vf_pool_of_pci(alloc_vf_pool *p, const char *pci, const char *sysfs_root,
                         const alloc_nl *nl, char *err, size_t errlen)
{
    const char *root = sysfs_root ? sysfs_root : "/sys";
    char path[PATH_MAX + 128], pf_pci[64], pf[IFNAMSIZ];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/physfn", root, pci);
    if (link_base(path, pf_pci, sizeof(pf_pci)) < 0 || !pci_addr_ok(pf_pci))
        return alloc__errf(err, errlen, -ENODEV,
                          "%s is not an SR-IOV VF (no %s): its MAC cannot be set", pci, path);
    vf_netdev(root, pf_pci, pf, sizeof(pf));
    if (!pf[0])
        return alloc__errf(err, errlen, -ENODEV,
                          "the PF %s of VF %s has no netdev: its VFs' MACs cannot be set", pf_pci,
                          pci);
    const char *pfs[] = { pf }, *only[] = { pci };
    int rc = alloc_vf_pool_init(p, pci, pfs, 1, sysfs_root, nl, err, errlen);
    return rc < 0 ? rc : alloc_vf_pool_limit(p, only, 1, NULL, 0, err, errlen);
}

int alloc_vf_count_free(alloc_store *s, const alloc_vf_pool *p, size_t *total, char *err,
                        size_t errlen)
{
    alloc_vf *vfs;
    size_t n;
    int rc = alloc_vf_scan(p, &vfs, &n, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = alloc__enter(s, err, errlen)) == 0) {
        int free_n = 0;
        for (size_t i = 0; i < n; i++)
            free_n += !alloc__find(s, "vf", vfs[i].pci);
        rc = alloc__leave(s, free_n, err, errlen);
    }
    if (total)
        *total = n;
    free(vfs);
    return rc;
}

int alloc_vf_take_pci(alloc_store *s, const char *pci, const char *sysfs_root, const alloc_nl *nl,
                      const alloc_owner *o, int nic, const char *mac, int vlan, alloc_vf *out,
                      char *err, size_t errlen)
{
    alloc_vf_pool p;
    int rc = alloc_vf_pool_of_pci(&p, pci, sysfs_root, nl, err, errlen);
    return rc < 0 ? rc : alloc_vf_take_vlan(s, &p, o, nic, mac, vlan, out, err, errlen);
}

int alloc_vf_release_pci(alloc_store *s, const char *pci, const char *sysfs_root,
                         const alloc_nl *nl, const char *owner, int nic, char *err, size_t errlen)
{
    alloc_vf_pool p;
    int rc = alloc_vf_pool_of_pci(&p, pci, sysfs_root, nl, err, errlen);
    return rc < 0 ? rc : alloc_vf_release(s, &p, owner, nic, err, errlen);
}
