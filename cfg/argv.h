/* argv.h - the QEMU command line of a VM.
 *
 * The builder allocates nothing on the host. The VM says what it needs
 * (cfg_vm_needs), the caller leases it and hands the values in struct
 * cfg_res, and cfg_argv_build turns model + resources into an argv array
 * (never a shell string). The fleet fills cfg_res from its lease
 * allocators; `qfleet cmdline` and tests fill it with cfg_res_preview.
 *
 *   struct cfg_needs nd;
 *   cfg_vm_needs(vm, &nd);
 *   struct cfg_res res = { .run_dir = "/var/lib/qfleet/runs/R" };
 *   for (int i = 0; i < nd.macs; i++)   lease a MAC into res.macs[i]
 *   for (int i = 0; i < nd.slots; i++)  a guest slot not in nd.slots_taken
 *                                       into res.pci_slot[i]
 *   for (int i = 0; i < nd.ports; i++)  a host port into res.ssh_port[i]
 *   if (nd.vnc) res.vnc = display;  if (nd.migrate_port) res.migrate_port = port;
 *   for (int k = 0; k < nd.vfs; k++)    a VF of pool nd.vf_pool[k], given the
 *                                       MAC cfg_vf_mac(&nd, &res, k), into
 *                                       res.vf_host[k]
 *   char **argv;
 *   if (cfg_argv_build(vm, &res, &argv, err, sizeof(err)) == 0)
 *       spawn argv[0] with argv; cfg_argv_free(argv);
 */
#ifndef QF_CFG_ARGV_H
#define QF_CFG_ARGV_H

#include <stddef.h>

#include "cfg/vm.h"
#include "base/json.h"

/* What a VM needs before its command line can be built. The *_for strings
 * say what each entry is for ("net 0 host_connect", "device 1 vhost-user")
 * and live as long as cfg_vm_info's strings. */
struct cfg_needs {
    int macs; /* res.macs[0..macs): NICs and network devices without a MAC */
    const char *mac_for[CFG_MAC_MAX];
    int slots; /* res.pci_slot[0..slots): devices and NICs without opt_addr */
    const char *slot_for[CFG_SLOT_MAX];
    unsigned slots_taken; /* bit s set: guest slot s is fixed (machine,
                           * VGA at 02 when VNC is on, host_connect at 1f,
                           * the cfg's opt_addr); never hand it out */
    int ports;            /* res.ssh_port[0..ports): host ports of user-network forwards
                           * (hostfwd tcp:127.0.0.1:PORT-:22) not fixed by the cfg */
    const char *port_for[CFG_NIC_MAX];
    int vnc;           /* res.vnc: a display is wanted and the cfg fixes none */
    int migrate_port;  /* res.migrate_port: migration without a port */
    int hugepages;     /* a hugetlbfs mount is needed (res.hugepage_dir) */
    const int *cpupin; /* host CPUs the cfg pins to: lease them, make them
                        * the QEMU child's affinity before exec (DTS: taskset
                        * -c), then pin vCPU i to cpupin[i] */
    int ncpupin;
    int vfs; /* res.vf_host[0..vfs): vfio-pci devices with opt_pool */
    const char *vf_pool[CFG_DEV_MAX]; /* the pool of VF k (cfg_vm_vf_pool) */
    const char *vf_for[CFG_DEV_MAX];  /* "device 0 pt_0" */
    /* The MAC VF k gets (set on the VF before launch, what the guest sees):
     * the cfg's opt_mac, or NULL: res.macs[vf_mac_need[k]] (cfg_vf_mac). */
    const char *vf_mac[CFG_DEV_MAX];
    int vf_mac_need[CFG_DEV_MAX];
    int vf_vlan[CFG_DEV_MAX]; /* opt_vlan of VF k: set with its MAC; 0 none */
    /* FLEET: DTS scene devices (vf_idx=N,pf_dev=P) name the VF number N
     * under the PF; -1 for opt_pool devices (any free VF). The fleet may
     * take any free VF of the pool; taking VF N when free matches DTS. */
    int vf_index[CFG_DEV_MAX];
    /* FLEET: whole PFs passed through (DTS scene pf_idx=P): res.pf_host[k]
     * is the PCI address of the first PF of pool pf_pool[k] (its netdev's
     * sysfs device), leased so that no VF of it is in use. */
    int pfs;
    const char *pf_pool[CFG_DEV_MAX];
    const char *pf_for[CFG_DEV_MAX];
};

/* The leased values. Unused entries are ignored. */
struct cfg_res {
    const char *run_dir;        /* absolute: sockets and logs of the VM go here */
    const char *name;           /* instance name for -name and the run-dir files
                                 * (e.g. "vm0-1"); NULL: the VM's name */
    char macs[CFG_MAC_MAX][18]; /* "02:5e:10:aa:bb:01", unicast */
    int pci_slot[CFG_SLOT_MAX]; /* guest slots 0x00-0x1f */
    int ssh_port[CFG_NIC_MAX];
    int vnc; /* display N: 127.0.0.1:5900+N */
    int migrate_port;
    const char *hugepage_dir; /* NULL: the first hugetlbfs mount in mounts_file */
    const char *mounts_file;  /* NULL: /proc/mounts */
    char vf_host[CFG_DEV_MAX][13]; /* VF k's host PCI address "0000:3b:02.1" */
    char pf_host[CFG_DEV_MAX][13]; /* PF k's host PCI address */
    /* NULL, or the -incoming value to use instead of the cfg's migration
     * (the fleet restoring a warm clone: "exec:cat '/path'"). Passed as one
     * argv word; QEMU runs an exec: URI through /bin/sh, so the caller
     * quotes what it puts in. */
    const char *incoming;
};

