/* argv.c - model + leased resources -> QEMU argv. Allocates nothing on the
 * host; only reads the mounts table for hugetlbfs. Values that go inside
 * QEMU option lists (k=v,k=v) have their commas doubled. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cfg/model.h"

void cfg_vm_needs(const struct cfg_vm *vm, struct cfg_needs *out)
{
    const struct model *m = vm_model(vm);
    memset(out, 0, sizeof(*out));
    out->macs = m->nmacs;
    out->slots = m->nslots;
    out->ports = m->nports;
    memcpy(out->mac_for, m->mac_for, sizeof(out->mac_for));
    memcpy(out->slot_for, m->slot_for, sizeof(out->slot_for));
    memcpy(out->port_for, m->port_for, sizeof(out->port_for));
    out->slots_taken = m->slots_taken;
    out->vnc = m->vnc == -2;
    out->migrate_port = m->migrate && !m->migrate_port;
    out->hugepages = m->hugepage;
    out->cpupin = m->cpupin;
    out->ncpupin = m->ncpupin;
    out->vfs = m->nvfs;
    out->pfs = m->npfs;
    for (int i = 0; i < m->ndevs; i++) {
        const struct m_dev *d = &m->devs[i];
        if (d->whole_pf) {
            out->pf_pool[d->pf_need] = d->pool;
            out->pf_for[d->pf_need] = m->pf_for[d->pf_need];
            continue;
        }
        if (!d->pool)
            continue;
        out->vf_index[d->vf_need] = d->vf_index;
        out->vf_pool[d->vf_need] = d->pool;
        out->vf_for[d->vf_need] = m->vf_for[d->vf_need];
        out->vf_mac[d->vf_need] = d->mac;
        out->vf_mac_need[d->vf_need] = d->mac_need;
        out->vf_vlan[d->vf_need] = d->vlan;
    }
}

const char *cfg_vf_mac(const struct cfg_needs *nd, const struct cfg_res *res, int k)
{
    if (k < 0 || k >= nd->vfs)
        return NULL;
    return nd->vf_mac[k] ? nd->vf_mac[k] : res ? res->macs[nd->vf_mac_need[k]] : NULL;
}

/* The canonical form of a leased VF's (or PF's) address: 0 or -EINVAL. */
static int bdf_of(const char h[13], char out[13])
{
    return memchr(h, '\0', 13) && bdf_parse(h, out) == 0 ? 0 : -EINVAL;
}

static int vf_host(const struct cfg_res *res, int k, char out[13])
{
    return bdf_of(res->vf_host[k], out);
}

static const char *inst_name(const struct model *m, const struct cfg_res *res)
{
    return res && res->name ? res->name : m->name;
}

