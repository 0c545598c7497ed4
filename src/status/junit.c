/* junit.c - junit.xml for Jenkins and GitLab (tests/junit.xsd).
 *
 * One <testsuite> per suite, one <testcase> per case. A failed expectation
 * is <failure>, an infrastructure problem <error>, a case that never ran
 * <skipped>. Every step's report goes into the case's <system-out>, where
 * both CI systems show it next to the result (a case's tear_down with its
 * own verdict line); [tear_down_all] runs once for all cases, so its
 * reports are the suite's <system-out>. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/str.h"
#include "src/status/status_int.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    /* Overlong forms, surrogates and what XML 1.0 does not allow. */
    if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0xfffe ||
        cp == 0xffff)
        return 0;
    return len;
}

/* Text or attribute content: escaped, and made valid XML 1.0 whatever a
 * command printed (control bytes and broken UTF-8 become '?'). */
static void xb_text(struct sbuf *b, const char *s, int attr)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    while (n) {
        size_t run = 0;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && !strchr("&<>\"'", p[run]))
            run++;
        sb_addn(b, (const char *)p, run);
        p += run;
        n -= run;
        if (!n)
            break;
        size_t u = utf8_len(p, n);
        switch (*p) {
        case '&': sb_addn(b, "&amp;", 5); break;
        case '<': sb_addn(b, "&lt;", 4); break;
        case '>': sb_addn(b, "&gt;", 4); break;
        case '"': sb_addn(b, attr ? "&quot;" : "\"", attr ? 6 : 1); break;
        case '\'': sb_addn(b, attr ? "&apos;" : "'", attr ? 6 : 1); break;
        case '\n': sb_addn(b, attr ? "&#10;" : "\n", attr ? 5 : 1); break;
        case '\t': sb_addn(b, attr ? "&#9;" : "\t", attr ? 4 : 1); break;
        case '\r': /* serial logs end lines in CR LF: keep the LF only */
            if (attr || n < 2 || p[1] != '\n')
                sb_addn(b, "&#13;", 5);
            break;
        default:
            if (*p >= 0x80 && u > 1) {
                sb_addn(b, (const char *)p, u);
                p += u;
                n -= u;
                continue;
            }
            sb_addn(b, "?", 1);
        }
        p++;
        n--;
    }
}

static void iso_time(char *out, size_t len, long long ms)
{
    /* Ant's format, which both CI systems read: local time, no zone. */
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
}

static double case_secs(const st_case *c)
{
    return c->started_ms > 0 && c->finished_ms >= c->started_ms ? (c->finished_ms - c->started_ms) / 1000.0
                                                                 : 0.0;
}

static void suite_counts(const st_suite *s, int n[RES_COUNT])
{
    memset(n, 0, sizeof(int) * RES_COUNT);
    for (int k = 0; k < s->ncases; k++)
        n[s->cases[k].result]++;
}

static void render_case(struct sbuf *b, const st_suite *s, const st_case *c)
{
    sb_addn(b, "    <testcase name=\"", 20);
    xb_text(b, c->name, 1);
    sb_addn(b, "\" classname=\"", 13);
    xb_text(b, s->name, 1);
    sb_printf(b, "\" time=\"%.3f\">\n", case_secs(c));
    const char *tag = c->result == RES_FAILED ? "failure" : c->result == RES_ERROR ? "error"
                    : c->result == RES_SKIPPED || c->result == RES_PENDING || c->result == RES_RUNNING
                    ? "skipped" : NULL;
    if (tag) {
        const char *type = c->result == RES_FAILED ? "ExpectationFailed"
                         : c->result == RES_ERROR ? "InfrastructureError" : NULL;
        const char *msg = c->message ? c->message : c->result == RES_SKIPPED ? "not run" : "did not finish";
        sb_printf(b, "      <%s message=\"", tag);
        xb_text(b, msg, 1);
        if (type)
            sb_printf(b, "\" type=\"%s", type);
        if (c->detail && strcmp(tag, "skipped")) {
            sb_addn(b, "\">", 2);
            xb_text(b, c->detail, 0);
            sb_printf(b, "</%s>\n", tag);
        } else {
            sb_addn(b, "\"/>\n", 4);
        }
    }
    if (c->log_len) {
        sb_addn(b, "      <system-out>", 18);
        xb_text(b, c->log, 0);
        sb_addn(b, "</system-out>\n", 14);
    }
    sb_addn(b, "    </testcase>\n", 16);
}

