/* keys.c - one handler per DTS cfg key: check every option, fill the model,
 * warn about what is not used. Values are checked here, so every error
 * points at the offending text. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg/model.h"

struct opts {
    struct cfg_pair p[OPT_MAX];
    int n;
    unsigned used;
};

void model_warn(struct model *m, struct cfg_loc loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ar_grow(&m->a, (void **)&m->warn, sizeof(*m->warn), &m->wcap, m->nwarn + 1) < 0)
        return;
    m->warn[m->nwarn++] = ar_printf(&m->a, "%s:%d:%d: warning: %s", loc.file, loc.line, loc.col, msg);
}

static int add_group(struct bctx *b, const struct cfg_group *g, struct opts *o)
{
    struct cfg_pair tmp[OPT_MAX];
    int n, r = cfg_group_pairs(&b->m->a, g, b->k->loc.file, tmp, OPT_MAX, &n, b->err, b->errlen);
    if (r < 0)
        return r;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < o->n; j++)
            if (str_ieq(o->p[j].opt, tmp[i].opt))
                return cfg_errf(b->err, b->errlen, tmp[i].opt_loc,
                                "%s: duplicate option '%s'; first at line %d column %d",
                                b->k->name, tmp[i].opt, o->p[j].opt_loc.line, o->p[j].opt_loc.col);
        if (o->n >= OPT_MAX)
            return cfg_errf(b->err, b->errlen, tmp[i].opt_loc, "%s: more than %d options",
                            b->k->name, OPT_MAX);
        o->p[o->n++] = tmp[i];
    }
    return 0;
}

/* Single-item keys: the options of all groups together (DTS applies each
 * group in turn). */
static int all_groups(struct bctx *b, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < b->k->ngroups; i++) {
        int r = add_group(b, &b->k->groups[i], o);
        if (r < 0)
            return r;
    }
    return 0;
}

static int one_group(struct bctx *b, int gi, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    return add_group(b, &b->k->groups[gi], o);
}

static const struct cfg_pair *get(struct opts *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (str_ieq(o->p[i].opt, name)) {
            o->used |= 1u << i;
            return &o->p[i];
        }
    return NULL;
}

static void done(struct bctx *b, struct opts *o, const char *what)
{
    for (int i = 0; i < o->n; i++)
        if (!(o->used & (1u << i)))
            model_warn(b->m, o->p[i].opt_loc, "%s: unknown option '%s' ignored", what, o->p[i].opt);
}

static int bad(struct bctx *b, const struct cfg_pair *p, const char *expected)
{
    if (!strcmp(b->k->name, "login")) /* never echo what may be a password */
        return cfg_errf(b->err, b->errlen, p->val_loc, "%s %s: expected %s", b->k->name, p->opt,
                        expected);
    return cfg_errf(b->err, b->errlen, p->val_loc, "%s %s: expected %s, got '%s'", b->k->name,
                    p->opt, expected, p->val);
}

/* Getters: 1 if present and valid, 0 if absent, <0 on error. */
static int get_bool(struct bctx *b, struct opts *o, const char *name, int *out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    static const char *const yes[] = { "yes", "true", "on", "1", "y" };
    static const char *const no[] = { "no", "false", "off", "0", "n" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
        if (str_ieq(p->val, yes[i]))
            return *out = 1, 1;
        if (str_ieq(p->val, no[i]))
            return *out = 0, 1;
    }
    return bad(b, p, "yes or no");
}

static int get_int(struct bctx *b, struct opts *o, const char *name, long lo, long hi, int *out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    long v;
    if (int_parse(p->val, lo, hi, &v) < 0) {
        char what[64];
        snprintf(what, sizeof(what), "a whole number from %ld to %ld", lo, hi);
        return bad(b, p, what);
    }
    *out = (int)v;
    return 1;
}

static int get_str(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    *out = p->val;
    return 1;
}

static int get_ident(struct bctx *b, struct opts *o, const char *name, const char *extra,
                     const char **out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    if (!is_ident(p->val, extra)) {
        char what[96];
        snprintf(what, sizeof(what), "a name of letters, digits and '%s'", extra);
        return bad(b, p, what);
    }
    *out = p->val;
    return 1;
}

static int get_path(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    if (!*p->val)
        return bad(b, p, "a path");
    *out = path_resolve(&b->m->a, b->k->dir, p->val);
    return 1;
}

