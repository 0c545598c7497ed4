/* check.c - the model's cross checks, once every key is in: ids (the
 * cfg's against each other, qfleet's own and the automatic ones),
 * virtio netdevs, vf_pool names, and the guest PCI slot plan. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cfg/model.h"

int cfg__check_ids(struct model *m, char *err, size_t errlen)
{
    struct idloc {
        const char *id, *what; /* what: the NIC or device an automatic id is for */
        struct cfg_loc loc;
        int automatic;
    } ids[CFG_NIC_MAX + CFG_DEV_MAX];
    int n = 0;
    for (int i = 0; i < m->nnics; i++)
        ids[n++] = (struct idloc){ m->nics[i].id, ar_printf(&m->a, "net NIC %d", i), m->nics[i].loc,
                                   m->nics[i].id_auto };
    for (int i = 0; i < m->ndevs; i++)
        ids[n++] = (struct idloc){ m->devs[i].id,
                                   ar_printf(&m->a, "device %d (%s)", i, m->devs[i].cfg_driver),
                                   m->devs[i].id_loc.file ? m->devs[i].id_loc : m->devs[i].loc,
                                   m->devs[i].id_auto };
    static const char *const ours[] = { "vga0", "vser0", "qga0port", NULL };
    for (int i = 0; i < n; i++) {
        for (int k = 0; ours[k]; k++)
            if (!strcmp(ids[i].id, ours[k]))
                return cfg_errf(err, errlen, ids[i].loc,
                                "id '%s' is reserved for qfleet's own devices", ids[i].id);
        for (int c = 0; c < m->ncrypto; c++) {
            char cid[16];
            snprintf(cid, sizeof(cid), "crypto%d", c);
            if (!strcmp(ids[i].id, cid))
                return cfg_errf(err, errlen, ids[i].loc,
                                "id '%s' is the id of crypto device %d (crypto key); choose "
                                "another id",
                                cid, c);
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(ids[i].id, ids[j].id))
                continue;
            if (ids[i].automatic != ids[j].automatic) { /* name the cfg's id, not ours */
                const struct idloc *u = ids[i].automatic ? &ids[j] : &ids[i];
                const struct idloc *a = ids[i].automatic ? &ids[i] : &ids[j];
                return cfg_errf(err, errlen, u->loc,
                                "id '%s' given here is also the id qfleet gives %s "
                                "automatically; choose another id",
                                u->id, a->what);
            }
            return cfg_errf(err, errlen, ids[i].loc, "id '%s' is used twice; first at %s:%d:%d",
                            ids[i].id, ids[j].loc.file, ids[j].loc.line, ids[j].loc.col);
        }
    }
    return 0;
}

int cfg__check_netdevs(struct model *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->ndevs; i++) {
        struct m_dev *d = &m->devs[i];
        if (d->kind != DK_VIRTIO || !d->netdev)
            continue;
        const char *nd = d->netdev;
        for (int j = 0; j < m->nnics; j++) {
            char own[16];
            snprintf(own, sizeof(own), "net%d", j);
            if (!strcmp(nd, own))
                return cfg_errf(
                    err, errlen, d->netdev_loc,
                    "device virtio-net-pci: opt_netdev=%s is the backend of net NIC %d; "
                    "expected a netdev of its own (defined with usercmd)",
                    nd, j);
        }
        for (int j = 0; j < m->ndevs; j++) {
            char own[16];
            snprintf(own, sizeof(own), "netdev%d", m->devs[j].chr);
            if (m->devs[j].kind == DK_VHOST_USER && !strcmp(nd, own))
                return cfg_errf(
                    err, errlen, d->netdev_loc,
                    "device virtio-net-pci: opt_netdev=%s is the backend of a vhost-user "
                    "device; expected a netdev of its own (defined with usercmd)",
                    nd);
            if (j < i && m->devs[j].kind == DK_VIRTIO && m->devs[j].netdev &&
                !strcmp(m->devs[j].netdev, nd))
                return cfg_errf(
                    err, errlen, d->netdev_loc,
                    "device virtio-net-pci: opt_netdev=%s is used twice; first at line %d", nd,
                    m->devs[j].netdev_loc.line);
        }
        int found = 0;
        for (int j = 0; j + 1 < m->nusercmd && !found; j++) {
            if (strcmp(m->usercmd[j], "-netdev"))
                continue;
            const char *a = m->usercmd[j + 1], *p = strstr(a, "id=");
            size_t l = strlen(nd);
            while (p && !found) {
                if ((p == a || p[-1] == ',') && !strncmp(p + 3, nd, l) &&
                    (!p[3 + l] || p[3 + l] == ','))
                    found = 1;
                p = strstr(p + 3, "id=");
            }
        }
        if (!found)
            model_warn(
                m, d->netdev_loc,
                "device virtio-net-pci: opt_netdev=%s names no -netdev of usercmd; QEMU will "
                "refuse to start unless one is added",
                nd);
    }
    return 0;
}

struct slotmap {
    const char *owner[32][8];
    struct cfg_loc loc[32][8];
    int whole[32]; /* the machine (or VGA) owns every function */
};

static int take_slot(struct slotmap *sm, int slot, int fn, const char *who, struct cfg_loc loc,
                     char *err, size_t errlen)
{
    int f = sm->whole[slot] ? 0 : fn;
    const char *o = sm->owner[slot][f];
    if (o) {
        struct cfg_loc ol = sm->loc[slot][f];
        if (ol.file)
            return cfg_errf(err, errlen, loc, "PCI address %02x.%x is taken by %s at %s:%d:%d",
                            slot, fn, o, ol.file, ol.line, ol.col);
        return cfg_errf(err, errlen, loc, "PCI address %02x.%x is taken by %s", slot, fn, o);
    }
    sm->owner[slot][fn] = who;
    sm->loc[slot][fn] = loc;
    return 0;
}

