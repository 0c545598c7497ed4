/* migrate.c - live migration of a ready guest into a parked destination
 * (fleet.h: fleet_migrate).
 *
 * Like the rest of the fleet, QMP callbacks here only record what QEMU
 * said (the destination's address, a MIGRATION status, query-migrate's
 * numbers, RESUME) and kick; every decision (start, hand over, fail, tell
 * the caller) is taken in fleet__migrations_advance(), from advance().
 *
 * A migration is freed when its caller was told, its two timers closed
 * and every QMP command it sent has called back: refs counts those. */
#include "src/fleet/fleet_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"

#define MIG_TIMEOUT_MS 600000
#define POLL_MS 1000
#define STATS_RETRY_MS 20
#define STATS_TRIES 50

enum mig_stage {
    MS_PREPARE,   /* asking the destination where it listens */
    MS_MIGRATING, /* migrate sent; following the source */
    MS_HANDOVER,  /* completed; destination on its way to ready, source stopping */
    MS_DONE,
};

struct fleet_mig {
    fleet_t *f;
    fguest_t *src, *dst;
    qmp_t *sq, *dq;                 /* their QMP clients when it began (subscribed) */
    fleet_migrate_opts o;
    fleet_migrate_cb cb;
    void *data;
    char src_name[CFG_NAME_MAX + 16], dst_name[CFG_NAME_MAX + 16];
    enum mig_stage stage;
    int refs;                       /* list + timers + commands in flight */
    char phase[32];                 /* the last MIGRATION status seen */
    char uri[128];                  /* where the destination listens */
    char cmd_err[512];              /* the first failed command */
    double t0;                      /* time_mono_ms at the start */
    long long started_ms;
    json_t *phases;                 /* {"setup": ms since t0, ...} */
    long long total_ms, downtime_ms, setup_ms, transferred;
    char qemu_err[512];             /* query-migrate's error-desc */
    int qemu_done, completed, stats_pending, stats_tries, dst_resumed, timed_out, cancelling, told;
    int status;
    char error[1024];
    json_t *record;
    int npair;
    struct { int nic; char mac[MAC_STRLEN]; } pair[CFG_MAC_MAX + CFG_NIC_MAX];
    uv_timer_t timer, poll;
    struct fleet_mig *next;
};

static void unref(struct fleet_mig *m)
{
    if (--m->refs > 0)
        return;
    json_free(m->phases);
    json_free(m->record);
    free(m);
}

static double elapsed(const struct fleet_mig *m) { return time_mono_ms() - m->t0; }

/* A finished migration (or a freed fleet) needs no more decisions. */
static void kick_m(struct fleet_mig *m)
{
    if (m->stage != MS_DONE)
        fleet__kick(m->f);
}

/* ---- records ---- */

static json_t *make_record(const struct fleet_mig *m)
{
    json_t *o = json_object();
    json_set_str(o, "source", m->src_name);
    json_set_str(o, "destination", m->dst_name);
    json_set(o, "uri", m->uri[0] ? json_string(m->uri) : json_null());
    json_set_str(o, "phase", m->phase[0] ? m->phase : "prepare");
    json_set(o, "result", m->stage != MS_DONE ? json_null()
                          : json_string(m->status == 0 ? "ok" : "failed"));
    json_set(o, "error", m->error[0] ? json_string(m->error) : json_null());
    json_set_int(o, "started_ms", m->started_ms);
    json_set(o, "phases_ms", json_copy(m->phases));
    json_set(o, "total_ms", m->total_ms >= 0 ? json_int(m->total_ms) : json_null());
    json_set(o, "downtime_ms", m->downtime_ms >= 0 ? json_int(m->downtime_ms) : json_null());
    json_set(o, "setup_ms", m->setup_ms >= 0 ? json_int(m->setup_ms) : json_null());
    json_set(o, "transferred_bytes", m->transferred >= 0 ? json_int(m->transferred) : json_null());
    return o;
}

/* The record into both guests' registry entries and a line of
 * events.jsonl: {"event":"migration","phase":...}. */
static void record(struct fleet_mig *m, const char *what)
{
    fleet_t *f = m->f;
    json_free(m->record);
    m->record = make_record(m);
    fguest_t *gs[2] = { m->src, m->dst };
    for (int i = 0; i < 2; i++) {
        json_free(gs[i]->migration);
        gs[i]->migration = json_copy(m->record);
    }
    f->registry_dirty = 1;
    json_t *ev = json_copy(m->record);
    json_set_int(ev, "ts_ms", time_wall_ms());
    json_set_str(ev, "run", f->run_id);
    json_set_str(ev, "guest", m->src_name);
    json_set_str(ev, "event", "migration");
    json_set_str(ev, "what", what);
    json_set_int(ev, "elapsed_ms", (long long)elapsed(m));
    fleet__event_write(f, ev);
}