static int get_mac(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    char mac[18];
    int r = mac_parse(p->val, mac);
    if (r == -EDOM)
        return bad(b, p, "a unicast MAC address (first octet even, not all zero)");
    if (r < 0)
        return bad(b, p, "a MAC address like 52:54:00:12:34:56");
    *out = ar_strdup(&b->m->a, mac);
    return 1;
}

static int get_slot(struct bctx *b, struct opts *o, const char *name, int *slot, int *fn,
                    struct cfg_loc *loc)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    if (slot_parse(p->val, slot, fn) < 0)
        return bad(b, p, "a guest PCI slot like 1f or 1f.0 (hex slot 00-1f, function 0-7)");
    *loc = p->val_loc;
    return 1;
}

static struct cfg_loc group_loc(struct bctx *b, int gi)
{
    return cfg_group_loc(&b->k->groups[gi], b->k->loc.file, 0);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0)                                                                                \
            return r_;                                                                             \
    } while (0)

/* --- the keys ---------------------------------------------------------- */

static int k_name(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    if ((p = get(&o, "name"))) {
        if (!is_ident(p->val, "_.-") || strlen(p->val) > CFG_NAME_MAX || p->val[0] == '.')
            return bad(b, p, "a VM name of letters, digits, '_', '.' and '-' (at most 64)");
        b->m->name = p->val;
        b->m->name_loc = p->val_loc;
    }
    done(b, &o, "name");
    return 0;
}

static int k_enable_kvm(struct bctx *b)
{
    struct opts o;
    TRY(all_groups(b, &o));
    TRY(get_bool(b, &o, "enable", &b->m->kvm));
    done(b, &o, "enable_kvm");
    return 0;
}

static int k_machine(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *t, *mc, *p;
    TRY(all_groups(b, &o));
    t = get(&o, "type");
    mc = get(&o, "machine"); /* DTS spells it machine=, qfleet type= */
    if (t && mc)
        return cfg_errf(b->err, b->errlen, mc->opt_loc, "machine: give type= or machine=, not both");
    if ((p = t ? t : mc)) {
        if (!is_ident(p->val, "_.-"))
            return bad(b, p, "a QEMU machine type such as pc or q35");
        b->m->machine = p->val;
        b->m->machine_loc = p->val_loc;
    }
    if ((p = get(&o, "opt_gic_version")))
        model_warn(b->m, p->opt_loc, "machine: opt_gic_version is for Arm machines; ignored");
    done(b, &o, "machine");
    return 0;
}

static int k_qemu(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    if ((p = get(&o, "path"))) {
        if (!*p->val)
            return bad(b, p, "the path of a QEMU binary");
        b->m->qemu = strchr(p->val, '/') ? path_resolve(&b->m->a, b->k->dir, p->val) : p->val;
    }
    done(b, &o, "qemu");
    return 0;
}

static int k_cpu(struct bctx *b)
{
    struct model *m = b->m;
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    TRY(get_ident(b, &o, "model", "_.+-", &m->cpu_model));
    TRY(get_int(b, &o, "number", 1, 255, &m->smp));
    if ((p = get(&o, "cpupin"))) {
        m->ncpupin = 0;
        m->cpupin_loc = p->val_loc;
        const char *s = p->val;
        while (*s) {
            while (*s == ' ' || *s == '\t')
                s++;
            if (!*s)
                break;
            const char *e = s;
            while (*e && *e != ' ' && *e != '\t')
                e++;
            char tok[32];
            long v;
            struct cfg_loc at = loc_add(p->val_loc, (int)(s - p->val));
            snprintf(tok, sizeof(tok), "%.*s", (int)(e - s), s);
            if ((size_t)(e - s) >= sizeof(tok) || int_parse(tok, 0, 65535, &v) < 0)
                return cfg_errf(b->err, b->errlen, at,
                                "cpu cpupin: expected host CPU numbers separated by spaces, got '%s'",
                                tok);
            for (int i = 0; i < m->ncpupin; i++)
                if (m->cpupin[i] == v)
                    return cfg_errf(b->err, b->errlen, at, "cpu cpupin: CPU %ld is listed twice", v);
            if (m->ncpupin >= CFG_CPUPIN_MAX)
                return cfg_errf(b->err, b->errlen, at, "cpu cpupin: more than %d CPUs",
                                CFG_CPUPIN_MAX);
            m->cpupin[m->ncpupin++] = (int)v;
            s = e;
        }
    }
    done(b, &o, "cpu");
    return 0;
}

