/* verdict.c - whether a step's outcome meets its expectations, and
 * the report of a step that goes into the case log (junit system-out). */
#include "src/run/run_int.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"

#define REPORT_STREAM_MAX (64 * 1024)  /* bytes of each stream a report shows */
#define PATH_VALUES_MAX 256

/* What a value looks like in a comparison: strings as they are, anything
 * else as compact JSON ("5", "true", "null", "{...}"). */
static char *val_text(const json_t *v)
{
    if (json_typeof(v) == JSON_STRING)
        return strdup(json_str(v));
    char *s = json_dump(v, NULL);
    return s ? s : strdup("");
}

/* Every value at path: keys, array indexes and '*' (every element). */
static void at_path(const json_t *v, const char *path, const json_t **out, int *n)
{
    if (!v || *n >= PATH_VALUES_MAX)
        return;
    if (!*path || !strcmp(path, ".")) {
        out[(*n)++] = v;
        return;
    }
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    const char *rest = dot ? dot + 1 : "";
    char seg[256];
    snprintf(seg, sizeof(seg), "%.*s", (int)len, path);
    json_type t = json_typeof(v);
    if (!strcmp(seg, "*")) {
        if (t == JSON_ARRAY || t == JSON_OBJECT)
            for (size_t i = 0; i < json_len(v); i++)
                at_path(json_at(v, i), rest, out, n);
    } else if (t == JSON_ARRAY) {
        char *end;
        long idx = strtol(seg, &end, 10);
        if (!*end && idx >= 0 && (size_t)idx < json_len(v))
            at_path(json_at(v, (size_t)idx), rest, out, n);
    } else if (t == JSON_OBJECT) {
        at_path(json_get(v, seg), rest, out, n);
    }
}