int cfg__place(struct model *m, char *err, size_t errlen)
{
    struct slotmap sm;
    memset(&sm, 0, sizeof(sm));
    sm.owner[0][0] = "the host bridge";
    sm.whole[0] = 1;
    if (m->mfam == MF_I440FX) {
        sm.owner[1][0] = "the pc machine's PIIX3 (ISA, IDE, USB, ACPI)";
        sm.whole[1] = 1;
    }
    if (m->mfam == MF_Q35) {
        sm.owner[0x1f][0] = "the q35 machine's ICH9 (LPC, SATA, SMBus)";
        sm.whole[0x1f] = 1;
    }
    if (m->vnc != -1) {
        sm.owner[2][0] = "the VGA of the VNC display";
        sm.whole[2] = 1;
    }
    for (int i = 0; i < m->nnics; i++) {
        struct m_nic *n = &m->nics[i];
        if (n->slot < 0)
            continue;
        const char *who = n->addr_loc.file ? ar_printf(&m->a, "NIC %s", n->id)
                                           : "the default host_connect NIC (the VM has no net key)";
        int r = take_slot(&sm, n->slot, n->fn, who, n->addr_loc, err, errlen);
        if (r < 0) {
            if (i == m->host_connect && !n->addr_loc.file)
                return cfg_errf(
                    err, errlen, m->machine_loc.file ? m->machine_loc : n->loc,
                    "machine %s keeps slot 1f for itself, where the default host_connect "
                    "NIC must sit; expected machine type=pc, or a net key",
                    m->machine);
            return r;
        }
    }
    for (int i = 0; i < m->ndevs; i++) {
        struct m_dev *d = &m->devs[i];
        if (d->slot < 0)
            continue;
        const char *who = ar_printf(&m->a, "device %s", d->id);
        int r = take_slot(&sm, d->slot, d->fn, who, d->addr_loc, err, errlen);
        if (r < 0)
            return r;
    }
    unsigned taken = 0;
    for (int s = 0; s < 32; s++)
        for (int f = 0; f < 8; f++)
            if (sm.owner[s][f])
                taken |= 1u << s;
    m->slots_taken = taken;
    int nfree = 32 - __builtin_popcount(taken), need = 0, autos = m->qga;
    struct cfg_loc first = { 0 };
    for (int i = 0; i < m->nnics; i++)
        if (m->nics[i].slot < 0 && !need++)
            first = m->nics[i].loc;
    for (int i = 0; i < m->ndevs; i++)
        if (m->devs[i].slot < 0 && !need++)
            first = m->devs[i].loc;
    for (int i = 0; i < m->ndisks; i++)
        autos += m->disks[i].iface && !strcmp(m->disks[i].iface, "virtio");
    autos += m->ncrypto;
    if (need + autos > nfree) /* also keeps nslots below CFG_SLOT_MAX */
        return cfg_errf(err, errlen, first.file ? first : m->net_loc,
                        "not enough guest PCI slots: %d devices need one (and %d more are placed "
                        "by QEMU), %d are free",
                        need, autos, nfree);
    for (int i = 0; i < m->nnics; i++)
        if (m->nics[i].slot < 0) {
            m->nics[i].slot_need = m->nslots;
            m->slot_for[m->nslots++] = ar_printf(&m->a, "net %d %s", i, m->nics[i].id);
        }
    for (int i = 0; i < m->ndevs; i++)
        if (m->devs[i].slot < 0) {
            m->devs[i].slot_need = m->nslots;
            m->slot_for[m->nslots++] = ar_printf(&m->a, "device %d %s", i, m->devs[i].id);
        }
    return 0;
}

/* Every opt_pool names a vf_pool of the VM (defaults and section merged). */
int cfg__check_pools(struct model *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->ndevs; i++) {
        const struct m_dev *d = &m->devs[i];
        int found = 0;
        for (int j = 0; d->pool && j < m->npools && !found; j++)
            found = !strcmp(m->pools[j].name, d->pool);
        if (!d->pool || found)
            continue;
        if (d->scene) { /* the cfg stays loadable; the fleet cannot lease it */
            model_warn(m, d->pool_loc,
                       "device %s: the VM has no vf_pool named %s, so the fleet cannot %s; "
                       "expected vf_pool = name=%s,pf=PF (the PF netdev of DTS port %s) in "
                       "[KVM]",
                       d->cfg_driver, d->pool,
                       d->whole_pf ? "pass the port through" : "lease a VF of it", d->pool,
                       d->pool + (strncmp(d->pool, "port", 4) ? 0 : 4));
            continue;
        }
        if (!m->npools)
            return cfg_errf(err, errlen, d->pool_loc,
                            "device %s: opt_pool=%s names no vf_pool; expected a vf_pool = "
                            "name=%s,pf=PF... key (in the VM's section or the defaults' [KVM])",
                            d->cfg_driver, d->pool, d->pool);
        struct sbuf names = { 0 };
        for (int j = 0; j < m->npools; j++)
            sb_printf(&names, "%s%s", j ? ", " : "", m->pools[j].name);
        int r = cfg_errf(err, errlen, d->pool_loc,
                         "device %s: opt_pool=%s names no vf_pool; expected one of: %s",
                         d->cfg_driver, d->pool, names.s ? names.s : "");
        sb_free(&names);
        return r;
    }
    return 0;
}
