/* suite_step.c - step lines and the indented clauses below them
 * (cfg/SUITES.md "Steps"): commands, QMP and agent commands, copies,
 * sleeps, interactive sessions (spawn, send, expect, close) and migrate. */
#include "cfg/suite_int.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

#define BANDWIDTH_MAX (1LL << 50)

/* Indexed by the enums; "" at 0 never matches a word. */
static const char *const verbs[] = { "", "run", "host", "qmp", "qga", "copy_to", "copy_from", "sleep",
                                     "spawn", "send", "expect", "close", "migrate", NULL };
static const char *const ops[] = { "", "=", "!=", "~", "!~", NULL };
static const char *const cmd_subjects[] = { "", "exit", "stdout", "stderr", "output", NULL };

const char *suite_verb_name(enum suite_verb v) { return v >= SV_RUN && v <= SV_MIGRATE ? verbs[v] : "?"; }

static int is_session_verb(enum suite_verb v) { return v == SV_SEND || v == SV_EXPECT || v == SV_CLOSE; }

int suite__is_clause(const char *t, int i)
{
    int we = word_end(t, i, NULL);
    static const char *const words[] = { "timeout", "downtime-limit", "max-bandwidth", NULL };
    if (suite__find_word(words, t + i, (size_t)(we - i)) >= 0)
        return 1;
    if (we - i != 6 || strncmp(t + i, "expect", 6))
        return 0;
    /* "expect SESSION: REGEX" is a step; a clause's subject is followed by
     * an operator, never by ':'. */
    int s = skip_ws(t, we), se = word_end(t, s, NULL);
    return t[skip_ws(t, se)] != ':';
}

/* A regex as expect clauses and steps take it: ${...} probed as "x". */
static int check_regex(struct pctx *p, const struct lline *l, int off, const char *re_text)
{
    char msg[256];
    char *probe = suite_expand(re_text, suite__placeholder, "x", msg, sizeof(msg));
    regex_t re;
    int rc = probe ? regcomp(&re, probe, REG_EXTENDED | REG_NEWLINE | REG_NOSUB) : REG_ESPACE;
    free(probe);
    if (rc != 0) {
        regerror(rc, NULL, msg, sizeof(msg));
        return suite__perr(p, l, off, "bad regular expression: %s", msg);
    }
    regfree(&re);
    return 0;
}

/* One path argument of copy_to/copy_from: a word or a "quoted string". */
static int path_arg(struct pctx *p, const struct lline *l, int *i, const char **out)
{
    const char *t = l->text;
    int j = skip_ws(t, *i);
    if (!t[j])
        return suite__perr(p, l, j, "expected two paths: SOURCE DESTINATION");
    int s0 = j;
    if (t[j] == '"') {
        const char *q = strchr(t + j + 1, '"');
        if (!q)
            return suite__perr(p, l, j, "unterminated \"");
        *out = ar_strndup(p->a, t + j + 1, (size_t)(q - t - j - 1));
        j = (int)(q - t) + 1;
    } else {
        while (t[j] && !is_blank(t[j]))
            j++;
        *out = ar_strndup(p->a, t + s0, (size_t)(j - s0));
    }
    if (!**out)
        return suite__perr(p, l, s0, "empty path");
    *i = j;
    return suite__check_vars(p, l, s0, *out);
}

/* A name word at i (guest or session) into *out; i moves past it. */
static int name_arg(struct pctx *p, const struct lline *l, int *i, const char *what, const char **out,
                    enum suite_verb verb)
{
    const char *t = l->text;
    int g0 = *i, ge = word_end(t, g0, NULL);
    if (ge == g0)
        return suite__perr(p, l, g0, "expected the %s after '%s', e.g. '%s'", what, suite_verb_name(verb),
                           verb == SV_MIGRATE ? "migrate vm0-1 -> vm0-2" : is_session_verb(verb)
                           ? "send vm0-1: quit" : "run vm0-1: ...");
    if (ge - g0 > SUITE_NAME_MAX)
        return suite__perr(p, l, g0, "%s name longer than %d characters", what, SUITE_NAME_MAX);
    *out = ar_strndup(p->a, t + g0, (size_t)(ge - g0));
    *i = skip_ws(t, ge);
    return 0;
}

