/* report.c - report.html: one self-contained page (no script, no network)
 * of a run, made from what its status dir holds (docs/status.md), so it
 * works for a finished run as well as at the end of `qfleet run`:
 *
 *   status.json   suites, cases, steps, guests
 *   events.jsonl  the timeline: each guest instance's phases and each
 *                 suite's waiting/booting/running/stopping, drawn as SVG
 *   junit.xml     each case's log (system-out) and failure report
 *
 * Everything that came from outside (names, messages, logs: guest output)
 * is HTML-escaped, and bytes that are not valid UTF-8 become '?'. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/fleet/fleet.h"
#include "src/status/status_int.h"
#include "base/fs.h"
#include "base/str.h"

#define REPORT_MAX_INPUT (256u << 20)
#define TL_WIDTH 1100   /* SVG user units; the picture scales with the page */
#define TL_LABEL 190
#define TL_ROW 18

/* ---- text ---- */

static size_t utf8_ok(const unsigned char *p, size_t n)
{
    size_t len = *p >= 0xf0 && *p < 0xf5 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 && *p < 0xe0 ? 2 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* s as HTML text or attribute value. */
static void esc(struct sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        size_t run = 0;
        while (p[run] >= 0x20 && p[run] < 0x7f && !strchr("&<>\"'", p[run]))
            run++;
        sb_addn(b, (const char *)p, run);
        p += run;
        if (!*p)
            break;
        size_t u = *p >= 0x80 ? utf8_ok(p, 4) : 0; /* a NUL is never a continuation byte */
        if (u) {
            sb_addn(b, (const char *)p, u);
            p += u;
            continue;
        }
        switch (*p) {
        case '&': sb_add(b, "&amp;"); break;
        case '<': sb_add(b, "&lt;"); break;
        case '>': sb_add(b, "&gt;"); break;
        case '"': sb_add(b, "&quot;"); break;
        case '\'': sb_add(b, "&#39;"); break;
        case '\n': case '\t': sb_addc(b, (char)*p); break;
        case '\r': break;
        default: sb_addc(b, '?');
        }
        p++;
    }
}