static void set_phase(struct fleet_mig *m, const char *phase)
{
    if (!phase || !strcmp(m->phase, phase))
        return;
    snprintf(m->phase, sizeof(m->phase), "%s", phase);
    if (!json_get(m->phases, phase))
        json_set_int(m->phases, phase, (long long)elapsed(m));
    record(m, "phase");
}

/* ---- what QEMU says (record and kick) ---- */

static int terminal(const char *st)
{
    return !strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled");
}

static void on_stats(qmp_t *q, const qmp_reply *r, void *data);
static void on_poll(uv_timer_t *t);

static void query(struct fleet_mig *m, int final)
{
    if (!m->sq || m->src->qmp != m->sq)
        return;
    m->refs++;
    if (final)
        m->stats_pending = 1;
    if (qmp_execute(m->sq, "query-migrate", NULL, 10000, on_stats, m) < 0) {
        m->refs--;
        m->stats_pending = 0;
    }
}

static void saw_status(struct fleet_mig *m, const char *st)
{
    if (!st || m->qemu_done)
        return;
    set_phase(m, st);
    if (terminal(st)) {
        m->qemu_done = 1;
        m->completed = !strcmp(st, "completed");
        query(m, 1);
    }
    kick_m(m);
}

static void on_stats(qmp_t *q, const qmp_reply *r, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    const char *st = r->ret ? json_get_str(r->ret, "status") : NULL;
    int final = 0;
    if (m->stage != MS_DONE && st) {
        m->transferred = json_get_int(json_get(r->ret, "ram"), "transferred", m->transferred);
        if (!strcmp(st, "completed")) {
            /* QEMU says completed a moment before it computes total-time
             * and downtime (migration_calculate_complete), and no event
             * tells when it has: a zero means ask again. */
            m->total_ms = json_get_int(r->ret, "total-time", m->total_ms);
            m->downtime_ms = json_get_int(r->ret, "downtime", m->downtime_ms);
            m->setup_ms = json_get_int(r->ret, "setup-time", m->setup_ms);
            final = m->total_ms > 0;
        } else if (terminal(st)) {
            const char *e = json_get_str(r->ret, "error-desc");
            if (e)
                snprintf(m->qemu_err, sizeof(m->qemu_err), "%s", e);
            final = 1;
        }
        /* A status the events missed (they only come once asked for). */
        if (!m->qemu_done && terminal(st))
            saw_status(m, st);
    }
    if (m->stats_pending && m->stage != MS_DONE) {
        if (final || r->err || m->stats_tries++ >= STATS_TRIES) {
            m->stats_pending = 0;
            kick_m(m);
        } else if (!uv_is_active((uv_handle_t *)&m->poll) || m->qemu_done) {
            uv_timer_start(&m->poll, on_poll, STATS_RETRY_MS, 0);
        }
    }
    unref(m);
}

static void on_src_event(qmp_t *q, const qmp_event *ev, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    if (m->stage == MS_MIGRATING)
        saw_status(m, json_get_str(ev->data, "status"));
}

static void on_dst_event(qmp_t *q, const qmp_event *ev, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    (void)ev; /* RESUME */
    if (m->stage == MS_DONE)
        return;
    m->dst_resumed = 1;
    kick_m(m);
}

static void on_dst_status(qmp_t *q, const qmp_reply *r, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    const char *st = r->ret ? json_get_str(r->ret, "status") : NULL;
    if (st && !strcmp(st, "running") && m->stage != MS_DONE) {
        m->dst_resumed = 1;
        kick_m(m);
    }
    unref(m);
}

/* A command's failure is kept (the first one) for advance() to act on. */
static void on_cmd(qmp_t *q, const qmp_reply *r, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    if (r->err && !m->cmd_err[0] && m->stage != MS_DONE) {
        snprintf(m->cmd_err, sizeof(m->cmd_err), "%s: %s", r->cmd, r->err->desc);
        kick_m(m);
    }
    unref(m);
}

/* query-migrate on the destination: "socket-address" says where it
 * listens (the port QEMU really bound). Every address means this host. */
