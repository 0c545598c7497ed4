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

void model_warn(struct model *m, struct cfg_loc loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ar_grow(&m->a, (void **)&m->warn, sizeof(*m->warn), &m->wcap, m->nwarn + 1) < 0)
        return;
    m->warn[m->nwarn++] =
        ar_printf(&m->a, "%s:%d:%d: warning: %s", loc.file, loc.line, loc.col, msg);
}

static int ko_add_group(struct bctx *b, const struct cfg_group *g, struct opts *o)
{
    struct cfg_pair tmp[OPT_MAX];
    int n, r = cfg_group_pairs(&b->m->a, g, b->k->loc.file, tmp, OPT_MAX, &n, b->err, b->errlen);
    if (r < 0)
        return r;
    for (int i = 0; i < n; i++) {
        /* opt_settings holds QEMU properties, a comma list itself
         * (opt_settings=mrg_rxbuf=on,mq=on): items after it that are not
         * options of the cfg (opt_*, driver) continue its value. */
        const struct cfg_pair *last = o->n ? &o->p[o->n - 1] : NULL;
        if (last && str_ieq(last->opt, "opt_settings") && strncasecmp(tmp[i].opt, "opt_", 4) &&
            !str_ieq(tmp[i].opt, "driver")) {
            o->p[o->n - 1].val = ar_printf(&b->m->a, "%s%s%s=%s", last->val, *last->val ? "," : "",
                                           tmp[i].opt, tmp[i].val);
            continue;
        }
        for (int j = 0; j < o->n; j++)
            if (str_ieq(o->p[j].opt, tmp[i].opt))
                return cfg_errf(b->err, b->errlen, tmp[i].opt_loc,
                                "%s: duplicate option '%s'; first at line %d column %d", b->k->name,
                                tmp[i].opt, o->p[j].opt_loc.line, o->p[j].opt_loc.col);
        if (o->n >= OPT_MAX)
            return cfg_errf(b->err, b->errlen, tmp[i].opt_loc, "%s: more than %d options",
                            b->k->name, OPT_MAX);
        o->p[o->n++] = tmp[i];
    }
    return 0;
}

/* Single-item keys: the options of all groups together (DTS applies each
 * group in turn). */
int ko_all(struct bctx *b, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < b->k->ngroups; i++) {
        int r = ko_add_group(b, &b->k->groups[i], o);
        if (r < 0)
            return r;
    }
    return 0;
}

int ko_one(struct bctx *b, int gi, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    return ko_add_group(b, &b->k->groups[gi], o);
}

const struct cfg_pair *ko_get(struct opts *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (str_ieq(o->p[i].opt, name)) {
            o->used |= 1u << i;
            return &o->p[i];
        }
    return NULL;
}

void ko_done(struct bctx *b, struct opts *o, const char *what)
{
    for (int i = 0; i < o->n; i++)
        if (!(o->used & (1u << i)))
            model_warn(b->m, o->p[i].opt_loc, "%s: unknown option '%s' ignored", what, o->p[i].opt);
}

int ko_bad(struct bctx *b, const struct cfg_pair *p, const char *expected)
{
    if (!strcmp(b->k->name, "login")) /* never echo what may be a password */
        return cfg_errf(b->err, b->errlen, p->val_loc, "%s %s: expected %s", b->k->name, p->opt,
                        expected);
    const char *hash = strchr(p->val, '#');
    if (hash && hash > p->val && (hash[-1] == ' ' || hash[-1] == '\t'))
        return cfg_errf(b->err, b->errlen, p->val_loc,
                        "%s %s: expected %s, got '%s' (inline comments are not allowed: '#' "
                        "starts a comment only at the start of a line)",
                        b->k->name, p->opt, expected, p->val);
    return cfg_errf(b->err, b->errlen, p->val_loc, "%s %s: expected %s, got '%s'", b->k->name,
                    p->opt, expected, p->val);
}

/* Getters: 1 if present and valid, 0 if absent, <0 on error. */
int ko_bool(struct bctx *b, struct opts *o, const char *name, int *out)
{
    const struct cfg_pair *p = ko_get(o, name);
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
    return ko_bad(b, p, "yes or no");
}

