/* suite.c - the suite file grammar (cfg/SUITES.md): [suite] keys, step
 * blocks and [case NAME] sections of step lines with indented clauses.
 *
 * The file is read line by line; a line ending in '\' continues on the next
 * one (as in a shell). Every element keeps the file:line:col it came from,
 * so every error, including those found only when the cfg is resolved,
 * names the place to fix. */
#include "cfg/suite_int.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg/argv.h"
#include "cfg/util.h"
#include "cfg/vm.h"
#include "base/json.h"

#define SUITE_FILE_MAX (4 << 20)
#define TIMEOUT_MAX_MS (24 * 3600 * 1000)

struct cfg_loc suite__loc(const struct pctx *p, const struct lline *l, int off)
{
    int i = 0;
    while (i + 1 < l->nsegs && l->segs[i + 1].off <= off)
        i++;
    return (struct cfg_loc){ p->file, l->segs[i].line, l->segs[i].col + off - l->segs[i].off };
}

int suite__perr(struct pctx *p, const struct lline *l, int off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cfg_verrf(p->err, p->errlen, suite__loc(p, l, off), fmt, ap);
    va_end(ap);
    return rc;
}

/* "30", "30s", "500ms", "2m", "1.5s" -> ms; -1 if malformed or out of range. */
int suite__duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double mult = 1000;
    if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (*end && strcmp(end, "s"))
        return -1;
    double ms = v * mult;
    return ms > TIMEOUT_MAX_MS ? -1 : (int)(ms + 0.5);
}

/* ---- ${variables} ------------------------------------------------------ */

static const char *const guest_fields[] = { "pid", "ip", "ssh_port", "vnc", "mac", "name",
                                            "qmp", "serial", "state", NULL };
static const char *const plain_vars[] = { "suite", "case", "run_dir", "tmp", "suite_dir",
                                          "status_dir", NULL };

/* Index of w[0..n) in the NULL-terminated list l, or -1. */
int suite__find_word(const char *const *l, const char *w, size_t n)
{
    for (int i = 0; l[i]; i++)
        if (strlen(l[i]) == n && !strncmp(l[i], w, n))
            return i;
    return -1;
}

/* Check every ${...} in text (starting at offset base of line l): syntax
 * and names. Guest names are checked by suite_resolve. */
int suite__check_vars(struct pctx *p, const struct lline *l, int base, const char *text)
{
    for (const char *q = text; (q = strstr(q, "${")); ) {
        if (q > text && q[-1] == '$') { /* $${ is a literal ${ */
            q += 2;
            continue;
        }
        int off = base + (int)(q - text);
        const char *end = strchr(q, '}');
        if (!end)
            return suite__perr(p, l, off, "unterminated ${, expected ${NAME}");
        const char *n = q + 2;
        size_t len = (size_t)(end - n);
        int ok = suite__find_word(plain_vars, n, len) >= 0;
        if (!ok && len > 6 && !strncmp(n, "guest.", 6)) {
            const char *dot = memrchr(n + 6, '.', len - 6); /* guest names may hold dots */
            ok = dot && dot > n + 6 && suite__find_word(guest_fields, dot + 1, (size_t)(end - dot - 1)) >= 0;
        }
        if (!ok)
            return suite__perr(p, l, off, "unknown variable ${%.*s}, expected ${suite}, ${case}, ${run_dir}, "
                        "${tmp}, ${suite_dir}, ${status_dir} or ${guest.NAME.FIELD} with FIELD one "
                        "of pid, ip, ssh_port, vnc, mac, name, qmp, serial, state", (int)len, n);
        q = end + 1;
    }
    return 0;
}

const char *suite__placeholder(const char *name, void *data)
{
    (void)name;
    return data;
}

