/* bridge.c - tap NICs on a host bridge. DTS rewrites /etc/qemu-ifup so the
 * tap joins opt_br; qfleet writes no system file and instead makes the tap
 * QEMU created a port of the bridge itself, as root or with CAP_NET_ADMIN. */
#include "src/fleet/fleet_int.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/sockios.h>

static int bridge_exists(const char *br)
{
    char path[IF_NAMESIZE + 32];
    struct stat st;
    snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", br);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fleet__bridges_check(const struct cfg_vm_info *vi, char *err, size_t errlen)
{
    for (int i = 0; i < vi->nnics; i++) {
        const struct cfg_nic_info *n = &vi->nics[i];
        if (!n->attach_bridge || bridge_exists(n->bridge))
            continue;
        snprintf(err, errlen,
                 "NIC %s: bridge %s does not exist (create it: ip link add %s type bridge; "
                 "ip link set %s up)", n->id, n->bridge, n->bridge, n->bridge);
        return -ENODEV;
    }
    return 0;
}

/* ifname up and a port of br: SIOCBRADDIF, the call brctl addif makes. */
static int attach_one(int sk, const char *ifname, const char *br, char *err, size_t errlen)
{
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    const char *step = "find";
    if (ioctl(sk, SIOCGIFINDEX, &ifr) < 0)
        goto fail;
    int idx = ifr.ifr_ifindex;
    step = "bring up";
    if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
        goto fail;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0)
        goto fail;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", br);
    ifr.ifr_ifindex = idx;
    step = "add to the bridge";
    if (ioctl(sk, SIOCBRADDIF, &ifr) < 0)
        goto fail;
    return 0;
fail:;
    int e = errno;
    snprintf(err, errlen, "tap %s: %s (bridge %s): %s", ifname, step, br, strerror(e));
    return -e;
}

int fleet__bridges_attach(fguest_t *g, char *err, size_t errlen)
{
    int sk = -1, rc = 0;
    for (int i = 0; rc == 0 && i < g->vi->nnics; i++) {
        const struct cfg_nic_info *n = &g->vi->nics[i];
        if (!n->attach_bridge)
            continue;
        if (sk < 0 && (sk = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
            rc = -errno;
            snprintf(err, errlen, "socket: %s", strerror(errno));
            break;
        }
        char ifn[16];
        cfg_tap_ifname(g->vm, &g->res, i, ifn);
        rc = attach_one(sk, ifn, n->bridge, err, errlen);
    }
    if (sk >= 0)
        close(sk);
    return rc;
}
