/* keys_net.c - the net and device keys: NICs with their backends, assigned
 * devices (a fixed host device or a VF from a vf_pool), virtio and
 * vhost-user network devices; the vf_pool key. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/mac.h"
#include "cfg/model.h"

static const char *const nic_models[] = {
    "e1000",    "e1000-82540em", "e1000-82544gc",  "e1000-82545em", "e1000e",
    "i82550",   "i82551",        "i82557a",        "i82557b",       "i82557c",
    "i82558a",  "i82558b",       "i82559a",        "i82559b",       "i82559c",
    "i82559er", "i82562",        "i82801",         "ne2k_pci",      "pcnet",
    "rtl8139",  "tulip",         "virtio-net-pci", "vmxnet3",       NULL
};
#define NIC_MODELS "e1000, e1000e, virtio (virtio-net-pci), rtl8139, vmxnet3, i82559er, ..."

static int new_nic(struct bctx *b, struct cfg_loc loc)
{
    struct model *m = b->m;
    if (m->nnics >= CFG_NIC_MAX)
        return cfg_errf(b->err, b->errlen, loc, "net: more than %d NICs", CFG_NIC_MAX);
    struct m_nic *n = &m->nics[m->nnics];
    memset(n, 0, sizeof(*n));
    n->loc = loc;
    n->model = "e1000";
    n->slot = -1;
    n->mac_need = n->slot_need = n->port_need = -1;
    n->backend = BK_NONE;
    return m->nnics++;
}

static int parse_hostfwd(struct bctx *b, const struct cfg_pair *p, struct m_nic *n)
{
    static const char *const expect = "[tcp|udp]:[HOSTADDR]:[HOSTPORT]-[GUESTADDR]:[GUESTPORT]";
    char f[5][64];
    const char *s = p->val;
    const char seps[4] = { ':', ':', '-', ':' };
    for (int i = 0; i < 5; i++) {
        const char *e = i < 4 ? strchr(s, seps[i]) : s + strlen(s);
        if (!e || e - s >= 64)
            return ko_bad(b, p, expect);
        snprintf(f[i], sizeof(f[i]), "%.*s", (int)(e - s), s);
        s = *e ? e + 1 : e;
    }
    long port;
    if (*f[0] && strcmp(f[0], "tcp") && strcmp(f[0], "udp"))
        return ko_bad(b, p, expect);
    for (int i = 1; i <= 3; i += 2)
        if (*f[i] && !is_ident(f[i], "."))
            return ko_bad(b, p, expect);
    n->fwd_proto = ar_strdup(&b->m->a, *f[0] ? f[0] : "tcp");
    n->fwd_addr = ar_strdup(&b->m->a, *f[1] ? f[1] : "127.0.0.1");
    n->fwd_gaddr = ar_strdup(&b->m->a, f[3]);
    n->fwd_port = 0;
    if (*f[2]) {
        if (int_parse(f[2], 1, 65535, &port) < 0)
            return ko_bad(b, p, expect);
        n->fwd_port = (int)port;
    }
    n->fwd_gport = 22;
    if (*f[4]) {
        if (int_parse(f[4], 1, 65535, &port) < 0)
            return ko_bad(b, p, expect);
        n->fwd_gport = (int)port;
    }
    if (strcmp(n->fwd_addr, "127.0.0.1") && strcmp(n->fwd_addr, "localhost"))
        model_warn(b->m, p->opt_loc,
                   "net: opt_hostfwd listens on %s, not 127.0.0.1: other hosts can reach "
                   "the guest's port %d", n->fwd_addr, n->fwd_gport);
    return 0;
}

static int script_opt(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    if (!*p->val)
        return ko_bad(b, p, "a script path or no");
    *out = !strcmp(p->val, "no") ? "no" : path_resolve(&b->m->a, b->k->dir, p->val);
    return 1;
}

/* DTS pairs net groups by position (1st with 2nd, 3rd with 4th), in
 * either order. Here a backend joins the nic group just before it, or
 * waits for the nic group just after it (pending_bk); a group of the same
 * kind as the one waiting leaves that one alone (finish() warns). */
