/* util.h - internal helpers of the cfg library: an arena allocator, a
 * growable string, error/warning formatting, QEMU option escaping, the
 * shell-like word splitter of usercmd and small value checks.
 *
 * Nothing here is part of the public API (see vm.h, argv.h, parse.h). */
#ifndef QF_CFG_UTIL_H
#define QF_CFG_UTIL_H

#include <stdarg.h>
#include <stddef.h>

#include "cfg/parse.h"

/* --- arena ------------------------------------------------------------
 * Everything of one document or one model lives in one arena and is freed
 * at once. On allocation failure the arena records it: ar_alloc returns
 * NULL, the string functions return "" so callers may go on and check
 * ar_failed() once at the end of a phase. */
struct ar_blk;
struct arena {
    struct ar_blk *head;
    int failed;
};

void *ar_alloc(struct arena *a, size_t n); /* zeroed */
char *ar_strndup(struct arena *a, const char *s, size_t n);
char *ar_strdup(struct arena *a, const char *s);
char *ar_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Grow an array of *cap elements of size el to hold at least need; the old
 * contents are copied (the old block stays in the arena). 0 or -ENOMEM. */
int ar_grow(struct arena *a, void **arr, size_t el, int *cap, int need);
void ar_free(struct arena *a);
static inline int ar_failed(const struct arena *a) { return a->failed; }

/* --- growable string (malloc) ------------------------------------------ */
struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
};
void sb_addn(struct sbuf *b, const char *s, size_t n);
void sb_add(struct sbuf *b, const char *s);
void sb_addc(struct sbuf *b, char c);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s with every ',' doubled: QEMU's option-list escaping. */
void sb_add_qemu(struct sbuf *b, const char *s);
/* Append s with every occurrence of secret replaced by "********" (s as
 * is when secret is NULL or empty). */
void sb_add_masked(struct sbuf *b, const char *s, const char *secret);
/* Take the string (caller frees); NULL on allocation failure. */
char *sb_take(struct sbuf *b);
void sb_free(struct sbuf *b);

/* --- messages ---------------------------------------------------------- */
/* "FILE:LINE:COL: error: MSG" into err; returns -EINVAL. */
int cfg_errf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_verrf(char *err, size_t errlen, struct cfg_loc loc, const char *fmt, va_list ap);
/* The location off bytes after loc on the same line. */
struct cfg_loc loc_add(struct cfg_loc loc, int off);

/* --- text -------------------------------------------------------------- */
int str_ieq(const char *a, const char *b);
int is_ident(const char *s, const char *extra); /* [A-Za-z0-9] plus chars in extra, non-empty */
/* Shell-like split (whitespace; '...'; "..." with \\ \" \$ \`; backslash
 * outside quotes). Words are arena strings, *words an arena array ending
 * with NULL. On error returns -EINVAL and the byte offset of the culprit
 * in *bad and a reason in *why. */
int shell_split(struct arena *a, const char *s, char ***words, int *n, int *bad, const char **why);
/* Shell-safe quoting for people: the word itself when it has no special
 * characters, else '...' with embedded quotes as '\''. */
void sb_add_shell(struct sbuf *b, const char *word);

/* The next space- or tab-separated word at or after *s: 1 with *s at its
 * start and *end just past it, or 0 at the end of the string. Iterate with
 *   for (const char *s = text, *e; word_next(&s, &e); s = e) */
int word_next(const char **s, const char **end);

/* --- values ------------------------------------------------------------ */
/* "aa:bb:cc:dd:ee:ff" hex; 0, -EINVAL (syntax) or -EDOM (multicast/zero).
 * out gets the lowercase form (18 bytes). */
int mac_parse(const char *s, char out[18]);
/* Guest PCI address "1f", "0x1f", "1f.0", "0x03.2": 0 or -EINVAL. */
int slot_parse(const char *s, int *slot, int *fn);
/* Host PCI address "07:10.0" or "0000:07:10.0"; out gets the 12-char
 * domain form (13 bytes). 0 or -EINVAL. */
int bdf_parse(const char *s, char out[13]);
/* Decimal integer in [lo, hi]; 0 or -EINVAL. */
int int_parse(const char *s, long lo, long hi, long *out);
/* Resolve path against dir ("./" prefixes removed) into the arena. */
char *path_resolve(struct arena *a, const char *dir, const char *path);

#endif