static int k_mem(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    TRY(get_int(b, &o, "size", 16, 4 << 20, &b->m->mem_mb));
    if ((p = get(&o, "hugepage")))
        b->m->hugepage_loc = p->val_loc;
    TRY(get_bool(b, &o, "hugepage", &b->m->hugepage));
    done(b, &o, "mem");
    return 0;
}

static int one_of(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(v, *list))
            return 1;
    return 0;
}

static int k_disk(struct bctx *b)
{
    static const char *const ifs[] = { "ide", "scsi", "sd", "mtd", "floppy", "pflash", "virtio", "none", NULL };
    static const char *const media[] = { "disk", "cdrom", NULL };
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *p;
        TRY(one_group(b, gi, &o));
        if (m->ndisks >= CFG_DISK_MAX)
            return cfg_errf(b->err, b->errlen, group_loc(b, gi), "disk: more than %d disks",
                            CFG_DISK_MAX);
        struct m_disk *d = &m->disks[m->ndisks];
        d->index = -1;
        if (get_path(b, &o, "file", &d->file) <= 0)
            return cfg_errf(b->err, b->errlen, group_loc(b, gi),
                            "disk: expected file=PATH in each group");
        TRY(get_ident(b, &o, "opt_format", "_-", &d->format));
        if ((p = get(&o, "opt_if"))) {
            if (!one_of(p->val, ifs))
                return bad(b, p, "ide, scsi, virtio, sd, mtd, floppy, pflash or none");
            d->iface = p->val;
        }
        TRY(get_int(b, &o, "opt_index", 0, 255, &d->index));
        if ((p = get(&o, "opt_media"))) {
            if (!one_of(p->val, media))
                return bad(b, p, "disk or cdrom");
            d->media = p->val;
        }
        m->ndisks++;
        done(b, &o, "disk");
    }
    return 0;
}

static int k_kernel(struct bctx *b)
{
    struct model *m = b->m;
    struct opts o;
    const char *console = NULL, *baud = NULL, *root = NULL, *append = NULL;
    TRY(all_groups(b, &o));
    int f = get_path(b, &o, "file", &m->kernel);
    TRY(f);
    int ki = get_path(b, &o, "kernel_img", &m->kernel); /* DTS's name */
    TRY(ki);
    if (!f && !ki)
        return cfg_errf(b->err, b->errlen, b->k->loc, "kernel: expected file=PATH");
    TRY(get_path(b, &o, "initrd", &m->initrd));
    TRY(get_str(b, &o, "console", &console));
    TRY(get_str(b, &o, "baudrate", &baud));
    TRY(get_str(b, &o, "root", &root));
    TRY(get_str(b, &o, "append", &append));
    struct sbuf s = { 0 };
    if (console)
        sb_printf(&s, "console=%s%s%s", console, baud ? "," : "", baud ? baud : "");
    if (root)
        sb_printf(&s, "%sroot=%s", s.len ? " " : "", root);
    if (append && *append)
        sb_printf(&s, "%s%s", s.len ? " " : "", append);
    if (s.len)
        m->append = ar_strdup(&m->a, s.s);
    sb_free(&s);
    done(b, &o, "kernel");
    return 0;
}

static int k_login(struct bctx *b)
{
    struct opts o;
    TRY(all_groups(b, &o));
    TRY(get_str(b, &o, "user", &b->m->user));
    TRY(get_str(b, &o, "password", &b->m->password));
    done(b, &o, "login");
    return 0;
}

