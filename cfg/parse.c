/* parse.c - DTS cfg files: sections, keys, continuation lines, groups.
 *
 * The line rules follow Python's ConfigParser, which DTS reads these files
 * with: '#' and ';' start full-line comments (also between continuation
 * lines), a line indented deeper than its key line continues the value,
 * blank lines do not end a value, "key = value" or "key: value". On top of
 * that the DTS value rules: ';' ends a group, so does the end of a value
 * line unless the line ends with ','. */
#include "cfg/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg/util.h"

#define MAX_SECTIONS 1024
#define MAX_KEYS 256
#define MAX_GROUPS 1024

struct cfg_doc {
    struct arena a;
    const char *path, *dir;
    struct cfg_section *secs;
    int nsecs, cap;
};

/* The value being collected: groups of the open key and the open group. */
struct vstate {
    struct arena *a;
    const char *file;
    struct cfg_key *key; /* NULL: no key open */
    struct cfg_group *groups;
    int ngroups, gcap;
    struct sbuf text; /* open group */
    struct cfg_seg *segs;
    int nsegs, scap;
    int failed;
};

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; }

static void push_seg(struct vstate *v, int line, int col)
{
    if (v->nsegs == v->scap) {
        int nc = v->scap ? v->scap * 2 : 4;
        struct cfg_seg *s = realloc(v->segs, sizeof(*s) * (size_t)nc);
        if (!s) {
            v->failed = 1;
            return;
        }
        v->segs = s;
        v->scap = nc;
    }
    v->segs[v->nsegs++] = (struct cfg_seg){ (int)v->text.len, line, col };
}

static void trim_tail(struct vstate *v)
{
    while (v->text.len && is_ws(v->text.s[v->text.len - 1]))
        v->text.s[--v->text.len] = '\0';
    while (v->nsegs && v->segs[v->nsegs - 1].off >= (int)v->text.len)
        v->nsegs--;
}

/* Close the open group: keep it if it has text. */
static int end_group(struct vstate *v, char *err, size_t errlen)
{
    trim_tail(v);
    if (v->text.len) {
        if (v->ngroups >= MAX_GROUPS)
            return cfg_errf(err, errlen,
                            (struct cfg_loc){ v->file, v->segs[0].line, v->segs[0].col },
                            "too many groups in key '%s' (at most %d)", v->key->name, MAX_GROUPS);
        if (ar_grow(v->a, (void **)&v->groups, sizeof(*v->groups), &v->gcap, v->ngroups + 1) < 0)
            return -ENOMEM;
        struct cfg_group *g = &v->groups[v->ngroups++];
        g->text = ar_strndup(v->a, v->text.s, v->text.len);
        g->len = (int)v->text.len;
        struct cfg_seg *s = ar_alloc(v->a, sizeof(*s) * (size_t)v->nsegs);
        if (s)
            memcpy(s, v->segs, sizeof(*s) * (size_t)v->nsegs);
        g->segs = s;
        g->nsegs = v->nsegs;
    }
    if (v->text.s)
        v->text.s[0] = '\0';
    v->text.len = 0;
    v->nsegs = 0;
    return v->failed || v->text.failed || ar_failed(v->a) ? -ENOMEM : 0;
}

/* One line's worth of value text: s[0..n) sits at line:col. */
static int value_piece(struct vstate *v, const char *s, int n, int line, int col, char *err,
                       size_t errlen)
{
    int i = 0;
    while (i < n) {
        while (i < n && is_ws(s[i]))
            i++;
        if (i >= n)
            break;
        int start = i;
        while (i < n && s[i] != ';')
            i++;
        if (i > start) {
            push_seg(v, line, col + start);
            sb_addn(&v->text, s + start, (size_t)(i - start));
        }
        if (i < n) { /* ';' */
            int r = end_group(v, err, errlen);
            if (r < 0)
                return r;
            i++;
        }
    }
    trim_tail(v);
    if (v->text.len && v->text.s[v->text.len - 1] != ',')
        return end_group(v, err, errlen);
    return v->failed || v->text.failed ? -ENOMEM : 0;
}

static int close_key(struct vstate *v, char *err, size_t errlen)
{
    if (!v->key)
        return 0;
    int r = end_group(v, err, errlen);
    v->key->groups = v->groups;
    v->key->ngroups = v->ngroups;
    v->key = NULL;
    v->groups = NULL;
    v->ngroups = v->gcap = 0;
    return r;
}

