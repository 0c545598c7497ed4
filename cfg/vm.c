/* vm.c - a VM: its cfg keys (defaults merged under the suite file, then
 * cfg_vm_set changes) and the model built from them. Every change rebuilds
 * the model from the keys, so a failed change leaves the VM as it was. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/model.h"

const struct model *vm_model(const struct cfg_vm *vm) { return vm->m; }

static void model_free(struct model *m)
{
    if (!m)
        return;
    ar_free(&m->a);
    free(m);
}

static int pt_number(const char *id)
{
    if (!id || strncmp(id, "pt_", 3) || !id[3])
        return -1;
    long v;
    return int_parse(id + 3, 0, 1 << 20, &v) < 0 ? -1 : (int)v;
}

static void nic_user(struct m_nic *n)
{
    n->backend = BK_USER;
    n->hostfwd = 1;
    n->fwd_proto = "tcp";
    n->fwd_addr = "127.0.0.1";
    n->fwd_gaddr = "";
    n->fwd_gport = 22;
}

static int machine_family(const char *m)
{
    if (!strcmp(m, "q35") || !strncmp(m, "pc-q35", 6))
        return MF_Q35;
    if (!strcmp(m, "pc") || !strncmp(m, "pc-i440fx", 9) || !strncmp(m, "pc-0.", 5) ||
        !strncmp(m, "pc-1.", 5))
        return MF_I440FX;
    return MF_OTHER;
}

static void needs(struct model *m)
{
    for (int i = 0; i < m->nnics; i++) {
        struct m_nic *n = &m->nics[i];
        if (!n->mac) {
            n->mac_need = m->nmacs;
            m->mac_for[m->nmacs++] = ar_printf(&m->a, "net %d %s", i, n->id);
        }
        if (n->backend == BK_USER && n->hostfwd && !n->fwd_port) {
            n->port_need = m->nports;
            m->port_for[m->nports++] = ar_printf(&m->a, "net %d %s: %s forward to guest port %d", i,
                                                 n->id, n->fwd_proto, n->fwd_gport);
        }
    }
    for (int i = 0; i < m->ndevs; i++) {
        struct m_dev *d = &m->devs[i];
        /* A pool VF gets a MAC like any NIC: it is set on the VF before
         * launch. A fixed host device keeps whatever MAC it has. */
        if ((d->kind != DK_VFIO || (d->pool && !d->whole_pf)) && !d->mac) {
            d->mac_need = m->nmacs;
            m->mac_for[m->nmacs++] = ar_printf(&m->a, "device %d %s", i, d->id);
        }
        if (d->whole_pf) {
            d->pf_need = m->npfs;
            m->pf_for[m->npfs++] = ar_printf(&m->a, "device %d %s", i, d->id);
        } else if (d->pool) {
            d->vf_need = m->nvfs;
            m->vf_for[m->nvfs++] = ar_printf(&m->a, "device %d %s", i, d->id);
        }
    }
}