void cfg_vm_needs(const struct cfg_vm *vm, struct cfg_needs *out);

/* The command line, NULL-terminated, argv[0] the QEMU binary. Errors
 * (-EINVAL) for resources that are missing or invalid, a hugetlbfs mount
 * that is missing (-ENOENT), or run-dir paths too long for a socket. */
/* Do the Unix socket paths of instance name in run_dir fit sun_path (107
 * bytes)? 0, or -ENAMETOOLONG with the limit in err. The argv builder
 * checks the same; callers use it to refuse a run dir before launching. */
int cfg_sock_paths_fit(const char *run_dir, const char *name, char *err, size_t errlen);

int cfg_argv_build(const struct cfg_vm *vm, const struct cfg_res *res, char ***argv, char *err,
                   size_t errlen);
void cfg_argv_free(char **argv);

/* Files the command line puts in res->run_dir (docs/rundir.md). */
enum cfg_run_file {
    CFG_RUN_QMP,         /* NAME-qmp.sock: the controller's QMP monitor */
    CFG_RUN_QMP_INSPECT, /* NAME-qmp-inspect.sock: second monitor (qmpctl) */
    CFG_RUN_QGA,         /* NAME-qga.sock: guest agent (only if qga) */
    CFG_RUN_SERIAL,      /* NAME-serial.log: serial console */
};
int cfg_run_path(const struct cfg_vm *vm, const struct cfg_res *res, enum cfg_run_file f, char *out,
                 size_t outlen);

/* Host side of the control NIC's forward (SSH; cfg_vm_info()->control):
 * address and port (fixed or res->ssh_port). -ENOENT if the VM has none. */
int cfg_vm_ssh(const struct cfg_vm *vm, const struct cfg_res *res, const char **addr, int *port);
/* The guest MAC of VF k: nd->vf_mac[k] or res->macs[nd->vf_mac_need[k]]. */
const char *cfg_vf_mac(const struct cfg_needs *nd, const struct cfg_res *res, int k);
/* Guest slot of a pt entry or NIC (fixed, or from res). */
int cfg_pt_slot(const struct cfg_pt *pt, const struct cfg_res *res);
/* The tap ifname argv gives NIC i ("qfXXXXXXXXtN": a hash of run dir and
 * VM name, so unique per run, VM and NIC). out: 16 bytes. */
int cfg_tap_ifname(const struct cfg_vm *vm, const struct cfg_res *res, int nic, char out[16]);

/* The socket of crypto device i (0 <= i < ncrypto), as DTS names it:
 * /tmp/NAME_cryptoI.sock. QEMU connects to it as a client: the host's
 * vhost-user crypto backend (DPDK vhost_crypto) must listen there first. */
int cfg_crypto_path(const struct cfg_vm *vm, const struct cfg_res *res, int i, char *out,
                    size_t outlen);

/* First hugetlbfs mount point in mounts_file (NULL: /proc/mounts). 0,
 * -ENOENT if there is none, or -errno reading the file. */
int cfg_hugetlbfs_find(const char *mounts_file, char *out, size_t outlen);

/* --- previews (qfleet cmdline, tests) ------------------------------------ */

#define CFG_PREVIEW_MAC "52:54:00:ff:ff:%02x" /* printf pattern, index */
#define CFG_PREVIEW_SSH_FIRST 20000
#define CFG_PREVIEW_MIGRATE_FIRST 30000
/* VF k's placeholder host address: printf pattern of k / 8 and k % 8. PCI
 * domain ffff marks it as no real device; the fleet takes a free VF of the
 * pool at launch. */
#define CFG_PREVIEW_VF "ffff:ff:%02x.%x"
#define CFG_PREVIEW_PF "ffff:fe:%02x.%x" /* PF k, likewise */
/* Fill res with guesses: MACs from CFG_PREVIEW_MAC, first-fit PCI slots,
 * the lowest ports and VNC display that bind on 127.0.0.1 right now, VF
 * placeholders from CFG_PREVIEW_VF. Not leases: two previews may guess the
 * same values. */
int cfg_res_preview(const struct cfg_vm *vm, const char *run_dir, struct cfg_res *res, char *err,
                    size_t errlen);

/* --- showing ---------------------------------------------------------------
 * Everything shown passes through cfg_vm_mask: the password never appears. */
/* The model as JSON (login password masked); res may be NULL. */
json_t *cfg_vm_json(const struct cfg_vm *vm, const struct cfg_res *res);
/* ["qemu-system-x86_64", ...] masked. */
json_t *cfg_argv_json(const struct cfg_vm *vm, char *const *argv);
/* One argument per line, shell-quoted, " \\\n" between lines: a pasteable
 * command. malloc'd; NULL on ENOMEM. */
char *cfg_argv_shell(const struct cfg_vm *vm, char *const *argv);

#endif