static int text_holds(enum suite_op op, const char *text, const char *want, char **why)
{
    if (op == SO_EQ || op == SO_NE) {
        /* = compares what a command printed without its final newlines. */
        size_t n = strlen(text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            n--;
        int eq = strlen(want) == n && !strncmp(text, want, n);
        return op == SO_EQ ? eq : !eq;
    }
    regex_t re;
    int rc = regcomp(&re, want, REG_EXTENDED | REG_NEWLINE | REG_NOSUB);
    if (rc != 0) {
        char e[256];
        regerror(rc, &re, e, sizeof(e));
        if (asprintf(why, "bad regular expression '%s': %s", want, e) < 0)
            *why = NULL;
        return 0;
    }
    int m = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return op == SO_MATCH ? m : !m;
}

/* "'first 160 bytes'" on one line, for messages. */
static void sample(char *out, size_t len, const char *text)
{
    size_t o = 0;
    out[o++] = '\'';
    for (const char *p = text; *p && o + 6 < len; p++) {
        if (*p == '\n' || *p == '\r') {
            out[o++] = '\\';
            out[o++] = *p == '\n' ? 'n' : 'r';
        } else {
            out[o++] = *p;
        }
        if (p - text >= 160 && p[1]) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

static const char *const op_names[] = { [SO_EQ] = "=", [SO_NE] = "!=", [SO_MATCH] = "~",
                                        [SO_NOMATCH] = "!~" };
static const char *const subj_names[] = { [SX_EXIT] = "exit", [SX_STDOUT] = "stdout", [SX_STDERR] = "stderr",
                                          [SX_OUTPUT] = "output", [SX_ERROR] = "error" };

static int check_one(struct rsuite *s, const struct suite_expect *e, const step_out *o, char **why)
{
    char err[512], got[256];
    char *want = run__expand(s, e->value, err, sizeof(err));
    if (!want) {
        *why = strdup(err);
        return 0;
    }
    const char *subj = e->subject == SX_PATH ? e->path : subj_names[e->subject];
    int ok = 0;
    *why = NULL;
    if (e->subject == SX_EXIT) {
        ok = (o->exit_code == atoi(want)) == (e->op == SO_EQ);
        snprintf(got, sizeof(got), "%d", o->exit_code);
    } else if (e->subject == SX_PATH) {
        const json_t *vals[PATH_VALUES_MAX];
        int n = 0, any = 0;
        at_path(o->ret, e->path, vals, &n);
        int positive = e->op == SO_EQ || e->op == SO_MATCH;
        enum suite_op pos_op = e->op == SO_EQ || e->op == SO_NE ? SO_EQ : SO_MATCH;
        got[0] = '\0';
        for (int i = 0; i < n && !*why; i++) {
            char *t = val_text(vals[i]);
            int holds = t && text_holds(pos_op, t, want, why);
            /* Show the first value, or for != and !~ the first that matched. */
            if (i == 0 || (!positive && holds && !any))
                sample(got, sizeof(got), t ? t : "");
            any |= holds;
            free(t);
        }
        ok = positive ? any : !any;
        if (n == 0)
            snprintf(got, sizeof(got), "nothing at that path");
        else if (n > 1)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), " and %d more", n - 1);
    } else {
        struct sbuf b = { 0 };
        if (e->subject == SX_ERROR)
            sb_printf(&b, "%s", o->err_text ? o->err_text : "");
        else
            sb_printf(&b, "%s%s", e->subject != SX_STDERR ? o->out ? o->out : "" : "",
                   e->subject != SX_STDOUT ? o->err ? o->err : "" : "");
        ok = text_holds(e->op, b.s ? b.s : "", want, why);
        sample(got, sizeof(got), b.s ? b.s : "");
        sb_free(&b);
    }
    if (!ok && !*why && asprintf(why, "expected %s %s %s, got %s", subj, op_names[e->op], want, got) < 0)
        *why = NULL;
    free(want);
    return ok;
}

int run__step_verdict(struct rsuite *s, const struct suite_step *st, const step_out *o, char **why)
{
    char *w = NULL;
    int ok = 1, timeout = st->timeout_ms > 0 ? st->timeout_ms : s->def->timeout_ms;
    if (o->status < 0) {
        w = strdup(o->error ? o->error : "failed");
        ok = 0;
    } else if (o->timed_out) {
        if (asprintf(&w, "timed out after %.1fs", timeout / 1000.0) < 0)
            w = NULL;
        ok = 0;
    } else if ((st->verb == SV_RUN || st->verb == SV_HOST) && !st->has_exit && o->exit_code != 0) {
        int r = o->signal[0] ? asprintf(&w, "killed by SIG%s (expected exit 0)", o->signal)
                             : asprintf(&w, "exit status %d (expected 0)", o->exit_code);
        if (r < 0)
            w = NULL;
        ok = 0;
    } else if ((st->verb == SV_QMP || st->verb == SV_QGA) && o->err_text) {
        int expected = 0;
        for (int i = 0; i < st->nex; i++)
            expected |= st->ex[i].subject == SX_ERROR;
        if (!expected) {
            if (asprintf(&w, "%s replied with an error: %s", st->verb == SV_QMP ? "QMP" : "the agent",
                         o->err_text) < 0)
                w = NULL;
            ok = 0;
        }
    }
    for (int i = 0; ok && i < st->nex; i++)
        ok = check_one(s, &st->ex[i], o, &w);
    *why = ok ? NULL : run__mask(s, w ? w : "failed");
    free(w);
    return ok;
}

static void add_stream(struct sbuf *b, const char *name, const char *text)
{
    if (!text || !*text)
        return;
    size_t n = strlen(text);
    int cut = n > REPORT_STREAM_MAX;
    sb_printf(b, "%s:\n%.*s%s%s", name, (int)(cut ? REPORT_STREAM_MAX : n), text,
           text[(cut ? REPORT_STREAM_MAX : n) - 1] == '\n' ? "" : "\n",
           cut ? "[... cut; see the step's output in the guest or on the host]\n" : "");
}

/* What an interactive step saw of its session: the output it consumed
 * (expect: up to the match; close: what was left; a failed expect: all
 * unmatched), its last REPORT_STREAM_MAX bytes, control bytes escaped,
 * and the session's age for the timings. */
static void add_session(struct sbuf *b, const struct suite_step *st, const step_out *o)
{
    if (o->since_spawn_ms < 0) {
        if (st->verb == SV_CLOSE && o->status == 0)
            sb_printf(b, "session %s was not open: nothing to close\n", st->session);
        return;
    }
    const char *t = o->out ? o->out : "";
    size_t n = strlen(t), from = n > REPORT_STREAM_MAX ? n - REPORT_STREAM_MAX : 0;
    char *e = str_escape_text(t + from, n - from, 0);
    sb_printf(b, "session %s at +%.3fs%s%s\n", st->session, o->since_spawn_ms / 1000.0,
              !n ? "" : o->status < 0 ? ", unmatched output" : st->verb == SV_CLOSE ? ", last output"
              : ", output", !n ? "" : from ? " (its end):" : ":");
    if (e && *e)
        sb_printf(b, "%s%s%s", from ? "[...]\n" : "", e, e[strlen(e) - 1] == '\n' ? "" : "\n");
    free(e);
}

char *run__step_report(struct rsuite *s, const struct suite_step *st, const step_out *o, int ok)
{
    struct sbuf b = { 0 };
    sb_printf(&b, "--- %s:%d: %s  [%s, %.2fs]\n", s->def->path, st->loc.line, st->source,
           ok ? "ok" : "FAILED", o->elapsed_ms / 1000.0);
    if (o->status < 0)
        sb_printf(&b, "error: %s\n", o->error ? o->error : "failed");
    else if (o->timed_out)
        sb_printf(&b, "timed out%s%s\n", o->error ? ": " : "", o->error ? o->error : "");
    if (st->verb == SV_RUN || st->verb == SV_HOST) {
        if (o->status == 0 && !o->timed_out) {
            if (o->signal[0])
                sb_printf(&b, "killed by SIG%s\n", o->signal);
            else
                sb_printf(&b, "exit %d\n", o->exit_code);
        }
        add_stream(&b, "stdout", o->out);
        add_stream(&b, "stderr", o->err);
        if (o->truncated)
            sb_printf(&b, "[output truncated at %u bytes]\n", STEP_OUTPUT_MAX);
    } else if (st->verb >= SV_SPAWN && st->verb <= SV_CLOSE) {
        add_session(&b, st, o);
    } else if (st->verb == SV_MIGRATE) {
        if (o->ret) { /* the fleet's record: phases, downtime, result */
            char *j = json_dump_pretty(o->ret, NULL);
            add_stream(&b, "migration", j);
            free(j);
        }
    } else if (st->verb == SV_QMP || st->verb == SV_QGA) {
        if (o->err_text)
            sb_printf(&b, "error reply: %s\n", o->err_text);
        if (o->ret) {
            char *j = json_dump_pretty(o->ret, NULL);
            add_stream(&b, "return", j);
            free(j);
        }
    }
    char *m = run__mask(s, b.s ? b.s : "");
    sb_free(&b);
    return m;
}