int ko_int(struct bctx *b, struct opts *o, const char *name, long lo, long hi, int *out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    long v;
    if (int_parse(p->val, lo, hi, &v) < 0) {
        char what[64];
        snprintf(what, sizeof(what), "a whole number from %ld to %ld", lo, hi);
        return ko_bad(b, p, what);
    }
    *out = (int)v;
    return 1;
}

int ko_str(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    *out = p->val;
    return 1;
}

int ko_ident(struct bctx *b, struct opts *o, const char *name, const char *extra, const char **out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    if (!is_ident(p->val, extra)) {
        char what[96];
        snprintf(what, sizeof(what), "a name of letters, digits and '%s'", extra);
        return ko_bad(b, p, what);
    }
    *out = p->val;
    return 1;
}

int ko_path(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    if (!*p->val)
        return cfg_errf(b->err, b->errlen, p->val_loc, "%s %s: is empty; expected a path",
                        b->k->name, p->opt);
    *out = path_resolve(&b->m->a, b->k->dir, p->val);
    return 1;
}

int ko_mac(struct bctx *b, struct opts *o, const char *name, const char **out)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    char mac[18];
    int r = cfg_mac_parse(p->val, mac);
    if (r == -EDOM)
        return ko_bad(b, p, "a unicast MAC address (first octet even, not all zero)");
    if (r < 0)
        return ko_bad(b, p, "a MAC address like 52:54:00:12:34:56");
    *out = ar_strdup(&b->m->a, mac);
    return 1;
}

int ko_slot(struct bctx *b, struct opts *o, const char *name, int *slot, int *fn,
            struct cfg_loc *loc)
{
    const struct cfg_pair *p = ko_get(o, name);
    if (!p)
        return 0;
    if (slot_parse(p->val, slot, fn) < 0)
        return ko_bad(b, p, "a guest PCI slot like 1f or 1f.0 (hex slot 00-1f, function 0-7)");
    *loc = p->val_loc;
    return 1;
}

struct cfg_loc ko_group_loc(struct bctx *b, int gi)
{
    return cfg_group_loc(&b->k->groups[gi], b->k->loc.file, 0);
}

/* --- the keys ---------------------------------------------------------- */

static int k_name(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(ko_all(b, &o));
    if ((p = ko_get(&o, "name"))) {
        if (!is_ident(p->val, "_.-") || strlen(p->val) > CFG_NAME_MAX || p->val[0] == '.')
            return ko_bad(b, p, "a VM name of letters, digits, '_', '.' and '-' (at most 64)");
        b->m->name = p->val;
        b->m->name_loc = p->val_loc;
    }
    ko_done(b, &o, "name");
    return 0;
}

static int k_enable_kvm(struct bctx *b)
{
    struct opts o;
    TRY(ko_all(b, &o));
    TRY(ko_bool(b, &o, "enable", &b->m->kvm));
    ko_done(b, &o, "enable_kvm");
    return 0;
}

static int k_machine(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *t, *mc, *p;
    TRY(ko_all(b, &o));
    t = ko_get(&o, "type");
    mc = ko_get(&o, "machine"); /* DTS spells it machine=, qfleet type= */
    if (t && mc)
        return cfg_errf(b->err, b->errlen, mc->opt_loc,
                        "machine: give type= or machine=, not both");
    if ((p = t ? t : mc)) {
        if (!is_ident(p->val, "_.-"))
            return ko_bad(b, p, "a QEMU machine type such as pc or q35");
        b->m->machine = p->val;
        b->m->machine_loc = p->val_loc;
    }
    if ((p = ko_get(&o, "opt_gic_version")))
        model_warn(b->m, p->opt_loc, "machine: opt_gic_version is for Arm machines; ignored");
    ko_done(b, &o, "machine");
    return 0;
}

/* qemu = path=A; path=B; ...: DTS applies each group in turn, so the last
 * path is the binary; its suites loop over the list (one case per QEMU).
 * The model keeps them all; cfg_vm_select_qemu picks one. */
