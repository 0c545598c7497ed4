/* suite_resolve.c - a parsed suite against its DTS cfg: the guests its
 * [suite] vms line asks for, and every ${guest.NAME.*} reference checked
 * against them, with the suite file's line and column in errors. */
#include "cfg/suite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/argv.h"
#include "cfg/util.h"
#include "cfg/vm.h"

static int guest_list(const struct suite *s, char *out, size_t len)
{
    size_t off = 0;
    for (int i = 0; i < s->nguests && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%s", i ? ", " : "", s->guests[i].name);
    return 0;
}

/* Every ${guest.NAME.FIELD} in text names a guest of the suite. */
static int check_var_guests(const struct suite *s, const char *text, struct cfg_loc loc, char *err,
                            size_t errlen)
{
    for (const char *q = text; text && (q = strstr(q, "${guest.")); q += 8) {
        const char *n = q + 8, *end = strchr(n, '}');
        const char *dot = end ? memrchr(n, '.', (size_t)(end - n)) : NULL;
        char name[CFG_NAME_MAX + 16];
        snprintf(name, sizeof(name), "%.*s", dot ? (int)(dot - n) : 0, n);
        if (q > text && q[-1] == '$')
            continue;
        if (suite_guest_index(s, name) < 0) {
            char all[512];
            guest_list(s, all, sizeof(all));
            return cfg_errf(err, errlen, loc, "${guest.%s...}: no guest '%s' in this suite "
                            "(its guests: %s)", name, name, all);
        }
    }
    return 0;
}

static int resolve_block(const struct suite *s, const struct suite_case *c, char *err, size_t errlen)
{
    for (int k = 0; k < c->nsteps; k++) {
        const struct suite_step *st = &c->steps[k];
        if (check_var_guests(s, st->text, st->loc, err, errlen) < 0 ||
            check_var_guests(s, st->arg, st->loc, err, errlen) < 0)
            return -EINVAL;
        for (int x = 0; x < st->nex; x++)
            if (check_var_guests(s, st->ex[x].value, st->ex[x].loc, err, errlen) < 0)
                return -EINVAL;
        if (!st->guest)
            continue;
        int gi = suite_guest_index(s, st->guest);
        if (gi < 0) {
            char all[512];
            guest_list(s, all, sizeof(all));
            return cfg_errf(err, errlen, st->loc, "no guest '%s' in this suite (its guests: %s)",
                            st->guest, all);
        }
        const struct suite_guest *g = &s->guests[gi];
        enum suite_transport t = st->verb == SV_QGA ? ST_AGENT : st->verb == SV_QMP ? 0
                               : suite_step_transport(s, st, g->has_login);
        if (t == ST_SSH && !g->has_login)
            return cfg_errf(err, errlen, st->loc, "%s has no SSH login (its cfg needs a login key "
                            "and a user-network forward); use 'via agent'", st->guest);
        if (t == ST_AGENT && !g->has_agent)
            return cfg_errf(err, errlen, st->loc, "%s has no guest agent (its cfg needs "
                            "'qga = enable=yes')", st->guest);
    }
    return 0;
}

static int add_guests(struct suite *s, const struct suite_vm *v, struct suite_guest **gs, int *cap,
                      char *err, size_t errlen)
{
    char e[1024];
    if (!cfg_doc_section(s->doc, v->section))
        return cfg_errf(err, errlen, v->loc, "no section [%s] in %s", v->section, s->cfg);
    struct cfg_vm *vm;
    if (cfg_vm_from_docs(s->doc, v->section, s->defaults_doc, &vm, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "%s", e);
        return -EINVAL;
    }
    const struct cfg_vm_info *vi = cfg_vm_info(vm);
    const char *addr;
    int port, has_login = vi->user && cfg_vm_ssh(vm, NULL, &addr, &port) == 0;
    int *pin = ar_alloc(s->arena, sizeof(int) * (size_t)(vi->ncpupin + 1));
    if (pin && vi->ncpupin)
        memcpy(pin, vi->cpupin, sizeof(int) * (size_t)vi->ncpupin);
    const char **w = ar_alloc(s->arena, sizeof(char *) * (size_t)(s->nwarnings + vi->nwarnings + 1));
    for (int i = 0; w && i < s->nwarnings; i++)
        w[i] = s->warnings[i];
    for (int i = 0; w && i < vi->nwarnings; i++)
        w[s->nwarnings + i] = ar_strdup(s->arena, vi->warnings[i]);
    if (w) {
        s->warnings = w;
        s->nwarnings += vi->nwarnings;
    }
    for (int k = 1; k <= v->count; k++) {
        if (ar_grow(s->arena, (void **)gs, sizeof(**gs), cap, s->nguests + 1) < 0)
            break;
        struct suite_guest *g = &(*gs)[s->nguests];
        g->name = v->count > 1 ? ar_printf(s->arena, "%s-%d", v->section, k) : ar_strdup(s->arena, v->section);
        g->section = v->section;
        g->mem_mb = vi->mem_mb;
        g->cpupin = pin;
        g->ncpupin = vi->ncpupin;
        g->vnc = vi->vnc;
        g->has_login = has_login;
        g->has_agent = vi->qga;
        s->guests = *gs;
        if (suite_guest_index(s, g->name) >= 0) {
            cfg_vm_free(vm);
            return cfg_errf(err, errlen, v->loc, "two guests would be named '%s'", g->name);
        }
        s->nguests++;
    }
    cfg_vm_free(vm);
    return ar_failed(s->arena) ? -ENOMEM : 0;
}

int suite_resolve(struct suite *s, char *err, size_t errlen)
{
    char e[1024];
    if (cfg_doc_load(s->cfg, &s->doc, e, sizeof(e)) < 0)
        return cfg_errf(err, errlen, s->cfg_loc, "cfg: %s", e);
    if (s->defaults && cfg_doc_load(s->defaults, &s->defaults_doc, e, sizeof(e)) < 0)
        return cfg_errf(err, errlen, s->cfg_loc, "defaults: %s", e);
    if (s->nvms == 0) { /* every section of the cfg, once */
        int n = cfg_doc_nsections(s->doc);
        struct suite_vm *vms = ar_alloc(s->arena, sizeof(*vms) * (size_t)(n + 1));
        for (int i = 0; vms && i < n; i++)
            vms[i] = (struct suite_vm){ cfg_doc_section_at(s->doc, i)->name, 1, s->cfg_loc };
        if (n == 0)
            return cfg_errf(err, errlen, s->cfg_loc, "%s has no VM sections", s->cfg);
        s->vms = vms;
        s->nvms = vms ? n : 0;
    }
    struct suite_guest *gs = NULL;
    int cap = 0, rc = 0;
    for (int i = 0; rc == 0 && i < s->nvms; i++)
        rc = add_guests(s, &s->vms[i], &gs, &cap, err, errlen);
    const struct suite_case *blocks[3] = { &s->set_up_all, &s->set_up, &s->tear_down };
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = resolve_block(s, blocks[i], err, errlen);
    for (int i = 0; rc == 0 && i < s->ncases; i++)
        rc = resolve_block(s, &s->cases[i], err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

int suite_guest_index(const struct suite *s, const char *name)
{
    for (int i = 0; i < s->nguests; i++)
        if (!strcmp(s->guests[i].name, name))
            return i;
    return -1;
}

enum suite_transport suite_step_transport(const struct suite *s, const struct suite_step *st,
                                          int has_login)
{
    if (st->via != ST_DEFAULT)
        return st->via;
    if (s->transport != ST_DEFAULT)
        return s->transport;
    return has_login ? ST_SSH : ST_AGENT;
}
