/* alloc_vf.h - pools of SR-IOV virtual functions passed through to guests.
 *
 * A pool names physical functions (PF netdevs); their VFs are found in
 * sysfs: ROOT/class/net/PF/device/virtfnN links to the VF's PCI device,
 * whose netdev (while a host driver owns it) is ROOT/bus/pci/devices/ADDR/
 * net/NAME. Taking a VF leases it ("vf" kind, owner "RUN/VM/nicN"), saves
 * its MAC, gives it the guest's MAC through the PF (RTM_SETLINK with
 * IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_MAC) and returns its PCI
 * address for `-device vfio-pci,host=ADDR,id=pt_N`. Releasing restores the
 * saved MAC and returns the VF to the pool.
 *
 * The saved MAC is a note in the lease store, written before the VF's MAC
 * changes, so a controller killed at any point leaves it behind: the next
 * take or release on the pool finds the VF unleased with a note, restores
 * the MAC and drops the note. */
#ifndef QF_ALLOC_VF_H
#define QF_ALLOC_VF_H

#include <limits.h>
#include <net/if.h>
#include <stddef.h>

#include "src/alloc/alloc.h"

#define ALLOC_VF_MAX_PF 16
#define ALLOC_PCI_ADDR_LEN 13 /* "0000:3b:02.1" + NUL */

/* How netlink requests reach the kernel. send gets one complete request
 * (a struct nlmsghdr and its payload, NLM_F_ACK set) and returns 0 once the
 * kernel acknowledged it, or the kernel's -errno. Tests put a recorder
 * here; send NULL means alloc_nl_kernel. */
typedef struct alloc_nl {
    int (*send)(void *ctx, const void *req, size_t len);
    void *ctx;
} alloc_nl;

/* Sends over a NETLINK_ROUTE socket (needs CAP_NET_ADMIN). */
int alloc_nl_kernel(void *ctx, const void *req, size_t len);

typedef struct alloc_vf_pool {
    char name[64];
    char pf[ALLOC_VF_MAX_PF][IFNAMSIZ];
    size_t npf;
    char root[PATH_MAX]; /* sysfs root */
    alloc_nl nl;
} alloc_vf_pool;

typedef struct alloc_vf {
    char pci[ALLOC_PCI_ADDR_LEN]; /* the VF: "0000:3b:02.1" */
    char netdev[IFNAMSIZ];        /* its netdev, "" when no host driver has it */
    char pf[IFNAMSIZ];
    int pf_ifindex;
    int vf;                          /* index under the PF */
    char mac[MAC_STRLEN];      /* the guest's MAC, now the VF's */
    char saved_mac[MAC_STRLEN]; /* restored at release; "" if unknown */
} alloc_vf;

/* pfs: n PF netdev names. sysfs_root NULL: /sys. nl NULL: the kernel. */
int alloc_vf_pool_init(alloc_vf_pool *p, const char *name, const char *const *pfs, size_t n,
                       const char *sysfs_root, const alloc_nl *nl, char *err, size_t errlen);

/* The pool's VFs as sysfs shows them now (pci, netdev, pf, pf_ifindex,
 * vf), in PF order then VF index. malloc'd. */
int alloc_vf_scan(const alloc_vf_pool *p, alloc_vf **out, size_t *n, char *err, size_t errlen);

/* A VF for NIC nic of o with MAC mac: the one it holds, else the first free
 * one. -ENOSPC when all are leased; -EINVAL naming both when the VF's
 * netdev and PCI address disagree in sysfs; the netlink error when the MAC
 * cannot be set (the VF is then not taken). */
int alloc_vf_take(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                  const char *mac, alloc_vf *out, char *err, size_t errlen);
/* Give back the VF of NIC nic of owner ("RUN/VM"), restoring its MAC. The
 * lease goes even if the restore fails (the note stays for a retry), and
 * that error is returned. -ENOENT if it holds none. */
int alloc_vf_release(alloc_store *s, alloc_vf_pool *p, const char *owner, int nic, char *err,
                     size_t errlen);
/* Restore the MAC of every VF of the pool that is unleased but still has a
 * saved MAC (its owner died). Returns how many were restored. */
int alloc_vf_recover(alloc_store *s, alloc_vf_pool *p, char *err, size_t errlen);

#endif