static int k_qemu(struct bctx *b)
{
    struct model *m = b->m;
    m->nqemu = 0;
    m->qemu_loc = b->k->loc;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *p;
        TRY(ko_one(b, gi, &o));
        if ((p = ko_get(&o, "path"))) {
            if (!*p->val)
                return ko_bad(b, p, "the path of a QEMU binary");
            if (m->nqemu >= CFG_QEMU_MAX)
                return cfg_errf(b->err, b->errlen, p->opt_loc, "qemu: more than %d paths",
                                CFG_QEMU_MAX);
            m->qemu_paths[m->nqemu++] =
                strchr(p->val, '/') ? path_resolve(&m->a, b->k->dir, p->val) : p->val;
        }
        ko_done(b, &o, "qemu");
    }
    if (m->nqemu)
        m->qemu = m->qemu_paths[m->nqemu - 1];
    return 0;
}

/* A space separated list of host CPUs (cpupin, skipcores). */
static int cpu_list(struct bctx *b, const struct cfg_pair *p, int *out, int *n)
{
    *n = 0;
    for (const char *s = p->val, *e; word_next(&s, &e); s = e) {
        char tok[32];
        long v;
        struct cfg_loc at = loc_add(p->val_loc, (int)(s - p->val));
        snprintf(tok, sizeof(tok), "%.*s", (int)(e - s), s);
        if ((size_t)(e - s) >= sizeof(tok) || int_parse(tok, 0, 65535, &v) < 0)
            return cfg_errf(b->err, b->errlen, at,
                            "cpu %s: expected host CPU numbers separated by spaces, got '%s'",
                            p->opt, tok);
        for (int i = 0; i < *n; i++)
            if (out[i] == v)
                return cfg_errf(b->err, b->errlen, at, "cpu %s: CPU %ld is listed twice", p->opt,
                                v);
        if (*n >= CFG_CPUPIN_MAX)
            return cfg_errf(b->err, b->errlen, at, "cpu %s: more than %d CPUs", p->opt,
                            CFG_CPUPIN_MAX);
        out[(*n)++] = (int)v;
    }
    return 0;
}

static int k_cpu(struct bctx *b)
{
    struct model *m = b->m;
    struct opts o;
    const struct cfg_pair *p, *p2;
    TRY(ko_all(b, &o));
    m->cpu_loc = b->k->loc;
    const struct cfg_pair *mp = ko_get(&o, "model");
    if (mp)
        m->cpu_model_loc = mp->val_loc;
    TRY(ko_ident(b, &o, "model", "_.+-", &m->cpu_model));
    TRY(ko_int(b, &o, "number", 1, 255, &m->smp));
    p = ko_get(&o, "cpupin");
    p2 = ko_get(&o, "cpu_pin"); /* DTS's scene files spell it so */
    if (p && p2)
        return cfg_errf(b->err, b->errlen, p2->opt_loc, "cpu: give cpupin= or cpu_pin=, not both");
    if ((p = p ? p : p2)) {
        m->cpupin_loc = p->val_loc;
        TRY(cpu_list(b, p, m->cpupin, &m->ncpupin));
    }
    if ((p = ko_get(&o, "skipcores")))
        TRY(cpu_list(b, p, m->skipcores, &m->nskip));
    if ((p = ko_get(&o, "numa"))) {
        long v;
        if (!strcmp(p->val, "auto"))
            m->numa = CFG_NUMA_AUTO;
        else if (int_parse(p->val, 0, 1023, &v) == 0)
            m->numa = (int)v;
        else
            return ko_bad(b, p, "auto or a NUMA node number");
    }
    if ((p = ko_get(&o, "cpu_topo")))
        model_warn(m, p->opt_loc, "cpu: cpu_topo ignored: qfleet gives the guest -smp N only");
    if ((p = ko_get(&o, "numa_aware")))
        model_warn(m, p->opt_loc, "cpu: numa_aware ignored: it is a libvirt setting in DTS");
    ko_done(b, &o, "cpu");
    return 0;
}