static int net_backend(struct bctx *b, struct opts *o, int gi, const char *type)
{
    struct model *m = b->m;
    struct cfg_loc loc = ko_group_loc(b, gi);
    int i = m->pending_nic;
    if (i < 0 || m->nics[i].backend != BK_NONE) {
        TRY(i = new_nic(b, loc));
        m->nics[i].nic_pending = 1;
        m->pending_bk = i;
    }
    m->pending_nic = -1;
    struct m_nic *n = &m->nics[i];
    const struct cfg_pair *p;
    n->backend_loc = loc;
    if (!strcmp(type, "user")) {
        n->backend = BK_USER;
        n->hostfwd = 1;
        n->fwd_proto = "tcp";
        n->fwd_addr = "127.0.0.1";
        n->fwd_gaddr = "";
        n->fwd_gport = 22;
        if ((p = ko_get(o, "opt_hostfwd")) && *p->val)
            TRY(parse_hostfwd(b, p, n));
    } else {
        n->backend = !strcmp(type, "tap") ? BK_TAP : BK_BRIDGE;
        n->br = "br0";
        if ((p = ko_get(o, "opt_br"))) {
            if (!is_ident(p->val, "_.-") || strlen(p->val) > 15)
                return ko_bad(b, p, "a bridge interface name (at most 15 characters)");
            n->br = p->val;
        }
        if (n->backend == BK_TAP) {
            n->script = "/etc/qemu-ifup";
            n->downscript = "/etc/qemu-ifdown";
            TRY(script_opt(b, o, "opt_script", &n->script));
            TRY(script_opt(b, o, "opt_downscript", &n->downscript));
        }
    }
    return 0;
}

int k_net(struct bctx *b)
{
    struct model *m = b->m;
    m->had_net = 1;
    m->net_loc = b->k->loc;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *p, *t;
        int vlan = 0;
        TRY(ko_one(b, gi, &o));
        t = ko_get(&o, "type");
        if (!t)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "net: expected type=nic, user, tap or bridge in each group");
        TRY(ko_int(b, &o, "opt_vlan", 0, 4095, &vlan));
        if (vlan)
            model_warn(m, ko_get(&o, "opt_vlan")->val_loc,
                       "net: opt_vlan=%d ignored: each nic is paired with the backend group next "
                       "to it",
                       vlan);
        if (!strcmp(t->val, "nic")) {
            int i = m->pending_bk;
            if (i >= 0) { /* the backend group before it waits for it */
                m->nics[i].nic_pending = 0;
                m->nics[i].loc = ko_group_loc(b, gi);
                m->pending_bk = -1;
            } else {
                TRY(i = new_nic(b, ko_group_loc(b, gi)));
                m->pending_nic = i;
            }
            struct m_nic *n = &m->nics[i];
            if ((p = ko_get(&o, "opt_model"))) {
                if (!strcmp(p->val, "virtio"))
                    n->model = "virtio-net-pci";
                else if (ko_one_of(p->val, nic_models))
                    n->model = p->val;
                else
                    return ko_bad(b, p, "a NIC model: " NIC_MODELS);
            }
            TRY(ko_mac(b, &o, "opt_macaddr", &n->mac));
            TRY(ko_slot(b, &o, "opt_addr", &n->slot, &n->fn, &n->addr_loc));
            TRY(ko_ident(b, &o, "opt_name", "_.-", &n->id));
            int vr = ko_int(b, &o, "opt_vectors", 1, 2048, &n->vectors);
            TRY(vr);
            if (vr == 1 && strcmp(n->model, "virtio-net-pci")) {
                model_warn(m, ko_get(&o, "opt_vectors")->opt_loc,
                           "net: opt_vectors ignored: %s has no MSI-X vectors", n->model);
                n->vectors = 0;
            }
        } else if (!strcmp(t->val, "user") || !strcmp(t->val, "tap") || !strcmp(t->val, "bridge")) {
            m->pending_bk = -1;
            TRY(net_backend(b, &o, gi, t->val));
        } else {
            return ko_bad(b, t, "nic, user, tap or bridge");
        }
        ko_done(b, &o, "net");
    }
    return 0;
}

static int new_dev(struct bctx *b, int gi, const char *driver, int kind)
{
    struct model *m = b->m;
    if (m->ndevs >= CFG_DEV_MAX)
        return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi), "device: more than %d devices",
                        CFG_DEV_MAX);
    struct m_dev *d = &m->devs[m->ndevs];
    memset(d, 0, sizeof(*d));
    d->loc = ko_group_loc(b, gi);
    d->kind = kind;
    d->driver = d->cfg_driver = driver;
    d->slot = -1;
    d->mac_need = d->slot_need = d->vf_need = d->pf_need = d->vf_index = -1;
    return m->ndevs++;
}

