/* str.c - arena, growable string and small text helpers. */
#include "base/str.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- arena --------------------------------------------------------------- */

struct ar_blk {
    struct ar_blk *next;
    size_t used, cap;
    max_align_t data[];
};

void *ar_alloc(struct arena *a, size_t n)
{
    size_t al = sizeof(max_align_t);
    n = (n + al - 1) / al * al;
    if (n == 0)
        n = al;
    struct ar_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        b = malloc(sizeof(*b) + cap);
        if (!b) {
            a->failed = 1;
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ar_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = ar_alloc(a, n + 1);
    if (!p)
        return "";
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ar_strdup(struct arena *a, const char *s) { return ar_strndup(a, s, strlen(s)); }

char *ar_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->failed = 1;
        return "";
    }
    char *p = ar_alloc(a, (size_t)n + 1);
    if (!p)
        return "";
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int ar_grow(struct arena *a, void **arr, size_t el, int *cap, int need)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *p = ar_alloc(a, el * (size_t)nc);
    if (!p)
        return -ENOMEM;
    if (*arr && *cap)
        memcpy(p, *arr, el * (size_t)*cap);
    *arr = p;
    *cap = nc;
    return 0;
}

void ar_free(struct arena *a)
{
    struct ar_blk *b = a->head;
    while (b) {
        struct ar_blk *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->failed = 0;
}

/* --- sbuf ---------------------------------------------------------------- */

void sb_addn(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->s, nc);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_add(struct sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
void sb_addc(struct sbuf *b, char c) { sb_addn(b, &c, 1); }

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        sb_addn(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_addn(b, big, (size_t)n);
    free(big);
}

void sb_add_masked(struct sbuf *b, const char *s, const char *secret)
{
    if (!secret || !*secret) {
        sb_add(b, s);
        return;
    }
    size_t n = strlen(secret);
    for (const char *hit; (hit = strstr(s, secret)); s = hit + n) {
        sb_addn(b, s, (size_t)(hit - s));
        sb_add(b, "********");
    }
    sb_add(b, s);
}

int word_next(const char **s, const char **end)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return 0;
    const char *e = p;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    *s = p;
    *end = e;
    return 1;
}

char *sb_take(struct sbuf *b)
{
    if (b->failed) {
        sb_free(b);
        return NULL;
    }
    char *s = b->s ? b->s : strdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void sb_free(struct sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

/* --- text ---------------------------------------------------------------- */

int str_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int is_ident(const char *s, const char *extra)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

int shell_split(struct arena *a, const char *s, char ***words, int *n, int *bad, const char **why)
{
    char **w = NULL;
    int nw = 0, cap = 0;
    size_t slen = strlen(s);
    char *buf = ar_alloc(a, slen + 1);
    if (!buf)
        return -ENOMEM;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        size_t bl = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '\'') {
                const char *q = strchr(p + 1, '\'');
                if (!q) {
                    *bad = (int)(p - s);
                    *why = "unterminated single quote";
                    return -EINVAL;
                }
                memcpy(buf + bl, p + 1, (size_t)(q - p - 1));
                bl += (size_t)(q - p - 1);
                p = q + 1;
            } else if (*p == '"') {
                const char *open = p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\\\"$`", p[1]))
                        p++;
                    buf[bl++] = *p++;
                }
                if (!*p) {
                    *bad = (int)(open - s);
                    *why = "unterminated double quote";
                    return -EINVAL;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    *bad = (int)(p - s);
                    *why = "backslash at the end";
                    return -EINVAL;
                }
                buf[bl++] = p[1];
                p += 2;
            } else {
                buf[bl++] = *p++;
            }
        }
        if (ar_grow(a, (void **)&w, sizeof(*w), &cap, nw + 2) < 0)
            return -ENOMEM;
        w[nw++] = ar_strndup(a, buf, bl);
    }
    if (ar_grow(a, (void **)&w, sizeof(*w), &cap, nw + 1) < 0)
        return -ENOMEM;
    w[nw] = NULL;
    *words = w;
    *n = nw;
    return ar_failed(a) ? -ENOMEM : 0;
}

void sb_add_shell(struct sbuf *b, const char *word)
{
    int plain = *word != '\0';
    for (const char *p = word; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./:=,@%+", *p))
            plain = 0;
    if (plain) {
        sb_add(b, word);
        return;
    }
    sb_addc(b, '\'');
    for (const char *p = word; *p; p++) {
        if (*p == '\'')
            sb_add(b, "'\\''");
        else
            sb_addc(b, *p);
    }
    sb_addc(b, '\'');
}

char *str_vprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = str_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

char *str_escape_text(const char *s, size_t n, int oneline)
{
    char *out = malloc(n * 4 + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; out && i < n; i++) {
        unsigned c = p[i];
        size_t u = 1;
        if (c >= 0xc2 && c <= 0xf4) { /* a well-formed UTF-8 sequence passes */
            u = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            for (size_t k = 1; k < u; k++)
                if (i + k >= n || (p[i + k] & 0xc0) != 0x80)
                    u = 1;
            if (c == 0xc2 && u == 2 && p[i + 1] < 0xa0)
                u = 1; /* C1 controls: U+009B is a CSI to some terminals */
        }
        if (u > 1) {
            memcpy(o, p + i, u);
            o += u;
            i += u - 1;
        } else if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
            continue;
        } else if ((c == '\n' || c == '\t') && oneline) {
            *o++ = '\\';
            *o++ = c == '\n' ? 'n' : 't';
        } else if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t') {
            *o++ = (char)c;
        } else {
            o += sprintf(o, "\\x%02x", c);
        }
    }
    if (out)
        *o = '\0';
    return out;
}