static void export(struct model *m)
{
    struct cfg_vm_info *vi = &m->info;
    vi->name = m->name;
    vi->section = m->section;
    vi->user = m->user;
    vi->password = m->password;
    vi->qga = m->qga;
    vi->wait_seconds = m->wait_seconds;
    vi->login_timeout = m->login_timeout;
    vi->kvm = m->kvm;
    vi->machine = m->machine;
    vi->smp = m->smp;
    vi->cpupin = m->cpupin;
    vi->ncpupin = m->ncpupin;
    vi->mem_mb = m->mem_mb;
    vi->hugepage = m->hugepage;
    vi->host_connect = m->host_connect;
    vi->control = m->control;
    vi->numa = m->numa;
    vi->skipcores = m->skipcores;
    vi->nskipcores = m->nskip;
    vi->qemu_paths = m->qemu_paths;
    vi->nqemu_paths = m->nqemu;
    vi->qemu = m->qemu;
    vi->kernel = m->kernel;
    vi->initrd = m->initrd;
    vi->qemu_selected = m->qemu_selected;
    vi->ncrypto = m->ncrypto;
    vi->migrate = m->migrate;
    vi->vnc = m->vnc;
    vi->mac_prefix = m->mac_prefix;
    vi->migrate_port = m->migrate ? m->migrate_port : 0;
    for (int i = 0; i < m->nnics; i++) {
        struct m_nic *n = &m->nics[i];
        static const char *const bk[] = { "user", "tap", "bridge" };
        m->nic_info[i] = (struct cfg_nic_info){
            .id = n->id,
            .model = n->model,
            .backend = bk[n->backend],
            .mac = n->mac,
            .mac_need = n->mac_need,
            .slot = n->slot,
            .fn = n->fn,
            .slot_need = n->slot_need,
            .hostfwd = n->backend == BK_USER && n->hostfwd,
            .fwd_addr = n->fwd_addr,
            .fwd_port = n->fwd_port,
            .port_need = n->port_need,
            .fwd_guest_port = n->fwd_gport,
            .bridge = n->br,
            .attach_bridge = n->backend == BK_TAP,
        };
        if (pt_number(n->id) >= 0)
            m->pt[m->npt++] = (struct cfg_pt){ .id = n->id,
                                               .driver = n->model,
                                               .slot = n->slot,
                                               .fn = n->fn,
                                               .slot_need = n->slot_need,
                                               .vf_need = -1,
                                               .pf_need = -1 };
    }
    for (int i = 0; i < m->ndevs; i++) {
        struct m_dev *d = &m->devs[i];
        if (pt_number(d->id) >= 0)
            m->pt[m->npt++] = (struct cfg_pt){ .id = d->id,
                                               .driver = d->driver,
                                               .host = d->host,
                                               .slot = d->slot,
                                               .fn = d->fn,
                                               .slot_need = d->slot_need,
                                               .pool = d->whole_pf ? NULL : d->pool,
                                               .vf_need = d->vf_need,
                                               .pf_pool = d->whole_pf ? d->pool : NULL,
                                               .pf_need = d->pf_need,
                                               .mac = d->host ? d->mac : NULL,
                                               .vlan = d->vlan };
    }
    for (int i = 0; i < m->npools; i++)
        m->pool_info[i] = (struct cfg_vf_pool){ .name = m->pools[i].name,
                                                .pf = m->pools[i].pf,
                                                .npf = m->pools[i].npf,
                                                .vfs = m->pools[i].only,
                                                .nvfs = m->pools[i].nonly,
                                                .exclude = m->pools[i].exclude,
                                                .nexclude = m->pools[i].nexclude };
    vi->vf_pools = m->pool_info;
    vi->nvf_pools = m->npools;
    vi->nics = m->nic_info;
    vi->nnics = m->nnics;
    vi->pt = m->pt;
    vi->npt = m->npt;
    vi->warnings = m->warn;
    vi->nwarnings = m->nwarn;
}

/* argv[0]: the selected path of the qemu key, by default its last. */
static int select_qemu(struct model *m, const char *sel, char *err, size_t errlen)
{
    long v;
    m->qemu_selected = m->nqemu ? m->nqemu - 1 : -1;
    if (!sel)
        return 0;
    if (int_parse(sel, 0, 1 << 20, &v) == 0) {
        if (v >= m->nqemu) {
            if (err && errlen)
                snprintf(err, errlen,
                         "qemu path %ld: expected an index from 0 to %d (the qemu key has %d "
                         "path%s) or a path",
                         v, m->nqemu - 1, m->nqemu, m->nqemu == 1 ? "" : "s");
            return -EINVAL;
        }
        m->qemu_selected = (int)v;
        m->qemu = m->qemu_paths[v];
        return 0;
    }
    m->qemu_selected = -1;
    for (int i = 0; i < m->nqemu; i++)
        if (!strcmp(m->qemu_paths[i], sel))
            m->qemu_selected = i;
    m->qemu = ar_strdup(&m->a, sel);
    return 0;
}

/* The NICs: lone groups get their other half, the default host_connect
 * of a VM without net, the NIC at 1f named, the control NIC found. */