/* migrate SRC -> DST (nothing after DST; options are clauses). */
static int migrate_args(struct pctx *p, const struct lline *l, int i, struct suite_step *st)
{
    const char *t = l->text;
    if (strncmp(t + i, "->", 2))
        return suite__perr(p, l, i, "expected '->' between the source and the destination guest, "
                           "e.g. 'migrate vm0-1 -> vm0-2'");
    i = skip_ws(t, i + 2);
    int d0 = i;
    if (name_arg(p, l, &i, "destination guest", &st->dest, SV_MIGRATE) < 0)
        return -EINVAL;
    if (t[i])
        return suite__perr(p, l, i, "unexpected text after the destination guest (options go on "
                           "indented lines: timeout, downtime-limit, max-bandwidth)");
    if (!strcmp(st->guest, st->dest))
        return suite__perr(p, l, d0, "'%s' cannot migrate into itself", st->dest);
    return 0;
}

/* The guest (or session) part of a step line up to its ':'. */
static int step_target(struct pctx *p, const struct lline *l, int *ip, struct suite_step *st)
{
    const char *t = l->text;
    enum suite_verb verb = st->verb;
    int i = *ip;
    if (is_session_verb(verb)) {
        if (name_arg(p, l, &i, "session", &st->session, verb) < 0)
            return -EINVAL;
        *ip = i;
        return 0;
    }
    if (name_arg(p, l, &i, verb == SV_MIGRATE ? "source guest" : "guest", &st->guest, verb) < 0)
        return -EINVAL;
    if (verb == SV_SPAWN) {
        st->session = st->guest;
        if (!strncmp(t + i, "as", 2) && (is_blank(t[i + 2]) || t[i + 2] == ':')) {
            i = skip_ws(t, i + 2);
            if (name_arg(p, l, &i, "session", &st->session, verb) < 0)
                return -EINVAL;
        }
    }
    if (!strncmp(t + i, "via", 3) && is_blank(t[i + 3])) {
        if (verb == SV_QMP || verb == SV_QGA || verb == SV_MIGRATE)
            return suite__perr(p, l, i, "'via' is for run, copy_to, copy_from and spawn; %s has its own "
                               "channel", suite_verb_name(verb));
        int w0 = skip_ws(t, i + 3), we = word_end(t, w0, NULL);
        if (we - w0 == 3 && !strncmp(t + w0, "ssh", 3))
            st->via = ST_SSH;
        else if (we - w0 == 5 && !strncmp(t + w0, "agent", 5))
            st->via = ST_AGENT;
        else
            return suite__perr(p, l, w0, "expected ssh or agent after 'via'");
        if (verb == SV_SPAWN && st->via == ST_AGENT)
            return suite__perr(p, l, w0, "spawn needs ssh: the guest agent has no interactive shell");
        i = skip_ws(t, we);
    }
    *ip = i;
    return 0;
}

/* What follows the ':' of a step. */
static int step_body(struct pctx *p, const struct lline *l, int i, struct suite_step *st)
{
    const char *t = l->text;
    enum suite_verb verb = st->verb;
    if (verb == SV_RUN || verb == SV_HOST || verb == SV_SPAWN || verb == SV_SEND) {
        st->text = trimmed(p->a, t, i, l->len);
        return suite__check_vars(p, l, i, st->text);
    }
    if (verb == SV_EXPECT) {
        st->text = trimmed(p->a, t, i, l->len);
        if (suite__check_vars(p, l, i, st->text) < 0)
            return -EINVAL;
        return check_regex(p, l, i, st->text);
    }
    if (verb == SV_QMP || verb == SV_QGA) {
        int ce = word_end(t, i, NULL);
        if (ce == i)
            return suite__perr(p, l, i, "expected a command name like query-status");
        st->text = ar_strndup(p->a, t + i, (size_t)(ce - i));
        int a0 = skip_ws(t, ce);
        if (!t[a0])
            return 0;
        st->arg = trimmed(p->a, t, a0, l->len);
        if (suite__check_vars(p, l, a0, st->arg) < 0)
            return -EINVAL;
        /* ${...} becomes 0: valid inside a string and as a number. */
        char msg[256];
        char *probe = suite_expand(st->arg, suite__placeholder, "0", msg, sizeof(msg));
        json_t *j = probe ? json_parse(probe, strlen(probe), msg, sizeof(msg)) : NULL;
        int is_obj = j && json_typeof(j) == JSON_OBJECT;
        free(probe);
        json_free(j);
        if (!is_obj)
            return suite__perr(p, l, a0, "arguments must be one JSON object%s%s", j ? "" : ": ",
                               j ? "" : msg);
        return 0;
    }
    if (path_arg(p, l, &i, &st->text) < 0 || path_arg(p, l, &i, &st->arg) < 0)
        return -EINVAL;
    i = skip_ws(t, i);
    if (t[i])
        return suite__perr(p, l, i, "unexpected text after the destination (quote paths with spaces)");
    return 0;
}

