/* leases.c - what a guest holds while it lives: host leases (MACs, VNC,
 * ports, pinned CPUs), SR-IOV VFs, and its own guest PCI slot map. Taken
 * before launch, all or nothing; given back when it stops or fails. */
#include "src/fleet/fleet_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc/vf.h"

/* VF k of a guest is leased as NIC VF_NIC0 + k ("RUN/VM/nic200"): apart
 * from the MAC leases of NICs (0, 1, ...) and fixed NIC MACs (100 + i). A
 * VF with a fixed opt_mac has that MAC reserved under the same name. */
#define VF_NIC0 200

/* The allocator's view of the pool VF k comes from: the VM's vf_pool with
 * the fleet's sysfs root and netlink. */
static int vf_pool_of(fguest_t *g, int k, alloc_vf_pool *p, char *err, size_t errlen)
{
    const struct cfg_vf_pool *def = cfg_vm_vf_pool(g->vm, g->nd.vf_pool[k]);
    if (!def) /* the cfg checked every opt_pool; this is a bug */
        return snprintf(err, errlen, "no vf_pool %s", g->nd.vf_pool[k]), -EINVAL;
    int rc = alloc_vf_pool_init(p, def->name, def->pf, (size_t)def->npf, g->f->o.sysfs_root,
                                g->f->o.vf_nl, err, errlen);
    return rc < 0 ? rc : alloc_vf_pool_limit(p, def->vfs, (size_t)def->nvfs, def->exclude,
                                             (size_t)def->nexclude, err, errlen);
}

/* A hand-picked VF (opt_host) with opt_mac: leased as NIC HOSTVF_NIC0 +
 * its pt index, its MAC reserved as NIC HOSTVF_MAC0 + index. */
#define HOSTVF_NIC0 300
#define HOSTVF_MAC0 400

void fleet__release(fguest_t *g)
{
    char err[512];
    /* VFs first and one by one: each release puts the VF's own MAC back,
     * which alloc_release_owner would not. Should a restore fail, the
     * lease goes anyway and the saved MAC stays in the store for the next
     * take or release on the pool to retry. */
    for (int k = g->nvf - 1; k >= 0; k--) {
        alloc_vf_pool p;
        if (vf_pool_of(g, k, &p, err, sizeof(err)) < 0 ||
            alloc_vf_release(g->f->store, &p, g->owner.name, VF_NIC0 + k, err, sizeof(err)) < 0)
            fprintf(stderr, "qfleet: %s: releasing VF %s: %s\n", g->name, g->res.vf_host[k], err);
    }
    g->nvf = 0;
    for (int i = g->vi->npt - 1; i >= 0; i--) {
        const struct cfg_pt *pt = &g->vi->pt[i];
        int rc = pt->host && pt->mac ? alloc_vf_release_pci(g->f->store, pt->host,
                                                            g->f->o.sysfs_root, g->f->o.vf_nl,
                                                            g->owner.name, HOSTVF_NIC0 + i, err,
                                                            sizeof(err))
                                     : 0;
        if (rc < 0 && rc != -ENOENT && rc != -ENODEV) /* never taken */
            fprintf(stderr, "qfleet: %s: releasing VF %s: %s\n", g->name, pt->host, err);
    }
    if (g->leased && alloc_release_owner(g->f->store, g->owner.name, err, sizeof(err)) < 0)
        fprintf(stderr, "qfleet: %s: releasing leases: %s\n", g->name, err);
    g->leased = 0;
    fleet__claims_release(g);
    alloc_range_free(g->pci);
    g->pci = NULL;
}

/* Take a VF for each opt_pool device and give it the guest's MAC. Not in
 * the batch of the other leases, on purpose: outside a batch the VF's
 * lease and its saved MAC are on disk before its MAC changes, so a
 * controller killed at any point leaves what is needed to restore it; and
 * a batch aborted after a VF's MAC changed would forget the saved MAC. A
 * failure here fails the guest, whose release gives everything back. */
static int take_vfs(fguest_t *g, char *err, size_t errlen)
{
    for (int k = 0; k < g->nd.vfs; k++) {
        char why[512];
        alloc_vf_pool p;
        alloc_vf vf;
        int rc = vf_pool_of(g, k, &p, why, sizeof(why));
        if (rc == 0)
            rc = alloc_vf_take_vlan(g->f->store, &p, &g->owner, VF_NIC0 + k,
                                    cfg_vf_mac(&g->nd, &g->res, k), g->nd.vf_vlan[k], &vf, why,
                                    sizeof(why));
        if (rc < 0) {
            snprintf(err, errlen, "a VF of pool %s for %s: %s", g->nd.vf_pool[k],
                     g->nd.vf_for[k], why);
            return rc;
        }
        snprintf(g->res.vf_host[k], sizeof(g->res.vf_host[k]), "%s", vf.pci);
        g->nvf = k + 1;
    }
    return 0;
}