static int virtio_opts(struct bctx *b, struct opts *o, struct m_dev *d)
{
    const struct cfg_pair *p;
    TRY(ko_mac(b, o, "opt_mac", &d->mac));
    TRY(ko_ident(b, o, "opt_bus", "_.-", &d->bus));
    TRY(ko_str(b, o, "opt_settings", &d->settings));
    int v;
    if ((p = ko_get(o, "opt_legacy"))) {
        TRY(ko_bool(b, o, "opt_legacy", &v));
        d->legacy = v ? "on" : "off";
    }
    return 0;
}

/* The pool a scene device draws from: pf_dev/pf_idx=N is DTS's DUT port
 * N, the vf_pool named portN; any other name is a vf_pool's name. */
static int scene_pool(struct bctx *b, const struct cfg_pair *p, struct m_dev *d)
{
    long v;
    if (int_parse(p->val, 0, 255, &v) == 0)
        d->pool = ar_printf(&b->m->a, "port%ld", v);
    else if (is_ident(p->val, "_.-") && strlen(p->val) <= CFG_VF_POOL_NAME_MAX)
        d->pool = p->val;
    else
        return ko_bad(b, p, "a DTS port number (the vf_pool named portN) or a vf_pool name");
    d->pool_loc = p->val_loc;
    return 0;
}

/* DTS's scene form, as virt_scene.py rewrites it: vf_idx=N,pf_dev=P
 * [,guestpci=auto|SLOT][,mac=MAC] is VF N of port P passed through;
 * pf_idx=P[,guestpci=...] is port P itself. Here both draw from the
 * vf_pool of port P (scene_pool), leased at launch like opt_pool. */
static int scene_device(struct bctx *b, int gi, struct opts *o, int *out)
{
    struct model *m = b->m;
    const struct cfg_pair *vf = ko_get(o, "vf_idx"), *pf = ko_get(o, "pf_idx"), *p;
    int i;
    if (vf && pf)
        return cfg_errf(b->err, b->errlen, pf->opt_loc,
                        "device: give vf_idx= (a VF of port pf_dev) or pf_idx= (the port "
                        "itself), not both");
    TRY(i = new_dev(b, gi, "vfio-pci", DK_VFIO));
    struct m_dev *d = &m->devs[i];
    d->scene = 1;
    d->vf_index = -1;
    if (vf) {
        d->cfg_driver = "vf_idx";
        TRY(ko_int(b, o, "vf_idx", 0, 255, &d->vf_index));
        if (!(p = ko_get(o, "pf_dev")))
            return cfg_errf(b->err, b->errlen, vf->opt_loc,
                            "device vf_idx: expected pf_dev=PORT too (DTS's DUT port number "
                            "whose VF this is)");
        TRY(scene_pool(b, p, d));
        TRY(ko_mac(b, o, "mac", &d->mac));
    } else {
        d->cfg_driver = "pf_idx";
        d->whole_pf = 1;
        TRY(scene_pool(b, pf, d));
    }
    if ((p = ko_get(o, "guestpci")) && strcmp(p->val, "auto")) {
        if (slot_parse(p->val, &d->slot, &d->fn) < 0)
            return ko_bad(b, p, "auto or a guest PCI slot like 05 or 05.0");
        d->addr_loc = p->val_loc;
    }
    *out = i;
    return 0;
}

/* opt_vlan=N on a VF: the PF tags its traffic (IFLA_VF_VLAN), set with
 * the MAC before launch. A hand-picked VF needs opt_mac with it. */
static int vfio_vlan(struct bctx *b, struct opts *o, struct m_dev *d)
{
    const struct cfg_pair *p = ko_get(o, "opt_vlan");
    if (!p)
        return 0;
    TRY(ko_int(b, o, "opt_vlan", 0, 4095, &d->vlan));
    if (d->vlan && d->host && !d->mac)
        return cfg_errf(b->err, b->errlen, p->opt_loc,
                        "device vfio-pci opt_vlan: with opt_host give opt_mac too (the VF's MAC "
                        "and VLAN are set together through its PF)");
    return 0;
}