static const char *abs_dir(struct arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? ar_strndup(a, path, slash == path ? 1 : (size_t)(slash - path)) : ".";
    if (dir[0] == '/')
        return dir;
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return dir;
    return path_resolve(a, cwd, dir);
}

static int sec_add(struct cfg_doc *d, const char *name, struct cfg_loc loc, char *err,
                   size_t errlen)
{
    for (int i = 0; i < d->nsecs; i++)
        if (!strcmp(d->secs[i].name, name))
            return cfg_errf(err, errlen, loc, "duplicate section [%s]; first at %s:%d", name,
                            d->path, d->secs[i].loc.line);
    if (d->nsecs >= MAX_SECTIONS)
        return cfg_errf(err, errlen, loc, "too many sections (at most %d)", MAX_SECTIONS);
    if (ar_grow(&d->a, (void **)&d->secs, sizeof(*d->secs), &d->cap, d->nsecs + 1) < 0)
        return -ENOMEM;
    struct cfg_section *s = &d->secs[d->nsecs++];
    s->name = ar_strdup(&d->a, name);
    s->loc = loc;
    return 0;
}

struct pstate {
    struct cfg_doc *d;
    struct vstate v;
    int kcap;       /* capacity of the current section's keys */
    int key_indent; /* indentation of the open key's line */
};

static int key_line(struct pstate *ps, const char *line, int n, int ind, int lineno, char *err,
                    size_t errlen)
{
    struct cfg_doc *d = ps->d;
    struct cfg_loc loc = { d->path, lineno, ind + 1 };
    if (!d->nsecs)
        return cfg_errf(err, errlen, loc, "expected a [section] header before the first key");
    int delim = -1;
    for (int i = ind; i < n; i++)
        if (line[i] == '=' || line[i] == ':') {
            delim = i;
            break;
        }
    if (delim < 0)
        return cfg_errf(err, errlen, loc, "expected 'key = value' or '[section]'");
    int ke = delim;
    while (ke > ind && is_ws(line[ke - 1]))
        ke--;
    if (ke == ind)
        return cfg_errf(err, errlen, loc, "expected a key name before '%c'", line[delim]);
    char *name = ar_strndup(&d->a, line + ind, (size_t)(ke - ind));
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    struct cfg_section *s = &d->secs[d->nsecs - 1];
    for (int i = 0; i < s->nkeys; i++)
        if (!strcmp(s->keys[i].name, name))
            return cfg_errf(err, errlen, loc, "duplicate key '%s' in [%s]; first at %s:%d", name,
                            s->name, d->path, s->keys[i].loc.line);
    if (s->nkeys >= MAX_KEYS)
        return cfg_errf(err, errlen, loc, "too many keys in [%s] (at most %d)", s->name, MAX_KEYS);
    struct cfg_key *keys = (struct cfg_key *)s->keys;
    if (ar_grow(&d->a, (void **)&keys, sizeof(*keys), &ps->kcap, s->nkeys + 1) < 0)
        return -ENOMEM;
    s->keys = keys;
    struct cfg_key *k = &keys[s->nkeys++];
    k->name = name;
    k->loc = loc;
    k->dir = d->dir;
    ps->v.key = k;
    ps->key_indent = ind;
    return value_piece(&ps->v, line + delim + 1, n - delim - 1, lineno, delim + 2, err, errlen);
}

static int header_line(struct pstate *ps, const char *line, int n, int ind, int lineno, char *err,
                       size_t errlen)
{
    struct cfg_loc loc = { ps->d->path, lineno, ind + 1 };
    const char *close = memchr(line + ind, ']', (size_t)(n - ind));
    if (!close)
        return cfg_errf(err, errlen, loc, "expected ']' to close the section header");
    int ce = (int)(close - line);
    for (int i = ce + 1; i < n; i++) {
        if (line[i] == '#' || line[i] == ';')
            break;
        if (!is_ws(line[i]))
            return cfg_errf(err, errlen, loc_add(loc, i - ind),
                            "expected the end of the line after ']'");
    }
    int ns = ind + 1, ne = ce;
    while (ns < ne && is_ws(line[ns]))
        ns++;
    while (ne > ns && is_ws(line[ne - 1]))
        ne--;
    if (ne == ns)
        return cfg_errf(err, errlen, loc, "expected a section name between '[' and ']'");
    char *name = ar_strndup(&ps->d->a, line + ns, (size_t)(ne - ns));
    ps->kcap = 0;
    return sec_add(ps->d, name, (struct cfg_loc){ ps->d->path, lineno, ns + 1 }, err, errlen);
}

