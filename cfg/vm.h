/* vm.h - one VM of a DTS cfg file: load, merge with the global defaults,
 * change before launch, and the facts the fleet needs.
 *
 *   struct cfg_vm *vm;
 *   char err[512];
 *   if (cfg_vm_load("conf/vxlan_sample.cfg", "vm0", "conf/virt_global.cfg",
 *                   &vm, err, sizeof(err)) < 0) { fputs(err, stderr); exit(2); }
 *   cfg_vm_set(vm, "device", "driver=vhost-user,opt_path=./vhost-net,"
 *              "opt_mac=00:00:20:00:00:20", err, sizeof(err));
 *   const struct cfg_vm_info *vi = cfg_vm_info(vm);
 *   ... then cfg_vm_needs / cfg_argv_build (argv.h) ...
 *   cfg_vm_free(vm);
 *
 * Errors: functions return 0 or a negative errno (-EINVAL for anything
 * wrong in a cfg, -ENOENT for a missing file or section, -ENOMEM) and put
 * one line "FILE:LINE:COL: error: WHAT, expected WHAT" into err.
 * Warnings (unknown keys and options, ignored DTS settings) never fail a
 * load; each one names FILE:LINE:COL and the key. */
#ifndef QF_CFG_VM_H
#define QF_CFG_VM_H

#include <stddef.h>

#include "cfg/parse.h"

#define CFG_NAME_MAX 64 /* VM names: [A-Za-z0-9_.-], used in file names */
#define CFG_NIC_MAX 16  /* net NICs per VM, host_connect included */
#define CFG_DEV_MAX 28  /* device entries per VM */
#define CFG_DISK_MAX 16
#define CFG_CPUPIN_MAX 256
#define CFG_MAC_MAX (CFG_NIC_MAX + CFG_DEV_MAX)
#define CFG_SLOT_MAX 32
#define CFG_VF_POOL_MAX 16 /* vf_pool groups per VM */
#define CFG_VF_PF_MAX 16   /* PFs per pool (as alloc_vf.h's ALLOC_VF_MAX_PF) */
#define CFG_VF_POOL_NAME_MAX 63
#define CFG_VF_SEL_MAX 64  /* entries of a pool's vfs= or exclude= (ALLOC_VF_MAX_SEL) */
#define CFG_QEMU_MAX 16  /* path= groups of the qemu key */
#define CFG_PFLASH_MAX 4 /* pflash groups */
#define CFG_CRYPTO_MAX 16
#define CFG_NUMA_NONE (-1) /* cpu numa= absent */
#define CFG_NUMA_AUTO (-2) /* cpu numa=auto: DTS takes the first DUT port's node */

struct cfg_vm;
struct cfg_doc;

/* A device the fleet maps by qdev id after start (DTS's pt_N): every
 * vfio-pci/pci-assign device (ids pt_0, pt_1, ... in cfg order, skipping
 * ids the cfg gives explicitly) and any device or NIC whose id is pt_N. */
struct cfg_pt {
    const char *id;     /* "pt_0" */
    const char *driver; /* "vfio-pci", "e1000", ... */
    const char *host;   /* vfio with opt_host: host BDF "0000:07:10.0"; else NULL */
    int slot, fn;       /* guest address 00:SLOT.FN; slot -1: it takes
                         * res->pci_slot[slot_need] (argv.h) */
    int slot_need;
    const char *pool; /* vfio with opt_pool: the vf_pool's name; the VF is
                       * leased at launch into res->vf_host[vf_need] */
    int vf_need;      /* -1 unless pool */
    /* FLEET: a whole PF (DTS scene pf_idx=P): pool NULL, pf_pool the vf_pool
     * whose first PF is passed through, its address res->pf_host[pf_need]. */
    const char *pf_pool;
    int pf_need; /* -1 unless pf_pool */
    /* FLEET: vfio with opt_host and opt_mac: the hand-picked VF's MAC (and
     * VLAN, 0 none), set through its PF before launch and put back after
     * (alloc_vf_pool_of_pci). NULL: the device is passed as it is. */
    const char *mac;
    int vlan; /* opt_vlan: for a pool VF too (cfg_needs.vf_vlan) */
};