int k_device(struct bctx *b)
{
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *drv, *p;
        int i = 0;
        TRY(ko_one(b, gi, &o));
        if (!(drv = ko_get(&o, "driver"))) {
            if (!ko_get(&o, "vf_idx") && !ko_get(&o, "pf_idx"))
                return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                                "device: expected driver=... in each group (or DTS's scene "
                                "form vf_idx=N,pf_dev=PORT or pf_idx=PORT)");
            TRY(scene_device(b, gi, &o, &i));
            TRY(ko_slot(b, &o, "opt_addr", &m->devs[i].slot, &m->devs[i].fn,
                        &m->devs[i].addr_loc));
            ko_done(b, &o, "device");
            continue;
        }
        const char *v = drv->val;
        if (!strcmp(v, "pci-assign") || !strcmp(v, "vfio-pci")) {
            TRY(i = new_dev(b, gi, "vfio-pci", DK_VFIO));
            struct m_dev *d = &m->devs[i];
            d->cfg_driver = v;
            if (!strcmp(v, "pci-assign"))
                model_warn(
                    m, drv->val_loc,
                    "device: pci-assign (legacy KVM assignment) is gone from QEMU; using vfio-pci");
            const struct cfg_pair *pool = ko_get(&o, "opt_pool");
            p = ko_get(&o, "opt_host");
            if (p && pool)
                return cfg_errf(b->err, b->errlen, pool->opt_loc,
                                "device %s: give opt_host= or opt_pool=, not both", v);
            if (!p && !pool)
                return cfg_errf(b->err, b->errlen, d->loc,
                                "device %s: expected opt_host=BB:DD.F (the host PCI device) or "
                                "opt_pool=POOL (a VF of a vf_pool)",
                                v);
            if (pool) {
                /* The pool may be defined by a later key (the VM's section
                 * after the defaults'): vm.c checks the name once all are in. */
                if (!is_ident(pool->val, "_.-"))
                    return ko_bad(b, pool, "a vf_pool name");
                d->pool = pool->val;
                d->pool_loc = pool->val_loc;
                /* The VF's MAC is set on the host before launch, so the cfg
                 * may fix the one the guest sees, as for any NIC. */
                TRY(ko_mac(b, &o, "opt_mac", &d->mac));
            } else {
                char bdf[13];
                if (bdf_parse(p->val, bdf) < 0)
                    return ko_bad(b, p, "a host PCI address like 07:10.0 or 0000:07:10.0");
                d->host = ar_strdup(&m->a, bdf);
                /* FLEET: a hand-picked VF's MAC is set through its PF
                 * before launch and put back after (seed 003's step 1). */
                TRY(ko_mac(b, &o, "opt_mac", &d->mac));
            }
            TRY(vfio_vlan(b, &o, d));
        } else if (!strcmp(v, "virtio-net-pci")) {
            TRY(i = new_dev(b, gi, v, DK_VIRTIO));
            struct m_dev *d = &m->devs[i];
            if ((p = ko_get(&o, "opt_netdev"))) {
                if (!is_ident(p->val, "_.-"))
                    return ko_bad(b, p, "a netdev id");
                d->netdev = p->val;
                d->netdev_loc = p->val_loc;
            }
            TRY(virtio_opts(b, &o, d));
        } else if (!strcmp(v, "vhost-user")) {
            TRY(i = new_dev(b, gi, "virtio-net-pci", DK_VHOST_USER));
            struct m_dev *d = &m->devs[i];
            d->cfg_driver = v;
            d->chr = m->nvhost++;
            if (ko_path(b, &o, "opt_path", &d->path) <= 0)
                return cfg_errf(b->err, b->errlen, d->loc,
                                "device vhost-user: expected opt_path=SOCKET (non-empty)");
            const struct cfg_pair *q1 = ko_get(&o, "opt_queues"), *q2 = ko_get(&o, "opt_queue");
            if (q1 && q2)
                return cfg_errf(b->err, b->errlen, q2->opt_loc,
                                "device vhost-user: give opt_queues= or opt_queue=, not both");
            TRY(ko_int(b, &o, q2 ? "opt_queue" : "opt_queues", 1, 256, &d->queues));
            if ((p = ko_get(&o, "opt_server")) && str_ieq(p->val, "server"))
                d->server = 1; /* DTS passes the word through */
            else
                TRY(ko_bool(b, &o, "opt_server", &d->server));
            TRY(virtio_opts(b, &o, d));
        } else if (!strcmp(v, "vhost-cuse")) {
            return cfg_errf(b->err, b->errlen, drv->val_loc,
                            "device driver: vhost-cuse (CUSE vhost over tap) is gone from current "
                            "QEMU and DPDK; expected vhost-user");
        } else if (!strcmp(v, "virtio") || ko_one_of(v, nic_models)) {
            TRY(i = new_dev(b, gi, !strcmp(v, "virtio") ? "virtio-net-pci" : v, DK_EMUL));
            TRY(virtio_opts(b, &o, &m->devs[i]));
            if (strcmp(m->devs[i].driver, "virtio-net-pci") &&
                (m->devs[i].legacy || m->devs[i].settings))
                model_warn(
                    m, m->devs[i].loc,
                    "device %s: opt_legacy/opt_settings apply to virtio only; passed on as given",
                    v);
        } else {
            return ko_bad(
                b, drv,
                "pci-assign, vfio-pci, virtio-net-pci, vhost-user or a NIC model (" NIC_MODELS ")");
        }
        struct m_dev *d = &m->devs[i];
        TRY(ko_slot(b, &o, "opt_addr", &d->slot, &d->fn, &d->addr_loc));
        if ((p = ko_get(&o, "opt_id"))) {
            if (!is_ident(p->val, "_.-"))
                return ko_bad(b, p, "a device id of letters, digits, '_', '.' and '-'");
            d->id = p->val;
            d->id_loc = p->val_loc;
        }
        ko_done(b, &o, "device");
    }
    return 0;
}

