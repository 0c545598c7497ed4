/* suite_int.h - what the files of the suite grammar share: suite.c (the
 * file, sections, [suite] keys, ${variables}) and suite_step.c (step lines
 * and their clauses). Not for other files. */
#ifndef QF_CFG_SUITE_INT_H
#define QF_CFG_SUITE_INT_H

#include <ctype.h>
#include <string.h>

#include "cfg/suite.h"
#include "cfg/util.h"
#include "base/str.h"

/* One logical line: text joined over '\' continuations, and where each
 * physical piece started. */
struct seg {
    int off, line, col;
};

struct lline {
    char *text;
    int len;
    struct seg segs[32];
    int nsegs;
};

struct block {
    struct suite_case *c;      /* the case or set_up block being filled */
    int cap;                   /* of c->steps */
    int ecap;                  /* of the last step's expects */
};

struct pctx {
    struct suite *s;
    struct arena *a;
    const char *file;
    char *err;
    size_t errlen;
    int in_suite;              /* inside [suite] */
    int seen_suite;
    struct block blk;          /* c NULL: no step section open */
    struct suite_case *cases;
    int ncases, ccap;
    struct cfg_loc keyloc[16]; /* first place of each [suite] key, line 0: unseen */
};

/* The file:line:col of offset off of logical line l. */
struct cfg_loc suite__loc(const struct pctx *p, const struct lline *l, int off);
/* "FILE:LINE:COL: error: ..." into p->err; returns -EINVAL. */
int suite__perr(struct pctx *p, const struct lline *l, int off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "30", "30s", "500ms", "2m", "1.5s" -> ms; -1 if malformed or out of range. */
int suite__duration(const char *s);
/* Check every ${...} in text (at offset base of line l): syntax and names. */
int suite__check_vars(struct pctx *p, const struct lline *l, int base, const char *text);
/* A suite_var_fn giving data for every name (probing text with ${...}). */
const char *suite__placeholder(const char *name, void *data);
/* Index of w[0..n) in the NULL-terminated list l, or -1. */
int suite__find_word(const char *const *l, const char *w, size_t n);
/* suite_step.c: a step line, a clause line ("expect", "timeout", ...) at
 * offset i of l, into the open block. */
int suite__step_line(struct pctx *p, const struct lline *l, int i);
int suite__clause_line(struct pctx *p, const struct lline *l, int i);
/* 1 if the word at i of t starts a clause rather than a step. */
int suite__is_clause(const char *t, int i);

static inline int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
static inline int skip_ws(const char *t, int i) { while (t[i] && is_blank(t[i])) i++; return i; }
static inline int is_namec(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-'; }

/* End of a run of name characters (plus extra) starting at i. */
static inline int word_end(const char *t, int i, const char *extra)
{
    while (t[i] && (is_namec(t[i]) || (extra && strchr(extra, t[i]))))
        i++;
    return i;
}

static inline char *trimmed(struct arena *a, const char *t, int from, int to)
{
    while (from < to && is_blank(t[from]))
        from++;
    while (to > from && is_blank(t[to - 1]))
        to--;
    return ar_strndup(a, t + from, (size_t)(to - from));
}

#endif
