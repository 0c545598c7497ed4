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
 * the MAC and drops the note.
 *
 * Where the saved MAC comes from: the VF's netdev while a host driver has
 * one; else (the VF is bound to vfio-pci, the only binding QEMU can use)
 * the PF's view of it, RTM_GETLINK with IFLA_EXT_MASK RTEXT_FILTER_VF:
 * IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_MAC (and IFLA_VF_VLAN when a
 * VLAN is set). A VF whose sysfs driver link names another driver than
 * vfio-pci is refused at take, with how to bind it or leave it out. */
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
    /* A request with an answer (RTM_GETLINK, no NLM_F_ACK): the kernel's
     * one reply message (RTM_NEWLINK) is copied into reply; returns its
     * length or the kernel's -errno. NULL: alloc_nl_kernel_get when send
     * is NULL too; with a send of its own and no get, reading a VF's MAC
     * through its PF is not possible (-EOPNOTSUPP: the saved MAC of a VF
     * without a netdev is then unknown, as before). */
    int (*get)(void *ctx, const void *req, size_t len, void *reply, size_t replylen);
} alloc_nl;

/* Sends over a NETLINK_ROUTE socket (needs CAP_NET_ADMIN). */
int alloc_nl_kernel(void *ctx, const void *req, size_t len);
int alloc_nl_kernel_get(void *ctx, const void *req, size_t len, void *reply, size_t replylen);

/* The MAC (and VLAN, 0 for none) PF pf_ifindex gives its VF vf, asked
 * over nl (NULL: the kernel). -ENOENT if the PF lists no such VF. */
int alloc_vf_query(const alloc_nl *nl, int pf_ifindex, int vf, char mac[MAC_STRLEN], int *vlan);
/* Set VF vf's VLAN (0-4095; 0 removes it) through PF pf_ifindex. */
int alloc_vf_set_vlan(const alloc_nl *nl, int pf_ifindex, int vf, int vlan);

#define ALLOC_VF_MAX_SEL 64                /* entries of a pool's only/exclude list */
#define ALLOC_VF_SEL_LEN (IFNAMSIZ + 8) /* "0000:3b:02.1" or "ens1f0:3" */

typedef struct alloc_vf_pool {
    char name[64];
    char pf[ALLOC_VF_MAX_PF][IFNAMSIZ];
    size_t npf;
    char root[PATH_MAX]; /* sysfs root */
    alloc_nl nl;
    /* alloc_vf_pool_limit: VFs named here (PCI address or "PF:N", VF N of
     * PF) are the only ones of the pool (nonly > 0), or are left out. */
    char only[ALLOC_VF_MAX_SEL][ALLOC_VF_SEL_LEN];
    size_t nonly;
    char exclude[ALLOC_VF_MAX_SEL][ALLOC_VF_SEL_LEN];
    size_t nexclude;
} alloc_vf_pool;

typedef struct alloc_vf {
    char pci[ALLOC_PCI_ADDR_LEN]; /* the VF: "0000:3b:02.1" */
    char netdev[IFNAMSIZ];        /* its netdev, "" when no host driver has it */
    char pf[IFNAMSIZ];
    int pf_ifindex;
    int vf;                          /* index under the PF */
    char mac[MAC_STRLEN];      /* the guest's MAC, now the VF's */
    char saved_mac[MAC_STRLEN]; /* restored at release; "" if unknown */
    int vlan;                   /* alloc_vf_take_vlan's, else 0 */
    int saved_vlan;             /* the VLAN before (restored with it) */
} alloc_vf;

/* pfs: n PF netdev names. sysfs_root NULL: /sys. nl NULL: the kernel. */
int alloc_vf_pool_init(alloc_vf_pool *p, const char *name, const char *const *pfs, size_t n,
                       const char *sysfs_root, const alloc_nl *nl, char *err, size_t errlen);

/* Restrict the pool: only (n_only entries, 0: every VF of its PFs) and
 * exclude (VFs the host uses itself). Entries are a VF's PCI address
 * ("3b:02.1" or "0000:3b:02.1") or "PF:N" with PF one of the pool's.
 * -EINVAL naming a bad entry. Call after alloc_vf_pool_init. */
int alloc_vf_pool_limit(alloc_vf_pool *p, const char *const *only, size_t n_only,
                        const char *const *exclude, size_t n_exclude, char *err, size_t errlen);

/* A one-VF pool for a hand-picked VF (opt_host): its PF is found through
 * ROOT/bus/pci/devices/PCI/physfn, the pool is limited to it. -ENODEV
 * when pci is not a VF (no physfn) or its PF has no netdev. */
int alloc_vf_pool_of_pci(alloc_vf_pool *p, const char *pci, const char *sysfs_root,
                         const alloc_nl *nl, char *err, size_t errlen);

/* alloc_vf_take_vlan / alloc_vf_release on the one-VF pool of pci: a
 * fixed MAC (and VLAN) on a hand-picked VF, put back at release. */
int alloc_vf_take_pci(alloc_store *s, const char *pci, const char *sysfs_root, const alloc_nl *nl,
                      const alloc_owner *o, int nic, const char *mac, int vlan, alloc_vf *out,
                      char *err, size_t errlen);
int alloc_vf_release_pci(alloc_store *s, const char *pci, const char *sysfs_root,
                         const alloc_nl *nl, const char *owner, int nic, char *err, size_t errlen);

/* How many VFs of the pool there are (*total, may be NULL) and how many
 * of them no lease holds: the return value, or -errno. For a scheduler:
 * a guest needing more than *total can never start; more than free must
 * wait for a release. */
int alloc_vf_count_free(alloc_store *s, const alloc_vf_pool *p, size_t *total, char *err,
                        size_t errlen);

/* The pool's VFs as sysfs shows them now (pci, netdev, pf, pf_ifindex,
 * vf), in PF order then VF index, without those alloc_vf_pool_limit
 * leaves out. malloc'd. */
int alloc_vf_scan(const alloc_vf_pool *p, alloc_vf **out, size_t *n, char *err, size_t errlen);

/* A VF for NIC nic of o with MAC mac: the one it holds, else the first free
 * one. -ENOSPC when all are leased; -EINVAL naming both when the VF's
 * netdev and PCI address disagree in sysfs; -EBUSY saying how to bind it
 * when its driver is not vfio-pci; the netlink error when the MAC cannot
 * be set (the VF is then not taken). */
int alloc_vf_take(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                  const char *mac, alloc_vf *out, char *err, size_t errlen);
/* The same, then VLAN vlan (1-4095; 0: none) on the VF, restored at
 * release (the VLAN it had before goes into the saved note). A VLAN that
 * cannot be set gives the VF back (MAC restored) and fails. */
int alloc_vf_take_vlan(alloc_store *s, alloc_vf_pool *p, const alloc_owner *o, int nic,
                       const char *mac, int vlan, alloc_vf *out, char *err, size_t errlen);
/* Give back the VF of NIC nic of owner ("RUN/VM"), restoring its MAC. The
 * lease goes even if the restore fails (the note stays for a retry), and
 * that error is returned. -ENOENT if it holds none. */
int alloc_vf_release(alloc_store *s, alloc_vf_pool *p, const char *owner, int nic, char *err,
                     size_t errlen);
/* Restore the MAC of every VF of the pool that is unleased but still has a
 * saved MAC (its owner died). Returns how many were restored. */
int alloc_vf_recover(alloc_store *s, alloc_vf_pool *p, char *err, size_t errlen);

#endif