/* Split the space separated PF list of p into pl, checking each name. */
static int pool_pfs(struct bctx *b, const struct cfg_pair *p, struct m_pool *pl)
{
    pl->npf = 0;
    for (const char *s = p->val, *e; word_next(&s, &e); s = e) {
        struct cfg_loc at = loc_add(p->val_loc, (int)(s - p->val));
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)(e - s), s);
        /* IFNAMSIZ: 15 characters; no '/' or leading '.' (they name sysfs dirs) */
        if ((size_t)(e - s) > 15 || !is_ident(name, "_.-") || name[0] == '.')
            return cfg_errf(b->err, b->errlen, at,
                            "vf_pool pf: expected PF netdev names (at most 15 letters, digits, "
                            "'_', '.', '-') separated by spaces, got '%.*s'",
                            (int)(e - s), s);
        for (int i = 0; i < pl->npf; i++)
            if (!strcmp(pl->pf[i], name))
                return cfg_errf(b->err, b->errlen, at, "vf_pool pf: PF %s is listed twice", name);
        if (pl->npf >= CFG_VF_PF_MAX)
            return cfg_errf(b->err, b->errlen, at, "vf_pool pf: more than %d PFs", CFG_VF_PF_MAX);
        pl->pf[pl->npf++] = ar_strdup(&b->m->a, name);
    }
    if (!pl->npf)
        return ko_bad(b, p, "PF netdev names separated by spaces");
    return 0;
}

/* vfs= or exclude= of a pool: space separated VFs, each a PCI address
 * (3b:02.1, made 0000:3b:02.1) or PF:N (VF N of PF, one of the pool's). */
static int pool_sel(struct bctx *b, const struct cfg_pair *p, const struct m_pool *pl,
                    const char **out, int *n)
{
    *n = 0;
    for (const char *s = p ? p->val : "", *e; word_next(&s, &e); s = e) {
        struct cfg_loc at = loc_add(p->val_loc, (int)(s - p->val));
        char w[64], bdf[13];
        snprintf(w, sizeof(w), "%.*s", (int)(e - s), s);
        const char *colon = strrchr(w, ':'), *v = NULL;
        int ok = 0;
        if (bdf_parse(w, bdf) == 0) {
            v = ar_strdup(&b->m->a, bdf);
        } else if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
                   strlen(colon + 1) <= 5) {
            for (int i = 0; i < pl->npf && !ok; i++)
                ok = strlen(pl->pf[i]) == (size_t)(colon - w) &&
                     !strncmp(pl->pf[i], w, (size_t)(colon - w));
            v = ok ? ar_strdup(&b->m->a, w) : NULL;
        }
        if (!v)
            return cfg_errf(b->err, b->errlen, at,
                            "vf_pool %s: expected VFs as PCI addresses (3b:02.1) or PF:N with PF "
                            "one of the pool's, got '%s'",
                            p->opt, w);
        if (*n >= CFG_VF_SEL_MAX)
            return cfg_errf(b->err, b->errlen, at, "vf_pool %s: more than %d VFs", p->opt,
                            CFG_VF_SEL_MAX);
        out[(*n)++] = v;
    }
    if (p && !*n)
        return ko_bad(b, p, "VFs separated by spaces (PCI addresses or PF:N)");
    return 0;
}