static int parse_text(struct cfg_doc *d, const char *text, size_t len, char *err, size_t errlen)
{
    struct pstate ps = { .d = d, .v = { .a = &d->a, .file = d->path } };
    int r = 0, lineno = 0;
    size_t pos = 0;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        pos = 3;
    while (pos < len && r == 0) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        int n = nl ? (int)(nl - line) : (int)(len - pos);
        pos += (size_t)n + (nl ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r')
            n--;
        const char *nul = memchr(line, '\0', (size_t)n);
        if (nul) {
            r = cfg_errf(err, errlen, (struct cfg_loc){ d->path, lineno, (int)(nul - line) + 1 },
                         "NUL byte in the file");
            break;
        }
        int ind = 0;
        while (ind < n && is_ws(line[ind]))
            ind++;
        if (ind == n || line[ind] == '#' || line[ind] == ';')
            continue; /* blank or comment: an open value stays open */
        if (ps.v.key && ind > ps.key_indent) {
            r = value_piece(&ps.v, line + ind, n - ind, lineno, ind + 1, err, errlen);
            continue;
        }
        r = close_key(&ps.v, err, errlen);
        if (r < 0)
            break;
        if (line[ind] == '[')
            r = header_line(&ps, line, n, ind, lineno, err, errlen);
        else
            r = key_line(&ps, line, n, ind, lineno, err, errlen);
    }
    if (r == 0)
        r = close_key(&ps.v, err, errlen);
    sb_free(&ps.v.text);
    free(ps.v.segs);
    if (r == 0 && (ar_failed(&d->a) || ps.v.failed))
        r = -ENOMEM;
    if (r == -ENOMEM && err && errlen)
        snprintf(err, errlen, "%s: out of memory", d->path);
    return r;
}

int cfg_doc_parse(const char *path, const char *text, size_t len, struct cfg_doc **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct cfg_doc *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->path = ar_strdup(&d->a, path);
    d->dir = abs_dir(&d->a, path);
    int r;
    if (len > CFG_FILE_MAX)
        r = cfg_errf(err, errlen, (struct cfg_loc){ path, 1, 1 }, "file larger than %d bytes",
                     CFG_FILE_MAX);
    else
        r = parse_text(d, text, len, err, errlen);
    if (r < 0) {
        cfg_doc_free(d);
        return r;
    }
    *out = d;
    return 0;
}