int suite__step_line(struct pctx *p, const struct lline *l, int i)
{
    const char *t = l->text;
    struct suite_case *c = p->blk.c;
    int v0 = i, ve = word_end(t, i, NULL);
    int vi = suite__find_word(verbs, t + v0, (size_t)(ve - v0));
    enum suite_verb verb = vi > 0 ? (enum suite_verb)vi : 0;
    if (!verb)
        return suite__perr(p, l, v0, "unknown step '%.*s', expected run, host, qmp, qga, copy_to, "
                           "copy_from, sleep, spawn, send, expect, close or migrate (or an indented "
                           "expect/timeout clause)", ve - v0, t + v0);
    if (ar_grow(p->a, (void **)&c->steps, sizeof(*c->steps), &p->blk.cap, c->nsteps + 1) < 0)
        return -ENOMEM;
    struct suite_step *st = (struct suite_step *)&c->steps[c->nsteps];
    memset(st, 0, sizeof(*st));
    st->verb = verb;
    st->loc = suite__loc(p, l, v0);
    st->source = trimmed(p->a, t, v0, l->len);
    p->blk.ecap = 0;
    i = skip_ws(t, ve);
    if (verb == SV_SLEEP) {
        const char *d = trimmed(p->a, t, i, l->len);
        if ((st->timeout_ms = suite__duration(d)) < 0)
            return suite__perr(p, l, i, "sleep '%s', expected a duration like 2, 2s or 500ms", d);
        c->nsteps++;
        return 0;
    }
    if (verb != SV_HOST && step_target(p, l, &i, st) < 0)
        return -EINVAL;
    if (verb == SV_CLOSE || verb == SV_MIGRATE) {
        if (verb == SV_MIGRATE && migrate_args(p, l, i, st) < 0)
            return -EINVAL;
        if (verb == SV_CLOSE && t[i])
            return suite__perr(p, l, i, "unexpected text after the session: 'close NAME' ends it");
        c->nsteps++;
        return 0;
    }
    if (t[i] != ':')
        return suite__perr(p, l, i, "expected ':' before the %s",
                           verb == SV_RUN || verb == SV_HOST || verb == SV_SPAWN ? "command"
                           : verb == SV_QMP || verb == SV_QGA ? "command name"
                           : verb == SV_SEND ? "text" : verb == SV_EXPECT ? "regular expression" : "paths");
    i = skip_ws(t, i + 1);
    if (!t[i] && verb != SV_SEND)
        return suite__perr(p, l, i, "nothing after ':'");
    if (step_body(p, l, i, st) < 0)
        return -EINVAL;
    c->nsteps++;
    return 0;
}

/* downtime-limit DURATION, max-bandwidth N[K|M|G] (bytes per second). */
static int migrate_clause(struct pctx *p, const struct lline *l, int w0, int i, struct suite_step *st)
{
    const char *t = l->text;
    int bw = t[w0] == 'm';
    if (st->verb != SV_MIGRATE)
        return suite__perr(p, l, w0, "'%s' is an option of migrate steps", bw ? "max-bandwidth"
                           : "downtime-limit");
    const char *v = trimmed(p->a, t, i, l->len);
    if (!bw) {
        int ms = suite__duration(v);
        if (ms <= 0)
            return suite__perr(p, l, i, "downtime-limit '%s', expected a duration like 300ms or 1s", v);
        st->downtime_ms = ms;
        return 0;
    }
    char *end;
    double n = strtod(v, &end);
    double mult = !*end ? 1 : !strcmp(end, "K") ? 1024 : !strcmp(end, "M") ? 1024.0 * 1024
                : !strcmp(end, "G") ? 1024.0 * 1024 * 1024 : -1;
    if (end == v || mult < 0 || n * mult < 1 || n * mult > (double)BANDWIDTH_MAX)
        return suite__perr(p, l, i, "max-bandwidth '%s', expected bytes per second like 100M, 1G or "
                           "500000", v);
    st->bandwidth = (long long)(n * mult);
    return 0;
}

/* expect SUBJECT OP VALUE under a run, host, qmp or qga step. */
static int expect_clause(struct pctx *p, const struct lline *l, int w0, int i, struct suite_step *st);

