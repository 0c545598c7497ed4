/* suite_resolve.c - a parsed suite against its DTS cfg: the guests its
 * [suite] vms line asks for, every ${guest.NAME.*} reference checked
 * against them, and every interactive session a step names against the
 * spawns before it, with the suite file's line and column in errors. */
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

static int no_guest(const struct suite *s, const char *name, struct cfg_loc loc, char *err, size_t errlen)
{
    char all[512];
    guest_list(s, all, sizeof(all));
    return cfg_errf(err, errlen, loc, "no guest '%s' in this suite (its guests: %s)", name, all);
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
        if (st->dest && suite_guest_index(s, st->dest) < 0)
            return no_guest(s, st->dest, st->loc, err, errlen);
        if (!st->guest)
            continue;
        int gi = suite_guest_index(s, st->guest);
        if (gi < 0)
            return no_guest(s, st->guest, st->loc, err, errlen);
        const struct suite_guest *g = &s->guests[gi];
        if (st->verb == SV_SPAWN && strcmp(st->session, st->guest) && suite_guest_index(s, st->session) >= 0)
            return cfg_errf(err, errlen, st->loc, "session name '%s' is another guest's name; pick "
                            "another one after 'as'", st->session);
        enum suite_transport t = st->verb == SV_QGA ? ST_AGENT : st->verb == SV_SPAWN ? ST_SSH
                               : st->verb == SV_QMP || st->verb == SV_MIGRATE ? 0
                               : suite_step_transport(s, st, g->has_login);
        if (t == ST_SSH && !g->has_login)
            return cfg_errf(err, errlen, st->loc, "%s has no SSH login (its cfg needs a login key "
                            "and a user-network forward); %s", st->guest, st->verb == SV_SPAWN
                            ? "spawn needs one: the agent has no interactive shell" : "use 'via agent'");
        if (t == ST_AGENT && !g->has_agent)
            return cfg_errf(err, errlen, st->loc, "%s has no guest agent (its cfg needs "
                            "'qga = enable=yes')", st->guest);
    }
    return 0;
}

/* ---- interactive sessions --------------------------------------------------
 * A session lives within one case: spawned in its [set_up], body or
 * [tear_down] (or in [tear_down_all], for that block alone), closed by a
 * close step or at the end of the case. The blocks are walked in order as
 * if every step ran; [tear_down] runs also after a failure, so it may name
 * any session some [set_up], case or [tear_down] spawns. */

#define SPAWNED_MAX 64

struct scope {
    const struct suite_step *open[SUITE_SESSIONS_MAX];
    int nopen;
    const struct suite_step *spawned[SPAWNED_MAX]; /* distinct names, in order */
    int nspawned;
};

static int scope_find(const struct suite_step *const *l, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i]->session, name))
            return i;
    return -1;
}

/* Every session spawned anywhere a [tear_down] can see. */
static void all_spawns(const struct suite *s, struct scope *all)
{
    const struct suite_case *b[2] = { &s->set_up, &s->tear_down };
    for (int i = -2; i < s->ncases; i++) {
        const struct suite_case *c = i < 0 ? b[i + 2] : &s->cases[i];
        for (int k = 0; k < c->nsteps; k++)
            if (c->steps[k].verb == SV_SPAWN && all->nspawned < SPAWNED_MAX &&
                scope_find(all->spawned, all->nspawned, c->steps[k].session) < 0)
                all->spawned[all->nspawned++] = &c->steps[k];
    }
}

static int scope_step(struct scope *sc, const struct suite_step *st, const struct scope *wide, char *err,
                      size_t errlen)
{
    int o = scope_find(sc->open, sc->nopen, st->session);
    if (st->verb == SV_SPAWN) {
        if (o >= 0)
            return cfg_errf(err, errlen, st->loc, "session '%s' is already open (spawned at line %d); "
                            "close it first or name this one with 'as NAME'", st->session,
                            sc->open[o]->loc.line);
        if (sc->nopen == SUITE_SESSIONS_MAX)
            return cfg_errf(err, errlen, st->loc, "more than %d sessions open at once",
                            SUITE_SESSIONS_MAX);
        sc->open[sc->nopen++] = st;
        if (scope_find(sc->spawned, sc->nspawned, st->session) < 0) {
            if (sc->nspawned == SPAWNED_MAX)
                return cfg_errf(err, errlen, st->loc, "more than %d sessions in one case", SPAWNED_MAX);
            sc->spawned[sc->nspawned++] = st;
        }
        return 0;
    }
    if (o < 0 && scope_find(sc->spawned, sc->nspawned, st->session) < 0 &&
        !(wide && scope_find(wide->spawned, wide->nspawned, st->session) >= 0))
        return cfg_errf(err, errlen, st->loc, "no session '%s' here: start it with 'spawn GUEST: "
                        "COMMAND' (or 'spawn GUEST as %s: ...') earlier in [set_up] or this case; "
                        "sessions end with their case", st->session, st->session);
    if (st->verb == SV_CLOSE && o >= 0)
        sc->open[o] = sc->open[--sc->nopen];
    return 0;
}

/* The implicit closes at the end of c: one per session name spawned. */
static int add_closes(struct suite *s, struct suite_case *c, const struct scope *sc)
{
    struct suite_step *cl = ar_alloc(s->arena, sizeof(*cl) * (size_t)(sc->nspawned + 1));
    if (!cl)
        return -ENOMEM;
    for (int i = 0; i < sc->nspawned; i++) {
        const struct suite_step *sp = sc->spawned[i];
        cl[i] = (struct suite_step){ .verb = SV_CLOSE, .session = sp->session, .implicit = 1, .loc = sp->loc,
                                     .source = ar_printf(s->arena, "close %s (end of case)", sp->session) };
    }
    c->closes = cl;
    c->ncloses = sc->nspawned;
    return 0;
}

static int check_sessions(struct suite *s, char *err, size_t errlen)
{
    for (int k = 0; k < s->set_up_all.nsteps; k++) {
        const struct suite_step *st = &s->set_up_all.steps[k];
        if (st->session)
            return cfg_errf(err, errlen, st->loc, "%s in [set_up_all]: interactive sessions live "
                            "within one case; spawn in [set_up] or the case", suite_verb_name(st->verb));
    }
    struct scope wide = { 0 };
    all_spawns(s, &wide);
    for (int i = -1; i < s->ncases; i++) {
        struct suite_case *c = i < 0 ? &s->tear_down_all : (struct suite_case *)&s->cases[i];
        const struct suite_case *b[3] = { &s->set_up, c, &s->tear_down };
        struct scope sc = { 0 };
        for (int j = i < 0 ? 1 : 0; j < (i < 0 ? 2 : 3); j++)
            for (int k = 0; k < b[j]->nsteps; k++)
                if (b[j]->steps[k].session &&
                    scope_step(&sc, &b[j]->steps[k], j == 2 ? &wide : NULL, err, errlen) < 0)
                    return -EINVAL;
        if (add_closes(s, c, &sc) < 0)
            return -ENOMEM;
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
    const struct suite_case *blocks[4] = { &s->set_up_all, &s->set_up, &s->tear_down, &s->tear_down_all };
    for (int i = 0; rc == 0 && i < 4; i++)
        rc = resolve_block(s, blocks[i], err, errlen);
    for (int i = 0; rc == 0 && i < s->ncases; i++)
        rc = resolve_block(s, &s->cases[i], err, errlen);
    if (rc == 0)
        rc = check_sessions(s, err, errlen);
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