static const char *const nic_models[] = {
    "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82550", "i82551",
    "i82557a", "i82557b", "i82557c", "i82558a", "i82558b", "i82559a", "i82559b", "i82559c",
    "i82559er", "i82562", "i82801", "ne2k_pci", "pcnet", "rtl8139", "tulip", "virtio-net-pci",
    "vmxnet3", NULL
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
            return bad(b, p, expect);
        snprintf(f[i], sizeof(f[i]), "%.*s", (int)(e - s), s);
        s = *e ? e + 1 : e;
    }
    long port;
    if (*f[0] && strcmp(f[0], "tcp") && strcmp(f[0], "udp"))
        return bad(b, p, expect);
    for (int i = 1; i <= 3; i += 2)
        if (*f[i] && !is_ident(f[i], "."))
            return bad(b, p, expect);
    n->fwd_proto = ar_strdup(&b->m->a, *f[0] ? f[0] : "tcp");
    n->fwd_addr = ar_strdup(&b->m->a, *f[1] ? f[1] : "127.0.0.1");
    n->fwd_gaddr = ar_strdup(&b->m->a, f[3]);
    n->fwd_port = 0;
    if (*f[2]) {
        if (int_parse(f[2], 1, 65535, &port) < 0)
            return bad(b, p, expect);
        n->fwd_port = (int)port;
    }
    n->fwd_gport = 22;
    if (*f[4]) {
        if (int_parse(f[4], 1, 65535, &port) < 0)
            return bad(b, p, expect);
        n->fwd_gport = (int)port;
    }
    return 0;
}

static int script_opt(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = get(o, name);
    if (!p)
        return 0;
    if (!*p->val)
        return bad(b, p, "a script path or no");
    *out = !strcmp(p->val, "no") ? "no" : path_resolve(&b->m->a, b->k->dir, p->val);
    return 1;
}

static int net_backend(struct bctx *b, struct opts *o, int gi, const char *type)
{
    struct model *m = b->m;
    struct cfg_loc loc = group_loc(b, gi);
    int i = m->pending_nic;
    if (i < 0 || m->nics[i].backend != BK_NONE) {
        TRY(i = new_nic(b, loc));
        model_warn(m, loc, "net: type=%s has no type=nic group before it; adding an e1000 NIC", type);
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
        if ((p = get(o, "opt_hostfwd")) && *p->val)
            TRY(parse_hostfwd(b, p, n));
    } else {
        n->backend = !strcmp(type, "tap") ? BK_TAP : BK_BRIDGE;
        n->br = "br0";
        if ((p = get(o, "opt_br"))) {
            if (!is_ident(p->val, "_.-") || strlen(p->val) > 15)
                return bad(b, p, "a bridge interface name (at most 15 characters)");
            n->br = p->val;
        }
        if (n->backend == BK_TAP) {
            n->script = "/etc/qemu-ifup";
            n->downscript = "/etc/qemu-ifdown";
            TRY(script_opt(b, o, "opt_script", &n->script));
            TRY(script_opt(b, o, "opt_downscript", &n->downscript));
            if (p)
                model_warn(m, p->opt_loc,
                           "net: tap opt_br=%s is not on the QEMU command line: the tap script "
                           "(%s) must add the tap to the bridge",
                           n->br, n->script);
        }
    }
    return 0;
}

static int k_net(struct bctx *b)
{
    struct model *m = b->m;
    m->had_net = 1;
    m->net_loc = b->k->loc;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *p, *t;
        int vlan = 0;
        TRY(one_group(b, gi, &o));
        t = get(&o, "type");
        if (!t)
            return cfg_errf(b->err, b->errlen, group_loc(b, gi),
                            "net: expected type=nic, user, tap or bridge in each group");
        TRY(get_int(b, &o, "opt_vlan", 0, 4095, &vlan));
        if (vlan)
            model_warn(m, get(&o, "opt_vlan")->val_loc,
                       "net: opt_vlan=%d ignored: each nic is paired with the backend group after it",
                       vlan);
        if (!strcmp(t->val, "nic")) {
            int i;
            TRY(i = new_nic(b, group_loc(b, gi)));
            struct m_nic *n = &m->nics[i];
            if ((p = get(&o, "opt_model"))) {
                if (!strcmp(p->val, "virtio"))
                    n->model = "virtio-net-pci";
                else if (one_of(p->val, nic_models))
                    n->model = p->val;
                else
                    return bad(b, p, "a NIC model: " NIC_MODELS);
            }
            TRY(get_mac(b, &o, "opt_macaddr", &n->mac));
            TRY(get_slot(b, &o, "opt_addr", &n->slot, &n->fn, &n->addr_loc));
            TRY(get_ident(b, &o, "opt_name", "_.-", &n->id));
            int vr = get_int(b, &o, "opt_vectors", 1, 2048, &n->vectors);
            TRY(vr);
            if (vr == 1 && strcmp(n->model, "virtio-net-pci")) {
                model_warn(m, get(&o, "opt_vectors")->opt_loc,
                           "net: opt_vectors ignored: %s has no MSI-X vectors", n->model);
                n->vectors = 0;
            }
            m->pending_nic = i;
        } else if (!strcmp(t->val, "user") || !strcmp(t->val, "tap") ||
                   !strcmp(t->val, "bridge")) {
            TRY(net_backend(b, &o, gi, t->val));
        } else {
            return bad(b, t, "nic, user, tap or bridge");
        }
        done(b, &o, "net");
    }
    return 0;
}