int cfg_run_path(const struct cfg_vm *vm, const struct cfg_res *res, enum cfg_run_file f, char *out,
                 size_t outlen)
{
    static const char *const suffix[] = { "qmp.sock", "qmp-inspect.sock", "qga.sock",
                                          "serial.log" };
    if ((unsigned)f > CFG_RUN_SERIAL || !res || !res->run_dir)
        return -EINVAL;
    int n =
        snprintf(out, outlen, "%s/%s-%s", res->run_dir, inst_name(vm_model(vm), res), suffix[f]);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int cfg_pt_slot(const struct cfg_pt *pt, const struct cfg_res *res)
{
    if (pt->slot >= 0)
        return pt->slot;
    return res && pt->slot_need >= 0 ? res->pci_slot[pt->slot_need] : -1;
}

int cfg_vm_ssh(const struct cfg_vm *vm, const struct cfg_res *res, const char **addr, int *port)
{
    const struct model *m = vm_model(vm);
    if (m->control < 0)
        return -ENOENT;
    const struct m_nic *n = &m->nics[m->control];
    if (n->backend != BK_USER || !n->hostfwd)
        return -ENOENT;
    *addr = n->fwd_addr;
    *port = n->fwd_port ? n->fwd_port : res ? res->ssh_port[n->port_need] : 0;
    return 0;
}

int cfg_crypto_path(const struct cfg_vm *vm, const struct cfg_res *res, int i, char *out,
                    size_t outlen)
{
    const struct model *m = vm_model(vm);
    if (i < 0 || i >= m->ncrypto)
        return -EINVAL;
    int n = snprintf(out, outlen, "/tmp/%s_crypto%d.sock", inst_name(m, res), i);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int cfg_tap_ifname(const struct cfg_vm *vm, const struct cfg_res *res, int nic, char out[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const char *parts[2] = { res && res->run_dir ? res->run_dir : "",
                             inst_name(vm_model(vm), res) };
    for (int i = 0; i < 2; i++)
        for (const char *p = parts[i];; p++) {
            h = (h ^ (unsigned char)*p) * 16777619u;
            if (!*p)
                break;
        }
    snprintf(out, 16, "qf%08xt%d", (unsigned)h, nic);
    return 0;
}

int cfg_hugetlbfs_find(const char *mounts_file, char *out, size_t outlen)
{
    const char *path = mounts_file ? mounts_file : "/proc/mounts";
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[4096];
    int r = -ENOENT;
    while (r == -ENOENT && fgets(line, sizeof(line), f)) {
        char dev[1024], dir[2048], type[256];
        if (sscanf(line, "%1023s %2047s %255s", dev, dir, type) != 3 || strcmp(type, "hugetlbfs"))
            continue;
        size_t o = 0; /* undo the \040-style octal escapes of the mounts table */
        for (const char *p = dir; *p && o + 1 < outlen; p++) {
            if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
                p[3] >= '0' && p[3] <= '7') {
                out[o++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                p += 3;
            } else {
                out[o++] = *p;
            }
        }
        if (outlen)
            out[o] = '\0';
        r = 0;
    }
    fclose(f);
    return r;
}

/* --- the argv array ---------------------------------------------------- */

struct av {
    char **v;
    int n, cap, failed;
};

static void av_push(struct av *a, char *s)
{
    if (!s || a->failed) {
        a->failed = 1;
        free(s);
        return;
    }
    if (a->n + 2 > a->cap) {
        int nc = a->cap ? a->cap * 2 : 64;
        char **nv = realloc(a->v, sizeof(*nv) * (size_t)nc);
        if (!nv) {
            a->failed = 1;
            free(s);
            return;
        }
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void add(struct av *a, const char *s) { av_push(a, strdup(s)); }

static void add2(struct av *a, const char *opt, struct sbuf *b)
{
    add(a, opt);
    av_push(a, sb_take(b));
}

static const char *root_bus(const char *bus) { return bus && strcmp(bus, "pci.0") ? bus : NULL; }

/* Functions the cfg fixes on guest slot slot of bus (NULL: the root bus). */
static int slot_functions(const struct model *m, const char *bus, int slot)
{
    int n = 0;
    bus = root_bus(bus);
    for (int i = 0; i < m->nnics; i++)
        n += !bus && m->nics[i].slot == slot;
    for (int i = 0; i < m->ndevs; i++) {
        const char *b = root_bus(m->devs[i].bus);
        n += m->devs[i].slot == slot && (b && bus ? !strcmp(b, bus) : b == bus);
    }
    return n;
}

/* addr=SS.F; function 0 of a slot with more functions also says
 * multifunction=on, without which QEMU refuses the other functions. */
static void addr_opt(struct sbuf *b, const struct model *m, const char *bus, int slot, int fn)
{
    sb_printf(b, ",addr=%02x.%x", slot, fn);
    if (fn == 0 && slot_functions(m, bus, slot) > 1)
        sb_add(b, ",multifunction=on");
}

static int res_slot(const struct cfg_res *res, int slot, int need)
{
    return slot >= 0 ? slot : res->pci_slot[need];
}

int cfg_sock_paths_fit(const char *run_dir, const char *name, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    /* the longest of the names cfg_run_path gives: NAME-qmp-inspect.sock */
    size_t need = strlen(run_dir) + strlen(name) + sizeof("/-qmp-inspect.sock");
    if (need <= sizeof(sun.sun_path))
        return 0;
    snprintf(err, err ? errlen : 0,
             "run dir '%s' is too long for the Unix socket paths of guest %s (%s/%s-qmp-inspect.sock "
             "is %zu bytes, %zu at most): use a shorter --state-dir or --run-dir",
             run_dir, name, run_dir, name, need - 1, sizeof(sun.sun_path) - 1);
    return -ENAMETOOLONG;
}

static int check_res(const struct model *m, const struct cfg_res *res, char *err, size_t errlen)
{
#define FAIL(...) (snprintf(err, err ? errlen : 0, __VA_ARGS__), -EINVAL)
    if (!res || !res->run_dir || res->run_dir[0] != '/')
        return FAIL("res: run_dir must be an absolute path");
    const char *name = inst_name(m, res);
    if (!is_ident(name, "_.-") || strlen(name) > CFG_NAME_MAX)
        return FAIL("res: name '%s': expected letters, digits, '_', '.' and '-'", name);
    if (cfg_sock_paths_fit(res->run_dir, name, err, errlen) < 0)
        return -EINVAL;
    for (int i = 0; i < m->nmacs; i++) {
        char mac[18];
        if (cfg_mac_parse(res->macs[i], mac) < 0)
            return FAIL("res: macs[%d] '%.17s' (for %s) is not a unicast MAC", i, res->macs[i],
                        m->mac_for[i]);
    }
    unsigned used = m->slots_taken;
    for (int i = 0; i < m->nslots; i++) {
        int s = res->pci_slot[i];
        if (s < 0 || s > 31 || (used & (1u << s)))
            return FAIL("res: pci_slot[%d]=%d (for %s) is not a free guest slot (taken: 0x%08x)", i,
                        s, m->slot_for[i], used);
        used |= 1u << s;
    }
    for (int i = 0; i < m->nports; i++)
        if (res->ssh_port[i] < 1 || res->ssh_port[i] > 65535)
            return FAIL("res: ssh_port[%d]=%d (for %s) is not a port", i, res->ssh_port[i],
                        m->port_for[i]);
    if (m->vnc == -2 && (res->vnc < 0 || res->vnc > 65535 - 5900))
        return FAIL("res: vnc=%d is not a display number", res->vnc);
    if (m->migrate && !m->migrate_port && (res->migrate_port < 1 || res->migrate_port > 65535))
        return FAIL("res: migrate_port=%d is not a port", res->migrate_port);
    for (int i = 0; i < m->nvfs; i++) {
        char bdf[13];
        if (vf_host(res, i, bdf) < 0)
            return FAIL("res: vf_host[%d] '%.12s' (for %s) is not a host PCI address", i,
                        res->vf_host[i], m->vf_for[i]);
    }
    for (int i = 0; i < m->npfs; i++) {
        char bdf[13];
        if (bdf_of(res->pf_host[i], bdf) < 0)
            return FAIL("res: pf_host[%d] '%.12s' (for %s) is not a host PCI address", i,
                        res->pf_host[i], m->pf_for[i]);
    }
    return 0;
#undef FAIL
}

static int memory(struct av *a, const struct model *m, const struct cfg_res *res, char *err,
                  size_t errlen)
{
    struct sbuf b = { 0 };
    sb_printf(&b, "%d", m->mem_mb);
    add2(a, "-m", &b);
    if (!m->hugepage && !m->nvhost)
        return 0;
    if (m->hugepage) {
        char dir[2048];
        const char *hp = res->hugepage_dir;
        if (!hp) {
            int r = cfg_hugetlbfs_find(res->mounts_file, dir, sizeof(dir));
            if (r < 0) {
                cfg_errf(err, errlen, m->hugepage_loc,
                         "mem hugepage=yes needs a hugetlbfs mount; %s in %s",
                         r == -ENOENT ? "there is none" : strerror(-r),
                         res->mounts_file ? res->mounts_file : "/proc/mounts");
                return r;
            }
            hp = dir;
        }
        sb_printf(&b, "memory-backend-file,id=mem,size=%dM,mem-path=", m->mem_mb);
        sb_add_qemu(&b, hp);
        sb_add(&b, ",share=on,prealloc=on");
    } else { /* vhost-user needs guest memory the backend can map */
        sb_printf(&b, "memory-backend-memfd,id=mem,size=%dM,share=on", m->mem_mb);
    }
    add2(a, "-object", &b);
    add(a, "-numa");
    add(a, "node,memdev=mem");
    return 0;
}

static void sock_chardev(struct av *a, const char *id, const char *path, const char *extra)
{
    struct sbuf b = { 0 };
    sb_printf(&b, "socket,id=%s,path=", id);
    sb_add_qemu(&b, path);
    sb_add(&b, extra);
    add2(a, "-chardev", &b);
}

static void nics(struct av *a, const struct cfg_vm *vm, const struct model *m,
                 const struct cfg_res *res)
{
    for (int i = 0; i < m->nnics; i++) {
        const struct m_nic *n = &m->nics[i];
        struct sbuf b = { 0 };
        if (n->backend == BK_USER) {
            sb_printf(&b, "user,id=net%d", i);
            if (n->hostfwd)
                sb_printf(&b, ",hostfwd=%s:%s:%d-%s:%d", n->fwd_proto, n->fwd_addr,
                          n->fwd_port ? n->fwd_port : res->ssh_port[n->port_need], n->fwd_gaddr,
                          n->fwd_gport);
        } else if (n->backend == BK_TAP) {
            char ifn[16];
            cfg_tap_ifname(vm, res, i, ifn);
            sb_printf(&b, "tap,id=net%d,ifname=%s,script=", i, ifn);
            sb_add_qemu(&b, n->script);
            sb_add(&b, ",downscript=");
            sb_add_qemu(&b, n->downscript);
        } else {
            sb_printf(&b, "bridge,id=net%d,br=", i);
            sb_add_qemu(&b, n->br);
        }
        add2(a, "-netdev", &b);
        sb_printf(&b, "%s,netdev=net%d,id=%s,mac=%s", n->model, i, n->id,
                  n->mac ? n->mac : res->macs[n->mac_need]);
        addr_opt(&b, m, NULL, res_slot(res, n->slot, n->slot_need), n->fn);
        if (n->vectors)
            sb_printf(&b, ",vectors=%d", n->vectors);
        add2(a, "-device", &b);
    }
}

/* DTS's add_vm_crypto: per device a client chardev on the backend's
 * socket, a cryptodev-vhost-user object and a virtio-crypto-pci. */
static void crypto(struct av *a, const struct cfg_vm *vm, const struct model *m,
                   const struct cfg_res *res)
{
    for (int i = 0; i < m->ncrypto; i++) {
        char path[4096], id[24];
        struct sbuf b = { 0 };
        cfg_crypto_path(vm, res, i, path, sizeof(path));
        snprintf(id, sizeof(id), "cryptochr%d", i);
        sock_chardev(a, id, path, "");
        sb_printf(&b, "cryptodev-vhost-user,id=cryptodev%d,chardev=cryptochr%d", i, i);
        add2(a, "-object", &b);
        sb_printf(&b, "virtio-crypto-pci,id=crypto%d,cryptodev=cryptodev%d", i, i);
        add2(a, "-device", &b);
    }
}

static void devices(struct av *a, const struct model *m, const struct cfg_res *res)
{
    for (int i = 0; i < m->ndevs; i++) {
        const struct m_dev *d = &m->devs[i];
        struct sbuf b = { 0 };
        if (d->kind == DK_VHOST_USER) {
            char id[16];
            snprintf(id, sizeof(id), "char%d", d->chr);
            sock_chardev(a, id, d->path, d->server ? ",server=on" : "");
            sb_printf(&b, "type=vhost-user,id=netdev%d,chardev=char%d,vhostforce=on", d->chr,
                      d->chr);
            if (d->queues)
                sb_printf(&b, ",queues=%d", d->queues);
            add2(a, "-netdev", &b);
        }
        sb_add(&b, d->driver);
        char bdf[13];
        if (d->whole_pf && bdf_of(res->pf_host[d->pf_need], bdf) == 0)
            sb_printf(&b, ",host=%s", bdf); /* checked by check_res */
        else if (d->kind == DK_VFIO && d->pool && vf_host(res, d->vf_need, bdf) == 0)
            sb_printf(&b, ",host=%s", bdf); /* checked by check_res */
        else if (d->kind == DK_VFIO)
            sb_printf(&b, ",host=%s", d->host);
        if (d->kind == DK_VHOST_USER)
            sb_printf(&b, ",netdev=netdev%d", d->chr);
        if (d->kind == DK_VIRTIO && d->netdev)
            sb_printf(&b, ",netdev=%s", d->netdev);
        sb_printf(&b, ",id=%s", d->id);
        /* vfio-pci has no mac property: a pool VF's MAC is set on the host */
        if (d->kind != DK_VFIO)
            sb_printf(&b, ",mac=%s", d->mac ? d->mac : res->macs[d->mac_need]);
        if (d->bus)
            sb_printf(&b, ",bus=%s", d->bus);
        addr_opt(&b, m, d->bus, res_slot(res, d->slot, d->slot_need), d->fn);
        if (d->kind == DK_VHOST_USER && d->queues > 1)
            sb_printf(&b, ",mq=on,vectors=%d", 2 * d->queues + 2);
        if (d->legacy)
            sb_printf(&b, ",disable-modern=%s", d->legacy);
        if (d->settings && *d->settings)
            sb_printf(&b, ",%s", d->settings); /* QEMU syntax already */
        add2(a, "-device", &b);
    }
}

int cfg_argv_build(const struct cfg_vm *vm, const struct cfg_res *res, char ***argv, char *err,
                   size_t errlen)
{
    const struct model *m = vm_model(vm);
    *argv = NULL;
    int r = check_res(m, res, err, errlen);
    if (r < 0)
        return r;
    const char *name = inst_name(m, res);
    char path[4096];
    struct av a = { 0 };
    struct sbuf b = { 0 };

    add(&a, m->qemu);
    add(&a, "-name");
    add(&a, name);
    add(&a, "-machine");
    add(&a, m->machine);
    add(&a, "-accel");
    add(&a, m->kvm ? "kvm" : "tcg");
    if (m->cpu_model) {
        add(&a, "-cpu");
        add(&a, m->cpu_model);
    }
    if (m->smp) {
        sb_printf(&b, "%d", m->smp);
        add2(&a, "-smp", &b);
    }
    if ((r = memory(&a, m, res, err, errlen)) < 0)
        goto fail;
    add(&a, "-nodefaults");
    if (m->vnc == -1) {
        add(&a, "-display");
        add(&a, "none");
    } else {
        sb_printf(&b, "127.0.0.1:%d", m->vnc >= 0 ? m->vnc : res->vnc);
        add2(&a, "-vnc", &b);
        add(&a, "-device");
        add(&a, "VGA,id=vga0,addr=02.0");
    }
    cfg_run_path(vm, res, CFG_RUN_SERIAL, path, sizeof(path));
    sb_printf(&b, "file:%s", path); /* -serial file: takes the rest verbatim */
    add2(&a, "-serial", &b);
    for (int i = 0; i < 2; i++) {
        char id[8];
        snprintf(id, sizeof(id), "qmp%d", i);
        cfg_run_path(vm, res, i ? CFG_RUN_QMP_INSPECT : CFG_RUN_QMP, path, sizeof(path));
        sock_chardev(&a, id, path, ",server=on,wait=off");
        sb_printf(&b, "chardev=%s,mode=control", id);
        add2(&a, "-mon", &b);
    }
    if (m->kernel) {
        add(&a, "-kernel");
        add(&a, m->kernel);
        if (m->initrd) {
            add(&a, "-initrd");
            add(&a, m->initrd);
        }
        if (m->append) {
            add(&a, "-append");
            add(&a, m->append);
        }
    }
    for (int i = 0; i < m->ndisks; i++) {
        const struct m_disk *d = &m->disks[i];
        sb_add(&b, "file=");
        sb_add_qemu(&b, d->file);
        if (d->format)
            sb_printf(&b, ",format=%s", d->format);
        if (d->iface)
            sb_printf(&b, ",if=%s", d->iface);
        if (d->index >= 0)
            sb_printf(&b, ",index=%d", d->index);
        if (d->media)
            sb_printf(&b, ",media=%s", d->media);
        add2(&a, "-drive", &b);
    }
    for (int i = 0; i < m->npflash; i++) { /* DTS: -pflash FILE, a raw flash drive */
        sb_add(&b, "file=");
        sb_add_qemu(&b, m->pflash[i]);
        sb_add(&b, ",if=pflash,format=raw");
        add2(&a, "-drive", &b);
    }
    nics(&a, vm, m, res);
    devices(&a, m, res);
    crypto(&a, vm, m, res);
    if (m->qga) { /* after every device with a fixed slot: QEMU places it */
        add(&a, "-device");
        add(&a, "virtio-serial-pci,id=vser0");
        cfg_run_path(vm, res, CFG_RUN_QGA, path, sizeof(path));
        sock_chardev(&a, "qga0", path, ",server=on,wait=off");
        add(&a, "-device");
        add(&a, "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0,id=qga0port");
    }
    if (res->incoming) {
        /* a warm clone (the fleet's templates): the caller's URI, as given */
        add(&a, "-incoming");
        add(&a, res->incoming);
    } else if (m->migrate) {
        /* DTS: tcp::PORT, every address (migration comes from another host) */
        sb_printf(&b, "tcp:%s:%d", m->migrate_listen,
                  m->migrate_port ? m->migrate_port : res->migrate_port);
        add2(&a, "-incoming", &b);
    }
    for (int i = 0; i < m->nusercmd; i++)
        add(&a, m->usercmd[i]);
    if (a.failed || b.failed) {
        r = -ENOMEM;
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sb_free(&b);
    *argv = a.v;
    return 0;
fail:
    sb_free(&b);
    for (int i = 0; i < a.n; i++)
        free(a.v[i]);
    free(a.v);
    return r;
}

void cfg_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}