/* An SR-IOV VF pool (vf_pool key): a name and the PF netdevs whose VFs it
 * hands out (src/alloc_vf.h finds them in sysfs). */
struct cfg_vf_pool {
    const char *name;
    const char *const *pf; /* npf netdev names, as in the cfg */
    int npf;
    /* vfs= (the pool's only VFs; 0: all of its PFs') and exclude= (VFs the
     * host keeps): "0000:3b:02.1" or "PF:N", for alloc_vf_pool_limit. */
    const char *const *vfs;
    int nvfs;
    const char *const *exclude;
    int nexclude;
};

/* NIC i of the VM (the net key's nic groups, or the default host_connect). */
struct cfg_nic_info {
    const char *id;      /* qdev id: "host_connect", opt_name or "nicN" */
    const char *model;   /* "e1000", "virtio-net-pci", ... */
    const char *backend; /* "user", "tap", "bridge" */
    const char *mac;     /* fixed by the cfg, or NULL: res->macs[mac_need] */
    int mac_need;
    int slot, fn; /* as in cfg_pt */
    int slot_need;
    /* user backend with a forward (always, unless opt_hostfwd says otherwise) */
    int hostfwd;          /* 1 if this NIC forwards a host port */
    const char *fwd_addr; /* host address, "127.0.0.1" unless given */
    int fwd_port;         /* fixed host port, or 0: res->ssh_port[port_need] */
    int port_need;
    int fwd_guest_port; /* 22 unless given */
    const char *bridge; /* tap/bridge: opt_br ("br0" by default) */
    /* FLEET: tap only. DTS writes an ifup script that adds the tap to
     * bridge; qfleet never rewrites /etc/qemu-ifup, so after QEMU created
     * the tap (cfg_tap_ifname) the fleet must set it up and make it a port
     * of bridge (netlink IFLA_MASTER, as for VFs), failing the launch with
     * "bridge BR does not exist" if /sys/class/net/BR/bridge is missing. */
    int attach_bridge;
};

struct cfg_vm_info {
    const char *name;     /* -name and run-dir file prefix (res may override) */
    const char *section;  /* the [section] it came from */
    const char *user;     /* login user, NULL if the cfg has none */
    const char *password; /* login password, NULL if none. NEVER print it:
                           * use cfg_vm_mask() on anything shown */
    int qga;              /* guest agent channel present */
    int wait_seconds;     /* start key; 120 by default (DTS START_TIMEOUT) */
    int login_timeout;    /* start key; 60 by default */
    int kvm;              /* enable_kvm */
    const char *machine;  /* "pc" by default */
    int smp;              /* vCPUs (0: QEMU's default, 1) */
    /* FLEET: host CPUs to pin to. DTS starts QEMU under taskset -c CPUPIN:
     * set this set as the affinity of the QEMU child before exec (so
     * hugepage preallocation runs there too), then pin vCPU i to cpupin[i]. */
    const int *cpupin;
    int ncpupin;
    /* DTS scene CPU choice (cpu numa=, skipcores=): when cpupin is empty
     * and numa is not CFG_NUMA_NONE, the fleet may lease smp CPUs of that
     * node (CFG_NUMA_AUTO: the node of the VM's first passed-through
     * device), never one of skipcores. qfleet's fleet does not do this yet:
     * such a VM runs unpinned (warned). */
    int numa;
    const int *skipcores;
    int nskipcores;
    /* qemu key: every path= in cfg order (DTS suites loop over them, one
     * case per QEMU); argv[0] is the selected one (cfg_vm_select_qemu),
     * the last by default, as DTS. nqemu_paths 0: no qemu key. */
    const char *const *qemu_paths;
    int nqemu_paths;
    int qemu_selected; /* index into qemu_paths, or -1 (default binary or a given path) */
    const char *qemu;  /* argv[0] */
    const char *kernel, *initrd; /* the kernel key's files (resolved), or NULL */
    int ncrypto;       /* crypto key: vhost-user crypto devices (cfg_crypto_path) */
    int mem_mb; /* 1024 unless the cfg says */
    int hugepage;
    int host_connect; /* index into nics of the NIC at PCI 1f (the name DTS's
                       * guests give it), or -1 */
    /* FLEET: index into nics of the control NIC, or -1: the NIC joined to
     * the first user backend, whatever its slot (DTS reaches the guest
     * through that netdev's hostfwd). SSH goes to its forward
     * (cfg_vm_ssh); net-ready waits for a DHCP address on the guest
     * interface with its MAC. -1: no user network, no SSH. */
    int control;
    const struct cfg_nic_info *nics;
    int nnics;
    const struct cfg_pt *pt; /* in cfg order */
    int npt;
    int migrate;                 /* started with -incoming */
    /* FLEET: the port of -incoming when the cfg fixes it (else 0 and
     * cfg_needs.migrate_port): lease it (alloc_reserve_port) so a clash
     * names the holder instead of failing QEMU's bind. */
    int migrate_port;
    /* mac_prefix key: "02:11:22:" (canonical, 1-5 octets, unicast), or
     * NULL: MACs the fleet allocates for this VM use the host's prefix
     * (alloc_mac with NULL). cfg_vm_set(vm, "mac_prefix", P) overrides. */
    const char *mac_prefix;
    int vnc;                     /* -1 disabled, -2 allocated (res->vnc), else display */
    const struct cfg_vf_pool *vf_pools; /* every vf_pool group, used or not */
    int nvf_pools;
    const char *const *warnings; /* "FILE:LINE:COL: warning: ..." */
    int nwarnings;
};