static int new_dev(struct bctx *b, int gi, const char *driver, int kind)
{
    struct model *m = b->m;
    if (m->ndevs >= CFG_DEV_MAX)
        return cfg_errf(b->err, b->errlen, group_loc(b, gi), "device: more than %d devices",
                        CFG_DEV_MAX);
    struct m_dev *d = &m->devs[m->ndevs];
    memset(d, 0, sizeof(*d));
    d->loc = group_loc(b, gi);
    d->kind = kind;
    d->driver = d->cfg_driver = driver;
    d->slot = -1;
    d->mac_need = d->slot_need = -1;
    return m->ndevs++;
}

static int virtio_opts(struct bctx *b, struct opts *o, struct m_dev *d)
{
    const struct cfg_pair *p;
    TRY(get_mac(b, o, "opt_mac", &d->mac));
    TRY(get_ident(b, o, "opt_bus", "_.-", &d->bus));
    TRY(get_str(b, o, "opt_settings", &d->settings));
    int v;
    if ((p = get(o, "opt_legacy"))) {
        TRY(get_bool(b, o, "opt_legacy", &v));
        d->legacy = v ? "on" : "off";
    }
    return 0;
}

static int k_device(struct bctx *b)
{
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *drv, *p;
        int i;
        TRY(one_group(b, gi, &o));
        if (!(drv = get(&o, "driver")))
            return cfg_errf(b->err, b->errlen, group_loc(b, gi),
                            "device: expected driver=... in each group");
        const char *v = drv->val;
        if (!strcmp(v, "pci-assign") || !strcmp(v, "vfio-pci")) {
            TRY(i = new_dev(b, gi, "vfio-pci", DK_VFIO));
            struct m_dev *d = &m->devs[i];
            d->cfg_driver = v;
            if (!strcmp(v, "pci-assign"))
                model_warn(m, drv->val_loc,
                           "device: pci-assign (legacy KVM assignment) is gone from QEMU; using vfio-pci");
            if (!(p = get(&o, "opt_host")))
                return cfg_errf(b->err, b->errlen, d->loc,
                                "device %s: expected opt_host=BB:DD.F (the host PCI device)", v);
            char bdf[13];
            if (bdf_parse(p->val, bdf) < 0)
                return bad(b, p, "a host PCI address like 07:10.0 or 0000:07:10.0");
            d->host = ar_strdup(&m->a, bdf);
        } else if (!strcmp(v, "virtio-net-pci")) {
            TRY(i = new_dev(b, gi, v, DK_VIRTIO));
            struct m_dev *d = &m->devs[i];
            if ((p = get(&o, "opt_netdev"))) {
                if (!is_ident(p->val, "_.-"))
                    return bad(b, p, "a netdev id");
                d->netdev = p->val;
                d->netdev_loc = p->val_loc;
            }
            TRY(virtio_opts(b, &o, d));
        } else if (!strcmp(v, "vhost-user")) {
            TRY(i = new_dev(b, gi, "virtio-net-pci", DK_VHOST_USER));
            struct m_dev *d = &m->devs[i];
            d->cfg_driver = v;
            d->chr = m->nvhost++;
            if (get_path(b, &o, "opt_path", &d->path) <= 0)
                return cfg_errf(b->err, b->errlen, d->loc,
                                "device vhost-user: expected opt_path=SOCKET (non-empty)");
            const struct cfg_pair *q1 = get(&o, "opt_queues"), *q2 = get(&o, "opt_queue");
            if (q1 && q2)
                return cfg_errf(b->err, b->errlen, q2->opt_loc,
                                "device vhost-user: give opt_queues= or opt_queue=, not both");
            TRY(get_int(b, &o, q2 ? "opt_queue" : "opt_queues", 1, 256, &d->queues));
            if ((p = get(&o, "opt_server")) && str_ieq(p->val, "server"))
                d->server = 1; /* DTS passes the word through */
            else
                TRY(get_bool(b, &o, "opt_server", &d->server));
            TRY(virtio_opts(b, &o, d));
        } else if (!strcmp(v, "vhost-cuse")) {
            return cfg_errf(b->err, b->errlen, drv->val_loc,
                            "device driver: vhost-cuse (CUSE vhost over tap) is gone from current "
                            "QEMU and DPDK; expected vhost-user");
        } else if (!strcmp(v, "virtio") || one_of(v, nic_models)) {
            TRY(i = new_dev(b, gi, !strcmp(v, "virtio") ? "virtio-net-pci" : v, DK_EMUL));
            TRY(virtio_opts(b, &o, &m->devs[i]));
            if (strcmp(m->devs[i].driver, "virtio-net-pci") &&
                (m->devs[i].legacy || m->devs[i].settings))
                model_warn(m, m->devs[i].loc, "device %s: opt_legacy/opt_settings apply to virtio only; passed on as given", v);
        } else {
            return bad(b, drv, "pci-assign, vfio-pci, virtio-net-pci, vhost-user or a NIC model (" NIC_MODELS ")");
        }
        struct m_dev *d = &m->devs[i];
        TRY(get_slot(b, &o, "opt_addr", &d->slot, &d->fn, &d->addr_loc));
        if ((p = get(&o, "opt_id"))) {
            if (!is_ident(p->val, "_.-"))
                return bad(b, p, "a device id of letters, digits, '_', '.' and '-'");
            d->id = p->val;
            d->id_loc = p->val_loc;
        }
        done(b, &o, "device");
    }
    return 0;
}

