/* str.h - the one arena allocator, growable string and small text helpers
 * every module uses. Public: any layer may include it.
 *
 * Ownership: an arena owns everything allocated from it until ar_free; an
 * sbuf owns its bytes until sb_take hands them to the caller or sb_free. */
#ifndef QF_BASE_STR_H
#define QF_BASE_STR_H

#include <stdarg.h>
#include <stddef.h>

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
/* Append s with every occurrence of secret replaced by "********" (s as
 * is when secret is NULL or empty). */
void sb_add_masked(struct sbuf *b, const char *s, const char *secret);
/* Take the string (caller frees); NULL on allocation failure. */
char *sb_take(struct sbuf *b);
void sb_free(struct sbuf *b);

/* --- malloc'd printf ---------------------------------------------------- */
/* The formatted string (caller frees), or NULL on allocation failure. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

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

/* Text a guest or a program wrote, made safe to show on a terminal or in a
 * report: escape sequences (ESC [6n ...), other control bytes and invalid
 * UTF-8 become "\xNN"; tab and newline stay (oneline: they become "\t" and
 * "\n"), a CR before LF is dropped. s[0..n) may hold NULs. Caller frees;
 * NULL on allocation failure. */
char *str_escape_text(const char *s, size_t n, int oneline);

#endif
