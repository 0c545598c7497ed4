/* opt.c - the option parser of every qfleet command and of qmpctl: a table
 * of options in, values and positional arguments out, and one wording for
 * usage errors. It accepts what GNU getopt_long accepted before it
 * (permutation, unique prefixes, --opt=V, -oV, bundled flags, "--"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"

struct parse {
    const char *prog;
    cli_opt *opts;
    int argc;
    char **argv;
    char why[512]; /* the first usage error, printed unless help wins */
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof(p->why), fmt, ap);
    va_end(ap);
    return 2;
}

/* The option "--name" (len bytes of a) stands for: itself, or the only
 * option it is a prefix of. */
static cli_opt *find_long(struct parse *p, const char *a, size_t len)
{
    cli_opt *hit = NULL;
    int n = 0;
    for (cli_opt *o = p->opts; o->name; o++) {
        if (strncmp(o->name, a, len))
            continue;
        if (strlen(o->name) == len)
            return o;
        hit = n++ ? hit : o;
    }
    if (n == 1)
        return hit;
    fail(p, n ? "option '%.*s' is ambiguous" : "unknown option '%.*s'", (int)len, a);
    return NULL;
}

static int take_long(struct parse *p, int *i)
{
    const char *a = p->argv[*i], *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    cli_opt *o = find_long(p, a, len);
    if (!o)
        return 2;
    if (!o->takes_value) {
        if (eq)
            return fail(p, "%s takes no value", o->name);
        o->value = "";
    } else if (eq) {
        o->value = eq + 1;
    } else if (*i + 1 < p->argc) {
        o->value = p->argv[++*i];
    } else {
        return fail(p, "%s needs a value", o->name);
    }
    return 0;
}

/* -abc: flags a and b, then c (with the rest, or the next argument, as its
 * value if it takes one). */
static int take_short(struct parse *p, int *i, int *help)
{
    const char *a = p->argv[*i];
    for (size_t k = 1; a[k]; k++) {
        if (a[k] == 'h') {
            *help = 1;
            continue;
        }
        cli_opt *o = p->opts;
        while (o->name && o->alias != a[k])
            o++;
        if (!o->name)
            return fail(p, "unknown option '-%c'", a[k]);
        if (!o->takes_value) {
            o->value = "";
            continue;
        }
        if (a[k + 1])
            o->value = a + k + 1;
        else if (*i + 1 < p->argc)
            o->value = p->argv[++*i];
        else
            return fail(p, "-%c (%s) needs a value", a[k], o->name);
        return 0;
    }
    return 0;
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int cli_parse(const char *prog, int argc, char **argv, cli_opt *opts, int maxpos, cli_args *out)
{
    struct parse p = { .prog = prog, .opts = opts, .argc = argc, .argv = argv };
    int npos = 0, rc = 0, only_pos = 0;
    out->help = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            if (maxpos >= 0 && npos >= maxpos)
                rc = fail(&p, "unexpected argument '%s'", a);
            else
                argv[1 + npos++] = a; /* never ahead of i: a compaction */
        } else if (!strcmp(a, "--")) {
            only_pos = 1;
        } else if (!strcmp(a, "--help")) {
            out->help = 1;
        } else {
            rc = a[1] == '-' ? take_long(&p, &i) : take_short(&p, &i, &out->help);
        }
    }
    out->pos = argv + 1;
    out->npos = npos;
    for (int i = 1; rc && i < argc && !out->help; i++)
        out->help = is_help(argv[i]);
    if (out->help)
        return 0;
    if (rc)
        fprintf(stderr, "%s: %s (see '%s --help')\n", prog, p.why, prog);
    return rc;
}

int cli_number(const char *prog, const cli_opt *o, long long lo, long long hi, long long *out)
{
    if (!o->value)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(o->value, &end, 10);
    if (errno || !*o->value || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be a number from %lld to %lld, not '%s'\n", prog, o->name, lo,
                hi, o->value);
        return 2;
    }
    *out = v;
    return 0;
}

int cli_int(const char *prog, const cli_opt *o, int lo, int hi, int *out)
{
    long long v = *out;
    int rc = cli_number(prog, o, lo, hi, &v);
    *out = (int)v;
    return rc;
}

int cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s --help')\n", prog);
    return 2;
}

int cli_help(const char *text)
{
    fputs(text, stdout);
    return 0;
}

int cli_print_json(json_t *v)
{
    char *text = v ? json_dump_pretty(v, NULL) : NULL;
    json_free(v);
    if (!text) {
        fprintf(stderr, "qfleet: out of memory\n");
        return -ENOMEM;
    }
    printf("%s\n", text);
    free(text);
    return fflush(stdout) == 0 ? 0 : -EIO;
}