static void finish_nics(struct model *m, const struct cfg_vm *vm)
{
    static const char *const bkname[] = { "user", "tap", "bridge" };
    for (int i = 0; i < m->nnics; i++) {
        struct m_nic *n = &m->nics[i];
        if (n->nic_pending)
            model_warn(m, n->backend_loc,
                       "net: type=%s has no type=nic group next to it; adding an e1000 NIC",
                       bkname[n->backend]);
        if (n->backend == BK_NONE) {
            model_warn(m, n->loc,
                       "net: type=nic has no backend group next to it; using user networking");
            nic_user(n);
        }
    }
    if (!m->had_net) {
        struct m_nic *n = &m->nics[m->nnics];
        memset(n, 0, sizeof(*n));
        n->loc = vm->section_loc;
        n->model = "e1000";
        n->id = "host_connect";
        n->slot = 0x1f;
        n->mac_need = n->slot_need = n->port_need = -1;
        nic_user(n);
        m->host_connect = m->nnics++;
    } else {
        for (int i = 0; i < m->nnics && m->host_connect < 0; i++)
            if (m->nics[i].slot == 0x1f && m->nics[i].fn == 0) {
                m->host_connect = i;
                if (!m->nics[i].id)
                    m->nics[i].id = "host_connect";
            }
    }
    /* DTS reaches the guest through the hostfwd of the first user netdev,
     * whatever slot its NIC sits in: that NIC is the control NIC. */
    for (int i = 0; i < m->nnics && m->control < 0; i++)
        if (m->nics[i].backend == BK_USER && m->nics[i].hostfwd)
            m->control = i;
    if (m->control < 0)
        model_warn(m, m->net_loc,
                   "net: no NIC has a user network backend with a host forward: qfleet cannot "
                   "reach the guest over SSH (DTS reaches guests through the first user "
                   "network's hostfwd)");
}

/* Ids the cfg leaves out: nicN, pt_N for assigned devices (skipping
 * numbers the cfg uses), vhostuserK, devN. */
static void auto_ids(struct model *m)
{
    int used[CFG_NIC_MAX + CFG_DEV_MAX], nused = 0, next = 0;
    for (int i = 0; i < m->nnics; i++) {
        if (!m->nics[i].id) {
            m->nics[i].id = ar_printf(&m->a, "nic%d", i);
            m->nics[i].id_auto = 1;
        }
        if (pt_number(m->nics[i].id) >= 0)
            used[nused++] = pt_number(m->nics[i].id);
    }
    for (int i = 0; i < m->ndevs; i++)
        if (pt_number(m->devs[i].id) >= 0)
            used[nused++] = pt_number(m->devs[i].id);
    for (int i = 0; i < m->ndevs; i++) {
        struct m_dev *d = &m->devs[i];
        if (d->id)
            continue;
        d->id_auto = 1;
        if (d->kind == DK_VFIO) {
            for (int again = 1; again;) {
                again = 0;
                for (int j = 0; j < nused; j++)
                    if (used[j] == next) {
                        next++;
                        again = 1;
                    }
            }
            d->id = ar_printf(&m->a, "pt_%d", next++);
        } else if (d->kind == DK_VHOST_USER) {
            d->id = ar_printf(&m->a, "vhostuser%d", d->chr);
        } else {
            d->id = ar_printf(&m->a, "dev%d", i);
        }
    }
}

static int finish(struct model *m, const struct cfg_vm *vm, char *err, size_t errlen)
{
    if (m->name == m->section &&
        (!is_ident(m->name, "_.-") || strlen(m->name) > CFG_NAME_MAX || m->name[0] == '.'))
        return cfg_errf(err, errlen, vm->section_loc,
                        "VM name '%s': expected letters, digits, '_', '.' and '-' (at most %d; "
                        "it names sockets and logs), or a name key",
                        m->name, CFG_NAME_MAX);
    m->mfam = machine_family(m->machine);
    finish_nics(m, vm);
    auto_ids(m);
    int r = select_qemu(m, vm->qemu_sel, err, errlen);
    if (r == 0)
        r = cfg__check_ids(m, err, errlen);
    if (r == 0)
        r = cfg__check_netdevs(m, err, errlen);
    if (r == 0)
        r = cfg__check_pools(m, err, errlen);
    if (r == 0)
        r = cfg__place(m, err, errlen);
    if (r < 0)
        return r;
    needs(m);
    if (!m->kvm && m->cpu_model && !strcmp(m->cpu_model, "host")) {
        model_warn(m, m->cpu_model_loc,
                   "cpu: model=host needs KVM; using model=max since enable_kvm=no");
        m->cpu_model = "max";
    }
    if (!m->ncpupin && (m->numa != CFG_NUMA_NONE || m->nskip))
        model_warn(m, m->cpu_loc,
                   "cpu: numa=/skipcores= recorded but not acted on: qfleet does not choose "
                   "host CPUs by NUMA node, so the VM runs unpinned (give cpupin= to pin it)");
    if (m->ncpupin && m->smp && m->ncpupin != m->smp)
        model_warn(m, m->cpupin_loc, "cpu: cpupin lists %d host CPUs for number=%d vCPUs",
                   m->ncpupin, m->smp);
    export(m);
    return ar_failed(&m->a) ? -ENOMEM : 0;
}