static void fmt_secs(char *out, size_t len, long long ms)
{
    if (ms < 0)
        snprintf(out, len, "-");
    else if (ms < 60000)
        snprintf(out, len, "%.1fs", ms / 1000.0);
    else
        snprintf(out, len, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
}

/* XML text of our own junit.xml back to plain text (junit.c escapes only
 * these). The caller frees. */
static char *xml_unescape(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    size_t w = 0;
    for (size_t i = 0; o && i < n; i++) {
        static const struct { const char *e; char c; } ents[] = {
            { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
            { "&apos;", '\'' }, { "&#10;", '\n' }, { "&#9;", '\t' }, { "&#13;", '\r' },
        };
        size_t k = 0;
        while (s[i] == '&' && k < sizeof(ents) / sizeof(ents[0]) &&
               strncmp(s + i, ents[k].e, strlen(ents[k].e)))
            k++;
        if (s[i] == '&' && k < sizeof(ents) / sizeof(ents[0])) {
            o[w++] = ents[k].c;
            i += strlen(ents[k].e) - 1;
        } else {
            o[w++] = s[i];
        }
    }
    if (o)
        o[w] = '\0';
    return o;
}

/* The text of <tag ...>TEXT</tag> inside one <testcase> of junit, or NULL. */
static char *junit_part(const char *junit, const char *suite, const char *cas, const char *tag)
{
    struct sbuf key = { 0 };
    sb_add(&key, "<testcase name=\"");
    /* junit.c writes name then classname; both attribute-escaped. */
    for (const char *p = cas; *p; p++)
        *p == '&' ? sb_add(&key, "&amp;") : *p == '<' ? sb_add(&key, "&lt;") : *p == '>' ? sb_add(&key, "&gt;")
        : *p == '"' ? sb_add(&key, "&quot;") : *p == '\'' ? sb_add(&key, "&apos;") : sb_addc(&key, *p);
    sb_add(&key, "\" classname=\"");
    for (const char *p = suite; *p; p++)
        *p == '&' ? sb_add(&key, "&amp;") : *p == '<' ? sb_add(&key, "&lt;") : *p == '>' ? sb_add(&key, "&gt;")
        : *p == '"' ? sb_add(&key, "&quot;") : *p == '\'' ? sb_add(&key, "&apos;") : sb_addc(&key, *p);
    sb_addc(&key, '"');
    char *k = sb_take(&key);
    const char *tc = k && junit ? strstr(junit, k) : NULL;
    free(k);
    const char *end = tc ? strstr(tc, "</testcase>") : NULL;
    char open[32], close[32];
    snprintf(open, sizeof(open), "<%s", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = tc ? strstr(tc, open) : NULL;
    if (!a || a > end || !(a = strchr(a, '>')) || a[-1] == '/')
        return NULL;
    a++;
    const char *z = strstr(a, close);
    return z && z < end ? xml_unescape(a, (size_t)(z - a)) : NULL;
}

/* ---- the timeline ---- */

/* One bar: a guest instance in a phase, or a suite in a state. */
struct seg {
    long long from, to;
    char state[24];           /* a fleet or suite state name */
};

struct row {
    char label[160];
    int suite_row;            /* a suite, not a guest instance */
    struct seg *segs;
    int nsegs, cap;
    int open;                 /* the last segment has no end yet */
};

struct timeline {
    struct row *rows;
    int nrows, cap;
    long long t0, t1;
};

static struct row *row_get(struct timeline *t, const char *label, int suite_row)
{
    for (int i = 0; i < t->nrows; i++)
        if (t->rows[i].suite_row == suite_row && !strcmp(t->rows[i].label, label))
            return &t->rows[i];
    if (t->nrows == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        struct row *r = realloc(t->rows, sizeof(*r) * (size_t)cap);
        if (!r)
            return NULL;
        t->rows = r;
        t->cap = cap;
    }
    struct row *r = &t->rows[t->nrows++];
    memset(r, 0, sizeof(*r));
    snprintf(r->label, sizeof(r->label), "%s", label);
    r->suite_row = suite_row;
    return r;
}

/* A state change at ts: end the open bar, start one unless the row ended. */
static void row_change(struct row *r, long long ts, const char *state, int ends)
{
    if (r->open)
        r->segs[r->nsegs - 1].to = ts;
    r->open = 0;
    if (ends)
        return;
    if (r->nsegs == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        struct seg *ns = realloc(r->segs, sizeof(*ns) * (size_t)cap);
        if (!ns)
            return;
        r->segs = ns;
        r->cap = cap;
    }
    struct seg *s = &r->segs[r->nsegs++];
    *s = (struct seg){ .from = ts, .to = ts };
    snprintf(s->state, sizeof(s->state), "%s", state);
    r->open = 1;
}

static void timeline_event(struct timeline *t, const json_t *e)
{
    const char *kind = json_get_str(e, "kind"), *st = json_get_str(e, "state");
    const char *suite = json_get_str(e, "suite");
    long long ts = json_get_int(e, "ts_ms", 0);
    if (!kind || !st || ts <= 0)
        return;
    if (!t->t0 || ts < t->t0)
        t->t0 = ts;
    if (ts > t->t1)
        t->t1 = ts;
    char label[160];
    if (!strcmp(kind, "guest")) {
        const char *inst = json_get_str(e, "instance");
        snprintf(label, sizeof(label), "%s/%s", suite ? suite : "", inst ? inst : "?");
        struct row *r = row_get(t, label, 0);
        int g = fleet_state_from_name(st);
        if (r)
            row_change(r, ts, st, g == GS_STOPPED || g == GS_FAILED);
    } else if (!strcmp(kind, "suite") && suite) {
        struct row *r = row_get(t, suite, 1);
        if (r)
            row_change(r, ts, st, !strcmp(st, "done"));
    }
}

/* The picture: one row per suite and per guest instance (suites first, in
 * the order they appeared), a bar per phase, a <title> on each bar. */
static void timeline_svg(struct sbuf *b, struct timeline *t, long long end)
{
    if (end > t->t1)
        t->t1 = end;
    double span = t->t1 > t->t0 ? (double)(t->t1 - t->t0) : 1;
    double w = TL_WIDTH - TL_LABEL - 10;
    int h = (t->nrows + 1) * TL_ROW + 24;
    sb_printf(b, "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                 "width=\"100%%\" role=\"img\" aria-label=\"timeline of guest phases\">\n", TL_WIDTH, h);
    /* ticks at round seconds, at most about ten of them */
    static const double steps[] = { 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200 };
    double step = steps[0];
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]) && span / 1000 / step > 10; k++)
        step = steps[k];
    for (double s = 0; s * 1000 <= span; s += step) {
        double x = TL_LABEL + w * s * 1000 / span;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"0\" x2=\"%.1f\" y2=\"%d\" class=\"tick\"/>"
                     "<text x=\"%.1f\" y=\"%d\" class=\"axis\">%.0fs</text>\n",
                  x, x, h - 16, x, h - 4, s);
    }
    int y = 4;
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < t->nrows; i++) {
            struct row *r = &t->rows[i];
            if (r->suite_row != pass)
                continue;
            sb_printf(b, "<g class=\"row%s\" data-row=\"", pass ? " suite" : " guest");
            esc(b, r->label);
            sb_printf(b, "\"><text x=\"%d\" y=\"%d\" class=\"label\">", TL_LABEL - 6, y + 12);
            esc(b, r->label);
            sb_add(b, "</text>\n");
            for (int k = 0; k < r->nsegs; k++) {
                struct seg *s = &r->segs[k];
                long long to = k == r->nsegs - 1 && r->open ? t->t1 : s->to;
                double x0 = TL_LABEL + w * (double)(s->from - t->t0) / span;
                double x1 = TL_LABEL + w * (double)(to - t->t0) / span;
                char d[32];
                fmt_secs(d, sizeof(d), to - s->from);
                sb_printf(b, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" class=\"ph ph-",
                          x0, y, x1 - x0 < 0.5 ? 0.5 : x1 - x0, TL_ROW - 4);
                esc(b, s->state);
                sb_add(b, "\" data-phase=\"");
                esc(b, s->state);
                sb_add(b, "\"><title>");
                esc(b, r->label);
                sb_add(b, ": ");
                esc(b, s->state);
                sb_printf(b, " %s (from +%.1fs)</title></rect>\n", d, (s->from - t->t0) / 1000.0);
            }
            sb_add(b, "</g>\n");
            y += TL_ROW;
        }
    sb_add(b, "</svg>\n");
}

