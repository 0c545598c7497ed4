/* status.c - the publisher (status.h, docs/status.md): status.json,
 * events.jsonl and the terminal view of a run; it calls the renderers of
 * junit.c and metrics.c, never the other way. */
#include "src/status/status_int.h"
#include "base/time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "src/fleet/fleet.h"
#include "base/fs.h"

#define REDRAW_MS 250
#define CLUSTER_REFRESH_MS 5000 /* metrics.prom's cluster figures, at least this often */

/* ---- status.json ------------------------------------------------------------ */

static json_t *int_or_null(long long v, int present) { return present ? json_int(v) : json_null(); }

static json_t *guest_json(const st_suite *s, const st_guest *g)
{
    json_t *o = json_object();
    const json_t *sn = g->snap;
    json_set_str(o, "name", g->name);
    json_set(o, "instance", g->instance[0] ? json_string(g->instance) : json_null());
    json_set_int(o, "boots", g->boots);
    json_set_str(o, "state", sn ? json_get_str(sn, "state") : "pending");
    static const char *const copy[] = { "reason", "pid", "vnc", "ssh_port", "ip", "started_ms", NULL };
    for (int i = 0; copy[i]; i++) {
        const json_t *v = json_get(sn, copy[i]);
        json_set(o, copy[i], v ? json_copy(v) : json_null());
    }
    const json_t *macs = json_get(sn, "macs");
    json_set(o, "mac", json_len(macs) ? json_copy(json_at(macs, 0)) : json_null());
    json_set(o, "macs", macs ? json_copy(macs) : json_array());
    const json_t *pci = json_get(sn, "pci");
    json_set(o, "pci", pci ? json_copy(pci) : json_array());
    const char *serial = json_get_str(sn, "serial");
    char path[PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/%s", s->run_dir, serial ? serial : "");
    json_set(o, "serial", serial ? json_string(path) : json_null());
    const json_t *t = json_get(sn, "timings_ms");
    json_set(o, "timings_ms", t ? json_copy(t) : json_object());
    return o;
}

static json_t *case_json(const st_case *c)
{
    json_t *o = json_object();
    json_set_str(o, "name", c->name);
    json_set_str(o, "result", st_result_name(c->result));
    json_set_int(o, "attempts", c->attempts);
    json_set(o, "started_ms", int_or_null(c->started_ms, c->started_ms > 0));
    json_set(o, "finished_ms", int_or_null(c->finished_ms, c->finished_ms > 0));
    json_set(o, "elapsed_ms", int_or_null(c->finished_ms - c->started_ms,
                                          c->finished_ms > 0 && c->started_ms > 0));
    json_set(o, "message", json_string(c->message));
    json_t *steps = json_array();
    for (int i = 0; i < c->nsteps; i++) {
        const st_step *st = &c->steps[i];
        json_t *so = json_object();
        json_set_int(so, "line", st->line);
        json_set_str(so, "source", st->source);
        json_set_str(so, "result", st_result_name(st->result));
        json_set_int(so, "elapsed_ms", (long long)st->elapsed_ms);
        json_set(so, "message", json_string(st->message));
        json_append(steps, so);
    }
    json_set(o, "steps", steps);
    return o;
}

static json_t *suite_json(const st_suite *s)
{
    json_t *o = json_object();
    json_set_str(o, "name", s->name);
    json_set_str(o, "file", s->file);
    json_set(o, "run_dir", s->run_dir[0] ? json_string(s->run_dir) : json_null());
    json_set_str(o, "setup", st_setup_name(s));
    json_set_str(o, "state", st_suite_state_name(s->state));
    json_set_str(o, "result", st_result_name(s->result));
    json_set(o, "reason", json_string(s->reason));
    json_set(o, "started_ms", int_or_null(s->started_ms, s->started_ms > 0));
    json_set(o, "finished_ms", int_or_null(s->finished_ms, s->finished_ms > 0));
    long long end = s->finished_ms > 0 ? s->finished_ms : time_wall_ms();
    json_set(o, "elapsed_ms", int_or_null(end - s->started_ms, s->started_ms > 0));
    json_set(o, "current_case", s->current >= 0 ? json_string(s->cases[s->current].name) : json_null());
    json_set_int(o, "retries_used", s->retries_used);
    json_t *cs = json_array();
    for (int i = 0; i < s->ncases; i++)
        json_append(cs, case_json(&s->cases[i]));
    json_set(o, "cases", cs);
    json_t *gs = json_array();
    for (int i = 0; i < s->nguests; i++)
        json_append(gs, guest_json(s, &s->guests[i]));
    json_set(o, "guests", gs);
    return o;
}

json_t *status_json(const st_run *r)
{
    json_t *o = json_object();
    json_set_int(o, "version", STATUS_VERSION);
    json_t *run = json_object();
    json_set_str(run, "id", r->id);
    json_set_str(run, "run_dir", r->run_dir);
    json_set_str(run, "status_dir", r->status_dir);
    json_set_str(run, "junit", r->junit_path);
    json_set_str(run, "state", st_run_state_name(r->state));
    long long now = time_wall_ms();
    json_set_int(run, "started_ms", r->started_ms);
    json_set_int(run, "updated_ms", now);
    json_set(run, "finished_ms", int_or_null(r->finished_ms, r->finished_ms > 0));
    json_set_int(run, "elapsed_ms", (r->finished_ms > 0 ? r->finished_ms : now) - r->started_ms);
    json_set(run, "exit_code", int_or_null(r->exit_code, r->exit_code >= 0));
    json_t *lim = json_object();
    json_set(lim, "jobs", int_or_null(r->jobs, r->jobs > 0));
    json_set(lim, "mem_budget_mb", int_or_null(r->mem_budget_mb, r->mem_budget_mb > 0));
    json_set_int(lim, "retries", r->retries);
    char shard[32];
    snprintf(shard, sizeof(shard), "%d/%d", r->shard_k, r->shard_n);
    json_set(lim, "shard", r->shard_n > 0 ? json_string(shard) : json_null());
    json_set(run, "limits", lim);
    json_t *use = json_object();
    json_set_int(use, "guests", r->guests_in_use);
    json_set_int(use, "mem_mb", r->mem_in_use_mb);
    json_set(run, "in_use", use);
    json_t *cl = r->cluster ? json_object() : json_null();
    if (r->cluster) {
        json_set_str(cl, "endpoint", r->cluster_store);
        json_set_str(cl, "host_id", r->cl_host);
        json_set_str(cl, "state", cluster_state_name(r->cl_stats.state));
    }
    json_set(run, "cluster", cl);
    json_set(o, "run", run);

    json_t *counts = json_object(), *sc = json_object(), *cc = json_object(), *gc = json_object();
    int ns[SS_COUNT] = { 0 }, nc[RES_COUNT], ng[GS_COUNT + 1] = { 0 };
    status_case_counts(r, nc);
    int total_cases = 0;
    for (int i = 0; i < r->nsuites; i++) {
        const st_suite *s = r->suites[i];
        if (s->state < SS_COUNT)
            ns[s->state]++;
        total_cases += s->ncases;
        for (int g = 0; g < s->nguests; g++) {
            const char *st = json_get_str(s->guests[g].snap, "state");
            int idx = GS_COUNT; /* pending: no instance yet */
            for (int k = 0; st && k < GS_COUNT; k++)
                if (!strcmp(st, fleet_state_name(k)))
                    idx = k;
            ng[idx]++;
        }
    }
    json_set_int(sc, "total", r->nsuites);
    for (int k = 0; k < SS_COUNT; k++)
        json_set_int(sc, st_suite_state_name(k), ns[k]);
    json_set_int(cc, "total", total_cases);
    for (int k = 0; k < RES_COUNT; k++)
        json_set_int(cc, st_result_name(k), nc[k]);
    json_set_int(gc, "pending", ng[GS_COUNT]);
    for (int k = 0; k < GS_COUNT; k++)
        json_set_int(gc, fleet_state_name(k), ng[k]);
    json_set(counts, "suites", sc);
    json_set(counts, "cases", cc);
    json_set(counts, "guests", gc);
    json_set(o, "counts", counts);

    json_t *suites = json_array();
    for (int i = 0; i < r->nsuites; i++)
        json_append(suites, suite_json(r->suites[i]));
    json_set(o, "suites", suites);
    return o;
}

/* ---- events ------------------------------------------------------------------- */

/* A guest got to ready: its snapshot (the caller updated it before the
 * event) has the time each phase took. */
static void ready_phases(st_run *m, const char *suite, const char *guest)
{
    for (int i = 0; suite && guest && i < m->nsuites; i++) {
        const st_suite *s = m->suites[i];
        for (int g = 0; s->name && !strcmp(s->name, suite) && g < s->nguests; g++)
            if (s->guests[g].name && !strcmp(s->guests[g].name, guest) && s->guests[g].snap)
                status_boot_phases(m, json_get(s->guests[g].snap, "timings_ms"));
    }
}

void status_event(status_t *r, const char *kind, json_t *ev)
{
    json_t *o = json_object();
    json_set_int(o, "ts_ms", time_wall_ms());
    json_set_str(o, "run", r->m->id);
    json_set_str(o, "kind", kind);
    for (size_t i = 0; i < json_len(ev); i++)
        json_set(o, json_key_at(ev, i), json_copy(json_at(ev, i)));
    json_free(ev);
    if (!strcmp(kind, "guest") && !strcmp(json_get_str(o, "state") ? json_get_str(o, "state") : "", "ready"))
        ready_phases(r->m, json_get_str(o, "suite"), json_get_str(o, "guest"));
    size_t n;
    char *line = json_dump(o, &n);
    json_free(o);
    if (line && r->evfd >= 0 && fs_append_line(r->evfd, line, n) < 0)
        fprintf(stderr, "qfleet: events.jsonl: %s\n", strerror(errno));
    free(line);
}

/* ---- the terminal ----------------------------------------------------------------- */

static void fmt_elapsed(char *out, size_t len, long long ms)
{
    if (ms < 0)
        snprintf(out, len, "-");
    else if (ms < 60000)
        snprintf(out, len, "%.1fs", ms / 1000.0);
    else
        snprintf(out, len, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
}

/* "2 ready, 1 launching" */
static void guest_summary(const st_suite *s, char *out, size_t len)
{
    int n[GS_COUNT + 1] = { 0 };
    for (int g = 0; g < s->nguests; g++) {
        const char *st = json_get_str(s->guests[g].snap, "state");
        int idx = GS_COUNT;
        for (int k = 0; st && k < GS_COUNT; k++)
            if (!strcmp(st, fleet_state_name(k)))
                idx = k;
        n[idx]++;
    }
    size_t off = 0;
    out[0] = '\0';
    for (int k = GS_COUNT; k >= 0 && off < len; k--)
        if (n[k])
            off += (size_t)snprintf(out + off, len - off, "%s%d %s", off ? ", " : "", n[k],
                                    k == GS_COUNT ? "pending" : fleet_state_name(k));
}

static void add_line(char **buf, size_t *len, size_t *cap, int width, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_line(char **buf, size_t *len, size_t *cap, int width, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Never wrap: the cursor arithmetic of the redraw counts lines. */
    if (width > 1 && (int)strlen(line) >= width)
        line[width - 1] = '\0';
    size_t n = strlen(line);
    if (*len + n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < *len + n + 2)
            nc *= 2;
        char *p = realloc(*buf, nc);
        if (!p)
            return;
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, line, n);
    (*buf)[*len + n] = '\n';
    *len += n + 1;
    (*buf)[*len] = '\0';
}

char *status_table(const st_run *r, int width)
{
    char *buf = NULL, el[32];
    size_t len = 0, cap = 0;
    int nc[RES_COUNT], total = 0;
    status_case_counts(r, nc);
    for (int i = 0; i < r->nsuites; i++)
        total += r->suites[i]->ncases;
    fmt_elapsed(el, sizeof(el), (r->finished_ms > 0 ? r->finished_ms : time_wall_ms()) - r->started_ms);
    char jobs[32] = "-";
    if (r->jobs > 0)
        snprintf(jobs, sizeof(jobs), "%d", r->jobs);
    add_line(&buf, &len, &cap, width, "qfleet run %s  %s  guests %d/%s  cases %d/%d  passed %d "
             "failed %d error %d skipped %d", r->id, el, r->guests_in_use, jobs,
             nc[RES_PASSED] + nc[RES_FAILED] + nc[RES_ERROR] + nc[RES_SKIPPED], total,
             nc[RES_PASSED], nc[RES_FAILED], nc[RES_ERROR], nc[RES_SKIPPED]);
    add_line(&buf, &len, &cap, width, "%-20s %-9s %-7s %-8s %-9s %-22s %s", "SUITE", "STATE", "CASES",
             "P/F/E/S", "ELAPSED", "CASE", "GUESTS");
    for (int i = 0; i < r->nsuites; i++) {
        const st_suite *s = r->suites[i];
        int n[RES_COUNT] = { 0 };
        for (int k = 0; k < s->ncases; k++)
            n[s->cases[k].result]++;
        char cases[16], pfes[32], gs[256];
        snprintf(cases, sizeof(cases), "%d/%d", n[RES_PASSED] + n[RES_FAILED] + n[RES_ERROR] +
                 n[RES_SKIPPED], s->ncases);
        snprintf(pfes, sizeof(pfes), "%d/%d/%d/%d", n[RES_PASSED], n[RES_FAILED], n[RES_ERROR],
                 n[RES_SKIPPED]);
        fmt_elapsed(el, sizeof(el), s->started_ms > 0 ? (s->finished_ms > 0 ? s->finished_ms : time_wall_ms())
                                    - s->started_ms : -1);
        guest_summary(s, gs, sizeof(gs));
        const char *state = s->state == SS_DONE ? st_result_name(s->result) : st_suite_state_name(s->state);
        add_line(&buf, &len, &cap, width, "%-20s %-9s %-7s %-8s %-9s %-22s %s", s->name, state, cases,
                 pfes, el, s->current >= 0 ? s->cases[s->current].name : "-",
                 s->state == SS_WAITING && s->reason ? s->reason : gs[0] ? gs : "-");
    }
    return buf;
}

static int term_width(void)
{
    struct winsize ws;
    return ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col : 100;
}

static void erase_table(status_t *r)
{
    if (r->drawn_lines > 0)
        fprintf(stderr, "\033[%dA\033[J", r->drawn_lines);
    r->drawn_lines = 0;
}

static void draw_table(status_t *r)
{
    r->last_draw_ms = time_mono_ms();
    char *t = status_table(r->m, term_width());
    erase_table(r);
    if (t) {
        fputs(t, stderr);
        for (const char *p = t; *p; p++)
            r->drawn_lines += *p == '\n';
    }
    fflush(stderr);
    free(t);
}

/* The live table, and with a cluster its figures (keepalive round trips,
 * keys held) rewritten every CLUSTER_REFRESH_MS though nothing else moved. */
static void on_redraw(uv_timer_t *t)
{
    status_t *r = t->data;
    if (r->tty)
        draw_table(r);
    double now = time_mono_ms();
    if (r->m->cluster && now - r->cl_refresh_ms >= CLUSTER_REFRESH_MS) {
        r->cl_refresh_ms = now;
        r->dirty = 1; /* the flush handle writes it before the loop waits */
    }
}

void status_say(status_t *r, const char *fmt, ...)
{
    if (r->quiet)
        return;
    if (r->tty)
        erase_table(r);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* The redraw timer puts the table back if it was drawn just now. */
    if (r->tty && time_mono_ms() - r->last_draw_ms >= REDRAW_MS)
        draw_table(r);
    fflush(stderr);
}

/* ---- writing -------------------------------------------------------------------- */

static void write_file(const status_t *r, const char *name, char *text)
{
    char path[PATH_MAX + 32], err[512];
    snprintf(path, sizeof(path), "%s/%s", r->m->status_dir, name);
    if (!text || fs_write_atomic(path, text, strlen(text), 0644, err, sizeof(err)) < 0)
        fprintf(stderr, "qfleet: %s: %s\n", path, text ? err : "out of memory");
    free(text);
}

/* node_exporter's textfile collector reads the files named *.prom in its
 * directory: the temp file of fs_write_atomic (NAME.tmp.PID, same dir) is
 * never read half written. */
static void write_textfile(const char *dir, const char *text)
{
    char path[PATH_MAX + 32], err[512];
    snprintf(path, sizeof(path), "%s/qfleet.prom", dir);
    if (fs_write_atomic(path, text, strlen(text), 0644, err, sizeof(err)) < 0)
        fprintf(stderr, "qfleet: --metrics-textfile: %s\n", err);
}

static void flush_now(status_t *r)
{
    if (r->m->refresh && r->m->refresh(r->m, r->m->refresh_data))
        r->dirty = 1;
    if (r->dirty) {
        r->dirty = 0;
        if (r->m->cluster) { /* the session's figures as of this rewrite */
            cluster_get_stats(r->m->cluster, &r->m->cl_stats);
            snprintf(r->m->cl_host, sizeof(r->m->cl_host), "%s", cluster_host(r->m->cluster));
        }
        json_t *doc = status_json(r->m);
        write_file(r, "status.json", json_dump_pretty(doc, NULL));
        json_free(doc);
        char *m = metrics_render(r->m);
        if (m && r->m->metrics_textfile[0])
            write_textfile(r->m->metrics_textfile, m);
        write_file(r, "metrics.prom", m);
    }
    if (r->junit_dirty) {
        r->junit_dirty = 0;
        char err[512];
        if (junit_write(r->m, r->m->junit_path, err, sizeof(err)) < 0)
            fprintf(stderr, "qfleet: %s\n", err);
    }
}

static void on_flush(uv_prepare_t *h) { flush_now(h->data); }

void status_changed(status_t *r, int junit)
{
    r->dirty = 1;
    if (junit)
        r->junit_dirty = 1;
}

void status_flush(status_t *r)
{
    r->dirty = r->junit_dirty = 1;
    flush_now(r);
    if (r->tty && !r->quiet)
        draw_table(r);
}

int status_open(st_run *m, uv_loop_t *loop, int tty, int quiet, status_t **out, char *err,
                size_t errlen)
{
    char path[PATH_MAX + 32];
    int rc = fs_mkdir_p(m->status_dir, 0755, 0);
    if (rc < 0) {
        snprintf(err, errlen, "status dir %s: %s", m->status_dir, strerror(-rc));
        return rc;
    }
    status_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/events.jsonl", m->status_dir);
    r->evfd = fs_open_in(path, O_WRONLY | O_CREAT | O_APPEND, 0644, err, errlen);
    if (r->evfd < 0) {
        rc = r->evfd;
        free(r);
        return rc;
    }
    r->m = m;
    r->loop = loop;
    r->tty = tty && !quiet;
    r->quiet = quiet;
    /* A prepare handle runs each time the loop is about to wait for I/O:
     * every change is on disk before the loop sleeps, and the changes made
     * since it last slept land in one rewrite. Unref'd: it never keeps the
     * loop alive. */
    uv_prepare_init(loop, &r->flush);
    r->flush.data = r;
    uv_prepare_start(&r->flush, on_flush);
    uv_unref((uv_handle_t *)&r->flush);
    uv_timer_init(loop, &r->redraw);
    r->redraw.data = r;
    uint64_t every = r->tty ? REDRAW_MS : CLUSTER_REFRESH_MS;
    uv_timer_start(&r->redraw, on_redraw, every, every);
    uv_unref((uv_handle_t *)&r->redraw);
    r->handles_open = 2;
    r->dirty = 1;
    *out = r;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    status_t *r = h->data;
    if (--r->handles_open > 0)
        return;
    close(r->evfd);
    if (r->close_cb)
        r->close_cb(r, r->close_data);
    free(r);
}

void status_close(status_t *r, status_close_cb cb, void *data)
{
    r->close_cb = cb;
    r->close_data = data;
    uv_close((uv_handle_t *)&r->flush, on_closed);
    uv_close((uv_handle_t *)&r->redraw, on_closed);
}