/* vf_pool = name=POOL,pf=PF1 PF2; one pool per group. The VFs themselves
 * are found in sysfs when a guest is launched, not here: the cfg stays
 * loadable (qfleet cmdline) on hosts without them. */
int k_vf_pool(struct bctx *b)
{
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *name, *pf;
        TRY(ko_one(b, gi, &o));
        name = ko_get(&o, "name");
        pf = ko_get(&o, "pf");
        if (!name || !pf)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "vf_pool: expected name=POOL,pf=PF1 PF2 in each group");
        if (!is_ident(name->val, "_.-") || strlen(name->val) > CFG_VF_POOL_NAME_MAX)
            return ko_bad(b, name, "a pool name of letters, digits, '_', '.' and '-' (at most 63)");
        for (int i = 0; i < m->npools; i++)
            if (!strcmp(m->pools[i].name, name->val))
                return cfg_errf(b->err, b->errlen, name->val_loc,
                                "vf_pool: pool '%s' is defined twice; first at %s:%d:%d",
                                name->val, m->pools[i].loc.file, m->pools[i].loc.line,
                                m->pools[i].loc.col);
        if (m->npools >= CFG_VF_POOL_MAX)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi), "vf_pool: more than %d pools",
                            CFG_VF_POOL_MAX);
        struct m_pool *pl = &m->pools[m->npools];
        memset(pl, 0, sizeof(*pl));
        pl->name = name->val;
        pl->loc = name->val_loc;
        TRY(pool_pfs(b, pf, pl));
        TRY(pool_sel(b, ko_get(&o, "vfs"), pl, pl->only, &pl->nonly));
        TRY(pool_sel(b, ko_get(&o, "exclude"), pl, pl->exclude, &pl->nexclude));
        /* Leases keep a VF to one guest either way; the warning is for the
         * person who expected two pools to be disjoint. */
        for (int i = 0; i < m->npools; i++)
            for (int j = 0; j < m->pools[i].npf; j++)
                for (int k = 0; k < pl->npf; k++)
                    if (!strcmp(m->pools[i].pf[j], pl->pf[k]))
                        model_warn(m, pf->val_loc,
                                   "vf_pool: PF %s is also in pool %s; the two pools share its VFs",
                                   pl->pf[k], m->pools[i].name);
        m->npools++;
        ko_done(b, &o, "vf_pool");
    }
    return 0;
}

/* mac_prefix = 02:11:22: (or DTS-style prefix=02:11:22:): the first 1-5
 * octets of every MAC the allocator makes for this VM, instead of the one
 * derived from the host's NIC. Used as given (it may name a vendor OUI on
 * purpose), but never multicast. Empty: the host's own prefix. */
int k_mac_prefix(struct bctx *b)
{
    const struct cfg_key *k = b->k;
    if (k->ngroups > 1)
        return cfg_errf(b->err, b->errlen, ko_group_loc(b, 1),
                        "mac_prefix: expected one prefix like 02:11:22:");
    const char *v = k->ngroups ? k->groups[0].text : "";
    struct cfg_loc at = k->ngroups ? ko_group_loc(b, 0) : k->loc;
    struct opts o;
    if (strchr(v, '=')) {
        TRY(ko_all(b, &o));
        const struct cfg_pair *p = ko_get(&o, "prefix");
        if (!p)
            return cfg_errf(b->err, b->errlen, at,
                            "mac_prefix: expected prefix=OCTETS (or the octets alone)");
        v = p->val;
        at = p->val_loc;
        ko_done(b, &o, "mac_prefix");
    }
    b->m->mac_prefix = NULL;
    if (!*v)
        return 0;
    unsigned char oct[6];
    int n = mac_octets_parse(v, oct, 5);
    if (n <= 0)
        return cfg_errf(b->err, b->errlen, at,
                        "mac_prefix: expected 1 to 5 hex octets like 02:11:22:, got '%s'", v);
    if (oct[0] & 1)
        return cfg_errf(b->err, b->errlen, at,
                        "mac_prefix: '%s' is multicast (bit 0 of the first octet is set); a "
                        "NIC's MAC must be unicast",
                        v);
    char canon[16] = "";
    for (int i = 0; i < n; i++)
        snprintf(canon + 3 * i, sizeof(canon) - 3 * (size_t)i, "%02x:", oct[i]);
    b->m->mac_prefix = ar_strdup(&b->m->a, canon);
    return 0;
}
