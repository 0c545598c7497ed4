/* claims.c - a guest's leases that hold across hosts (fleet.h, "cluster-wide
 * leases"): claimed on the owner's cluster session after the host store
 * gave them, answered asynchronously, decided on here from advance().
 *
 * The callbacks of the session (claims answered; the owner's forwarded
 * state changes and conflicts) only write down what happened and kick the
 * fleet. fleet__claims_advance, run from advance(), takes every decision:
 * launch a guest whose claims are all held, pick another value for an
 * allocated one another host holds, fail a guest whose fixed value is
 * taken or whose key was taken while this host was cut off. */
#include "src/fleet/fleet_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fs.h"

int fleet_cluster_wide_parse(const char *list, unsigned *out, char *err, size_t errlen)
{
    static const struct { const char *name; unsigned bit; } kinds[] = {
        { "vnc", FLEET_CW_VNC }, { "migration", FLEET_CW_MIGRATION }, { "vlan", FLEET_CW_VLAN },
    };
    *out = 0;
    const char *p = list ? list : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
            if (n == strlen(kinds[i].name) && !strncmp(p, kinds[i].name, n))
                bit = kinds[i].bit;
        if (!bit) {
            snprintf(err, errlen, "'%.*s' is not a cluster-wide kind (vnc, migration, vlan)",
                     (int)n, p);
            return -EINVAL;
        }
        *out |= bit;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* ---- what the owner forwards: record and kick ---- */

void fleet_cluster_state(fleet_t *f, cluster_state s, const char *why)
{
    if (s != CLUSTER_LIVE && !f->cl_since_ms)
        f->cl_since_ms = time_wall_ms();
    else if (s == CLUSTER_LIVE)
        f->cl_since_ms = 0;
    f->cl_state = s;
    snprintf(f->cl_why, sizeof(f->cl_why), "%s", why ? why : "");
    f->cl_logged = 0;
    f->registry_dirty = 1;
    fleet__kick(f);
}

/* owner is what the guest claimed with (RUN/NAME) or a name below it. */
void fleet_cluster_conflict(fleet_t *f, const char *kind, const char *value, const char *owner,
                            const char *holder)
{
    for (size_t i = 0; i < f->n; i++) {
        fguest_t *g = f->g[i];
        size_t n = strlen(g->owner.name);
        if (!n || strncmp(owner, g->owner.name, n) || (owner[n] && owner[n] != '/'))
            continue;
        if (!g->conflict[0])
            snprintf(g->conflict, sizeof(g->conflict),
                     "%s: %s %s was taken cluster-wide by %s while this controller was cut off "
                     "from etcd", g->name, kind, value, holder);
        fleet__kick(f);
    }
}

/* ---- claims ---- */

static void on_claim(cluster_t *c, int result, void *data)
{
    struct fleet_claim *cl = data;
    fleet_t *f = cl->g->f;
    f->claims_pending--;
    cl->pending = 0;
    if (f->freeing) { /* the guest's keys went already: this one too */
        if (result == 0)
            cluster_release(c, cl->kind, cl->value, NULL, NULL);
        fleet__closed_one(f);
        return;
    }
    cl->answered = 1;
    cl->result = result;
    snprintf(cl->holder, sizeof(cl->holder), "%s", result < 0 ? cluster_error(c) : "");
    fleet__kick(f);
}

static void issue(struct fleet_claim *cl)
{
    fleet_t *f = cl->g->f;
    int rc = cluster_claim(f->o.cluster, cl->kind, cl->value, cl->g->owner.name, on_claim, cl);
    if (rc < 0) { /* said at once: decided on like an answer */
        cl->answered = 1;
        cl->result = rc;
        snprintf(cl->holder, sizeof(cl->holder), "%s", strerror(-rc));
        return;
    }
    cl->pending = 1;
    f->claims_pending++;
}

static void add(fguest_t *g, const char *kind, enum claim_what what, int idx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add(fguest_t *g, const char *kind, enum claim_what what, int idx, const char *fmt, ...)
{
    struct fleet_claim *cl = &g->cw[g->ncw++];
    *cl = (struct fleet_claim){ .g = g, .what = what, .idx = idx };
    snprintf(cl->kind, sizeof(cl->kind), "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->value, sizeof(cl->value), fmt, ap);
    va_end(ap);
}

int fleet__claims_start(fguest_t *g, char *err, size_t errlen)
{
    fleet_t *f = g->f;
    const struct cfg_vm_info *vi = g->vi;
    g->claiming = 0;
    if (!f->o.cluster)
        return 0;
    size_t max = (size_t)(g->nd.macs + vi->nnics + 2 * g->nd.vfs + 2 * vi->npt + 2);
    free(g->cw);
    g->ncw = 0;
    g->cw = calloc(max, sizeof(*g->cw));
    if (!g->cw)
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    unsigned cw = f->o.cluster_wide;
    /* A migration destination's fixed MACs are its source's, on another
     * host maybe: that host holds them cluster-wide. */
    for (int i = 0; i < vi->nnics && !vi->migrate; i++)
        if (vi->nics[i].mac)
            add(g, "mac", CLAIM_FIXED, 0, "%s", vi->nics[i].mac);
    for (int k = 0; k < g->nd.macs; k++)
        add(g, "mac", CLAIM_MAC, k, "%s", g->res.macs[k]);
    for (int k = 0; k < g->nd.vfs && !vi->migrate; k++)
        if (g->nd.vf_mac[k])
            add(g, "mac", CLAIM_FIXED, 0, "%s", g->nd.vf_mac[k]);
    for (int i = 0; i < vi->npt && !vi->migrate; i++)
        if (vi->pt[i].host && vi->pt[i].mac)
            add(g, "mac", CLAIM_FIXED, 0, "%s", vi->pt[i].mac);
    if ((cw & FLEET_CW_VNC) && g->nd.vnc)
        add(g, "vnc", CLAIM_VNC, 0, "%d", g->res.vnc);
    else if ((cw & FLEET_CW_VNC) && vi->vnc >= 0)
        add(g, "vnc", CLAIM_FIXED, 0, "%d", vi->vnc);
    if ((cw & FLEET_CW_MIGRATION) && g->nd.migrate_port)
        add(g, "migration", CLAIM_MIGPORT, 0, "%d", g->res.migrate_port);
    else if ((cw & FLEET_CW_MIGRATION) && vi->migrate_port)
        add(g, "migration", CLAIM_FIXED, 0, "%d", vi->migrate_port);
    for (int k = 0; (cw & FLEET_CW_VLAN) && k < g->nd.vfs; k++)
        if (g->nd.vf_vlan[k] > 0)
            add(g, "vlan", CLAIM_FIXED, 0, "%d", g->nd.vf_vlan[k]);
    for (int i = 0; (cw & FLEET_CW_VLAN) && i < vi->npt; i++)
        if (vi->pt[i].host && vi->pt[i].mac && vi->pt[i].vlan > 0)
            add(g, "vlan", CLAIM_FIXED, 0, "%d", vi->pt[i].vlan);
    for (int i = 0; i < g->ncw; i++)
        issue(&g->cw[i]);
    g->claiming = g->ncw > 0;
    return 0;
}

/* Another host holds cl's allocated value: give it back here and take
 * another from the host store. The value stays leased here under a name
 * below the guest's (OWNER/nic50N for a MAC, OWNER/cwN for a display) so
 * neither this guest nor another of this host picks it again; it goes
 * with the guest's leases. Ports are searched upwards. */
#define CLAIM_HOLD_NIC0 500 /* past leases.c's NIC numbers (0.., 100.., 200.., 300.., 400..) */

static int repick(struct fleet_claim *cl, char *err, size_t errlen)
{
    fguest_t *g = cl->g;
    alloc_store *st = g->f->store;
    char owner[ALLOC_OWNER_MAX + 16];
    if (cl->what == CLAIM_MAC) {
        unsigned mflags = g->vi->migrate ? ALLOC_SHARED : 0;
        snprintf(owner, sizeof(owner), "%s/nic%d", g->owner.name, cl->idx);
        alloc_release(st, owner, "mac", cl->value, NULL, 0);
        alloc_reserve_mac(st, &g->owner, CLAIM_HOLD_NIC0 + cl->tries, cl->value, mflags, NULL, 0);
        int rc = alloc_mac(st, &g->owner, cl->idx, g->vi->mac_prefix, mflags,
                           g->res.macs[cl->idx], err, errlen);
        snprintf(cl->value, sizeof(cl->value), "%s", g->res.macs[cl->idx]);
        return rc;
    }
    if (cl->what == CLAIM_VNC) {
        alloc_owner hold;
        snprintf(owner, sizeof(owner), "%s/cw%d", g->owner.name, cl->tries);
        alloc_release(st, g->owner.name, "vnc", cl->value, NULL, 0);
        if (alloc_owner_init(&hold, owner, getpid(), NULL, 0) == 0)
            alloc_take(st, &hold, "vnc", cl->value, 0, "taken on another host", NULL, 0);
        int rc = alloc_vnc(st, &g->owner, 0, &g->res.vnc, err, errlen);
        snprintf(cl->value, sizeof(cl->value), "%d", g->res.vnc);
        return rc;
    }
    alloc_release(st, g->owner.name, "port", cl->value, NULL, 0);
    int rc = alloc_port(st, &g->owner, g->res.migrate_port + 1, 39999, &g->res.migrate_port, err,
                        errlen);
    snprintf(cl->value, sizeof(cl->value), "%d", g->res.migrate_port);
    return rc;
}

/* One answer: 0 on to the next, 1 the guest failed. */
static int decide_one(struct fleet_claim *cl)
{
    fguest_t *g = cl->g;
    cl->answered = 0;
    if (cl->result == 0) {
        cl->held = 1;
        return 0;
    }
    int live = cluster_get_state(g->f->o.cluster) == CLUSTER_LIVE;
    if (cl->result == -EEXIST && cl->what == CLAIM_FIXED) {
        fleet__guest_fail(g, "%s: allocating: %s %s is held cluster-wide by %s", g->name,
                          cl->kind, cl->value, cl->holder);
        return 1;
    }
    if ((cl->result == -EEXIST || live) && ++cl->tries > FLEET_CLAIM_TRIES) {
        fleet__guest_fail(g, "%s: allocating: no %s could be claimed cluster-wide in %d tries; "
                          "the last, %s, %s: %s", g->name, cl->kind, FLEET_CLAIM_TRIES,
                          cl->value, cl->result == -EEXIST ? "is held by" : "failed",
                          cl->holder);
        return 1;
    }
    char err[512];
    if (cl->result == -EEXIST && repick(cl, err, sizeof(err)) < 0) {
        fleet__guest_fail(g, "%s: allocating: another %s after %s was taken on another host: %s",
                          g->name, cl->kind, cl->value, err);
        return 1;
    }
    if (cl->result == -EEXIST || live)
        issue(cl);
    else /* cut off: asked again once the session is live (its kick) */
        cl->answered = 1;
    return 0;
}

static void decide(fguest_t *g)
{
    for (int i = 0; i < g->ncw; i++)
        if (g->cw[i].pending)
            return; /* one decision on all the answers */
    int live = cluster_get_state(g->f->o.cluster) == CLUSTER_LIVE;
    for (int i = 0; i < g->ncw; i++)
        if (g->cw[i].answered && (live || g->cw[i].result != -ENOTCONN) && decide_one(&g->cw[i]))
            return;
    for (int i = 0; i < g->ncw; i++)
        if (!g->cw[i].held)
            return;
    g->claiming = 0;
    fleet__guest_launch(g);
}

static void log_state(fleet_t *f)
{
    json_t *ev = json_object();
    json_set_int(ev, "ts_ms", time_wall_ms());
    json_set_str(ev, "run", f->run_id);
    json_set_str(ev, "event", "cluster");
    json_set_str(ev, "state", cluster_state_name(f->cl_state));
    json_set_str(ev, "host", cluster_host(f->o.cluster));
    json_set_str(ev, "why", f->cl_why);
    fleet__event_write(f, ev);
    f->cl_logged = 1;
}

/* Publish g as it is now, or drop its entry (down, or drop set). */
static void publish(fguest_t *g, int drop)
{
    fleet_t *f = g->f;
    char key[sizeof(f->run_id) + sizeof(g->name) + 2];
    snprintf(key, sizeof(key), "%s.%s", f->run_id, g->name);
    g->pub_dirty = 0;
    if (drop || g->state == GS_STOPPED || g->state == GS_FAILED || g->state == GS_QUEUED) {
        if (g->published && cluster_publish(f->o.cluster, key, NULL) == 0)
            g->published = 0;
        return;
    }
    json_t *v = fguest_json(g);
    json_set_str(v, "run", f->run_id);
    if (cluster_publish(f->o.cluster, key, v) == 0)
        g->published = 1;
    else
        g->pub_dirty = 1; /* tried again on the next change */
    json_free(v);
}

void fleet__claims_advance(fleet_t *f)
{
    if (!f->o.cluster)
        return;
    if (!f->cl_logged)
        log_state(f);
    for (size_t i = 0; i < f->n && !f->freeing; i++) {
        fguest_t *g = f->g[i];
        int down = g->state == GS_STOPPED || g->state == GS_FAILED;
        if (g->conflict[0] && !down && g->state != GS_QUEUED) {
            fleet__guest_fail(g, "%s", g->conflict);
            down = 1;
        }
        for (int k = 0; down && k < g->ncw; k++)
            if (g->cw[k].answered && g->cw[k].result == 0) { /* came after the release */
                cluster_release(f->o.cluster, g->cw[k].kind, g->cw[k].value, NULL, NULL);
                g->cw[k].answered = 0;
            }
        if (g->state == GS_ALLOCATING && g->claiming)
            decide(g);
        if (g->pub_dirty)
            publish(g, 0);
    }
}

static void waiting_reason(fleet_t *f, cluster_state s, char *out, size_t len)
{
    cluster_stats st;
    cluster_get_stats(f->o.cluster, &st);
    char since[16], until[16];
    time_wall_text(f->cl_since_ms ? f->cl_since_ms : time_wall_ms(), "%H:%M:%S", since,
                   sizeof(since));
    time_wall_text(st.proven_until_ms, "%H:%M:%S", until, sizeof(until));
    if (s == CLUSTER_LOST)
        snprintf(out, len, "waiting: etcd unreachable since %s, lease TTL %d s passed: %s", since,
                 st.ttl_s, f->cl_why);
    else if (s == CLUSTER_UNPROVEN)
        snprintf(out, len, "waiting: etcd unreachable since %s, lease proven until %s: %s", since,
                 until, f->cl_why);
    else
        snprintf(out, len, "waiting: cluster session %s: %s", cluster_state_name(s), f->cl_why);
}

int fleet__cluster_gate(fleet_t *f)
{
    if (!f->o.cluster)
        return 1;
    cluster_state s = cluster_get_state(f->o.cluster); /* the present, not the last told */
    char why[FLEET_REASON_MAX];
    int live = s == CLUSTER_LIVE;
    if (!live)
        waiting_reason(f, s, why, sizeof(why));
    for (size_t i = 0; i < f->n; i++) {
        fguest_t *g = f->g[i];
        if (g->state != GS_QUEUED)
            continue;
        if (live && !strncmp(g->reason, "waiting: ", 9))
            g->reason[0] = 0;
        else if (!live && strcmp(g->reason, why))
            snprintf(g->reason, sizeof(g->reason), "%s", why);
        else
            continue;
        f->registry_dirty = 1;
    }
    return live;
}

void fleet__claims_release(fguest_t *g)
{
    fleet_t *f = g->f;
    if (!f->o.cluster)
        return;
    int held = 0;
    for (int i = 0; i < g->ncw; i++) { /* held, asked, or granted but not decided on yet */
        struct fleet_claim *cl = &g->cw[i];
        held |= cl->held || cl->pending || (cl->answered && cl->result == 0);
        if (cl->answered && cl->result == 0)
            cl->answered = 0;
        cl->held = 0;
    }
    g->claiming = 0;
    /* Also with nothing claimed here: a migration may have handed it keys. */
    if (cluster_release_owner(f->o.cluster, g->owner.name, NULL, NULL) < 0 && held)
        fprintf(stderr, "qfleet: %s: releasing cluster keys: %s\n", g->name,
                cluster_error(f->o.cluster));
    publish(g, 1); /* its leases go: it is going down */
}

json_t *fleet__cluster_json(const fleet_t *f)
{
    if (!f->o.cluster)
        return json_null();
    json_t *o = json_object();
    json_set_str(o, "host", cluster_host(f->o.cluster));
    json_set_str(o, "state", cluster_state_name(cluster_get_state(f->o.cluster)));
    json_set_str(o, "why", f->cl_why);
    json_set(o, "since_ms", f->cl_since_ms ? json_int(f->cl_since_ms) : json_null());
    return o;
}

void fleet__claims_free(fguest_t *g)
{
    free(g->cw);
    g->cw = NULL;
    g->ncw = 0;
}