static int k_vnc(struct bctx *b)
{
    struct opts o;
    int disable = 0, num = -1;
    TRY(all_groups(b, &o));
    TRY(get_bool(b, &o, "disable", &disable));
    TRY(get_int(b, &o, "displayNum", 0, 65535 - 5900, &num));
    b->m->vnc = disable ? -1 : num >= 0 ? num : -2;
    if (disable && num >= 0)
        model_warn(b->m, b->k->loc, "vnc: displayNum ignored because disable=yes");
    done(b, &o, "vnc");
    return 0;
}

static int k_qga(struct bctx *b)
{
    struct opts o;
    TRY(all_groups(b, &o));
    TRY(get_bool(b, &o, "enable", &b->m->qga));
    done(b, &o, "qga");
    return 0;
}

static int k_monitor(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    if ((p = get(&o, "path")))
        model_warn(b->m, p->opt_loc, "monitor: path ignored: qfleet owns the QMP sockets "
                                     "(RUNDIR/NAME-qmp.sock, NAME-qmp-inspect.sock)");
    if ((p = get(&o, "port")))
        model_warn(b->m, p->opt_loc, "monitor: port ignored: qfleet's monitors are Unix sockets");
    done(b, &o, "monitor");
    return 0;
}

static int k_serial_port(struct bctx *b)
{
    struct opts o;
    int en = 1;
    TRY(all_groups(b, &o));
    TRY(get_bool(b, &o, "enable", &en));
    if (!en)
        model_warn(b->m, b->k->loc,
                   "serial_port: enable=no ignored: the serial console always goes to RUNDIR/NAME-serial.log");
    done(b, &o, "serial_port");
    return 0;
}

static int k_daemon(struct bctx *b)
{
    struct opts o;
    TRY(all_groups(b, &o));
    o.used = ~0u;
    model_warn(b->m, b->k->loc,
               "daemon: ignored: qfleet supervises QEMU as its child process (no -daemonize)");
    return 0;
}

static int k_migration(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    int en = 0;
    TRY(all_groups(b, &o));
    int has = get_bool(b, &o, "enable", &en);
    TRY(has);
    b->m->migrate = en;
    b->m->migrate_port = 0;
    if ((p = get(&o, "port")) && *p->val)
        TRY(get_int(b, &o, "port", 1, 65535, &b->m->migrate_port));
    if (!has)
        model_warn(b->m, b->k->loc, "migration: ignored without enable=yes");
    done(b, &o, "migration");
    return 0;
}