/* s with the password replaced, in the model's arena. */
static const char *mask_ar(struct model *m, const char *s)
{
    struct sbuf b = { 0 };
    sb_add_masked(&b, s, m->password);
    const char *r = b.failed ? "(warning hidden: out of memory)" : ar_strdup(&m->a, b.s ? b.s : "");
    sb_free(&b);
    return r;
}

static void mask_in(struct model *m, char *buf, size_t len)
{
    if (!strstr(buf, m->password))
        return;
    const char *s = mask_ar(m, buf);
    snprintf(buf, len, "%s", s);
}

static int build(const struct cfg_vm *vm, const struct cfg_key *const *keys, int nkeys,
                 struct model **out, char *err, size_t errlen)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->section = m->name = vm->section;
    m->qemu = "qemu-system-x86_64";
    m->machine = "pc";
    m->kvm = 1;
    m->mem_mb = 1024;
    m->vnc = -2;
    m->qga = 1;
    m->wait_seconds = 120;
    m->login_timeout = 60;
    m->host_connect = m->pending_nic = m->pending_bk = m->control = -1;
    m->numa = CFG_NUMA_NONE;
    m->migrate_listen = "";
    for (int i = 0; i < vm->npre; i++)
        if (ar_grow(&m->a, (void **)&m->warn, sizeof(*m->warn), &m->wcap, m->nwarn + 1) == 0)
            m->warn[m->nwarn++] = vm->pre_warn[i];
    int r = 0;
    /* login first, so the password is known to mask every message */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nkeys && r == 0; i++) {
            if ((strcmp(keys[i]->name, "login") == 0) != (pass == 0))
                continue;
            struct bctx b = { m, keys[i], err, errlen };
            r = model_key(&b);
        }
    if (r == 0)
        r = finish(m, vm, err, errlen);
    if (m->password && *m->password) {
        if (r < 0 && err && errlen)
            mask_in(m, err, errlen);
        for (int i = 0; i < m->nwarn; i++)
            if (strstr(m->warn[i], m->password))
                m->warn[i] = mask_ar(m, m->warn[i]);
    }
    if (r == 0 && ar_failed(&m->a))
        r = -ENOMEM;
    if (r < 0) {
        if (r == -ENOMEM && err && errlen)
            snprintf(err, errlen, "out of memory");
        model_free(m);
        return r;
    }
    *out = m;
    return 0;
}

static int add_key(struct cfg_vm *vm, const struct cfg_key *k, const char *file)
{
    struct cfg_key *c = ar_alloc(&vm->a, sizeof(*c));
    if (!c || cfg_key_copy(&vm->a, k, file, c) < 0 ||
        ar_grow(&vm->a, (void **)&vm->keys, sizeof(*vm->keys), &vm->kcap, vm->nkeys + 1) < 0)
        return -ENOMEM;
    vm->keys[vm->nkeys++] = c;
    return 0;
}

static void pre_warn(struct cfg_vm *vm, const char *msg)
{
    if (ar_grow(&vm->a, (void **)&vm->pre_warn, sizeof(char *), &vm->pcap, vm->npre + 1) == 0)
        vm->pre_warn[vm->npre++] = msg;
}