int fleet__take_leases(fguest_t *g, char *err, size_t errlen)
{
    alloc_store *st = g->f->store;
    const struct cfg_vm_info *vi = g->vi;
    unsigned mflags = vi->migrate ? ALLOC_SHARED : 0;
    int rc = alloc_begin(st, err, errlen);
    if (rc < 0)
        return rc;
    for (int i = 0; rc == 0 && i < vi->nnics; i++)
        if (vi->nics[i].mac)
            rc = alloc_reserve_mac(st, &g->owner, 100 + i, vi->nics[i].mac, mflags, err, errlen);
    for (int k = 0; rc == 0 && k < g->nd.macs; k++)
        rc = alloc_mac(st, &g->owner, k, vi->mac_prefix, mflags, g->res.macs[k], err, errlen);
    if (rc == 0 && g->nd.vnc)
        rc = alloc_vnc(st, &g->owner, 0, &g->res.vnc, err, errlen);
    else if (rc == 0 && vi->vnc >= 0)
        rc = alloc_reserve_vnc(st, &g->owner, vi->vnc, 0, err, errlen);
    for (int k = 0; rc == 0 && k < g->nd.ports; k++)
        rc = alloc_port(st, &g->owner, ALLOC_SSH_PORTS_FIRST, ALLOC_SSH_PORTS_LAST,
                        &g->res.ssh_port[k], err, errlen);
    if (rc == 0 && g->nd.migrate_port)
        rc = alloc_port(st, &g->owner, 30000, 39999, &g->res.migrate_port, err, errlen);
    /* Ports the cfg fixes are leased too: a clash names its holder. */
    for (int i = 0; rc == 0 && i < vi->nnics; i++)
        if (vi->nics[i].hostfwd && vi->nics[i].fwd_port)
            rc = alloc_reserve_port(st, &g->owner, vi->nics[i].fwd_port, err, errlen);
    if (rc == 0 && vi->migrate_port)
        rc = alloc_reserve_port(st, &g->owner, vi->migrate_port, err, errlen);
    if (rc == 0 && g->nd.ncpupin)
        rc = alloc_cpus(st, &g->owner, g->nd.cpupin, (size_t)g->nd.ncpupin, err, errlen);
    for (int k = 0; rc == 0 && k < g->nd.vfs; k++)
        if (g->nd.vf_mac[k]) /* the VF's MAC is real on the wire: keep it unique */
            rc = alloc_reserve_mac(st, &g->owner, VF_NIC0 + k, g->nd.vf_mac[k], mflags, err,
                                   errlen);
    for (int i = 0; rc == 0 && i < vi->npt; i++)
        if (vi->pt[i].host && vi->pt[i].mac)
            rc = alloc_reserve_mac(st, &g->owner, HOSTVF_MAC0 + i, vi->pt[i].mac, mflags, err,
                                   errlen);
    if (rc < 0) {
        alloc_abort(st);
        return rc;
    }
    rc = alloc_commit(st, err, errlen);
    if (rc == 0)
        g->leased = g->had_leases = 1;
    if (rc == 0)
        rc = take_vfs(g, err, errlen);
    for (int i = 0; rc == 0 && i < vi->npt; i++) {
        alloc_vf vf;
        if (vi->pt[i].host && vi->pt[i].mac)
            rc = alloc_vf_take_pci(st, vi->pt[i].host, g->f->o.sysfs_root, g->f->o.vf_nl,
                                   &g->owner, HOSTVF_NIC0 + i, vi->pt[i].mac, vi->pt[i].vlan, &vf,
                                   err, errlen);
    }
    return rc;
}

/* Guest PCI slots are per guest: the fixed ones (machine, host_connect,
 * opt_addr) are reserved first, then every device without an address gets
 * the lowest free slot, so its address is known before launch. */
int fleet__place_devices(fguest_t *g, char *err, size_t errlen)
{
    char reserved[256] = "";
    size_t off = 0;
    for (int s = 0; s < 32; s++)
        if (g->nd.slots_taken & (1u << s))
            off += (size_t)snprintf(reserved + off, sizeof(reserved) - off, "%s%02x", off ? "," : "", s);
    int rc = alloc_pci_new(&g->pci, reserved, err, errlen);
    for (int k = 0; rc == 0 && k < g->nd.slots; k++) {
        rc = alloc_pci_take_slot(g->pci, &g->res.pci_slot[k]);
        if (rc < 0)
            snprintf(err, errlen, "no free guest PCI slot for %s", g->nd.slot_for[k]);
    }
    return rc;
}

/* Another process bound a forwarded port between the allocator's bind
 * test and QEMU's own bind: trade each SSH port for a fresh one. */
int fleet__renew_ports(fguest_t *g, char *err, size_t errlen)
{
    alloc_store *st = g->f->store;
    if (g->nd.vnc) { /* a leased display can be raced for too */
        char v[16];
        snprintf(v, sizeof(v), "%d", g->res.vnc);
        alloc_release(st, g->owner.name, "vnc", v, err, errlen);
        int rc = alloc_vnc(st, &g->owner, 0, &g->res.vnc, err, errlen);
        if (rc < 0)
            return rc;
    }
    for (int k = 0; k < g->nd.ports; k++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", g->res.ssh_port[k]);
        alloc_release(st, g->owner.name, "port", v, err, errlen);
        int rc = alloc_port(st, &g->owner, g->res.ssh_port[k] + 1, ALLOC_SSH_PORTS_LAST,
                            &g->res.ssh_port[k], err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}