static void on_incoming(qmp_t *q, const qmp_reply *r, void *data)
{
    struct fleet_mig *m = data;
    (void)q;
    if (m->stage == MS_DONE) {
        unref(m);
        return;
    }
    const json_t *sa = r->ret ? json_get(r->ret, "socket-address") : NULL;
    for (size_t i = 0; i < json_len(sa) && !m->uri[0]; i++) {
        const json_t *a = json_at(sa, i);
        const char *type = json_get_str(a, "type"), *host = json_get_str(a, "host");
        const char *port = json_get_str(a, "port");
        if (!type || strcmp(type, "inet") || !host || !port)
            continue;
        if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
            host = "127.0.0.1";
        snprintf(m->uri, sizeof(m->uri), strchr(host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s", host,
                 port);
    }
    if (!m->uri[0] && !m->cmd_err[0])
        snprintf(m->cmd_err, sizeof(m->cmd_err), "query-migrate on %s: %s", m->dst_name,
                 r->err ? r->err->desc : "no TCP address to migrate to (is it -incoming tcp:?)");
    kick_m(m);
    unref(m);
}

static void on_timeout(uv_timer_t *t)
{
    struct fleet_mig *m = t->data;
    m->timed_out = 1;
    kick_m(m);
}

static void on_poll(uv_timer_t *t)
{
    struct fleet_mig *m = t->data;
    if (m->stage == MS_MIGRATING && !m->qemu_done)
        query(m, 0);
    else if (m->stage == MS_MIGRATING && m->stats_pending)
        query(m, 1);
}

static void on_timer_closed(uv_handle_t *h) { unref(h->data); }

/* ---- decisions (from advance) ---- */

static int exec(struct fleet_mig *m, qmp_t *q, const char *cmd, json_t *args, qmp_reply_cb cb)
{
    m->refs++;
    int rc = qmp_execute(q, cmd, args, 30000, cb, m);
    if (rc < 0)
        m->refs--;
    return rc;
}

static int share(struct fleet_mig *m, int nic, char *mac, char *err, size_t errlen)
{
    int rc = alloc_share_mac(m->f->store, &m->src->owner, nic, &m->dst->owner, nic, mac, err,
                             errlen);
    if (rc == 0) {
        m->pair[m->npair].nic = nic;
        snprintf(m->pair[m->npair].mac, MAC_STRLEN, "%s", mac);
        m->npair++;
    }
    return rc;
}

/* The destination's NICs take the source's MACs, as the pair's: the
 * leased ones (lease k of the one is lease k of the other: same machine)
 * and the cfg's fixed ones (leased as 100 + i, as fleet__take_leases). */
static int pair_macs(struct fleet_mig *m, char *err, size_t errlen)
{
    fguest_t *s = m->src, *d = m->dst;
    char mac[MAC_STRLEN];
    for (int k = 0; k < s->nd.macs; k++) {
        if (share(m, k, mac, err, errlen) < 0)
            return -1;
        snprintf(d->res.macs[k], sizeof(d->res.macs[k]), "%s", mac);
    }
    for (int i = 0; i < s->vi->nnics; i++)
        if (s->vi->nics[i].mac && share(m, 100 + i, mac, err, errlen) < 0)
            return -1;
    return 0;
}

/* A lone source's MACs are its own again (what fleet__take_leases gave). */
static void unpair_macs(struct fleet_mig *m)
{
    fguest_t *s = m->src;
    char err[256];
    if (!s->leased)
        return;
    for (int k = 0; k < m->npair; k++)
        if (alloc_reserve_mac(m->f->store, &s->owner, m->pair[k].nic, m->pair[k].mac,
                              s->vi->migrate ? ALLOC_SHARED : 0, err, sizeof(err)) < 0)
            fprintf(stderr, "qfleet: %s: MAC %s: %s\n", s->name, m->pair[k].mac, err);
    m->npair = 0;
}

/* The source is gone: the destination's MACs are plainly its own. */
static void own_macs(struct fleet_mig *m)
{
    fguest_t *d = m->dst;
    char err[256];
    for (int k = 0; k < m->npair && d->leased; k++)
        if (alloc_reserve_mac(m->f->store, &d->owner, m->pair[k].nic, m->pair[k].mac,
                              d->vi->migrate ? ALLOC_SHARED : 0, err, sizeof(err)) < 0)
            fprintf(stderr, "qfleet: %s: MAC %s: %s\n", d->name, m->pair[k].mac, err);
    m->npair = 0;
}

static void start(struct fleet_mig *m)
{
    char err[512];
    if (pair_macs(m, err, sizeof(err)) < 0) {
        snprintf(m->cmd_err, sizeof(m->cmd_err), "sharing the MACs: %s", err);
        return;
    }
    m->stage = MS_MIGRATING;
    json_t *cap = json_object(), *caps = json_array();
    json_set_str(cap, "capability", "events");
    json_set_bool(cap, "state", 1);
    json_append(caps, cap);
    json_t *args = json_object();
    json_set(args, "capabilities", caps);
    exec(m, m->sq, "migrate-set-capabilities", args, on_cmd);
    if (m->o.downtime_limit_ms > 0 || m->o.max_bandwidth > 0) {
        args = json_object();
        if (m->o.downtime_limit_ms > 0)
            json_set_int(args, "downtime-limit", m->o.downtime_limit_ms);
        if (m->o.max_bandwidth > 0)
            json_set_int(args, "max-bandwidth", m->o.max_bandwidth);
        exec(m, m->sq, "migrate-set-parameters", args, on_cmd);
    }
    args = json_object();
    json_set_str(args, "uri", m->uri);
    exec(m, m->sq, "migrate", args, on_cmd);
    uv_timer_start(&m->poll, on_poll, POLL_MS, POLL_MS);
    record(m, "started");
}

static void fail(struct fleet_mig *m, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct fleet_mig *m)
{
    uv_timer_stop(&m->timer);
    uv_timer_stop(&m->poll);
    if (m->sq && m->src->qmp == m->sq)
        qmp_unsubscribe(m->sq, "MIGRATION", on_src_event, m);
    if (m->dq && m->dst->qmp == m->dq)
        qmp_unsubscribe(m->dq, "RESUME", on_dst_event, m);
    m->sq = m->dq = NULL;
    m->stage = MS_DONE;
    m->src->mig = m->dst->mig = NULL;
    record(m, m->status == 0 ? "done" : "failed");
}

static void fail(struct fleet_mig *m, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
    m->status = status;
    /* The source lives on (QEMU resumed it); the destination is spent. */
    if (m->stage != MS_HANDOVER) {
        unpair_macs(m);
        fleet__guest_stop(m->dst);
    }
    finish(m);
}

static int down(const fguest_t *g) { return g->state == GS_STOPPED || g->state == GS_FAILED; }

/* The first line of a guest's reason (the tails follow it). */
static const char *first_line(const fguest_t *g, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s", (int)strcspn(g->reason, "\n"), g->reason);
    return buf;
}

static void hand_over(struct fleet_mig *m)
{
    m->stage = MS_HANDOVER;
    uv_timer_stop(&m->timer);
    uv_timer_stop(&m->poll);
    /* The guest keeps its name: the destination takes it, the old QEMU
     * the destination's. */
    char tmp[sizeof(m->src->name)];
    memcpy(tmp, m->src->name, sizeof(tmp));
    memcpy(m->src->name, m->dst->name, sizeof(tmp));
    memcpy(m->dst->name, tmp, sizeof(tmp));
    m->src->migrated_away = 1;
    /* The pair's MACs stay claimed cluster-wide, now the destination's:
     * the source's release no longer takes them with it. */
    for (int k = 0; m->f->o.cluster && k < m->npair; k++)
        cluster_hand_over(m->f->o.cluster, "mac", m->pair[k].mac, m->dst->owner.name, NULL, NULL);
    record(m, "hand-over");
    fleet__guest_stop(m->src);
    if (m->dq && m->dst->qmp == m->dq && exec(m, m->dq, "query-status", NULL, on_dst_status) < 0)
        m->dst_resumed = 1; /* the destination's own machine will see its QMP gone */
}

static void tell(struct fleet_mig *m)
{
    if (m->told)
        return;
    m->told = 1;
    json_free(m->record);
    m->record = make_record(m);
    fleet_migration r = { .source = m->src_name, .destination = m->dst_name,
                          .status = m->stage == MS_DONE ? m->status : -ETIMEDOUT,
                          .error = m->error[0] ? m->error : NULL,
                          .phase = m->phase[0] ? m->phase : "prepare", .record = m->record };
    if (m->cb)
        m->cb(m->f, &r, m->data);
}

static void step_prepare(struct fleet_mig *m)
{
    if (m->cmd_err[0])
        fail(m, -EIO, "migration %s -> %s failed in phase prepare: %s", m->src_name, m->dst_name,
             m->cmd_err);
    else if (down(m->dst) || down(m->src) || m->src->state != GS_READY)
        fail(m, -ECANCELED, "migration %s -> %s failed in phase prepare: %s is %s", m->src_name,
             m->dst_name, down(m->dst) ? m->dst_name : m->src_name,
             fleet_state_name(down(m->dst) ? m->dst->state : m->src->state));
    else if (m->timed_out)
        fail(m, -ETIMEDOUT, "migration %s -> %s timed out in phase prepare", m->src_name,
             m->dst_name);
    else if (m->uri[0])
        start(m);
    if (m->stage == MS_PREPARE && m->uri[0] && m->cmd_err[0]) /* the MACs would not pair */
        fail(m, -EEXIST, "migration %s -> %s failed in phase prepare: %s", m->src_name,
             m->dst_name, m->cmd_err);
}

/* QEMU ended it without completing: the phase before "failed" (or
 * "cancelling") is the one that failed. */
static void qemu_failed(struct fleet_mig *m)
{
    const char *in = m->phase;
    long long best = -1;
    for (size_t i = 0; i < json_len(m->phases); i++) {
        const char *k = json_key_at(m->phases, i);
        long long t = json_get_int(m->phases, k, -1);
        if (!terminal(k) && strcmp(k, "cancelling") && t >= best)
            best = t, in = k;
    }
    char dst[600] = "", why[512];
    if (down(m->dst))
        snprintf(dst, sizeof(dst), "; destination %s: %s", m->dst_name,
                 first_line(m->dst, why, sizeof(why)));
    fail(m, m->cancelling ? -ETIMEDOUT : -EIO, "migration %s -> %s %s in phase %s%s%s%s",
         m->src_name, m->dst_name, m->cancelling ? "timed out and was cancelled" : "failed", in,
         m->qemu_err[0] ? ": " : "", m->qemu_err, dst);
}

static void step_migrating(struct fleet_mig *m)
{
    char why[512];
    const char *phase = m->phase[0] ? m->phase : "prepare";
    if (down(m->src)) {
        fail(m, -EIO, "migration %s -> %s failed in phase %s: the source failed: %s",
             m->src_name, m->dst_name, phase, first_line(m->src, why, sizeof(why)));
    } else if (m->cmd_err[0] && !m->qemu_done) {
        fail(m, -EIO, "migration %s -> %s failed in phase %s: %s", m->src_name, m->dst_name,
             phase, m->cmd_err);
    } else if (m->qemu_done && !m->stats_pending) {
        if (m->completed)
            hand_over(m);
        else
            qemu_failed(m);
    } else if (m->timed_out && !m->cancelling && !m->told) {
        snprintf(m->error, sizeof(m->error), "migration %s -> %s timed out in phase %s%s",
                 m->src_name, m->dst_name, phase,
                 m->o.cancel_on_timeout ? ", cancelling" : " (still running)");
        if (m->o.cancel_on_timeout && m->sq && m->src->qmp == m->sq) {
            m->cancelling = 1;
            exec(m, m->sq, "migrate_cancel", NULL, on_cmd);
        } else {
            record(m, "timed-out");
            tell(m);
        }
    }
}

static void step_handover(struct fleet_mig *m)
{
    char why[512];
    if (m->dst->state == GS_AWAITING_MIGRATION && m->dst_resumed)
        fleet__guest_migrated_in(m->dst);
    if (m->dst->state == GS_READY && down(m->src)) {
        m->status = 0;
        m->error[0] = '\0';
        own_macs(m);
        finish(m);
    } else if (down(m->dst) || m->dst->state == GS_STOPPING) {
        fail(m, -EIO, "migration %s -> %s completed but the destination did not reach ready: %s",
             m->src_name, m->dst_name,
             m->dst->reason[0] ? first_line(m->dst, why, sizeof(why)) : "it was stopped");
    }
}

static void step(struct fleet_mig *m)
{
    if (m->stage == MS_PREPARE)
        step_prepare(m);
    if (m->stage == MS_MIGRATING)
        step_migrating(m);
    if (m->stage == MS_HANDOVER)
        step_handover(m);
}

void fleet__migrations_advance(fleet_t *f)
{
    for (struct fleet_mig **p = &f->migs; *p;) {
        struct fleet_mig *m = *p;
        if (m->stage != MS_DONE)
            step(m);
        if (m->stage == MS_DONE) {
            tell(m);
            if (f->freeing)
                return;
            *p = m->next;
            uv_close((uv_handle_t *)&m->timer, on_timer_closed);
            uv_close((uv_handle_t *)&m->poll, on_timer_closed);
            unref(m);
        } else {
            p = &m->next;
        }
    }
}

static void on_timer_closed_freeing(uv_handle_t *h)
{
    struct fleet_mig *m = h->data;
    fleet_t *f = m->f;
    unref(m);
    fleet__closed_one(f);
}

int fleet__migrations_close(fleet_t *f)
{
    int n = 0;
    for (struct fleet_mig *m = f->migs; m; m = m->next) {
        if (m->stage != MS_DONE) {
            m->status = -ECANCELED;
            snprintf(m->error, sizeof(m->error), "migration %s -> %s: the controller shut down",
                     m->src_name, m->dst_name);
            m->stage = MS_DONE;
        }
        tell(m);
        m->src->mig = m->dst->mig = NULL;
        uv_close((uv_handle_t *)&m->timer, on_timer_closed_freeing);
        uv_close((uv_handle_t *)&m->poll, on_timer_closed_freeing);
        n += 2;
    }
    return n;
}

void fleet__migrations_free(fleet_t *f)
{
    /* The timers are closed; what is left are commands the closed QMP
     * clients still owe a callback, which they make before this. */
    while (f->migs) {
        struct fleet_mig *m = f->migs;
        f->migs = m->next;
        unref(m);
    }
}

/* ---- the caller's side ---- */

int fleet_migrate(fleet_t *f, fguest_t *src, fguest_t *dst, const fleet_migrate_opts *o,
                  fleet_migrate_cb cb, void *data, char *err, size_t errlen)
{
    if (f->freeing)
        return snprintf(err, errlen, "the fleet is shutting down"), -ECANCELED;
    if (src == dst || src->f != f || dst->f != f)
        return snprintf(err, errlen, "migrate: give two guests of this run"), -EINVAL;
    if (src->mig || dst->mig)
        return snprintf(err, errlen, "%s is already migrating", (src->mig ? src : dst)->name),
               -EBUSY;
    if (src->state != GS_READY || !src->qmp)
        return snprintf(err, errlen, "source %s is %s, not ready", src->name,
                        fleet_state_name(src->state)), -EBUSY;
    if (dst->state != GS_AWAITING_MIGRATION || !dst->qmp)
        return snprintf(err, errlen, "destination %s is %s, not awaiting-migration%s", dst->name,
                        fleet_state_name(dst->state),
                        dst->vi->migrate ? "" : " (its VM has no migration = enable=yes)"),
               -EBUSY;
    if (src->vi->nnics != dst->vi->nnics || src->nd.macs != dst->nd.macs)
        return snprintf(err, errlen, "%s has %d NICs (%d MACs), %s %d (%d): QEMU cannot "
                        "migrate between different machines", src->name, src->vi->nnics,
                        src->nd.macs, dst->name, dst->vi->nnics, dst->nd.macs), -EINVAL;
    struct fleet_mig *m = calloc(1, sizeof(*m));
    if (!m || !(m->phases = json_object())) {
        free(m);
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    }
    m->f = f;
    m->src = src;
    m->dst = dst;
    m->sq = src->qmp;
    m->dq = dst->qmp;
    m->o = *o;
    if (m->o.timeout_ms <= 0)
        m->o.timeout_ms = MIG_TIMEOUT_MS;
    m->cb = cb;
    m->data = data;
    snprintf(m->src_name, sizeof(m->src_name), "%s", src->name);
    snprintf(m->dst_name, sizeof(m->dst_name), "%s", dst->name);
    m->total_ms = m->downtime_ms = m->setup_ms = m->transferred = -1;
    m->t0 = time_mono_ms();
    m->started_ms = time_wall_ms();
    m->refs = 3; /* the list, two timers */
    uv_timer_init(f->loop, &m->timer);
    uv_timer_init(f->loop, &m->poll);
    m->timer.data = m->poll.data = m;
    uv_update_time(f->loop);
    uv_timer_start(&m->timer, on_timeout, (uint64_t)m->o.timeout_ms, 0);
    qmp_subscribe(m->sq, "MIGRATION", on_src_event, m);
    qmp_subscribe(m->dq, "RESUME", on_dst_event, m);
    src->mig = dst->mig = m;
    m->next = f->migs;
    f->migs = m;
    if (exec(m, m->dq, "query-migrate", NULL, on_incoming) < 0)
        snprintf(m->cmd_err, sizeof(m->cmd_err), "%s: QMP is gone", m->dst_name);
    record(m, "requested");
    fleet__kick(f);
    return 0;
}