char *suite_expand(const char *text, suite_var_fn resolve, void *data, char *err, size_t errlen)
{
    struct sbuf b = { 0 };
    const char *q = text;
    for (const char *v; (v = strstr(q, "${")); ) {
        if (v > q && v[-1] == '$') {
            sb_addn(&b, q, (size_t)(v - q - 1));
            sb_add(&b, "${");
            q = v + 2;
            continue;
        }
        sb_addn(&b, q, (size_t)(v - q));
        const char *end = strchr(v, '}');
        char name[256];
        snprintf(name, sizeof(name), "%.*s", end ? (int)(end - v - 2) : 0, v + 2);
        const char *val = end ? resolve(name, data) : NULL;
        if (!val) {
            snprintf(err, errlen, "unknown variable ${%s}", name);
            sb_free(&b);
            return NULL;
        }
        sb_add(&b, val);
        q = end + 1;
    }
    sb_add(&b, q);
    char *s = sb_take(&b);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

/* ---- [suite] keys --------------------------------------------------------- */

static const char *const suite_keys[] = { "name", "description", "cfg", "defaults", "vms", "setup",
                                          "timeout", "boot_timeout", "transport", NULL };

static int parse_vms(struct pctx *p, const struct lline *l, int off, const char *v)
{
    struct suite_vm *vms = NULL;
    int n = 0, cap = 0;
    const char *t = v;
    int i = 0;
    while (t[i]) {
        i = skip_ws(t, i);
        if (!t[i])
            break;
        int s0 = i;
        int e = word_end(t, i, NULL);
        if (e == s0)
            return suite__perr(p, l, off + i, "expected a VM section name in vms, e.g. 'vm0 * 4, vm1'");
        int count = 1;
        i = skip_ws(t, e);
        if (t[i] == '*') {
            i = skip_ws(t, i + 1);
            int c0 = i;
            while (isdigit((unsigned char)t[i]))
                i++;
            long c;
            char num[16];
            snprintf(num, sizeof(num), "%.*s", i - c0, t + c0);
            if (i == c0 || int_parse(num, 1, SUITE_COUNT_MAX, &c) < 0)
                return suite__perr(p, l, off + c0, "expected a count from 1 to %d after '*'", SUITE_COUNT_MAX);
            count = (int)c;
            i = skip_ws(t, i);
        }
        if (t[i] && t[i] != ',')
            return suite__perr(p, l, off + i, "unexpected '%c' in vms, expected ',' between VMs", t[i]);
        if (t[i] == ',')
            i++;
        for (int k = 0; k < n; k++)
            if (suite__find_word((const char *[]){ vms[k].section, NULL }, t + s0, (size_t)(e - s0)) == 0)
                return suite__perr(p, l, off + s0, "VM '%.*s' is listed twice in vms", e - s0, t + s0);
        if (ar_grow(p->a, (void **)&vms, sizeof(*vms), &cap, n + 1) < 0)
            return -ENOMEM;
        vms[n].section = ar_strndup(p->a, t + s0, (size_t)(e - s0));
        vms[n].count = count;
        vms[n].loc = suite__loc(p, l, off + s0);
        n++;
    }
    if (n == 0)
        return suite__perr(p, l, off, "vms is empty, expected e.g. 'vm0 * 4, vm1'");
    p->s->vms = vms;
    p->s->nvms = n;
    return 0;
}

static int suite_key(struct pctx *p, const struct lline *l, int i)
{
    const char *t = l->text;
    int k0 = i, ke = word_end(t, i, NULL);
    int eq = skip_ws(t, ke);
    if (ke == k0 || t[eq] != '=')
        return suite__perr(p, l, k0, "expected 'key = value' in [suite]");
    int which = suite__find_word(suite_keys, t + k0, (size_t)(ke - k0));
    if (which < 0)
        return suite__perr(p, l, k0, "unknown key '%.*s' in [suite], expected name, description, cfg, "
                    "defaults, vms, setup, timeout, boot_timeout or transport", ke - k0, t + k0);
    if (p->keyloc[which].line)
        return suite__perr(p, l, k0, "'%s' is given twice (first at line %d)", suite_keys[which],
                    p->keyloc[which].line);
    p->keyloc[which] = suite__loc(p, l, k0);
    int v0 = skip_ws(t, eq + 1);
    const char *v = trimmed(p->a, t, v0, l->len);
    struct suite *s = p->s;
    const char *key = suite_keys[which];
    if (!*v && strcmp(key, "description"))
        return suite__perr(p, l, v0, "'%s' has no value", key);
    if (!strcmp(key, "name")) {
        if (!is_ident(v, "_.-") || strlen(v) > SUITE_NAME_MAX)
            return suite__perr(p, l, v0, "suite name '%s': use 1-%d letters, digits, '_', '.', '-'", v,
                        SUITE_NAME_MAX);
        s->name = v;
    } else if (!strcmp(key, "description")) {
        s->description = v;
    } else if (!strcmp(key, "cfg") || !strcmp(key, "defaults")) {
        const char *path = path_resolve(p->a, s->dir, v);
        if (!strcmp(key, "cfg")) {
            s->cfg = path;
            s->cfg_loc = suite__loc(p, l, v0);
        } else {
            s->defaults = path;
        }
    } else if (!strcmp(key, "vms")) {
        s->vms_loc = suite__loc(p, l, v0);
        return parse_vms(p, l, v0, v);
    } else if (!strcmp(key, "setup")) {
        if (strcmp(v, "all") && strcmp(v, "each") && strcmp(v, "clone"))
            return suite__perr(p, l, v0, "setup '%s', expected all (guests kept across cases, like "
                        "set_up_all), each (fresh guests for every case) or clone (fresh guests "
                        "for every case, restored from templates)", v);
        s->setup_each = strcmp(v, "all") != 0;
        s->setup_clone = !strcmp(v, "clone");
    } else if (!strcmp(key, "timeout")) {
        int ms = suite__duration(v);
        if (ms <= 0)
            return suite__perr(p, l, v0, "timeout '%s', expected a duration like 30, 30s, 500ms or 2m", v);
        s->timeout_ms = ms;
    } else if (!strcmp(key, "boot_timeout")) {
        int ms = suite__duration(v);
        if (ms < 1000)
            return suite__perr(p, l, v0, "boot_timeout '%s', expected a duration of at least 1s", v);
        s->boot_timeout_s = (ms + 999) / 1000;
    } else if (!strcmp(key, "transport")) {
        if (strcmp(v, "ssh") && strcmp(v, "agent"))
            return suite__perr(p, l, v0, "transport '%s', expected ssh or agent", v);
        s->transport = !strcmp(v, "ssh") ? ST_SSH : ST_AGENT;
    }
    return 0;
}

/* ---- sections ------------------------------------------------------------- */

static int section(struct pctx *p, const struct lline *l, int i)
{
    const char *t = l->text;
    const char *close = strchr(t + i, ']');
    if (!close || t[skip_ws(t, (int)(close - t) + 1)])
        return suite__perr(p, l, i, "expected ']' at the end of the section line");
    int n0 = skip_ws(t, i + 1), ne = (int)(close - t);
    while (ne > n0 && is_blank(t[ne - 1]))
        ne--;
    char head[128];
    snprintf(head, sizeof(head), "%.*s", ne - n0, t + n0);
    p->in_suite = 0;
    p->blk.c = NULL;
    if (!strcmp(head, "suite")) {
        if (p->seen_suite)
            return suite__perr(p, l, n0, "a second [suite] section");
        p->seen_suite = p->in_suite = 1;
        return 0;
    }
    struct suite *s = p->s;
    struct { const char *name; struct suite_case *c; } blocks[] = {
        { "set_up_all", &s->set_up_all }, { "set_up", &s->set_up }, { "tear_down", &s->tear_down },
        { "tear_down_all", &s->tear_down_all } };
    for (int k = 0; k < 4; k++) {
        if (strcmp(head, blocks[k].name))
            continue;
        if (blocks[k].c->loc.line)
            return suite__perr(p, l, n0, "a second [%s] section", head);
        blocks[k].c->loc = suite__loc(p, l, n0);
        blocks[k].c->name = "";
        p->blk = (struct block){ blocks[k].c, 0, 0 };
        return 0;
    }
    if (strncmp(head, "case", 4) || !is_blank(head[4]))
        return suite__perr(p, l, n0, "unknown section [%s], expected [suite], [set_up_all], [set_up], "
                    "[tear_down], [tear_down_all] or [case NAME]", head);
    int c0 = skip_ws(head, 4);
    const char *name = head + c0;
    if (!is_ident(name, "_.-") || strlen(name) > SUITE_NAME_MAX)
        return suite__perr(p, l, n0 + c0, "case name '%s': use 1-%d letters, digits, '_', '.', '-'", name,
                    SUITE_NAME_MAX);
    for (int k = 0; k < p->ncases; k++)
        if (!strcmp(p->cases[k].name, name))
            return suite__perr(p, l, n0 + c0, "case '%s' is defined twice (first at line %d)", name,
                        p->cases[k].loc.line);
    if (ar_grow(p->a, (void **)&p->cases, sizeof(*p->cases), &p->ccap, p->ncases + 1) < 0)
        return -ENOMEM;
    struct suite_case *c = &p->cases[p->ncases++];
    memset(c, 0, sizeof(*c));
    c->name = ar_strdup(p->a, name);
    c->loc = suite__loc(p, l, n0 + c0);
    p->blk = (struct block){ c, 0, 0 };
    return 0;
}

static int logical_line(struct pctx *p, const struct lline *l)
{
    const char *t = l->text;
    int i = skip_ws(t, 0);
    if (!t[i] || t[i] == '#')
        return 0;
    if (t[i] == '[')
        return section(p, l, i);
    if (p->in_suite)
        return suite_key(p, l, i);
    if (!p->blk.c)
        return suite__perr(p, l, i, "text outside a section, expected [suite] or [case NAME] first");
    if (suite__is_clause(t, i))
        return suite__clause_line(p, l, i);
    return suite__step_line(p, l, i);
}

/* ---- file ------------------------------------------------------------------- */

static int parse_lines(struct pctx *p, const char *text, size_t len)
{
    struct sbuf b = { 0 };
    struct lline l = { 0 };
    int line = 1, rc = 0;
    size_t pos = 0;
    while (rc == 0 && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        size_t next = nl ? pos + n + 1 : len;
        if (n && text[pos + n - 1] == '\r')
            n--;
        if (memchr(text + pos, '\0', n)) {
            l.nsegs = 1;
            l.segs[0] = (struct seg){ 0, line, 1 };
            l.text = "";
            rc = suite__perr(p, &l, 0, "NUL byte in a suite file");
            break;
        }
        if (l.nsegs < (int)(sizeof(l.segs) / sizeof(l.segs[0])))
            l.segs[l.nsegs++] = (struct seg){ (int)b.len, line, 1 };
        int cont = n && text[pos + n - 1] == '\\';
        sb_addn(&b, text + pos, cont ? n - 1 : n);
        pos = next;
        line++;
        if (cont && pos < len)
            continue;
        if (b.failed) {
            rc = -ENOMEM;
            break;
        }
        l.text = b.s ? b.s : "";
        l.len = (int)b.len;
        rc = logical_line(p, &l);
        b.len = 0;
        if (b.s)
            b.s[0] = '\0';
        l.nsegs = 0;
    }
    sb_free(&b);
    return rc;
}

static int finish(struct pctx *p)
{
    struct suite *s = p->s;
    struct cfg_loc top = { p->file, 1, 1 };
    if (!p->seen_suite)
        return cfg_errf(p->err, p->errlen, top, "no [suite] section; it names the cfg: "
                        "'[suite]' then 'cfg = FILE.cfg'");
    if (!s->cfg)
        return cfg_errf(p->err, p->errlen, top, "[suite] has no 'cfg = FILE' (the DTS cfg of the VMs)");
    if (p->ncases == 0)
        return cfg_errf(p->err, p->errlen, top, "no [case NAME] section: a suite needs at least one case");
    s->cases = p->cases;
    s->ncases = p->ncases;
    if (!s->name) {
        const char *base = strrchr(p->file, '/');
        base = base ? base + 1 : p->file;
        size_t n = strlen(base);
        if (n > 6 && !strcmp(base + n - 6, ".suite"))
            n -= 6;
        s->name = ar_strndup(p->a, base, n);
        if (!is_ident(s->name, "_.-") || n > SUITE_NAME_MAX)
            return cfg_errf(p->err, p->errlen, top, "the file name '%s' is no suite name: add "
                            "'name = NAME' to [suite] ([A-Za-z0-9_.-], up to %d)", s->name,
                            SUITE_NAME_MAX);
    }
    return ar_failed(p->a) ? -ENOMEM : 0;
}

int suite_parse(const char *path, const char *text, size_t len, struct suite **out, char *err,
                size_t errlen)
{
    struct arena *a = calloc(1, sizeof(*a));
    struct suite *s = a ? ar_alloc(a, sizeof(*s)) : NULL;
    if (!s) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->arena = a;
    s->path = ar_strdup(a, path);
    s->description = "";
    s->timeout_ms = SUITE_TIMEOUT_DEFAULT_MS;
    char *abs = realpath(path, NULL), cwd[4096];
    const char *full = abs ? abs : path, *slash = strrchr(full, '/');
    s->dir = slash ? ar_strndup(a, full, slash == full ? 1 : (size_t)(slash - full))
                   : ar_strdup(a, getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    free(abs);
    struct pctx p = { .s = s, .a = a, .file = s->path, .err = err, .errlen = errlen };
    int rc = parse_lines(&p, text, len);
    if (rc == 0)
        rc = finish(&p);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc < 0) {
        suite_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int suite_load(const char *path, struct suite **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(SUITE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, SUITE_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > SUITE_FILE_MAX) {
        snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : bad ? "read error"
                 : "larger than 4 MiB");
        free(buf);
        return !buf ? -ENOMEM : bad ? -EIO : -EFBIG;
    }
    struct suite *s;
    int rc = suite_parse(path, buf, n, &s, err, errlen);
    free(buf);
    if (rc == 0 && (rc = suite_resolve(s, err, errlen)) < 0)
        suite_free(s);
    if (rc == 0)
        *out = s;
    return rc;
}

void suite_free(struct suite *s)
{
    if (!s)
        return;
    cfg_doc_free(s->doc);
    cfg_doc_free(s->defaults_doc);
    struct arena *a = s->arena;
    ar_free(a);
    free(a);
}
