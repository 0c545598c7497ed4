/* model.h - internal: the validated VM model the argv builder reads.
 * keys.c fills it from the cfg keys, vm.c finishes it (defaults, ids, PCI
 * slots, resource needs) and argv.c turns it into a QEMU command line. */
#ifndef QF_CFG_MODEL_H
#define QF_CFG_MODEL_H

#include "cfg/argv.h"
#include "cfg/util.h"
#include "cfg/vm.h"

enum { BK_NONE = -1, BK_USER, BK_TAP, BK_BRIDGE };
enum { DK_VFIO, DK_VIRTIO, DK_VHOST_USER, DK_EMUL };
enum { MF_OTHER, MF_I440FX, MF_Q35 };

#define OPT_MAX 32

struct m_nic {
    struct cfg_loc loc, addr_loc, backend_loc;
    const char *id, *model;
    const char *mac;
    int mac_need;
    int slot, fn, slot_need; /* slot -1: allocated */
    int vectors;
    int backend;
    int hostfwd, fwd_port, port_need, fwd_gport;
    const char *fwd_proto, *fwd_addr, *fwd_gaddr;
    const char *br, *script, *downscript;
    int id_auto;     /* id made by qfleet (nicN), not the cfg's */
    int nic_pending; /* made for a backend group; the nic group may follow */
};

struct m_dev {
    struct cfg_loc loc, addr_loc, id_loc, netdev_loc;
    int kind;
    const char *driver; /* qdev driver on the command line */
    const char *cfg_driver;
    const char *id;
    const char *host;   /* vfio opt_host */
    const char *pool;   /* vfio opt_pool: a VF of this vf_pool, leased at launch */
    struct cfg_loc pool_loc;
    int vf_need;        /* pool: res->vf_host[vf_need] */
    int vlan;           /* vfio opt_vlan, 0: none */
    const char *netdev; /* virtio opt_netdev */
    const char *mac;
    int mac_need;
    const char *bus;
    int slot, fn, slot_need;
    const char *path; /* vhost-user socket */
    int queues, server, chr;
    const char *settings, *legacy;
    int id_auto;  /* id made by qfleet (pt_N, vhostuserN, devN) */
    int scene;    /* DTS scene form (vf_idx/pf_dev or pf_idx) */
    int vf_index; /* scene vf_idx: DTS's VF number under the PF; -1 any */
    int whole_pf; /* scene pf_idx: the pool's PF itself, res->pf_host[pf_need] */
    int pf_need;
};

struct m_pool {
    struct cfg_loc loc; /* of the name value */
    const char *name;
    const char *pf[CFG_VF_PF_MAX];
    int npf;
    const char *only[CFG_VF_SEL_MAX], *exclude[CFG_VF_SEL_MAX]; /* vfs=, exclude= */
    int nonly, nexclude;
};

struct m_disk {
    const char *file, *format, *iface, *media;
    int index; /* -1: none */
};

struct model {
    struct arena a;
    const char *name, *section, *qemu, *machine;
    const char *qemu_paths[CFG_QEMU_MAX]; /* every path= of the qemu key, in order */
    int nqemu;
    struct cfg_loc qemu_loc;
    int qemu_selected; /* index into qemu_paths of argv[0], or -1 */
    struct cfg_loc machine_loc, name_loc;
    int mfam, kvm;
    const char *cpu_model;
    int smp, cpupin[CFG_CPUPIN_MAX], ncpupin;
    int numa; /* CFG_NUMA_NONE, CFG_NUMA_AUTO or a node */
    int skipcores[CFG_CPUPIN_MAX], nskip;
    struct cfg_loc cpupin_loc, cpu_model_loc, cpu_loc;
    int mem_mb, hugepage;
    struct cfg_loc hugepage_loc;
    struct m_disk disks[CFG_DISK_MAX];
    int ndisks;
    const char *kernel, *initrd, *append;
    const char *user, *password;
    struct m_nic nics[CFG_NIC_MAX];
    int nnics, host_connect, control, pending_nic, pending_bk, had_net;
    struct cfg_loc net_loc;
    struct m_dev devs[CFG_DEV_MAX];
    int ndevs, nvhost, npfs;
    const char *pf_for[CFG_DEV_MAX];
    const char *pflash[CFG_PFLASH_MAX];
    int npflash;
    int ncrypto; /* crypto enable=yes: opt_num vhost-user crypto devices */
    struct m_pool pools[CFG_VF_POOL_MAX];
    int npools;
    int vnc, qga, migrate, migrate_port;
    const char *mac_prefix; /* canonical "02:11:22:", or NULL */
    const char *migrate_listen; /* "" all addresses (DTS), else the address */
    char **usercmd;
    int nusercmd, ucap;
    int wait_seconds, login_timeout;
    /* resource needs (vm.c) */
    int nmacs, nslots, nports, nvfs;
    const char *mac_for[CFG_MAC_MAX], *slot_for[CFG_SLOT_MAX], *port_for[CFG_NIC_MAX];
    const char *vf_for[CFG_DEV_MAX];
    unsigned slots_taken;
    /* warnings */
    const char **warn;
    int nwarn, wcap;
    /* exported views */
    struct cfg_vm_info info;
    struct cfg_nic_info nic_info[CFG_NIC_MAX];
    struct cfg_pt pt[CFG_NIC_MAX + CFG_DEV_MAX];
    int npt;
    struct cfg_vf_pool pool_info[CFG_VF_POOL_MAX];
};