static void timeline_free(struct timeline *t)
{
    for (int i = 0; i < t->nrows; i++)
        free(t->rows[i].segs);
    free(t->rows);
}

/* ---- the page ---- */

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:3px 8px;"
    "text-align:left;vertical-align:top}th{background:#f4f4f4}"
    ".passed{color:#1a7f37}.failed{color:#cf222e;font-weight:bold}.error{color:#bc4c00;"
    "font-weight:bold}.skipped,.pending,.running{color:#777}"
    "pre{background:#f6f8fa;padding:6px;max-height:30em;overflow:auto;white-space:pre-wrap;"
    "font-size:12px}details summary{cursor:pointer;color:#0969da}"
    ".msg{font-family:monospace;font-size:12px}.counts span{margin-right:1.2em}"
    "svg text{font-size:11px;font-family:monospace}svg .label{text-anchor:end}"
    "svg .axis{text-anchor:middle;fill:#666}svg .tick{stroke:#eee}"
    ".ph{stroke:#fff;stroke-width:.5}"
    ".ph-queued,.ph-waiting{fill:#d0d7de}.ph-allocating{fill:#8250df}.ph-launching{fill:#a475f9}"
    ".ph-qmp-connected{fill:#bf8700}.ph-running{fill:#d4a72c}.ph-agent-connected{fill:#54aeff}"
    ".ph-net-ready{fill:#218bff}.ph-pci-mapped{fill:#0969da}.ph-ssh-ready{fill:#0550ae}"
    ".ph-ready{fill:#2da44e}.ph-stopping{fill:#fa4549}.ph-booting{fill:#e6c7ff}"
    "g.suite .ph-running{fill:#2da44e}.legend span{display:inline-block;margin-right:1em}"
    ".legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}";

static void legend(struct sbuf *b)
{
    static const char *const names[] = { "waiting", "booting", "queued", "allocating", "launching",
                                         "qmp-connected", "running", "agent-connected",
                                         "net-ready", "pci-mapped", "ssh-ready", "ready",
                                         "stopping", NULL };
    static const char *const fills[] = { "#d0d7de", "#e6c7ff", "#d0d7de", "#8250df", "#a475f9", "#bf8700",
                                         "#d4a72c", "#54aeff", "#218bff", "#0969da", "#0550ae",
                                         "#2da44e", "#fa4549" };
    sb_add(b, "<p class=\"legend\">");
    for (int i = 0; names[i]; i++)
        sb_printf(b, "<span><i style=\"background:%s\"></i>%s</span>", fills[i], names[i]);
    sb_add(b, "<span><i style=\"background:#2da44e\"></i>cases running (suite rows)</span>");
    sb_add(b, "</p>\n<p>Suite rows: waiting (for --jobs slots or memory), booting, running its "
              "cases, stopping. Guest rows: each instance's phases from queued to ready, then "
              "stopping. Hover a bar for its phase and time.</p>\n");
}

static void folded(struct sbuf *b, const char *summary, const char *text)
{
    if (!text || !*text)
        return;
    sb_add(b, "<details><summary>");
    esc(b, summary);
    sb_add(b, "</summary><pre>");
    esc(b, text);
    sb_add(b, "</pre></details>");
}