int cfg_vm_from_docs(const struct cfg_doc *suite, const char *vm_name,
                     const struct cfg_doc *defaults, struct cfg_vm **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct cfg_section *sec = cfg_doc_section(suite, vm_name);
    if (!sec) {
        struct sbuf s = { 0 };
        for (int i = 0; i < cfg_doc_nsections(suite); i++)
            sb_printf(&s, "%s%s", i ? ", " : "", cfg_doc_section_at(suite, i)->name);
        if (err && errlen)
            snprintf(err, errlen, "%s: no section [%s] (sections: %s)", cfg_doc_path(suite),
                     vm_name, s.s ? s.s : "none");
        sb_free(&s);
        return -ENOENT;
    }
    const struct cfg_section *kvm = NULL;
    if (defaults) {
        for (int i = 0; i < cfg_doc_nsections(defaults); i++)
            if (str_ieq(cfg_doc_section_at(defaults, i)->name, "KVM"))
                kvm = cfg_doc_section_at(defaults, i);
        if (!kvm) {
            if (err && errlen)
                snprintf(err, errlen, "%s: no [KVM] section of defaults", cfg_doc_path(defaults));
            return -ENOENT;
        }
    }
    struct cfg_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return -ENOMEM;
    const char *sfile = ar_strdup(&vm->a, cfg_doc_path(suite));
    vm->section = ar_strdup(&vm->a, vm_name);
    vm->dir = ar_strdup(&vm->a, cfg_doc_dir(suite));
    vm->section_loc = sec->loc;
    vm->section_loc.file = sfile;
    if (sec->nkeys && !cfg_section_is_vm(sec))
        pre_warn(vm, ar_printf(&vm->a,
                               "%s:%d:%d: warning: section [%s] has no key of the VM grammar "
                               "(cpu, mem, disk, net, device, ...): it looks like a suite's, "
                               "scene's or test case's section, not a VM",
                               sfile, sec->loc.line, sec->loc.col, sec->name));
    int r = 0;
    if (defaults) {
        const char *dfile = ar_strdup(&vm->a, cfg_doc_path(defaults));
        for (int i = 0; i < cfg_doc_nsections(defaults); i++) {
            const struct cfg_section *s = cfg_doc_section_at(defaults, i);
            if (s != kvm)
                pre_warn(vm, ar_printf(&vm->a,
                                       "%s:%d:%d: warning: section [%s] ignored: qfleet "
                                       "takes its defaults from [KVM]",
                                       dfile, s->loc.line, s->loc.col, s->name));
        }
        /* DTS fills only keys the VM lacks, and never these: it sets them
         * for every VM before it reads [KVM] (set_vm_default). */
        static const char *const never[] = { "name",   "enable_kvm", "pid_file",
                                             "daemon", "monitor",    "net", NULL };
        for (int i = 0; i < kvm->nkeys && r == 0; i++) {
            int over = 0;
            for (int j = 0; j < sec->nkeys; j++)
                over |= !strcmp(sec->keys[j].name, kvm->keys[i].name);
            if (ko_one_of(kvm->keys[i].name, never)) {
                pre_warn(vm, ar_printf(&vm->a,
                                       "%s:%d:%d: warning: [KVM] key '%s' ignored: DTS never takes "
                                       "name, enable_kvm, pid_file, daemon, monitor or net from "
                                       "the defaults",
                                       dfile, kvm->keys[i].loc.line, kvm->keys[i].loc.col,
                                       kvm->keys[i].name));
                continue;
            }
            if (!over)
                r = add_key(vm, &kvm->keys[i], dfile);
        }
    }
    for (int i = 0; i < sec->nkeys && r == 0; i++)
        r = add_key(vm, &sec->keys[i], sfile);
    if (r == 0 && ar_failed(&vm->a))
        r = -ENOMEM;
    if (r == 0)
        r = build(vm, vm->keys, vm->nkeys, &vm->m, err, errlen);
    else if (err && errlen)
        snprintf(err, errlen, "out of memory");
    if (r < 0) {
        cfg_vm_free(vm);
        return r;
    }
    *out = vm;
    return 0;
}

int cfg_vm_load(const char *cfg_path, const char *vm_name, const char *defaults_path,
                struct cfg_vm **out, char *err, size_t errlen)
{
    struct cfg_doc *suite = NULL, *defs = NULL;
    *out = NULL;
    int r = cfg_doc_load(cfg_path, &suite, err, errlen);
    if (r == 0 && defaults_path)
        r = cfg_doc_load(defaults_path, &defs, err, errlen);
    if (r == 0)
        r = cfg_vm_from_docs(suite, vm_name, defs, out, err, errlen);
    cfg_doc_free(suite);
    cfg_doc_free(defs);
    return r;
}