int suite__clause_line(struct pctx *p, const struct lline *l, int i)
{
    const char *t = l->text;
    struct suite_case *c = p->blk.c;
    if (c->nsteps == 0)
        return suite__perr(p, l, i, "'%.*s' before any step: clauses belong to the step above them",
                           word_end(t, i, NULL) - i, t + i);
    struct suite_step *st = (struct suite_step *)&c->steps[c->nsteps - 1];
    int w0 = i;
    i = skip_ws(t, word_end(t, i, NULL));
    if (t[w0] == 'd' || t[w0] == 'm')
        return migrate_clause(p, l, w0, i, st);
    if (t[w0] == 't') { /* timeout */
        const char *d = trimmed(p->a, t, i, l->len);
        int ms = suite__duration(d);
        if (st->verb == SV_SLEEP)
            return suite__perr(p, l, w0, "sleep takes no timeout");
        if (ms <= 0)
            return suite__perr(p, l, i, "timeout '%s', expected a duration like 30, 30s, 500ms or 2m", d);
        st->timeout_ms = ms;
        return 0;
    }
    return expect_clause(p, l, w0, i, st);
}

static int expect_clause(struct pctx *p, const struct lline *l, int w0, int i, struct suite_step *st)
{
    const char *t = l->text;
    if (st->verb == SV_SLEEP || st->verb == SV_COPY_TO || st->verb == SV_COPY_FROM)
        return suite__perr(p, l, w0, "%s steps take no expect clauses (they fail when the %s fails)",
                           suite_verb_name(st->verb), st->verb == SV_SLEEP ? "sleep" : "copy");
    if (st->verb >= SV_SPAWN)
        return suite__perr(p, l, w0, "%s steps take no expect clauses%s", suite_verb_name(st->verb),
                           st->verb == SV_MIGRATE ? " (they fail when the migration fails)"
                           : ": wait for output with a step 'expect SESSION: REGEX'");
    struct suite_expect e = { 0 };
    int s0 = i, se = i;
    while (t[se] && !is_blank(t[se]))
        se++;
    char subj[256];
    snprintf(subj, sizeof(subj), "%.*s", se - s0, t + s0);
    int cmd = st->verb == SV_RUN || st->verb == SV_HOST;
    if (!*subj)
        return suite__perr(p, l, s0, "expected 'expect SUBJECT OP VALUE'");
    if (cmd) {
        int k = suite__find_word(cmd_subjects, subj, strlen(subj));
        e.subject = k > 0 ? (enum suite_subject)k : 0;
        if (!e.subject)
            return suite__perr(p, l, s0, "unknown subject '%s' for %s, expected exit, stdout, stderr or "
                               "output", subj, suite_verb_name(st->verb));
    } else if (!strcmp(subj, "error")) {
        e.subject = SX_ERROR;
    } else {
        e.subject = SX_PATH;
        for (const char *q = subj; *q; q++)
            if (!is_namec(*q) && *q != '*')
                return suite__perr(p, l, s0 + (int)(q - subj), "bad character '%c' in path '%s', "
                                   "expected keys, indexes and * separated by '.'", *q, subj);
        e.path = ar_strdup(p->a, subj);
    }
    int o0 = skip_ws(t, se), oe = o0;
    while (t[oe] && !is_blank(t[oe]))
        oe++;
    int op = suite__find_word(ops, t + o0, (size_t)(oe - o0));
    e.op = op > 0 ? (enum suite_op)op : 0;
    if (!e.op)
        return suite__perr(p, l, o0, "expected an operator after '%s': =, !=, ~ (regex) or !~", subj);
    int x0 = skip_ws(t, oe);
    e.value = trimmed(p->a, t, x0, l->len);
    e.loc = suite__loc(p, l, s0);
    if (suite__check_vars(p, l, x0, e.value) < 0)
        return -EINVAL;
    if (e.subject == SX_EXIT) {
        long v;
        if (e.op != SO_EQ && e.op != SO_NE)
            return suite__perr(p, l, o0, "exit takes = or !=");
        if (int_parse(e.value, -1, 255, &v) < 0)
            return suite__perr(p, l, x0, "exit status '%s', expected a number from 0 to 255 (-1: "
                               "killed)", e.value);
        st->has_exit = 1;
    }
    if ((e.op == SO_MATCH || e.op == SO_NOMATCH) && check_regex(p, l, x0, e.value) < 0)
        return -EINVAL;
    if (ar_grow(p->a, (void **)&st->ex, sizeof(e), &p->blk.ecap, st->nex + 1) < 0)
        return -ENOMEM;
    ((struct suite_expect *)st->ex)[st->nex++] = e;
    return 0;
}