static void case_row(struct sbuf *b, const json_t *s, const json_t *c, const char *junit)
{
    const char *res = json_get_str(c, "result"), *msg = json_get_str(c, "message");
    const char *sname = json_get_str(s, "name"), *cname = json_get_str(c, "name");
    char t[32];
    fmt_secs(t, sizeof(t), json_get_int(c, "elapsed_ms", -1));
    sb_add(b, "<tr class=\"case\" data-result=\"");
    esc(b, res);
    sb_add(b, "\" data-case=\"");
    esc(b, cname);
    sb_add(b, "\"><td>");
    esc(b, cname);
    sb_add(b, "</td><td class=\"");
    esc(b, res);
    sb_add(b, "\">");
    esc(b, res);
    sb_printf(b, "</td><td>%s</td><td><div class=\"msg\">", t);
    esc(b, msg);
    sb_add(b, "</div>");
    const json_t *steps = json_get(c, "steps");
    struct sbuf st = { 0 };
    for (size_t i = 0; i < json_len(steps); i++) {
        const json_t *p = json_at(steps, i);
        char e[32];
        fmt_secs(e, sizeof(e), json_get_int(p, "elapsed_ms", -1));
        const char *m = json_get_str(p, "message");
        sb_printf(&st, "%-7s %7s  line %lld: %s%s%s\n", json_get_str(p, "result"), e,
                  json_get_int(p, "line", 0), json_get_str(p, "source"), m ? "  -- " : "", m ? m : "");
    }
    char *steps_text = sb_take(&st);
    folded(b, "steps", steps_text);
    free(steps_text);
    char *fail = junit_part(junit, sname ? sname : "", cname ? cname : "", "failure");
    if (!fail)
        fail = junit_part(junit, sname ? sname : "", cname ? cname : "", "error");
    folded(b, "failure report", fail);
    free(fail);
    char *log = junit_part(junit, sname ? sname : "", cname ? cname : "", "system-out");
    folded(b, "log", log);
    free(log);
    sb_add(b, "</td></tr>\n");
}

static void guest_rows(struct sbuf *b, const json_t *s)
{
    const json_t *gs = json_get(s, "guests");
    if (!json_len(gs))
        return;
    sb_add(b, "<table class=\"guests\"><tr><th>guest</th><th>instance</th><th>state</th>"
              "<th>boots</th><th>to ready</th><th>reason</th></tr>\n");
    for (size_t i = 0; i < json_len(gs); i++) {
        const json_t *g = json_at(gs, i);
        char t[32];
        fmt_secs(t, sizeof(t), json_get_int(json_get(g, "timings_ms"), "ready", -1));
        sb_add(b, "<tr class=\"guest\"><td>");
        esc(b, json_get_str(g, "name"));
        sb_add(b, "</td><td>");
        esc(b, json_get_str(g, "instance"));
        sb_add(b, "</td><td>");
        esc(b, json_get_str(g, "state"));
        sb_printf(b, "</td><td>%lld</td><td>%s</td><td>", json_get_int(g, "boots", 0), t);
        const char *why = json_get_str(g, "reason");
        if (why) {
            char line[300];
            snprintf(line, sizeof(line), "%.*s", (int)strcspn(why, "\n"), why);
            folded(b, line, why);
        }
        sb_add(b, "</td></tr>\n");
    }
    sb_add(b, "</table>\n");
}

static void suite_section(struct sbuf *b, const json_t *s, const char *junit)
{
    const char *res = json_get_str(s, "result"), *why = json_get_str(s, "reason");
    char t[32];
    fmt_secs(t, sizeof(t), json_get_int(s, "elapsed_ms", -1));
    sb_add(b, "<section class=\"suite\" data-suite=\"");
    esc(b, json_get_str(s, "name"));
    sb_add(b, "\"><h2>");
    esc(b, json_get_str(s, "name"));
    sb_add(b, " <span class=\"");
    esc(b, res);
    sb_add(b, "\">");
    esc(b, res);
    sb_printf(b, "</span> <small>%s, ", t);
    esc(b, json_get_str(s, "file"));
    sb_add(b, "</small></h2>\n");
    if (why) {
        sb_add(b, "<p class=\"msg\">");
        esc(b, why);
        sb_add(b, "</p>\n");
    }
    sb_add(b, "<table class=\"cases\"><tr><th>case</th><th>result</th><th>time</th>"
              "<th>message, steps, log</th></tr>\n");
    const json_t *cs = json_get(s, "cases");
    for (size_t i = 0; i < json_len(cs); i++)
        case_row(b, s, json_at(cs, i), junit);
    sb_add(b, "</table>\n");
    guest_rows(b, s);
    sb_add(b, "</section>\n");
}