int cfg_doc_load(const char *path, struct cfg_doc **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int r = 0;
    while (buf) {
        if (len == cap) {
            if (cap > CFG_FILE_MAX)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        r = -ENOMEM;
    } else if (ferror(f)) {
        r = -EIO;
        if (err && errlen)
            snprintf(err, errlen, "%s: read error", path);
    }
    fclose(f);
    if (r == 0)
        r = cfg_doc_parse(path, buf, len, out, err, errlen);
    free(buf);
    return r;
}

void cfg_doc_free(struct cfg_doc *doc)
{
    if (!doc)
        return;
    ar_free(&doc->a);
    free(doc);
}

const char *cfg_doc_path(const struct cfg_doc *doc) { return doc->path; }
const char *cfg_doc_dir(const struct cfg_doc *doc) { return doc->dir; }
int cfg_doc_nsections(const struct cfg_doc *doc) { return doc->nsecs; }

const struct cfg_section *cfg_doc_section_at(const struct cfg_doc *doc, int i)
{
    return i >= 0 && i < doc->nsecs ? &doc->secs[i] : NULL;
}

const struct cfg_section *cfg_doc_section(const struct cfg_doc *doc, const char *name)
{
    for (int i = 0; i < doc->nsecs; i++)
        if (!strcmp(doc->secs[i].name, name))
            return &doc->secs[i];
    return NULL;
}

struct cfg_loc cfg_group_loc(const struct cfg_group *g, const char *file, int off)
{
    int k = 0;
    for (int i = 0; i < g->nsegs; i++)
        if (g->segs[i].off <= off)
            k = i;
    if (!g->nsegs)
        return (struct cfg_loc){ file, 0, 0 };
    return (struct cfg_loc){ file, g->segs[k].line, g->segs[k].col + off - g->segs[k].off };
}

/* Options whose value is a list separated by spaces: a ',' in it makes
 * the rest an item of its own. */
static int is_space_list(const char *opt)
{
    static const char *const lists[] = { "cpupin", "cpu_pin", "skipcores", "pf", NULL };
    for (int i = 0; lists[i]; i++)
        if (!strcasecmp(opt, lists[i]))
            return 1;
    return 0;
}

int cfg_group_pairs(struct arena *a, const struct cfg_group *g, const char *file,
                    struct cfg_pair *out, int max, int *n, char *err, size_t errlen)
{
    const char *t = g->text;
    int cnt = 0, i = 0;
    while (i <= g->len) {
        int s = i;
        while (i < g->len && t[i] != ',')
            i++;
        int e = i++;
        while (s < e && is_ws(t[s]))
            s++;
        while (e > s && is_ws(t[e - 1]))
            e--;
        if (s == e)
            continue;
        const char *eq = memchr(t + s, '=', (size_t)(e - s));
        if (!eq && (t[s] == '#' || t[s] == ';'))
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "expected OPTION=VALUE, got '%.*s': inline comments are not allowed "
                            "('%c' starts a comment only at the start of a line)",
                            e - s, t + s, t[s]);
        if (!eq && cnt && is_space_list(out[cnt - 1].opt))
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "expected OPTION=VALUE (this item has no '='): %s is space-separated, "
                            "like %s=%s %.*s",
                            out[cnt - 1].opt, out[cnt - 1].opt, out[cnt - 1].val, e - s, t + s);
        if (!eq)
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "expected OPTION=VALUE (this item has no '=')");
        int oe = (int)(eq - t), vs = oe + 1;
        while (oe > s && is_ws(t[oe - 1]))
            oe--;
        while (vs < e && is_ws(t[vs]))
            vs++;
        if (oe == s)
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "expected an option name before '='");
        char *opt = ar_strndup(a, t + s, (size_t)(oe - s));
        if (!is_ident(opt, "_-."))
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "expected an option name of letters, digits, '_', '-' or '.'");
        if (cnt >= max)
            return cfg_errf(err, errlen, cfg_group_loc(g, file, s),
                            "too many options in one group (at most %d)", max);
        out[cnt].opt = opt;
        out[cnt].val = ar_strndup(a, t + vs, (size_t)(e - vs));
        out[cnt].opt_loc = cfg_group_loc(g, file, s);
        out[cnt].val_loc = cfg_group_loc(g, file, vs);
        cnt++;
    }
    *n = cnt;
    return ar_failed(a) ? -ENOMEM : 0;
}

int cfg_value_parse(struct arena *a, const char *file, const char *dir, const char *key,
                    const char *text, struct cfg_key *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *name = ar_strdup(a, key);
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    out->name = name;
    out->loc = (struct cfg_loc){ file, 1, 1 };
    out->dir = dir;
    struct vstate v = { .a = a, .file = file, .key = out };
    int r = 0, lineno = 0;
    const char *p = text;
    while (*p && r == 0) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        lineno++;
        int ln = n;
        if (ln && p[ln - 1] == '\r')
            ln--;
        int ind = 0;
        while (ind < ln && is_ws(p[ind]))
            ind++;
        if (ind < ln && p[ind] != '#')
            r = value_piece(&v, p, ln, lineno, 1, err, errlen);
        p += n + (nl ? 1 : 0);
    }
    if (r == 0)
        r = close_key(&v, err, errlen);
    sb_free(&v.text);
    free(v.segs);
    if (r == 0 && (ar_failed(a) || v.failed))
        r = -ENOMEM;
    return r;
}

int cfg_key_copy(struct arena *a, const struct cfg_key *k, const char *file, struct cfg_key *out)
{
    *out = *k;
    out->name = ar_strdup(a, k->name);
    out->loc.file = file;
    out->dir = k->dir ? ar_strdup(a, k->dir) : NULL;
    struct cfg_group *g = k->ngroups ? ar_alloc(a, sizeof(*g) * (size_t)k->ngroups) : NULL;
    for (int i = 0; g && i < k->ngroups; i++) {
        g[i].text = ar_strndup(a, k->groups[i].text, (size_t)k->groups[i].len);
        g[i].len = k->groups[i].len;
        g[i].nsegs = k->groups[i].nsegs;
        struct cfg_seg *s = ar_alloc(a, sizeof(*s) * (size_t)(g[i].nsegs ? g[i].nsegs : 1));
        if (s && g[i].nsegs)
            memcpy(s, k->groups[i].segs, sizeof(*s) * (size_t)g[i].nsegs);
        g[i].segs = s;
    }
    out->groups = g;
    return ar_failed(a) ? -ENOMEM : 0;
}
