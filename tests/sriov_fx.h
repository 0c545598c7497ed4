/* sriov_fx.h - the FAKE SR-IOV host that test_alloc_vf, test_fleet_vf and
 * test_run_vf share.
 *
 * Why a fake: there is NO SR-IOV hardware on the machines these tests run
 * on (no PF, no VFs, no vfio-pci device QEMU could open), so three parts
 * of an SR-IOV host are played here, and nothing else:
 *  - sysfs: a tree in a temp dir laid out as a real ixgbe/i40e PF shows
 *    its VFs (sfx_pf, sfx_bind), handed to the code under test as its
 *    sysfs root;
 *  - netlink: an alloc_nl whose send records every RTM_SETLINK request
 *    (IFLA_VF_MAC, IFLA_VF_VLAN), checks its bytes, and plays the kernel by
 *    writing the new MAC into the fake VF's address file and the PF's view;
 *    its get answers RTM_GETLINK on the PF from that view (sfx_nl);
 *  - QEMU's view of a VF: vfio-pci cannot open a fake VF, so "QEMU" is a
 *    stand-in script that records its argv and then waits, fails, or turns
 *    each vfio-pci VF into an e1000 and runs the real QEMU (sfx_qemu).
 * Everything else the tests touch (cfg, lease store, fleet, runner, QEMU
 * and its QMP) is the real thing. What a test asserts about the requests
 * stays in the test: it reads sfx_rec.r, or checks each request as it
 * comes through sfx_rec.check. */
#ifndef QF_SRIOV_FX_H
#define QF_SRIOV_FX_H

#include <stddef.h>

#include "base/mac.h"
#include "src/alloc/vf.h"

/* ---- files under the fake root: the path is printf'd, and asserted ---- */

void sfx_mkdir_p(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write text to the file (created or truncated), then chmod it to mode. */
void sfx_write(const char *text, int mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replace the path with a symlink to target. */
void sfx_symlink(const char *target, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The file's text (malloc'd, the caller frees), or NULL. */
char *sfx_read(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the netlink recorder ---- */

#define SFX_MAX_REQ 32
#define SFX_MAX_VIEW 8

/* One RTM_SETLINK request as the recorder saw it. */
typedef struct sfx_req {
    int ifindex, vf;
    char mac[MAC_STRLEN]; /* IFLA_VF_MAC: the MAC; "" for IFLA_VF_VLAN */
    int vlan;             /* IFLA_VF_VLAN: the VLAN; -1 for IFLA_VF_MAC */
} sfx_req;

typedef struct sfx_rec {
    const char *root;   /* the fake sysfs (class/net/VFNAMEi/address) */
    const char *vfname; /* netdev prefix of the VFs; NULL: no netdev to update */
    sfx_req r[SFX_MAX_REQ];
    int n;
    /* What the fake PF (any ifindex) says about VF i over RTM_GETLINK;
     * RTM_SETLINK updates it for i < nview. */
    struct {
        char mac[MAC_STRLEN];
        int vlan;
    } pf[SFX_MAX_VIEW];
    int nview;
    int gets;      /* RTM_GETLINK requests answered */
    int fail;      /* -errno the "kernel" answers IFLA_VF_MAC with; 0: ack */
    int fail_vlan; /* -errno for IFLA_VF_VLAN; 0: ack */
    int fail_next; /* with fail 0: -EAGAIN for this many IFLA_VF_MAC requests */
    /* Called with each recorded request before it is answered: the test's
     * own assertions on it. */
    void (*check)(const sfx_req *r, void *data);
    void *check_data;
} sfx_rec;

/* The alloc_nl of rec: send records, get (when with_get) answers
 * RTM_GETLINK from rec->pf. */
alloc_nl sfx_nl(sfx_rec *rec, int with_get);
/* rec->pf[i].mac = printf(fmt, i) for i < n, and nview = n. */
sfx_rec *sfx_view(sfx_rec *rec, int n, const char *fmt);

/* ---- the fake sysfs ----
 *
 * PF pf with ifindex at PCI 0000:BUS:00.0 and nvf VFs; VF i is PCI device
 * 0000:BUS:02.i with netdev VFNAMEi and MAC aa:00:00:00:BUS:i (vfname
 * NULL: no netdevs, as after sfx_bind), laid out as a real PF shows them:
 *   class/net/PF/{ifindex, device/driver/, device/virtfnI -> ../0000:BUS:02.I}
 *   bus/pci/devices/0000:BUS:00.0/net/PF/
 *   bus/pci/devices/0000:BUS:02.I/{net/VFNAMEI/, physfn -> ../0000:BUS:00.0}
 *   class/net/VFNAMEI/{device -> ../../../bus/pci/devices/0000:BUS:02.I, address} */
void sfx_pf(const char *root, const char *pf, int ifindex, int bus, int nvf, const char *vfname);
/* VF i of bus (0000:BUS:02.i) loses its netdev VFNAMEi (vfname may be
 * NULL) and is bound to driver (vfio-pci: what QEMU needs). */
void sfx_bind(const char *root, int bus, int i, const char *vfname, const char *driver);

/* ---- the QEMU stand-in ---- */

typedef enum sfx_qemu_mode {
    SFX_QEMU_STAYS, /* waits to be stopped */
    SFX_QEMU_FAILS, /* says "stand-in: no VF here" on stderr and exits 1 */
    SFX_QEMU_REAL,  /* vfio-pci,host=VF,... becomes e1000,... (same id and
                     * addr); execs qemu-system-x86_64 with that */
} sfx_qemu_mode;

/* Write the stand-in to DIR/NAME (0755). Each run first writes its argv,
 * one argument a line, to DIR/argv-I where I is its argv[2] (QEMU's
 * -name), atomically (written, then renamed). */
void sfx_qemu(const char *dir, const char *name, sfx_qemu_mode mode);

#endif
