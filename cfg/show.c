/* show.c - previews of the leased resources, and the VM and its command
 * line as JSON or as a pasteable shell command. Everything shown goes
 * through cfg_vm_mask so the login password never appears. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cfg/model.h"

static int bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static int free_port(int first, const int *taken, int ntaken)
{
    for (int p = first; p < 65536; p++) {
        int dup = 0;
        for (int i = 0; i < ntaken; i++)
            dup |= taken[i] == p;
        if (!dup && bindable(p))
            return p;
    }
    return -1;
}

int cfg_res_preview(const struct cfg_vm *vm, const char *run_dir, struct cfg_res *res, char *err,
                    size_t errlen)
{
    struct cfg_needs nd;
    cfg_vm_needs(vm, &nd);
    memset(res, 0, sizeof(*res));
    res->run_dir = run_dir;
    const char *pfx = cfg_vm_info(vm)->mac_prefix; /* "02:11:22:" or NULL */
    for (int i = 0; i < nd.macs; i++) {
        snprintf(res->macs[i], sizeof(res->macs[i]), CFG_PREVIEW_MAC, (unsigned)i & 0xffu);
        if (pfx) /* the VM's prefix, the pattern's tail: what the fleet will draw from */
            memcpy(res->macs[i], pfx, strlen(pfx));
    }
    unsigned used = nd.slots_taken;
    for (int i = 0; i < nd.slots; i++) {
        int s = 0;
        while (s < 32 && (used & (1u << s)))
            s++;
        if (s == 32) {
            if (err && errlen)
                snprintf(err, errlen, "no free guest PCI slot for %s", nd.slot_for[i]);
            return -ENOSPC;
        }
        res->pci_slot[i] = s;
        used |= 1u << s;
    }
    int taken[CFG_NIC_MAX + 1];
    for (int i = 0; i < nd.ports; i++) {
        int p = free_port(i ? res->ssh_port[i - 1] + 1 : CFG_PREVIEW_SSH_FIRST, taken, i);
        if (p < 0) {
            if (err && errlen)
                snprintf(err, errlen, "no free host port for %s", nd.port_for[i]);
            return -EADDRINUSE;
        }
        res->ssh_port[i] = taken[i] = p;
    }
    if (nd.vnc) {
        int d = 0;
        while (d < 100 && !bindable(5900 + d))
            d++;
        res->vnc = d; /* 100: nothing free, show 100 anyway */
    }
    if (nd.migrate_port) {
        int p = free_port(CFG_PREVIEW_MIGRATE_FIRST, taken, nd.ports);
        res->migrate_port = p < 0 ? CFG_PREVIEW_MIGRATE_FIRST : p;
    }
    for (int k = 0; k < nd.vfs; k++)
        snprintf(res->vf_host[k], sizeof(res->vf_host[k]), CFG_PREVIEW_VF, (unsigned)k / 8,
                 (unsigned)k % 8);
    for (int k = 0; k < nd.pfs; k++)
        snprintf(res->pf_host[k], sizeof(res->pf_host[k]), CFG_PREVIEW_PF, (unsigned)k / 8,
                 (unsigned)k % 8);
    return 0;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, c &= 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, c &= 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* s as valid UTF-8: every byte that is not part of a valid sequence (a
 * Latin-1 path, say) becomes U+FFFD, so JSON output stays valid. */
static char *utf8_clean(const char *s)
{
    struct sbuf b = { 0 };
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (l) {
            for (size_t k = 0; k < l; k++)
                sb_addc(&b, s[i + k]);
            i += l;
        } else {
            sb_add(&b, "\xef\xbf\xbd");
            i++;
        }
    }
    if (!b.s && !b.failed)
        return strdup("");
    return sb_take(&b);
}

/* --- JSON -------------------------------------------------------------- */

static json_t *jstr_masked(const struct cfg_vm *vm, const char *s)
{
    if (!s)
        return json_null();
    char *m = cfg_vm_mask(vm, s), *u = m ? utf8_clean(m) : NULL;
    json_t *j = u ? json_string(u) : NULL;
    free(m);
    free(u);
    return j;
}

static json_t *jaddr(int slot, int fn)
{
    if (slot < 0)
        return json_null();
    char a[40];
    snprintf(a, sizeof(a), "0000:00:%02x.%x", slot, fn);
    return json_string(a);
}