/* QEMU's -m syntax: MiB, or a number with a K, M, G or T suffix. */
static int mem_size(const char *v, long *mb)
{
    char num[24];
    size_t n = strspn(v, "0123456789");
    if (!n || n >= sizeof(num))
        return -EINVAL;
    memcpy(num, v, n);
    num[n] = 0;
    long x;
    if (int_parse(num, 0, 1L << 50, &x) < 0)
        return -EINVAL;
    const char *suf = v + n;
    if (!*suf || str_ieq(suf, "M") || str_ieq(suf, "MB") || str_ieq(suf, "MiB")) {
        *mb = x;
    } else if (str_ieq(suf, "G") || str_ieq(suf, "GB") || str_ieq(suf, "GiB")) {
        *mb = x << 10;
    } else if (str_ieq(suf, "T") || str_ieq(suf, "TB") || str_ieq(suf, "TiB")) {
        *mb = x << 20;
    } else if (str_ieq(suf, "K") || str_ieq(suf, "KB") || str_ieq(suf, "KiB")) {
        if (x % 1024)
            return -EINVAL;
        *mb = x >> 10;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int k_mem(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(ko_all(b, &o));
    if ((p = ko_get(&o, "size"))) {
        long mb;
        if (mem_size(p->val, &mb) < 0 || mb < 16 || mb > (4L << 20))
            return ko_bad(b, p,
                          "a memory size from 16 to 4194304 MiB: a number of MiB, or with a "
                          "K, M, G or T suffix like 2G");
        b->m->mem_mb = (int)mb;
    }
    if ((p = ko_get(&o, "hugepage")))
        b->m->hugepage_loc = p->val_loc;
    TRY(ko_bool(b, &o, "hugepage", &b->m->hugepage));
    ko_done(b, &o, "mem");
    return 0;
}

int ko_one_of(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(v, *list))
            return 1;
    return 0;
}

static int k_disk(struct bctx *b)
{
    static const char *const ifs[] = { "ide",    "scsi",   "sd",   "mtd", "floppy",
                                       "pflash", "virtio", "none", NULL };
    static const char *const media[] = { "disk", "cdrom", NULL };
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        const struct cfg_pair *p;
        TRY(ko_one(b, gi, &o));
        if (m->ndisks >= CFG_DISK_MAX)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi), "disk: more than %d disks",
                            CFG_DISK_MAX);
        struct m_disk *d = &m->disks[m->ndisks];
        d->index = -1;
        int fr = ko_path(b, &o, "file", &d->file);
        TRY(fr);
        if (!fr)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "disk: expected file=PATH in each group");
        TRY(ko_ident(b, &o, "opt_format", "_-", &d->format));
        if ((p = ko_get(&o, "opt_if"))) {
            if (!ko_one_of(p->val, ifs))
                return ko_bad(b, p, "ide, scsi, virtio, sd, mtd, floppy, pflash or none");
            d->iface = p->val;
        }
        TRY(ko_int(b, &o, "opt_index", 0, 255, &d->index));
        if ((p = ko_get(&o, "opt_media"))) {
            if (!ko_one_of(p->val, media))
                return ko_bad(b, p, "disk or cdrom");
            d->media = p->val;
        }
        m->ndisks++;
        ko_done(b, &o, "disk");
    }
    return 0;
}

static int k_kernel(struct bctx *b)
{
    struct model *m = b->m;
    struct opts o;
    const char *console = NULL, *baud = NULL, *root = NULL, *append = NULL;
    TRY(ko_all(b, &o));
    int f = ko_path(b, &o, "file", &m->kernel);
    TRY(f);
    int ki = ko_path(b, &o, "kernel_img", &m->kernel); /* DTS's name */
    TRY(ki);
    if (f && ki)
        return cfg_errf(b->err, b->errlen, ko_get(&o, "kernel_img")->opt_loc,
                        "kernel: give file= or kernel_img=, not both");
    if (!f && !ki)
        return cfg_errf(b->err, b->errlen, b->k->loc, "kernel: expected file=PATH");
    TRY(ko_path(b, &o, "initrd", &m->initrd));
    TRY(ko_str(b, &o, "console", &console));
    TRY(ko_str(b, &o, "baudrate", &baud));
    TRY(ko_str(b, &o, "root", &root));
    TRY(ko_str(b, &o, "append", &append));
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
    ko_done(b, &o, "kernel");
    return 0;
}