void cfg_vm_free(struct cfg_vm *vm)
{
    if (!vm)
        return;
    model_free(vm->m);
    ar_free(&vm->a);
    free(vm);
}

/* Replace the key list with keys (arena array) if the model builds. */
static int rebuild(struct cfg_vm *vm, const struct cfg_key **keys, int n, char *err, size_t errlen)
{
    struct model *m;
    int r = build(vm, keys, n, &m, err, errlen);
    if (r < 0)
        return r;
    model_free(vm->m);
    vm->m = m;
    vm->keys = keys;
    vm->nkeys = vm->kcap = n;
    return 0;
}

static int key_name_ok(const char *key, char *err, size_t errlen)
{
    if (!key || !is_ident(key, "_-.")) {
        if (err && errlen)
            snprintf(err, errlen, "<set>: expected a key name of letters, digits, '_', '-' or '.'");
        return -EINVAL;
    }
    return 0;
}

int cfg_vm_set(struct cfg_vm *vm, const char *key, const char *value, char *err, size_t errlen)
{
    if (key_name_ok(key, err, errlen) < 0)
        return -EINVAL;
    struct cfg_key *k = ar_alloc(&vm->a, sizeof(*k));
    const char *file = ar_printf(&vm->a, "<set %s>", key);
    if (!k)
        return -ENOMEM;
    int r = cfg_value_parse(&vm->a, file, vm->dir, key, value ? value : "", k, err, errlen);
    if (r < 0)
        return r;
    const struct cfg_key **nk = ar_alloc(&vm->a, sizeof(*nk) * (size_t)(vm->nkeys + 1));
    if (!nk)
        return -ENOMEM;
    int n = 0, list = key_is_list(k->name);
    for (int i = 0; i < vm->nkeys; i++)
        if (list || strcmp(vm->keys[i]->name, k->name))
            nk[n++] = vm->keys[i];
    nk[n++] = k;
    return rebuild(vm, nk, n, err, errlen);
}

int cfg_vm_clear(struct cfg_vm *vm, const char *key, char *err, size_t errlen)
{
    if (key_name_ok(key, err, errlen) < 0)
        return -EINVAL;
    char lk[128];
    snprintf(lk, sizeof(lk), "%s", key);
    for (char *p = lk; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const struct cfg_key **nk = ar_alloc(&vm->a, sizeof(*nk) * (size_t)(vm->nkeys + 1));
    if (!nk)
        return -ENOMEM;
    int n = 0;
    for (int i = 0; i < vm->nkeys; i++)
        if (strcmp(vm->keys[i]->name, lk))
            nk[n++] = vm->keys[i];
    if (n == vm->nkeys) {
        if (err && errlen)
            snprintf(err, errlen, "<clear %s>: the VM has no key '%s'", key, lk);
        return -ENOENT;
    }
    return rebuild(vm, nk, n, err, errlen);
}

const struct cfg_vm_info *cfg_vm_info(const struct cfg_vm *vm) { return &vm->m->info; }

int cfg_vm_select_qemu(struct cfg_vm *vm, const char *sel, char *err, size_t errlen)
{
    const char *old = vm->qemu_sel;
    vm->qemu_sel = sel ? ar_strdup(&vm->a, sel) : NULL;
    if (sel && !vm->qemu_sel)
        return -ENOMEM;
    int r = rebuild(vm, vm->keys, vm->nkeys, err, errlen);
    if (r < 0)
        vm->qemu_sel = old;
    return r;
}

const struct cfg_vf_pool *cfg_vm_vf_pool(const struct cfg_vm *vm, const char *name)
{
    const struct cfg_vm_info *vi = &vm->m->info;
    for (int i = 0; name && i < vi->nvf_pools; i++)
        if (!strcmp(vi->vf_pools[i].name, name))
            return &vi->vf_pools[i];
    return NULL;
}

char *cfg_vm_mask(const struct cfg_vm *vm, const char *s)
{
    const char *pw = vm ? vm->m->password : NULL;
    if (!pw || !*pw)
        return strdup(s);
    struct sbuf b = { 0 };
    sb_add_masked(&b, s, pw);
    return sb_take(&b);
}