json_t *cfg_vm_json(const struct cfg_vm *vm, const struct cfg_res *res)
{
    const struct model *m = vm_model(vm);
    const struct cfg_vm_info *vi = &m->info;
    json_t *o = json_object(), *a;
    if (!o)
        return NULL;
    json_set(o, "name", jstr_masked(vm, res && res->name ? res->name : vi->name));
    json_set(o, "section", jstr_masked(vm, vi->section));
    json_set(o, "qemu", jstr_masked(vm, m->qemu));
    json_set(o, "qemu_paths", a = json_array());
    for (int i = 0; a && i < vi->nqemu_paths; i++)
        json_append(a, jstr_masked(vm, vi->qemu_paths[i]));
    json_set(o, "qemu_selected", vi->qemu_selected >= 0 ? json_int(vi->qemu_selected) : json_null());
    json_set(o, "machine", jstr_masked(vm, vi->machine));
    json_set_bool(o, "kvm", vi->kvm);
    json_set_int(o, "smp", vi->smp);
    json_set(o, "cpupin", a = json_array());
    for (int i = 0; a && i < vi->ncpupin; i++)
        json_append(a, json_int(vi->cpupin[i]));
    if (vi->numa == CFG_NUMA_AUTO)
        json_set_str(o, "numa", "auto");
    else
        json_set(o, "numa", vi->numa >= 0 ? json_int(vi->numa) : json_null());
    json_set(o, "skipcores", a = json_array());
    for (int i = 0; a && i < vi->nskipcores; i++)
        json_append(a, json_int(vi->skipcores[i]));
    json_set_int(o, "mem_mb", vi->mem_mb);
    json_set_bool(o, "hugepage", vi->hugepage);
    json_set_bool(o, "qga", vi->qga);
    json_set_int(o, "wait_seconds", vi->wait_seconds);
    json_set_int(o, "login_timeout", vi->login_timeout);
    json_t *login = json_object();
    json_set(login, "user", jstr_masked(vm, vi->user));
    json_set(login, "password", vi->password ? json_string("********") : json_null());
    json_set(o, "login", login);
    json_set(o, "host_connect", vi->host_connect >= 0 ? json_int(vi->host_connect) : json_null());
    json_set(o, "control", vi->control >= 0 ? json_int(vi->control) : json_null());
    if (vi->vnc == -1)
        json_set(o, "vnc", json_null());
    else if (vi->vnc >= 0 || res)
        json_set_int(o, "vnc", vi->vnc >= 0 ? vi->vnc : res->vnc);
    else
        json_set_str(o, "vnc", "allocated");
    json_set(o, "mac_prefix", vi->mac_prefix ? json_string(vi->mac_prefix) : json_null());
    json_set_bool(o, "migrate", vi->migrate);
    if (vi->migrate)
        json_set(o, "migrate_listen", jstr_masked(vm, m->migrate_listen));
    json_set_int(o, "crypto", vi->ncrypto);
    json_set(o, "pflash", a = json_array());
    for (int i = 0; a && i < m->npflash; i++)
        json_append(a, jstr_masked(vm, m->pflash[i]));
    json_set(o, "nics", a = json_array());
    for (int i = 0; a && i < vi->nnics; i++) {
        const struct cfg_nic_info *n = &vi->nics[i];
        json_t *j = json_object();
        json_set(j, "id", jstr_masked(vm, n->id));
        json_set(j, "model", json_string(n->model));
        json_set(j, "backend", json_string(n->backend));
        const char *mac = n->mac ? n->mac : res ? res->macs[n->mac_need] : NULL;
        json_set(j, "mac", mac ? json_string(mac) : json_null());
        int slot = n->slot >= 0 ? n->slot : res ? res->pci_slot[n->slot_need] : -1;
        json_set(j, "addr", jaddr(slot, n->fn));
        if (n->hostfwd) {
            json_t *f = json_object();
            json_set(f, "addr", jstr_masked(vm, n->fwd_addr));
            int port = n->fwd_port ? n->fwd_port : res ? res->ssh_port[n->port_need] : 0;
            json_set(f, "port", port ? json_int(port) : json_null());
            json_set_int(f, "guest_port", n->fwd_guest_port);
            json_set(j, "hostfwd", f);
        }
        if (n->bridge) {
            json_set(j, "bridge", jstr_masked(vm, n->bridge));
            json_set_bool(j, "attach_bridge", n->attach_bridge);
        }
        json_append(a, j);
    }
    json_set(o, "pt", a = json_array());
    for (int i = 0; a && i < vi->npt; i++) {
        const struct cfg_pt *p = &vi->pt[i];
        json_t *j = json_object();
        json_set(j, "id", jstr_masked(vm, p->id));
        json_set(j, "driver", json_string(p->driver));
        const char *host = p->host                ? p->host
                           : p->pool && res        ? res->vf_host[p->vf_need]
                           : p->pf_pool && res     ? res->pf_host[p->pf_need]
                                                   : NULL;
        json_set(j, "host", host ? jstr_masked(vm, host) : json_null());
        json_set(j, "pool", jstr_masked(vm, p->pool ? p->pool : p->pf_pool));
        if (p->pf_pool)
            json_set_bool(j, "whole_pf", 1);
        json_set(j, "addr", jaddr(cfg_pt_slot(p, res), p->fn));
        json_append(a, j);
    }
    json_set(o, "vf_pools", a = json_array());
    for (int i = 0; a && i < vi->nvf_pools; i++) {
        const struct cfg_vf_pool *p = &vi->vf_pools[i];
        json_t *j = json_object(), *pfs = json_array();
        json_set(j, "name", jstr_masked(vm, p->name));
        for (int k = 0; pfs && k < p->npf; k++)
            json_append(pfs, jstr_masked(vm, p->pf[k]));
        json_set(j, "pf", pfs);
        json_append(a, j);
    }
    json_set(o, "warnings", a = json_array());
    for (int i = 0; a && i < vi->nwarnings; i++)
        json_append(a, jstr_masked(vm, vi->warnings[i]));
    return o;
}

json_t *cfg_argv_json(const struct cfg_vm *vm, char *const *argv)
{
    json_t *a = json_array();
    for (int i = 0; a && argv && argv[i]; i++)
        if (json_append(a, jstr_masked(vm, argv[i])) < 0) {
            json_free(a);
            return NULL;
        }
    return a;
}

char *cfg_argv_shell(const struct cfg_vm *vm, char *const *argv)
{
    struct sbuf b = { 0 };
    for (int i = 0; argv && argv[i]; i++) {
        char *m = cfg_vm_mask(vm, argv[i]);
        if (!m) {
            sb_free(&b);
            return NULL;
        }
        if (i)
            sb_add(&b, " \\\n    ");
        sb_add_shell(&b, m);
        free(m);
    }
    sb_addc(&b, '\n');
    return sb_take(&b);
}