static void header(struct sbuf *b, const json_t *doc)
{
    const json_t *run = json_get(doc, "run"), *cc = json_get(json_get(doc, "counts"), "cases");
    char started[64] = "-", t[32];
    time_t ts = (time_t)(json_get_int(run, "started_ms", 0) / 1000);
    struct tm tm;
    if (ts > 0 && localtime_r(&ts, &tm))
        strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S %z", &tm);
    fmt_secs(t, sizeof(t), json_get_int(run, "elapsed_ms", -1));
    sb_add(b, "<h1>qfleet run ");
    esc(b, json_get_str(run, "id"));
    sb_add(b, "</h1>\n<p>state <b>");
    esc(b, json_get_str(run, "state"));
    const json_t *ec = json_get(run, "exit_code");
    if (json_typeof(ec) == JSON_INT)
        sb_printf(b, "</b>, exit code <b>%lld", json_get_int(run, "exit_code", 0));
    sb_printf(b, "</b>, started %s, took %s, jobs ", started, t);
    const json_t *lim = json_get(run, "limits");
    if (json_typeof(json_get(lim, "jobs")) == JSON_INT)
        sb_printf(b, "%lld", json_get_int(lim, "jobs", 0));
    else
        sb_add(b, "unlimited");
    sb_add(b, "</p>\n<p class=\"counts\">");
    static const char *const res[] = { "total", "passed", "failed", "error", "skipped", NULL };
    for (int i = 0; res[i]; i++)
        sb_printf(b, "<span class=\"%s\" id=\"count-%s\">%s %lld</span>", res[i], res[i], res[i],
                  json_get_int(cc, res[i], 0));
    sb_add(b, "</p>\n");
}

char *status_report_render(const char *status_dir, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    size_t n;
    snprintf(path, sizeof(path), "%s/status.json", status_dir);
    char *text = fs_read_file(path, REPORT_MAX_INPUT, &n);
    json_t *doc = text ? json_parse(text, n, err, errlen) : NULL;
    free(text);
    if (!doc) {
        if (!text)
            snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
        return NULL;
    }
    const json_t *run = json_get(doc, "run");
    /* junit.xml may have been moved with --junit: status.json says where. */
    const char *jp = json_get_str(run, "junit");
    if (!jp)
        snprintf(path, sizeof(path), "%s/junit.xml", status_dir);
    char *junit = fs_read_file(jp ? jp : path, REPORT_MAX_INPUT, &n);

    struct timeline tl = { 0 };
    snprintf(path, sizeof(path), "%s/events.jsonl", status_dir);
    char *ev = fs_read_file(path, REPORT_MAX_INPUT, &n);
    for (char *line = ev, *nl; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
        nl = strchr(line, '\n');
        json_t *e = json_parse(line, nl ? (size_t)(nl - line) : strlen(line), NULL, 0);
        if (e)
            timeline_event(&tl, e);
        json_free(e);
    }
    free(ev);
    long long t0 = json_get_int(run, "started_ms", 0);
    if (t0 > 0 && (!tl.t0 || t0 < tl.t0))
        tl.t0 = t0;
    long long end = json_get_int(run, "finished_ms", 0);
    if (end <= 0)
        end = json_get_int(run, "updated_ms", 0);

    struct sbuf b = { 0 };
    sb_add(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "style-src 'unsafe-inline'; img-src data:\">\n<title>qfleet run ");
    esc(&b, json_get_str(run, "id"));
    sb_printf(&b, "</title>\n<style>%s</style></head><body>\n", css);
    header(&b, doc);
    sb_add(&b, "<h2>Timeline</h2>\n");
    legend(&b);
    timeline_svg(&b, &tl, end);
    const json_t *suites = json_get(doc, "suites");
    for (size_t i = 0; i < json_len(suites); i++)
        suite_section(&b, json_at(suites, i), junit);
    sb_add(&b, "</body></html>\n");
    timeline_free(&tl);
    free(junit);
    json_free(doc);
    char *out = sb_take(&b);
    if (!out)
        snprintf(err, errlen, "out of memory");
    return out;
}

int status_report_write(const char *status_dir, const char *out_path, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    if (!out_path) {
        snprintf(path, sizeof(path), "%s/report.html", status_dir);
        out_path = path;
    }
    char *html = status_report_render(status_dir, err, errlen);
    if (!html)
        return -EINVAL;
    int rc = fs_write_atomic(out_path, html, strlen(html), 0644, err, errlen);
    free(html);
    return rc;
}