static int k_login(struct bctx *b)
{
    struct opts o;
    TRY(ko_all(b, &o));
    TRY(ko_str(b, &o, "user", &b->m->user));
    TRY(ko_str(b, &o, "password", &b->m->password));
    ko_done(b, &o, "login");
    return 0;
}

static int k_vnc(struct bctx *b)
{
    struct opts o;
    int disable = 0, num = -1;
    TRY(ko_all(b, &o));
    TRY(ko_bool(b, &o, "disable", &disable));
    TRY(ko_int(b, &o, "displayNum", 0, 65535 - 5900, &num));
    b->m->vnc = disable ? -1 : num >= 0 ? num : -2;
    if (disable && num >= 0)
        model_warn(b->m, b->k->loc, "vnc: displayNum ignored because disable=yes");
    ko_done(b, &o, "vnc");
    return 0;
}

static int k_qga(struct bctx *b)
{
    struct opts o;
    TRY(ko_all(b, &o));
    TRY(ko_bool(b, &o, "enable", &b->m->qga));
    ko_done(b, &o, "qga");
    return 0;
}

static int k_monitor(struct bctx *b)
{
    struct opts o;
    const struct cfg_pair *p;
    TRY(ko_all(b, &o));
    if ((p = ko_get(&o, "path")))
        model_warn(b->m, p->opt_loc,
                   "monitor: path ignored: qfleet owns the QMP sockets "
                   "(RUNDIR/NAME-qmp.sock, NAME-qmp-inspect.sock)");
    if ((p = ko_get(&o, "port")))
        model_warn(b->m, p->opt_loc, "monitor: port ignored: qfleet's monitors are Unix sockets");
    ko_done(b, &o, "monitor");
    return 0;
}

static int k_serial_port(struct bctx *b)
{
    struct opts o;
    int en = 1;
    TRY(ko_all(b, &o));
    TRY(ko_bool(b, &o, "enable", &en));
    if (!en)
        model_warn(b->m, b->k->loc,
                   "serial_port: enable=no ignored: the serial console always goes to "
                   "RUNDIR/NAME-serial.log");
    ko_done(b, &o, "serial_port");
    return 0;
}

static int k_daemon(struct bctx *b)
{
    struct opts o;
    TRY(ko_all(b, &o));
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
    TRY(ko_all(b, &o));
    int has = ko_bool(b, &o, "enable", &en);
    TRY(has);
    b->m->migrate = en;
    b->m->migrate_port = 0;
    if ((p = ko_get(&o, "port")) && *p->val)
        TRY(ko_int(b, &o, "port", 1, 65535, &b->m->migrate_port));
    /* DTS listens on every address (-incoming tcp::PORT): its suites
     * migrate between hosts. listen= (qfleet's) narrows it. */
    b->m->migrate_listen = "";
    if ((p = ko_get(&o, "listen"))) {
        if (*p->val && !is_ident(p->val, ".-"))
            return ko_bad(b, p, "an IPv4 address or host name to listen on (empty: all)");
        b->m->migrate_listen = p->val;
    }
    if (!has)
        model_warn(b->m, b->k->loc, "migration: ignored without enable=yes");
    ko_done(b, &o, "migration");
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
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "usercmd: expected cmd=ARGUMENTS");
        i = 3;
        while (t[i] == ' ' || t[i] == '\t')
            i++;
        if (t[i] != '=')
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "usercmd: expected cmd=ARGUMENTS");
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
    TRY(ko_all(b, &o));
    TRY(ko_int(b, &o, "wait_seconds", 1, 86400, &b->m->wait_seconds));
    TRY(ko_int(b, &o, "login_timeout", 1, 86400, &b->m->login_timeout));
    if ((p = ko_get(&o, "login_prompt")))
        model_warn(b->m, p->opt_loc, "start: login_prompt ignored: qfleet logs in over SSH");
    if ((p = ko_get(&o, "password_prompt")))
        model_warn(b->m, p->opt_loc, "start: password_prompt ignored: qfleet logs in over SSH");
    ko_done(b, &o, "start");
    return 0;
}