/* Load section vm_name of cfg_path, under the [KVM] section of
 * defaults_path (may be NULL). */
int cfg_vm_load(const char *cfg_path, const char *vm_name, const char *defaults_path,
                struct cfg_vm **out, char *err, size_t errlen);
/* The same from parsed documents (defaults may be NULL), for callers that
 * load many VMs of one file. The VM keeps no reference to the documents. */
int cfg_vm_from_docs(const struct cfg_doc *suite, const char *vm_name,
                     const struct cfg_doc *defaults, struct cfg_vm **out, char *err, size_t errlen);
void cfg_vm_free(struct cfg_vm *vm);

/* DTS's set_vm_*: parse value with the file grammar and validate the whole
 * VM again. For net, device, disk and usercmd the groups are added after
 * the existing ones (set_vm_device); any other key is replaced whole. On
 * error the VM is unchanged. Messages name "<set KEY>:LINE:COL". Relative
 * paths resolve against the cfg file's directory. */
int cfg_vm_set(struct cfg_vm *vm, const char *key, const char *value, char *err, size_t errlen);
/* Drop key (so cfg_vm_clear + cfg_vm_set replaces a list key). 0 or
 * -ENOENT if the VM has no such key. */
int cfg_vm_clear(struct cfg_vm *vm, const char *key, char *err, size_t errlen);

/* Valid until the next cfg_vm_set/cfg_vm_clear/cfg_vm_free. */
const struct cfg_vm_info *cfg_vm_info(const struct cfg_vm *vm);

/* Pick the QEMU binary of a multi-path qemu key: sel is an index "N"
 * (0-based, into qemu_paths) or a path (used as given). NULL goes back to
 * the default, the last path. Kept across cfg_vm_set. -EINVAL for an index
 * out of range. */
int cfg_vm_select_qemu(struct cfg_vm *vm, const char *sel, char *err, size_t errlen);

/* 1 if section s of a DTS cfg is a VM: it has at least one key of the VM
 * grammar (cpu, mem, disk, net, device, qemu, ...). A suite's [suite],
 * a scene's [scene] and per-case sections ([test_...]) are not. */
int cfg_section_is_vm(const struct cfg_section *s);

/* The VM's pool called name, or NULL. */
const struct cfg_vf_pool *cfg_vm_vf_pool(const struct cfg_vm *vm, const char *name);

/* A malloc'd copy of s with every occurrence of the VM's password replaced
 * by "********" (s itself if there is no password). NULL on ENOMEM. */
char *cfg_vm_mask(const struct cfg_vm *vm, const char *s);

#endif