struct cfg_vm {
    struct arena a; /* keys and file names */
    const char *section, *dir;
    struct cfg_loc section_loc;
    const struct cfg_key **keys;
    int nkeys, kcap;
    const char **pre_warn; /* from loading: ignored defaults sections */
    int npre, pcap;
    const char *qemu_sel; /* cfg_vm_select_qemu: "N" or a path; NULL: the last path */
    struct model *m;
};

/* keys.c */
struct bctx {
    struct model *m;
    const struct cfg_key *k;
    char *err;
    size_t errlen;
};
int model_key(struct bctx *b);

/* The options of one group (list keys) or of all groups (other keys). */
struct opts {
    struct cfg_pair p[OPT_MAX];
    int n;
    unsigned used; /* bit i: p[i] was looked up */
};
int ko_all(struct bctx *b, struct opts *o);
int ko_one(struct bctx *b, int gi, struct opts *o);
const struct cfg_pair *ko_get(struct opts *o, const char *name); /* marks it used */
void ko_done(struct bctx *b, struct opts *o, const char *what);  /* warns the unused */
/* "FILE:L:C: error: KEY OPT: expected WHAT, got 'VAL'" (no value for login). */
int ko_bad(struct bctx *b, const struct cfg_pair *p, const char *expected);
/* Typed options: 1 present and valid, 0 absent, <0 error. */
int ko_bool(struct bctx *b, struct opts *o, const char *name, int *out);
int ko_int(struct bctx *b, struct opts *o, const char *name, long lo, long hi, int *out);
int ko_str(struct bctx *b, struct opts *o, const char *name, const char **out);
int ko_ident(struct bctx *b, struct opts *o, const char *name, const char *extra, const char **out);
int ko_path(struct bctx *b, struct opts *o, const char *name, const char **out);
int ko_mac(struct bctx *b, struct opts *o, const char *name, const char **out);
int ko_slot(struct bctx *b, struct opts *o, const char *name, int *slot, int *fn,
            struct cfg_loc *loc);
struct cfg_loc ko_group_loc(struct bctx *b, int gi);
int ko_one_of(const char *v, const char *const *list);
#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0)                                                                                \
            return r_;                                                                             \
    } while (0)

/* keys_net.c */
int k_net(struct bctx *b);
int k_device(struct bctx *b);
int k_vf_pool(struct bctx *b);
int k_mac_prefix(struct bctx *b);
void model_warn(struct model *m, struct cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* keys a cfg_vm_set appends to rather than replaces */
int key_is_list(const char *name);

/* vm.c */
const struct model *vm_model(const struct cfg_vm *vm);

/* check.c: 0 or -EINVAL with the message in err. */
int cfg__check_ids(struct model *m, char *err, size_t errlen);
int cfg__check_netdevs(struct model *m, char *err, size_t errlen);
int cfg__check_pools(struct model *m, char *err, size_t errlen); /* scene pools: warned */
/* Fix every NIC's and device's slot or make it a need; slots_taken. */
int cfg__place(struct model *m, char *err, size_t errlen);

#endif