/* pflash = file=PATH; one flash drive per group (DTS: -pflash PATH). */
static int k_pflash(struct bctx *b)
{
    struct model *m = b->m;
    for (int gi = 0; gi < b->k->ngroups; gi++) {
        struct opts o;
        TRY(ko_one(b, gi, &o));
        if (m->npflash >= CFG_PFLASH_MAX)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi), "pflash: more than %d files",
                            CFG_PFLASH_MAX);
        int r = ko_path(b, &o, "file", &m->pflash[m->npflash]);
        TRY(r);
        if (!r)
            return cfg_errf(b->err, b->errlen, ko_group_loc(b, gi),
                            "pflash: expected file=PATH in each group");
        m->npflash++;
        ko_done(b, &o, "pflash");
    }
    return 0;
}

/* crypto = enable=yes,opt_num=N: N virtio-crypto devices, each on a
 * vhost-user crypto backend at DTS's socket path (cfg_crypto_path). */
static int k_crypto(struct bctx *b)
{
    struct opts o;
    int en = 0, num = 1;
    TRY(ko_all(b, &o));
    int has = ko_bool(b, &o, "enable", &en);
    TRY(has);
    TRY(ko_int(b, &o, "opt_num", 1, CFG_CRYPTO_MAX, &num));
    b->m->ncrypto = en ? num : 0;
    if (!has)
        model_warn(b->m, b->k->loc, "crypto: ignored without enable=yes");
    ko_done(b, &o, "crypto");
    return 0;
}

static const struct keydef {
    const char *name;
    int list;
    int (*fn)(struct bctx *);
} keydefs[] = {
    { "name", 0, k_name },
    { "enable_kvm", 0, k_enable_kvm },
    { "machine", 0, k_machine },
    { "qemu", 0, k_qemu },
    { "cpu", 0, k_cpu },
    { "mem", 0, k_mem },
    { "disk", 1, k_disk },
    { "kernel", 0, k_kernel },
    { "login", 0, k_login },
    { "net", 1, k_net },
    { "device", 1, k_device },
    { "vnc", 0, k_vnc },
    { "qga", 0, k_qga },
    { "monitor", 0, k_monitor },
    { "serial_port", 0, k_serial_port },
    { "daemon", 0, k_daemon },
    { "migration", 0, k_migration },
    { "usercmd", 1, k_usercmd },
    { "start", 0, k_start },
    { "vf_pool", 1, k_vf_pool },
    { "mac_prefix", 0, k_mac_prefix },
    { "pflash", 1, k_pflash },
    { "crypto", 0, k_crypto },
};

/* Keys DTS knows that qfleet does not act on, with the reason. */
static const struct {
    const char *name, *why;
} unsupported[] = {
    { "control", "qfleet controls guests through QMP, the guest agent and SSH" },
    { "pid_file", "qfleet runs QEMU as its child and needs no pid file" },
    { "virt_type", "it selects the hypervisor in DTS; qfleet runs QEMU/KVM" },
    { "os", "it belongs to another hypervisor's settings in DTS" },
    { "vif", "it belongs to DTS's Xen settings" },
    { "def_driver", "it is DTS's guest port driver for KVM (driver_name, e.g. vfio-pci; "
                    "driver_mode=noiommu), which DTS binds the guest's ports to; qfleet does "
                    "not bind drivers inside guests (a suite step can)" },
    { "dev_gen", "DTS's scenes create VFs here; qfleet does not create VFs: create them "
                 "(sriov_numvfs) and bind them to vfio-pci before launch" },
};

int cfg_section_is_vm(const struct cfg_section *s)
{
    for (int k = 0; k < s->nkeys; k++) {
        for (size_t i = 0; i < sizeof(keydefs) / sizeof(*keydefs); i++)
            if (!strcmp(keydefs[i].name, s->keys[k].name))
                return 1;
        for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++)
            if (!strcmp(unsupported[i].name, s->keys[k].name))
                return 1;
    }
    return 0;
}

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