static int k_usercmd(struct bctx *b)
{
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        const struct cfg_group *g = &b->k->groups[gi];
        const char *t = g->text;
        int i = 0;
        if (strncasecmp(t, "cmd", 3))
            return cfg_errf(b->err, b->errlen, group_loc(b, gi), "usercmd: expected cmd=ARGUMENTS");
        i = 3;
        while (t[i] == ' ' || t[i] == '\t')
            i++;
        if (t[i] != '=')
            return cfg_errf(b->err, b->errlen, group_loc(b, gi), "usercmd: expected cmd=ARGUMENTS");
        i++;
        char **w;
        int n, at;
        const char *why;
        int r = shell_split(&m->a, t + i, &w, &n, &at, &why);
        if (r == -EINVAL)
            return cfg_errf(b->err, b->errlen, cfg_group_loc(g, b->k->loc.file, i + at),
                            "usercmd: %s; expected shell-style words", why);
        TRY(r);
        if (ar_grow(&m->a, (void **)&m->usercmd, sizeof(char *), &m->ucap, m->nusercmd + n) < 0)
            return -ENOMEM;
        for (int j = 0; j < n; j++)
            m->usercmd[m->nusercmd++] = w[j];
    }
    return 0;
}

static int k_start(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(all_groups(b, &o));
    TRY(get_int(b, &o, "wait_seconds", 1, 86400, &b->m->wait_seconds));
    TRY(get_int(b, &o, "login_timeout", 1, 86400, &b->m->login_timeout));
    if ((p = get(&o, "login_prompt")))
        model_warn(b->m, p->opt_loc, "start: login_prompt ignored: qfleet logs in over SSH");
    if ((p = get(&o, "password_prompt")))
        model_warn(b->m, p->opt_loc, "start: password_prompt ignored: qfleet logs in over SSH");
    done(b, &o, "start");
    return 0;
}

static const struct keydef {
    const char *name;
    int list;
    int (*fn)(struct bctx *);
} keydefs[] = {
    { "name", 0, k_name },       { "enable_kvm", 0, k_enable_kvm },
    { "machine", 0, k_machine }, { "qemu", 0, k_qemu },
    { "cpu", 0, k_cpu },         { "mem", 0, k_mem },
    { "disk", 1, k_disk },       { "kernel", 0, k_kernel },
    { "login", 0, k_login },     { "net", 1, k_net },
    { "device", 1, k_device },   { "vnc", 0, k_vnc },
    { "qga", 0, k_qga },         { "monitor", 0, k_monitor },
    { "serial_port", 0, k_serial_port }, { "daemon", 0, k_daemon },
    { "migration", 0, k_migration },     { "usercmd", 1, k_usercmd },
    { "start", 0, k_start },
};

/* Keys DTS knows that qfleet does not act on, with the reason. */
static const struct {
    const char *name, *why;
} unsupported[] = {
    { "control", "qfleet controls guests through QMP, the guest agent and SSH" },
    { "pflash", "firmware flash images are not supported (usercmd can add -drive if=pflash)" },
    { "crypto", "vhost-user crypto devices are not supported" },
    { "pid_file", "qfleet runs QEMU as its child and needs no pid file" },
    { "virt_type", "it selects the hypervisor in DTS; qfleet runs QEMU/KVM" },
    { "os", "it belongs to another hypervisor's settings in DTS" },
    { "vif", "it belongs to DTS's Xen settings" },
    { "def_driver", "it belongs to DTS's libvirt/Xen settings" },
};

int key_is_list(const char *name)
{
    for (size_t i = 0; i < sizeof(keydefs) / sizeof(*keydefs); i++)
        if (!strcmp(keydefs[i].name, name))
            return keydefs[i].list;
    return 0;
}

int model_key(struct bctx *b)
{
    for (size_t i = 0; i < sizeof(keydefs) / sizeof(*keydefs); i++)
        if (!strcmp(keydefs[i].name, b->k->name))
            return keydefs[i].fn(b);
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++)
        if (!strcmp(unsupported[i].name, b->k->name)) {
            model_warn(b->m, b->k->loc, "key '%s' ignored: %s", b->k->name, unsupported[i].why);
            return 0;
        }
    model_warn(b->m, b->k->loc, "unknown key '%s' ignored", b->k->name);
    return 0;
}