char *junit_render(const st_run *r)
{
    struct sbuf b = { 0 };
    char host[256] = "localhost", ts[64];
    gethostname(host, sizeof(host) - 1);
    int tot[RES_COUNT] = { 0 }, cases = 0;
    double secs = 0;
    for (int i = 0; i < r->nsuites; i++) {
        int n[RES_COUNT];
        suite_counts(r->suites[i], n);
        for (int k = 0; k < RES_COUNT; k++)
            tot[k] += n[k];
        cases += r->suites[i]->ncases;
        for (int k = 0; k < r->suites[i]->ncases; k++)
            secs += case_secs(&r->suites[i]->cases[k]);
    }
    sb_addn(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 39);
    sb_addn(&b, "<testsuites name=\"qfleet run ", 29);
    xb_text(&b, r->id, 1);
    sb_printf(&b, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n", cases,
              tot[RES_FAILED], tot[RES_ERROR], tot[RES_SKIPPED] + tot[RES_PENDING] + tot[RES_RUNNING],
              secs);
    for (int i = 0; i < r->nsuites; i++) {
        const st_suite *s = r->suites[i];
        int n[RES_COUNT];
        suite_counts(s, n);
        double ss = 0;
        for (int k = 0; k < s->ncases; k++)
            ss += case_secs(&s->cases[k]);
        iso_time(ts, sizeof(ts), s->started_ms > 0 ? s->started_ms : r->started_ms);
        sb_addn(&b, "  <testsuite name=\"", 19);
        xb_text(&b, s->name, 1);
        sb_printf(&b, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\" "
                  "timestamp=\"%s\" hostname=\"", s->ncases, n[RES_FAILED], n[RES_ERROR],
                  n[RES_SKIPPED] + n[RES_PENDING] + n[RES_RUNNING], ss, ts);
        xb_text(&b, host, 1);
        sb_printf(&b, "\" id=\"%d\">\n    <properties>\n", i);
        const char *props[][2] = { { "file", s->file }, { "run_dir", s->run_dir },
                                   { "setup", st_setup_name(s) },
                                   { "result", st_result_name(s->result) },
                                   { "reason", s->reason } };
        for (size_t p = 0; p < sizeof(props) / sizeof(props[0]); p++) {
            if (!props[p][1])
                continue;
            sb_printf(&b, "      <property name=\"%s\" value=\"", props[p][0]);
            xb_text(&b, props[p][1], 1);
            sb_addn(&b, "\"/>\n", 4);
        }
        sb_addn(&b, "    </properties>\n", 18);
        for (int k = 0; k < s->ncases; k++)
            render_case(&b, s, &s->cases[k]);
        if (s->tear_down_all.log_len) { /* its own result, never a case's */
            sb_addn(&b, "    <system-out>", 16);
            xb_text(&b, s->tear_down_all.log, 0);
            sb_addn(&b, "</system-out>\n", 14);
        }
        sb_addn(&b, "  </testsuite>\n", 15);
    }
    sb_addn(&b, "</testsuites>\n", 14);
    return sb_take(&b);
}

int junit_write(const st_run *r, const char *path, char *err, size_t errlen)
{
    char *x = junit_render(r);
    if (!x) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = fs_write_atomic(path, x, strlen(x), 0644, err, errlen);
    free(x);
    return rc;
}
