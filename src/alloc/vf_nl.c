/* vf_nl.c - a VF's MAC and VLAN as its PF sees them, over rtnetlink:
 * RTM_GETLINK on the PF with IFLA_EXT_MASK = RTEXT_FILTER_VF answers with
 * IFLA_VFINFO_LIST > IFLA_VF_INFO > { IFLA_VF_MAC, IFLA_VF_VLAN, ... } per
 * VF, which works whatever driver the VF is bound to (vfio-pci included,
 * where the VF has no netdev of its own). RTM_SETLINK with IFLA_VF_VLAN
 * sets the VLAN the PF tags the VF's traffic with. */
#include "src/alloc/vf.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REPLY_MAX (256 * 1024) /* a PF with 256 VFs answers ~60 KiB */

int alloc_nl_kernel_get(void *ctx, const void *req, size_t len, void *reply, size_t replylen)
{
    (void)ctx;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct timeval tv = { .tv_sec = 5 }; /* a kernel that never answers */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    const struct nlmsghdr *rq = req;
    int rc = -EIO;
    char *buf = malloc(REPLY_MAX);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    if (sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, buf, REPLY_MAX, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
            goto out;
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != rq->nlmsg_seq)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                rc = e->error ? e->error : -EIO;
                goto out;
            }
            if (h->nlmsg_len > replylen) {
                rc = -EMSGSIZE;
                goto out;
            }
            memcpy(reply, h, h->nlmsg_len);
            rc = (int)h->nlmsg_len;
            goto out;
        }
    }
out:
    free(buf);
    close(fd);
    return rc;
}

static void put_attr(char *msg, size_t *len, unsigned short type, const void *data, size_t n)
{
    struct rtattr *a = (struct rtattr *)(msg + *len);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(n);
    memcpy(RTA_DATA(a), data, n);
    *len += RTA_ALIGN(a->rta_len);
}

static size_t link_msg(void *buf, unsigned short type, unsigned short flags, int ifindex)
{
    static unsigned seq = 0x10000; /* apart from vf.c's RTM_SETLINK numbers */
    struct nlmsghdr *h = buf;
    memset(buf, 0, 256);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = ++seq;
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    return NLMSG_ALIGN(NLMSG_LENGTH(sizeof(struct ifinfomsg)));
}

/* Find VF vf in the IFLA_VFINFO_LIST of an RTM_NEWLINK reply. */
static int parse_vfinfo(const struct nlmsghdr *h, size_t len, int vf, char mac[MAC_STRLEN],
                        int *vlan)
{
    if (len < NLMSG_LENGTH(sizeof(struct ifinfomsg)) || h->nlmsg_len > len ||
        h->nlmsg_type != RTM_NEWLINK)
        return -EPROTO;
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
    const struct rtattr *a = (const struct rtattr *)((const char *)ifi + NLMSG_ALIGN(sizeof(*ifi)));
    for (int al = (int)alen; RTA_OK(a, al); a = RTA_NEXT(a, al)) {
        if ((a->rta_type & NLA_TYPE_MASK) != IFLA_VFINFO_LIST)
            continue;
        int ll = (int)RTA_PAYLOAD(a);
        for (const struct rtattr *info = RTA_DATA(a); RTA_OK(info, ll); info = RTA_NEXT(info, ll)) {
            if ((info->rta_type & NLA_TYPE_MASK) != IFLA_VF_INFO)
                continue;
            const struct ifla_vf_mac *m = NULL;
            const struct ifla_vf_vlan *v = NULL;
            int il = (int)RTA_PAYLOAD(info);
            for (const struct rtattr *x = RTA_DATA(info); RTA_OK(x, il); x = RTA_NEXT(x, il)) {
                if (x->rta_type == IFLA_VF_MAC && RTA_PAYLOAD(x) >= sizeof(*m))
                    m = RTA_DATA(x);
                else if (x->rta_type == IFLA_VF_VLAN && RTA_PAYLOAD(x) >= sizeof(*v))
                    v = RTA_DATA(x);
            }
            if (!m || (int)m->vf != vf)
                continue;
            mac_format(m->mac, mac);
            *vlan = v ? (int)v->vlan : 0;
            return 0;
        }
    }
    return -ENOENT;
}

int alloc_vf_query(const alloc_nl *nl, int pf_ifindex, int vf, char mac[MAC_STRLEN], int *vlan)
{
    int (*get)(void *, const void *, size_t, void *, size_t) =
        nl && nl->get ? nl->get : nl && nl->send ? NULL : alloc_nl_kernel_get;
    if (!get)
        return -EOPNOTSUPP;
    union {
        char buf[256];
        struct nlmsghdr align;
    } u;
    size_t len = link_msg(u.buf, RTM_GETLINK, NLM_F_REQUEST, pf_ifindex);
    uint32_t mask = RTEXT_FILTER_VF;
    put_attr(u.buf, &len, IFLA_EXT_MASK, &mask, sizeof(mask));
    u.align.nlmsg_len = (unsigned)len;
    struct nlmsghdr *reply = malloc(REPLY_MAX);
    if (!reply)
        return -ENOMEM;
    int n = get(nl ? nl->ctx : NULL, u.buf, len, reply, REPLY_MAX);
    int rc = n < 0 ? n : parse_vfinfo(reply, (size_t)n, vf, mac, vlan);
    free(reply);
    return rc;
}

int alloc_vf_set_vlan(const alloc_nl *nl, int pf_ifindex, int vf, int vlan)
{
    if (vlan < 0 || vlan > 4095)
        return -EINVAL;
    union {
        char buf[256];
        struct nlmsghdr align;
    } u;
    size_t len = link_msg(u.buf, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, pf_ifindex);
    struct rtattr *list = (struct rtattr *)(u.buf + len);
    list->rta_type = IFLA_VFINFO_LIST;
    len += RTA_LENGTH(0);
    struct rtattr *info = (struct rtattr *)(u.buf + len);
    info->rta_type = IFLA_VF_INFO;
    len += RTA_LENGTH(0);
    struct ifla_vf_vlan v = { .vf = (unsigned)vf, .vlan = (unsigned)vlan, .qos = 0 };
    put_attr(u.buf, &len, IFLA_VF_VLAN, &v, sizeof(v));
    info->rta_len = (unsigned short)(u.buf + len - (char *)info);
    list->rta_len = (unsigned short)(u.buf + len - (char *)list);
    u.align.nlmsg_len = (unsigned)len;
    return nl && nl->send ? nl->send(nl->ctx, u.buf, len) : alloc_nl_kernel(NULL, u.buf, len);
}
